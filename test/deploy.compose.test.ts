import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse } from 'yaml';
import { loadConfig } from '../src/config.ts';

// docker-compose.yml: the Compose CLI is not on this machine, so the file is parsed (YAML merge
// keys resolved as Compose does) and checked: the whole stack is there, the Tillpoint containers
// run as in Kubernetes, no secret is inline, and each role's environment is a valid configuration.

const ROOT = join(import.meta.dirname, '..');
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });
const svc = compose.services as Record<string, any>;
const ROLES = ['api', 'worker', 'terminal-gateway'];

test('the whole stack: PostgreSQL, Redis, Mosquitto, the WAF, the three roles, Prometheus, Grafana', () => {
  for (const s of ['postgres', 'redis', 'mosquitto', 'waf', ...ROLES, 'migrate', 'prometheus', 'grafana'])
    assert.ok(svc[s], s);
  for (const r of ROLES) assert.deepEqual(svc[r].command, ['serve', '--role', r]);
  for (const [name, s] of Object.entries(svc)) {
    if (!s.image) continue;
    assert.match(s.image, /:[\w.-]+$/, `${name}: a tagged image`);
    assert.doesNotMatch(s.image, /:latest$/, `${name}: no latest`);
  }
});

test('Tillpoint containers: non-root, read-only root, no capabilities, health checks, migrations first', () => {
  for (const name of [...ROLES, 'migrate', 'waf', 'pki']) {
    const s = svc[name];
    assert.match(s.user, /^[1-9]\d*:[1-9]\d*$/, `${name}: non-root`);
    assert.equal(s.read_only, true, `${name}: read-only root`);
    assert.ok(
      s.tmpfs?.some((t: string) => t.startsWith('/tmp')),
      `${name}: a tmpfs /tmp`,
    );
    if (name !== 'pki') assert.deepEqual(s.cap_drop, ['ALL'], `${name}: no capabilities`);
  }
  for (const r of ROLES) {
    assert.deepEqual(svc[r].healthcheck.test, ['CMD', 'node', '/app/deploy/docker/healthcheck.mjs']);
    assert.equal(svc[r].depends_on.migrate.condition, 'service_completed_successfully');
    assert.equal(svc[r].stop_grace_period, '60s', 'time to drain (as in Kubernetes)');
  }
  assert.equal(svc.waf.depends_on.api.condition, 'service_healthy');
  assert.ok(existsSync(join(ROOT, 'deploy', 'docker', 'healthcheck.mjs')));
});

test('published ports: the WAF and the MQTT broker; monitoring on loopback; nothing else', () => {
  const published = Object.entries(svc).flatMap(([n, s]) => (s.ports ?? []).map((p: string) => `${n} ${p}`));
  assert.deepEqual(published.sort(), [
    'grafana 127.0.0.1:3000:3000',
    'mosquitto 8883:8883',
    'prometheus 127.0.0.1:9090:9090',
    'waf 8443:8443',
  ]);
  assert.deepEqual(svc.mosquitto.command, ['mosquitto', '-c', '/pki/mosquitto/mosquitto.conf']);
  assert.match(svc.pki.command[0], /mosquitto-config --port 8883 --out \/pki\/mosquitto/);
});

test('secrets are files from outside the repository, never values in the file', () => {
  const ignored = readFileSync(join(ROOT, 'deploy', 'compose', '.gitignore'), 'utf8');
  assert.match(ignored, /^secrets\/$/m);
  for (const s of Object.values<any>(compose.secrets)) assert.match(s.file, /^\.\/deploy\/compose\/secrets\//);
  for (const [name, s] of Object.entries(svc)) {
    for (const [k, v] of Object.entries<string>(s.environment ?? {})) {
      if (/PASSWORD|SECRET|_KEY$|TOKEN/.test(k) && !/_FILE$|_SECRET$|^SECRETS_/.test(k))
        assert.fail(`${name}: ${k} is given inline`);
      assert.doesNotMatch(String(v), /:\/\/[^@/]+:[^@/]+@/, `${name}: ${k} has no password in a URL`);
    }
  }
});

test("Prometheus scrapes every role's health port", () => {
  const prom = parse(readFileSync(join(ROOT, 'deploy', 'compose', 'prometheus.yml'), 'utf8'));
  const targets = prom.scrape_configs.flatMap((c: any) => c.static_configs.flatMap((s: any) => s.targets));
  for (const r of ROLES) assert.ok(targets.includes(`${r}:${svc[r].environment.HEALTH_PORT}`), r);
});

test("each role's environment is a valid configuration, with its secrets from the mounted files", () => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-compose-'));
  for (const r of ROLES) {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries<string>(svc[r].environment))
      env[k] = String(v)
        .replace('/run/secrets', dir)
        .replace('/var/lib/tillpoint', dir)
        .replace(/^\/pki/, dir);
    for (const s of svc[r].secrets) writeFileSync(join(dir, s.target), randomBytes(32).toString('base64'));
    const c = loadConfig(env);
    assert.equal(c.secrets.provider, 'files');
    assert.equal(c.databasePasswordSecret, 'DATABASE_PASSWORD');
    assert.ok(
      svc[r].secrets.some((s: any) => s.target === c.databasePasswordSecret),
      'the password secret is mounted',
    );
    assert.equal(c.banks[0].secretName, 'BANK_SIM_SECRET');
    assert.ok(
      svc[r].secrets.some((s: any) => s.target === c.banks[0].secretName),
      'the bank secret is mounted',
    );
    assert.match(c.mqtt.url!, /^mqtts:\/\/mosquitto:8883$/);
    assert.equal(c.embeddedBankSim, false);
    assert.equal(c.healthPort, 9464);
  }
});
