import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, DECLARED_SETTINGS, loadConfig, SETTINGS } from './config.ts';
import { README, withReference } from './configReference.ts';
import { declaredOnly, type Env, type SettingsSection } from './platform/settings.ts';

// The settings schemas are the one source of the configuration's names, defaults, bounds and
// documentation: the README's reference is generated from them, every module's schema is
// composed, the code reads no variable they do not declare, and the defaults and bounds they
// document are the ones the loader applies.

const SRC = import.meta.dirname;
const ROOT = join(SRC, '..');

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
/** The code that reads the environment: src, and the command's entry point. */
const sources = [...walk(SRC), join(ROOT, 'bin', 'tillpoint.mjs')];

test("the README's configuration reference is the one the schemas generate (npm run docs:config)", () => {
  const readme = readFileSync(README, 'utf8');
  assert.ok(
    readme === withReference(readme),
    'README.md configuration reference is stale: run `npm run docs:config` and commit README.md',
  );
});

test('every settings section declared anywhere in src is composed in src/config.ts', async () => {
  const declaring = walk(SRC).filter(
    (f) => f.endsWith('.settings.ts') || readFileSync(f, 'utf8').includes('defineSettings({'),
  );
  const composed = new Set<unknown>(SETTINGS);
  let sections = 0;
  for (const f of declaring) {
    const mod = (await import(pathToFileURL(f).href)) as Record<string, unknown>;
    for (const [name, v] of Object.entries(mod)) {
      const s = v as Partial<SettingsSection> | null;
      if (!s || typeof s !== 'object' || !s.schema || typeof s.load !== 'function') continue;
      sections++;
      assert.ok(composed.has(s), `${relative(ROOT, f)} exports ${name}, which SETTINGS in src/config.ts leaves out`);
      assert.equal(s.source, relative(ROOT, f), `${name} names the file it is declared in`);
    }
  }
  assert.equal(sections, SETTINGS.length, 'every composed section is declared in a file of src');
  const seen = new Map<string, string>();
  for (const s of SETTINGS) {
    for (const name of Object.keys(s.schema.properties)) {
      assert.ok(!seen.has(name), `${name} is declared twice (${seen.get(name)}, ${s.title})`);
      seen.set(name, s.title);
      assert.match(name, /^[A-Z][A-Z0-9_]*$/);
    }
  }
});

test('reading a variable no schema declares is refused', () => {
  const env = declaredOnly({ PORT: '1' }, new Set(['PORT']));
  assert.equal(env.PORT, '1');
  assert.throws(() => env.POTR, /setting POTR is read but no settings schema declares it/);
});

/** Environments that take the loader down each of its branches (production, S3, KMS, Vault, external MQTT, …). */
function scenarios(): Env[] {
  const key = 'a'.repeat(64);
  const prod: Env = {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://u:p@db/x',
    BANKS: JSON.stringify([
      { code: 'AXIS', connector: 'simbank', url: 'https://psp.example', secret_name: 'BANK_AXIS' },
    ]),
    AUDIT_SIGNING_KEY: key,
    MFA_ENCRYPTION_KEY: key,
    REWARDS_CUSTOMER_KEY: key,
    KEYRING_SECRET: 'KEYRING',
  };
  return [
    {},
    { NODE_ENV: 'test' },
    prod,
    {
      ...prod,
      AUDIT_EXPORT: 's3',
      AUDIT_S3_BUCKET: 'b',
      AUDIT_S3_REGION: 'ap-south-1',
      AWS_WEB_IDENTITY_TOKEN_FILE: '/t',
      AWS_ROLE_ARN: 'arn:aws:iam::1:role/r',
      KMS_PROVIDER: 'aws-kms',
      AWS_KMS_KEY_ID: 'alias/k',
      AWS_REGION: 'ap-south-1',
      SECRETS_PROVIDER: 'aws-secrets-manager',
      MQTT_URL: 'mqtts://broker:8883',
      TLS_CERT_FILE: '/c.pem',
      TLS_KEY_FILE: '/k.pem',
    },
    {
      ...prod,
      AUDIT_EXPORT: 's3',
      AUDIT_S3_BUCKET: 'b',
      AUDIT_S3_REGION: 'r',
      AWS_ACCESS_KEY_ID: 'a',
      AWS_SECRET_ACCESS_KEY: 's',
    },
    { ...prod, KMS_PROVIDER: 'vault-transit', VAULT_ADDR: 'https://vault:8200', AWS_DEFAULT_REGION: 'ap-south-1' },
  ];
}

test('the loader reads only declared variables, and every declared variable is read by the code', () => {
  const read = new Set<string>();
  // loadConfig throws if it reads a variable no schema declares.
  for (const env of scenarios()) loadConfig(env, { onRead: (name) => read.add(name) });
  // Variables read where they are used rather than by the loader (AWS credentials on each call).
  const readElsewhere = new Set<string>();
  const text = sources.map((f) => readFileSync(f, 'utf8')).join('\n');
  for (const m of text.matchAll(/\benv(?:\?)?\.([A-Z][A-Z0-9_]+)|\benv\[['"]([A-Z][A-Z0-9_]+)['"]\]/g))
    readElsewhere.add(m[1] ?? m[2]);
  const unread = [...DECLARED_SETTINGS].filter((n) => !read.has(n) && !readElsewhere.has(n));
  assert.deepEqual(unread, [], 'declared (and documented) but read by nothing');
});

test('every environment variable the code reads is declared in a settings schema', () => {
  // Not settings: the shell's own variables, and the test harness's (README.md, "Tests and CI").
  const notSettings = /^(PATH|USER|TEST_[A-Z0-9_]+|MOSQUITTO_BIN|TILLPOINT_REQUIRE_MOSQUITTO)$/;
  const undeclared = new Map<string, string>();
  for (const f of sources) {
    const text = readFileSync(f, 'utf8');
    const patterns = [
      /\b(?:process\.)?env(?:\?)?\.([A-Z][A-Z0-9_]+)/g,
      /\benv\[['"]([A-Z][A-Z0-9_]+)['"]\]/g,
      /\((?:env|schema), '([A-Z][A-Z0-9_]+)'/g,
    ];
    for (const re of patterns) {
      for (const m of text.matchAll(re)) {
        if (!DECLARED_SETTINGS.has(m[1]) && !notSettings.test(m[1])) undeclared.set(m[1], relative(ROOT, f));
      }
    }
  }
  assert.deepEqual(Object.fromEntries(undeclared), {}, 'read by the code but in no settings schema');
});

test('the documented defaults are the applied ones: giving a default changes nothing', () => {
  const base = loadConfig({});
  for (const s of SETTINGS) {
    for (const [name, p] of Object.entries(s.schema.properties)) {
      const d = (p as { default?: unknown }).default;
      if (d === undefined) continue;
      assert.deepEqual(loadConfig({ [name]: String(d) }), base, `${name}=${String(d)} (its documented default)`);
    }
  }
});

test('the documented bounds are the applied ones', () => {
  // Settings whose bound is relative to another: that other is moved out of the way.
  const beside: Record<string, Env> = {
    HTTP_REQUEST_TIMEOUT_MS: { HTTP_HEADERS_TIMEOUT_MS: '100' },
    AUDIT_ONLINE_MONTHS: { AUDIT_RETENTION_MONTHS: '120' },
  };
  const refused = (env: Env, name: string) =>
    assert.throws(
      () => loadConfig(env),
      (e: Error) => e instanceof ConfigError && e.setting === name,
      `${name}=${env[name]} is refused, naming it`,
    );
  let checked = 0;
  for (const s of SETTINGS) {
    for (const [name, p] of Object.entries(s.schema.properties)) {
      const { minimum, maximum } = p as { minimum?: number; maximum?: number };
      const env = beside[name] ?? {};
      if (minimum !== undefined) {
        loadConfig({ ...env, [name]: String(minimum) });
        refused({ ...env, [name]: String(minimum - 1) }, name);
        checked++;
      }
      if (maximum !== undefined) {
        loadConfig({ ...env, [name]: String(maximum) });
        refused({ ...env, [name]: String(maximum + 1) }, name);
        checked++;
      }
    }
  }
  assert.ok(checked > 50);
});
