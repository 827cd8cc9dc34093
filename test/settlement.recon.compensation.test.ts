import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createTestDb } from '../src/platform/testing.ts';
import type { Db } from '../src/platform/db.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { formatRupees } from '../src/platform/money.ts';
import {
  OPERATOR_A,
  OPERATOR_B,
  reconForTest,
  seedPayment,
  source,
  type SeededPayment,
} from '../src/modules/settlement/recon/testkit.ts';
import { createSimCredits } from '../src/tools/bank-sim/credits.ts';
import { settlementRecordsOf, writeSettlementFile } from '../src/tools/bank-sim/settlementFile.ts';

// Compensation push credits in the banks' settlement files: the simulator lists the credits it
// paid (a debit line with the credit's reference, like a refund), and reconciliation matches
// them with settlement's paid compensations (rule compensation_credit_ref). On the test database
// (PGlite, or the PostgreSQL at TEST_DATABASE_URL).

let db: Db;
before(async () => {
  db = await createTestDb();
});
after(async () => {
  await db.close();
});

const T0 = new Date('2026-12-03T04:00:00Z'); // 09:30 IST
const at = (min: number) => new Date(T0.getTime() + min * 60_000);
let cycleNo = 0;

const creditRef = () => `CMP${randomBytes(12).toString('hex').toUpperCase()}`;

/** A paid compensation of `p` (its reversal first: the foreign key), as settlement's worker leaves it. */
async function seedCompensation(
  p: SeededPayment,
  c: { day: number; amount: number; ref: string; bankRef: string | null; paidAt: Date; bank?: string },
) {
  const reversalId = `rvs_${randomBytes(16).toString('hex')}`;
  if (c.day === 1)
    await db.query(
      `INSERT INTO settlement.reversals (id, payment_id, merchant_id, bank_code, original_txn_ref, reason, source_ref, amount,
                                        debited_amount, refund_ref, status, txn_date, deadline_at, completed_at)
       VALUES ($1, $2, 'mer_test', $3, $4, 'late_success', $5, $6, $6, $7, 'succeeded', '2026-11-20', $8, $8)`,
      [
        reversalId,
        p.id,
        c.bank ?? 'SIMBANK',
        p.txnRef,
        `test:${p.id}`,
        p.amount,
        `RVS${p.txnRef.slice(0, 20)}`,
        c.paidAt,
      ],
    );
  const rid = (await db.query<{ id: string }>('SELECT id FROM settlement.reversals WHERE payment_id = $1', [p.id]))
    .rows[0].id;
  await db.query(
    `INSERT INTO settlement.compensations (payment_id, day, reversal_id, bank_code, amount, for_date, posted_at, status,
                                           credit_ref, bank_ref, paid_at)
     VALUES ($1, $2, $3, $4, $5, '2026-11-27', $6, 'paid', $7, $8, $6)`,
    [p.id, c.day, rid, c.bank ?? 'SIMBANK', c.amount, c.paidAt, c.ref, c.bankRef],
  );
  return `${p.id}:${c.day}`;
}

/** The simulator's bank: the payment approved, and the push credits it paid (its credit book). */
function simBank(paidAt: Date, bank: 'SIMBANK' | 'SIMBANK2' = 'SIMBANK') {
  const credits = createSimCredits({ clock: fixedClock(paidAt) });
  const txns = new Map<
    string,
    {
      txnRef: string;
      bankRef: string;
      amountPaise: number;
      payeeVpa: string;
      responseCode: string;
      state: string;
      expiresAt: number;
      decidedAt: number;
    }
  >();
  return {
    approved(p: SeededPayment) {
      txns.set(p.txnRef, {
        txnRef: p.txnRef,
        bankRef: p.bankRef,
        amountPaise: p.amount,
        payeeVpa: `shop@${bank.toLowerCase()}`,
        responseCode: '00',
        state: 'final',
        expiresAt: p.at.getTime() + 300_000,
        decidedAt: p.at.getTime(),
      });
    },
    /** Pays a push credit as settlement's connector asks for it; the bank's reference. */
    pay(ref: string, amount: number, related: SeededPayment): string {
      const a = credits.credit({
        credit_ref: ref,
        payee_vpa: 'customer@okaxis',
        amount: formatRupees(amount),
        currency: 'INR',
        note: 'RBI compensation',
        related_txn_ref: related.txnRef,
      });
      assert.equal(a.response_code, '00');
      return a.bank_ref as string;
    },
    file() {
      const records = settlementRecordsOf(
        txns.values(),
        [],
        (ref) => txns.get(ref),
        at(600).getTime(),
        credits.settled(),
      );
      return writeSettlementFile(records, { bank, cycleKey: `2026-12-03-C${++cycleNo}` });
    },
  };
}

const linesOf = async (fileId: string) =>
  (
    await db.query<{
      direction: string;
      txn_ref: string;
      outcome: string;
      match_rule: string | null;
      our_kind: string | null;
      our_id: string | null;
      exception_id: string | null;
    }>(
      `SELECT direction, txn_ref, outcome, match_rule, our_kind, our_id, exception_id
         FROM settlement.recon_lines WHERE file_id = $1 ORDER BY line_no`,
      [fileId],
    )
  ).rows;

const counts = async () =>
  (
    await db.query<{ lines: number; items: number; exceptions: number; files: number }>(
      `SELECT (SELECT count(*) FROM settlement.recon_lines)::int AS lines,
              (SELECT count(*) FROM settlement.recon_item_outcomes)::int AS items,
              (SELECT count(*) FROM settlement.recon_exceptions)::int AS exceptions,
              (SELECT count(*) FROM settlement.recon_files)::int AS files`,
    )
  ).rows[0];

test('the simulator lists a paid push credit as a debit line; it ends matched by compensation_credit_ref; the same file again changes nothing', async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 50_000, at: at(1) });
  const bank = simBank(at(5));
  bank.approved(p);
  const ref = creditRef();
  const bankRef = bank.pay(ref, 10_000, p);
  const compId = await seedCompensation(p, { day: 1, amount: 10_000, ref, bankRef, paidAt: at(5) });
  const f = bank.file();
  // The simulator's layout: a DR line with the credit's reference and the bank's RRN.
  assert.match(f.content, new RegExp(`^${ref},${bankRef},100\\.00,DR,03-12-2026 09:35:00,UPI PUSH CREDIT$`, 'm'));
  assert.equal(f.lines, 2);

  const r = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(f.content),
    fileName: f.file_name,
    actor: OPERATOR_A,
  });
  assert.equal(r.status, 'ingested');
  const lines = await linesOf(r.file_id!);
  assert.deepEqual(
    lines.map((l) => [l.direction, l.outcome, l.match_rule, l.our_kind, l.our_id, l.exception_id]),
    [
      ['credit', 'matched', 'txn_ref_exact', 'payment', p.id, null],
      ['debit', 'matched', 'compensation_credit_ref', 'compensation', compId, null],
    ],
  );
  assert.equal(r.matched_paise, 60_000);
  assert.deepEqual(r.exceptions, {});
  const item = await db.query(
    `SELECT outcome, rule, amount_paise FROM settlement.recon_item_outcomes WHERE our_kind = 'compensation' AND our_id = $1`,
    [compId],
  );
  assert.deepEqual(item.rows, [{ outcome: 'matched', rule: 'compensation_credit_ref', amount_paise: 10_000 }]);

  const before = await counts();
  const again = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(f.content),
    fileName: f.file_name,
    actor: OPERATOR_A,
  });
  assert.equal(again.status, 'already_ingested');
  assert.equal(again.file_id, r.file_id);
  assert.deepEqual(await counts(), before);
  assert.equal((await linesOf(r.file_id!)).length, 2);
});

test('SIMBANK2 (fixed width, signed paise): the push credit is a negative line, matched the same way', async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 20_000, at: at(10), bank: 'SIMBANK2' });
  const bank = simBank(at(12), 'SIMBANK2');
  bank.approved(p);
  const ref = creditRef();
  const bankRef = bank.pay(ref, 20_000, p);
  const compId = await seedCompensation(p, {
    day: 1,
    amount: 20_000,
    ref,
    bankRef,
    paidAt: at(12),
    bank: 'SIMBANK2',
  });
  const f = bank.file();
  assert.ok(f.content.includes(`D${ref.padEnd(35)}${bankRef.padEnd(12)}${'-20000'.padStart(15)}`));
  const r = await recon.ingest({
    bankCode: 'SIMBANK2',
    open: source(f.content),
    fileName: f.file_name,
    actor: OPERATOR_A,
  });
  assert.equal(r.status, 'ingested');
  const lines = await linesOf(r.file_id!);
  assert.deepEqual(
    lines.map((l) => [l.direction, l.outcome, l.match_rule, l.our_id]),
    [
      ['credit', 'matched', 'txn_ref_exact', p.id],
      ['debit', 'matched', 'compensation_credit_ref', compId],
    ],
  );
  assert.deepEqual(r.exceptions, {});
});

test('a credit line for a compensation we do not have ends unknown, with its exception', async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 30_000, at: at(20) });
  const bank = simBank(at(22));
  bank.approved(p);
  const ref = creditRef();
  bank.pay(ref, 10_000, p); // the bank paid it; we have no compensation with that reference
  const f = bank.file();
  const r = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(f.content),
    fileName: f.file_name,
    actor: OPERATOR_A,
  });
  const lines = await linesOf(r.file_id!);
  assert.deepEqual(
    lines.map((l) => [l.txn_ref, l.outcome, l.our_kind]),
    [
      [p.txnRef, 'matched', 'payment'],
      [ref, 'unknown', null],
    ],
  );
  assert.ok(lines[1].exception_id);
  const e = await db.query(
    'SELECT kind, payment_id, compensation_id, amount_paise, detail FROM settlement.recon_exceptions WHERE id = $1',
    [lines[1].exception_id],
  );
  assert.deepEqual(e.rows, [
    {
      kind: 'unknown',
      payment_id: null,
      compensation_id: null,
      amount_paise: 10_000,
      detail: 'the bank has it, we do not',
    },
  ]);
});

test('a push credit a paisa off is an amount mismatch (amount_over) naming the compensation; one paid but in no file is missing, as a refund is', async () => {
  const { recon } = reconForTest(db);
  const p = await seedPayment(db, { amount: 40_000, at: at(30) });
  const bank = simBank(at(32));
  bank.approved(p);
  const ref = creditRef();
  const bankRef = bank.pay(ref, 10_001, p); // the bank paid a paisa more than we booked
  const compId = await seedCompensation(p, { day: 1, amount: 10_000, ref, bankRef, paidAt: at(32) });
  // Paid (by a credit the bank's file does not list) before the file's last line: missing.
  const absentId = await seedCompensation(p, {
    day: 2,
    amount: 10_000,
    ref: creditRef(),
    bankRef: '123456789012',
    paidAt: at(31),
  });
  const f = bank.file();
  const r = await recon.ingest({
    bankCode: 'SIMBANK',
    open: source(f.content),
    fileName: f.file_name,
    actor: OPERATOR_A,
  });
  const lines = await linesOf(r.file_id!);
  assert.deepEqual(
    lines.map((l) => [l.outcome, l.our_kind, l.our_id]),
    [
      ['matched', 'payment', p.id],
      ['amount_mismatch', 'compensation', compId],
    ],
  );
  const e = await db.query(
    `SELECT kind, payment_id, refund_id, compensation_id, amount_paise, expected_paise FROM settlement.recon_exceptions
      WHERE id = $1 OR (kind = 'missing' AND compensation_id = $2) ORDER BY kind`,
    [lines[1].exception_id, absentId],
  );
  assert.deepEqual(e.rows, [
    {
      kind: 'amount_over',
      payment_id: p.id,
      refund_id: null,
      compensation_id: compId,
      amount_paise: 10_001,
      expected_paise: 10_000,
    },
    {
      kind: 'missing',
      payment_id: p.id,
      refund_id: null,
      compensation_id: absentId,
      amount_paise: 10_000,
      expected_paise: 10_000,
    },
  ]);
  const item = await db.query(
    `SELECT outcome FROM settlement.recon_item_outcomes WHERE our_kind = 'compensation' AND our_id = $1`,
    [compId],
  );
  assert.deepEqual(item.rows, [{ outcome: 'amount_mismatch' }]);

  // The money went to the customer: nothing to pay back. A match with the line's compensation,
  // amounts differing, is forced: a second operator approves it.
  const exceptionId = lines[1].exception_id as string;
  await assert.rejects(
    recon.resolve(OPERATOR_A, exceptionId, { resolution: 'refund_customer', reason: 'bank paid a paisa more' }),
    /compensation credit/,
  );
  const asked = await recon.resolve(OPERATOR_A, exceptionId, { resolution: 'match', reason: 'the bank rounded up' });
  assert.equal(asked.status, 'pending_approval');
  assert.equal(asked.match_kind, 'compensation');
  assert.equal(asked.match_id, compId);
  const done = await recon.approve(OPERATOR_B, exceptionId, 'approve');
  assert.equal(done.status, 'resolved');
  const after = await linesOf(r.file_id!);
  assert.deepEqual(
    [after[1].outcome, after[1].match_rule, after[1].our_kind, after[1].our_id],
    ['matched', 'operator', 'compensation', compId],
  );
  const matched = await db.query(
    `SELECT outcome, mode FROM settlement.recon_item_outcomes WHERE our_kind = 'compensation' AND our_id = $1`,
    [compId],
  );
  assert.deepEqual(matched.rows, [{ outcome: 'matched', mode: 'forced' }]);
});
