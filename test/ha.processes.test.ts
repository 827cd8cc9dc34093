import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { freePort, withFreePorts } from '../src/platform/freePort.ts';
import { bankSimArgs } from './helpers/processes.ts';
import { startTillpoint, killAll, type BenchProc } from '../bench/lib/procs.ts';
import {
  startPgCluster,
  startMosquitto,
  startBankProxy,
  sleep,
  type PgCluster,
  type Restartable,
} from '../bench/lib/services.ts';
import { findPgBinDir } from '../bench/lib/postgres.ts';
import { startBalancer } from '../bench/lib/balancer.ts';

// Graceful stop and readiness with real processes: a PostgreSQL cluster of the test's own (it is
// stopped and started), the bank simulator behind a proxy that can slow it down, Mosquitto, and
// the api, worker and terminal-gateway roles started as an operator starts them.

const hasPg = Boolean(findPgBinDir());
const hasMosquitto = !spawnSync('mosquitto', ['-h']).error;
const needs = hasPg ? false : 'needs PostgreSQL server binaries (/usr/lib/postgresql/*/bin)';
// It starts its own servers, so it runs once: in CI's PostgreSQL pass (TEST_DATABASE_URL set), or
// whenever HA_TESTS=1.
const skip =
  needs ||
  (process.env.TEST_DATABASE_URL || process.env.HA_TESTS === '1'
    ? false
    : 'runs in the PostgreSQL pass: set TEST_DATABASE_URL or HA_TESTS=1');

async function readyz(url: string): Promise<{ status: number; body: any }> {
  try {
    const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
    return { status: r.status, body: await r.json() };
  } catch (e) {
    return { status: 0, body: { error: (e as Error).message } };
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

function exited(p: BenchProc): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    if (p.child.exitCode !== null) return resolve({ code: p.child.exitCode, ms: 0 });
    p.child.once('exit', (code) => resolve({ code, ms: Date.now() - t0 }));
  });
}

describe('graceful stop and readiness, real processes', { skip, timeout: 300_000 }, () => {
  let pgc: PgCluster;
  let sim: BenchProc;
  let proxy: Awaited<ReturnType<typeof startBankProxy>>;
  const logDir = mkdtempSync(join(tmpdir(), 'tillpoint-ha-proc-'));
  const dataDir = join(logDir, 'data');
  const secret = randomBytes(16).toString('hex');
  let env: Record<string, string>;
  const procs: BenchProc[] = [];

  before(async () => {
    pgc = await startPgCluster();
    // Each listener here and below on a fresh port again when its port was taken before it bound it.
    let simPort = 0;
    sim = await withFreePorts(1, ([p]) => {
      simPort = p;
      return startTillpoint({
        name: 'bank-sim',
        args: bankSimArgs(simPort),
        env: { BANK_SIM_SECRET: secret, LOG_LEVEL: 'warn' },
        ready: /listening/,
        logDir,
      });
    });
    procs.push(sim);
    proxy = await startBankProxy(`http://127.0.0.1:${simPort}`);
    env = {
      NODE_ENV: 'development',
      TILLPOINT_DATA_DIR: dataDir,
      DATABASE_URL: pgc.url,
      EMBEDDED_BANK_SIM: 'false',
      BANK_SIM_URL: `${proxy.url}/sim`,
      BANK_SIM_SECRET: secret,
      MQTT_PORT: 'off',
      MQTTS_PORT: 'off',
      LOG_LEVEL: 'info',
      WORKER_INTERVAL_MS: '200',
    };
  });
  after(async () => {
    killAll();
    await proxy?.close();
    pgc?.stop();
  });

  test('api: SIGTERM while payments are in flight: readyz says draining, every request in flight is answered, new connections are refused, exit 0 in bounded time', async () => {
    let base = '';
    const api = await withFreePorts(1, ([port]) => {
      base = `http://127.0.0.1:${port}`;
      return startTillpoint({
        name: 'api',
        args: ['serve', '--role', 'api'],
        env: { ...env, PORT: String(port), SHUTDOWN_DELAY_SECONDS: '2', SHUTDOWN_TIMEOUT_SECONDS: '20' },
        ready: /Demo:/,
        logDir,
      });
    });
    procs.push(api);
    const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8')) as {
      api_key: string;
      terminal_ids: string[];
    };
    assert.equal((await readyz(base)).status, 200);
    // A slow bank: each create waits ~2 s on the bank, so they are all in flight at the SIGTERM.
    proxy.setDelay(2000);
    const creates = Array.from({ length: 8 }, (_, i) =>
      fetch(`${base}/v1/payments`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${demo.api_key}`,
          'content-type': 'application/json',
          'idempotency-key': `drain-${i}-${randomBytes(4).toString('hex')}`,
        },
        body: JSON.stringify({
          terminal_id: demo.terminal_ids[0],
          amount: 5000 + i,
          currency: 'INR',
          method: 'upi_qr',
        }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as any })),
    );
    await sleep(500);
    const gone = exited(api);
    api.child.kill('SIGTERM');
    // During SHUTDOWN_DELAY_SECONDS the API still answers, and says it is draining (once the
    // signal has reached it: on a loaded machine a probe sent at once may be answered first).
    const r = await until(
      'readyz says draining',
      async () => {
        const x = await readyz(base);
        return x.status === 503 ? x : undefined;
      },
      1500,
    );
    assert.equal(r.status, 503);
    assert.equal(r.body.status, 'draining');
    const answers = await Promise.all(creates);
    proxy.setDelay(0);
    for (const a of answers) assert.equal(a.status, 201, JSON.stringify(a.body));
    const { code, ms } = await gone;
    assert.equal(code, 0, readFileSync(api.logFile, 'utf8').slice(-2000));
    assert.ok(ms < 20_000, `took ${ms} ms`);
    await assert.rejects(fetch(`${base}/healthz`), 'nothing listens after the stop');
    const log = readFileSync(api.logFile, 'utf8');
    assert.match(log, /"msg":"stopped"/);
  });

  test('rolling restart of two apis behind a balancer, with a backlog: each stopping api refuses what it has not begun (503, sent to the other), finishes the rest and exits 0 well within SHUTDOWN_TIMEOUT_SECONDS; no request fails, none is done twice', async () => {
    const ports = [await freePort(), await freePort()];
    const lb = await startBalancer(ports.map((p) => `http://127.0.0.1:${p}`));
    // Four requests at work per api and a bank that takes 1 s; a burst before each stop leaves a
    // queue in both. Before admission (src/http/admission.ts) a stop waited for its whole
    // queue (here ~1 s per four requests queued), past a 6 s SHUTDOWN_TIMEOUT_SECONDS.
    const apiEnv = (port: number) => ({
      ...env,
      PORT: String(port),
      PUBLIC_URL: lb.url,
      DATABASE_POOL_SIZE: '4',
      HTTP_MAX_IN_FLIGHT: '4',
      HTTP_QUEUE_TIMEOUT_MS: '60000',
      SHUTDOWN_DELAY_SECONDS: '0',
      SHUTDOWN_TIMEOUT_SECONDS: '6',
    });
    const start = (i: number) =>
      startTillpoint({
        name: `roll-api-${i + 1}`,
        args: ['serve', '--role', 'api'],
        env: apiEnv(ports[i]),
        ready: /Demo:/,
        logDir,
        timeoutMs: 120_000,
      });
    // The first start of each on a fresh port again if its port was taken; the balancer then
    // learns the ports they have.
    const firstStart = (i: number) =>
      withFreePorts(1, ([p]) => {
        ports[i] = p;
        return start(i);
      });
    const apis = [await firstStart(0)];
    apis.push(await firstStart(1));
    lb.setBackends(ports.map((p) => `http://127.0.0.1:${p}`));
    procs.push(...apis);
    const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8')) as {
      api_key: string;
      terminal_ids: string[];
    };
    const answers: { key: string; status: number; attempts: number; body: any }[] = [];
    // A client as the chaos run's: the same Idempotency-Key on every retry, for up to 60 s.
    const create = async (i: number) => {
      const key = `roll-${i}-${randomBytes(4).toString('hex')}`;
      const t0 = Date.now();
      let attempts = 0;
      for (;;) {
        attempts++;
        let status = 0;
        let body: any;
        try {
          const r = await fetch(`${lb.url}/v1/payments`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${demo.api_key}`,
              'content-type': 'application/json',
              'idempotency-key': key,
            },
            body: JSON.stringify({
              terminal_id: demo.terminal_ids[0],
              amount: 7000 + i,
              currency: 'INR',
              method: 'upi_qr',
            }),
          });
          status = r.status;
          body = await r.json().catch(() => undefined);
        } catch (e) {
          body = { network: (e as Error).message };
        }
        if ((status !== 0 && status < 500) || Date.now() - t0 > 60_000) {
          answers.push({ key, status, attempts, body });
          return;
        }
        await sleep(200);
      }
    };
    proxy.setDelay(1000);
    const inflight: Promise<void>[] = [];
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        inflight.push(create(i));
        await sleep(200);
      }
    })();
    const stops: { name: string; code: number | null; ms: number; refused: number }[] = [];
    try {
      await sleep(3000);
      let burst = 0;
      for (const i of [0, 1]) {
        // A burst just before the stop: each api has four at work and more waiting.
        for (let k = 0; k < 24; k++) inflight.push(create(100_000 + burst++));
        await sleep(500);
        const t0 = Date.now();
        const code = await apis[i].stop(30_000);
        const ms = Date.now() - t0;
        const log = readFileSync(apis[i].logFile, 'utf8');
        const refused = (log.match(/"status":503/g) ?? []).length;
        stops.push({ name: apis[i].name, code, ms, refused });
        apis[i] = await start(i);
        procs.push(apis[i]);
        await sleep(1500);
      }
    } finally {
      loading = false;
      await load;
      await Promise.all(inflight);
      proxy.setDelay(0);
    }
    for (const s of stops) {
      assert.equal(s.code, 0, `${s.name} did not stop cleanly: ${JSON.stringify(stops)}`);
      assert.ok(s.ms < 6000, `${s.name} took ${s.ms} ms to stop`);
    }
    assert.ok(
      stops.some((s) => s.refused > 0),
      `a stopping api refused requests it had not begun: ${JSON.stringify(stops)}`,
    );
    assert.ok(lb.stats.retried > 0, 'the balancer sent refused requests to the other replica');
    const failed = answers.filter((a) => a.status !== 201);
    assert.deepEqual(failed, [], 'every create was answered 201');
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: pgc.url });
    await c.connect();
    const refs = answers.map((a) => a.body.id);
    const found = await c.query(`SELECT count(*)::int AS n FROM payments.payments WHERE id = ANY($1::text[])`, [refs]);
    const dup = await c.query(
      `SELECT count(*)::int AS n FROM (SELECT client_ref FROM payments.payments WHERE client_ref LIKE '%:roll-%' GROUP BY 1 HAVING count(*) > 1) d`,
    );
    await c.end();
    assert.equal(found.rows[0].n, answers.length, 'every acknowledged payment is there');
    assert.equal(dup.rows[0].n, 0, 'no create ran twice');
    for (const a of apis) assert.equal(await a.stop(30_000), 0);
    await lb.close();
  });

  test('the database restarting while a connection is checked out (mid-transaction, or idle between statements) fails that work, never the process', async () => {
    const { createPgDb } = await import('../src/platform/db.ts');
    const db = createPgDb(pgc.url, 4);
    try {
      await db.query('SELECT 1');
      // A transaction holding its connection while the server restarts.
      const tx = db.tx(async (q) => {
        await q.query('SELECT 1');
        await sleep(1500);
        await q.query('SELECT 1');
      });
      const txDone = tx.then(
        () => 'committed',
        (e) => `failed ${(e as { code?: string }).code ?? (e as Error).message.slice(0, 40)}`,
      );
      await sleep(300);
      await pgc.restart('fast');
      assert.match(await txDone, /^failed/);
      // The pool recovers by itself: new connections once the server is back.
      await until(
        'queries work again',
        async () =>
          await db.query('SELECT 1').then(
            () => true,
            () => false,
          ),
      );
    } finally {
      await db.close();
    }
  });

  test('worker: readyz on HEALTH_PORT follows the database (lost, then back by itself); SIGTERM hands the audit lease back and exits 0', async () => {
    let base = '';
    const worker = await withFreePorts(1, ([healthPort]) => {
      base = `http://127.0.0.1:${healthPort}`;
      return startTillpoint({
        name: 'worker',
        args: ['serve', '--role', 'worker'],
        env: { ...env, HEALTH_PORT: String(healthPort) },
        ready: /role: worker/,
        logDir,
      });
    });
    procs.push(worker);
    await until('worker ready', async () => (await readyz(base)).status === 200);
    await until('the worker holds the audit lease', async () => {
      const m = await (await fetch(`${base}/metrics`)).text();
      return /tillpoint_worker_lease_held\{lease="audit.signer"\} 1/.test(m);
    });
    await pgc.down();
    const lost = await until('not ready without the database', async () => {
      const r = await readyz(base);
      if (process.env.HA_DEBUG) console.log(r);
      return r.status === 503 ? r : undefined;
    });
    assert.equal(lost.body.checks.database, 'failed');
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'alive all the same: no restart needed');
    const downAt = Date.now();
    await pgc.up();
    const upAt = Date.now();
    await until('ready again once the database is back', async () => (await readyz(base)).status === 200, 20_000);
    const recoveredMs = Date.now() - upAt;
    assert.ok(
      recoveredMs < 10_000,
      `recovered ${recoveredMs} ms after the database came back (down ${upAt - downAt} ms)`,
    );
    const gone = exited(worker);
    worker.child.kill('SIGTERM');
    const { code } = await gone;
    assert.equal(code, 0, readFileSync(worker.logFile, 'utf8').slice(-2000));
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: pgc.url });
    await c.connect();
    const leases = await c.query(`SELECT holder FROM platform.leases WHERE name = 'audit.signer'`);
    await c.end();
    assert.equal(leases.rows.length, 0, 'the lease was handed back');
  });

  test('terminal-gateway on Mosquitto: not ready while the broker is down, ready again when it returns; SIGTERM exits 0', {
    skip: hasMosquitto ? false : 'no mosquitto',
  }, async () => {
    const pkiDir = join(logDir, 'pki');
    const { initPki } = await import('../src/modules/terminals/pki.ts');
    const { issueGatewayCertificate } = await import('../src/modules/terminals/enrollment.ts');
    const { pkiFiles, gatewayCertFiles } = await import('../src/modules/terminals/pki.ts');
    await initPki(pkiDir, { hostnames: ['localhost', '127.0.0.1'] });
    await issueGatewayCertificate(pkiDir);
    let mq: Restartable | undefined;
    try {
      mq = await startMosquitto({ pkiDir, gateways: ['tillpoint-gateway'] });
      const broker = mq;
      const g = gatewayCertFiles(pkiDir, 'tillpoint-gateway');
      let base = '';
      const gw = await withFreePorts(1, ([healthPort]) => {
        base = `http://127.0.0.1:${healthPort}`;
        return startTillpoint({
          name: 'gateway',
          args: ['serve', '--role', 'terminal-gateway'],
          env: {
            ...env,
            HEALTH_PORT: String(healthPort),
            MQTT_URL: broker.url,
            MQTT_CLIENT_CERT_FILE: g.cert,
            MQTT_CLIENT_KEY_FILE: g.key,
            MQTT_CA_FILE: pkiFiles(pkiDir).caCert,
            TERMINAL_PKI_DIR: pkiDir,
          },
          ready: /role: terminal-gateway/,
          logDir,
        });
      });
      procs.push(gw);
      await until('gateway ready', async () => (await readyz(base)).status === 200);
      await mq.stop();
      const r = await until('not ready without the broker', async () => {
        const x = await readyz(base);
        return x.status === 503 ? x : undefined;
      });
      assert.equal(r.body.checks.mqtt_broker, 'failed');
      assert.equal(r.body.checks.database, 'ok');
      await mq.start();
      await until('ready again once the broker is back', async () => (await readyz(base)).status === 200, 20_000);
      const gone = exited(gw);
      gw.child.kill('SIGTERM');
      assert.equal((await gone).code, 0, readFileSync(gw.logFile, 'utf8').slice(-2000));
    } finally {
      await mq?.close();
    }
  });
});
