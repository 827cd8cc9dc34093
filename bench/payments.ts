// Payment throughput benchmark: `npm run bench:payments [-- options]`. See bench/README.md.
//
// Measures completed UPI QR payments per second (created through the API, paid through the
// bank simulator, succeeded and posted to the ledger) against PostgreSQL's own TPC-B-like rate
// (pgbench) on the same server, then checks every ledger invariant. Prints one JSON line on
// stdout and appends it to bench/results/payments.jsonl; progress goes to stderr.

import { parseArgs } from 'node:util';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release, platform } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { startBenchPostgres, checkpoint, settle, withClient, type BenchPostgres } from './lib/postgres.ts';
import {
  startTillpoint,
  runTillpoint,
  killAll,
  memoryMb,
  cpuSeconds,
  machineCpuSeconds,
  postmasterOf,
  treeCpuSeconds,
  ROOT,
  type BenchProc,
} from './lib/procs.ts';
import { Recorder, Errors, Http, closedLoop, openLoop, now, round } from './lib/load.ts';
import { findPgbench, pgbenchInit, pgbenchRun, type PgbenchResult } from './lib/pgbench.ts';
import { freePort } from '../src/platform/freePort.ts';
import { sampleWaits, type WaitSampler } from './lib/waits.ts';
import { dbWorkPerPayment, enableStatementCounts, markDbWork, type DbWorkMark } from './lib/dbWork.ts';
import { saveTimeline, startTimeline } from './lib/timeline.ts';

const USAGE = `Usage: npm run bench:payments -- [options]

  --duration S       measured seconds of the payment run and of pgbench (default 20)
  --warmup S         unmeasured seconds before the payment run (default 5)
  --clients N        closed-loop clients of the load generator (default 128): enough to keep the
                     machine busy, since a payment waits on five hops (two HTTP calls into the api,
                     the bank call, two group commits) where a pgbench transaction waits on one
  --pgbench-clients N  pgbench's clients (default 16, its best on a 2-core machine: 16 and 32
                     clients ~4,100 tps, 64 ~3,500, 128 ~2,700 as its ten branch rows queue)
  --side-seconds S   seconds for each side measurement: half-peak latency, create-only, GET (default 8)
  --half-rate N      payments/s offered in the latency measurement (default: half the measured
                     peak); a fixed rate compares two builds at the same load
  --merchants N      merchants (one store and terminal each) the payments spread over (default 20)
  --scale N          pgbench scale factor (default 10)
  --pool-size N      DATABASE_POOL_SIZE for the api process (default: Tillpoint's own default)
  --log-level L      LOG_LEVEL of the Tillpoint processes (default info, as in production)
  --cpu-prof DIR     run the api process with --cpu-prof, writing the profile into DIR
  --cpu-prof-procs L which processes --cpu-prof profiles: a comma-separated list of api, worker,
                     bank-sim (default api); profile the load generator with node --cpu-prof itself
  --no-pgbench       skip pgbench (ratio is then null)
  --results FILE     where to append the JSON line (default bench/results/payments.jsonl)
  --no-save          print the JSON line only
  --label TEXT       free text stored with the result (e.g. "before: one tx per step")
  --timeline FILE    write the half-peak run's timeline to FILE (JSON lines): per 250 ms, the
                     creates started (count, p50, p99, max) and every process's CPU; the slowest
                     buckets are printed too
  --keep             keep the benchmark database (and throwaway cluster) and the logs
  --help             this text

Environment: DATABASE_URL (use that server; a database of the benchmark's own is created on it and
dropped afterwards). Without it, a throwaway cluster is started from /usr/lib/postgresql/*/bin.`;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    clients: { type: 'string', default: '128' },
    'pgbench-clients': { type: 'string', default: '16' },
    'side-seconds': { type: 'string', default: '8' },
    'half-rate': { type: 'string' },
    merchants: { type: 'string', default: '20' },
    scale: { type: 'string', default: '10' },
    'pool-size': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    'cpu-prof': { type: 'string' },
    'cpu-prof-procs': { type: 'string', default: 'api' },
    'no-pgbench': { type: 'boolean', default: false },
    results: { type: 'string', default: join(ROOT, 'bench', 'results', 'payments.jsonl') },
    'no-save': { type: 'boolean', default: false },
    label: { type: 'string' },
    timeline: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

function posInt(name: string, v: string | undefined, max: number): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) {
    process.stderr.write(`--${name} must be an integer 1..${max}, got "${v}"\n\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(v);
}

if (args.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const DURATION = posInt('duration', args.duration, 3600);
const WARMUP = posInt('warmup', args.warmup, 600);
const CLIENTS = posInt('clients', args.clients, 1000);
const PGBENCH_CLIENTS = posInt('pgbench-clients', args['pgbench-clients'], 1000);
const SIDE = posInt('side-seconds', args['side-seconds'], 600);
const HALF_RATE = args['half-rate'] === undefined ? undefined : posInt('half-rate', args['half-rate'], 100_000);
const MERCHANTS = posInt('merchants', args.merchants, 10_000);
const SCALE = posInt('scale', args.scale, 1000);
const PROFILED = new Set((args['cpu-prof-procs'] ?? 'api').split(',').filter(Boolean));
for (const p of PROFILED) {
  if (!['api', 'worker', 'bank-sim'].includes(p)) {
    process.stderr.write(`--cpu-prof-procs: "${p}" is not one of api, worker, bank-sim\n\n${USAGE}\n`);
    process.exit(2);
  }
}
const POOL = args['pool-size'] === undefined ? undefined : posInt('pool-size', args['pool-size'], 1000);

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const T0 = Date.now();
const elapsed = () => `${((Date.now() - T0) / 1000).toFixed(0)}s`;

const procs: BenchProc[] = [];
let pgServer: BenchPostgres | undefined;
let workDir: string | undefined;

/** Stops everything. The logs stay when asked to, and after a failure, to read what went wrong. */
async function cleanup(keep: boolean, keepLogs = keep) {
  killAll();
  if (pgServer) await pgServer.stop({ keep }).catch((e) => log(`could not stop PostgreSQL: ${(e as Error).message}`));
  pgServer = undefined;
  if (workDir && !keepLogs) rmSync(workDir, { recursive: true, force: true });
  else if (workDir) log(`logs kept in ${workDir}`);
}
// A run that hangs (a process that stops answering) must still end, and leave nothing running.
const WATCHDOG_S = 120 + 2 * DURATION + WARMUP + 4 * SIDE + 300;
setTimeout(() => {
  log(`gave up after ${WATCHDOG_S}s: stopping`);
  void cleanup(false, true).finally(() => process.exit(1));
}, WATCHDOG_S * 1000).unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    void cleanup(false).finally(() => process.exit(130));
  });
}

function gitCommit(): { commit: string; dirty: boolean } {
  const head = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  return {
    commit: head.status === 0 ? head.stdout.trim() : 'unknown',
    dirty: status.status === 0 ? status.stdout.trim() !== '' : false,
  };
}

interface Terminal {
  terminal_id: string;
  merchant_id: string;
}

/** Merchants, each with a store and a terminal, made through the API like any partner would. */
async function seedMerchants(api: Http, n: number): Promise<Terminal[]> {
  const out: Terminal[] = [];
  const tag = randomBytes(3).toString('hex');
  for (let i = 0; i < n; i++) {
    const m = await api.request('POST', '/v1/merchants', {
      name: `Bench Store ${i}`,
      vpa: `bench${tag}${i}@simbank`,
      mcc: '5411',
      acquiring_bank: 'SIMBANK',
    });
    if (m.status !== 201) throw new Error(`create merchant: ${m.status} ${JSON.stringify(m.body)}`);
    const s = await api.request('POST', `/v1/merchants/${m.body.id}/stores`, { name: 'Main', city: 'Pune' });
    if (s.status !== 201) throw new Error(`create store: ${s.status} ${JSON.stringify(s.body)}`);
    const t = await api.request('POST', '/v1/terminals', { store_id: s.body.id, label: 'Till 1' });
    if (t.status !== 201) throw new Error(`create terminal: ${t.status} ${JSON.stringify(t.body)}`);
    out.push({ terminal_id: t.body.id, merchant_id: m.body.id });
  }
  return out;
}

const errLabel = (what: string, r: { status: number; body: any }) =>
  `${what} ${r.status} ${r.body?.error?.code ?? r.body?.response_code ?? ''}`.trim();

async function main() {
  const { commit, dirty } = gitCommit();
  workDir = mkdtempSync(join(tmpdir(), 'tillpoint-bench-'));
  // How busy the machine is before we start: a benchmark on a machine that is already busy
  // (other builds, other tests) measures that too, so the result says so.
  const idleA = machineCpuSeconds();
  await new Promise((r) => setTimeout(r, 2000));
  const idleB = machineCpuSeconds();
  const busyBefore = idleA && idleB ? round(((idleB.busy - idleA.busy) / (idleB.total - idleA.total)) * 100, 0) : null;
  log(
    `commit ${commit}${dirty ? ' (uncommitted changes)' : ''}; ${CLIENTS} clients, ${WARMUP}s warm-up + ${DURATION}s measured; logs in ${workDir}`,
  );

  // ---- PostgreSQL, and its own limit -------------------------------------------------------
  pgServer = await startBenchPostgres({
    databaseUrl: process.env.DATABASE_URL || undefined,
    log,
    preload: ['pg_stat_statements'],
  });
  const dbUrl = pgServer.url;
  const countStatements = await enableStatementCounts(dbUrl);
  const postmaster = await withClient(dbUrl, async (c) =>
    postmasterOf((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid),
  );
  const s = pgServer.settings;
  if (s.fsync !== 'on' || s.synchronous_commit !== 'on') {
    log(
      `WARNING: fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}: results are not durable and not comparable`,
    );
  }
  let pgbench: PgbenchResult | null = null;
  let pgbenchNote: string | undefined;
  const pgbenchBin = findPgbench(pgServer.binDir);
  if (args['no-pgbench']) pgbenchNote = 'skipped (--no-pgbench)';
  else if (!pgbenchBin) pgbenchNote = 'pgbench not found (Debian/Ubuntu: apt-get install -y postgresql)';
  else {
    log(`${elapsed()} pgbench -i -s ${SCALE}`);
    pgbenchInit(pgbenchBin, dbUrl, SCALE);
    await checkpoint(dbUrl);
    log(`${elapsed()} pgbench -c ${PGBENCH_CLIENTS} -T ${DURATION} (TPC-B-like)`);
    pgbench = pgbenchRun(pgbenchBin, dbUrl, {
      clients: PGBENCH_CLIENTS,
      threads: Math.min(PGBENCH_CLIENTS, cpus().length),
      seconds: DURATION,
      scale: SCALE,
    });
    log(`${elapsed()} pgbench: ${pgbench.tps.toFixed(1)} tps`);
    await checkpoint(dbUrl);
  }
  if (pgbenchNote) log(`pgbench: ${pgbenchNote}`);

  // ---- Tillpoint: bank simulator, api, worker ------------------------------------------------
  const simPort = await freePort();
  const apiPort = await freePort();
  const secret = randomBytes(24).toString('hex');
  const dataDir = join(workDir, 'data');
  mkdirSync(dataDir);
  const env: Record<string, string> = {
    NODE_ENV: 'development', // the demo data (a partner key) is what the benchmark logs in with
    HOST: '127.0.0.1',
    PORT: String(apiPort),
    TILLPOINT_DATA_DIR: dataDir,
    DATABASE_URL: dbUrl,
    EMBEDDED_BANK_SIM: 'false',
    BANK_SIM_URL: `http://127.0.0.1:${simPort}/sim`,
    BANK_SIM_SECRET: secret,
    LOG_LEVEL: args['log-level']!,
    ...(POOL ? { DATABASE_POOL_SIZE: String(POOL) } : {}),
  };
  const cpuProfDir = args['cpu-prof'] ? resolve(args['cpu-prof']) : undefined;
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
  const profFlags = (name: string) =>
    cpuProfDir && PROFILED.has(name) ? ['--cpu-prof', `--cpu-prof-dir=${join(cpuProfDir, name)}`] : [];
  const sim = await startTillpoint({
    name: 'bank-sim',
    args: [
      'bank-sim',
      '--port',
      String(simPort),
      '--latency-ms',
      '0',
      '--approve',
      '1',
      '--decline',
      '0',
      '--pending',
      '0',
      '--timeout',
      '0',
    ],
    env: { BANK_SIM_SECRET: secret, LOG_LEVEL: 'warn' },
    ready: /listening/,
    logDir: workDir,
    nodeFlags: profFlags('bank-sim'),
  });
  procs.push(sim);
  const api = await startTillpoint({
    name: 'api',
    args: ['serve', '--role', 'api'],
    env,
    ready: /Demo:/,
    logDir: workDir,
    nodeFlags: profFlags('api'),
  });
  procs.push(api);
  const worker = await startTillpoint({
    name: 'worker',
    args: ['serve', '--role', 'worker'],
    env,
    ready: /role: worker/,
    logDir: workDir,
    nodeFlags: profFlags('worker'),
  });
  procs.push(worker);
  const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8')) as { api_url: string; api_key: string };
  log(`${elapsed()} started bank-sim (pid ${sim.pid}), api (pid ${api.pid}), worker (pid ${worker.pid})`);

  const auth = { authorization: `Bearer ${demo.api_key}` };
  const apiHttp = new Http(demo.api_url, CLIENTS * 2, auth);
  const simHttp = new Http(`http://127.0.0.1:${simPort}`, CLIENTS * 2);
  const terminals = await seedMerchants(apiHttp, MERCHANTS);
  log(`${elapsed()} seeded ${terminals.length} merchants with a terminal each`);

  const errors = new Errors();
  let rr = 0;
  const nextTerminal = () => terminals[rr++ % terminals.length];

  /** One payment: create a QR through the API, pay it as the customer; resolves with timings. */
  async function payment(opts: { pay: boolean }) {
    const t = nextTerminal();
    const t0 = now();
    const c = await apiHttp.request('POST', '/v1/payments', {
      terminal_id: t.terminal_id,
      amount: randomInt(100, 500_000),
      currency: 'INR',
      method: 'upi_qr',
    });
    const t1 = now();
    if (c.status !== 201) {
      errors.add(errLabel('create', c));
      return undefined;
    }
    if (!opts.pay) return { id: c.body.id as string, t0, t1, t2: t1, t3: t1 };
    // The simulator answers after its signed callback to Tillpoint has been answered, i.e. after
    // the payment's success, ledger entry and outbox row have committed (or the callback failed).
    const t2 = now();
    const p = await simHttp.request('POST', '/sim/v1/customer-payments', {
      upi_uri: c.body.upi_uri,
      payer_vpa: 'bench.payer@okaxis',
    });
    const t3 = now();
    if (p.status !== 200 || p.body?.response_code !== '00') {
      errors.add(errLabel('pay', p));
      return undefined;
    }
    if (!p.body.callback?.delivered) {
      errors.add(`callback ${p.body.callback?.status ?? 'undelivered'}`);
      return undefined;
    }
    return { id: c.body.id as string, t0, t1, t2, t3 };
  }

  // `monitor`: the PostgreSQL backend of the benchmark's own wait sampler (waits.ts), whose CPU is
  // taken out of PostgreSQL's so that what is left is the server working for Tillpoint. It
  // connects after the first mark, so all of its CPU falls in the window.
  const cpuMark = (monitor?: number) => ({
    at: now(),
    monitor: monitor === undefined ? 0 : (cpuSeconds(monitor) ?? 0),
    api: cpuSeconds(api.pid) ?? 0,
    worker: cpuSeconds(worker.pid) ?? 0,
    sim: cpuSeconds(sim.pid) ?? 0,
    postgres: postmaster === undefined ? undefined : treeCpuSeconds(postmaster),
    bench: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
    machine: machineCpuSeconds(),
  });
  /** CPU use between two marks: share of one core per process, and CPU ms per completed payment. */
  const cpuShare = (a: ReturnType<typeof cpuMark>, b: ReturnType<typeof cpuMark>, completed: number) => {
    const wall = (b.at - a.at) / 1000;
    const pct = (x: number) => round((x / wall) * 100, 0);
    const per = (x: number) => (completed > 0 ? round((x * 1000) / completed, 2) : null);
    const machineBusy = a.machine && b.machine ? b.machine.busy - a.machine.busy : undefined;
    const pgCpu =
      a.postgres !== undefined && b.postgres !== undefined
        ? b.postgres - a.postgres - (b.monitor - a.monitor)
        : undefined;
    const monitorCpu = b.monitor - a.monitor;
    const ours =
      b.api - a.api + (b.worker - a.worker) + (b.sim - a.sim) + (b.bench - a.bench) + (pgCpu ?? 0) + monitorCpu;
    return {
      api_pct: pct(b.api - a.api),
      worker_pct: pct(b.worker - a.worker),
      bank_sim_pct: pct(b.sim - a.sim),
      load_generator_pct: pct(b.bench - a.bench),
      // The server's processes, when it runs on this machine (the wait sampler's backend apart).
      postgres_pct: pgCpu === undefined ? null : pct(pgCpu),
      postgres_wait_sampler_pct: pct(monitorCpu),
      // Everything else that was busy: the kernel's share of loopback traffic, other programs.
      other_pct: machineBusy === undefined ? null : pct(Math.max(0, machineBusy - ours)),
      machine_busy_pct: machineBusy === undefined ? null : pct(machineBusy),
      machine_busy_before_start_pct: busyBefore,
      cores: cpus().length,
      // Less sensitive to other load on the machine than throughput: what one payment costs.
      ms_per_payment: {
        api: per(b.api - a.api),
        bank_sim: per(b.sim - a.sim),
        postgres: pgCpu === undefined ? null : per(pgCpu),
        load_generator: per(b.bench - a.bench),
        worker: per(b.worker - a.worker),
        // Tillpoint's own cost, the figure issue 20's target is set on (api and PostgreSQL
        // together), apart from the tools that stand in for the bank and the customers.
        api_and_postgres: pgCpu === undefined ? null : per(b.api - a.api + pgCpu),
        tools: per(b.sim - a.sim + (b.bench - a.bench)),
      },
    };
  };

  // ---- 1. Peak: closed loop of create + pay -------------------------------------------------
  log(`${elapsed()} payments: ${WARMUP}s warm-up, ${DURATION}s measured, ${CLIENTS} clients`);
  const create = new Recorder();
  const completion = new Recorder();
  const endToEnd = new Recorder();
  const completedIds: string[] = [];
  const runStart = now();
  const windowStart = runStart + WARMUP * 1000;
  const windowEnd = windowStart + DURATION * 1000;
  let cpuA: ReturnType<typeof cpuMark> | undefined;
  let waits: Promise<WaitSampler> | undefined;
  let dbWorkA: Promise<DbWorkMark> | undefined;
  const cpuTimer = setTimeout(() => {
    cpuA = cpuMark();
    waits = sampleWaits(dbUrl);
    dbWorkA = markDbWork(dbUrl, countStatements);
  }, WARMUP * 1000);
  const errorsBefore = { ...errors.counts };
  await closedLoop(CLIENTS, windowEnd, async () => {
    const r = await payment({ pay: true });
    if (!r) return;
    if (r.t1 >= windowStart && r.t1 < windowEnd) create.add(r.t1 - r.t0);
    if (r.t3 >= windowStart && r.t3 < windowEnd) {
      completion.add(r.t3 - r.t2);
      endToEnd.add(r.t3 - r.t0);
      completedIds.push(r.id);
    }
  });
  clearTimeout(cpuTimer);
  const sampler = waits ? await waits : undefined;
  const cpuPeak = cpuA ? cpuShare(cpuA, cpuMark(sampler?.backendPid), completedIds.length) : null;
  const pgWaits = sampler ? await sampler.stop() : null;
  const dbWork = dbWorkA
    ? await dbWorkPerPayment(dbUrl, await dbWorkA, await markDbWork(dbUrl, countStatements), completedIds.length)
    : null;
  const peakErrors = diff(errors.counts, errorsBefore);
  const seenPerS = completedIds.length / DURATION;
  log(
    `${elapsed()} peak: ${seenPerS.toFixed(1)} completed payments/s; create p99 ${create.percentile(99)} ms; completion p99 ${completion.percentile(99)} ms`,
  );
  if (cpuPeak) {
    const ms = cpuPeak.ms_per_payment;
    log(
      `${elapsed()} CPU per completed payment: Tillpoint ${ms.api_and_postgres ?? '?'} ms (api ${ms.api}, PostgreSQL ${ms.postgres ?? '?'}; worker ${ms.worker} besides); the tools ${ms.tools} ms (bank simulator ${ms.bank_sim}, load generator ${ms.load_generator}); machine ${cpuPeak.machine_busy_pct ?? '?'} % busy`,
    );
  }

  // ---- 2. Latency at half the peak rate (open loop) ----------------------------------------
  await settle(dbUrl);
  const halfRate = HALF_RATE ?? Math.max(1, Math.floor(seenPerS / 2));
  log(`${elapsed()} half peak: ${halfRate} payments/s offered for ${SIDE}s`);
  const halfCreate = new Recorder();
  const halfCompletion = new Recorder();
  const cpuHalfA = cpuMark();
  const timeline = args.timeline
    ? startTimeline({ api: api.pid, worker: worker.pid, sim: sim.pid, postgres: postmaster })
    : undefined;
  const half = await openLoop(halfRate, SIDE * 1000, CLIENTS * 8, async (due) => {
    const r = await payment({ pay: true });
    if (!r) return;
    // From the intended start: a request that had to wait for a free slot counts that wait.
    halfCreate.add(r.t1 - Math.min(due, r.t0));
    timeline?.addCreate(Math.min(due, r.t0), r.t1 - Math.min(due, r.t0));
    halfCompletion.add(r.t3 - r.t2);
  });
  if (timeline) {
    log(`timeline written to ${args.timeline}; the slowest buckets:\n${saveTimeline(args.timeline!, timeline.stop())}`);
  }
  // What the machine spends at this rate: less batching than at the peak, so more per payment.
  const cpuHalf = cpuShare(cpuHalfA, cpuMark(), halfCreate.count);
  log(
    `${elapsed()} half peak: create p99 ${halfCreate.percentile(99)} ms; machine ${cpuHalf.machine_busy_pct ?? '?'} % busy, Tillpoint ${cpuHalf.ms_per_payment.api_and_postgres ?? '?'} ms per payment`,
  );

  // ---- 3. Create-only and GET throughput -----------------------------------------------------
  const sideRun = async (name: string, fn: (rec: Recorder, inWindow: (t: number) => boolean) => Promise<void>) => {
    const rec = new Recorder();
    const start = now();
    const from = start + Math.min(2, SIDE / 4) * 1000;
    const until = from + SIDE * 1000;
    await closedLoop(CLIENTS, until, () => fn(rec, (t) => t >= from && t < until));
    log(`${elapsed()} ${name}: ${(rec.count / SIDE).toFixed(1)}/s, p99 ${rec.percentile(99)} ms`);
    return { per_s: round(rec.count / SIDE, 1), ...rec.summary() };
  };
  const createOnly = await sideRun('create-only', async (rec, inWindow) => {
    const r = await payment({ pay: false });
    if (r && inWindow(r.t1)) rec.add(r.t1 - r.t0);
  });
  const readIds = completedIds.length ? completedIds : ['pay_00000000000000000000000000000000'];
  const reads = await sideRun('GET /v1/payments/:id', async (rec, inWindow) => {
    const t0 = now();
    const g = await apiHttp.request('GET', `/v1/payments/${readIds[randomInt(readIds.length)]}`);
    const t1 = now();
    if (g.status !== 200) errors.add(errLabel('get', g));
    else if (inWindow(t1)) rec.add(t1 - t0);
  });

  const apiMem = memoryMb(api.pid);
  await apiHttp.close();
  await simHttp.close();

  // ---- Stop, then check what the run left behind --------------------------------------------
  for (const p of [api, worker, sim]) await p.stop();
  if (cpuProfDir) log(`CPU profiles of ${[...PROFILED].join(', ')} written to ${cpuProfDir}/<process>`);

  // Every payment the load generator saw complete must be succeeded with its ledger entry.
  const verified = await withClient(dbUrl, async (c) => {
    const r = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM payments.payments p
         JOIN ledger.entries e ON e.kind = 'payment.succeeded' AND e.reference = p.id
        WHERE p.id = ANY($1) AND p.status = 'succeeded'`,
      [completedIds],
    );
    return r.rows[0].n;
  });
  if (verified !== completedIds.length) {
    errors.add(`completed but not succeeded+posted in the database: ${completedIds.length - verified}`);
  }
  log(`${elapsed()} ledger verify`);
  const lv = runTillpoint(['ledger', 'verify'], {
    DATABASE_URL: dbUrl,
    TILLPOINT_DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
  });
  const ledgerVerify = lv.status === 0 ? 'ok' : (lv.stderr || lv.stdout || `exit ${lv.status}`).trim();

  const completedPerS = round(verified / DURATION, 1);
  const result = {
    benchmark: 'payments',
    at: new Date().toISOString(),
    commit,
    dirty,
    label: args.label ?? null,
    completed_payments_per_s: completedPerS,
    // CPU per completed payment at peak: Tillpoint's own (api + PostgreSQL, issue 20's target
    // figure) and the tools' (bank simulator + load generator), which share the machine but are
    // not Tillpoint. Details per process in cpu_during_peak.
    tillpoint_cpu_ms_per_payment: cpuPeak?.ms_per_payment.api_and_postgres ?? null,
    tools_cpu_ms_per_payment: cpuPeak?.ms_per_payment.tools ?? null,
    pgbench_tps: pgbench ? round(pgbench.tps, 1) : null,
    ratio: pgbench ? round(completedPerS / pgbench.tps, 3) : null,
    create_p50_ms: create.percentile(50),
    create_p99_ms: create.percentile(99),
    completion_p50_ms: completion.percentile(50),
    completion_p99_ms: completion.percentile(99),
    end_to_end_p99_ms: endToEnd.percentile(99),
    api_rss_mb: apiMem ? round(apiMem.peak, 0) : null,
    ledger_verify: ledgerVerify,
    completed_payments: verified,
    half_peak: {
      offered_per_s: halfRate,
      started: half.started,
      dropped: half.dropped,
      create_p50_ms: halfCreate.percentile(50),
      create_p99_ms: halfCreate.percentile(99),
      completion_p99_ms: halfCompletion.percentile(99),
      cpu: cpuHalf,
    },
    create_only: createOnly,
    get_by_id: reads,
    errors: { peak: peakErrors, total: errors.counts },
    cpu_during_peak: cpuPeak,
    // Average number of the database's sessions in each state during the measured peak.
    postgres_sessions_during_peak: pgWaits,
    // Statements (round trips), commits and WAL bytes per completed payment during the peak.
    db_per_payment_during_peak: dbWork,
    pgbench: pgbench ?? pgbenchNote ?? null,
    config: {
      clients: CLIENTS,
      pgbench_clients: PGBENCH_CLIENTS,
      warmup_s: WARMUP,
      duration_s: DURATION,
      side_s: SIDE,
      half_rate: HALF_RATE ?? 'half the peak',
      merchants: MERCHANTS,
      database_pool_size: POOL ?? 'default',
      log_level: args['log-level'],
      roles: 'api + worker + bank-sim processes',
      cpu_prof: Boolean(cpuProfDir),
      cpu_prof_procs: cpuProfDir ? [...PROFILED] : [],
    },
    postgres: { source: pgServer.source, ...pgServer.settings },
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memory_gb: round(totalmem() / 2 ** 30, 1),
      os: `${platform()} ${release()}`,
      node: process.version,
    },
  };
  const line = JSON.stringify(result);
  process.stdout.write(line + '\n');
  if (!args['no-save']) {
    mkdirSync(join(args.results!, '..'), { recursive: true });
    appendFileSync(args.results!, line + '\n');
    log(`appended to ${args.results}`);
  }
  await cleanup(args.keep);
  log(`${elapsed()} done`);
  return ledgerVerify === 'ok' ? 0 : 1;
}

function diff(after: Record<string, number>, before: Record<string, number>) {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

main().then(
  (code) => process.exit(code),
  async (e) => {
    log(`failed: ${(e as Error).stack ?? e}`);
    await cleanup(args.keep, true);
    process.exit(1);
  },
);
