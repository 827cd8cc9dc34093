import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { findPgBinDir } from '../bench/lib/postgres.ts';

// The chaos run's short version (bench/chaos.ts --short): PostgreSQL, Redis, Mosquitto, the bank
// simulator and two of each role under load while a SIGKILL, an immediate PostgreSQL restart, a
// bank answering 5xx after acting, the bank's message faults (duplicate, early, out-of-order
// callbacks, status answers contradicting them) and a broker outage happen. What must hold whatever
// the machine's speed: no acknowledged payment or refund lost, none duplicated, the ledger, rewards
// and audit verifications clean, the ledger matching the bank's books, no payment stuck open past its expiry, every fault recovered from,
// every process stopping cleanly. Availability and latency are reported, not asserted (they are
// the full run's figures, in the README).

const missing = [
  !findPgBinDir() && 'PostgreSQL server binaries',
  spawnSync('redis-server', ['--version']).error && 'redis-server',
  spawnSync('mosquitto', ['-h']).error && 'mosquitto',
].filter(Boolean);
const needs = missing.length > 0 ? `needs ${missing.join(', ')}` : false;
// It starts its own servers, so it runs once: in CI's PostgreSQL pass (TEST_DATABASE_URL set), or
// whenever HA_TESTS=1.
const skip =
  needs ||
  (process.env.TEST_DATABASE_URL || process.env.HA_TESTS === '1'
    ? false
    : 'runs in the PostgreSQL pass: set TEST_DATABASE_URL or HA_TESTS=1');

test('chaos run, short version: zero invariant violations', { skip, timeout: 900_000 }, async () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, '..', 'bench', 'chaos.ts'), '--short', '--no-save'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  const line = out.trim().split('\n').pop() ?? '';
  assert.ok(line.startsWith('{'), `no result line (exit ${code}):\n${err.slice(-3000)}`);
  const r = JSON.parse(line);
  const inv = r.invariants;
  assert.ok(inv.acknowledged_payments > 0, 'the load made payments');
  assert.equal(inv.acknowledged_then_lost, 0);
  assert.equal(inv.refunds_acknowledged_then_lost, 0);
  assert.equal(inv.duplicated_payments, 0);
  assert.equal(inv.over_refunded_payments, 0);
  assert.equal(inv.stuck_open_past_expiry, 0);
  assert.equal(inv.ledger_verify.ok, true, inv.ledger_verify.tail);
  assert.equal(inv.rewards_verify.ok, true, inv.rewards_verify.tail);
  assert.equal(inv.audit_verify.ok, true, inv.audit_verify.tail);
  // The ledger against the bank simulator's own books, reference by reference.
  assert.equal(inv.ledger_vs_bank_mismatches, 0, JSON.stringify(inv.ledger_vs_bank.examples));
  assert.ok(inv.ledger_vs_bank.matched > 0, 'the books were compared');
  // The bank's message faults ran: copies, early and stale callbacks, held ones.
  const m = r.bank_message_faults;
  assert.ok(m.duplicate_callbacks_sent > 0, JSON.stringify(m));
  assert.ok(m.early_callbacks > 0, JSON.stringify(m));
  assert.ok(m.stale_callbacks_sent > 0, JSON.stringify(m));
  assert.ok(m.callbacks_held > 0, JSON.stringify(m));
  assert.equal(r.faults.length, r.setup.faults_planned, 'every planned fault ran');
  for (const f of r.faults) assert.notEqual(f.recovered_ms, null, `${f.kind}: the processes were not all ready again`);
  for (const [name, c] of Object.entries(r.stop_exit_codes)) assert.equal(c, 0, `${name} did not stop cleanly`);
  assert.deepEqual(r.unexpected_exits, [], 'no process crashed');
  assert.equal(r.invariant_violations, 0);
  assert.equal(code, 0);
});
