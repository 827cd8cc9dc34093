// Terminal gateway benchmark (npm run bench:mqtt). Two measurements, each against a gateway
// started as an operator would start it (`tillpoint serve`), over PostgreSQL (DATABASE_URL, or a
// throwaway cluster when PostgreSQL's binaries are installed) or, with --pglite, the embedded
// PGlite:
//
//   connections  N idle terminals (target 20,000) held by ONE gateway process with the embedded
//                broker (role terminal-gateway): each logs in with its MQTT secret, keeps a
//                persistent session and subscribes to /res and /evt, as the SDK does. Reports
//                how many it holds, how fast they connect, and the gateway's memory per
//                connection (RSS growth / connections). --tls: over the mutual-TLS listener, each
//                terminal with its own enrolled certificate (enrolment takes a while for many).
//   roundtrip    terminals send requests at a fixed rate (default 500/s, open loop): `ping` (the
//                MQTT path alone) and `payment.create` (a real UPI QR payment: database writes and
//                the bank simulator's HTTP call). Reports p50/p95/p99 round trip. Target p99 < 100 ms.
//                --layout split (default): a terminal-gateway process, and an api process serving
//                the bank simulator and its callbacks, as deployed; --layout all: one process.
//
// Usage: npm run bench:mqtt -- [connections|roundtrip|all] [--count 20000] [--rate 500]
//        [--duration 20] [--terminals 100] [--hold 10] [--layout split|all] [--tls] [--pglite]
//        [--cpu-prof DIR]   (the gateway process under node --cpu-prof; summarise the profile with
//                            bench/profile-summary.ts)
//        [--history N]      (roundtrip: N pending payments and request ids written and analysed
//                            before the run, as a minute of the load leaves them; default a minute of
//                            --rate, at least 10,000; 0 = an empty database, as before session 8)
//        [--perf DIR]       (Linux perf: the gateway's CPU during each measured window sampled by
//                            `perf record`, split by who owns the code that ran (package, module,
//                            or GC and compiler threads): gateway_cpu_by_owner in the result. Real
//                            CPU, unlike --cpu-prof, whose sampler counts a thread descheduled in a
//                            system call as busy there; data kept in DIR)
//        [--only ping|payment.create]  (roundtrip: measure one of the two; e.g. ping alone at a rate
//                            creates could not sustain on this machine)
//        [--label TEXT]     (kept in the result line)
// On PostgreSQL each measured run also reports what the database did per answered request:
// statements, commits and WAL bytes (db_per_ok), each statement's server time (statement_ms_per_ok,
// from pg_stat_statements, which the throwaway cluster preloads) and what its sessions waited on.
// Prints one JSON line with every figure and appends it to bench/results/mqtt.jsonl.
import { parseArgs } from 'node:util';
import { spawn, execSync } from 'node:child_process';
import {
  mkdtempSync,
  writeFileSync,
  readFileSync,
  appendFileSync,
  existsSync,
  mkdirSync,
  copyFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir, cpus, totalmem, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { createPgDb, createPgliteDb, type Db } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { newId } from '../src/platform/ids.ts';
import { connectTerminal, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';
import { percentile } from '../src/tools/fleet-sim/index.ts';
import { startBenchPostgres, type BenchPostgres } from './lib/postgres.ts';
import { sampleWaits } from './lib/waits.ts';
import { dbWorkPerPayment, enableStatementCounts, markDbWork, statementTimePer } from './lib/dbWork.ts';
import {
  startTillpoint,
  killAll,
  cpuSeconds,
  machineCpuSeconds,
  postmasterOf,
  treeCpuSeconds,
  ROOT,
  type BenchProc,
} from './lib/procs.ts';
import { freePort } from '../src/platform/freePort.ts';
import { headerUsage } from './lib/usage.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    count: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '500' },
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    terminals: { type: 'string', default: '100' },
    hold: { type: 'string', default: '10' },
    'client-procs': { type: 'string', default: '4' },
    pglite: { type: 'boolean', default: false },
    layout: { type: 'string', default: 'split' },
    tls: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    perf: { type: 'string' },
    history: { type: 'string' },
    only: { type: 'string' },
    label: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(headerUsage(import.meta.url));
  process.exit(0);
}
const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
const perfDir = values.perf ? resolve(values.perf) : undefined;
if (perfDir) mkdirSync(perfDir, { recursive: true });
const what = positionals[0] ?? 'all';
if (values.only !== undefined && !['ping', 'payment.create'].includes(values.only))
  throw new Error('--only takes ping or payment.create');
if (!['connections', 'roundtrip', 'all'].includes(what))
  throw new Error('usage: bench/mqtt.ts [connections|roundtrip|all] [options]');
const log = (s: string) => process.stderr.write(`[bench:mqtt] ${s}\n`);
const work = mkdtempSync(join(tmpdir(), 'tillpoint-bench-mqtt-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Soft and hard limits on open files, from /proc (Node has no getrlimit). */
function fileLimit(): { soft: number; hard: number } {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'))!;
  const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/).map(Number);
  return { soft, hard };
}
const rssBytes = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/**
 * What the gateway process asked of the kernel so far (Linux): write and read system calls
 * (`/proc/PID/io` syscw, syscr: write/writev and read on sockets and files, all threads), its
 * CPU split into user and system time, and context switches. Socket writes are much of a
 * create's cost (every MQTT packet, SQL statement and bank call is one), and V8's profiler
 * over-counts them (a thread descheduled in writev is sampled there), so they are counted here.
 */
function kernelCounts(pid: number) {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(io)?.[1] ?? NaN);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const sw = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    return {
      writes: field('syscw'),
      reads: field('syscr'),
      // clock ticks; the rate only matters as a ratio of the two
      userTicks: Number(f[11]),
      systemTicks: Number(f[12]),
      // the main thread's; the process's threads are in /proc/PID/task, the main one does the work
      switches: sw('voluntary_ctxt_switches') + sw('nonvoluntary_ctxt_switches'),
    };
  } catch {
    return undefined;
  }
}

interface Setup {
  db: Db;
  env: Record<string, string>;
  source: string;
  close(): Promise<void>;
}

/** A database with the schema, and the env a Tillpoint process needs to use it. */
async function database(): Promise<Setup & { pg?: BenchPostgres }> {
  if (!values.pglite) {
    try {
      // pg_stat_statements: the statements (and their time) per create, as bench:payments reports them.
      const pg = await startBenchPostgres({
        databaseUrl: process.env.DATABASE_URL,
        log,
        preload: ['pg_stat_statements'],
      });
      const db = createPgDb(pg.url, 20);
      await migrate(db);
      return {
        db,
        pg,
        env: { DATABASE_URL: pg.url, DATABASE_POOL_SIZE: '20' },
        source: `PostgreSQL ${pg.settings.server_version} (${pg.source})`,
        close: () => db.close(),
      };
    } catch (e) {
      log(`no PostgreSQL (${(e as Error).message.split('\n')[0]}); using PGlite`);
    }
  }
  const dataDir = join(work, 'data');
  const db = await createPgliteDb(join(dataDir, 'pglite'));
  await migrate(db);
  return { db, env: { TILLPOINT_DATA_DIR: dataDir, DATABASE_URL: '' }, source: 'PGlite', close: () => db.close() };
}

/** A merchant, a store and `n` terminals with development MQTT secrets, written straight to the tables. */
async function provision(
  db: Db,
  n: number,
): Promise<{ merchantId: string; storeId: string; terminals: { id: string; password: string }[] }> {
  const merchantId = newId('merchant');
  const storeId = newId('store');
  await db.query(
    `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'Bench Kirana', $2, '5411', 'SIMBANK')`,
    [merchantId, `bench${randomBytes(4).toString('hex')}@simbank`],
  );
  await db.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'Bench store')`, [
    storeId,
    merchantId,
  ]);
  const terminals: { id: string; password: string }[] = [];
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, () => ({
      id: newId('terminal'),
      password: 'tpmq_' + randomBytes(32).toString('base64url'),
    }));
    await db.tx(async (tx) => {
      await tx.query(
        `INSERT INTO merchants.terminals (id, merchant_id, store_id, label) SELECT unnest($1::text[]), $2, $3, 'bench'`,
        [batch.map((t) => t.id), merchantId, storeId],
      );
      await tx.query(
        `INSERT INTO terminals.mqtt_secrets (terminal_id, secret_hash) SELECT unnest($1::text[]), unnest($2::bytea[])`,
        [batch.map((t) => t.id), batch.map((t) => createHash('sha256').update(t.password).digest())],
      );
    });
    terminals.push(...batch);
  }
  return { merchantId, storeId, terminals };
}

/**
 * The state a minute of this load leaves behind, written before the measurement: `n` QR payments
 * still pending (the benchmark's customers never pay) and their terminals' completed request ids,
 * then ANALYZE. On an empty database the batched statements of a create (the request ids' claims
 * and responses, the group-committed insert and `created → pending` move) get generic plans made
 * while their tables hold a few hundred rows (a sequential scan of terminals.requests, a scan of
 * every created or pending payment through payments_due_expiry); PostgreSQL keeps such a plan until
 * autovacuum next analyses the table, so in the 20 s window each statement reads the whole table
 * again and costs more the longer the run. A database that has been taking payments has
 * statistics that say how big these tables are, and its plans go by primary key.
 */
async function provisionHistory(
  db: Db,
  p: { merchantId: string; storeId: string; terminals: { id: string }[] },
  n: number,
): Promise<void> {
  if (n <= 0) return;
  const ids = p.terminals.map((t) => t.id);
  // Ids below any uuidv7 one (pay_0000…), so the history sorts before the run's payments.
  await db.query(
    `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status,
                                   bank_code, expires_at, created_at, updated_at, client_ref)
     SELECT 'pay_' || lpad(to_hex(i), 32, '0'), 'H' || lpad(i::text, 20, '0'), $1, $2, ($3::text[])[1 + i % cardinality($3::text[])],
            'upi_qr', 100 * (1 + i % 500), 'INR', 'pending', 'SIMBANK', now() + interval '5 minutes',
            now() - interval '1 minute', now() - interval '1 minute', 'mqtt:h' || i
       FROM generate_series(1, $4::int) i`,
    [p.merchantId, p.storeId, ids, n],
  );
  await db.query(
    `INSERT INTO terminals.requests (terminal_id, request_id, type, request_hash, state, response, locked_until)
     SELECT ($1::text[])[1 + i % cardinality($1::text[])], 'h' || i, 'payment.create', md5(i::text), 'completed', '{}', now()
       FROM generate_series(1, $2::int) i`,
    [ids, n],
  );
  await db.query('ANALYZE payments.payments, terminals.requests');
}

/** `perf record` of one process's CPU (all its threads) until stop() (Linux perf; --perf). */
function recordPerf(pid: number, file: string) {
  const child = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '499', '-g', '-p', String(pid), '-o', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
    child.once('close', (code, signal) => r({ code, signal })),
  );
  child.once('error', (e) => (err += e.message));
  return {
    async stop(): Promise<string | undefined> {
      child.kill('SIGINT');
      // perf writes its data on SIGINT and then ends by that signal.
      const { code, signal } = await exited;
      return code === 0 || signal === 'SIGINT'
        ? undefined
        : `perf record failed (${code ?? signal}): ${err.trim().slice(0, 200)}`;
    },
  };
}

/**
 * Who the sampled CPU belongs to: each sample goes to the nearest frame, from the one that ran
 * upwards, of code someone owns (a package, a module of src/modules, a file of src/platform),
 * else to the Node.js internal file, else to V8/native code with no JavaScript caller; samples
 * of other threads (garbage collection helpers, the JIT compiler, libuv's pool) apart. A sample
 * in the kernel (a system call, softirq work on loopback) goes to whoever made the call, and is
 * counted in `kernel_pct` as well.
 */
async function perfOwners(file: string, mainTid: number) {
  const child = spawn('perf', ['script', '-i', file, '-F', 'tid,ip,sym'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const { createInterface } = await import('node:readline');
  const owners = new Map<string, { n: number; kernel: number }>();
  let total = 0;
  let tid = -1;
  let frames: string[] = [];
  const ownerOf = (sym: string): string | undefined => {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(sym);
    if (pkg) return pkg[1];
    const mod = /\/src\/modules\/([^/]+)\//.exec(sym);
    if (mod) return `src/modules/${mod[1]}`;
    const src = /\/src\/((?:platform\/)?[^/: ]+)/.exec(sym);
    return src ? `src/${src[1]}` : undefined;
  };
  const flush = () => {
    if (tid < 0) return;
    total++;
    let owner: string | undefined;
    if (tid !== mainTid) owner = '(other threads: GC, JIT compiler, libuv pool)';
    else {
      for (const f of frames) if ((owner = ownerOf(f))) break;
      owner ??= frames.map((f) => /JS:\S*\s+(node:[^:]+)/.exec(f)?.[1]).find(Boolean);
      owner ??= '(V8 and native code, no JavaScript caller)';
    }
    const o = owners.get(owner) ?? { n: 0, kernel: 0 };
    o.n++;
    if (/^[0-9a-f]+/.exec(frames[0] ?? '')?.[0].startsWith('ffffffff')) o.kernel++;
    owners.set(owner, o);
    tid = -1;
    frames = [];
  };
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith('\t')) frames.push(line.trim());
    else if (line.trim() === '') flush();
    else {
      flush();
      tid = Number(line.trim().split(/\s+/)[0]);
    }
  }
  flush();
  const pct = (n: number) => Math.round((n / Math.max(1, total)) * 1000) / 10;
  return {
    samples: total,
    kernel_pct: pct([...owners.values()].reduce((a, o) => a + o.kernel, 0)),
    owners: [...owners]
      .sort((a, b) => b[1].n - a[1].n)
      .filter(([, o]) => pct(o.n) >= 0.5)
      .map(([owner, o]) => ({ owner, pct: pct(o.n), kernel_pct: pct(o.kernel) })),
  };
}

let gateways = 0;
async function gateway(
  role: 'terminal-gateway' | 'all',
  env: Record<string, string>,
  mqttPort: number,
  extra: Record<string, string> = {},
): Promise<BenchProc> {
  return startTillpoint({
    // A log of its own per process: readiness is read from the log.
    name: `gateway-${role}-${++gateways}`,
    args: ['serve', '--role', role],
    env: {
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      MQTT_PORT: String(mqttPort),
      MQTTS_PORT: 'off',
      TERMINAL_PKI_DIR: join(work, 'pki'),
      TILLPOINT_DATA_DIR: join(work, 'data'),
      ...env,
      ...extra,
    },
    ready: /Tillpoint is running/,
    logDir: work,
    timeoutMs: 120_000,
    nodeFlags: [
      ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []),
      // perf names JIT-compiled JavaScript from the map file this writes (/tmp/perf-PID.map).
      ...(perfDir ? ['--perf-basic-prof'] : []),
    ],
  });
}

async function benchConnections(setup: Setup) {
  const limit = fileLimit();
  const requested = Number(values.count);
  // The gateway needs a few dozen descriptors of its own (stdio, listeners, database, epoll).
  const count = Math.min(requested, limit.soft - 64);
  if (count < requested)
    log(`open-file limit is ${limit.soft} (hard ${limit.hard}): holding ${count} instead of ${requested}`);
  log(`provisioning ${count} terminals`);
  const { terminals } = await provision(setup.db, count);
  let certs: { cert: string; key: string; ca: string }[] | undefined;
  if (values.tls) {
    const { initPki, loadCa, issueClientCertificate } = await import('../src/modules/terminals/pki.ts');
    await initPki(join(work, 'pki'), { hostnames: ['127.0.0.1'] });
    const ca = await loadCa(join(work, 'pki'));
    certs = [];
    for (let i = 0; i < terminals.length; i += 500) {
      const batch = await Promise.all(
        terminals.slice(i, i + 500).map((t) => issueClientCertificate(ca, { commonName: t.id, days: 1 })),
      );
      await setup.db.query(
        `INSERT INTO terminals.certificates (serial, terminal_id, fingerprint, not_before, not_after)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])`,
        [
          batch.map((c) => c.serial),
          terminals.slice(i, i + 500).map((t) => t.id),
          batch.map((c) => c.fingerprint),
          batch.map((c) => c.notBefore),
          batch.map((c) => c.notAfter),
        ],
      );
      certs.push(...batch.map((c) => ({ cert: c.certPem, key: c.keyPem!, ca: ca.certPem })));
      log(`enrolled ${certs.length}/${terminals.length}`);
    }
  }
  if (setup.source === 'PGlite') await setup.db.close(); // one process at a time on a PGlite directory
  const port = await freePort();
  const gw = await gateway(
    'terminal-gateway',
    setup.env,
    port,
    values.tls ? { MQTT_PORT: 'off', MQTTS_PORT: String(port) } : {},
  );
  await sleep(2000);
  const baseline = rssBytes(gw.pid);
  const procs = Math.max(1, Number(values['client-procs']));
  const per = Math.ceil(terminals.length / procs);
  const state = Array.from({ length: procs }, () => ({
    connected: 0,
    failed: 0,
    dropped: 0,
    done: false,
    last_error: undefined as string | undefined,
  }));
  const started = performance.now();
  const children = Array.from({ length: procs }, (_, i) => {
    const file = join(work, `clients-${i}.json`);
    const mine = terminals.slice(i * per, (i + 1) * per).map((t, j) => ({ ...t, ...certs?.[i * per + j] }));
    writeFileSync(
      file,
      JSON.stringify({
        url: `${values.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
        terminals: mine,
        concurrency: 100,
      }),
      { mode: 0o600 },
    );
    const c = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'mqtt-clients.ts'), file], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    c.stdout!.on('data', (d) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (l.trim()) Object.assign(state[i], JSON.parse(l));
    });
    return c;
  });
  const total = () =>
    state.reduce(
      (a, s) => ({ connected: a.connected + s.connected, failed: a.failed + s.failed, dropped: a.dropped + s.dropped }),
      { connected: 0, failed: 0, dropped: 0 },
    );
  while (!state.every((s) => s.done)) {
    await sleep(1000);
    const t = total();
    log(
      `connected ${t.connected}/${count} failed ${t.failed} gateway rss ${(rssBytes(gw.pid) / 1048576).toFixed(0)} MB`,
    );
  }
  const connectSeconds = (performance.now() - started) / 1000;
  const hold = Number(values.hold);
  log(`all connected; holding for ${hold} s`);
  await sleep(hold * 1000);
  const rss = rssBytes(gw.pid);
  const t = total();
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await gw.stop();
  const errors = state.map((s) => s.last_error).filter(Boolean);
  return {
    listener: values.tls ? 'mqtts (mutual TLS)' : 'mqtt (development secrets)',
    requested,
    open_file_limit: limit.soft,
    target: count,
    connected: t.connected,
    failed: t.failed,
    dropped_while_held: t.dropped,
    connect_seconds: Math.round(connectSeconds * 10) / 10,
    connects_per_s: Math.round(t.connected / connectSeconds),
    held_seconds: hold,
    gateway_rss_baseline_mb: Math.round(baseline / 1048576),
    gateway_rss_mb: Math.round(rss / 1048576),
    bytes_per_connection: t.connected ? Math.round((rss - baseline) / t.connected) : null,
    ...(errors.length ? { last_error: errors[0] } : {}),
  };
}

async function benchRoundTrip(setup: Setup & { pg?: BenchPostgres }) {
  const n = Number(values.terminals);
  const rate = Number(values.rate);
  const duration = Number(values.duration);
  const warmup = Number(values.warmup);
  let db = setup.db;
  if (setup.source === 'PGlite' && what === 'all') {
    db = await createPgliteDb(join(work, 'data', 'pglite'));
  }
  const provisioned = await provision(db, n);
  const { terminals } = provisioned;
  // Default: a minute of the offered rate (at least 10,000), as pending payments and request ids.
  const history = values.history === undefined ? Math.max(10_000, rate * 60) : Number(values.history);
  log(`history: ${history} pending payments and request ids, then ANALYZE`);
  await provisionHistory(db, provisioned, history);
  // PGlite: one process at a time on its directory. PostgreSQL: the provisioning connections would
  // close on the pool's idle timeout during the ping run, and a server process that has exited no
  // longer counts in PostgreSQL's CPU (its earlier work would be taken off that run's figure).
  await db.close();
  const port = await freePort();
  const httpPort = await freePort();
  const split = values.layout === 'split' && setup.source !== 'PGlite'; // PGlite is one process's database
  let api: BenchProc | undefined;
  let gw: BenchProc;
  if (split) {
    // The api process serves the bank simulator (and takes its callbacks); the gateway calls it as a bank.
    api = await startTillpoint({
      name: 'api',
      args: ['serve', '--role', 'api'],
      logDir: work,
      ready: /Tillpoint is running/,
      timeoutMs: 120_000,
      env: {
        NODE_ENV: 'development',
        LOG_LEVEL: 'warn',
        PORT: String(httpPort),
        TILLPOINT_DATA_DIR: join(work, 'data'),
        ...setup.env,
      },
    });
    // The simulated banks default to this process's own listener (banks.settings.ts): the gateway
    // has none serving /sim, so it is pointed at the api's.
    gw = await gateway('terminal-gateway', setup.env, port, {
      PUBLIC_URL: `http://127.0.0.1:${httpPort}`,
      BANK_SIM_URL: `http://127.0.0.1:${httpPort}/sim`,
    });
  } else {
    gw = await gateway('all', setup.env, port, { PORT: String(httpPort), EMBEDDED_BANK_SIM: 'true' });
  }
  // CPU used while a measurement runs, per answered request: the gateway's own figure does not
  // depend on how busy the rest of the machine is, the latencies do.
  const postmaster = setup.pg
    ? await (async () => {
        const c = createPgDb(setup.pg!.url, 1);
        try {
          return postmasterOf((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid);
        } finally {
          await c.close();
        }
      })()
    : undefined;
  const cpuNow = () => ({
    gateway: cpuSeconds(gw.pid),
    gatewayKernel: kernelCounts(gw.pid),
    api: api ? cpuSeconds(api.pid) : undefined,
    postgres: postmaster === undefined ? undefined : treeCpuSeconds(postmaster),
    machine: machineCpuSeconds(),
    self: process.cpuUsage(),
  });
  const clients: TerminalClient[] = [];
  for (const t of terminals)
    clients.push(
      await connectTerminal({
        url: `mqtt://127.0.0.1:${port}`,
        terminalId: t.id,
        password: t.password,
        requestTimeoutMs: 10_000,
        retries: 0,
      }),
    );

  const dbUrl = setup.pg?.url;
  const countStatements = dbUrl ? await enableStatementCounts(dbUrl) : false;

  async function run(kind: 'ping' | 'payment.create', seconds: number, measure: boolean) {
    const rtts: number[] = [];
    const errors: Record<string, number> = {};
    let sent = 0;
    const inflight = new Set<Promise<void>>();
    // What the database did meanwhile (measured runs on PostgreSQL): statements, commits and WAL
    // per answered request, the statements' server time, and what its sessions waited on.
    const sampler = measure && dbUrl ? await sampleWaits(dbUrl) : undefined;
    const work0 = measure && dbUrl ? await markDbWork(dbUrl, countStatements) : undefined;
    // The mark's own server process ends after its client does; its CPU is not the run's.
    if (work0) await sleep(300);
    const start = performance.now();
    const cpu0 = cpuNow();
    const perfFile = measure && perfDir ? join(perfDir, `gateway-${kind}.perf.data`) : undefined;
    const perf = perfFile ? recordPerf(gw.pid, perfFile) : undefined;
    const sampler0 = sampler ? cpuSeconds(sampler.backendPid) : undefined;
    let rr = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        const due = Math.floor(((Math.min(now, start + seconds * 1000) - start) / 1000) * rate);
        while (sent < due) {
          sent++;
          const c = clients[rr++ % clients.length];
          const t0 = performance.now();
          const p = (
            kind === 'ping'
              ? c.ping()
              : c.createPayment({ method: 'upi_qr', amount: 100 * (1 + (sent % 500)), currency: 'INR' })
          )
            .then(() => void rtts.push(performance.now() - t0))
            .catch(
              (e: { code?: string; name?: string }) =>
                void (errors[e.code ?? e.name ?? 'error'] = (errors[e.code ?? e.name ?? 'error'] ?? 0) + 1),
            )
            .finally(() => inflight.delete(p));
          inflight.add(p);
        }
        if (now >= start + seconds * 1000) {
          clearInterval(timer);
          resolve();
        }
      }, 2);
    });
    await Promise.allSettled([...inflight]);
    if (!measure) return undefined;
    const elapsed = (performance.now() - start) / 1000;
    const cpu1 = cpuNow();
    const perfFailed = await perf?.stop();
    if (perfFailed) log(perfFailed);
    const byOwner = perfFile && !perfFailed ? await perfOwners(perfFile, gw.pid) : undefined;
    // The sampler's own backend is the benchmark's CPU, not the database's work for Tillpoint.
    const samplerCpu = sampler ? (cpuSeconds(sampler.backendPid) ?? 0) - (sampler0 ?? 0) : 0;
    if (cpu1.postgres !== undefined) cpu1.postgres -= samplerCpu;
    const waits = sampler ? await sampler.stop() : null;
    const work1 = work0 ? await markDbWork(dbUrl!, countStatements) : undefined;
    const dbWork = work0 && work1 ? await dbWorkPerPayment(dbUrl!, work0, work1, rtts.length) : null;
    const statementMs = work0 && work1 ? statementTimePer(work0, work1, rtts.length) : null;
    const ms = (a?: number, b?: number) =>
      a === undefined || b === undefined || rtts.length === 0
        ? null
        : Math.round(((b - a) * 1000 * 100) / rtts.length) / 100;
    const pct = (a?: number, b?: number) =>
      a === undefined || b === undefined ? null : Math.round(((b - a) / elapsed) * 100);
    const selfS = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
    const machineBusy =
      cpu0.machine && cpu1.machine
        ? Math.round(((cpu1.machine.busy - cpu0.machine.busy) / (cpu1.machine.total - cpu0.machine.total)) * 100)
        : null;
    const k0 = cpu0.gatewayKernel;
    const k1 = cpu1.gatewayKernel;
    const per = (a: number, b: number) => Math.round(((b - a) / Math.max(1, rtts.length)) * 100) / 100;
    const gatewayKernel =
      k0 && k1
        ? {
            write_syscalls: per(k0.writes, k1.writes),
            read_syscalls: per(k0.reads, k1.reads),
            context_switches: per(k0.switches, k1.switches),
            system_share_of_cpu:
              Math.round(
                ((k1.systemTicks - k0.systemTicks) /
                  Math.max(1, k1.userTicks - k0.userTicks + k1.systemTicks - k0.systemTicks)) *
                  100,
              ) / 100,
          }
        : undefined;
    rtts.sort((a, b) => a - b);
    return {
      rate_target: rate,
      rate_achieved: Math.round((sent / elapsed) * 10) / 10,
      sent,
      ok: rtts.length,
      failed: sent - rtts.length,
      errors,
      p50_ms: percentile(rtts, 50),
      p95_ms: percentile(rtts, 95),
      p99_ms: percentile(rtts, 99),
      max_ms: percentile(rtts, 100),
      cpu: {
        gateway_pct_of_a_core: pct(cpu0.gateway, cpu1.gateway),
        gateway_ms_per_ok: ms(cpu0.gateway, cpu1.gateway),
        api_ms_per_ok: ms(cpu0.api, cpu1.api),
        postgres_ms_per_ok: ms(cpu0.postgres, cpu1.postgres),
        load_generator_ms_per_ok: ms(selfS(cpu0.self), selfS(cpu1.self)),
        machine_busy_pct_of_all_cores: machineBusy,
      },
      ...(gatewayKernel ? { gateway_kernel_per_ok: gatewayKernel } : {}),
      ...(byOwner
        ? {
            gateway_cpu_by_owner: {
              ...byOwner,
              // The shares applied to the gateway's CPU per answered request measured from /proc.
              owners: byOwner.owners.map((o) => ({
                ...o,
                ms_per_ok:
                  ms(cpu0.gateway, cpu1.gateway) === null
                    ? null
                    : Math.round((ms(cpu0.gateway, cpu1.gateway) ?? 0) * o.pct * 10) / 1000,
              })),
            },
          }
        : {}),
      ...(dbWork ? { db_per_ok: dbWork } : {}),
      ...(statementMs ? { statement_ms_per_ok: statementMs } : {}),
      ...(waits ? { postgres_sessions: waits } : {}),
    };
  }
  log(
    `round trip: ${n} terminals, ${rate}/s, ${warmup} s warm-up then ${duration} s measured, ping then payment.create`,
  );
  const only = values.only;
  let ping: Awaited<ReturnType<typeof run>>;
  let create: Awaited<ReturnType<typeof run>>;
  if (only !== 'payment.create') {
    await run('ping', warmup, false);
    ping = await run('ping', duration, true);
  }
  const rssBefore = rssBytes(gw.pid);
  if (only !== 'ping') {
    await run('payment.create', warmup, false);
    create = await run('payment.create', duration, true);
  }
  const rss = rssBytes(gw.pid);
  await Promise.allSettled(clients.map((c) => c.close()));
  await gw.stop();
  await api?.stop();
  if (perfDir) {
    // perf reads JIT symbols from /tmp/perf-PID.map: kept beside the data (copy it back to /tmp
    // to run `perf report` on the data later).
    const map = `/tmp/perf-${gw.pid}.map`;
    if (existsSync(map)) copyFileSync(map, join(perfDir, `perf-${gw.pid}.map`));
    rmSync(map, { force: true });
  }
  return {
    terminals: n,
    layout: split ? 'split' : 'all',
    ping,
    payment_create: create,
    gateway_rss_mb: Math.round(Math.max(rss, rssBefore) / 1048576),
    history_rows: history,
    target_p99_ms: 100,
  };
}

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});

let setup: (Setup & { pg?: BenchPostgres }) | undefined;
try {
  setup = await database();
  const result: Record<string, unknown> = {
    bench: 'mqtt',
    ...(values.label ? { label: values.label } : {}),
    at: new Date().toISOString(),
    commit: (() => {
      try {
        return execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8' }).trim();
      } catch {
        return null;
      }
    })(),
    // The load average says how much else ran on the machine: figures from a busy machine are not comparable.
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      memory_gb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      load_average_1m_at_start: Math.round(loadavg()[0] * 10) / 10,
    },
    database: setup.source,
  };
  if (what === 'connections' || what === 'all') result.connections = await benchConnections(setup);
  if (what === 'roundtrip' || what === 'all') result.roundtrip = await benchRoundTrip(setup);
  result.load_average_1m_at_end = Math.round(loadavg()[0] * 10) / 10;
  if (cpuProfDir) {
    result.cpu_prof = true;
    log(`CPU profile of the gateway process written to ${cpuProfDir}`);
  }
  const line = JSON.stringify(result);
  process.stdout.write(line + '\n');
  const dir = join(ROOT, 'bench', 'results');
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, 'mqtt.jsonl'), line + '\n');
} finally {
  killAll();
  if (setup && setup.source !== 'PGlite') await setup.close().catch(() => {});
  await setup?.pg?.stop().catch(() => {});
  if (!process.env.BENCH_KEEP_WORK) rmSync(work, { recursive: true, force: true });
}
