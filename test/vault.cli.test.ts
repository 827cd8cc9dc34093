import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDb } from '../src/platform/testing.ts';
import { loadConfig } from '../src/config.ts';
import { createSecretStore, createEnvSecrets } from '../src/platform/secrets.ts';
import { createKeyManagerFromConfig } from '../src/modules/vault/index.ts';
import { ConfigError } from '../src/platform/config.ts';

// `tillpoint keys …` as an operator runs it: the real CLI in its own process, on PGlite in a
// temporary data directory, or on a fresh database of the PostgreSQL at TEST_DATABASE_URL.

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['bin/tillpoint.mjs', ...args], {
      env: { ...process.env, ...env, LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

test('keys status, rotate and rotate --kek from the command line', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tp-keys-cli-'));
  const db = process.env.TEST_DATABASE_URL ? await createTestDb({ migrate: false }) : undefined;
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    TILLPOINT_DATA_DIR: dataDir,
    ...(db?.url ? { DATABASE_URL: db.url } : {}),
  };
  try {
    // Only `serve` and `migrate` create a database; the key commands refuse a data directory without one.
    const created = await cli(['migrate'], env);
    assert.equal(created.code, 0, created.err);
    const rotate = await cli(['keys', 'rotate', '--purpose', 'payer_vpa'], env);
    assert.equal(rotate.code, 0, rotate.err);
    assert.match(rotate.out, /payer_vpa aead: version 1 -> 2/);
    assert.match(rotate.out, /payer_vpa hmac: version 1 -> 2/);
    const kek = await cli(['keys', 'rotate', '--kek'], env);
    assert.equal(kek.code, 0, kek.err);
    assert.match(kek.out, /KEK rotated: now local:v2; \d+ data keys re-wrapped; 1 old KEK versions retired/);
    const status = await cli(['keys', 'status'], env);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, /key-encrypting key: local:v2 \(local\)/);
    assert.match(status.out, /payer_vpa\s+aead\s+1\s+decrypt_only/);
    assert.match(status.out, /payer_vpa\s+aead\s+2\s+active/);
    assert.match(status.out, /merchant_bank\s+aead\s+1\s+active/);
    const none = await cli(['keys', 'rotate', '--purpose', 'no_such_purpose'], env);
    assert.equal(none.code, 1);
    const usage = await cli(['keys', 'frobnicate'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /tillpoint keys status/);
  } finally {
    await db?.close();
  }
});

test('production never makes up a keyring: KEYRING_SECRET is required with the local provider, and read from the secret', async () => {
  const config = loadConfig({ NODE_ENV: 'development' }).keys;
  const secrets = createSecretStore(createEnvSecrets({}), { refreshMs: 60_000, overlapMs: 0 });
  await assert.rejects(
    createKeyManagerFromConfig(config, { mode: 'production', secrets }),
    (e: Error) => e instanceof ConfigError && /KEYRING_SECRET/.test(e.message),
  );
  const json = (await cli(['keys', 'keyring-new'], {})).out;
  assert.match(json, /"format": "tillpoint-keyring\/1"/);
  const fromSecret = await createKeyManagerFromConfig(
    { ...config, keyringSecret: 'KEYRING' },
    {
      mode: 'production',
      secrets: createSecretStore(createEnvSecrets({ KEYRING: json }), { refreshMs: 60_000, overlapMs: 0 }),
    },
  );
  assert.equal((await fromSecret.describe()).kekRef, 'local:v1');
  const missing = await createKeyManagerFromConfig(
    { ...config, keyringSecret: 'KEYRING' },
    { mode: 'production', secrets },
  );
  await assert.rejects(missing.describe(), /secret KEYRING is not set/);
});
