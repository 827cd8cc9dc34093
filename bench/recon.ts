// Reconciliation benchmark: `npm run bench:recon [-- options]`. See bench/README.md.
//
// Generates a bank settlement file of --lines lines (SIMBANK's CSV) against as many payments of
// ours (written straight into payments.payments with generate_series), with a sprinkle of
// discrepancies (amounts off by a paisa, rows missing, rows twice, rows we do not have), then
// times one `ingest` of it: hashing, streaming parse, batched inserts and every matching rule,
// in one transaction, as `tillpoint recon ingest` runs it. Prints one JSON line on stdout
// (lines per second, peak RSS of this process) and appends it to bench/results/recon.jsonl;
// progress goes to stderr. Targets (issue 15): >= 50,000 lines/s and < 300 MB.

import { createWriteStream, createReadStream, appendFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { createPgDb, createPgliteDb, type Db } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { auditKeysFromSeed, createAuditWriter } from '../src/modules/audit/index.ts';
import { createReconService } from '../src/modules/settlement/recon/index.ts';
import { formatRupees } from '../src/platform/money.ts';
import { startBenchPostgres, type BenchPostgres } from './lib/postgres.ts';

const USAGE = `Usage: npm run bench:recon -- [options]

  --lines N        lines in the bank file, and payments of ours (default 1000000)
  --pglite         run on PGlite in memory instead of PostgreSQL (its memory then counts in RSS)
  --results FILE   where to append the JSON line (default bench/results/recon.jsonl)
  --no-save        print the JSON line only
  --label TEXT     free text stored with the result
  --trace          print each statement of the ingestion that takes over 100 ms (stderr); with
                   BENCH_RECON_EXPLAIN=1 the plans of those over 2 s, with =analyze the EXPLAIN
                   ANALYZE of those over 1 s (BENCH_RECON_EXPLAIN_MS to change it; each then runs
                   twice: the figures are not comparable)
  --help           this text

Environment: DATABASE_URL (use that server; a database of the benchmark's own is created on it and
dropped afterwards); without it a throwaway PostgreSQL cluster is started (Debian's postgresql).`;

const { values: o } = parseArgs({
  options: {
    lines: { type: 'string', default: '1000000' },
    pglite: { type: 'boolean', default: false },
    results: { type: 'string', default: 'bench/results/recon.jsonl' },
    'no-save': { type: 'boolean', default: false },
    label: { type: 'string' },
    trace: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const N = Number(o.lines);
if (!Number.isSafeInteger(N) || N < 1000) throw new Error('--lines must be an integer >= 1000');
const log = (s: string) => process.stderr.write(`bench:recon: ${s}\n`);

// Discrepancies, every K-th payment: deterministic, so each run does the same work.
const OFF_EVERY = 1000; // amount one paisa over
const MISSING_EVERY = 1500; // not in the file
const TWICE_EVERY = 2000; // in the file twice
const EXTRA_EVERY = 2500; // a line we do not have

let pgServer: BenchPostgres | undefined;
let db: Db;
if (o.pglite) {
  db = await createPgliteDb();
} else {
  pgServer = await startBenchPostgres({ databaseUrl: process.env.DATABASE_URL, log });
  db = createPgDb(pgServer.url, 4);
}
const work = mkdtempSync(join(tmpdir(), 'tillpoint-bench-recon-'));
try {
  await migrate(db);
  const base = new Date('2026-12-03T03:30:00Z'); // 09:00 IST
  log(`seeding ${N.toLocaleString('en-IN')} payments`);
  const seedStart = performance.now();
  // Ids and txn refs are made from the row number, so the file below can name them without a read.
  for (let from = 1; from <= N; from += 200_000) {
    const to = Math.min(N, from + 199_999);
    await db.query(
      `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status, bank_code,
                                     bank_ref, expires_at, created_at, updated_at, completed_at)
       SELECT 'pay_' || lpad(to_hex(i), 32, '0'), 'TP' || upper(lpad(to_hex(i), 32, '0')), 'mer_bench' || (i % 500), 'sto_bench', 'trm_bench',
              'upi_qr', 100 + (i % 100000), 'INR', 'succeeded', 'SIMBANK', (100000000000 + i)::text,
              $3::timestamptz + make_interval(secs => i * 0.05 + 300), $3::timestamptz + make_interval(secs => i * 0.05),
              $3::timestamptz + make_interval(secs => i * 0.05), $3::timestamptz + make_interval(secs => i * 0.05)
         FROM generate_series($1::int, $2::int) AS i`,
      [from, to, base],
    );
  }
  await db.query('ANALYZE payments.payments');
  log(`seeded in ${((performance.now() - seedStart) / 1000).toFixed(1)} s; writing the file`);

  const file = join(work, 'SIMBANK_SETTLEMENT_20261203_C1.csv');
  const out = createWriteStream(file);
  const ist = (ms: number) => {
    const t = new Date(ms + 330 * 60_000);
    const p = (n: number) => String(n).padStart(2, '0');
    return `${p(t.getUTCDate())}-${p(t.getUTCMonth() + 1)}-${t.getUTCFullYear()} ${p(t.getUTCHours())}:${p(t.getUTCMinutes())}:${p(t.getUTCSeconds())}`;
  };
  let lines = 0;
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write('TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION\n');
  for (let i = 1; i <= N; i++) {
    if (i % MISSING_EVERY === 0) continue;
    const hex = i.toString(16).padStart(32, '0').toUpperCase();
    const amount = 100 + (i % 100000) + (i % OFF_EVERY === 0 ? 1 : 0);
    const row = `TP${hex},${100000000000 + i},${formatRupees(amount)},CR,${ist(base.getTime() + i * 50)},UPI COLLECTION\n`;
    await write(row);
    lines++;
    if (i % TWICE_EVERY === 0) {
      await write(row);
      lines++;
    }
    if (i % EXTRA_EVERY === 0) {
      await write(
        `SIMX${i},${900000000000 + i},${formatRupees(1000 + i)},CR,${ist(base.getTime() + i * 50)},UPI COLLECTION\n`,
      );
      lines++;
    }
  }
  await write('TOTAL,,0.00,CR,,\n');
  out.end();
  await once(out, 'finish');
  log(
    `file: ${lines.toLocaleString('en-IN')} lines, ${(statSync(file).size / 1e6).toFixed(1)} MB; ingesting and matching`,
  );

  if (o.trace) {
    const inner = db;
    const timed = (q: Pick<Db, 'query'>) => async (sql: string, params?: unknown[]) => {
      // With =analyze, each statement of the matching (not the staging inserts) runs first under
      // EXPLAIN ANALYZE in a savepoint that is rolled back, then for real; the plan is printed
      // when the real run took over 1 s.
      let plan: string | undefined;
      if (
        process.env.BENCH_RECON_EXPLAIN === 'analyze' &&
        /^\s*(WITH|INSERT|UPDATE|DELETE|SELECT)/.test(sql) &&
        !/recon_stage \(line_no/.test(sql)
      ) {
        await q.query('SAVEPOINT bench_explain');
        const r = await q.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params);
        await q.query('ROLLBACK TO SAVEPOINT bench_explain');
        plan = r.rows.map((x) => x['QUERY PLAN']).join('\n');
      }
      const t = performance.now();
      const r = await q.query(sql, params);
      const ms = performance.now() - t;
      if (ms > 100) log(`${Math.round(ms)} ms  ${sql.replace(/\s+/g, ' ').slice(0, 110)}`);
      if (plan && ms > Number(process.env.BENCH_RECON_EXPLAIN_MS ?? 1000)) log(plan);
      else if (ms > 2000 && process.env.BENCH_RECON_EXPLAIN === '1') {
        const p = await q.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
        log(p.rows.map((x) => x['QUERY PLAN']).join('\n'));
      }
      return r;
    };
    db = {
      ...inner,
      tx: (fn) => inner.tx((tx) => fn({ exec: (s) => tx.exec(s), query: timed(tx) as typeof tx.query })),
    } as Db;
  }
  const clock = fixedClock(new Date('2026-12-04T06:00:00Z'));
  const recon = createReconService({
    db,
    clock,
    audit: createAuditWriter({ keys: auditKeysFromSeed(randomBytes(32)), clock }),
  });
  if (global.gc) global.gc();
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const t0 = performance.now();
  const report = await recon.ingest({
    bankCode: 'SIMBANK',
    open: () => createReadStream(file),
    fileName: 'SIMBANK_SETTLEMENT_20261203_C1.csv',
    actor: { type: 'cli', id: 'bench' },
    onProgress: (n) => {
      if (n % 200_000 === 0)
        log(`${n.toLocaleString('en-IN')} lines parsed (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  if (report.lines !== lines) throw new Error(`ingested ${report.lines} lines of ${lines}`);
  const unresolved = Object.values(report.outcomes).reduce((a, b) => a + b, 0);
  if (unresolved !== lines) throw new Error(`outcomes cover ${unresolved} lines of ${lines}`);
  const result = {
    bench: 'recon',
    at: new Date().toISOString(),
    label: o.label ?? null,
    database: o.pglite
      ? 'pglite'
      : pgServer!.source === 'DATABASE_URL'
        ? 'postgresql (DATABASE_URL)'
        : 'postgresql (throwaway)',
    server_version: pgServer?.settings.server_version ?? null,
    lines,
    seconds: Math.round(seconds * 100) / 100,
    lines_per_second: Math.round(lines / seconds),
    peak_rss_mb: Math.round(peak / 1e6),
    rss_before_mb: Math.round(rssBefore / 1e6),
    outcomes: report.outcomes,
    matched_by_rule: report.matched_by_rule,
    exceptions: report.exceptions,
    machine: { cpus: cpus().length, loadavg_1m: Math.round(loadavg()[0] * 100) / 100, node: process.version },
    targets: { lines_per_second: 50_000, peak_rss_mb: 300 },
  };
  const line = JSON.stringify(result);
  process.stdout.write(`${line}\n`);
  if (!o['no-save']) {
    const path = resolve(o.results!);
    mkdirSync(resolve(path, '..'), { recursive: true });
    appendFileSync(path, `${line}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
  await db.close();
  await pgServer?.stop();
}
