import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { middayIst, startTestApp, type TestApp } from './helpers/harness.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { createWorker } from '../src/roles/worker.ts';
import { createLogger } from '../src/platform/log.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runSettlementVerify } from '../src/modules/settlement/index.ts';
import type { SimOutage } from '../src/tools/bank-sim/index.ts';

// Compensation for a late reversal (RBI/2019-20/67: ₹100 per day past T+5) paid to the customer's
// VPA by a push credit, end to end over real HTTP and the embedded bank simulator in both wire
// formats (SIMBANK: simbank JSON + HMAC; SIMBANK2: pspbank, encrypted and RSA-signed), on PGlite or
// (with TEST_DATABASE_URL) PostgreSQL. The simulator runs on the app's clock, so a week can pass.

const DAY = 86_400_000;

describe('compensation paid end to end', () => {
  let t: TestApp;
  const clock = fixedClock(middayIst());
  const outage: SimOutage = {};
  // The simulator's clock is the app's, held back by `lag` while a customer pays a QR our side
  // has just expired (at the bank it is still open); signatures stay well inside their window.
  let lag = 0;
  const simClock = { now: () => new Date(clock.now().getTime() - lag) };
  let worker: ReturnType<typeof createWorker>;
  const terminals: Record<string, string> = {};

  before(async () => {
    t = await startTestApp({
      clock,
      env: { QR_EXPIRY_SECONDS: '120', RATE_LIMIT_ENABLED: 'false', BANK_SIM2_FORMAT: 'pspbank' },
      simulator: { clock: simClock, outage },
    });
    terminals.SIMBANK = (await t.seedMerchant('Comp Mart')).terminal.id;
    const m = await t.request('POST', '/v1/merchants', {
      name: 'Comp PSP Mart',
      vpa: `comp${Math.random().toString(36).slice(2, 8)}@simbank2`,
      mcc: '5411',
      acquiring_bank: 'SIMBANK2',
    });
    assert.equal(m.status, 201, JSON.stringify(m.body));
    const s = await t.request('POST', `/v1/merchants/${m.body.id}/stores`, { name: 'Main', city: 'Pune' });
    terminals.SIMBANK2 = (await t.request('POST', '/v1/terminals', { store_id: s.body.id, label: 'Till 1' })).body.id;
    worker = createWorker({
      db: t.db,
      payments: t.app.services.payments,
      settlement: t.app.services.settlement,
      logger: createLogger({ level: 'silent' }),
      intervalMs: 1000,
    });
  });
  after(async () => {
    await t.close();
  });

  /** A QR payment our side expired and the customer paid anyway: flagged, to be reversed. */
  async function lateSuccess(bank: string, payer: string) {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminals[bank],
      amount: 14_900,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const b = await t.db.query<{ bank_code: string }>(`SELECT bank_code FROM payments.payments WHERE id = $1`, [
      r.body.id,
    ]);
    assert.equal(b.rows[0].bank_code, bank);
    clock.advance(121_000);
    lag = 121_000;
    // Payments' expiry only: the settlement jobs must not reverse it before the week passes.
    await t.app.services.payments.runExpiry();
    assert.equal((await t.request('GET', `/v1/payments/${r.body.id}`)).body.status, 'expired');
    assert.equal((await t.payQr(r.body.upi_uri, payer, 'success')).status, 200);
    lag = 0;
    assert.ok(
      await t.eventually(async () => (await t.request('GET', `/v1/payments/${r.body.id}`)).body.needs_reconciliation),
    );
    return r.body.id as string;
  }
  /** A QR payment paid in time: payments keeps its payer's VPA (sealed by the vault). */
  async function paidInTime(bank: string, payer: string) {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminals[bank],
      amount: 14_900,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal((await t.payQr(r.body.upi_uri, payer, 'success')).status, 200);
    assert.ok(
      await t.eventually(async () => (await t.request('GET', `/v1/payments/${r.body.id}`)).body.status === 'succeeded'),
    );
    return r.body.id as string;
  }
  let seq = 0;
  const reversalOf = async (paymentId: string) => {
    const l = await t.request('GET', `/v1/settlement/reversals?payment_id=${paymentId}`);
    return (await t.request('GET', `/v1/settlement/reversals/${l.body.data[0].id}`)).body;
  };
  const bal = (code: string) => t.app.services.ledger.balance(t.db, code);

  for (const [bank, format] of [
    ['SIMBANK', 'simbank'],
    ['SIMBANK2', 'pspbank'],
  ] as const) {
    test(`${bank} (${format}): reversed two days late; the worker pays ₹100 a day to the VPA, once; an uncertain answer waits; refused stays owed`, async () => {
      const svc = t.app.services.settlement;
      const paid = await lateSuccess(bank, 'ravi.kumar@okaxis');
      const refused = await lateSuccess(bank, 'sim-nocredit.asha@okaxis');
      const known = await paidInTime(bank, 'meera.iyer@okaxis');
      // A week passes before the reversals go out (and an operator reverses the paid one): each
      // is reversed two days past T+5.
      clock.advance(7 * DAY);
      const op = await t.request(
        'POST',
        '/v1/settlement/reversals',
        { payment_id: known, amount: 14_900, reason: 'operator' },
        { 'idempotency-key': `comp-op-${format}-${++seq}` },
      );
      assert.equal(op.status, 201, JSON.stringify(op.body));
      await svc.reversals.scheduleFlagged();
      await svc.reversals.runReversals();
      for (const id of [paid, refused, known]) assert.equal((await reversalOf(id)).status, 'succeeded');
      assert.equal(await svc.reversals.runCompensation(), 6, 'two days each');
      // The bank is down when the credits are due. The paid payment's VPA is on file: its credits
      // go out, the answers are 503s (uncertain): in transit, not paid. The late successes' payers
      // must be asked of the bank first: not sent. Nothing is counted paid.
      outage[format] = 'error';
      assert.equal(await svc.compensation.runCredits(), 6);
      const uncertain = await reversalOf(known);
      assert.deepEqual(
        uncertain.compensations.map((c: any) => [c.day, c.status, c.paid_at]),
        [
          [1, 'pending', null],
          [2, 'pending', null],
        ],
      );
      assert.equal(await bal(`compensation_in_transit:${bank}`), 20_000);
      let r = await reversalOf(paid);
      assert.deepEqual(
        r.compensations.map((c: any) => [c.day, c.status, c.amount, c.paid_at]),
        [
          [1, 'due', 10_000, null],
          [2, 'due', 10_000, null],
        ],
      );
      assert.equal(await bal(`compensation_payable:${bank}`), 40_000);
      const mid = await runSettlementVerify(t.db, t.app.services.ledger);
      assert.equal(mid.ok, true, JSON.stringify(mid.violations));
      // It recovers; the worker pays each day once to the payer the bank reports; the closed
      // account's credits are refused (U31) and stay owed.
      delete outage[format];
      clock.advance(301_000);
      const done = await t.eventually(async () => {
        await worker.runOnce();
        const a = await reversalOf(paid);
        const b = await reversalOf(refused);
        const k = await reversalOf(known);
        return a.compensations.every((c: any) => c.status === 'paid') &&
          k.compensations.every((c: any) => c.status === 'paid') &&
          b.compensations.every((c: any) => c.status === 'failed')
          ? { a, b, k }
          : undefined;
      });
      assert.ok(done, 'paid and refused');
      r = done.a;
      for (const c of r.compensations) {
        assert.equal(c.bank.response_code, '00');
        assert.match(c.credit_ref, /^CP[0-9A-F]{32}$/);
        assert.ok(c.paid_at);
      }
      for (const c of done.b.compensations) assert.equal(c.bank.response_code, 'U31');
      assert.equal(await bal(`compensation_in_transit:${bank}`), 0);
      assert.equal(await bal(`compensation_payable:${bank}`), 20_000, 'the refused ones are still owed');
      // More ticks pay nothing twice.
      for (let i = 0; i < 3; i++) await worker.runOnce();
      const entries = await t.db.query<{ kind: string; n: number }>(
        `SELECT kind, count(*)::int AS n FROM ledger.entries
          WHERE kind = 'compensation.paid' AND reference = ANY($1::text[]) GROUP BY kind`,
        [r.compensations.map((c: any) => c.credit_ref)],
      );
      assert.equal(entries.rows[0].n, 2, 'one paid entry per day');
      // The uncertain ones: the status check found the bank never had them (the outage answered
      // before the bank read them), so each went again with its reference and was paid once.
      for (const c of done.k.compensations) {
        const kinds = await t.db.query<{ kind: string; n: number }>(
          `SELECT kind, count(*)::int AS n FROM ledger.entries WHERE reference LIKE $1 || '%' GROUP BY kind ORDER BY kind`,
          [c.credit_ref],
        );
        assert.deepEqual(
          kinds.rows.map((x) => [x.kind, x.n]),
          [
            ['compensation.paid', 1],
            ['compensation.returned', 1],
            ['compensation.sent', 2],
          ],
        );
        assert.equal(c.attempts, 2);
      }
      const audit = await t.db.query<{ action: string; n: number }>(
        `SELECT action, count(*)::int AS n FROM audit.events
          WHERE action LIKE 'settlement.compensation_%' AND resource_id LIKE ANY($1::text[])
          GROUP BY action ORDER BY action`,
        [[`${paid}:%`, `${refused}:%`, `${known}:%`]],
      );
      assert.deepEqual(
        audit.rows.map((x) => [x.action, x.n]),
        [
          ['settlement.compensation_failed', 2],
          ['settlement.compensation_paid', 4],
        ],
      );
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      assert.match(metrics, /^tillpoint_compensation_credits\{status="paid"\} \d+$/m);
      const l = await runLedgerVerify(t.db);
      assert.equal(l.ok, true, JSON.stringify(l.violations));
      const s = await runSettlementVerify(t.db, t.app.services.ledger);
      assert.equal(s.ok, true, JSON.stringify(s.violations));
    });
  }
});
