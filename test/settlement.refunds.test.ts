import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runSettlementVerify } from '../src/modules/settlement/index.ts';

// Merchant refunds (payments) and operator reversals (settlement) of the same payment, over real
// HTTP and the embedded bank simulator, on PGlite or (with TEST_DATABASE_URL) PostgreSQL, where
// the requests really run side by side: together they never give back more than the payment's
// amount (refundable = amount − refunded − reversed).

describe('refunds see reversals', () => {
  let t: TestApp;
  let terminalId: string;
  before(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
    terminalId = (await t.seedMerchant('Refund Mart')).terminal.id;
  });
  after(async () => {
    await t.close();
  });

  let seq = 0;
  const key = () => `rr-${process.pid}-${++seq}`;
  async function paid(amount: number) {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal((await t.payQr(r.body.upi_uri, 'ravi.kumar@okaxis', 'success')).status, 200);
    assert.ok(
      await t.eventually(async () => (await t.request('GET', `/v1/payments/${r.body.id}`)).body.status === 'succeeded'),
    );
    return r.body.id as string;
  }
  const refund = (id: string, amount: number) =>
    t.request('POST', `/v1/payments/${id}/refunds`, { amount }, { 'idempotency-key': key() });
  const reverse = (id: string, amount: number) =>
    t.request(
      'POST',
      '/v1/settlement/reversals',
      { payment_id: id, amount, reason: 'operator' },
      { 'idempotency-key': key() },
    );

  test('a refund after an operator reversal sees it, and a reversal after a refund sees that', async () => {
    const a = await paid(10_000);
    assert.equal((await reverse(a, 4_000)).status, 201);
    const over = await refund(a, 6_001);
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.equal(over.body.error.code, 'refund_exceeds_payment');
    assert.equal(over.body.error.details?.refundable_amount ?? 6_000, 6_000);
    assert.equal((await refund(a, 6_000)).status, 201);
    const b = await paid(10_000);
    assert.equal((await refund(b, 7_000)).status, 201);
    const r = await reverse(b, 3_001);
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'refund_exceeds_payment');
    assert.equal((await reverse(b, 3_000)).status, 201);
  });

  test('refundable_amount (the API, and the console that reads it) is what a refund may still take: reversals count', async () => {
    const refundable = async (id: string) => {
      const one = await t.request('GET', `/v1/payments/${id}`);
      assert.equal(one.status, 200);
      const listed = await t.request('GET', `/v1/payments?limit=50`);
      const row = listed.body.data.find((p: { id: string }) => p.id === id);
      assert.equal(row.refundable_amount, one.body.refundable_amount, 'the list says what the payment says');
      return one.body.refundable_amount as number;
    };
    const a = await paid(10_000);
    assert.equal(await refundable(a), 10_000);
    assert.equal((await reverse(a, 2_500)).status, 201);
    assert.equal(await refundable(a), 7_500, 'the operator reversal is taken off');
    assert.equal((await refund(a, 1_000)).status, 201);
    assert.equal(await refundable(a), 6_500, 'and the refund in flight');
    // The number shown is exactly what the reservation admits: one paisa more is refused, it is not.
    const over = await refund(a, 6_501);
    assert.equal(over.status, 409);
    assert.equal(over.body.error.code, 'refund_exceeds_payment');
    assert.equal(over.body.error.details?.refundable_amount, 6_500);
    assert.equal((await refund(a, 6_500)).status, 201);
    assert.equal(await refundable(a), 0);
  });

  test('parallel refunds and reversals of one payment never exceed its amount', async () => {
    for (let round = 0; round < 4; round++) {
      const id = await paid(10_000);
      // Six refunds and three reversals of 3 000 each, all at once: at most three fit in 10 000.
      const calls = [
        ...Array.from({ length: 6 }, () => refund(id, 3_000).then((r) => ({ kind: 'refund', r }))),
        ...Array.from({ length: 3 }, () => reverse(id, 3_000).then((r) => ({ kind: 'reversal', r }))),
      ];
      const done = await Promise.all(calls);
      for (const { r } of done) assert.ok([200, 201, 409].includes(r.status), JSON.stringify(r.body));
      const refunds = done.filter((d) => d.kind === 'refund' && d.r.status === 201).length;
      const reversal = done.find((d) => d.kind === 'reversal' && d.r.status === 201);
      const reversed = (
        await t.db.query<{ n: string }>(
          `SELECT coalesce(sum(amount), 0)::bigint AS n FROM settlement.reversals WHERE payment_id = $1 AND status <> 'failed'`,
          [id],
        )
      ).rows[0].n;
      const p = (
        await t.db.query<{ refund_reserved: string }>(`SELECT refund_reserved FROM payments.payments WHERE id = $1`, [
          id,
        ])
      ).rows[0];
      assert.equal(Number(p.refund_reserved), refunds * 3_000);
      assert.ok(
        Number(p.refund_reserved) + Number(reversed) <= 10_000,
        `round ${round}: refunds ${p.refund_reserved} + reversed ${reversed} exceed 10 000`,
      );
      assert.equal(refunds + (reversal ? 1 : 0), 3, `round ${round}: exactly three of 3 000 fit`);
    }
    const l = await runLedgerVerify(t.db);
    assert.equal(l.ok, true, JSON.stringify(l.violations));
    const s = await runSettlementVerify(t.db, t.app.services.ledger);
    assert.equal(s.ok, true, JSON.stringify(s.violations));
  });
});
