// Circuit-breaker benchmark: `npm run bench:breaker [-- options]`.
//
// What share of payments is lost to a failing bank, with the breaker and without it. A payment
// is "lost" when the bank it was routed to fails it technically at create (a timeout, a 5xx: it
// stays pending and goes to reconciliation, the customer waits at the till and usually walks
// away, or pays again). Customer declines are not losses here.
//
// The banks service is the real one (health windows, breaker, routing, the measured connectors,
// its health view written to an in-process PGlite); the banks themselves are scripted in-process
// connectors and time is a simulated clock, so a 10-minute day with a 4-minute outage runs in
// seconds and every run is the same (seeded). Two banks: the merchant's acquiring bank A and
// the fallback B. Scenarios: A fails every call (a hard outage), or 60 % of them (a brown-out).
// Breaker settings are the defaults (60 s window, >= 50 % technical over >= 20 calls, open 30 s,
// 1 probe in 10, 5 ok probes close it). Prints one JSON line per scenario and appends them to
// bench/results/breaker.jsonl.

import { parseArgs } from 'node:util';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { loadConfig } from '../src/config.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { createTestDb } from '../src/platform/testing.ts';
import { BankCallError, createBanksService, type BankConnector } from '../src/modules/banks/index.ts';

const USAGE = `Usage: npm run bench:breaker -- [options]
  --rate N          payments per simulated second (default 20)
  --minutes N       length of the simulated day (default 10)
  --outage-from N   minute the acquiring bank starts failing (default 2)
  --outage-to N     minute it recovers (default 6)
  --seed N          random seed (default 1)`;

const { values: o } = parseArgs({
  options: {
    rate: { type: 'string', default: '20' },
    minutes: { type: 'string', default: '10' },
    'outage-from': { type: 'string', default: '2' },
    'outage-to': { type: 'string', default: '6' },
    seed: { type: 'string', default: '1' },
    help: { type: 'boolean' },
  },
});
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
const rate = Number(o.rate);
const minutes = Number(o.minutes);
const from = Number(o['outage-from']) * 60_000;
const to = Number(o['outage-to']) * 60_000;

/** A small seeded generator (mulberry32): the same run every time. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BANKS = JSON.stringify([
  { code: 'BANKA', connector: 'simbank', url: 'http://127.0.0.1:9/a', secret: 'a' },
  { code: 'BANKB', connector: 'simbank', url: 'http://127.0.0.1:9/b', secret: 'b' },
]);

async function scenario(name: string, failRate: number, breaker: boolean) {
  const start = new Date('2026-12-03T10:00:00Z').getTime();
  const clock = fixedClock(new Date(start));
  const random = rng(Number(o.seed));
  const config = loadConfig({
    NODE_ENV: 'test',
    BANKS,
    BANK_FALLBACK_ORDER: 'BANKA,BANKB',
    BANK_BREAKER: breaker ? 'on' : 'off',
  });
  const elapsed = () => clock.now().getTime() - start;
  const scripted = (code: string, failing: boolean): BankConnector => {
    const fail = () => failing && elapsed() >= from && elapsed() < to && random() < failRate;
    const ok = { outcome: 'pending' as const, responseCode: '01' };
    const maybe = async <T>(v: T): Promise<T> => {
      if (fail())
        throw new BankCallError('uncertain', `Bank ${code} did not answer in time`, { bank: code, timeout: true });
      return v;
    };
    return {
      code,
      registerIntent: () => maybe({ bankRef: 'R' }),
      sendCollect: () => maybe(ok),
      checkStatus: () => maybe(ok),
      refund: () => maybe(ok),
      checkRefundStatus: () => maybe(ok),
    };
  };
  const db = await createTestDb();
  const banks = createBanksService({
    db,
    config,
    clock,
    connectors: { BANKA: scripted('BANKA', true), BANKB: scripted('BANKB', false) },
  });
  const noneDown = new Set<string>();
  const total = Math.round(minutes * 60 * rate);
  let lost = 0;
  let lostInOutage = 0;
  let inOutage = 0;
  let toFallback = 0;
  const transitions: string[] = [];
  let lastState = 'closed';
  for (let i = 0; i < total; i++) {
    clock.advance(1000 / rate);
    const t = elapsed();
    const during = t >= from && t < to;
    if (during) inOutage++;
    const bank = await banks.route('BANKA', noneDown);
    if (bank.code === 'BANKB') toFallback++;
    try {
      await bank.registerIntent({
        txnRef: `TP${i}`,
        amountPaise: 100,
        payeeVpa: 'shop@a',
        payeeName: 'Shop',
        mcc: '5411',
        expiresAt: new Date(clock.now().getTime() + 900_000),
        callbackUrl: 'http://x/cb',
      });
    } catch {
      lost++;
      if (during) lostInOutage++;
    }
    const state = banks.routing('BANKA').banks[0].breaker;
    if (state !== lastState) {
      transitions.push(`${(t / 1000).toFixed(1)}s ${lastState}->${state}`);
      lastState = state;
    }
  }
  await banks.flushHealth();
  await db.close();
  return {
    bench: 'breaker',
    scenario: name,
    breaker: breaker ? 'on' : 'off',
    acquiring_bank_failure_rate_in_outage: failRate,
    payments: total,
    payments_during_outage: inOutage,
    lost,
    lost_share_of_all: Math.round((lost / total) * 10_000) / 100,
    lost_share_during_outage: Math.round((lostInOutage / inOutage) * 10_000) / 100,
    routed_to_fallback: toFallback,
    transitions: breaker ? transitions : [],
    rate_per_s: rate,
    outage_minutes: [from / 60_000, to / 60_000],
    at: new Date().toISOString(),
    load: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

const results = [];
for (const [name, failRate] of [
  ['hard outage', 1],
  ['brown-out', 0.6],
] as const) {
  for (const breaker of [false, true]) {
    const r = await scenario(name, failRate, breaker);
    results.push(r);
    console.log(JSON.stringify(r));
  }
}
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
appendFileSync(join(dir, 'breaker.jsonl'), results.map((r) => JSON.stringify(r)).join('\n') + '\n');
console.log('\nshare of payments lost to the failing bank (all day / during the outage):');
for (const r of results)
  console.log(
    `  ${r.scenario.padEnd(12)} breaker ${r.breaker.padEnd(3)}  ${String(r.lost_share_of_all).padStart(6)} %  / ${String(r.lost_share_during_outage).padStart(6)} %   (${r.lost} of ${r.payments})`,
  );
