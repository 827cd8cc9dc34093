import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { middayIst, startTestApp, type TestApp } from './helpers/harness.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { createWorker } from '../src/roles/worker.ts';
import { createLogger } from '../src/platform/log.ts';
import { createApiKey } from '../src/modules/identity/index.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { cycleOf, parseCycleKey, runSettlementVerify } from '../src/modules/settlement/index.ts';

// Settlement end to end over real HTTP and the bank simulator (embedded), on PGlite or (with
// TEST_DATABASE_URL) PostgreSQL: a QR payment our side expired is paid late at the bank, the
// worker reverses it through the bank's refund call; an operator reverses a paid one; the cycle
// closes; the merchant's payout goes out in a bulk-transfer file and is confirmed paid. The ledger
// is verified at the end.

describe('settlement end to end', () => {
  let t: TestApp;
  const clock = fixedClock(middayIst());
  let merchantId: string;
  let terminalId: string;
  let worker: ReturnType<typeof createWorker>;
  before(async () => {
    // One cycle a day, cut off an hour from now (IST): everything this test does falls in one cycle.
    const cutoff = new Date(Date.now() + 3_600_000 + (5 * 60 + 30) * 60_000).toISOString().slice(11, 16);
    process.env.SETTLEMENT_CYCLE_CUTOFFS = cutoff;
    t = await startTestApp({ clock, env: { QR_EXPIRY_SECONDS: '120', RATE_LIMIT_ENABLED: 'false' } });
    const s = await t.seedMerchant('Settle Mart');
    merchantId = s.merchant.id;
    terminalId = s.terminal.id;
    worker = createWorker({
      db: t.db,
      payments: t.app.services.payments,
      settlement: t.app.services.settlement,
      logger: createLogger({ level: 'silent' }),
      intervalMs: 1000,
    });
  });
  after(async () => {
    delete process.env.SETTLEMENT_CYCLE_CUTOFFS;
    await t.close();
  });

  const qr = async (amount: number) => {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as { id: string; upi_uri: string };
  };

  test('a late success at the bank is reversed through the bank by the worker', async () => {
    // The simulator keeps real time: ours starts there, so its QR has not expired at the bank
    // when ours has.
    clock.set(new Date());
    const p = await qr(14_900);
    // Our side gives up: past its expiry, the final status check finds it unpaid.
    clock.advance(121_000);
    await worker.runOnce();
    assert.equal((await t.request('GET', `/v1/payments/${p.id}`)).body.status, 'expired');
    // The customer pays anyway; the bank's signed callback reports the success.
    assert.equal((await t.payQr(p.upi_uri, 'ravi.kumar@okaxis', 'success')).status, 200);
    const flagged = await t.eventually(
      async () => (await t.request('GET', `/v1/payments/${p.id}`)).body.needs_reconciliation,
    );
    assert.ok(flagged, 'flagged for reconciliation');
    // The worker schedules the reversal and sends it, in deadline order.
    await worker.runOnce();
    const list = await t.request('GET', `/v1/settlement/reversals?payment_id=${p.id}`);
    assert.equal(list.status, 200, JSON.stringify(list.body));
    assert.equal(list.body.data.length, 1);
    const r = list.body.data[0];
    assert.equal(r.reason, 'late_success');
    assert.equal(r.amount, 14_900);
    const done = await t.eventually(async () => {
      await worker.runOnce();
      const g = await t.request('GET', `/v1/settlement/reversals/${r.id}`);
      return g.body.status === 'succeeded' ? g : undefined;
    });
    assert.ok(done, 'reversed');
    assert.equal(done.body.bank.response_code, '00');
    assert.ok(Date.parse(done.body.deadline_at) > Date.parse(done.body.completed_at));
    assert.ok(done.body.events.length >= 2);
    assert.equal(await t.app.services.ledger.balance(t.db, 'reversal_payable:SIMBANK'), 0);
    // Scheduling again changes nothing.
    await worker.runOnce();
    assert.equal((await t.request('GET', `/v1/settlement/reversals?payment_id=${p.id}`)).body.data.length, 1);
  });

  test('an operator reverses part of a paid payment; another merchant sees none of it', async () => {
    const p = await qr(10_000);
    await t.payQr(p.upi_uri, 'asha@okaxis', 'success');
    await t.eventually(async () => (await t.request('GET', `/v1/payments/${p.id}`)).body.status === 'succeeded');
    const body = { payment_id: p.id, amount: 2_500, reason: 'operator' };
    const first = await t.request('POST', '/v1/settlement/reversals', body, { 'idempotency-key': 'rev-op-1' });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.created, true);
    assert.equal(first.body.reversal.charge_merchant, true);
    const over = await t.request(
      'POST',
      '/v1/settlement/reversals',
      { ...body, amount: 10_001 },
      { 'idempotency-key': 'rev-op-2' },
    );
    assert.equal(over.status, 409);
    assert.equal(over.body.error.code, 'refund_exceeds_payment');
    const bad = await t.request(
      'POST',
      '/v1/settlement/reversals',
      { ...body, amount: 0.5 },
      { 'idempotency-key': 'rev-op-3' },
    );
    assert.equal(bad.body.error.code, 'invalid_amount');
    await t.eventually(async () => {
      await worker.runOnce();
      return (await t.request('GET', `/v1/settlement/reversals/${first.body.reversal.id}`)).body.status === 'succeeded';
    });
    const other = await t.seedMerchant('Other Shop');
    const key = await createApiKey(t.db, {
      name: 'other',
      merchantId: other.merchant.id,
      permissions: ['settlement:read'],
    });
    const asOther = (path: string) =>
      fetch(t.url + path, { headers: { authorization: `Bearer ${key.key}` } }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as any,
      }));
    assert.deepEqual((await asOther('/v1/settlement/reversals')).body.data, []);
    assert.equal((await asOther(`/v1/settlement/reversals/${first.body.reversal.id}`)).status, 404);
    assert.equal((await asOther(`/v1/settlement/reversals?merchant_id=${merchantId}`)).status, 404);
    assert.equal((await asOther('/v1/settlement/cycles')).status, 403);
  });

  test('the cycle closes, the payout goes out in a bank file and is paid; the ledger holds', async () => {
    const acct = await t.request('PATCH', `/v1/merchants/${merchantId}`, {
      settlement_account: { account_number: '001234567890', ifsc: 'SIMB0000123' },
    });
    assert.equal(acct.status, 200, JSON.stringify(acct.body));
    const terms = await t.request('PATCH', `/v1/settlement/merchants/${merchantId}/terms`, {
      schedule: 'T+0',
      fee_bps: 50,
    });
    assert.equal(terms.status, 200, JSON.stringify(terms.body));
    // Past the cycle's cut-off (no more bank calls from here: the simulator's clock is its own).
    const cutoffs = t.app.services.settlement.cycles.cutoffs;
    const key = cycleOf(clock.now(), cutoffs).key;
    clock.set(new Date(parseCycleKey(key, cutoffs)!.endsAt.getTime() + 60_000));
    const closed = await t.request('POST', `/v1/settlement/cycles/${key}/close`);
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    const sim = closed.body.cycle.banks.find((b: any) => b.bank_code === 'SIMBANK');
    // Two payments (the late one's money came in too), one reversal and one operator reversal out.
    assert.deepEqual(sim.expected, { credit: 14_900 + 10_000, debit: 14_900 + 2_500, lines: 4 });
    assert.equal(sim.status, 'awaiting_file', 'no bank file wired in this test');
    const payouts = await t.request('GET', `/v1/settlement/payouts?merchant_id=${merchantId}&cycle_key=${key}`);
    const po = payouts.body.data[0];
    assert.deepEqual(
      { payments: po.payments, reversals: po.reversals, fees: po.fees, net: po.net, status: po.status },
      { payments: 10_000, reversals: 2_500, fees: 50, net: 7_450, status: 'scheduled' },
    );
    const exp = await t.request('POST', '/v1/settlement/payouts/export');
    assert.equal(exp.status, 200, JSON.stringify(exp.body));
    assert.equal(exp.body.batch.payouts, 1);
    const file = await fetch(`${t.url}/v1/settlement/payout-batches/${exp.body.batch.id}/file`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
    });
    const csv = await file.text();
    assert.match(csv, /^Transaction Type,/);
    assert.ok(csv.includes('NEFT,001234567890,SIMB0000123,Settle Mart,74.50,'), csv);
    const paid = await t.request('POST', `/v1/settlement/payouts/${po.id}/paid`, { bank_ref: 'UTR123' });
    assert.equal(paid.body.status, 'paid');
    assert.equal(await t.app.services.ledger.balance(t.db, `payout_in_transit:${merchantId}`), 0);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /^tillpoint_reversals_overdue 0$/m);
    assert.match(metrics, /^tillpoint_payouts_paise\{status="paid"\} 7450$/m);
    const report = await runLedgerVerify(t.db);
    assert.equal(report.ok, true, JSON.stringify(report.violations));
    const settled = await runSettlementVerify(t.db, t.app.services.ledger);
    assert.equal(settled.ok, true, JSON.stringify(settled.violations));
    assert.ok(settled.checked.reversals >= 2 && settled.checked.payouts >= 1);
  });
});
