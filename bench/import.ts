// Bulk onboarding benchmark: `npm run bench:import [-- options]`.
//
// The fleet: 153,000 merchants, ~450,000 stores, ~450,000 terminals (target: all three in
// under 10 minutes, with memory that does not grow with the file) and 1,000,000 reward opening
// balances with the points ledger verified after. `--scale 0.1` runs a tenth of each. Then the
// fleet's payment history (`tillpoint import payments`: payments, refunds, points earned and
// redeemed; --payments, --history-days), reported as rows (payments and refunds) per second.
//
// The fleet is written as CSV files first (src/modules/onboarding/fleet.ts, not timed), then each
// file is imported in-process by the onboarding service, exactly as `tillpoint import` does
// (hash, stream, map, validate, batches of 1000 in their own transactions, external references,
// settlement accounts sealed by a real vault, opening balances posted to the PTS book). RSS is
// sampled every 250 ms; the figures per kind are rows per second, the peak RSS, and the RSS at
// 25 / 50 / 75 / 100 % of the file (flat when memory does not grow with the file). Then
// `ledger verify` and `rewards verify` run over the whole database, timed. Prints one JSON line,
// appended to bench/results/import.jsonl.

import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { appendFileSync, createReadStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startBenchPostgres } from './lib/postgres.ts';
import { ROOT } from './lib/procs.ts';
import { round } from './lib/load.ts';
import { createPgDb } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { DEFAULT_VPA_PATTERN } from '../src/platform/mask.ts';
import { createLogger } from '../src/platform/log.ts';
import { systemClock } from '../src/platform/clock.ts';
import { createLedgerService, runLedgerVerify } from '../src/modules/ledger/index.ts';
import { createMerchantsService, MERCHANT_ENCRYPTED_FIELDS } from '../src/modules/merchants/index.ts';
import { createRewardsService, runRewardsVerify } from '../src/modules/rewards/index.ts';
import { createVault, createLocalKeyManager } from '../src/modules/vault/index.ts';
import { PAYER_VPA_FIELD } from '../src/modules/payments/index.ts';
import {
  createOnboardingService,
  defaultMappingName,
  HISTORY_PAYER_VPA_FIELD,
  loadMapping,
  withConstants,
  type ImportKind,
  writeFleet,
} from '../src/modules/onboarding/index.ts';

import type { Principal } from '../src/platform/principal.ts';

const USAGE = `Usage: npm run bench:import -- [options]

  --scale X       fraction of the full fleet (153,000 merchants, ~450,000 stores and terminals,
                  1,000,000 reward balances); default 1
  --payments N    payment history to generate and import (about; refunds come on top); default
                  2,000,000 × scale; 0 skips it
  --history-days D  days the history spans (default 90)
  --batch-size N  rows per transaction (default 1000)
  --pool-size N   database pool (default 4)
  --results FILE  where to append the JSON line (default bench/results/import.jsonl)
  --no-save       print the JSON line only
  --label TEXT    free text stored with the result
  --help          this text

Environment: DATABASE_URL (a database of the benchmark's own is created there and dropped), else a
throwaway cluster from /usr/lib/postgresql/*/bin.`;

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    'batch-size': { type: 'string', default: '1000' },
    payments: { type: 'string' },
    'history-days': { type: 'string', default: '90' },
    'pool-size': { type: 'string', default: '4' },
    results: { type: 'string', default: join(ROOT, 'bench/results/import.jsonl') },
    'no-save': { type: 'boolean', default: false },
    label: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const scale = Number(args.scale);
if (!(scale > 0 && scale <= 10)) {
  process.stderr.write('--scale must be a number above 0 and at most 10\n');
  process.exit(2);
}
const batchSize = Number(args['batch-size']);
const paymentsWanted = args.payments === undefined ? Math.round(2_000_000 * scale) : Number(args.payments);
const historyDays = Number(args['history-days']);
if (!Number.isInteger(paymentsWanted) || paymentsWanted < 0 || !Number.isInteger(historyDays) || historyDays < 1) {
  process.stderr.write('--payments must be a whole number (0 skips history) and --history-days at least 1\n');
  process.exit(2);
}
const log = (s: string) => process.stderr.write(`${s}\n`);

let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 250);
const mb = (b: number) => round(b / 1048576, 1);

const pgSrv = await startBenchPostgres({ databaseUrl: process.env.DATABASE_URL, log });
const dir = mkdtempSync(join(tmpdir(), 'tillpoint-bench-import-'));
const result: Record<string, unknown> = {
  bench: 'import',
  at: new Date().toISOString(),
  commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim(),
  label: args.label,
  machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg_1m_at_start: round(loadavg()[0], 2) },
  postgres: { source: pgSrv.source, ...pgSrv.settings },
  scale,
  batch_size: batchSize,
};
try {
  const db = createPgDb(pgSrv.url, Number(args['pool-size']));
  await migrate(db);
  const vault = createVault({
    db,
    kms: createLocalKeyManager({ kind: 'file', path: join(dir, 'keyring.json'), createIfMissing: true }),
    clock: systemClock,
    config: { cacheTtlMs: 60_000, rewrapBatchSize: 500, cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 } },
    fields: [...MERCHANT_ENCRYPTED_FIELDS, PAYER_VPA_FIELD, HISTORY_PAYER_VPA_FIELD],
    vpaPattern: new RegExp(DEFAULT_VPA_PATTERN),
  });
  await vault.init();
  const ledger = createLedgerService();
  const vpaPattern = new RegExp(DEFAULT_VPA_PATTERN);
  const customerKey = Buffer.alloc(32, 0x5a);
  const bankCodes = ['SIMBANK', 'SIMBANK2'];
  const platform: Principal = { kind: 'api_key', id: 'bench', merchantId: null, permissions: new Set() };
  const rewards = createRewardsService({
    db,
    ledger,
    clock: systemClock,
    logger: createLogger({ level: 'silent' }),
    merchants: createMerchantsService({ db, bankCodes, vpaPattern, fields: vault.cipher }),
    vpaPattern,
    batchSize: 100,
    customerKey,
  });
  const program = await rewards.createProgram(platform, {
    name: 'Bench Coalition',
    point_value_paise: 25,
    earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
    validity_days: 730,
  });
  const onboarding = createOnboardingService({
    db,
    ledger,
    fields: vault.cipher,
    vpaPattern,
    bankCodes,
    customerKey,
    clock: systemClock,
  });

  const t0 = performance.now();
  const merchants = Math.max(1, Math.round(153_000 * scale));
  // Terminals expected (2.94 a merchant) × days × the weekday weights' mean (1.057) give the rate.
  const perTerminalDay = paymentsWanted / (merchants * 2.94 * historyDays * 1.057);
  const fleet = await writeFleet({
    dir,
    merchants,
    balances: Math.max(1, Math.round(1_000_000 * scale)),
    history: paymentsWanted > 0 ? { days: historyDays, perTerminalDay } : undefined,
  });
  log(
    `fleet files: ${fleet.counts.merchants} merchants, ${fleet.counts.stores} stores, ${fleet.counts.terminals} terminals, ${fleet.counts.balances} balances (${round((performance.now() - t0) / 1000, 1)} s to write)`,
  );
  result.counts = { ...fleet.counts, history: fleet.history };

  const phases: Record<string, unknown> = {};
  const run = async (kind: ImportKind, file: string, constants: Record<string, string> = {}) => {
    const bytes = statSync(file).size;
    const h = createHash('sha256');
    for await (const c of createReadStream(file)) h.update(c as Buffer);
    const sha256 = h.digest('hex');
    peakRss = process.memoryUsage().rss;
    const rssAt: number[] = [];
    let nextMark = 0.25;
    const start = performance.now();
    const report = await onboarding.run({
      kind,
      mapping: withConstants(loadMapping(defaultMappingName(kind, 'csv')), constants),
      open: () => createReadStream(file, { highWaterMark: 256 * 1024 }),
      sha256,
      bytes,
      actor: { type: 'cli', id: 'bench', merchant_id: null },
      batchSize,
      onProgress: (p) => {
        const frac = p.bytesRead / p.bytesTotal;
        while (frac >= nextMark && nextMark <= 1) {
          rssAt.push(mb(process.memoryUsage().rss));
          nextMark += 0.25;
        }
        if (p.rows % (batchSize * 20) === 0)
          log(
            `  ${kind}: ${p.rows} rows, ${round((performance.now() - start) / 1000, 1)} s, rss ${mb(process.memoryUsage().rss)} MB`,
          );
      },
    });
    const secs = (performance.now() - start) / 1000;
    const phase = {
      rows: report.rows,
      created: report.created,
      rejected: report.rejected,
      seconds: round(secs, 1),
      rows_per_second: Math.round(report.rows / secs),
      peak_rss_mb: mb(peakRss),
      rss_mb_at_25_50_75_100: rssAt,
      reconciliation_matched: `${report.reconciliation?.matched}/${report.reconciliation?.merchants}`,
      reconciliation_totals: report.reconciliation?.totals,
      status: report.status,
    };
    log(`${kind}: ${JSON.stringify(phase)}`);
    phases[kind] = phase;
    return secs;
  };
  const fleetSecs =
    (await run('merchants', fleet.merchants, { program_id: program.id })) +
    (await run('stores', fleet.stores)) +
    (await run('terminals', fleet.terminals));
  result.fleet_seconds = round(fleetSecs, 1);
  result.fleet_rows_per_second = Math.round(
    (fleet.counts.merchants + fleet.counts.stores + fleet.counts.terminals) / fleetSecs,
  );
  await run('reward-balances', fleet.rewardBalances);
  if (fleet.payments) {
    const secs = await run('payments', fleet.payments);
    result.payments_per_second = Math.round(fleet.history!.payments / secs);
    result.history_rows_per_second = Math.round((fleet.history!.payments + fleet.history!.refunds) / secs);
  }
  result.phases = phases;

  const v0 = performance.now();
  const lv = await runLedgerVerify(db);
  const v1 = performance.now();
  const rv = await runRewardsVerify(db);
  const v2 = performance.now();
  result.verify = {
    ledger_ok: lv.ok,
    ledger_seconds: round((v1 - v0) / 1000, 1),
    rewards_ok: rv.ok,
    rewards_seconds: round((v2 - v1) / 1000, 1),
    rewards_checked: rv.checked,
  };
  log(`ledger verify: ${lv.ok ? 'ok' : 'FAILED'}; rewards verify: ${rv.ok ? 'ok' : 'FAILED'}`);
  result.peak_rss_mb = mb(peakRss);
  result.loadavg_1m_at_end = round(loadavg()[0], 2);
  vault.close();
  await db.close();
} finally {
  clearInterval(sampler);
  rmSync(dir, { recursive: true, force: true });
  await pgSrv.stop();
}
const line = JSON.stringify(result);
process.stdout.write(`${line}\n`);
if (!args['no-save']) {
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  appendFileSync(args.results!, `${line}\n`);
}
