import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from '../../config.ts';
import { auditKeysFromSeed, loadAuditKeys, verifySignature } from './keys.ts';

test('the signing key: required in production, a 0600 file elsewhere, reused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-keys-'));
  assert.throws(
    () => loadAuditKeys({ mode: 'production', dataDir: dir }),
    (e: Error) => e instanceof ConfigError && /AUDIT_SIGNING_KEY/.test(e.message),
  );
  assert.throws(
    () => loadAuditKeys({ mode: 'production', dataDir: dir, signingKey: randomBytes(16).toString('base64') }),
    /32 bytes/,
  );
  const a = loadAuditKeys({ mode: 'development', dataDir: dir });
  assert.equal(statSync(join(dir, 'keys', 'audit-signing.key')).mode & 0o777, 0o600);
  const b = loadAuditKeys({ mode: 'development', dataDir: dir });
  assert.equal(a.keyId, b.keyId, 'the same key on the next start');
  const sig = a.sign(Buffer.from('head'));
  assert.ok(verifySignature(b.publicKey, Buffer.from('head'), sig));
  assert.ok(!verifySignature(auditKeysFromSeed(randomBytes(32)).publicKey, Buffer.from('head'), sig));
  assert.notDeepEqual(a.mac('x'), auditKeysFromSeed(randomBytes(32)).mac('x'));
});

test('retired public keys stay trusted for old heads', () => {
  const old = auditKeysFromSeed(randomBytes(32));
  const cur = auditKeysFromSeed(randomBytes(32), [old.publicKey.toString('base64')]);
  assert.deepEqual([...cur.trusted.keys()].sort(), [cur.keyId, old.keyId].sort());
  assert.throws(() => auditKeysFromSeed(randomBytes(32), ['c2hvcnQ=']), /AUDIT_TRUSTED_PUBLIC_KEYS/);
});

test('identity and audit settings: PCI DSS limits can be tightened, never loosened', () => {
  for (const [env, name] of [
    [{ SESSION_IDLE_MINUTES: '30' }, 'SESSION_IDLE_MINUTES'],
    [{ LOCKOUT_THRESHOLD: '11' }, 'LOCKOUT_THRESHOLD'],
    [{ LOCKOUT_MINUTES: '10' }, 'LOCKOUT_MINUTES'],
    [{ OPERATOR_INACTIVE_DAYS: '120' }, 'OPERATOR_INACTIVE_DAYS'],
    [{ AUDIT_RETENTION_MONTHS: '6' }, 'AUDIT_RETENTION_MONTHS'],
    [{ AUDIT_ONLINE_MONTHS: '2' }, 'AUDIT_ONLINE_MONTHS'],
    [{ AUDIT_EXPORT: 's3' }, 'AUDIT_S3_BUCKET'],
    [{ AUDIT_EXPORT: 'tape' }, 'AUDIT_EXPORT'],
  ] as const) {
    assert.throws(
      () => loadConfig({ NODE_ENV: 'test', ...env }),
      (e: Error) => e instanceof ConfigError && e.message.includes(name),
      JSON.stringify(env),
    );
  }
  const c = loadConfig({ NODE_ENV: 'test', SESSION_IDLE_MINUTES: '10', AUDIT_ONLINE_MONTHS: '6' });
  assert.equal(c.identity.sessionIdleMinutes, 10);
  assert.equal(c.audit.onlineMonths, 6);
});

test('S3 audit export needs AWS credentials: static keys or web identity (IRSA)', () => {
  const s3 = { NODE_ENV: 'test', AUDIT_EXPORT: 's3', AUDIT_S3_BUCKET: 'tp-audit', AUDIT_S3_REGION: 'ap-south-1' };
  assert.throws(
    () => loadConfig(s3),
    (e: Error) => e instanceof ConfigError && /AWS_WEB_IDENTITY_TOKEN_FILE/.test(e.message),
  );
  assert.throws(() => loadConfig({ ...s3, AWS_ROLE_ARN: 'arn:aws:iam::111122223333:role/x' }), ConfigError);
  assert.equal(loadConfig({ ...s3, AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'x' }).audit.export.target, 's3');
  const irsa = loadConfig({
    ...s3,
    AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token',
    AWS_ROLE_ARN: 'arn:aws:iam::111122223333:role/x',
  });
  assert.deepEqual(irsa.audit.export.s3, {
    bucket: 'tp-audit',
    region: 'ap-south-1',
    endpoint: undefined,
    prefix: 'audit/',
  });
});
