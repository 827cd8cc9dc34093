import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Db } from '../../platform/db.ts';
import { systemClock, type Clock } from '../../platform/clock.ts';
import { DEFAULT_VPA_PATTERN } from '../../platform/mask.ts';
import { createVault } from './vault.ts';
import { createLocalKeyManager } from './kms/local.ts';
import type { EncryptedField } from './fields.ts';

/**
 * A real vault for tests that build services by hand: a local keyring in a fresh temporary
 * directory (generated now, never committed), data keys created.
 */
export async function createTestVault(
  db: Db,
  o: { fields?: EncryptedField[]; clock?: Clock; cacheTtlMs?: number } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'tp-test-keyring-'));
  const vault = createVault({
    db,
    kms: createLocalKeyManager({ kind: 'file', path: join(dir, 'keyring.json'), createIfMissing: true }),
    clock: o.clock ?? systemClock,
    config: {
      cacheTtlMs: o.cacheTtlMs ?? 60_000,
      rewrapBatchSize: 500,
      cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 },
    },
    fields: o.fields ?? [],
    vpaPattern: new RegExp(DEFAULT_VPA_PATTERN),
  });
  await vault.init();
  return vault;
}
