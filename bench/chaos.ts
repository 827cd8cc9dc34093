import { parseArgs } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { freePort } from '../src/platform/freePort.ts';
import { startTillpoint, runTillpoint, killAll, ROOT, type BenchProc } from './lib/procs.ts';
import { startPgCluster, startRedis, startMosquitto, startBankProxy, sleep, type BankMode } from './lib/services.ts';
import { startBalancer } from './lib/balancer.ts';
import { Http, Recorder, now, round } from './lib/load.ts';
import { compareBooks, readOurBooks, type BankBooks } from './lib/books.ts';
import { headerUsage } from './lib/usage.ts';

// The chaos run: PostgreSQL, Redis, Mosquitto, the bank simulator (behind a proxy that makes it
// misbehave) and two of each role (api behind a balancer, worker, terminal-gateway on Mosquitto),
// under steady load (HTTP payments, refunds and reward redemptions, MQTT terminals), while a
// schedule of faults runs: SIGKILL of a random process and its restart, a rolling SIGTERM of every
// process, PostgreSQL restarts (fast and immediate), Redis and the broker stopped for a few
// seconds, the bank answering 5xx after acting, timing out after acting, cutting the connection,
// and its messages going wrong (duplicate, early and out-of-order callbacks, status answers that
// contradict them). Then the invariants, among them the ledger held against the bank's books. One JSON line on stdout, kept in bench/results/chaos-*.json.
//
//   npm run chaos                 the full run (~4 minutes of load)
//   npm run chaos -- --short      the CI version (~40 s of load, fewer faults)

const { values: args } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    short: { type: 'boolean', default: false },
    duration: { type: 'string' },
    rate: { type: 'string' },
    'keep-logs': { type: 'boolean', default: false },
    'no-save': { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(headerUsage(import.meta.url));
  process.exit(0);
}
const SHORT = args.short!;
const DURATION_S = Number(args.duration ?? (SHORT ? 45 : 240));
/** HTTP payments offered per second; MQTT, refunds and redemptions are fractions of it. */
const RATE = Number(args.rate ?? (SHORT ? 4 : 8));
const RETRY_BUDGET_MS = 20_000;
const log = (s: string) => process.stderr.write(`[chaos ${((now() - T0) / 1000).toFixed(1)}s] ${s}\n`);
const T0 = now();
/** Outside services to stop if the run is interrupted. */
const cleanups: (() => unknown)[] = [];

// ---- what happened ---------------------------------------------------------------------------
interface Fault {
  kind: string;
  target?: string;
  start: number;
  end?: number;
  /** Time from the fault's end until every process said ready again (ms). */
  recovered_ms?: number | null;
  hard: boolean;
}
const faults: Fault[] = [];
interface Outcome {
  kind: 'http_payment' | 'refund' | 'redemption' | 'mqtt_payment';
  start: number;
  end: number;
  ok: boolean;
  attempts: number;
  firstTryOk: boolean;
  error?: string;
}
const outcomes: Outcome[] = [];
const acknowledged = { payments: new Set<string>(), refunds: new Set<string>() };
const errorsByLabel: Record<string, number> = {};
const countError = (label: string) => (errorsByLabel[label] = (errorsByLabel[label] ?? 0) + 1);
const answeredWithError: Record<string, number> = {};
const countAnswer = (code: string) => (answeredWithError[code] = (answeredWithError[code] ?? 0) + 1);
/** Requests the load generator did not send because too many were already waiting (the system fell behind). */
let dropped = 0;
const MAX_INFLIGHT = 200;

async function main() {
  const workDir = mkdtempSync(join(tmpdir(), 'tillpoint-chaos-'));
  const dataDir = join(workDir, 'data');
  const pkiDir = join(workDir, 'pki');
  mkdirSync(dataDir);
  log(`logs in ${workDir}; ${DURATION_S}s of load at ${RATE} HTTP payments/s${SHORT ? ' (short)' : ''}`);
  const loadBefore = loadavg();

  // ---- outside services ----------------------------------------------------------------------
  const pgc = await startPgCluster(log);
  cleanups.push(() => pgc.stop());
  const redis = await startRedis();
  cleanups.push(() => redis.close());
  const { initPki } = await import('../src/modules/terminals/pki.ts');
  const { issueGatewayCertificate } = await import('../src/modules/terminals/enrollment.ts');
  const { pkiFiles, gatewayCertFiles } = await import('../src/modules/terminals/pki.ts');
  await initPki(pkiDir, { hostnames: ['localhost', '127.0.0.1'] });
  const gatewayNames = ['tillpoint-gateway', 'tillpoint-gateway-2'];
  for (const n of gatewayNames) await issueGatewayCertificate(pkiDir, 30, n);
  const mq = await startMosquitto({ pkiDir, gateways: gatewayNames });
  cleanups.push(() => mq.close());
  const secret = randomBytes(24).toString('hex');
  const simPort = await freePort();
  const simArgs = [
    'bank-sim',
    '--port',
    String(simPort),
    '--latency-ms',
    '0',
    '--approve',
    '0.9',
    '--decline',
    '0.1',
    '--pending',
    '0',
    '--timeout',
    '0',
    // Message faults switched by the schedule (src/tools/bank-sim/faults.ts) and the bank's books.
    '--faults',
  ];
  const sim = await startTillpoint({
    name: 'bank-sim',
    args: simArgs,
    env: { BANK_SIM_SECRET: secret, LOG_LEVEL: 'warn' },
    ready: /listening/,
    logDir: workDir,
  });
  const bank = await startBankProxy(`http://127.0.0.1:${simPort}`);
  const apiPorts = [await freePort(), await freePort()];
  const lb = await startBalancer(apiPorts.map((p) => `http://127.0.0.1:${p}`));

  const baseEnv: Record<string, string> = {
    NODE_ENV: 'development', // the demo merchant, terminals and program are what the load uses
    TILLPOINT_DATA_DIR: dataDir, // shared: the keyring and audit key are the same for every process
    DATABASE_URL: pgc.url,
    DATABASE_POOL_SIZE: '8',
    // Four requests at work per connection; the rest wait (src/http/admission.ts). This bounds
    // what a graceful stop waits for on a machine where a request can take seconds.
    HTTP_MAX_IN_FLIGHT: '32',
    REDIS_URL: redis.url,
    EMBEDDED_BANK_SIM: 'false',
    BANK_SIM_URL: `${bank.url}/sim`,
    BANK_SIM_SECRET: secret,
    BANK_TIMEOUT_MS: '2000',
    PUBLIC_URL: lb.url, // the banks' callbacks come through the balancer, as in production
    MQTT_PORT: 'off',
    MQTTS_PORT: 'off',
    TERMINAL_PKI_DIR: pkiDir,
    QR_EXPIRY_SECONDS: '60',
    STATUS_CHECK_FIRST_AFTER_SECONDS: '5',
    STATUS_CHECK_INTERVAL_SECONDS: '5',
    WORKER_INTERVAL_MS: '500',
    WORKER_LEASE_SECONDS: '5',
    SHUTDOWN_TIMEOUT_SECONDS: '20',
    SHUTDOWN_DELAY_SECONDS: '1',
    RATE_LIMIT_IP: '100000/s',
    RATE_LIMIT_IP_BURST: '100000',
    RATE_LIMIT_KEY: '100000/s',
    RATE_LIMIT_KEY_BURST: '100000',
    LOG_LEVEL: 'info',
  };

  // ---- the six Tillpoint processes -----------------------------------------------------------
  interface Role {
    name: string;
    args: string[];
    env: Record<string, string>;
    ready: RegExp;
    probe: string;
    proc?: BenchProc;
    /** Set while the run itself stops or kills the process. */
    expectingExit?: boolean;
  }
  /** Processes that exited when nobody asked them to (a crash): restarted, as Kubernetes would. */
  const unexpectedExits: { name: string; code: number | null; signal: string | null; at_s: number }[] = [];
  let finishing = false;
  const roles: Role[] = [];
  for (const [i, port] of apiPorts.entries()) {
    roles.push({
      name: `api-${i + 1}`,
      args: ['serve', '--role', 'api'],
      env: { ...baseEnv, PORT: String(port) },
      ready: /Demo:/,
      probe: `http://127.0.0.1:${port}/readyz`,
    });
  }
  for (const i of [1, 2]) {
    const hp = await freePort();
    roles.push({
      name: `worker-${i}`,
      args: ['serve', '--role', 'worker'],
      env: { ...baseEnv, HEALTH_PORT: String(hp) },
      ready: /role: worker/,
      probe: `http://127.0.0.1:${hp}/readyz`,
    });
  }
  for (const [i, name] of gatewayNames.entries()) {
    const hp = await freePort();
    const g = gatewayCertFiles(pkiDir, name);
    roles.push({
      name: `gateway-${i + 1}`,
      args: ['serve', '--role', 'terminal-gateway'],
      env: {
        ...baseEnv,
        HEALTH_PORT: String(hp),
        MQTT_URL: mq.url,
        MQTT_SHARE_GROUP: 'chaos',
        MQTT_CLIENT_CERT_FILE: g.cert,
        MQTT_CLIENT_KEY_FILE: g.key,
        MQTT_CA_FILE: pkiFiles(pkiDir).caCert,
      },
      ready: /role: terminal-gateway/,
      probe: `http://127.0.0.1:${hp}/readyz`,
    });
  }
  const startRole = async (r: Role) => {
    r.expectingExit = false;
    const proc = await startTillpoint({
      name: r.name,
      args: r.args,
      env: r.env,
      ready: r.ready,
      logDir: workDir,
      timeoutMs: 120_000,
    });
    r.proc = proc;
    proc.child.once('exit', (code, signal) => {
      if (r.expectingExit || finishing || r.proc !== proc) return;
      unexpectedExits.push({ name: r.name, code, signal, at_s: round((now() - T0) / 1000, 1) });
      log(`${r.name} exited by itself (code ${code}, signal ${signal}); restarting it`);
      setTimeout(
        () => void startRole(r).catch((e) => log(`restart of ${r.name} failed: ${(e as Error).message.slice(0, 200)}`)),
        1000,
      );
    });
  };
  // The first api makes the demo data; the others find it.
  await startRole(roles[0]);
  await Promise.all(roles.slice(1).map(startRole));
  log(`started ${roles.map((r) => `${r.name} (${r.proc!.pid})`).join(', ')}`);

  // ---- what the load uses --------------------------------------------------------------------
  const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8')) as {
    api_key: string;
    merchant_id: string;
    terminal_ids: string[];
  };
  const api = new Http(lb.url, 64, { authorization: `Bearer ${demo.api_key}` });
  const simHttp = new Http(`http://127.0.0.1:${simPort}`, 32);
  // MQTT terminals: the demo's two, enrolled with client certificates for Mosquitto.
  const { connectTerminal } = await import('../src/tools/terminal-sdk/index.ts');
  const mqttTerminals: Awaited<ReturnType<typeof connectTerminal>>[] = [];
  for (const id of demo.terminal_ids) {
    const out = join(workDir, `terminal-${id}`);
    const r = runTillpoint(['terminals', 'enroll', id, '--out', out], baseEnv);
    if (r.status !== 0) throw new Error(`terminals enroll: ${r.stderr || r.stdout}`);
    mqttTerminals.push(
      await connectTerminal({
        url: mq.url,
        terminalId: id,
        cert: readFileSync(join(out, 'client.crt')),
        key: readFileSync(join(out, 'client.key')),
        ca: readFileSync(join(out, 'ca.crt')),
        requestTimeoutMs: 3000,
        retries: 6,
      }),
    );
  }
  const paid: { id: string; amount: number }[] = [];
  const customers = Array.from({ length: 20 }, (_, i) => `chaos.customer${i}@okaxis`);

  async function withRetries(
    kind: Outcome['kind'],
    fn: () => Promise<{ ok: boolean; retry: boolean; label?: string }>,
  ) {
    const start = now();
    let attempts = 0;
    let firstTryOk = false;
    let last: string | undefined;
    for (;;) {
      attempts++;
      let r: { ok: boolean; retry: boolean; label?: string };
      try {
        r = await fn();
      } catch (e) {
        r = { ok: false, retry: true, label: `network ${(e as { code?: string }).code ?? (e as Error).name}` };
      }
      if (attempts === 1) firstTryOk = r.ok;
      if (r.ok || !r.retry || now() - start > RETRY_BUDGET_MS) {
        if (!r.ok) countError(`${kind} ${r.label ?? last}`);
        outcomes.push({ kind, start, end: now(), ok: r.ok, attempts, firstTryOk, error: r.ok ? undefined : r.label });
        return;
      }
      last = r.label;
      await sleep(Math.min(2000, 200 * attempts));
    }
  }
  const retryable = (status: number) => status >= 500 || status === 429;
  /** A POST with an Idempotency-Key: every retry of one logical request sends the same key. */
  async function post(path: string, body: unknown, key: string): Promise<{ status: number; body: any }> {
    const r = await api.pool.request({
      method: 'POST',
      path,
      headers: { authorization: `Bearer ${demo.api_key}`, 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    });
    const text = await r.body.text();
    try {
      return { status: r.statusCode, body: text ? JSON.parse(text) : undefined };
    } catch {
      return { status: r.statusCode, body: { balancer: text.slice(0, 60) } };
    }
  }

  /** A QR payment over HTTP, paid by the customer at the simulated bank. */
  async function httpPayment(redeem = false) {
    const key = `chaos-${randomBytes(8).toString('hex')}`;
    const vpa = customers[randomInt(customers.length)];
    const body: Record<string, unknown> = {
      terminal_id: demo.terminal_ids[randomInt(demo.terminal_ids.length)],
      amount: randomInt(10_000, 200_000),
      currency: 'INR',
      method: 'upi_qr',
    };
    if (redeem) body.rewards = { vpa, redeem_points: randomInt(1, 20) };
    else body.rewards = { vpa };
    let created: { id: string; upi_uri: string; amount: number } | undefined;
    await withRetries(redeem ? 'redemption' : 'http_payment', async () => {
      const r = await post('/v1/payments', body, key);
      if (r.status === 201) {
        created = r.body;
        acknowledged.payments.add(r.body.id);
        return { ok: true, retry: false };
      }
      // A refusal with a stable code (not enough points) is a correct answer; so is "the bank is
      // unavailable" (503 bank_unavailable), the truth while the bank misbehaves.
      if (r.status >= 400 && r.status < 500 && r.status !== 429 && r.body?.error?.code)
        return { ok: true, retry: false, label: r.body.error.code };
      if (r.status === 503 && r.body?.error?.code === 'bank_unavailable') {
        countAnswer('bank_unavailable');
        return { ok: true, retry: false };
      }
      return {
        ok: false,
        retry: retryable(r.status),
        label: `${r.status} ${r.body?.error?.code ?? r.body?.balancer ?? ''}`.trim(),
      };
    });
    if (!created) return;
    const p = await simHttp
      .request('POST', '/sim/v1/customer-payments', { upi_uri: created.upi_uri, payer_vpa: vpa })
      .catch(() => undefined);
    if (p?.status === 200 && p.body?.response_code === '00') paid.push({ id: created.id, amount: created.amount });
  }

  async function refund() {
    const p = paid[randomInt(Math.max(1, paid.length))];
    if (!p) return;
    const key = `chaos-refund-${randomBytes(8).toString('hex')}`;
    const amount = Math.max(100, Math.floor(p.amount / 4));
    await withRetries('refund', async () => {
      const r = await post(`/v1/payments/${p.id}/refunds`, { amount }, key);
      const b = r.body;
      if (r.status === 201 || r.status === 202 || r.status === 200) {
        acknowledged.refunds.add(b.id);
        return { ok: true, retry: false };
      }
      // Not refundable (yet, or any more: fully refunded, payment still pending): a correct answer.
      if (r.status >= 400 && r.status < 500 && r.status !== 429 && b?.error?.code)
        return { ok: true, retry: false, label: b.error.code };
      return {
        ok: false,
        retry: retryable(r.status),
        label: `${r.status} ${b?.error?.code ?? b?.balancer ?? ''}`.trim(),
      };
    });
  }

  async function mqttPayment() {
    const t = mqttTerminals[randomInt(mqttTerminals.length)];
    const start = now();
    try {
      const p = await t.createPayment(
        { method: 'upi_qr', amount: randomInt(10_000, 100_000), currency: 'INR' },
        { id: `chaos-${randomBytes(8).toString('hex')}` },
      );
      acknowledged.payments.add(p.id);
      outcomes.push({ kind: 'mqtt_payment', start, end: now(), ok: true, attempts: 1, firstTryOk: true });
    } catch (e) {
      const code = (e as { code?: string }).code;
      const ok = Boolean(code && !['rate_limited', 'internal_error', 'service_unavailable'].includes(code));
      if (ok && code === 'bank_unavailable') countAnswer(code);
      if (!ok) countError(`mqtt_payment ${code ?? (e as Error).name}`);
      outcomes.push({ kind: 'mqtt_payment', start, end: now(), ok, attempts: 1, firstTryOk: ok, error: code });
    }
  }

  // ---- readiness watcher: when is everything ready again after a fault -----------------------
  // Each process is probed on its own loop; for each, when the last probe that answered 200 was
  // sent. A process has recovered from a fault once a probe sent after the fault's end said ready
  // (on a loaded machine a single slow probe must not count as not ready for the whole fleet).
  const readyNow = new Map<string, boolean>();
  const lastReadyProbeSent = new Map<string, number>();
  let watching = true;
  const watcher = Promise.all(
    roles.map(async (r) => {
      while (watching) {
        const sent = now();
        try {
          const res = await fetch(r.probe, { signal: AbortSignal.timeout(5000) });
          readyNow.set(r.name, res.status === 200);
          if (res.status === 200) lastReadyProbeSent.set(r.name, sent);
        } catch {
          readyNow.set(r.name, false);
        }
        await sleep(200);
      }
    }),
  );
  const allReadySince = (t: number) => roles.every((r) => (lastReadyProbeSent.get(r.name) ?? -1) > t);
  async function recovery(f: Fault) {
    f.end = now();
    const deadline = f.end + 120_000;
    while (!allReadySince(f.end) && now() < deadline) await sleep(50);
    f.recovered_ms = allReadySince(f.end) ? Math.round(now() - f.end) : null;
    log(`${f.kind}${f.target ? ` ${f.target}` : ''}: all ready ${f.recovered_ms} ms after the fault ended`);
  }

  // ---- the faults ----------------------------------------------------------------------------
  const kill9 = async (r: Role) => {
    const f: Fault = { kind: 'sigkill_restart', target: r.name, start: now(), hard: true };
    faults.push(f);
    r.expectingExit = true;
    r.proc!.child.kill('SIGKILL');
    await new Promise((res) => r.proc!.child.once('exit', res));
    await sleep(2000);
    await startRole(r);
    await recovery(f);
  };
  const rolling = async () => {
    const f: Fault = { kind: 'rolling_restart', start: now(), hard: false };
    faults.push(f);
    for (const r of roles) {
      r.expectingExit = true;
      const code = await r.proc!.stop(30_000);
      if (code !== 0) countError(`rolling stop ${r.name} exit ${code}`);
      await startRole(r);
      const started = now();
      while ((lastReadyProbeSent.get(r.name) ?? -1) <= started) await sleep(100);
    }
    await recovery(f);
  };
  const pgRestart = async (mode: 'fast' | 'immediate') => {
    const f: Fault = { kind: `postgres_restart_${mode}`, start: now(), hard: mode === 'immediate' };
    faults.push(f);
    await pgc.restart(mode);
    await recovery(f);
  };
  const outage = async (kind: string, svc: { stop(): Promise<void>; start(): Promise<void> }, ms: number) => {
    const f: Fault = { kind, start: now(), hard: false };
    faults.push(f);
    await svc.stop();
    await sleep(ms);
    await svc.start();
    await recovery(f);
  };
  const bankMisbehaves = async (mode: BankMode, ms: number) => {
    const f: Fault = { kind: `bank_${mode}`, start: now(), hard: false };
    faults.push(f);
    bank.setMode(mode);
    await sleep(ms);
    bank.setMode('ok');
    await recovery(f);
  };
  // The bank's messages go wrong while its books stay right (src/tools/bank-sim/faults.ts):
  // duplicate, early and out-of-order callbacks, status answers that contradict them.
  const setBankFaults = async (modes: string[]) => {
    const r = await simHttp.request('PUT', '/sim/v1/faults', { modes, hold_ms: 8000 });
    if (r.status !== 200) throw new Error(`bank-sim faults: ${r.status} ${JSON.stringify(r.body)}`);
  };
  const bankMessages = async (modes: string[], ms: number) => {
    const f: Fault = { kind: `bank_${modes.length > 1 ? 'messages' : modes[0]}`, start: now(), hard: false };
    faults.push(f);
    await setBankFaults(modes);
    await sleep(ms);
    await setBankFaults([]);
    await recovery(f);
  };
  const ALL_MESSAGE_FAULTS = [
    'duplicate_callbacks',
    'early_callbacks',
    'out_of_order_callbacks',
    'contradicting_status',
  ];
  const randomRole = () => roles[randomInt(roles.length)];
  const schedule: (() => Promise<void>)[] = SHORT
    ? [
        () => kill9(randomRole()),
        () => pgRestart('immediate'),
        () => bankMisbehaves('error_after', 4000),
        () => bankMessages(ALL_MESSAGE_FAULTS, 6000),
        () => outage('broker_stopped', mq, 4000),
      ]
    : [
        () => kill9(randomRole()),
        () => bankMisbehaves('error_after', 8000),
        () => bankMessages(['duplicate_callbacks'], 8000),
        () => pgRestart('fast'),
        () => outage('redis_stopped', redis, 6000),
        () => kill9(randomRole()),
        () => bankMisbehaves('timeout_after', 8000),
        () => bankMessages(['early_callbacks'], 8000),
        () => outage('broker_stopped', mq, 6000),
        () => pgRestart('immediate'),
        () => bankMisbehaves('reset_after', 8000),
        () => bankMessages(['out_of_order_callbacks'], 8000),
        () => bankMessages(['contradicting_status'], 8000),
        () => kill9(randomRole()),
        () => rolling(),
      ];

  // ---- run -----------------------------------------------------------------------------------
  const loadStart = now();
  // The load runs for DURATION_S, and on until the last fault has ended and recovered.
  let loadEnd = loadStart + DURATION_S * 1000;
  let faultsDone = false;
  const inflight = new Set<Promise<void>>();
  const spawnLoad = (fn: () => Promise<void>) => {
    if (inflight.size >= MAX_INFLIGHT) {
      dropped++;
      return;
    }
    const p: Promise<void> = fn()
      .catch((e) => void countError(`load ${(e as Error).message.slice(0, 80)}`))
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  const loadLoop = (async () => {
    let k = 0;
    while (now() < loadEnd || !faultsDone) {
      k++;
      spawnLoad(() => httpPayment(false));
      if (k % 2 === 0) spawnLoad(mqttPayment);
      if (k % 4 === 0) spawnLoad(refund);
      if (k % 5 === 0) spawnLoad(() => httpPayment(true));
      await sleep(1000 / RATE);
    }
  })();
  const faultLoop = (async () => {
    await sleep(SHORT ? 5000 : 10_000);
    const gap = Math.max(2000, (DURATION_S * 1000 - (SHORT ? 5000 : 10_000)) / (schedule.length + 1));
    for (const step of schedule) {
      const t = now();
      await step();
      const rest = gap - (now() - t);
      if (rest > 0) await sleep(rest + randomInt(0, 1000));
    }
    loadEnd = Math.max(loadEnd, now() + 5000);
    faultsDone = true;
  })();
  await Promise.all([loadLoop, faultLoop]);
  const loadSeconds = round((now() - loadStart) / 1000, 1);
  await Promise.all(inflight);
  log(`load done: ${outcomes.length} requests`);

  // ---- settle, then the invariants -----------------------------------------------------------
  // Wait for every open payment to reach a final state: QR expiry (60 s) plus a status check.
  const db = new pg.Client({ connectionString: pgc.url });
  await db.connect();
  const open = async () =>
    Number(
      (
        await db.query(
          `SELECT count(*)::int AS n FROM payments.payments WHERE status IN ('created','pending') AND NOT needs_reconciliation`,
        )
      ).rows[0].n,
    );
  // Short: up to a minute (on a loaded machine the workers' status checks lag behind).
  const settleDeadline = now() + (SHORT ? 60_000 : 120_000);
  while ((await open()) > 0 && now() < settleDeadline) await sleep(1000);
  const openLeft = await open();
  // "Stuck": open, past expiry by more than a minute, and not flagged. Never acceptable.
  const stuck = Number(
    (
      await db.query(
        `SELECT count(*)::int AS n FROM payments.payments WHERE status IN ('created','pending') AND NOT needs_reconciliation AND expires_at < now() - interval '60 seconds'`,
      )
    ).rows[0].n,
  );
  const ids = [...acknowledged.payments];
  const found = Number(
    (await db.query(`SELECT count(*)::int AS n FROM payments.payments WHERE id = ANY($1::text[])`, [ids])).rows[0].n,
  );
  const refundIds = [...acknowledged.refunds].filter(Boolean);
  const refundsFound = Number(
    (await db.query(`SELECT count(*)::int AS n FROM payments.refunds WHERE id = ANY($1::text[])`, [refundIds])).rows[0]
      .n,
  );
  const duplicated = Number(
    (
      await db.query(
        `SELECT count(*)::int AS n FROM (SELECT terminal_id, client_ref FROM payments.payments WHERE client_ref IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d`,
      )
    ).rows[0].n,
  );
  const overRefunded = Number(
    (
      await db.query(
        `SELECT count(*)::int AS n FROM payments.payments WHERE refunded_amount > amount OR refund_reserved > amount`,
      )
    ).rows[0].n,
  );
  const flagged = Number(
    (await db.query(`SELECT count(*)::int AS n FROM payments.payments WHERE needs_reconciliation`)).rows[0].n,
  );
  const byStatus = Object.fromEntries(
    (await db.query(`SELECT status, count(*)::int AS n FROM payments.payments GROUP BY 1`)).rows.map((r) => [
      r.status,
      Number(r.n),
    ]),
  );
  // The ledger against the bank's own books, reference by reference (bench/lib/books.ts).
  const booksRes = await simHttp.request<BankBooks>('GET', '/sim/v1/books');
  if (booksRes.status !== 200) throw new Error(`bank-sim books: ${booksRes.status}`);
  const books = compareBooks(booksRes.body, await readOurBooks(db));
  const bankFaultCounts = (await simHttp.request('GET', '/sim/v1/faults')).body?.counts;
  await db.end();
  const verify = (what: string[]) => {
    const r = runTillpoint(what, baseEnv, 300_000);
    return {
      ok: r.status === 0,
      exit: r.status,
      tail: (r.stdout + r.stderr).trim().split('\n').slice(-2).join(' | ').slice(0, 300),
    };
  };
  const ledgerVerify = verify(['ledger', 'verify']);
  const rewardsVerify = verify(['rewards', 'verify']);
  // Let the worker seal and sign what the run wrote, then check the trail.
  await sleep(3000);
  const auditVerify = verify(['audit', 'verify']);

  // ---- stop everything -----------------------------------------------------------------------
  watching = false;
  await watcher;
  for (const t of mqttTerminals) await t.close().catch(() => {});
  const stopCodes: Record<string, number | null> = {};
  finishing = true;
  await Promise.all(roles.map(async (r) => (stopCodes[r.name] = await r.proc!.stop(30_000))));
  await sim.stop();
  await api.close();
  await simHttp.close();
  await lb.close();
  await bank.close();
  await mq.close();
  await redis.close();
  pgc.stop();

  // ---- figures -------------------------------------------------------------------------------
  const inFault = (o: Outcome, hardOnly = false) =>
    faults.some((f) => (!hardOnly || f.hard) && o.start < (f.end ?? now()) + (f.recovered_ms ?? 0) && o.end > f.start);
  const share = (xs: Outcome[]) =>
    xs.length === 0 ? null : round((xs.filter((o) => o.ok).length / xs.length) * 100, 3);
  const duringFaults = new Recorder();
  for (const o of outcomes) if (inFault(o)) duringFaults.add(o.end - o.start);
  const all = new Recorder();
  for (const o of outcomes) all.add(o.end - o.start);
  const byKind = Object.fromEntries(
    (['http_payment', 'refund', 'redemption', 'mqtt_payment'] as const).map((k) => {
      const xs = outcomes.filter((o) => o.kind === k);
      return [k, { attempted: xs.length, answered: xs.filter((o) => o.ok).length, availability_pct: share(xs) }];
    }),
  );
  const rollWindow = faults.find((f) => f.kind === 'rolling_restart');
  const duringRoll = rollWindow ? outcomes.filter((o) => o.start < rollWindow.end! && o.end > rollWindow.start) : [];
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const result = {
    bench: 'chaos',
    version: SHORT ? 'short' : 'full',
    at: new Date().toISOString(),
    commit,
    machine: {
      cores: cpus().length,
      cpu: cpus()[0]?.model,
      memory_gb: round(totalmem() / 2 ** 30, 1),
      load_avg_1m_before: round(loadBefore[0], 1),
      load_avg_1m_after: round(loadavg()[0], 1),
      node: process.version,
    },
    setup: {
      duration_s: DURATION_S,
      load_s: loadSeconds,
      faults_planned: schedule.length,
      http_payments_per_s: RATE,
      processes: roles.map((r) => r.name),
      retry_budget_ms: RETRY_BUDGET_MS,
    },
    requests: {
      attempted: outcomes.length,
      answered: outcomes.filter((o) => o.ok).length,
      answered_first_try: outcomes.filter((o) => o.firstTryOk).length,
      answered_with_bank_unavailable: answeredWithError.bank_unavailable ?? 0,
      not_sent_load_generator_behind: dropped,
      by_kind: byKind,
    },
    availability_pct: share(outcomes),
    availability_without_hard_kills_pct: share(outcomes.filter((o) => !inFault(o, true))),
    availability_during_rolling_restart_pct: rollWindow ? share(duringRoll) : null,
    latency_ms: { all: all.summary(), during_faults: duringFaults.summary() },
    faults: faults.map((f) => ({
      kind: f.kind,
      target: f.target,
      duration_ms: Math.round((f.end ?? now()) - f.start),
      recovered_ms: f.recovered_ms,
      hard: f.hard,
    })),
    balancer: lb.stats,
    bank_proxy_calls: bank.counts,
    bank_message_faults: bankFaultCounts,
    invariants: {
      acknowledged_payments: ids.length,
      acknowledged_then_lost: ids.length - found,
      acknowledged_refunds: refundIds.length,
      refunds_acknowledged_then_lost: refundIds.length - refundsFound,
      duplicated_payments: duplicated,
      over_refunded_payments: overRefunded,
      ledger_verify: ledgerVerify,
      rewards_verify: rewardsVerify,
      audit_verify: auditVerify,
      payments_by_status: byStatus,
      flagged_for_reconciliation: flagged,
      open_at_end: openLeft,
      stuck_open_past_expiry: stuck,
      ledger_vs_bank_mismatches: books.mismatches,
      ledger_vs_bank: books,
    },
    stop_exit_codes: stopCodes,
    unexpected_exits: unexpectedExits,
    errors: errorsByLabel,
  };
  const violations =
    result.invariants.acknowledged_then_lost +
    result.invariants.refunds_acknowledged_then_lost +
    duplicated +
    overRefunded +
    stuck +
    books.mismatches +
    (ledgerVerify.ok ? 0 : 1) +
    (rewardsVerify.ok ? 0 : 1) +
    (auditVerify.ok ? 0 : 1) +
    (SHORT ? 0 : openLeft) +
    unexpectedExits.length;
  (result as Record<string, unknown>).invariant_violations = violations;
  const line = JSON.stringify(result);
  process.stdout.write(line + '\n');
  if (!args['no-save']) {
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, `chaos-${result.version}-${result.at.replace(/[:.]/g, '-')}.json`),
      JSON.stringify(result, null, 2) + '\n',
    );
    appendFileSync(join(dir, 'chaos.jsonl'), line + '\n');
  }
  if (!args['keep-logs']) log(`logs kept in ${workDir}`);
  process.exitCode = violations === 0 ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, async () => {
    killAll();
    for (const c of cleanups)
      await Promise.resolve()
        .then(c)
        .catch(() => {});
    process.exit(130);
  });
}
main().catch(async (e) => {
  process.stderr.write(`chaos: ${(e as Error).stack ?? e}\n`);
  killAll();
  for (const c of cleanups)
    await Promise.resolve()
      .then(c)
      .catch(() => {});
  process.exit(2);
});
