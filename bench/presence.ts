// Terminal presence at fleet scale: what the gateway's batched writes (src/modules/terminals/
// presence.ts) cost the database, and what the console's reads of them cost, with --terminals
// terminals (default 450,000).
//
//   node --import tsx bench/presence.ts [--terminals 450000] [--batch 5000]
//
// 1. connect storm: every terminal goes online, written in batches of --batch (the most one
//    statement carries; first write of each row = inserts);
// 2. a failover's worth of changes: --batch terminals go offline and --batch others online, one
//    statement (updates);
// 3. last_seen for --batch terminals (requests), one statement;
// 4. the Overview's counts (GET /v1/terminals/presence's query) and the first page of the online
//    filter through the API.
// With TEST_DATABASE_URL the server is PostgreSQL, otherwise PGlite. Terminals are inserted with
// one SQL statement; this database is for this benchmark only. Prints one JSON line and appends it
// to bench/results/presence.jsonl.
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import os from 'node:os';
import { startTestApp } from '../test/helpers/harness.ts';
import { createLogger } from '../src/platform/log.ts';
import { createPresenceWriter } from '../src/modules/terminals/presence.ts';
import { presenceCounts } from '../src/modules/terminals/presence.repo.ts';

const { values } = parseArgs({
  options: { terminals: { type: 'string', default: '450000' }, batch: { type: 'string', default: '5000' } },
});
const N = Number(values.terminals);
const B = Number(values.batch);
const load = () => os.loadavg().map((l) => Number(l.toFixed(1)));
const loadBefore = load();

const t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
const { merchant, store } = await t.seedMerchant('Fleet Bench');
const seedStarted = performance.now();
await t.db.query(
  `INSERT INTO merchants.terminals (id, merchant_id, store_id, label)
   SELECT 'trm_' || lpad(to_hex(i), 32, '0'), $1, $2, 'bench ' || i FROM generate_series(1, $3::int) i`,
  [merchant.id, store.id, N],
);
await t.db.query('ANALYZE merchants.terminals');
const seedSeconds = (performance.now() - seedStarted) / 1000;
const id = (i: number) => `trm_${i.toString(16).padStart(32, '0')}`;

let rowsWritten = 0;
const statements: number[] = [];
const writer = createPresenceWriter({
  db: t.db,
  logger: createLogger({ level: 'silent' }),
  source: 'external',
  flushMs: 3_600_000,
  lastSeenEveryMs: 0,
  onFlush: (rows, ms) => {
    rowsWritten += rows;
    statements.push(ms);
  },
});
const since = Date.now() - 3_600_000;

// 1. Connect storm.
const stormStarted = performance.now();
for (let start = 1; start <= N; start += B) {
  for (let i = start; i < Math.min(start + B, N + 1); i++) writer.status(id(i), true, since);
  await writer.flush();
}
const stormSeconds = (performance.now() - stormStarted) / 1000;
const insertMs = [...statements].sort((a, b) => a - b);
await t.db.query('ANALYZE terminals.presence');

// 2. One statement of changes: B/2 offline, B/2 reconnected (online with a later since).
const timed = async (fill: () => void) => {
  fill();
  const s = performance.now();
  await writer.flush();
  return Math.round(performance.now() - s);
};
const flipMs: number[] = [];
for (let r = 0; r < 5; r++)
  flipMs.push(
    await timed(() => {
      const base = 1 + ((r * B) % Math.max(1, N - B));
      for (let i = base; i < base + B / 2; i++) writer.status(id(i), false, since);
      for (let i = base + B / 2; i < base + B; i++) writer.status(id(i), true, since + 1000 + r);
    }),
  );
// 3. last_seen for B terminals.
const seenMs: number[] = [];
for (let r = 0; r < 5; r++) {
  await new Promise((res) => setTimeout(res, 5));
  seenMs.push(
    await timed(() => {
      const base = 1 + ((r * B) % Math.max(1, N - B));
      for (let i = base; i < base + B; i++) writer.seen(id(i));
    }),
  );
}
await writer.close();

// 4. Reads.
const countMs: number[] = [];
const listMs: number[] = [];
let counts: Awaited<ReturnType<typeof presenceCounts>> | undefined;
for (let r = 0; r < 5; r++) {
  let s = performance.now();
  counts = await presenceCounts(t.db, null);
  countMs.push(Math.round(performance.now() - s));
  s = performance.now();
  const page = await t.request('GET', '/v1/terminals?online=true&limit=100');
  if (page.status !== 200 || page.body.data.length !== 100) throw new Error(`list: ${page.status}`);
  listMs.push(Math.round(performance.now() - s));
}
await t.close();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const result = {
  bench: 'presence',
  at: new Date().toISOString(),
  database: process.env.TEST_DATABASE_URL ? 'postgresql' : 'pglite',
  node: process.version,
  terminals: N,
  batch: B,
  seed_seconds: Number(seedSeconds.toFixed(1)),
  connect_storm: {
    seconds: Number(stormSeconds.toFixed(1)),
    rows_per_second: Math.round(N / stormSeconds),
    statement_ms_median: Math.round(median(insertMs)),
    statement_ms_max: Math.round(insertMs[insertMs.length - 1]),
  },
  changes_statement_ms: { median: median(flipMs), max: Math.max(...flipMs) },
  last_seen_statement_ms: { median: median(seenMs), max: Math.max(...seenMs) },
  counts_ms: { median: median(countMs), max: Math.max(...countMs) },
  online_list_page_ms: { median: median(listMs), max: Math.max(...listMs) },
  counts,
  rows_written: rowsWritten,
  load_before: loadBefore,
  load_after: load(),
  cpus: os.cpus().length,
};
process.stdout.write(JSON.stringify(result) + '\n');
appendFileSync(new URL('./results/presence.jsonl', import.meta.url), JSON.stringify(result) + '\n');
