import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../src/platform/testing.ts';
import type { Db } from '../src/platform/db.ts';
import { AppError } from '../src/platform/errors.ts';
import { FileRejected } from '../src/modules/settlement/recon/index.ts';
import {
  OPERATOR_A,
  OPERATOR_B,
  reconForTest,
  recordingReversals,
  seedPayment,
  simbankCsv,
  source,
} from '../src/modules/settlement/recon/testkit.ts';

// Ingestion, matching, outcomes and the exception queue, on the test database (PGlite, or the
// PostgreSQL at TEST_DATABASE_URL).

let db: Db;
before(async () => {
  db = await createTestDb();
});
after(async () => {
  await db.close();
});

const T0 = new Date('2026-12-03T04:00:00Z'); // 09:30 IST
const at = (min: number) => new Date(T0.getTime() + min * 60_000);
const cycleName = (n: number) => `SIMBANK_SETTLEMENT_20261203_C${n}.csv`;
let cycleNo = 0;
const nextCycle = () => cycleName(++cycleNo);

const outcomesOf = async (fileId: string) =>
  (
    await db.query<{ line_no: number; outcome: string; match_rule: string | null; exception_id: string | null }>(
      'SELECT line_no, outcome, match_rule, exception_id FROM settlement.recon_lines WHERE file_id = $1 ORDER BY line_no',
      [fileId],
    )
  ).rows;

test('a file with every kind of discrepancy: each line ends in one outcome, with the rule or the exception', async () => {
  const reversals = recordingReversals();
  const { recon } = reconForTest(db, { reversals });
  const ok1 = await seedPayment(db, { amount: 14_900, at: at(1) });
  const ok2 = await seedPayment(db, { amount: 5_000, at: at(2) });
  const off = await seedPayment(db, { amount: 10_000, at: at(3) });
  const missing = await seedPayment(db, { amount: 2_500, at: at(4) });
  const late = await seedPayment(db, { amount: 7_700, at: at(5), status: 'expired', flagged: 'success_after_close' });
  const byBankRef = await seedPayment(db, { amount: 3_300, at: at(6) });
  const csv = simbankCsv([
    { txnRef: ok1.txnRef, bankRef: ok1.bankRef, amount: 14_900, at: at(1) },
    { txnRef: ok2.txnRef, bankRef: ok2.bankRef, amount: 5_000, at: at(2) },
    { txnRef: ok2.txnRef, bankRef: ok2.bankRef, amount: 5_000, at: at(2) }, // duplicate
    { txnRef: off.txnRef, bankRef: off.bankRef, amount: 10_001, at: at(3) }, // a paisa over
    { txnRef: late.txnRef, bankRef: late.bankRef, amount: 7_700, at: at(5) }, // late success
    { txnRef: 'NOTOURS123', bankRef: '999999999999', amount: 1_234, at: at(6) }, // unknown
    { txnRef: 'BANKREFONLY1', bankRef: byBankRef.bankRef, amount: 3_300, at: at(6) }, // matched on RRN
    { txnRef: 'LAST1', amount: 100, at: at(7) },
  ]);
  const r = await recon.ingest({ bankCode: 'SIMBANK', open: source(csv), fileName: nextCycle(), actor: OPERATOR_A });
  assert.equal(r.status, 'ingested');
  assert.equal(r.lines, 8);
  assert.equal(r.skipped_lines, 2); // the header and the TOTAL trailer
  assert.equal(r.cycle_key, '2026-12-03-C1');
  const lines = await outcomesOf(r.file_id!);
  assert.deepEqual(
    lines.map((l) => l.outcome),
    ['matched', 'matched', 'duplicate', 'amount_mismatch', 'late_success', 'unknown', 'matched', 'unknown'],
  );
  assert.deepEqual(
    lines.filter((l) => l.outcome === 'matched').map((l) => l.match_rule),
    ['txn_ref_exact', 'txn_ref_exact', 'bank_ref_amount_time'],
  );
  for (const l of lines) assert.equal(l.outcome === 'matched', l.exception_id === null, `line ${l.line_no}`);
  assert.equal(r.matched_paise, 14_900 + 5_000 + 3_300);
  assert.deepEqual(r.exceptions, { amount_over: 1, duplicate: 1, late_success: 1, missing: 1, unknown: 2 });
  // The late success asked for a reversal (the RBI clock starts) and cleared the payment's flag.
  assert.deepEqual(reversals.calls, [
    { paymentId: late.id, amountPaise: 7_700, reason: 'late_success', sourceRef: `recon:${r.file_id}:6` }, // physical line 6: the header is line 1
  ]);
  const flag = await db.query<{ needs_reconciliation: boolean }>(
    'SELECT needs_reconciliation FROM payments.payments WHERE id = $1',
    [late.id],
  );
  assert.equal(flag.rows[0].needs_reconciliation, false);
  const miss = await recon.listExceptions({ kind: 'missing', limit: 10 });
  assert.ok(miss.some((e) => e.payment_id === missing.id && e.status === 'open'));
  // Every line and every exception is written; the file's totals are what settlement reads.
  const file = await recon.getFile(r.file_id!);
  assert.equal(file.credit_paise, 14_900 + 5_000 * 2 + 10_001 + 7_700 + 1_234 + 3_300 + 100);
  assert.equal(file.debit_paise, 0);

  // The same file again, and another file for the same cycle: nothing changes, and it says so.
  const again = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(csv),
    fileName: cycleName(1),
    actor: OPERATOR_A,
  });
  assert.equal(again.status, 'already_ingested');
  assert.equal(again.file_id, r.file_id);
  const other = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(simbankCsv([{ txnRef: missing.txnRef, amount: 2_500, at: at(4) }])),
    fileName: cycleName(1),
    actor: OPERATOR_A,
  });
  assert.equal(other.status, 'cycle_already_processed');
  const count = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM settlement.recon_files WHERE bank_code = $1',
    ['SIMBANK'],
  );
  assert.equal(count.rows[0].n, 1);

  // The next cycle's file has the missing payment: its exception is resolved by the file.
  const next = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(simbankCsv([{ txnRef: missing.txnRef, amount: 2_500, at: at(40) }])),
    fileName: nextCycle(),
    actor: OPERATOR_A,
  });
  assert.deepEqual(next.outcomes, { matched: 1 });
  const resolved = await recon.listExceptions({ kind: 'missing', limit: 10 });
  assert.equal(resolved.find((e) => e.payment_id === missing.id)?.resolution, 'matched_by_file');
});

test('a dry run reports what would match and stores nothing', async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 999, at: at(100) });
  const name = nextCycle();
  const csv = simbankCsv([
    { txnRef: p.txnRef, amount: 999, at: at(100) },
    { txnRef: 'XYZ', amount: 5, at: at(100) },
  ]);
  const r = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(csv),
    fileName: name,
    dryRun: true,
    actor: OPERATOR_A,
  });
  assert.equal(r.status, 'dry_run');
  assert.equal(r.file_id, null);
  assert.deepEqual(r.outcomes, { matched: 1, unknown: 1 });
  assert.deepEqual(r.matched_by_rule, { txn_ref_exact: 1 });
  const n = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM settlement.recon_files WHERE cycle_key = $1',
    [r.cycle_key],
  );
  assert.equal(n.rows[0].n, 0);
  const outcomes = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM settlement.recon_item_outcomes x
      WHERE NOT EXISTS (SELECT 1 FROM settlement.recon_files f WHERE f.id = x.file_id)`,
  );
  assert.equal(outcomes.rows[0].n, 0, 'the dry run left no outcome behind');
  // And the real run afterwards does the same.
  const real = await recon.ingest({ bankCode: 'SIMBANK', open: source(csv), fileName: name, actor: OPERATOR_A });
  assert.deepEqual(real.outcomes, { matched: 1, unknown: 1 });
});

test('malformed lines are named by line number and nothing of the file is stored', async () => {
  const { recon } = reconForTest(db);
  const name = nextCycle();
  const csv = [
    'TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION',
    'A1,1,10.00,CR,03-12-2026 10:00:00,x',
    'A2,2,ten,CR,03-12-2026 10:00:00,x',
    'A3,3,10.00,XX,03-12-2026 10:00:00,x',
    'A4,4,10.00,CR,31-02-2026 10:00:00,x',
    'A5,5,10.00,CR',
    '"A6,6,10.00,CR,03-12-2026 10:00:00,x',
    'A7,7,0.00,CR,03-12-2026 10:00:00,x',
    'A8,8,10.00,CR,03-12-2026 10:00:00,x',
  ].join('\n');
  await assert.rejects(
    recon.ingest({ bankCode: 'SIMBANK', open: source(csv), fileName: name, actor: OPERATOR_A }),
    (e: unknown) => {
      assert.ok(e instanceof FileRejected);
      assert.deepEqual(
        e.problems.map((p) => p.line),
        [3, 4, 5, 6, 7, 8],
      );
      assert.match(e.problems[0].message, /amount/);
      assert.match(e.problems[2].message, /transaction time/);
      return true;
    },
  );
  const n = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM settlement.recon_lines l JOIN settlement.recon_files f ON f.id = l.file_id WHERE f.file_name = $1',
    [name],
  );
  assert.equal(n.rows[0].n, 0);
  // A file whose name does not name its cycle is refused too.
  await assert.rejects(
    recon.ingest({
      bankCode: 'SIMBANK',
      open: source('TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION\n'),
      fileName: 'settlement.csv',
      actor: OPERATOR_A,
    }),
    FileRejected,
  );
  // An unknown bank has no mapping.
  await assert.rejects(
    recon.ingest({ bankCode: 'NOBANK', open: source(''), fileName: name, actor: OPERATOR_A }),
    (e: unknown) => e instanceof AppError && e.code === 'validation_failed',
  );
});

test('the fixed-width file in paise: cycle from its first line, signed amounts, refunds as debits', async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 25_000, at: at(200), bank: 'SIMBANK2' });
  const refundId = `rfd_${'0'.repeat(31)}1`;
  await db.query(
    `INSERT INTO payments.refunds (id, payment_id, refund_ref, amount, status, bank_ref, created_at, completed_at)
     VALUES ($1, $2, 'RF0000000001', 5000, 'succeeded', '777777777777', $3, $3)`,
    [refundId, p.id, at(201)],
  );
  const fw = (ref: string, rrn: string, amount: string, stamp: string, text: string) =>
    `D${ref.padEnd(35)}${rrn.padEnd(12)}${amount.padStart(15)}${stamp}${text.padEnd(40)}`;
  const file = [
    'H SIMBANK2 CYCLE 20261203 C4',
    fw(p.txnRef, p.bankRef, '25000', '20261203130000', 'UPI COLLECTION'),
    fw('RF0000000001', '777777777777', '-5000', '20261203130100', 'UPI REFUND'),
    'T 000002',
  ].join('\n');
  const r = await recon.ingest({ bankCode: 'SIMBANK2', open: source(file), fileName: 'sb2.txt', actor: OPERATOR_A });
  assert.equal(r.status, 'ingested');
  assert.equal(r.cycle_key, '2026-12-03-C4');
  assert.equal(r.credit_paise, 25_000);
  assert.equal(r.debit_paise, 5_000);
  assert.deepEqual(r.outcomes, { matched: 2 });
  const lines = await db.query<{ txn_at: Date; our_kind: string }>(
    'SELECT txn_at, our_kind FROM settlement.recon_lines WHERE file_id = $1 ORDER BY line_no',
    [r.file_id],
  );
  assert.equal(lines.rows[0].txn_at.toISOString(), '2026-12-03T07:30:00.000Z'); // 13:00 IST
  assert.deepEqual(
    lines.rows.map((l) => l.our_kind),
    ['payment', 'refund'],
  );
});

test('exceptions: resolve with a reason, four eyes for write-offs and forced matches, audited', async () => {
  const reversals = recordingReversals();
  const { recon } = reconForTest(db, { reversals });
  const dup = await seedPayment(db, { amount: 4_000, at: at(300) });
  const off = await seedPayment(db, { amount: 8_000, at: at(301) });
  const r = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(
      simbankCsv([
        { txnRef: dup.txnRef, amount: 4_000, at: at(300) },
        { txnRef: dup.txnRef, amount: 4_000, at: at(300) },
        { txnRef: off.txnRef, amount: 8_050, at: at(301) },
        { txnRef: 'STRANGER1', amount: 123, at: at(302) },
      ]),
    ),
    fileName: nextCycle(),
    actor: OPERATOR_A,
  });
  const ex = await recon.listExceptions({ fileId: r.file_id!, limit: 50 });
  const byKind = Object.fromEntries(ex.map((e) => [e.kind, e]));
  // A duplicate debit is paid back to the customer.
  const d = await recon.resolve(OPERATOR_A, byKind.duplicate.id, {
    resolution: 'refund_customer',
    reason: 'debited twice',
  });
  assert.equal(d.status, 'resolved');
  assert.ok(d.reversal_id);
  assert.deepEqual(reversals.calls.at(-1), {
    paymentId: dup.id,
    amountPaise: 4_000,
    reason: 'duplicate_debit',
    sourceRef: `recon:${byKind.duplicate.id}`,
  });
  // The amount over: refund the difference.
  const o = await recon.resolve(OPERATOR_A, byKind.amount_over.id, {
    resolution: 'refund_customer',
    reason: 'bank took 50 paise more',
  });
  assert.equal(reversals.calls.at(-1)!.amountPaise, 50);
  assert.equal(o.status, 'resolved');
  await assert.rejects(recon.resolve(OPERATOR_A, o.id, { resolution: 'accept', reason: 'again' }), /not open/);
  // A write-off waits for a second, different operator.
  const w = await recon.resolve(OPERATOR_A, byKind.unknown.id, {
    resolution: 'write_off',
    reason: 'not worth chasing',
  });
  assert.equal(w.status, 'pending_approval');
  await assert.rejects(
    recon.approve(OPERATOR_A, w.id, 'approve'),
    (e: unknown) => e instanceof AppError && e.code === 'forbidden',
  );
  await assert.rejects(
    recon.approve({ type: 'api_key', id: 'key_x' }, w.id, 'approve'),
    (e: unknown) => e instanceof AppError && e.code === 'forbidden',
  );
  const a = await recon.approve(OPERATOR_B, w.id, 'approve');
  assert.equal(a.status, 'resolved');
  assert.equal(a.resolution, 'write_off');
  assert.equal(a.approved_by, `operator:${OPERATOR_B.id}`);
  const audit = await db.query<{ action: string; resource_id: string }>(
    `SELECT action, resource_id FROM audit.events WHERE resource_id = ANY($1) ORDER BY occurred_at, id`,
    [[byKind.duplicate.id, byKind.amount_over.id, byKind.unknown.id]],
  );
  assert.deepEqual(
    audit.rows.map((x) => x.action),
    [
      'recon.exception_resolved',
      'recon.exception_resolved',
      'recon.exception_approval_requested',
      'recon.exception_resolved',
    ],
  );
});

test('a forced match needs a second operator; then the line is matched (forced) and the file recounted', async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 6_000, at: at(400) });
  const r = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(simbankCsv([{ txnRef: 'MANGLED0001', amount: 5_990, at: at(400) }])),
    fileName: nextCycle(),
    actor: OPERATOR_A,
  });
  const [unknown] = await recon.listExceptions({ fileId: r.file_id!, kind: 'unknown', limit: 5 });
  const pending = await recon.resolve(OPERATOR_A, unknown.id, {
    resolution: 'match',
    reason: 'same payment, bank mangled ref',
    payment_id: p.id,
  });
  assert.equal(pending.status, 'pending_approval');
  const rej = await recon.approve(OPERATOR_B, unknown.id, 'reject', 'not convinced');
  assert.equal(rej.status, 'open');
  await recon.resolve(OPERATOR_A, unknown.id, {
    resolution: 'match',
    reason: 'checked with the bank',
    payment_id: p.id,
  });
  const done = await recon.approve(OPERATOR_B, unknown.id, 'approve');
  assert.equal(done.status, 'resolved');
  const [line] = await outcomesOf(r.file_id!);
  assert.equal(line.outcome, 'matched');
  const mode = await db.query<{ match_mode: string }>(
    'SELECT match_mode FROM settlement.recon_lines WHERE file_id = $1',
    [r.file_id],
  );
  assert.equal(mode.rows[0].match_mode, 'forced');
  const file = await recon.getFile(r.file_id!);
  assert.deepEqual(file.outcomes, { matched: 1 });
  assert.equal(file.matched_paise, 5_990);
  // The missing exception the payment had (it is inside the file's time span) is resolved with it.
  const miss = await recon.listExceptions({ kind: 'missing', limit: 200 });
  assert.equal(miss.find((e) => e.payment_id === p.id)?.status, 'resolved');
});

test("today's flagged payments appear in the queue and are resolved there", async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 1_500, at: at(500), status: 'pending', flagged: 'deemed' });
  const list = await recon.listExceptions({ kind: 'flagged', limit: 200 });
  const e = list.find((x) => x.payment_id === p.id);
  assert.ok(e);
  assert.match(e.detail, /deemed/);
  // Listing again does not add a second one.
  const again = await recon.listExceptions({ kind: 'flagged', limit: 200 });
  assert.equal(again.filter((x) => x.payment_id === p.id).length, 1);
  await recon.resolve(OPERATOR_A, e.id, { resolution: 'accept', reason: 'bank confirmed failure by phone' });
  const flag = await db.query<{ needs_reconciliation: boolean }>(
    'SELECT needs_reconciliation FROM payments.payments WHERE id = $1',
    [p.id],
  );
  assert.equal(flag.rows[0].needs_reconciliation, false);
});

test('bulk resolution from a CSV: all rows or none, bad rows named by line', async () => {
  const { recon } = reconForTest(db);
  const r = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(
      simbankCsv([
        { txnRef: 'BULK1', amount: 10, at: at(600) },
        { txnRef: 'BULK2', amount: 20, at: at(600) },
      ]),
    ),
    fileName: nextCycle(),
    actor: OPERATOR_A,
  });
  const ex = await recon.listExceptions({ fileId: r.file_id!, limit: 10 });
  const bad = `exception_id,resolution,reason\n${ex[0].id},accept,fine\n${ex[1].id},shrug,fine\n`;
  await assert.rejects(recon.resolveBulk(OPERATOR_A, bad), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.deepEqual(
      (e.details as { problems: { line: number }[] }).problems.map((p) => p.line),
      [3],
    );
    return true;
  });
  assert.equal((await recon.getException(ex[0].id)).status, 'open');
  const good = `exception_id,resolution,reason\n${ex[0].id},accept,fine\n${ex[1].id},write_off,too small\n`;
  const out = await recon.resolveBulk(OPERATOR_A, good);
  assert.equal(out.resolved, 1);
  assert.equal(out.pending_approval, 1);
});

test('a cycle without transactions: its header-only file is taken for every such cycle; a file with lines is never taken twice', async () => {
  const { recon } = reconForTest(db);
  /** The bank's file for cycle `n` of 2026-12-15 (the cycle is named by the file name). */
  const ingestAs = (csv: string, n: number) =>
    recon.ingest({
      bankCode: 'SIMBANK',
      open: source(csv),
      fileName: `SIMBANK_SETTLEMENT_20261215_C${n}.csv`,
      actor: OPERATOR_A,
    });
  const empty = simbankCsv([]);
  const first = await ingestAs(empty, 1);
  assert.equal(first.status, 'ingested', first.message);
  assert.equal(first.lines, 0);
  // The same bytes for the next cycle: that cycle's own (empty) file, not a repeat.
  const second = await ingestAs(empty, 2);
  assert.equal(second.status, 'ingested', second.message);
  assert.equal(second.cycle_key, '2026-12-15-C2');
  // The same empty file for a cycle already processed is still a repeat.
  const again = await ingestAs(empty, 2);
  assert.equal(again.status, 'already_ingested');
  assert.equal(again.file_id, second.file_id);
  // A file with lines sent again under the next cycle's name: refused, whatever it is called.
  const withLines = simbankCsv([{ txnRef: 'EMPTYCYCLE1', amount: 100, at: at(1) }]);
  const third = await ingestAs(withLines, 3);
  assert.equal(third.status, 'ingested', third.message);
  const renamed = await ingestAs(withLines, 4);
  assert.equal(renamed.status, 'already_ingested');
  assert.equal(renamed.file_id, third.file_id);
  const files = await db.query<{ cycle_key: string }>(
    `SELECT cycle_key FROM settlement.recon_files WHERE bank_code = 'SIMBANK' AND cycle_key LIKE '2026-12-15-%' ORDER BY cycle_key`,
  );
  assert.deepEqual(
    files.rows.map((f) => f.cycle_key),
    ['2026-12-15-C1', '2026-12-15-C2', '2026-12-15-C3'],
  );
});
