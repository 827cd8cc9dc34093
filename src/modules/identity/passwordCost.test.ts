import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SettingsContext } from '../../platform/settings.ts';
import { identitySettings } from './identity.settings.ts';

// The test suite hashes passwords with a cheap argon2id cost (NODE_ENV=test: 1 MiB, one pass) so
// that signing in does not dominate a test file's CPU (docs/testing.md). That cheapness must never
// reach a real installation: outside test mode the defaults are OWASP's floor, and production
// refuses anything below it.

const ctx = (mode: SettingsContext['mode']): SettingsContext => ({
  mode,
  host: '127.0.0.1',
  port: 3000,
  dataDir: '/nonexistent',
  selfUrl: 'http://127.0.0.1:3000',
});

test('production and development hash with the OWASP argon2id floor by default; only test mode is cheaper', () => {
  assert.deepEqual(identitySettings.load({}, ctx('production')).identity.passwordHash, {
    memoryKib: 19_456,
    timeCost: 2,
  });
  assert.deepEqual(identitySettings.load({}, ctx('development')).identity.passwordHash, {
    memoryKib: 19_456,
    timeCost: 2,
  });
  assert.deepEqual(identitySettings.load({}, ctx('test')).identity.passwordHash, { memoryKib: 1024, timeCost: 1 });
});

test('production refuses a password-hash cost below the floor, even when set on purpose', () => {
  assert.throws(
    () => identitySettings.load({ PASSWORD_HASH_MEMORY_KIB: '1024' }, ctx('production')),
    /PASSWORD_HASH_MEMORY_KIB: must be between 19456/,
  );
  assert.throws(
    () => identitySettings.load({ PASSWORD_HASH_TIME_COST: '1' }, ctx('production')),
    /PASSWORD_HASH_TIME_COST: must be between 2/,
  );
});
