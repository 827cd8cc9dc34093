// Field-encryption overhead benchmark: `npm run bench:vault [-- options]`.
//
// The bar: encrypting fields must cost under 10% of payment throughput. Tillpoint has no switch
// to turn field encryption off (there must not be one), so this compares the payments service
// in-process, on a real PostgreSQL (DATABASE_URL, or a throwaway cluster, as bench:payments):
//
//   with      the real vault: AES-256-GCM ciphertext + HMAC blind index on write, decryption for
//             hooks and answers, data keys from a local keyring
//   without   a plaintext stand-in with the same interface (it writes the value itself into the
//             ciphertext column), defined here and used nowhere else
//
// Each payment: create (a collect request naming the payer, so the VPA is sealed on insert), the
// bank's success callback (sealed again with the VPA the bank reports, decrypted for the hooks,
// ledger entry posted), then a read (decrypted and masked). HTTP is left out on purpose: it would
// add the same cost to both sides and make the encryption's share look smaller than it is.
// Phases alternate (without, with, with, without, …). Also prints single-thread seal/open
// rates. Ends with `ledger verify`; prints one JSON line, appended to bench/results/vault.jsonl.

import { parseArgs } from 'node:util';
import { appendFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startBenchPostgres } from './lib/postgres.ts';
import { ROOT } from './lib/procs.ts';
import { Recorder, closedLoop, now, round } from './lib/load.ts';
import { createPgDb } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { loadConfig } from '../src/config.ts';
import { createMetrics } from '../src/metrics.ts';
import { createLogger } from '../src/platform/log.ts';
import { systemClock } from '../src/platform/clock.ts';
import { newId } from '../src/platform/ids.ts';
import { createLedgerService, runLedgerVerify } from '../src/modules/ledger/index.ts';
import { createPaymentsService, PAYER_VPA_FIELD, type PayerVpaCipher } from '../src/modules/payments/index.ts';
import { createVault, createLocalKeyManager } from '../src/modules/vault/index.ts';
import type { BankConnector } from '../src/modules/banks/types.ts';
import type { Principal } from '../src/platform/principal.ts';

const USAGE = `Usage: npm run bench:vault -- [options]

  --duration S    measured seconds of each phase (default 10)
  --warmup S      unmeasured seconds before each phase (default 2)
  --rounds N      pairs of phases (default 2)
  --clients N     concurrent payment loops (default 16)
  --pool-size N   database pool (default 20)
  --results FILE  where to append the JSON line (default bench/results/vault.jsonl)
  --no-save       print the JSON line only
  --label TEXT    free text stored with the result
  --help          this text

Environment: DATABASE_URL (a database of the benchmark's own is created there and dropped), else a
throwaway cluster from /usr/lib/postgresql/*/bin.`;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    clients: { type: 'string', default: '16' },
    'pool-size': { type: 'string', default: '20' },
    results: { type: 'string', default: join(ROOT, 'bench', 'results', 'vault.jsonl') },
    'no-save': { type: 'boolean', default: false },
    label: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const num = (name: string, v: string | undefined, max: number) => {
  if (!v || !/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) {
    process.stderr.write(`--${name} must be an integer 1..${max}\n\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(v);
};
const DURATION = num('duration', args.duration, 3600);
const WARMUP = num('warmup', args.warmup, 600);
const ROUNDS = num('rounds', args.rounds, 50);
const CLIENTS = num('clients', args.clients, 1000);
const POOL = num('pool-size', args['pool-size'], 500);
const log = (s: string) => process.stderr.write(`[bench:vault] ${s}\n`);

/** NOT encryption: the same interface, storing the value as it is. Benchmark baseline only. */
const plaintextStandIn: PayerVpaCipher = {
  async seal(_f, _id, value) {
    return { ciphertext: value, blindIndex: value };
  },
  async open(_f, _id, ciphertext) {
    return ciphertext;
  },
  async lookupIndexes(_f, value) {
    return [value];
  },
};

const pg = await startBenchPostgres({ databaseUrl: process.env.DATABASE_URL, log });
const db = createPgDb(pg.url, POOL);
try {
  await migrate(db);
  const config = loadConfig({ NODE_ENV: 'test', TILLPOINT_DATA_DIR: mkdtempSync(join(tmpdir(), 'tp-bench-vault-')) });
  const vault = createVault({
    db,
    clock: systemClock,
    config: { cacheTtlMs: 60_000, rewrapBatchSize: 500, cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 } },
    kms: createLocalKeyManager({ kind: 'file', path: join(config.dataDir, 'keyring.json'), createIfMissing: true }),
    fields: [PAYER_VPA_FIELD],
    vpaPattern: config.payments.vpaPattern,
  });
  await vault.init();

  // A bank that accepts at once; its success arrives through handleCallback, as a callback would.
  const bank: BankConnector = {
    code: 'SIMBANK',
    registerIntent: async (r) => ({ bankRef: r.txnRef.slice(2, 14) }),
    sendCollect: async () => ({ outcome: 'pending', responseCode: '01' }),
    checkStatus: async () => ({ outcome: 'pending', responseCode: '01' }),
    refund: async () => ({ outcome: 'pending', responseCode: '01' }),
    checkRefundStatus: async () => ({ outcome: 'pending', responseCode: '01' }),
    parseCallback: () => {
      throw new Error('unused');
    },
  };
  const principal: Principal = { kind: 'api_key', id: 'key_bench', merchantId: null, permissions: new Set() };
  const terminals: string[] = [];
  for (let i = 0; i < 20; i++) {
    const m = newId('merchant');
    const s = newId('store');
    const t = newId('terminal');
    await db.query(
      `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, $2, $3, '5411', 'SIMBANK')`,
      [m, `Bench ${i}`, `bench${i}@simbank`],
    );
    await db.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'Main')`, [s, m]);
    await db.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1, $2, $3)`, [t, m, s]);
    terminals.push(t);
  }
  const service = (cipher: PayerVpaCipher) =>
    createPaymentsService({
      db,
      ledger: createLedgerService(),
      banks: { route: async () => bank, connector: () => bank },
      config,
      metrics: createMetrics(),
      clock: systemClock,
      logger: createLogger({ level: 'silent' }),
      payerVpa: cipher,
    });
  const sides = { without: service(plaintextStandIn), with: service(vault.cipher) };

  async function onePayment(svc: ReturnType<typeof service>, i: number) {
    const vpa = `customer${i % 500}@okaxis`;
    const p = await svc.create(principal, {
      terminal_id: terminals[i % terminals.length],
      amount: 10_000 + (i % 900),
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: vpa,
    });
    await svc.handleCallback('SIMBANK', {
      kind: 'payment',
      ref: p.txn_ref,
      result: { outcome: 'success', responseCode: '00', bankRef: '123456789012', payerVpa: vpa, amountPaise: p.amount },
    });
    const done = await svc.get(principal, p.id);
    if (done.status !== 'succeeded') throw new Error(`payment ${p.id} is ${done.status}`);
  }

  async function phase(side: 'with' | 'without', seconds: number, record?: Recorder) {
    let n = 0;
    const svc = sides[side];
    const cpu0 = process.cpuUsage();
    const start = now();
    await closedLoop(CLIENTS, start + seconds * 1000, async () => {
      const t0 = now();
      await onePayment(svc, n++);
      record?.add(now() - t0);
    });
    const cpu = process.cpuUsage(cpu0);
    return { payments: n, seconds: (now() - start) / 1000, cpuMs: (cpu.user + cpu.system) / 1000 };
  }

  // Wall-clock throughput moves with whatever else the machine runs; the CPU time this process
  // spends per payment (the service side, where encryption happens) is steadier, so both are kept.
  const totals = { with: { payments: 0, seconds: 0, cpuMs: 0 }, without: { payments: 0, seconds: 0, cpuMs: 0 } };
  const latency = { with: new Recorder(), without: new Recorder() };
  const order: ('with' | 'without')[] = [];
  for (let r = 0; r < ROUNDS; r++)
    order.push(...(r % 2 === 0 ? (['without', 'with'] as const) : (['with', 'without'] as const)));
  for (const side of order) {
    await phase(side, WARMUP);
    const res = await phase(side, DURATION, latency[side]);
    totals[side].payments += res.payments;
    totals[side].seconds += res.seconds;
    totals[side].cpuMs += res.cpuMs;
    log(
      `${side.padEnd(7)} ${round(res.payments / res.seconds, 1)} payments/s, ${round(res.cpuMs / res.payments, 3)} ms CPU per payment`,
    );
  }

  // Single-thread crypto rates, for scale.
  const micro = async (fn: (i: number) => Promise<unknown>, ms = 1000) => {
    let i = 0;
    const end = now() + ms;
    while (now() < end) await fn(i++);
    return Math.round(i / (ms / 1000));
  };
  const sample = await vault.cipher.seal(PAYER_VPA_FIELD, 'pay_bench', 'customer1@okaxis');
  const sealPerS = await micro((i) => vault.cipher.seal(PAYER_VPA_FIELD, `pay_${i}`, 'customer1@okaxis'));
  const openPerS = await micro(() => vault.cipher.open(PAYER_VPA_FIELD, 'pay_bench', sample.ciphertext));

  const ledger = await runLedgerVerify(db);
  const withRate = totals.with.payments / totals.with.seconds;
  const withoutRate = totals.without.payments / totals.without.seconds;
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const result = {
    bench: 'vault',
    at: new Date().toISOString(),
    commit,
    label: args.label,
    machine: { cpus: cpus().length, model: cpus()[0]?.model },
    postgres: { source: pg.source, ...pg.settings },
    clients: CLIENTS,
    phase_seconds: DURATION,
    rounds: ROUNDS,
    payments_per_s_without_encryption: round(withoutRate, 1),
    payments_per_s_with_encryption: round(withRate, 1),
    cost_pct: round((1 - withRate / withoutRate) * 100, 1),
    cpu_ms_per_payment: {
      without: round(totals.without.cpuMs / totals.without.payments, 3),
      with: round(totals.with.cpuMs / totals.with.payments, 3),
    },
    cpu_cost_pct: round(
      (totals.with.cpuMs / totals.with.payments / (totals.without.cpuMs / totals.without.payments) - 1) * 100,
      1,
    ),
    load_average_1m: round(loadavg()[0], 2),
    target_cost_pct: 10,
    p50_ms: { without: latency.without.percentile(50), with: latency.with.percentile(50) },
    p99_ms: { without: latency.without.percentile(99), with: latency.with.percentile(99) },
    seal_per_s_single_thread: sealPerS,
    open_per_s_single_thread: openPerS,
    ledger_verify: ledger.ok ? 'ok' : JSON.stringify(ledger.violations[0]),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  if (!args['no-save']) {
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    appendFileSync(args.results!, JSON.stringify(result) + '\n');
  }
  vault.close();
} finally {
  await db.close();
  await pg.stop();
}
