import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from './config.ts';

// Secrets mounted as files (a Kubernetes Secret volume): NAME_FILE reads NAME from a file.
const dir = mkdtempSync(join(tmpdir(), 'tp-config-files-'));
const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

test('NAME_FILE reads the setting from a file, without its trailing newline', () => {
  const key = randomBytes(32).toString('base64');
  const c = loadConfig({
    NODE_ENV: 'test',
    TILLPOINT_DATA_DIR: dir,
    AUDIT_SIGNING_KEY_FILE: file('audit', `${key}\n`),
    DATABASE_URL_FILE: file('db', 'postgres://u:p@db.internal:5432/tillpoint?sslmode=verify-full\n'),
    REDIS_URL_FILE: file('redis', 'rediss://:token@redis.internal:6379'),
  });
  assert.equal(c.audit.signingKey, key);
  assert.equal(c.databaseUrl, 'postgres://u:p@db.internal:5432/tillpoint?sslmode=verify-full');
  assert.equal(c.redisUrl, 'rediss://:token@redis.internal:6379');
});

test('a missing, empty or doubly given secret file stops the start, named', () => {
  const base = { NODE_ENV: 'test', TILLPOINT_DATA_DIR: dir };
  assert.throws(
    () => loadConfig({ ...base, MFA_ENCRYPTION_KEY_FILE: join(dir, 'absent') }),
    (e: Error) => e instanceof ConfigError && /MFA_ENCRYPTION_KEY_FILE: cannot read .*ENOENT/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ ...base, REWARDS_CUSTOMER_KEY_FILE: file('empty', '\n') }),
    /REWARDS_CUSTOMER_KEY_FILE: .* is empty/,
  );
  assert.throws(
    () => loadConfig({ ...base, DATABASE_URL: 'postgres://x/y', DATABASE_URL_FILE: file('db2', 'postgres://x/z') }),
    /DATABASE_URL_FILE: and DATABASE_URL are both set/,
  );
  assert.throws(
    () => loadConfig({ ...base, DATABASE_URL_FILE: file('db3', 'mysql://x') }),
    /DATABASE_URL: must start with postgres/,
    'the value is checked like the setting itself',
  );
});
