import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../config.ts';
import { DEFAULT_VPA_PATTERN } from '../../platform/mask.ts';
import { canonicalCustomer, createCustomerHasher, loadCustomerKey, normalizePhone } from './customers.ts';

// Customer identity: what is hashed, with which key, and where the key comes from.

const vpaRe = new RegExp(DEFAULT_VPA_PATTERN);

test('a VPA or an Indian mobile number, normalised before hashing', () => {
  assert.equal(canonicalCustomer({ vpa: 'Ravi.Kumar@OkAxis' }, vpaRe), 'vpa:ravi.kumar@okaxis');
  for (const p of ['9876543210', '+91 98765 43210', '09876543210', '91-98765-43210'])
    assert.equal(normalizePhone(p), '+919876543210', p);
  for (const p of ['12345', '5876543210', '+1 415 555 0100', '98765432101'])
    assert.throws(() => normalizePhone(p), { code: 'validation_failed' }, p);
  assert.throws(() => canonicalCustomer({}, vpaRe), { code: 'validation_failed' });
  assert.throws(() => canonicalCustomer({ vpa: 'a@okaxis', phone: '9876543210' }, vpaRe), {
    code: 'validation_failed',
  });
  assert.throws(() => canonicalCustomer({ vpa: 'no-at-sign' }, vpaRe), { code: 'invalid_vpa' });
});

test('the hash is keyed: the same VPA under another key is another customer', () => {
  const a = createCustomerHasher(Buffer.alloc(32, 1));
  const b = createCustomerHasher(Buffer.alloc(32, 2));
  assert.deepEqual(a('vpa:x@okaxis'), a('vpa:x@okaxis'));
  assert.notDeepEqual(a('vpa:x@okaxis'), b('vpa:x@okaxis'));
  assert.equal(a('vpa:x@okaxis').length, 32);
  assert.throws(() => createCustomerHasher(Buffer.alloc(16)), /at least 32 bytes/);
});

test('the key: configured, required in production, else a 0600 file in the data dir', () => {
  const key = Buffer.alloc(32, 9);
  assert.equal(loadCustomerKey(key, '/nonexistent', 'production'), key);
  assert.throws(
    () => loadCustomerKey(undefined, '/nonexistent', 'production'),
    (e: Error) => e instanceof ConfigError && /REWARDS_CUSTOMER_KEY/.test(e.message),
  );
  const dir = mkdtempSync(join(tmpdir(), 'tp-rewards-key-'));
  const first = loadCustomerKey(undefined, dir, 'development');
  assert.equal(first.length, 32);
  assert.equal(statSync(join(dir, 'rewards-customer.key')).mode & 0o777, 0o600);
  assert.deepEqual(loadCustomerKey(undefined, dir, 'development'), first, 'the same key next time');
  assert.deepEqual(Buffer.from(readFileSync(join(dir, 'rewards-customer.key'), 'utf8').trim(), 'base64'), first);
  // Hex or base64 from the environment; too short or not a key is refused, naming the setting.
  assert.deepEqual(
    loadConfig({ NODE_ENV: 'test', REWARDS_CUSTOMER_KEY: 'ab'.repeat(32) }).rewards.customerKey,
    Buffer.alloc(32, 0xab),
  );
  assert.equal(
    loadConfig({ NODE_ENV: 'test', REWARDS_CUSTOMER_KEY: Buffer.alloc(40, 5).toString('base64') }).rewards.customerKey
      ?.length,
    40,
  );
  for (const bad of ['ab'.repeat(16), 'not a key!', Buffer.alloc(16).toString('base64')]) {
    assert.throws(
      () => loadConfig({ NODE_ENV: 'test', REWARDS_CUSTOMER_KEY: bad }),
      (e: Error) => e instanceof ConfigError && /REWARDS_CUSTOMER_KEY/.test(e.message),
      bad,
    );
  }
});
