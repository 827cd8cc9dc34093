import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { withFreePorts } from '../src/platform/freePort.ts';
import { httpJson } from './helpers/http.ts';
import { gatewaySkip } from './helpers/gateway.ts';
import { loadConfig } from '../src/config.ts';

// deploy/gateway/README.md, "Run it", followed as written: `npm start` with HTTP_TRUST_PROXY and
// PUBLIC_URL pointing at the gateway, then `tillpoint gateway start --listen … --upstream …`,
// both as the processes a reader starts (only the ports are free ones instead of 8080/8081, and
// the data directory a temporary one). A payment made through the gateway must be created and
// paid: Tillpoint's calls to the (embedded) bank never go out through its own inbound gateway,
// and the bank's callback comes in through it.

const ROOT = resolve(import.meta.dirname, '..');

function start(cmd: string, args: string[], env: Record<string, string>, out: string[]): ChildProcess {
  // Its own process group, so the test stops npm and the node it runs, and nothing else.
  const p = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  p.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
  return p;
}

async function stop(p: ChildProcess | undefined) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  try {
    process.kill(-p.pid!, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, 15_000);
  await gone;
  clearTimeout(timer);
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  ms: number,
  log: string[],
  /** Processes that must stay up meanwhile: one that exits ends the wait (with its output). */
  alive: (ChildProcess | undefined)[] = [],
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (alive.some((p) => p && (p.exitCode !== null || p.signalCode !== null)))
      throw new Error(`${what}: a process exited first; output:\n${log.join('').slice(-3000)}`);
    if (Date.now() > end)
      throw new Error(`${what} did not happen within ${ms} ms; output:\n${log.join('').slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("the embedded bank simulator is called on the API's own listener, never through PUBLIC_URL", () => {
  const at = (env: Record<string, string>) =>
    loadConfig({
      NODE_ENV: 'development',
      TILLPOINT_DATA_DIR: mkdtempSync(join(tmpdir(), 'tp-cfg-')),
      ...env,
    }).banks.map((b) => b.url);
  // SIMBANK speaks simbank at /sim, SIMBANK2 the PSP format at /sim/psp (BANK_SIM2_FORMAT).
  assert.deepEqual(at({ PORT: '8080', PUBLIC_URL: 'http://127.0.0.1:8081' }), [
    'http://127.0.0.1:8080/sim',
    'http://127.0.0.1:8080/sim/psp',
  ]);
  assert.deepEqual(at({ PORT: '9000', HOST: '0.0.0.0', PUBLIC_URL: 'https://pay.example.com' }), [
    'http://127.0.0.1:9000/sim',
    'http://127.0.0.1:9000/sim/psp',
  ]);
  assert.deepEqual(at({ PORT: '9000', HOST: '::1' }), ['http://[::1]:9000/sim', 'http://[::1]:9000/sim/psp']);
  assert.deepEqual(
    at({ PORT: '9000', BANK_SIM_URL: 'http://10.0.0.5:8090/sim' }),
    ['http://10.0.0.5:8090/sim', 'http://10.0.0.5:8090/sim'],
    'a separate simulator is used as configured',
  );
});

test("deploy/gateway/README.md's recipe as written: a payment through the gateway is created and paid", {
  skip: gatewaySkip(),
  timeout: 240_000,
}, async () => {
  const log: string[] = [];
  let appPort = 0;
  let gwPort = 0;
  let dir = '';
  let api: ChildProcess | undefined;
  let gw: ChildProcess | undefined;
  try {
    // Both ports fresh again, and both processes started again, if either port was taken before
    // its process bound it.
    await withFreePorts(2, async ([a, g]) => {
      appPort = a;
      gwPort = g;
      dir = mkdtempSync(join(tmpdir(), 'tillpoint-recipe-'));
      // World-searchable, so nginx (started as root in CI) can drop its workers to www-data.
      chmodSync(dir, 0o755);
      // HTTP_TRUST_PROXY=127.0.0.1 PUBLIC_URL=http://127.0.0.1:8081 npm start
      api = start(
        'npm',
        ['start'],
        {
          HTTP_TRUST_PROXY: '127.0.0.1',
          PUBLIC_URL: `http://127.0.0.1:${gwPort}`,
          PORT: String(appPort),
          TILLPOINT_DATA_DIR: dir,
          MQTT_PORT: 'off',
          MQTTS_PORT: 'off',
          NODE_ENV: 'development',
        },
        log,
      );
      // npx tillpoint gateway start --listen 127.0.0.1:8081 --upstream http://127.0.0.1:8080
      gw = start(
        process.execPath,
        [
          'bin/tillpoint.mjs',
          'gateway',
          'start',
          '--listen',
          `127.0.0.1:${gwPort}`,
          '--upstream',
          `http://127.0.0.1:${appPort}`,
        ],
        { TILLPOINT_DATA_DIR: dir },
        log,
      );
      try {
        const demoFile = join(dir, 'demo.json');
        await until(
          'the API writing its demo credentials',
          async () => existsSync(demoFile) && JSON.parse(readFileSync(demoFile, 'utf8')).api_key,
          180_000,
          log,
          [api, gw],
        );
        await until(
          'the gateway answering',
          async () => (await fetch(`http://127.0.0.1:${gwPort}/_gateway/health`)).ok,
          60_000,
          log,
          [api, gw],
        );
      } catch (e) {
        await stop(gw);
        await stop(api);
        throw e;
      }
    });
    const demo = JSON.parse(readFileSync(join(dir, 'demo.json'), 'utf8')) as {
      api_key: string;
      terminal_ids: string[];
    };
    const gateway = `http://127.0.0.1:${gwPort}`;

    const auth = { authorization: `Bearer ${demo.api_key}` };
    const created = await httpJson(
      `${gateway}/v1/payments`,
      'POST',
      { terminal_id: demo.terminal_ids[0], amount: 14900, currency: 'INR', method: 'upi_qr' },
      auth,
    );
    assert.equal(created.status, 201, `create through the gateway: ${created.status} ${JSON.stringify(created.body)}`);
    assert.ok(created.body.upi_uri, 'a QR to pay');

    // The customer pays (the simulator's own page, reached directly as a phone app would reach
    // the bank); the bank's success callback comes in through the gateway.
    const paid = await httpJson(`http://127.0.0.1:${appPort}/sim/v1/customer-payments`, 'POST', {
      upi_uri: created.body.upi_uri,
      payer_vpa: 'ravi.kumar@okaxis',
      outcome: 'success',
    });
    assert.ok(paid.status < 300, `the simulated customer payment: ${paid.status} ${JSON.stringify(paid.body)}`);
    const done = await until(
      'the payment succeeding',
      async () => {
        const r = await httpJson(`${gateway}/v1/payments/${created.body.id}`, 'GET', undefined, auth);
        return r.body?.status === 'succeeded' ? r : undefined;
      },
      60_000,
      log,
    );
    assert.equal(done.body.amount, 14900);
    // Nothing of ours was blocked by the WAF on the way.
    const events = join(dir, 'gateway', 'security-events.jsonl');
    const blocked = existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n').filter(Boolean) : [];
    assert.deepEqual(blocked, [], 'no security events');
  } finally {
    await stop(gw);
    await stop(api);
  }
});
