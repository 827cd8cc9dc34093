// `npm run seed:fleet -- --merchants N [--seed S] [--balances N] [--history-days D]
// [--payments-per-day P] [--out DIR]`: a realistic fleet for the console, demos and capacity
// tests, generated as import files and brought in through `tillpoint import` itself
// (src/modules/onboarding): merchants across MCCs and cities in a coalition reward program, their
// stores and terminals, customers' opening balances, and months of payment history (payments,
// refunds, points earned and redeemed; `tillpoint import payments`). Uses
// the same database as every command (TILLPOINT_DATA_DIR or DATABASE_URL). Running it again with
// the same seed changes nothing (every row has its external reference).
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/platform/clock.ts';
import { createLogger } from '../src/platform/log.ts';
import { importCommand, withOnboarding } from '../src/cli/commands/import.ts';
import { writeFleet } from '../src/modules/onboarding/index.ts';

import { createMerchantsService } from '../src/modules/merchants/index.ts';
import { createRewardsService } from '../src/modules/rewards/index.ts';
import type { Principal } from '../src/platform/principal.ts';

const { values } = parseArgs({
  options: {
    merchants: { type: 'string', default: '100' },
    seed: { type: 'string', default: '42' },
    balances: { type: 'string' },
    'history-days': { type: 'string', default: '90' },
    'payments-per-day': { type: 'string', default: '3' },
    out: { type: 'string' },
  },
});
const merchants = Number(values.merchants);
const seed = Number(values.seed);
if (!Number.isInteger(merchants) || merchants < 1 || merchants > 1_000_000) {
  process.stderr.write('--merchants must be an integer from 1 to 1000000\n');
  process.exit(2);
}
const historyDays = Number(values['history-days']);
const perDay = Number(values['payments-per-day']);
if (!Number.isInteger(historyDays) || historyDays < 0 || historyDays > 730) {
  process.stderr.write('--history-days must be an integer from 0 (no history) to 730\n');
  process.exit(2);
}
if (!(perDay > 0 && perDay <= 500)) {
  process.stderr.write('--payments-per-day (per terminal, on average) must be a number above 0 and at most 500\n');
  process.exit(2);
}
const dir = values.out ? resolve(values.out) : mkdtempSync(join(tmpdir(), 'tillpoint-fleet-'));
mkdirSync(dir, { recursive: true });
const fleet = await writeFleet({
  dir,
  merchants,
  seed,
  balances: values.balances === undefined ? undefined : Number(values.balances),
  history: historyDays > 0 ? { days: historyDays, perTerminalDay: perDay } : undefined,
});
process.stderr.write(
  `fleet files in ${dir}: ${fleet.counts.merchants} merchants, ${fleet.counts.stores} stores, ${fleet.counts.terminals} terminals, ${fleet.counts.balances} reward balances` +
    (fleet.history
      ? `, ${historyDays} days of history: ${fleet.history.payments} payments (${fleet.history.succeeded} succeeded), ${fleet.history.refunds} refunds, ${fleet.history.earned} points earned, ${fleet.history.redeemed} redeemed`
      : '') +
    '\n',
);

// The fleet's coalition program (created once, found again on the next run).
const SYSTEM: Principal = { kind: 'api_key', id: 'seed-fleet', merchantId: null, permissions: new Set() };
const programId = await withOnboarding(async (_svc, db, config, { vault, ledger, customerKey }) => {
  const found = await db.query<{ id: string }>(
    `SELECT id FROM rewards.programs WHERE owner_merchant_id IS NULL AND name = 'Fleet Rewards' ORDER BY id LIMIT 1`,
  );
  if (found.rows[0]) return found.rows[0].id;
  const rewards = createRewardsService({
    db,
    ledger,
    clock: systemClock,
    logger: createLogger({ level: 'warn' }),
    merchants: createMerchantsService({
      db,
      bankCodes: config.banks.map((b) => b.code),
      vpaPattern: config.payments.vpaPattern,
      fields: vault.cipher,
    }),
    vpaPattern: config.payments.vpaPattern,
    batchSize: 100,
    customerKey,
  });
  const p = await rewards.createProgram(SYSTEM, {
    name: 'Fleet Rewards',
    point_value_paise: 25,
    earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
    validity_days: 730,
  });
  return p.id;
});

let code = 0;
for (const [kind, file, extra] of [
  ['merchants', fleet.merchants, ['--set', `program_id=${programId}`]],
  ['stores', fleet.stores, []],
  ['terminals', fleet.terminals, []],
  ['reward-balances', fleet.rewardBalances, []],
  ...(fleet.payments ? ([['payments', fleet.payments, []]] as const) : []),
] as const) {
  const rc = await importCommand.run([kind, file, ...extra, '--report-dir', dir]);
  code = Math.max(code, rc ?? 0);
}
process.exit(code);
