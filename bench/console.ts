// The operator console's speed: the JavaScript a first visit downloads (gzipped; target under
// 250 KB) and the time from opening the overview to its first chart drawn with data, with
// --payments payments in the database (target under 1 s with 100,000). Drives Debian's Chromium.
//
//   node --import tsx bench/console.ts [--payments 100000] [--spread-minutes 1440] [--runs 5]
//
// The payments are inserted with one SQL statement (ids carry their creation time, as the API's
// do), spread over --spread-minutes; they have no ledger entries, so this database is for this
// benchmark only. With TEST_DATABASE_URL the server is PostgreSQL, otherwise PGlite. Prints one
// JSON line and appends it to bench/results/console.jsonl.
import { appendFileSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import os from 'node:os';
import { chromium } from 'playwright-core';
import { startTestApp } from '../test/helpers/harness.ts';
import { createOperator } from '../test/helpers/operators.ts';
import { base32Decode, totp } from '../src/modules/identity/index.ts';
import { ensureConsoleBuilt, distDir } from '../console/build.mjs';
import { paymentStats } from '../src/modules/payments/index.ts';

const { values } = parseArgs({
  options: {
    payments: { type: 'string', default: '100000' },
    'spread-minutes': { type: 'string', default: '1440' },
    runs: { type: 'string', default: '5' },
  },
});
const N = Number(values.payments);
const SPREAD = Number(values['spread-minutes']);
const RUNS = Number(values.runs);

await ensureConsoleBuilt();
// 1. What the first visit loads: index.html's scripts and stylesheets (lazy pages excluded).
const html = readFileSync(join(distDir, 'index.html'), 'utf8');
const files = [...html.matchAll(/(?:src|href)="\/console\/(assets\/[^"]+)"/g)].map((m) => m[1]);
const size = (f: string) => gzipSync(readFileSync(join(distDir, f)), { level: 9 }).length;
const js = files.filter((f) => f.endsWith('.js')).reduce((n, f) => n + size(f), 0);
const css = files.filter((f) => f.endsWith('.css')).reduce((n, f) => n + size(f), 0);

// 2. A database with N payments.
const t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
const { terminal } = await t.seedMerchant('Bench Mart');
const seedStarted = Date.now();
await t.db.query(
  `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status, bank_code, expires_at, created_at, updated_at, completed_at)
   SELECT 'pay_' || lpad(to_hex(ms), 12, '0') || lpad(to_hex(i), 20, '0'), 'TP' || upper(lpad(to_hex(ms), 12, '0') || lpad(to_hex(i), 20, '0')),
          $1, $2, $3, 'upi_qr', 100 + (i % 50000), 'INR', st, CASE WHEN i % 2 = 0 THEN 'SIMBANK' ELSE 'SIMBANK2' END,
          to_timestamp(ms / 1000.0) + interval '5 minutes', to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0),
          CASE WHEN st IN ('succeeded', 'failed') THEN to_timestamp(ms / 1000.0) + (2 + i % 20) * interval '1 second' END
     FROM (SELECT i, (extract(epoch FROM now()) * 1000)::bigint - (random() * $5 * 60000)::bigint AS ms,
                  CASE WHEN i % 100 < 90 THEN 'succeeded' WHEN i % 100 < 97 THEN 'failed' ELSE 'pending' END AS st
             FROM generate_series(1, $4::int) i) s`,
  [terminal.merchant_id, terminal.store_id, terminal.id, N, SPREAD],
);
await t.db.query('ANALYZE payments.payments');
const seedSeconds = (Date.now() - seedStarted) / 1000;
// The aggregates alone, in this process (no HTTP, no browser): the database's share of the wait.
const queryTimes: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const s = performance.now();
  await paymentStats(t.db, { since: new Date(Date.now() - 3_600_000), now: new Date(), windowMinutes: 60 });
  queryTimes.push(Math.round(performance.now() - s));
}

// 3. Sign in once in the browser (TOTP enrolment), then time the overview's first chart.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const times: number[] = [];
const apiTimes: number[] = [];
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const op = await createOperator(t, { roles: ['support'] });
  await page.goto(t.url + '/console/');
  await page.getByLabel('Email').fill(op.email);
  await page.getByLabel('Password').fill(op.password);
  await page.getByRole('button', { name: 'Continue' }).click();
  const secret = base32Decode((await page.locator('.enrol .mono').textContent())!.trim());
  await page.getByLabel('Authentication code').fill(totp(secret, new Date()));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: /continue/ }).click();
  await page.locator('.chart-box[data-drawn="1"]').waitFor();
  for (let r = 0; r < RUNS; r++) {
    // A cold page each time (new document, cached assets as a returning operator has them).
    await page.goto('about:blank');
    const started = Date.now();
    await page.goto(t.url + '/console/');
    await page.waitForFunction(
      () =>
        document.querySelector('.chart-box[data-drawn="1"] canvas') &&
        document.querySelector('[data-testid="tile-payments"]'),
      undefined,
      { timeout: 60_000 },
    );
    times.push(Date.now() - started);
    const s = Date.now();
    await page.evaluate(() => fetch('/v1/payments/stats?window_minutes=60').then((r) => r.json()));
    apiTimes.push(Date.now() - s);
  }
} finally {
  await browser.close();
  await t.close();
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const result = {
  bench: 'console',
  at: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  load1: os.loadavg()[0].toFixed(1),
  database: process.env.TEST_DATABASE_URL ? 'postgresql' : 'pglite',
  initial_js_gzip_bytes: js,
  initial_css_gzip_bytes: css,
  files,
  payments: N,
  spread_minutes: SPREAD,
  seed_seconds: seedSeconds,
  first_chart_ms: { median: median(times), max: Math.max(...times), runs: times },
  stats_endpoint_ms: { median: median(apiTimes), runs: apiTimes },
  stats_query_ms: { median: median(queryTimes), runs: queryTimes },
};
console.log(JSON.stringify(result));
appendFileSync(new URL('./results/console.jsonl', import.meta.url), JSON.stringify(result) + '\n');
