import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withFreePorts } from '../src/platform/freePort.ts';
import { apiCall } from './helpers/http.ts';
import { dataDirFromTemplate } from './helpers/cliDb.ts';
import { bankSimArgs, spawnUntil, stopProcess, type StartedProcess } from './helpers/processes.ts';

// The platform as real processes: `npm start`'s command with demo data and restarts, the bank
// simulator as its own process over HTTP, and the api and worker roles as separate services
// against one PostgreSQL.

const BIN = join(import.meta.dirname, '..', 'bin', 'tillpoint.mjs');

function start(args: string[], env: Record<string, string>, readyText: RegExp): Promise<StartedProcess> {
  return spawnUntil(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    ready: readyText,
  });
}

const stop = (child: ChildProcess) => stopProcess(child);

function cli(args: string[], env: Record<string, string>) {
  return spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

const api = apiCall;

async function until<T>(fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A fresh database on the test PostgreSQL, or undefined to use PGlite in a data dir. */
async function freshDatabaseUrl(): Promise<string | undefined> {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) return undefined;
  const name = `tp_proc_${randomBytes(5).toString('hex')}`;
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

// The three tests are independent (each its own data directory, ports and processes) and spend
// most of their time waiting on the processes they start, so they run side by side.
describe('processes', { concurrency: true }, () => {
  test('npm start: demo data, a paid QR, a refund, and a restart that keeps everything', async () => {
    // MQTT on free ports: other test files run brokers of their own at the same time. A first
    // start again, in a new data directory, if its port was taken before it bound it.
    let dataDir = '';
    let env: Record<string, string> = {};
    let s = await withFreePorts(1, ([port]) => {
      dataDir = mkdtempSync(join(tmpdir(), 'tillpoint-start-'));
      env = {
        TILLPOINT_DATA_DIR: dataDir,
        PORT: String(port),
        NODE_ENV: 'development',
        DATABASE_URL: '',
        MQTT_PORT: '0',
        MQTTS_PORT: '0',
      };
      return start(['serve'], env, /Demo:/);
    });
    try {
      assert.match(s.out(), /API: +http:\/\/127\.0\.0\.1:\d+\/v1/);
      const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8'));
      for (const k of ['api_key', 'api_url', 'merchant_id', 'terminal_ids']) assert.ok(k in demo, `demo.json has ${k}`);
      assert.equal(demo.terminal_ids.length, 2);
      const p = await api(demo.api_url, demo.api_key, 'POST', '/v1/payments', {
        terminal_id: demo.terminal_ids[0],
        amount: 14900,
        currency: 'INR',
        method: 'upi_qr',
      });
      assert.equal(p.status, 201);
      const paid = await fetch(`${demo.api_url}/sim/v1/customer-payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ upi_uri: p.body.upi_uri, payer_vpa: 'ravi@okaxis', outcome: 'success' }),
      });
      assert.equal(paid.status, 200);
      await until(
        async () =>
          (await api(demo.api_url, demo.api_key, 'GET', `/v1/payments/${p.body.id}`)).body.status === 'succeeded' ||
          undefined,
      );
      const r = await api(demo.api_url, demo.api_key, 'POST', `/v1/payments/${p.body.id}/refunds`, { amount: 4900 });
      assert.equal(r.body.status, 'succeeded');
      await stop(s.child);

      s = await start(['serve'], env, /Demo:/);
      assert.match(s.out(), /reused/);
      const again = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8'));
      assert.equal(again.merchant_id, demo.merchant_id, 'the demo is not loaded twice');
      assert.equal(again.api_key, demo.api_key);
      const kept = await api(demo.api_url, demo.api_key, 'GET', `/v1/payments/${p.body.id}`);
      assert.equal(kept.body.status, 'partially_refunded', 'nothing is lost between restarts');
      const ms = await api(demo.api_url, demo.api_key, 'GET', '/v1/merchants');
      assert.equal(ms.body.data.length, 1);
    } finally {
      await stop(s.child);
    }
    const verify = cli(['ledger', 'verify'], { TILLPOINT_DATA_DIR: dataDir, DATABASE_URL: '' });
    assert.equal(verify.status, 0, verify.stderr);
    assert.match(verify.stdout, /ledger ok: \d+ entries/);
  });

  test('the bank simulator as its own process, and api and worker as separate roles', async () => {
    const databaseUrl = await freshDatabaseUrl();
    const dataDir = mkdtempSync(join(tmpdir(), 'tillpoint-roles-'));
    // On PGlite, not a first start (the test above is): the migrated test template, no initdb.
    if (!databaseUrl) await dataDirFromTemplate(dataDir);
    const secret = randomBytes(24).toString('hex');
    let simPort = '';
    const sim = await withFreePorts(1, ([p]) => {
      simPort = String(p);
      return start(bankSimArgs(simPort), { BANK_SIM_SECRET: secret }, /listening/);
    });
    const env = {
      TILLPOINT_DATA_DIR: dataDir,
      PORT: '',
      NODE_ENV: 'development',
      DATABASE_URL: databaseUrl ?? '',
      BANK_SIM_URL: `http://127.0.0.1:${simPort}/sim`,
      BANK_SIM_SECRET: secret,
      EMBEDDED_BANK_SIM: 'false',
      STATUS_CHECK_FIRST_AFTER_SECONDS: '0',
      WORKER_INTERVAL_MS: '200',
      MQTT_PORT: '0',
      MQTTS_PORT: '0',
    };
    // PGlite is one process's database: separate roles need the real PostgreSQL.
    const procs: Awaited<ReturnType<typeof start>>[] = [];
    try {
      // The API's port, fresh again if it was taken before the API bound it.
      const startApi = (role: string) =>
        withFreePorts(1, ([p]) => {
          env.PORT = String(p);
          return start(['serve', '--role', role], env, /Demo:/);
        });
      if (databaseUrl) {
        procs.push(await startApi('api'));
        procs.push(await start(['serve', '--role', 'worker'], env, /role: worker/));
      } else {
        procs.push(await startApi('all'));
      }
      const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8'));
      assert.equal(
        (await fetch(`${demo.api_url}/sim/v1/customer-payments`, { method: 'POST' })).status,
        404,
        'no embedded simulator',
      );
      const p = await api(demo.api_url, demo.api_key, 'POST', '/v1/payments', {
        terminal_id: demo.terminal_ids[1],
        amount: 2500,
        currency: 'INR',
        method: 'upi_qr',
      });
      assert.equal(p.status, 201, JSON.stringify(p.body));
      const paid = await fetch(`http://127.0.0.1:${simPort}/sim/v1/customer-payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ upi_uri: p.body.upi_uri, payer_vpa: 'asha@oksbi' }),
      });
      assert.equal(paid.status, 200, await paid.text());
      await until(
        async () =>
          (await api(demo.api_url, demo.api_key, 'GET', `/v1/payments/${p.body.id}`)).body.status === 'succeeded' ||
          undefined,
      );
      // A collect request: the simulator approves it on its own and calls back over HTTP.
      const c = await api(demo.api_url, demo.api_key, 'POST', '/v1/payments', {
        terminal_id: demo.terminal_ids[1],
        amount: 999,
        currency: 'INR',
        method: 'upi_collect',
        payer_vpa: 'asha@oksbi',
      });
      assert.equal(c.status, 201);
      await until(
        async () =>
          (await api(demo.api_url, demo.api_key, 'GET', `/v1/payments/${c.body.id}`)).body.status === 'succeeded' ||
          undefined,
      );
    } finally {
      for (const p of procs) await stop(p.child);
      await stop(sim.child);
    }
    const verify = cli(['ledger', 'verify'], { TILLPOINT_DATA_DIR: dataDir, DATABASE_URL: databaseUrl ?? '' });
    assert.equal(verify.status, 0, verify.stderr);
  });

  test('a bad setting stops the start with a message naming it', () => {
    const r = cli(['serve'], { PORT: 'eighty', TILLPOINT_DATA_DIR: mkdtempSync(join(tmpdir(), 'tp-bad-')) });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /PORT/);
    const prod = cli(['serve'], {
      NODE_ENV: 'production',
      DATABASE_URL: '',
      TILLPOINT_DATA_DIR: mkdtempSync(join(tmpdir(), 'tp-bad-')),
    });
    assert.equal(prod.status, 2);
    assert.match(prod.stderr, /DATABASE_URL/);
    assert.ok(!existsSync(join(tmpdir(), 'never')));
  });
});
