// Rewards overhead benchmark: `npm run bench:rewards [-- options]`.
//
// The issue's bar: earning points must not cut payment throughput by more than 20%. This runs
// the same closed-loop payment load (QR created through the API, paid through the bank
// simulator, succeeded and posted) against two sets of merchants on one Tillpoint: merchants
// with no rewards program, and merchants whose program earns on every payment (base rate, a
// multiplier and a daily cap, so the rules are really evaluated). Phases alternate
// (without, with, with, without, …) so drift on the machine hits both sides alike. Afterwards
// every earned point is checked against its payment, and `ledger verify` and `rewards verify`
// must pass. Prints one JSON line and appends it to bench/results/rewards.jsonl.
//
// Reuses the payment benchmark's harness (bench/lib): the PostgreSQL at DATABASE_URL or a
// throwaway cluster, Tillpoint started as real processes, undici load generation.

import { parseArgs } from 'node:util';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release, platform } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { startBenchPostgres, checkpoint, withClient, type BenchPostgres } from './lib/postgres.ts';
import {
  startTillpoint,
  runTillpoint,
  killAll,
  cpuSeconds,
  postmasterOf,
  treeCpuSeconds,
  ROOT,
  type BenchProc,
} from './lib/procs.ts';
import { Recorder, Errors, Http, closedLoop, now, round } from './lib/load.ts';
import { dbWorkPerPayment, enableStatementCounts, markDbWork, type DbWorkMark } from './lib/dbWork.ts';
import { freePort } from '../src/platform/freePort.ts';

const USAGE = `Usage: npm run bench:rewards -- [options]

  --duration S     measured seconds of each phase (default 15)
  --warmup S       unmeasured seconds before each phase (default 3)
  --rounds N       pairs of phases (without + with), alternating order (default 2)
  --clients N      concurrent clients (default 16)
  --merchants N    merchants in each set (default 10)
  --customers N    distinct payer VPAs (default 100); each program sees each of them once in the
                   unmeasured priming run, so the measured phases are steady state (known customers)
  --prime S        unmeasured seconds of payments on both sets before the phases (default 20)
  --coalition      one platform coalition program for all "with" merchants, instead of one program each
  --results FILE   where to append the JSON line (default bench/results/rewards.jsonl)
  --no-save        print the JSON line only
  --label TEXT     free text stored with the result
  --keep           keep the benchmark database (and throwaway cluster) and the logs
  --help           this text

Environment: DATABASE_URL (a database of the benchmark's own is created on that server and dropped
afterwards). Without it, a throwaway cluster is started from /usr/lib/postgresql/*/bin.`;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    clients: { type: 'string', default: '16' },
    merchants: { type: 'string', default: '10' },
    customers: { type: 'string', default: '100' },
    prime: { type: 'string', default: '20' },
    coalition: { type: 'boolean', default: false },
    results: { type: 'string', default: join(ROOT, 'bench', 'results', 'rewards.jsonl') },
    'no-save': { type: 'boolean', default: false },
    label: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
function posInt(name: string, v: string | undefined, max: number): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) {
    process.stderr.write(`--${name} must be an integer 1..${max}, got "${v}"\n\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(v);
}
const DURATION = posInt('duration', args.duration, 3600);
const WARMUP = posInt('warmup', args.warmup, 600);
const ROUNDS = posInt('rounds', args.rounds, 50);
const CLIENTS = posInt('clients', args.clients, 1000);
const MERCHANTS = posInt('merchants', args.merchants, 10_000);
const CUSTOMERS = posInt('customers', args.customers, 10_000_000);
const PRIME = Number(args.prime) === 0 ? 0 : posInt('prime', args.prime, 3600);
/** The issue's limit on what earning may cost. */
const MAX_DROP_PCT = 20;

const log = (s: string) => process.stderr.write(`[bench:rewards] ${s}\n`);
let pgServer: BenchPostgres | undefined;
let workDir: string | undefined;

async function cleanup(keep: boolean, keepLogs = keep) {
  killAll();
  if (pgServer) await pgServer.stop({ keep }).catch((e) => log(`could not stop PostgreSQL: ${(e as Error).message}`));
  pgServer = undefined;
  if (workDir && !keepLogs) rmSync(workDir, { recursive: true, force: true });
  else if (workDir) log(`logs kept in ${workDir}`);
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => void cleanup(false).finally(() => process.exit(130)));
}

interface Till {
  terminal_id: string;
  merchant_id: string;
}

async function seed(api: Http, n: number, tag: string): Promise<Till[]> {
  const out: Till[] = [];
  for (let i = 0; i < n; i++) {
    const m = await api.request('POST', '/v1/merchants', {
      name: `Rewards Bench ${tag} ${i}`,
      vpa: `rb${tag}${i}@simbank`,
      mcc: '5411',
      acquiring_bank: 'SIMBANK',
    });
    if (m.status !== 201) throw new Error(`create merchant: ${m.status} ${JSON.stringify(m.body)}`);
    const s = await api.request('POST', `/v1/merchants/${m.body.id}/stores`, { name: 'Main' });
    const t = await api.request('POST', '/v1/terminals', { store_id: s.body.id });
    if (t.status !== 201) throw new Error(`create terminal: ${t.status} ${JSON.stringify(t.body)}`);
    out.push({ terminal_id: t.body.id, merchant_id: m.body.id });
  }
  return out;
}

/** The program every "with" merchant earns in: base rate, a multiplier that applies, a daily cap. */
const PROGRAM = {
  point_value_paise: 25,
  earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
  validity_days: 365,
  rules: [
    { kind: 'multiplier', multiplier_bp: 15_000, conditions: { mcc: ['5411'] } },
    { kind: 'cap_per_customer_day', points: 1_000_000 },
  ],
};

async function main() {
  const tag = randomBytes(3).toString('hex');
  workDir = mkdtempSync(join(tmpdir(), 'tillpoint-bench-rewards-'));
  pgServer = await startBenchPostgres({
    databaseUrl: process.env.DATABASE_URL || undefined,
    log,
    preload: ['pg_stat_statements'],
  });
  const dbUrl = pgServer.url;
  // Statements (round trips) per completed payment, when the server loaded pg_stat_statements.
  const countStatements = await enableStatementCounts(dbUrl);
  const simPort = await freePort();
  const apiPort = await freePort();
  const secret = randomBytes(24).toString('hex');
  const dataDir = join(workDir, 'data');
  mkdirSync(dataDir);
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: String(apiPort),
    TILLPOINT_DATA_DIR: dataDir,
    DATABASE_URL: dbUrl,
    EMBEDDED_BANK_SIM: 'false',
    BANK_SIM_URL: `http://127.0.0.1:${simPort}/sim`,
    BANK_SIM_SECRET: secret,
    LOG_LEVEL: 'warn',
    REWARDS_CUSTOMER_KEY: randomBytes(32).toString('hex'),
    MQTT_PORT: 'off',
    MQTTS_PORT: 'off',
  };
  const procs: BenchProc[] = [];
  procs.push(
    await startTillpoint({
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
    }),
  );
  // LOG_LEVEL=warn: the "Demo:" line is on stdout, not the logger.
  procs.push(
    await startTillpoint({ name: 'api', args: ['serve', '--role', 'api'], env, ready: /Demo:/, logDir: workDir }),
  );
  procs.push(
    await startTillpoint({
      name: 'worker',
      args: ['serve', '--role', 'worker'],
      env,
      ready: /role: worker/,
      logDir: workDir,
    }),
  );
  const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8')) as { api_url: string; api_key: string };
  // CPU per completed payment is the steadier figure on a shared machine: throughput moves with
  // whatever else runs, the work each payment costs does not.
  const postmaster = await withClient(dbUrl, async (c) =>
    postmasterOf((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid),
  );
  const cpuNow = () => ({
    api: cpuSeconds(procs[1].pid) ?? 0,
    sim: cpuSeconds(procs[0].pid) ?? 0,
    postgres: postmaster === undefined ? undefined : treeCpuSeconds(postmaster),
  });
  const api = new Http(demo.api_url, CLIENTS * 2, { authorization: `Bearer ${demo.api_key}` });
  const sim = new Http(`http://127.0.0.1:${simPort}`, CLIENTS * 2);

  const without = await seed(api, MERCHANTS, `${tag}n`);
  const withProgram = await seed(api, MERCHANTS, `${tag}y`);
  const programIds: string[] = [];
  if (args.coalition) {
    const p = await api.request('POST', '/v1/rewards/programs', { name: 'Bench Coalition', ...PROGRAM });
    if (p.status !== 201) throw new Error(`create program: ${p.status} ${JSON.stringify(p.body)}`);
    programIds.push(p.body.id);
    for (const t of withProgram) {
      const r = await api.request('POST', `/v1/rewards/programs/${p.body.id}/merchants`, {
        merchant_id: t.merchant_id,
      });
      if (r.status !== 201) throw new Error(`join program: ${r.status} ${JSON.stringify(r.body)}`);
    }
  } else {
    for (const t of withProgram) {
      const p = await api.request('POST', '/v1/rewards/programs', {
        merchant_id: t.merchant_id,
        name: 'Bench Points',
        ...PROGRAM,
      });
      if (p.status !== 201) throw new Error(`create program: ${p.status} ${JSON.stringify(p.body)}`);
      programIds.push(p.body.id);
    }
  }
  log(
    `${MERCHANTS} merchants without a program, ${MERCHANTS} with ${args.coalition ? 'one coalition program' : 'a program each'}; ${CUSTOMERS} customers`,
  );

  const errors = new Errors();
  /** Rewards did something wrong (a payment that should have earned did not, or the reverse). */
  const consistency = new Errors();
  const completedWith: string[] = [];
  const completedWithout: string[] = [];

  async function payment(tills: Till[], i: number) {
    const t = tills[i % tills.length];
    const t0 = now();
    const c = await api.request('POST', '/v1/payments', {
      terminal_id: t.terminal_id,
      amount: randomInt(100, 500_000),
      currency: 'INR',
      method: 'upi_qr',
    });
    const t1 = now();
    if (c.status !== 201) return void errors.add(`create ${c.status} ${c.body?.error?.code ?? ''}`);
    const p = await sim.request('POST', '/sim/v1/customer-payments', {
      upi_uri: c.body.upi_uri,
      payer_vpa: `bench.customer${randomInt(CUSTOMERS)}@okaxis`,
    });
    const t2 = now();
    if (p.status !== 200 || p.body?.response_code !== '00' || !p.body.callback?.delivered) {
      return void errors.add(`pay ${p.status} ${p.body?.response_code ?? ''} ${p.body?.callback?.status ?? ''}`);
    }
    return { id: c.body.id as string, create: t1 - t0, completion: t2 - t1, done: t2 };
  }

  async function phase(kind: 'with' | 'without') {
    const tills = kind === 'with' ? withProgram : without;
    await checkpoint(dbUrl); // so a checkpoint does not land in one side's window only
    const from = now() + WARMUP * 1000;
    const until = from + DURATION * 1000;
    let cpuA: ReturnType<typeof cpuNow> | undefined;
    let dbA: Promise<DbWorkMark> | undefined;
    const cpuTimer = setTimeout(() => {
      cpuA = cpuNow();
      dbA = markDbWork(dbUrl, countStatements);
    }, WARMUP * 1000);
    const create = new Recorder();
    const completion = new Recorder();
    const ids: string[] = [];
    let k = 0;
    await closedLoop(CLIENTS, until, async () => {
      const r = await payment(tills, k++);
      if (r && r.done >= from && r.done < until) {
        ids.push(r.id);
        create.add(r.create);
        completion.add(r.completion);
      }
    });
    clearTimeout(cpuTimer);
    const cpuB = cpuNow();
    const db = dbA
      ? await dbWorkPerPayment(dbUrl, await dbA, await markDbWork(dbUrl, countStatements), ids.length)
      : null;
    (kind === 'with' ? completedWith : completedWithout).push(...ids);
    const perS = round(ids.length / DURATION, 1);
    // Payments in flight at the window's edges make this approximate, alike for both sides.
    const perPayment = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined || ids.length === 0 ? null : round(((b - a) * 1000) / ids.length, 2);
    const cpuMs = cpuA
      ? {
          api: perPayment(cpuA.api, cpuB.api),
          postgres: perPayment(cpuA.postgres, cpuB.postgres),
          bank_sim: perPayment(cpuA.sim, cpuB.sim),
        }
      : null;
    log(
      `${kind} program: ${perS} completed payments/s (create p99 ${create.percentile(99)} ms, completion p99 ${completion.percentile(99)} ms` +
        `${db ? `, ${db.statements ?? '?'} statements and ${db.commits} commits per payment` : ''})`,
    );
    return {
      kind,
      per_s: perS,
      cpu_ms_per_payment: cpuMs,
      // Statements (round trips), commits and WAL bytes per completed payment in the window.
      db_per_payment: db,
      create_p99_ms: create.percentile(99),
      completion_p50_ms: completion.percentile(50),
      completion_p99_ms: completion.percentile(99),
    };
  }

  if (PRIME > 0) {
    // First payments of a customer in a program also create their customer row and ledger
    // accounts; prime both sets alike so the phases compare known customers.
    log(`priming: ${PRIME}s of unmeasured payments on both sets`);
    let k = 0;
    const until = now() + PRIME * 1000;
    await closedLoop(CLIENTS, until, async (c) => void (await payment(c % 2 ? withProgram : without, k++)));
  }
  const phases: Awaited<ReturnType<typeof phase>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order: ('with' | 'without')[] = r % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
    for (const kind of order) phases.push(await phase(kind));
  }
  await api.close();
  await sim.close();
  for (const p of procs.reverse()) await p.stop();

  // What the "with" side earned, checked payment by payment; the "without" side earned nothing.
  const check = await withClient(dbUrl, async (c) => {
    const posted = async (ids: string[]) =>
      (
        await c.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM payments.payments p JOIN ledger.entries e ON e.kind = 'payment.succeeded' AND e.reference = p.id
          WHERE p.id = ANY($1) AND p.status = 'succeeded'`,
          [ids],
        )
      ).rows[0].n;
    const earned = await c.query<{ n: number; points: string; pts_entries: number }>(
      `SELECT count(*)::int AS n, coalesce(sum(e.points), 0)::text AS points,
              (SELECT count(*)::int FROM ledger.entries l WHERE l.book = 'PTS' AND l.kind = 'rewards.earned' AND l.reference = ANY($1)) AS pts_entries
         FROM rewards.earnings e WHERE e.payment_id = ANY($1)`,
      [completedWith],
    );
    const stray = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM rewards.earnings WHERE payment_id = ANY($1)`,
      [completedWithout],
    );
    return {
      postedWith: await posted(completedWith),
      postedWithout: await posted(completedWithout),
      earned: earned.rows[0],
      stray: stray.rows[0].n,
    };
  });
  if (check.postedWith !== completedWith.length || check.postedWithout !== completedWithout.length)
    consistency.add('completed but not succeeded+posted');
  if (check.earned.n !== completedWith.length)
    consistency.add(`payments with a program that did not earn: ${completedWith.length - check.earned.n}`);
  if (check.stray !== 0) consistency.add(`payments without a program that earned: ${check.stray}`);
  const cli = (cmd: string[]) => {
    const r = runTillpoint(cmd, { DATABASE_URL: dbUrl, TILLPOINT_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    return r.status === 0 ? 'ok' : (r.stderr || r.stdout || `exit ${r.status}`).trim();
  };
  const ledgerVerify = cli(['ledger', 'verify']);
  const rewardsVerify = cli(['rewards', 'verify']);

  const mean = (k: 'with' | 'without') => {
    const xs = phases.filter((p) => p.kind === k).map((p) => p.per_s);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const ratio = round(mean('with') / mean('without'), 3);
  const statementsPer = (k: 'with' | 'without') => {
    const xs = phases.filter((p) => p.kind === k).map((p) => p.db_per_payment?.statements);
    return xs.every((x) => typeof x === 'number') && xs.length
      ? round((xs as number[]).reduce((a, b) => a + b, 0) / xs.length, 2)
      : null;
  };
  /** Mean CPU ms per payment of api + postgres on one side (null when PostgreSQL is not local). */
  const cpuCost = (k: 'with' | 'without') => {
    const xs = phases
      .filter((p) => p.kind === k && p.cpu_ms_per_payment?.api != null && p.cpu_ms_per_payment.postgres != null)
      .map((p) => p.cpu_ms_per_payment!.api! + p.cpu_ms_per_payment!.postgres!);
    return xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length, 2) : null;
  };
  const cpuWith = cpuCost('with');
  const cpuWithout = cpuCost('without');
  const dropPct = round((1 - ratio) * 100, 1);
  const head = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const result = {
    benchmark: 'rewards',
    at: new Date().toISOString(),
    commit: head.status === 0 ? head.stdout.trim() : 'unknown',
    label: args.label ?? null,
    without_program_per_s: round(mean('without'), 1),
    with_program_per_s: round(mean('with'), 1),
    ratio,
    throughput_drop_pct: dropPct,
    // api + postgres CPU per completed payment; the extra share is what earning costs in work.
    cpu_ms_per_payment: {
      without: cpuWithout,
      with: cpuWith,
      extra_pct: cpuWith && cpuWithout ? round((cpuWith / cpuWithout - 1) * 100, 1) : null,
    },
    // Mean over each side's phases of the statements (round trips) sent per completed payment.
    statements_per_payment: { without: statementsPer('without'), with: statementsPer('with') },
    max_drop_pct: MAX_DROP_PCT,
    pass: dropPct <= MAX_DROP_PCT && ledgerVerify === 'ok' && rewardsVerify === 'ok' && consistency.total === 0,
    phases,
    points: {
      payments_earned: check.earned.n,
      points: Number(check.earned.points),
      pts_ledger_entries: check.earned.pts_entries,
    },
    ledger_verify: ledgerVerify,
    rewards_verify: rewardsVerify,
    // Payments that did not complete (either side), and rewards consistency failures.
    errors: errors.counts,
    consistency_errors: consistency.counts,
    config: {
      clients: CLIENTS,
      duration_s: DURATION,
      warmup_s: WARMUP,
      prime_s: PRIME,
      rounds: ROUNDS,
      merchants_per_side: MERCHANTS,
      customers: CUSTOMERS,
      program: args.coalition ? 'coalition' : 'per merchant',
      rules: PROGRAM.rules.map((r) => r.kind),
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
  return result.pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (e) => {
    log(`failed: ${(e as Error).stack ?? e}`);
    await cleanup(args.keep, true);
    process.exit(1);
  },
);
