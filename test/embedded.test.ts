import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, withFreePorts } from '../src/platform/freePort.ts';
import { apiCall } from './helpers/http.ts';
import { dataDirFromTemplate } from './helpers/cliDb.ts';
import { spawnUntil, stopProcess, type StartedProcess } from './helpers/processes.ts';

// The embedded database (PGlite) belongs to one process. `npm start` owns its data directory;
// every `tillpoint` command run beside it works through the server's admin socket, never by
// opening the files itself, so nothing the server acknowledged is lost, even when the server is
// then killed with SIGKILL. A second server on the same directory refuses to start.
// (With DATABASE_URL the commands connect to PostgreSQL directly: test/processes.test.ts.)

const BIN = join(import.meta.dirname, '..', 'bin', 'tillpoint.mjs');
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function baseEnv(dataDir: string, port: string): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    NODE_ENV: 'development',
    TILLPOINT_DATA_DIR: dataDir,
    PORT: port,
    DATABASE_URL: '',
    MQTT_PORT: '0',
    MQTTS_PORT: '0',
    LOG_LEVEL: 'warn',
    // Operators' temporary passwords: cheap hashing in a test.
    PASSWORD_HASH_MEMORY_KIB: '1024',
    PASSWORD_HASH_TIME_COST: '1',
  };
}

function serve(env: Record<string, string>): Promise<StartedProcess> {
  // A fresh PGlite database takes a while on a loaded machine.
  return spawnUntil(process.execPath, [BIN, 'serve'], {
    env,
    ready: /Demo:/,
    timeoutMs: 240_000,
    onSpawn: (c) => children.add(c),
  });
}

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
}

const killHard = (child: ChildProcess) => stopProcess(child, 'SIGKILL');

const stopGently = (child: ChildProcess) => stopProcess(child);

const api = apiCall;

interface Demo {
  api_url: string;
  api_key: string;
  terminal_ids: string[];
}

/** A QR payment the simulated customer pays; returns its id once the API says it succeeded. */
async function paidPayment(demo: Demo, n: number): Promise<string> {
  const p = await api(demo.api_url, demo.api_key, 'POST', '/v1/payments', {
    terminal_id: demo.terminal_ids[0],
    amount: 10_000 + n,
    currency: 'INR',
    method: 'upi_qr',
  });
  assert.equal(p.status, 201, JSON.stringify(p.body));
  const paid = await fetch(`${demo.api_url}/sim/v1/customer-payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ upi_uri: p.body.upi_uri, payer_vpa: 'ravi@okaxis', outcome: 'success' }),
  });
  const answer = (await paid.json()) as any;
  assert.equal(paid.status, 200, JSON.stringify(answer));
  assert.equal(answer.callback?.delivered, true, 'the callback reached the API before the simulator answered');
  const got = await api(demo.api_url, demo.api_key, 'GET', `/v1/payments/${p.body.id}`);
  assert.equal(got.body.status, 'succeeded');
  return p.body.id as string;
}

describe('an embedded data directory has one owner', () => {
  test('every command beside a running server works through it; nothing acknowledged is lost to SIGKILL; a second server refuses', async () => {
    // Not about a first start (test/processes.test.ts is): the database is the migrated test
    // template, so the server's start runs no initdb.
    const dataDir = await dataDirFromTemplate(mkdtempSync(join(tmpdir(), 'tp-embedded-')));
    // Its port fresh again if it was taken before the server bound it.
    let env: Record<string, string> = {};
    let s = await withFreePorts(1, ([port]) => serve((env = baseEnv(dataDir, String(port)))));
    try {
      const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8')) as Demo;
      const before: string[] = [];
      for (let i = 0; i < 5; i++) before.push(await paidPayment(demo, i));

      // The README's step 5: reads the server's live data (10 entries: 5 payments, 2 legs each; on
      // today's main it read a stale copy and said "0 entries").
      const verify = await run(['ledger', 'verify'], env);
      assert.equal(verify.status, 0, verify.stderr);
      const entries = Number(/ledger ok: (\d+) entries/.exec(verify.stdout)?.[1]);
      assert.ok(entries >= 10, verify.stdout);

      const key = await run(['api-keys', 'create', '--name', 'beside the server'], env);
      assert.equal(key.status, 0, key.stderr);
      const created = JSON.parse(key.stdout) as { id: string; api_key: string };
      const op = await run(
        ['operators', 'create', '--email', 'beside@example.com', '--name', 'Beside', '--roles', 'viewer'],
        env,
      );
      assert.equal(op.status, 0, op.stderr);
      const operatorId = JSON.parse(op.stdout).operator.id as string;

      // Every other command that reads or writes the database, a few at a time (as an operator in
      // several terminals would), each beside the server that keeps taking payments.
      const trm = demo.terminal_ids[1];
      let signedSize = 0; // from `audit head` (after `audit seal`), for `audit consistency`
      const batches: (string[] | (() => string[]))[][] = [
        [['migrate'], ['rewards', 'verify'], ['banks', 'status'], ['access', 'review', '--json']],
        [
          ['banks', 'mark-down', 'SIMBANK2', '--reason', 'test'],
          ['operators', 'list'],
          ['terminals', 'violations'],
          ['keys', 'status'],
        ],
        [
          ['banks', 'mark-up', 'SIMBANK2'],
          ['audit', 'seal'],
          ['pki', 'crl'],
          ['terminals', 'certs', trm],
        ],
        [
          ['audit', 'verify'],
          ['terminals', 'secret', trm],
          ['audit', 'head'],
          ['operators', 'disable', operatorId],
        ],
        [
          ['keys', 'rotate', '--purpose', 'payer_vpa'],
          ['terminals', 'enroll', trm, '--out', join(dataDir, 'bundle')],
          () => ['audit', 'consistency', String(signedSize), String(signedSize)],
        ],
        [
          ['keys', 'rewrap-deks'],
          ['terminals', 'revoke', trm],
          ['operators', 'enable', operatorId],
        ],
      ];
      let n = 5;
      const after: string[] = [];
      for (const batch of batches) {
        const argvs = batch.map((a) => (typeof a === 'function' ? a() : a));
        const [results] = await Promise.all([
          Promise.all(argvs.map((args) => run(args, env))),
          paidPayment(demo, n++).then((id) => after.push(id)),
        ]);
        results.forEach((r, i) => assert.equal(r.status, 0, `tillpoint ${argvs[i].join(' ')}: ${r.stderr}${r.stdout}`));
        const head = argvs.findIndex((a) => a[0] === 'audit' && a[1] === 'head');
        if (head >= 0) signedSize = JSON.parse(results[head].stdout).head.tree_size;
      }
      while (after.length < 5) after.push(await paidPayment(demo, n++));

      const works = await api(demo.api_url, created.api_key, 'GET', '/v1/merchants');
      assert.equal(works.status, 200, 'the key the command printed works at once');

      const lock = JSON.parse(readFileSync(join(dataDir, 'pglite.lock'), 'utf8'));
      assert.equal(lock.pid, s.child.pid, 'the server holds the lock');
      assert.equal(lock.server, true);
      assert.equal(statSync(join(dataDir, 'admin')).mode & 0o777, 0o700);
      assert.equal(statSync(lock.socket).mode & 0o777, 0o600);
      assert.equal(statSync(join(dataDir, 'admin', 'token')).mode & 0o777, 0o600);

      // The power goes out: no shutdown, no checkpoint.
      await killHard(s.child);
      assert.ok(existsSync(join(dataDir, 'pglite.lock')), 'a killed server leaves its lock behind');
      s = await serve(env); // ...which the next server takes over, since its process is gone

      for (const id of [...before, ...after]) {
        const p = await api(demo.api_url, demo.api_key, 'GET', `/v1/payments/${id}`);
        assert.equal(p.status, 200, `payment ${id} survived`);
        assert.equal(p.body.status, 'succeeded');
      }
      const stillWorks = await api(demo.api_url, created.api_key, 'GET', '/v1/merchants');
      assert.equal(stillWorks.status, 200, 'the key made beside the server survived');
      const trail = await api(demo.api_url, created.api_key, 'GET', `/v1/audit/events?resource_id=${created.id}`);
      assert.equal(trail.status, 200);
      assert.deepEqual(
        trail.body.data.map((e: any) => e.action),
        ['api_key.created'],
        'and so did its audit record',
      );
      const ops = await run(['operators', 'list'], env);
      assert.equal(ops.status, 0, ops.stderr);
      assert.ok((JSON.parse(ops.stdout) as any[]).some((o) => o.id === operatorId && o.status === 'active'));
      const banks = (await run(['banks', 'status'], env)).stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(banks.find((b: any) => b.code === 'SIMBANK2')?.status ?? 'up', 'up');

      // A second server on the same directory refuses at once, naming the first, and leaves it be.
      const second = await run(['serve'], { ...env, PORT: String(await freePort()) });
      assert.equal(second.status, 1);
      assert.match(second.stderr, new RegExp(`in use by process ${s.child.pid} \\(tillpoint serve --role all`));
      assert.match(second.stderr, /Only one server may run on a data directory/);
      assert.equal(JSON.parse(readFileSync(join(dataDir, 'pglite.lock'), 'utf8')).pid, s.child.pid);

      const again = await run(['ledger', 'verify'], env);
      assert.equal(again.status, 0, again.stderr);
      assert.ok(Number(/ledger ok: (\d+) entries/.exec(again.stdout)?.[1]) >= 20, again.stdout);
      const audit = await run(['audit', 'verify'], env);
      assert.equal(audit.status, 0, audit.stderr);

      // A normal stop releases the lock and removes the socket and token.
      await stopGently(s.child);
      assert.ok(!existsSync(join(dataDir, 'pglite.lock')), 'lock released');
      assert.deepEqual(readdirSync(join(dataDir, 'admin')), []);
      // With no server, a command owns the directory for as long as it runs, and reads the same data.
      const alone = await run(['ledger', 'verify'], env);
      assert.equal(alone.status, 0, alone.stderr);
      assert.match(alone.stdout, /ledger ok: (\d+) entries/);
      assert.ok(!existsSync(join(dataDir, 'pglite.lock')), 'the command released it too');
    } finally {
      await killHard(s.child);
    }
  });
});
