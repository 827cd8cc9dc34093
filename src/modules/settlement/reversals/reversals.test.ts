import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Db } from '../../../platform/db.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { createTestDb, usingRealPostgres } from '../../../platform/testing.ts';
import { createLedgerService, type LedgerService } from '../../ledger/index.ts';
import { emptySettlement, insertPayment, scriptedBank, silentLogger, type RefundScript } from '../testkit.ts';
import { verifyAll } from '../testkit.ts';
import { createReversalsService } from './reversals.service.ts';
import { runSettlementVerify } from '../settlement.verify.ts';
import { deadlineAt, delayDays, transactionDate } from './deadline.ts';

// Reversals against a scripted bank (the refund side of a bank's API, with the answers and
// failures connectors report) on a real database (PGlite, or PostgreSQL with TEST_DATABASE_URL).

const ledger = createLedgerService();
let merchantSeq = 0;
const merchant = () => `mer_${(++merchantSeq).toString(16).padStart(8, '0')}${'0'.repeat(24)}`;

async function balance(db: Db, code: string) {
  return ledger.balance(db, code);
}

describe('reversals', () => {
  // The worker takes every reversal due, so tests must not see each other's: one database, emptied
  // of settlement rows and ledger entries before each test (a new database each is slow on PGlite).
  let db: Db;
  before(async () => {
    db = await createTestDb();
  });
  beforeEach(() => emptySettlement(db));
  after(async () => {
    await db?.close();
  });

  const service = (bank: ReturnType<typeof scriptedBank>, clock = fixedClock('2026-12-03T06:00:00Z')) =>
    createReversalsService({
      db,
      ledger,
      banks: { connector: () => bank.connector },
      clock,
      logger: silentLogger,
      callbackUrl: (code) => `http://127.0.0.1:1/v1/settlement/banks/${code}/callbacks`,
      config: { checkAfterSeconds: 60, retryAfterSeconds: 30, claimSeconds: 60 },
    });

  test('the RBI clock: T is the IST day; the deadline is the end of T+5; days of delay count IST days', () => {
    // 23:50 IST on 1 Dec is 18:20 UTC: T is 1 Dec, not the UTC day.
    assert.equal(deadlineAt('2026-12-01').toISOString(), '2026-12-06T18:30:00.000Z'); // 00:00 IST, 7 Dec
    assert.equal(delayDays('2026-12-01', new Date('2026-12-06T18:29:59.999Z')), 0);
    assert.equal(delayDays('2026-12-01', new Date('2026-12-06T18:30:00.000Z')), 1);
    assert.equal(delayDays('2026-12-01', new Date('2026-12-07T18:29:59.000Z')), 1);
    assert.equal(delayDays('2026-12-01', new Date('2026-12-07T18:30:00.000Z')), 2);
    // Across a month and a year end.
    assert.equal(deadlineAt('2026-12-29').toISOString(), '2027-01-03T18:30:00.000Z');
  });

  test('request: idempotent on (payment, reason, sourceRef); one active per payment; never more than debited', async () => {
    const bank = scriptedBank();
    const svc = service(bank);
    const m = merchant();
    const pay = await insertPayment(db, {
      merchantId: m,
      amount: 14_900,
      status: 'expired',
      createdAt: new Date('2026-12-02T18:20:00Z'), // 23:50 IST on 2 Dec
      flag: 'success_after_close',
    });
    const req = { paymentId: pay, amountPaise: 14_900, reason: 'late_success' as const, sourceRef: 'exc_1' };
    const first = await db.tx((tx) => svc.requests.request(tx, req));
    assert.equal(first.created, true);
    assert.deepEqual(await db.tx((tx) => svc.requests.request(tx, req)), {
      reversalId: first.reversalId,
      created: false,
    });
    // Another source asking for the same payment gets the active one, not a second reversal.
    const other = await db.tx((tx) =>
      svc.requests.request(tx, { ...req, reason: 'duplicate_debit', sourceRef: 'recon:line:7' }),
    );
    assert.deepEqual(other, { reversalId: first.reversalId, created: false });
    // The same request with another amount is refused, not silently answered.
    await assert.rejects(
      db.tx((tx) => svc.requests.request(tx, { ...req, amountPaise: 100 })),
      { code: 'idempotency_key_reused' },
    );
    const pay2 = await insertPayment(db, { merchantId: m, amount: 500, status: 'expired', createdAt: new Date() });
    await assert.rejects(
      db.tx((tx) => svc.requests.request(tx, { ...req, paymentId: pay2, amountPaise: 501 })),
      { code: 'refund_exceeds_payment' },
    );
    await assert.rejects(
      db.tx((tx) => svc.requests.request(tx, { ...req, paymentId: 'pay_nope' })),
      {
        code: 'payment_not_found',
      },
    );
    await assert.rejects(
      db.tx((tx) => svc.requests.request(tx, { ...req, amountPaise: 1.5 })),
      { code: 'invalid_amount' },
    );
    await assert.rejects(
      db.tx((tx) => svc.requests.request(tx, { ...req, sourceRef: 'a\u0000b' })),
      {
        code: 'validation_failed',
      },
    );
    const r = await svc.get(first.reversalId);
    assert.equal(r.transaction_date, '2026-12-02');
    assert.equal(r.deadline_at, '2026-12-07T18:30:00.000Z');
    assert.equal(r.status, 'scheduled');
    // Owed from the moment it is requested: the money reached our account at the bank.
    assert.equal(await balance(db, 'reversal_payable:SIMBANK'), 14_900);
  });

  test('the worker reverses through the bank; uncertain stays pending (never failed) until a status check', async () => {
    const bank = scriptedBank({ script: ['uncertain'] });
    const clock = fixedClock('2026-12-03T06:00:00Z');
    const svc = service(bank, clock);
    const pay = await insertPayment(db, {
      merchantId: merchant(),
      amount: 2_500,
      status: 'expired',
      createdAt: new Date('2026-12-03T05:00:00Z'),
      flag: 'success_after_close',
    });
    const before = await balance(db, 'reversal_payable:SIMBANK');
    const { reversalId } = await db.tx((tx) =>
      svc.requests.request(tx, { paymentId: pay, amountPaise: 2_500, reason: 'late_success', sourceRef: 't2' }),
    );
    await svc.runReversals();
    let r = await svc.get(reversalId);
    assert.equal(r.status, 'pending', 'an uncertain answer leaves it pending');
    assert.equal(r.attempts, 1);
    // A status check that goes unanswered changes nothing.
    bank.setStatusAnswer('uncertain');
    clock.advance(61_000);
    await svc.runReversalChecks();
    assert.equal((await svc.get(reversalId)).status, 'pending');
    // The bank answers: it had taken the refund.
    bank.setStatusAnswer('settle');
    clock.advance(61_000);
    await svc.runReversalChecks();
    r = await svc.get(reversalId);
    assert.equal(r.status, 'succeeded');
    assert.equal(bank.refundCalls(), 1, 'never sent twice');
    assert.equal(await balance(db, 'reversal_payable:SIMBANK'), before);
    await verifyAll(db);
  });

  test('not sent is sent again; a refusal fails it for an operator, who may request a new one', async () => {
    const bank = scriptedBank({ script: ['not_sent', 'success', 'rejected'] });
    const clock = fixedClock('2026-12-03T06:00:00Z');
    const svc = service(bank, clock);
    const m = merchant();
    const a = await insertPayment(db, { merchantId: m, amount: 100, status: 'expired', createdAt: clock.now() });
    const ra = await db.tx((tx) =>
      svc.requests.request(tx, { paymentId: a, amountPaise: 100, reason: 'late_success', sourceRef: 'x' }),
    );
    await svc.runReversals();
    assert.equal((await svc.get(ra.reversalId)).status, 'scheduled');
    clock.advance(31_000);
    await svc.runReversals();
    assert.equal((await svc.get(ra.reversalId)).status, 'succeeded');
    const b = await insertPayment(db, { merchantId: m, amount: 100, status: 'expired', createdAt: clock.now() });
    const rb = await db.tx((tx) =>
      svc.requests.request(tx, { paymentId: b, amountPaise: 100, reason: 'late_success', sourceRef: 'x' }),
    );
    await svc.runReversals();
    assert.equal((await svc.get(rb.reversalId)).status, 'failed');
    // A failed reversal lets a new request through (an operator's decision).
    const again = await db.tx((tx) =>
      svc.requests.request(tx, { paymentId: b, amountPaise: 100, reason: 'operator', sourceRef: 'opr' }),
    );
    assert.equal(again.created, true);
    await verifyAll(db);
  });

  test('two workers never reverse the same payment twice', async () => {
    const bank = scriptedBank({ latencyMs: 20 });
    const clock = fixedClock('2026-12-03T06:00:00Z');
    const w1 = service(bank, clock);
    const w2 = service(bank, clock);
    const m = merchant();
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const pay = await insertPayment(db, {
        merchantId: m,
        amount: 100 + i,
        status: 'expired',
        createdAt: clock.now(),
      });
      // Both workers' schedulers and an outside caller ask for it too.
      const [x, y] = await Promise.all([
        db.tx((tx) =>
          w1.requests.request(tx, { paymentId: pay, amountPaise: 100 + i, reason: 'late_success', sourceRef: 'a' }),
        ),
        db.tx((tx) =>
          w2.requests.request(tx, { paymentId: pay, amountPaise: 100 + i, reason: 'duplicate_debit', sourceRef: 'b' }),
        ),
      ]);
      assert.equal(x.reversalId, y.reversalId);
      assert.equal([x.created, y.created].filter(Boolean).length, 1);
      ids.push(x.reversalId);
    }
    await Promise.all([w1.runReversals(), w2.runReversals(), w1.runReversals(), w2.runReversals()]);
    for (const id of ids) {
      const r = await w1.get(id);
      assert.equal(r.status, 'succeeded');
      assert.equal(r.attempts, 1, `${id} was sent once`);
    }
    const refs = (
      await db.query<{ refund_ref: string }>(`SELECT refund_ref FROM settlement.reversals WHERE id = ANY($1)`, [ids])
    ).rows;
    for (const { refund_ref } of refs) assert.equal(bank.refundCalls(refund_ref), 1);
    const entries = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ledger.entries WHERE kind = 'reversal.succeeded' AND reference = ANY($1)`,
      [ids],
    );
    assert.equal(entries.rows[0].n, ids.length);
  });

  test('flagged payments (late success, amount mismatch) get a reversal scheduled by the worker job', async () => {
    const bank = scriptedBank();
    const svc = service(bank);
    const m = merchant();
    const late = await insertPayment(db, {
      merchantId: m,
      amount: 1_000,
      status: 'expired',
      createdAt: new Date('2026-12-03T05:00:00Z'),
      flag: 'success_after_close',
    });
    const mismatch = await insertPayment(db, {
      merchantId: m,
      amount: 1_000,
      status: 'pending',
      createdAt: new Date('2026-12-03T05:00:00Z'),
      flag: 'amount_mismatch',
      reportedAmount: 1_001,
    });
    const deemed = await insertPayment(db, {
      merchantId: m,
      amount: 1_000,
      status: 'pending',
      createdAt: new Date('2026-12-03T05:00:00Z'),
      flag: 'deemed',
    });
    assert.ok((await svc.scheduleFlagged()) >= 2);
    assert.equal(await svc.scheduleFlagged(), 0, 'scheduled once');
    const byPayment = async (p: string) => (await svc.list({ paymentId: p, limit: 10 })).data;
    const [l] = await byPayment(late);
    assert.equal(l.reason, 'late_success');
    assert.equal(l.amount, 1_000);
    const [mm] = await byPayment(mismatch);
    assert.equal(mm.reason, 'amount_mismatch');
    assert.equal(mm.amount, 1_001, 'what the bank took, not what we asked');
    assert.deepEqual(await byPayment(deemed), [], 'deemed payments are for reconciliation to decide');
  });

  test('compensation: ₹100 per IST day of delay past T+5, across day boundaries, stops when reversed', async () => {
    const bank = scriptedBank({ script: ['rejected'] });
    // T = 1 Dec (23:50 IST); deadline 00:00 IST on 7 Dec (18:30 UTC on 6 Dec).
    const clock = fixedClock('2026-12-06T18:29:00Z');
    const svc = service(bank, clock);
    const pay = await insertPayment(db, {
      merchantId: merchant(),
      amount: 700,
      status: 'expired',
      createdAt: new Date('2026-12-01T18:20:00Z'),
      bankCode: 'COMPBANK',
    });
    const { reversalId } = await db.tx((tx) =>
      svc.requests.request(tx, { paymentId: pay, amountPaise: 700, reason: 'late_success', sourceRef: 'c' }),
    );
    await svc.runReversals(); // refused: failed, still owed
    const expense = () => balance(db, 'reversal_compensation');
    const start = await expense();
    assert.equal(await svc.runCompensation(), 0, 'one minute before the deadline: nothing');
    clock.set('2026-12-06T18:30:00Z'); // 00:00 IST, 7 Dec: first day of delay
    assert.equal(await svc.runCompensation(), 1);
    assert.equal(await svc.runCompensation(), 0, 'once per day');
    clock.set('2026-12-07T18:29:59Z'); // 23:59:59 IST, 7 Dec: still day 1
    assert.equal(await svc.runCompensation(), 0);
    clock.set('2026-12-09T04:00:00Z'); // 09:30 IST, 9 Dec: days 2 and 3
    assert.equal(await svc.runCompensation(), 2);
    assert.equal((await expense()) - start, 30_000);
    // An operator's new request pays the customer back the same day: the customer is compensated
    // once per day of delay (the days are the payment's, not each attempt's), and no more after.
    const again = await db.tx((tx) =>
      svc.requests.request(tx, { paymentId: pay, amountPaise: 700, reason: 'operator', sourceRef: 'op' }),
    );
    await svc.runReversals();
    assert.equal((await svc.get(again.reversalId)).status, 'succeeded');
    assert.equal(await svc.runCompensation(), 0);
    clock.set('2026-12-12T04:00:00Z');
    assert.equal(await svc.runCompensation(), 0, 'reversed: no more days accrue');
    assert.equal((await expense()) - start, 30_000);
    assert.equal((await svc.get(reversalId)).compensation_days, 3);
    await verifyAll(db);
  });

  test('compensation: workers booking at once book each day of delay once', async () => {
    const bank = scriptedBank({ script: Array(6).fill('rejected') });
    // T = 1 Dec; at 09:30 IST on 9 Dec three days of delay have begun (7, 8 and 9 Dec).
    const clock = fixedClock('2026-12-09T04:00:00Z');
    const w1 = service(bank, clock);
    const w2 = service(bank, clock);
    const m = merchant();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const pay = await insertPayment(db, {
        merchantId: m,
        amount: 700 + i,
        status: 'expired',
        createdAt: new Date('2026-12-01T18:20:00Z'),
      });
      const { reversalId } = await db.tx((tx) =>
        w1.requests.request(tx, { paymentId: pay, amountPaise: 700 + i, reason: 'late_success', sourceRef: 'w' }),
      );
      ids.push(reversalId);
    }
    await w1.runReversals(); // all refused: still owed
    const counts = await Promise.all([w1.runCompensation(), w2.runCompensation(), w1.runCompensation()]);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      18,
      'three days for each of six reversals, once',
    );
    assert.equal(await w2.runCompensation(), 0);
    const entries = await db.query<{ n: number; refs: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT reference)::int AS refs FROM ledger.entries WHERE kind = 'reversal.compensation'`,
    );
    assert.deepEqual(entries.rows[0], { n: 18, refs: 18 });
    for (const id of ids) assert.equal((await w1.get(id)).compensation_days, 3);
    await verifyAll(db);
  });

  // PGlite is one connection: its transactions never overlap, so the race below cannot happen there.
  const concurrent = { skip: usingRealPostgres() ? false : 'needs concurrent connections (TEST_DATABASE_URL)' };
  test(
    "compensation: a bank's callback that lost the race to the refund call's answer does not make the day's booking skip the reversal",
    concurrent,
    async () => {
      // T = 1 Dec (23:50 IST); deadline 00:00 IST on 7 Dec; reversed at 11:30 IST on 8 Dec: two days late.
      const bank = scriptedBank();
      const clock = fixedClock('2026-12-08T06:00:00Z');
      const pay = await insertPayment(db, {
        merchantId: merchant(),
        amount: 700,
        status: 'expired',
        createdAt: new Date('2026-12-01T18:20:00Z'),
        flag: 'success_after_close',
      });
      // The bank answers the refund call and sends its callback at once (as simbank does): the
      // callback reaches the API while the worker is still applying the answer. Here the worker's
      // transaction waits, its reversal moved to succeeded, until the callback's compare-and-set
      // waits on that row; the callback's transaction commits only when the test says so (a
      // process slowed down between its statement and its COMMIT).
      let onAnswer: (() => Promise<void>) | undefined;
      const workerLedger: Pick<LedgerService, 'post'> = {
        post: async (tx, e) => {
          if (e.kind === 'reversal.succeeded' && onAnswer) await onAnswer();
          return ledger.post(tx, e);
        },
      };
      let commitCallback!: () => void;
      const callbackCommits = new Promise<void>((r) => {
        commitCallback = r;
      });
      const callbackDb: Db = {
        driver: db.driver,
        query: (sql, params) => db.query(sql, params),
        exec: (sql) => db.exec(sql),
        close: () => db.close(),
        tx: (fn) =>
          db.tx(async (tx) => {
            const out = await fn(tx);
            await callbackCommits;
            return out;
          }),
      };
      const deps = {
        banks: { connector: () => bank.connector },
        clock,
        logger: silentLogger,
        callbackUrl: (code: string) => `http://127.0.0.1:1/v1/settlement/banks/${code}/callbacks`,
      };
      const worker = createReversalsService({ ...deps, db, ledger: workerLedger });
      const api = createReversalsService({ ...deps, db: callbackDb, ledger });
      // Another session of this database waiting for a row lock: the condition each step waits for.
      const lockWaiters = async () =>
        (
          await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
          )
        ).rows[0].n;
      const untilLockWaiter = async (unless = () => false) => {
        while (!unless() && (await lockWaiters()) === 0) await new Promise((r) => setImmediate(r));
      };
      const { reversalId } = await db.tx((tx) =>
        worker.requests.request(tx, { paymentId: pay, amountPaise: 700, reason: 'late_success', sourceRef: 'cb' }),
      );
      let callback: Promise<unknown> | undefined;
      onAnswer = async () => {
        onAnswer = undefined;
        const refundRef = bank.calls.find((c) => c.kind === 'refund')!.ref;
        callback = api.handleRefundCallback(refundRef, {
          outcome: 'success',
          responseCode: '00',
          bankRef: `RRN${refundRef.slice(-8)}`,
        });
        await untilLockWaiter();
      };
      assert.equal(await worker.runReversals(), 1);
      assert.ok(callback, 'the callback came while the answer was applied');
      assert.equal((await worker.get(reversalId)).status, 'succeeded');
      // The callback lost (the reversal is no longer scheduled), but its transaction still holds the
      // row its compare-and-set waited for. Two days of delay are owed all the same.
      let done = false;
      const booked = worker.runCompensation().finally(() => {
        done = true;
      });
      await untilLockWaiter(() => done);
      commitCallback();
      assert.equal(await booked, 2, 'both days booked on this run');
      await callback;
      assert.equal((await worker.get(reversalId)).compensation_days, 2);
      const entries = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ledger.entries WHERE kind = 'reversal.succeeded' AND reference = $1`,
        [reversalId],
      );
      assert.equal(entries.rows[0].n, 1, 'reversed once');
      await verifyAll(db);
    },
  );

  test('property: while the bank answers, no reversal misses its deadline', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            // Debited up to 5 days and 23 hours ago, in minutes.
            ageMinutes: fc.integer({ min: 0, max: 5 * 1440 + 1380 }),
            answers: fc.array(fc.constantFrom<RefundScript>('success', 'pending', 'uncertain', 'not_sent'), {
              minLength: 1,
              maxLength: 3,
            }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.integer({ min: 1, max: 30 }),
        async (items, tickMinutes) => {
          const clock = fixedClock('2026-12-10T06:00:00Z');
          const bank = scriptedBank();
          const svc = service(bank, clock);
          const m = merchant();
          const ids: string[] = [];
          for (const it of items) {
            const createdAt = new Date(clock.now().getTime() - it.ageMinutes * 60_000);
            // The claim is about a bank that answers in time: each debit leaves the worker two hours
            // before its deadline (three answers, each at most a tick plus a status-check delay).
            if (deadlineAt(transactionDate(createdAt)).getTime() - clock.now().getTime() < 2 * 3600_000) continue;
            bank.push(...it.answers.filter((a) => a !== 'success'), 'success');
            const pay = await insertPayment(db, {
              merchantId: m,
              amount: 100,
              status: 'expired',
              createdAt,
            });
            ids.push(
              (
                await db.tx((tx) =>
                  svc.requests.request(tx, {
                    paymentId: pay,
                    amountPaise: 100,
                    reason: 'late_success',
                    sourceRef: 'p',
                  }),
                )
              ).reversalId,
            );
          }
          // The worker ticks every `tickMinutes` until all are done (the bank always answers in the end).
          for (let i = 0; i < 40; i++) {
            await svc.runReversals();
            await svc.runReversalChecks();
            const open = await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM settlement.reversals WHERE id = ANY($1) AND status <> 'succeeded'`,
              [ids],
            );
            if (open.rows[0].n === 0) break;
            clock.advance(tickMinutes * 60_000);
          }
          const late = await db.query<{ id: string }>(
            `SELECT id FROM settlement.reversals WHERE id = ANY($1) AND (status <> 'succeeded' OR completed_at >= deadline_at)`,
            [ids],
          );
          assert.deepEqual(late.rows, []);
          assert.equal(await svc.runCompensation(), 0);
        },
      ),
      { numRuns: 25 },
    );
    await verifyAll(db);
  });

  test('settlement verify finds a row the ledger does not back, and a refused reversal releases what was owed', async () => {
    const bank = scriptedBank({ script: ['decline'] });
    const svc = service(bank);
    const pay = await insertPayment(db, {
      merchantId: merchant(),
      amount: 900,
      status: 'expired',
      createdAt: new Date(),
    });
    const { reversalId } = await db.tx((tx) =>
      svc.requests.request(tx, { paymentId: pay, amountPaise: 900, reason: 'late_success', sourceRef: 'v' }),
    );
    assert.equal(await balance(db, 'reversal_payable:SIMBANK'), 900);
    await svc.runReversals();
    assert.equal((await svc.get(reversalId)).status, 'failed');
    assert.equal(await balance(db, 'reversal_payable:SIMBANK'), 0, 'released: nothing is owed on a refused reversal');
    await verifyAll(db);
    // A compensation row with no entry behind it is named.
    await db.query(
      `INSERT INTO settlement.compensations (payment_id, day, reversal_id, bank_code, amount, for_date, posted_at, status)
       VALUES ($1, 1, $2, 'SIMBANK', 10000, '2026-12-09', now(), 'legacy')`,
      [pay, reversalId],
    );
    const report = await runSettlementVerify(db, ledger);
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.violations.map((v) => v.invariant),
      ['compensation_matches_days'],
    );
  });
});
