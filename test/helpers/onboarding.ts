import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDb } from '../../src/platform/testing.ts';
import { systemClock } from '../../src/platform/clock.ts';
import { DEFAULT_VPA_PATTERN } from '../../src/platform/mask.ts';
import { createLedgerService } from '../../src/modules/ledger/index.ts';
import { createMerchantsService, MERCHANT_ENCRYPTED_FIELDS } from '../../src/modules/merchants/index.ts';
import { createRewardsService } from '../../src/modules/rewards/index.ts';
import { createTestVault } from '../../src/modules/vault/index.ts';
import { PAYER_VPA_FIELD } from '../../src/modules/payments/index.ts';
import { createLogger } from '../../src/platform/log.ts';
import { auditKeysFromSeed, createAuditWriter } from '../../src/modules/audit/index.ts';
import {
  createOnboardingService,
  loadMapping,
  withConstants,
  defaultMappingName,
  HISTORY_PAYER_VPA_FIELD,
  type ImportInput,
  type ImportKind,
} from '../../src/modules/onboarding/index.ts';
import type { Principal } from '../../src/platform/principal.ts';

// An onboarding world for tests: a test database, a real vault (settlement accounts sealed as the
// API seals them), the ledger, the rewards service (a coalition program to import balances into)
// and the onboarding service, with a signed audit trail.

export const SAMPLES = join(import.meta.dirname, '../../docs/samples/import');
export const platform: Principal = { kind: 'api_key', id: 'key_test', merchantId: null, permissions: new Set() };

export async function onboardingWorld() {
  const db = await createTestDb();
  // Payer VPAs of payment history are sealed with the payments module's keys (same purpose).
  const vault = await createTestVault(db, {
    fields: [...MERCHANT_ENCRYPTED_FIELDS, PAYER_VPA_FIELD, HISTORY_PAYER_VPA_FIELD],
  });
  const ledger = createLedgerService();
  const vpaPattern = new RegExp(DEFAULT_VPA_PATTERN);
  const customerKey = Buffer.alloc(32, 7);
  const audit = createAuditWriter({ keys: auditKeysFromSeed(Buffer.alloc(32, 1)), clock: systemClock });
  const merchants = createMerchantsService({
    db,
    bankCodes: ['SIMBANK', 'SIMBANK2'],
    vpaPattern,
    fields: vault.cipher,
  });
  const rewards = createRewardsService({
    db,
    ledger,
    clock: systemClock,
    logger: createLogger({ level: 'silent' }),
    merchants,
    vpaPattern,
    batchSize: 100,
    customerKey,
  });
  const onboarding = createOnboardingService({
    db,
    ledger,
    fields: vault.cipher,
    vpaPattern,
    bankCodes: ['SIMBANK', 'SIMBANK2'],
    customerKey,
    audit,
    clock: systemClock,
  });
  const coalition = await rewards.createProgram(platform, {
    name: 'Namma Rewards',
    point_value_paise: 25,
    earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
    validity_days: 365,
  });

  /** Imports a file (by path, or its text) the way the command does: hashed, then streamed. */
  async function importFile(
    kind: ImportKind,
    file: string | { text: string; format?: 'csv' | 'jsonl' },
    o: Partial<ImportInput> & { mappingName?: string; constants?: Record<string, string> } = {},
  ) {
    const isText = typeof file !== 'string';
    const format = isText ? (file.format ?? 'csv') : file.endsWith('.jsonl') ? 'jsonl' : 'csv';
    let mapping = loadMapping(o.mappingName ?? defaultMappingName(kind, format));
    if (o.constants) mapping = withConstants(mapping, o.constants);
    const bytes = isText ? Buffer.from(file.text) : readFileSync(file);
    return onboarding.run({
      kind,
      mapping,
      open: () => (isText ? [bytes] : createReadStream(file, { highWaterMark: 64 })),
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
      actor: { type: 'cli', id: 'tester', merchant_id: null },
      ...o,
    });
  }

  return { db, vault, ledger, rewards, onboarding, coalition, importFile, close: () => db.close() };
}
