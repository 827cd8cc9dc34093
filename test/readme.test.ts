import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withFreePorts } from '../src/platform/freePort.ts';
import { spawnUntil } from './helpers/processes.ts';

// What a newcomer meets first, from a fresh clone: the README's walkthrough run exactly as written
// (against a server on its own TILLPOINT_DATA_DIR and port), and the commands' answers when
// there is no database or the command line is wrong.

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'tillpoint.mjs');
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...(process.env as Record<string, string>), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  return new Promise((resolve) =>
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
}

/** The JSON values in a stream of concatenated output (curl prints no newline after a body). */
function jsonValues(text: string): any[] {
  const out: any[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"' && depth > 0) inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && depth > 0 && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
  }
  return out;
}

// The walkthrough waits on its server and commands; the two short tests (their own missing data
// directory, no server) run beside it.
describe('the README, followed from a fresh clone', { concurrency: true }, () => {
  test('the walkthrough works as written with TILLPOINT_DATA_DIR set, and ends the same way every time', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### A paid QR payment and a refund, by hand'));
    const script = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(script, 'the walkthrough has a sh block');
    assert.doesNotMatch(script, /\.\/data\/demo\.json'|require\('\.\/data/, 'no hard-coded data directory');

    // A first start again, in a new data directory, if its port was taken before it bound it.
    let dataDir = '';
    const { child: server } = await withFreePorts(1, ([port]) => {
      dataDir = mkdtempSync(join(tmpdir(), 'tp-readme-'));
      const env = {
        NODE_ENV: 'development',
        TILLPOINT_DATA_DIR: dataDir,
        PORT: String(port),
        DATABASE_URL: '',
        MQTT_PORT: '0',
        MQTTS_PORT: '0',
      };
      return spawnUntil(process.execPath, [BIN, 'serve'], {
        cwd: ROOT,
        env: { ...(process.env as Record<string, string>), LOG_LEVEL: 'warn', ...env },
        ready: /Demo:/,
        timeoutMs: 240_000,
        onSpawn: (c) => children.add(c),
      });
    });
    try {
      // Twice: the outcome is asked for, not left to the simulator's odds.
      for (let round = 1; round <= 2; round++) {
        const r = await run('bash', ['-euo', 'pipefail', '-c', script], { TILLPOINT_DATA_DIR: dataDir });
        assert.equal(r.status, 0, `round ${round}: ${r.stderr}\n${r.stdout}`);
        const values = jsonValues(r.stdout);
        const payment = values[0];
        assert.match(payment.id, /^pay_/, r.stdout);
        const states = values.filter((v) => v.id === payment.id).map((v) => v.status);
        assert.ok(states.includes('succeeded'), `step 3 shows the payment paid: ${r.stdout}`);
        const refund = values.find((v) => v.amount === 4900 && v.payment_id === payment.id);
        assert.equal(refund?.status, 'succeeded', `step 4 refunds it: ${r.stdout}`);
        const entries = Number(/ledger ok: (\d+) entries/.exec(r.stdout)?.[1]);
        assert.ok(entries >= 4 * round, `step 5 checked the server's live ledger: ${r.stdout}`);
      }

      // "After the payment": the same shell goes on to the bank's file, the exception queue, a
      // reversal and the merchant's payout terms (the day's cycle C1 is ingested once).
      const after = readme.slice(readme.indexOf("### After the payment: the bank's file"));
      const more = /```sh\n([\s\S]*?)```/.exec(after)?.[1];
      assert.ok(more, 'the after-the-payment walkthrough has a sh block');
      const r = await run('bash', ['-euo', 'pipefail', '-c', `${script}\n${more}`], { TILLPOINT_DATA_DIR: dataDir });
      // The walkthrough saves the bank's file where the reader stands (the clone's root).
      for (const f of readdirSync(ROOT)) if (/^SIMBANK_SETTLEMENT_\d{8}_C\d+\.csv$/.test(f)) rmSync(join(ROOT, f));
      assert.equal(r.status, 0, `after the payment: ${r.stderr}\n${r.stdout}`);
      const values = jsonValues(r.stdout);
      assert.ok(
        values.some((v) => v.status === 'ingested' && v.outcomes?.amount_mismatch === 1),
        r.stdout,
      );
      assert.ok(values.some((v) => v.kind === 'amount_over' && v.status === 'resolved' && v.resolution === 'accept'));
      assert.ok(
        values.some((v) => v.reversal?.reason === 'operator' && v.reversal?.amount === 1000),
        r.stdout,
      );
      assert.ok(
        values.some((v) => v.schedule === 'T+0' && v.fee_bps === 50),
        r.stdout,
      );
      assert.match(r.stdout, /settlement ok: /);
      assert.match(r.stdout, /ledger ok: /);
    } finally {
      if (server.exitCode === null) {
        const gone = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await gone;
      }
    }
  });

  test('read-only commands without a database refuse, create nothing, and never say ok', async () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'tp-nodb-')), 'data');
    const env = { NODE_ENV: 'development', TILLPOINT_DATA_DIR: missing, DATABASE_URL: '' };
    const commands = [
      ['ledger', 'verify'],
      ['rewards', 'verify'],
      ['audit', 'verify'],
      ['banks', 'status'],
      ['keys', 'status'],
      ['access', 'review'],
      ['api-keys', 'create', '--name', 'x'],
    ];
    const results = await Promise.all(commands.map((c) => run(process.execPath, [BIN, ...c], env)));
    results.forEach((r, i) => {
      const name = commands[i].join(' ');
      assert.equal(r.status, 1, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /no database in .*: start the server first/, name);
      assert.doesNotMatch(r.stdout, /\bok\b/, name);
    });
    assert.ok(!existsSync(missing), 'no data directory was created');
  });

  test('a command without its subcommand prints usage (exit 2), not a configuration error', async () => {
    const r = await run(process.execPath, [BIN, 'terminals'], {});
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^usage:\n {2}tillpoint terminals enroll <terminal_id>/);
    assert.doesNotMatch(r.stderr, /Invalid configuration/);
    const l = await run(process.execPath, [BIN, 'ledger'], {});
    assert.equal(l.status, 2);
    assert.equal(l.stderr, 'usage: tillpoint ledger verify\n');
    const [a, k] = await Promise.all([
      run(process.execPath, [BIN, 'audit'], {}),
      run(process.execPath, [BIN, 'api-keys', 'create'], {}),
    ]);
    assert.equal(a.status, 2);
    assert.match(a.stderr, /^usage:\n {2}tillpoint audit verify/);
    assert.equal(k.status, 2, 'a missing option is a usage mistake too');
    assert.equal(k.stderr, 'tillpoint api-keys: --name: is required\n');
  });
});
