import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';

// Points are there when the payment is: the earn is written in the transaction that moves the
// payment to succeeded (rewards.hooks.ts onSucceeded, before the ledger entry), so no reader can
// see `succeeded` and a balance without the points. Checked under concurrency: many payments
// completing by callback at once while readers poll each payment and, the moment it reads
// succeeded, read the payer's balance once (no retry). PGlite, or PostgreSQL with TEST_DATABASE_URL.

describe('points are visible when the payment is', () => {
  let t: TestApp;
  let merchantId: string;
  let terminalId: string;
  before(async () => {
    t = await startTestApp();
    const s = await t.seedMerchant('Visibility Stores');
    merchantId = s.merchant.id;
    terminalId = s.terminal.id;
    const pr = await t.request('POST', '/v1/rewards/programs', {
      merchant_id: merchantId,
      name: 'Demo-like',
      point_value_paise: 25,
      earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
    });
    assert.equal(pr.status, 201, JSON.stringify(pr.body));
  });
  after(() => t.close());

  test('a new customer paying ₹149 by QR reads 14 points in the first balance read after succeeded', async () => {
    const N = 16;
    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const vpa = `new.customer${i}.${Date.now()}@okaxis`;
        const p = await t.request('POST', '/v1/payments', {
          terminal_id: terminalId,
          amount: 14_900,
          currency: 'INR',
          method: 'upi_qr',
        });
        assert.equal(p.status, 201, JSON.stringify(p.body));
        // The reader starts before the customer pays, and keeps reading until it sees succeeded.
        const reader = (async () => {
          const end = Date.now() + 30_000;
          while (Date.now() < end) {
            const g = await t.request('GET', `/v1/payments/${p.body.id}`);
            if (g.body.status === 'succeeded') {
              return (
                await t.request('GET', `/v1/rewards/balance?merchant_id=${merchantId}&vpa=${encodeURIComponent(vpa)}`)
              ).body;
            }
            await new Promise((r) => setTimeout(r, 5));
          }
          return undefined;
        })();
        const paid = await t.payQr(p.body.upi_uri, vpa, 'success');
        assert.equal(paid.status, 200, JSON.stringify(paid.body));
        return reader;
      }),
    );
    for (const b of results) {
      assert.ok(b, 'the payment succeeded');
      assert.equal(b.available, 14, 'the first read after succeeded has the points');
    }
  });
});
