import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { middayIst, startTestApp, type TestApp } from './helpers/harness.ts';
import { createOperator, signIn, type Session } from './helpers/operators.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { createWorker } from '../src/roles/worker.ts';
import { createLogger } from '../src/platform/log.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runSettlementVerify } from '../src/modules/settlement/index.ts';

// An operator sends again a compensation credit the bank refused (a closed account), over real
// HTTP, the embedded bank simulator (simbank: a payer VPA starting "sim-nocredit" has its credits
// refused, U31) and the approvals facility, on PGlite or (with TEST_DATABASE_URL) PostgreSQL.

const DAY = 86_400_000;
const NEW_VPA = 'asha.new@okaxis';

describe('compensation refused by the bank, sent again by an operator', () => {
  let t: TestApp;
  const clock = fixedClock(middayIst());
  let lag = 0;
  const simClock = { now: () => new Date(clock.now().getTime() - lag) };
  let worker: ReturnType<typeof createWorker>;
  let terminal: string;
  let asha: Session; // settlement: asks
  let bala: Session; // settlement: the second pair of eyes
  let chitra: Session; // settlement: a third
  let viewer: Session; // support: no compensations:retry
  const logLines: string[] = [];

  before(async () => {
    t = await startTestApp({
      clock,
      env: { QR_EXPIRY_SECONDS: '120', RATE_LIMIT_ENABLED: 'false' },
      simulator: { clock: simClock },
      logLines,
    });
    terminal = (await t.seedMerchant('Retry Mart')).terminal.id;
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

  /** A QR payment our side expired and the customer (whose account is closed) paid anyway. */
  async function lateSuccess(payer: string) {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminal,
      amount: 14_900,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    clock.advance(121_000);
    lag = 121_000;
    await t.app.services.payments.runExpiry();
    assert.equal((await t.payQr(r.body.upi_uri, payer, 'success')).status, 200);
    lag = 0;
    assert.ok(
      await t.eventually(async () => (await t.request('GET', `/v1/payments/${r.body.id}`)).body.needs_reconciliation),
    );
    return r.body.id as string;
  }
  const compensations = async (paymentId: string) => {
    const l = await t.request('GET', `/v1/settlement/reversals?payment_id=${paymentId}`);
    return (await t.request('GET', `/v1/settlement/reversals/${l.body.data[0].id}`)).body.compensations as any[];
  };
  const bal = (code: string) => t.app.services.ledger.balance(t.db, code);
  const retryPath = (pay: string, day: number) => `/v1/settlement/compensations/${pay}/${day}/retry`;
  const verify = async () => {
    const l = await runLedgerVerify(t.db);
    assert.equal(l.ok, true, JSON.stringify(l.violations));
    const s = await runSettlementVerify(t.db, t.app.services.ledger);
    assert.equal(s.ok, true, JSON.stringify(s.violations));
  };

  test('refused, sent again to the same VPA, then to another one with four eyes, paid once; the ugly cases refused', async () => {
    const svc = t.app.services.settlement;
    const pay = await lateSuccess('sim-nocredit.asha@okaxis');
    // Reversed two days late: two days of compensation, each refused by the bank (closed account).
    clock.advance(7 * DAY);
    await svc.reversals.scheduleFlagged();
    await svc.reversals.runReversals();
    assert.equal(await svc.reversals.runCompensation(), 2);
    await svc.compensation.runCredits();
    let rows = await compensations(pay);
    assert.deepEqual(
      rows.map((c) => [c.day, c.status, c.bank.response_code]),
      [
        [1, 'failed', 'U31'],
        [2, 'failed', 'U31'],
      ],
    );
    const refusedRef = rows[0].credit_ref as string;
    assert.equal(await bal('compensation_payable:SIMBANK'), 20_000, 'still owed');

    // Operators sign in now (the week above would have ended their sessions).
    const make = async (roles: string[], name: string) => signIn(t, clock, await createOperator(t, { roles, name }));
    asha = await make(['settlement'], 'Asha');
    bala = await make(['settlement'], 'Bala');
    chitra = await make(['settlement'], 'Chitra');
    viewer = await make(['support'], 'Vikram');

    // The ugly cases first: nothing changes.
    const unknown = await asha.req('POST', retryPath('pay_00000000000000000000000000000000', 1), { reason: 'closed' });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, 'compensation_not_found');
    assert.equal(
      (await asha.req('POST', retryPath(pay, 9), { reason: 'closed' })).body.error.code,
      'compensation_not_found',
    );
    assert.equal((await asha.req('POST', retryPath('not-an-id', 1), { reason: 'x' })).status, 404);
    const noReason = await asha.req('POST', retryPath(pay, 1), {});
    assert.equal(noReason.status, 400);
    const badVpa = await asha.req('POST', retryPath(pay, 1), { reason: 'closed', payee_vpa: 'not a vpa' });
    assert.equal(badVpa.status, 400);
    assert.equal(badVpa.body.error.code, 'invalid_vpa');
    const denied = await viewer.req('POST', retryPath(pay, 1), { reason: 'closed' });
    assert.equal(denied.status, 403, 'support has no compensations:retry');
    assert.equal((await compensations(pay))[0].credit_ref, refusedRef);

    // To the same VPA (the customer says the account is open again): at once, a new reference.
    const same = await asha.req('POST', retryPath(pay, 1), { reason: 'customer reopened the account' });
    assert.equal(same.status, 200, JSON.stringify(same.body));
    assert.equal(same.body.compensation.status, 'due');
    assert.notEqual(same.body.compensation.credit_ref, refusedRef);
    assert.match(same.body.compensation.credit_ref, /^CP[0-9A-F]{32}$/);
    assert.equal(same.body.retry.failed_credit_ref, refusedRef);
    assert.equal(same.body.retry.payee_vpa, null);
    assert.equal(same.body.retry.approval_id, null);
    // Sent again, refused again: the account is still closed.
    await svc.compensation.runCredits();
    rows = await compensations(pay);
    assert.deepEqual(
      [rows[0].status, rows[0].bank.response_code, rows[0].retry_id],
      ['failed', 'U31', same.body.retry.id],
    );
    await verify();

    // To another VPA: four eyes. Filed, nothing moves yet; the VPA is never stored or shown in clear.
    const filed = await asha.req('POST', retryPath(pay, 1), {
      reason: 'closed account; new VPA from the customer',
      payee_vpa: NEW_VPA,
    });
    assert.equal(filed.status, 202, JSON.stringify(filed.body));
    assert.equal(filed.body.error.code, 'approval_required');
    const approval = filed.body.error.details.approval;
    assert.equal(approval.kind, 'compensation_retry');
    assert.equal(approval.approve_permission, 'compensations:approve');
    assert.equal(approval.payload.amount, 10_000);
    assert.notEqual(approval.payload.payee_vpa, NEW_VPA);
    assert.match(approval.payload.payee_vpa, /\*/);
    assert.equal((await compensations(pay))[0].status, 'failed');
    const stored = await t.db.query<{ payee_vpa_ct: string }>(
      `SELECT payee_vpa_ct FROM settlement.compensation_retries WHERE id = $1`,
      [approval.subject.id],
    );
    assert.ok(stored.rows[0].payee_vpa_ct);
    assert.ok(!stored.rows[0].payee_vpa_ct.includes('asha.new'), 'sealed');
    // Whoever asked never approves.
    const self = await asha.req('POST', `/v1/approvals/${approval.id}/approve`);
    assert.equal(self.body.error.code, 'self_approval_forbidden');
    // Two approvers at once: one carries it out, the other is told it is decided.
    const [b, c] = await Promise.all([
      bala.req('POST', `/v1/approvals/${approval.id}/approve`),
      chitra.req('POST', `/v1/approvals/${approval.id}/approve`),
    ]);
    assert.deepEqual([b.status, c.status].sort(), [200, 409], JSON.stringify([b.body, c.body]));
    rows = await compensations(pay);
    assert.equal(rows[0].status, 'due');
    assert.equal(rows[0].retry_id, approval.subject.id);
    // The worker pays it to the new VPA (the closed one would be refused): paid once.
    await svc.compensation.runCredits();
    rows = await compensations(pay);
    assert.deepEqual([rows[0].status, rows[0].bank.response_code], ['paid', '00']);
    for (let i = 0; i < 3; i++) await worker.runOnce();

    // Already paid: refused, whatever the VPA.
    const paidAgain = await asha.req('POST', retryPath(pay, 1), { reason: 'again' });
    assert.equal(paidAgain.status, 409);
    assert.equal(paidAgain.body.error.code, 'compensation_not_retryable');
    assert.equal(paidAgain.body.error.details.status, 'paid');
    assert.equal((await asha.req('POST', retryPath(pay, 1), { reason: 'again', payee_vpa: NEW_VPA })).status, 409);

    // Day 2: concurrent retries never send it twice. Two at once to the same VPA: one wins.
    const both = await Promise.all([
      asha.req('POST', retryPath(pay, 2), { reason: 'one' }),
      bala.req('POST', retryPath(pay, 2), { reason: 'two' }),
    ]);
    assert.deepEqual(both.map((r) => r.status).sort(), [200, 409], JSON.stringify(both.map((r) => r.body)));
    await svc.compensation.runCredits(); // refused again (closed account)
    assert.equal((await compensations(pay))[1].status, 'failed');
    // Two requests to another VPA both approved at once: the first carries out, the second
    // finds the credit no longer refused and closes as failed.
    const r1 = (await asha.req('POST', retryPath(pay, 2), { reason: 'new VPA', payee_vpa: NEW_VPA })).body.error.details
      .approval;
    const r2 = (await bala.req('POST', retryPath(pay, 2), { reason: 'new VPA too', payee_vpa: 'asha.other@okaxis' }))
      .body.error.details.approval;
    const decided = await Promise.all([
      chitra.req('POST', `/v1/approvals/${r1.id}/approve`),
      chitra.req('POST', `/v1/approvals/${r2.id}/approve`),
    ]);
    assert.deepEqual(decided.map((r) => r.status).sort(), [200, 409], JSON.stringify(decided.map((r) => r.body)));
    const loser = decided.find((r) => r.status === 409)!;
    assert.equal(loser.body.error.code, 'compensation_not_retryable');
    const states = await t.db.query<{ status: string }>(
      `SELECT status FROM identity.approval_requests WHERE id = ANY($1) ORDER BY status`,
      [[r1.id, r2.id]],
    );
    assert.deepEqual(
      states.rows.map((s) => s.status),
      ['approved', 'failed'],
    );
    await svc.compensation.runCredits();
    for (let i = 0; i < 3; i++) await worker.runOnce();
    rows = await compensations(pay);
    assert.deepEqual(
      rows.map((x) => x.status),
      ['paid', 'paid'],
    );

    // The money: each day paid exactly once, nothing left owed or in transit; the books agree.
    const paidEntries = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ledger.entries e
         JOIN settlement.compensations c ON e.reference = c.credit_ref
        WHERE e.kind = 'compensation.paid' AND c.payment_id = $1`,
      [pay],
    );
    assert.equal(paidEntries.rows[0].n, 2);
    const allPaid = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ledger.entries WHERE kind = 'compensation.paid' AND reference IN
         (SELECT credit_ref FROM settlement.compensation_retries WHERE payment_id = $1 AND credit_ref IS NOT NULL
          UNION SELECT failed_credit_ref FROM settlement.compensation_retries WHERE payment_id = $1)`,
      [pay],
    );
    assert.equal(allPaid.rows[0].n, 2, 'no earlier reference was paid as well');
    assert.equal(await bal('compensation_payable:SIMBANK'), 0);
    assert.equal(await bal('compensation_in_transit:SIMBANK'), 0);
    await verify();

    // Every retry carried out is an audit event; no VPA appears in clear in the trail.
    const audit = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE action = 'settlement.compensation_retried' AND resource_id LIKE $1 || ':%'`,
      [pay],
    );
    assert.equal(audit.rows.length, 4, 'day 1 twice (same VPA, approved), day 2 twice (same VPA, approved)');
    const trail = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit.events WHERE record LIKE '%asha.new@%' OR record LIKE '%asha.other@%'`,
    );
    assert.equal(trail.rows[0].n, 0);
    assert.ok(logLines.length > 0);
    assert.ok(!logLines.some((l) => /asha\.(new|other)@/.test(l)), 'nor in the logs');
  });
});
