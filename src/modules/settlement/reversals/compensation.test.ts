import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../../platform/db.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { createTestDb } from '../../../platform/testing.ts';
import { createLedgerService } from '../../ledger/index.ts';
import {
  emptySettlement,
  insertPayment,
  scriptedCreditBank,
  silentLogger,
  verifyAll,
  type CreditScript,
} from '../testkit.ts';
import { createReversalsService } from './reversals.service.ts';
import { createCompensationCredits } from './compensation.service.ts';
import { listCompensations } from './compensation.repo.ts';
import { createCompensationRetries } from './compensationRetry.service.ts';

// Compensation for a late reversal (RBI/2019-20/67) paid to the customer's VPA by a push credit,
// against a scripted bank (the credit side of a bank's API, with the answers and failures the
// connectors report) on a real database (PGlite, or PostgreSQL with TEST_DATABASE_URL).

const ledger = createLedgerService();
type FixedClock = ReturnType<typeof fixedClock>;
let seq = 0;
const merchant = () => `mer_c${(++seq).toString(16).padStart(7, '0')}${'0'.repeat(24)}`;
const DAY1 = '2026-12-06T18:30:00Z'; // 00:00 IST on 7 Dec: the first day of delay for T = 1 Dec

describe('compensation credits', () => {
  let db: Db;
  before(async () => {
    db = await createTestDb();
  });
  beforeEach(() => emptySettlement(db));
  after(async () => {
    await db?.close();
  });

  const make = (bank: ReturnType<typeof scriptedCreditBank>, clock: FixedClock) => ({
    reversals: createReversalsService({
      db,
      ledger,
      banks: { connector: () => bank.connector },
      clock,
      logger: silentLogger,
      callbackUrl: () => 'http://127.0.0.1:1/cb',
    }),
    credits: createCompensationCredits({
      db,
      ledger,
      banks: { connector: () => bank.connector },
      clock,
      logger: silentLogger,
      payerVpa: async (row) => row.payer_vpa ?? undefined,
      config: { checkAfterSeconds: 60, retryAfterSeconds: 30, claimSeconds: 60 },
    }),
  });

  /** A late success whose reversal the bank refused: past the deadline, one day of compensation is booked. */
  async function owed(script: CreditScript[], o: { vpa?: string | null; latencyMs?: number; days?: number } = {}) {
    const bank = scriptedCreditBank({ script, refunds: ['rejected'], latencyMs: o.latencyMs });
    const clock = fixedClock('2026-12-02T06:00:00Z');
    const svc = make(bank, clock);
    const pay = await insertPayment(db, {
      merchantId: merchant(),
      amount: 700,
      status: 'expired',
      createdAt: new Date('2026-12-01T06:00:00Z'),
      bankCode: 'COMPBANK',
    });
    if (o.vpa !== null)
      await db.query(`UPDATE payments.payments SET payer_vpa = $2 WHERE id = $1`, [pay, o.vpa ?? 'ravi.kumar@okaxis']);
    await db.tx((tx) =>
      svc.reversals.requests.request(tx, { paymentId: pay, amountPaise: 700, reason: 'late_success', sourceRef: 'c' }),
    );
    await svc.reversals.runReversals();
    clock.set(new Date(Date.parse(DAY1) + ((o.days ?? 1) - 1) * 86_400_000));
    assert.equal(await svc.reversals.runCompensation(), o.days ?? 1);
    const rows = await listCompensations(db, { paymentId: pay, limit: 10 });
    return { bank, clock, svc, pay, rows };
  }
  const bal = (code: string) => ledger.balance(db, code);
  const rowsOf = (pay: string) => listCompensations(db, { paymentId: pay, limit: 10 });

  test('booked to compensation_payable, then paid by a push credit to the VPA, once; ledger and verify hold', async () => {
    const { bank, svc, pay, rows } = await owed(['success']);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].status, 'due');
    assert.match(rows[0].credit_ref!, /^CP[0-9A-F]{32}$/);
    assert.equal(await bal('compensation_payable:COMPBANK'), 10_000, 'owed to the customer');
    await verifyAll(db);
    const clearing = await bal('bank_clearing:COMPBANK');
    assert.equal(await svc.credits.runCredits(), 1);
    const [c] = await rowsOf(pay);
    assert.equal(c.status, 'paid');
    assert.equal(c.response_code, '00');
    assert.ok(c.paid_at);
    assert.deepEqual(bank.calls[0], { kind: 'credit', ref: c.credit_ref, vpa: 'ravi.kumar@okaxis' });
    assert.equal(await bal('compensation_payable:COMPBANK'), 0);
    assert.equal(await bal('compensation_in_transit:COMPBANK'), 0);
    assert.equal(clearing - (await bal('bank_clearing:COMPBANK')), 10_000, 'out of our account at the bank');
    const kinds = await db.query<{ kind: string }>(
      `SELECT kind FROM ledger.entries WHERE kind LIKE 'compensation.%' OR kind = 'reversal.compensation' ORDER BY kind`,
    );
    assert.deepEqual(
      kinds.rows.map((k) => k.kind),
      ['compensation.paid', 'compensation.sent', 'reversal.compensation'],
    );
    assert.equal(await svc.credits.runCredits(), 0, 'nothing more to pay');
    assert.equal(bank.creditCalls(), 1);
    await verifyAll(db);
  });

  test('an uncertain answer leaves it pending (in transit, not paid), never sent again; a status check settles it', async () => {
    const { bank, clock, svc, pay } = await owed(['uncertain']);
    await svc.credits.runCredits();
    let [c] = await rowsOf(pay);
    assert.equal(c.status, 'pending', 'uncertain is never paid nor failed');
    assert.equal(c.paid_at, null);
    assert.equal(await bal('compensation_payable:COMPBANK'), 0);
    assert.equal(await bal('compensation_in_transit:COMPBANK'), 10_000, 'in transit while unknown');
    await verifyAll(db);
    clock.advance(3600_000);
    assert.equal(await svc.credits.runCredits(), 0, 'a pending credit is not sent again');
    assert.equal(await svc.credits.runCreditChecks(), 1);
    [c] = await rowsOf(pay);
    assert.equal(c.status, 'paid');
    assert.equal(bank.creditCalls(), 1);
    assert.equal(bank.paid.get(c.credit_ref!), 1, 'the customer was paid once');
    assert.equal(await bal('compensation_in_transit:COMPBANK'), 0);
    await verifyAll(db);
  });

  test('a credit the bank never received (timeout, then "no such credit") is sent again with the same reference', async () => {
    const { bank, clock, svc, pay } = await owed(['lost', 'success']);
    await svc.credits.runCredits();
    assert.equal((await rowsOf(pay))[0].status, 'pending');
    clock.advance(120_000);
    await svc.credits.runCreditChecks(); // U48: back to due, in transit -> payable
    let [c] = await rowsOf(pay);
    assert.equal(c.status, 'due');
    assert.equal(await bal('compensation_payable:COMPBANK'), 10_000);
    await verifyAll(db);
    await svc.credits.runCredits();
    [c] = await rowsOf(pay);
    assert.equal(c.status, 'paid');
    assert.deepEqual(
      bank.calls.filter((x) => x.kind === 'credit').map((x) => x.ref),
      [c.credit_ref, c.credit_ref],
      'the same reference both times',
    );
    assert.equal(bank.paid.get(c.credit_ref!), 1);
    await verifyAll(db);
  });

  test('the bank declines: failed, still owed to the customer (payable), not sent again by itself; an operator retry pays it once', async () => {
    const { bank, clock, svc, pay } = await owed(['decline']);
    await svc.credits.runCredits();
    const [c] = await rowsOf(pay);
    assert.equal(c.status, 'failed');
    assert.equal(c.response_code, 'U31');
    assert.equal(await bal('compensation_payable:COMPBANK'), 10_000, 'still owed');
    clock.advance(86_400_000);
    await svc.credits.runCredits();
    await svc.credits.runCreditChecks();
    assert.equal(bank.creditCalls(), 1);
    await verifyAll(db);
    // An operator sends it again (compensationRetry.service.ts): a new reference, the same VPA.
    // The bank pays the new one once and never the refused one; a second retry is refused.
    const retries = createCompensationRetries({
      db,
      clock,
      logger: silentLogger,
      vpaPattern: /^[a-z0-9.-]+@[a-z]+$/,
      approvalThresholdPaise: 1_000_000,
    });
    await assert.rejects(
      retries.retry({ cli: 'test' }, { paymentId: pay, day: 1, reason: 'x', payeeVpa: 'new.ravi@okaxis' }),
      (e: { code?: string }) => e.code === 'forbidden',
      'another VPA needs an operator and a second one',
    );
    const out = await retries.retry({ cli: 'test' }, { paymentId: pay, day: 1, reason: 'reopened' });
    assert.equal(out.compensation.status, 'due');
    assert.notEqual(out.compensation.credit_ref, c.credit_ref);
    await assert.rejects(
      retries.retry({ cli: 'test' }, { paymentId: pay, day: 1, reason: 'twice' }),
      (e: { code?: string }) => e.code === 'compensation_not_retryable',
    );
    assert.equal(await bal('compensation_payable:COMPBANK'), 10_000, 'nothing moved by the retry itself');
    await svc.credits.runCredits();
    const [again] = await rowsOf(pay);
    assert.equal(again.status, 'paid');
    assert.deepEqual(
      bank.calls.filter((x) => x.kind === 'credit').map((x) => [x.ref, x.vpa]),
      [
        [c.credit_ref, 'ravi.kumar@okaxis'],
        [again.credit_ref, 'ravi.kumar@okaxis'],
      ],
    );
    assert.equal(bank.paid.get(again.credit_ref!), 1);
    assert.equal(bank.paid.get(c.credit_ref!), undefined, 'the refused reference was never paid');
    assert.equal(await bal('compensation_payable:COMPBANK'), 0);
    await verifyAll(db);
  });

  test('not sent (connection refused) stays due and is sent later; rejected (4xx) fails; no VPA is never sent', async () => {
    const a = await owed(['not_sent', 'success']);
    await a.svc.credits.runCredits();
    assert.equal((await rowsOf(a.pay))[0].status, 'due');
    assert.equal(await a.svc.credits.runCredits(), 0, 'not before the retry time');
    a.clock.advance(31_000);
    await a.svc.credits.runCredits();
    assert.equal((await rowsOf(a.pay))[0].status, 'paid');
    await emptySettlement(db);
    const b = await owed(['rejected']);
    await b.svc.credits.runCredits();
    assert.equal((await rowsOf(b.pay))[0].status, 'failed');
    await emptySettlement(db);
    const n = await owed([], { vpa: null });
    await n.svc.credits.runCredits();
    const [c] = await rowsOf(n.pay);
    assert.equal(c.status, 'due');
    assert.match(c.last_error ?? '', /no payer VPA/);
    assert.equal(n.bank.creditCalls(), 0);
    await verifyAll(db);
  });

  test('two workers never pay the same compensation twice', async () => {
    const { bank, svc, pay, clock } = await owed(['success', 'success', 'success'], { days: 3, latencyMs: 20 });
    const other = make(bank, clock);
    const [x, y] = await Promise.all([svc.credits.runCredits(), other.credits.runCredits()]);
    assert.equal(x + y, 3, 'each day claimed by one worker');
    await Promise.all([svc.credits.runCredits(), other.credits.runCredits()]);
    const rows = await rowsOf(pay);
    assert.deepEqual(
      rows.map((r) => r.status),
      ['paid', 'paid', 'paid'],
    );
    assert.equal(bank.creditCalls(), 3, 'one call per day of delay');
    for (const r of rows) assert.equal(bank.paid.get(r.credit_ref!), 1);
    assert.equal(await bal('reversal_compensation'), 30_000);
    await verifyAll(db);
  });
});
