import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { createApiKey } from '../src/modules/identity/index.ts';
import { parseUpiUri } from '../src/tools/bank-sim/index.ts';

// The UPI payment path end to end over real HTTP: API -> bank simulator -> signed callback ->
// ledger, on PGlite or (with TEST_DATABASE_URL) a real PostgreSQL.

describe('UPI payments end to end', () => {
  let t: TestApp;
  let terminalId: string;
  let merchantId: string;
  before(async () => {
    t = await startTestApp();
    const s = await t.seedMerchant('Sharma & Sons, Pune');
    terminalId = s.terminal.id;
    merchantId = s.merchant.id;
  });
  after(() => t.close());

  const countPayments = async () =>
    (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM payments.payments')).rows[0].n;

  test('a QR payment is created, paid by the customer, and posted to the ledger', async () => {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 14900,
      currency: 'INR',
      method: 'upi_qr',
      note: 'Bill #42: rice & dal',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.match(r.body.id, /^pay_[0-9a-f]{32}$/);
    assert.equal(r.body.status, 'pending');
    assert.ok(Date.parse(r.body.expires_at) > Date.now());
    const params = parseUpiUri(r.body.upi_uri).params;
    assert.match(params.pa, /@simbank$/);
    assert.ok(r.body.upi_uri.startsWith('upi://pay?pa='));
    assert.equal(params.pn, 'Sharma & Sons, Pune');
    assert.equal(params.am, '149.00');
    assert.equal(params.cu, 'INR');
    assert.equal(params.mc, '5411');
    assert.match(params.tr, /^[A-Za-z0-9]{1,35}$/);
    assert.equal(params.tn, 'Bill #42: rice & dal');
    assert.ok(r.body.upi_uri.includes('pn=Sharma%20%26%20Sons%2C%20Pune'), 'values are percent-encoded');

    const paid = await t.payQr(r.body.upi_uri, 'ravi.kumar@okaxis', 'success');
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    const done = await t.eventually(async () => {
      const g = await t.request('GET', `/v1/payments/${r.body.id}`);
      return g.body.status === 'succeeded' ? g : undefined;
    });
    assert.ok(done, 'payment succeeded after the signed callback');
    assert.equal(done.body.payer_vpa, 'ra****@okaxis', 'payer VPA is masked');
    assert.equal(done.body.bank.response_code, '00');
    const report = await runLedgerVerify(t.db);
    assert.equal(report.ok, true, JSON.stringify(report.violations));
    const bal = await t.app.services.ledger.balance(t.db, `merchant_payable:${merchantId}`);
    assert.ok(bal >= 14900);
  });

  test('partial and full refunds, never more than what is left', async () => {
    const p = await paidPayment(10000);
    const r1 = await t.request('POST', `/v1/payments/${p}/refunds`, { amount: 2500, reason: 'one item returned' });
    assert.equal(r1.status, 201, JSON.stringify(r1.body));
    assert.equal(r1.body.status, 'succeeded');
    let g = await t.request('GET', `/v1/payments/${p}`);
    assert.equal(g.body.status, 'partially_refunded');
    assert.equal(g.body.refunded_amount, 2500);
    const over = await t.request('POST', `/v1/payments/${p}/refunds`, { amount: 7501 });
    assert.equal(over.status, 409);
    assert.equal(over.body.error.code, 'refund_exceeds_payment');
    const r2 = await t.request('POST', `/v1/payments/${p}/refunds`, { amount: 7500 });
    assert.equal(r2.body.status, 'succeeded');
    g = await t.request('GET', `/v1/payments/${p}`);
    assert.equal(g.body.status, 'refunded');
    assert.equal(g.body.refundable_amount, 0);
    const again = await t.request('POST', `/v1/payments/${p}/refunds`, { amount: 1 });
    assert.equal(again.status, 409);
    const list = await t.request('GET', `/v1/payments/${p}/refunds`);
    assert.equal(list.body.data.length, 2);
    assert.equal((await runLedgerVerify(t.db)).ok, true);
  });

  test('50 parallel refunds never refund more than was paid', async () => {
    const p = await paidPayment(1000);
    const results = await Promise.all(
      Array.from({ length: 50 }, () => t.request('POST', `/v1/payments/${p}/refunds`, { amount: 30 })),
    );
    const ok = results.filter((r) => r.status === 201 && r.body.status === 'succeeded').length;
    assert.equal(ok, 33, 'floor(1000 / 30) refunds fit');
    for (const r of results.filter((r) => r.status !== 201)) assert.equal(r.body.error.code, 'refund_exceeds_payment');
    const g = await t.request('GET', `/v1/payments/${p}`);
    assert.equal(g.body.refunded_amount, 990);
    assert.equal((await runLedgerVerify(t.db)).ok, true);
  });

  test('a refund of a payment that did not succeed is refused', async () => {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 500,
      currency: 'INR',
      method: 'upi_qr',
    });
    const f = await t.request('POST', `/v1/payments/${r.body.id}/refunds`, { amount: 100 });
    assert.equal(f.status, 409);
    assert.equal(f.body.error.code, 'payment_not_refundable');
  });

  test('a collect request is approved by the bank and the payment succeeds', async () => {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 2599,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'Asha.M@oksbi',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.upi_uri, null);
    assert.equal(r.body.payer_vpa, 'as****@oksbi');
    const done = await t.eventually(async () =>
      (await t.request('GET', `/v1/payments/${r.body.id}`)).body.status === 'succeeded' ? true : undefined,
    );
    assert.ok(done);
  });

  test('Idempotency-Key: same body replays, other body conflicts, 20 concurrent retries create one payment', async () => {
    const body = { terminal_id: terminalId, amount: 777, currency: 'INR', method: 'upi_qr' };
    const before = await countPayments();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => t.request('POST', '/v1/payments', body, { 'idempotency-key': 'order-9001' })),
    );
    const ids = new Set(results.map((r) => r.body.id));
    assert.deepEqual(
      results.map((r) => r.status),
      Array(20).fill(201),
    );
    assert.equal(ids.size, 1, 'every retry got the same payment');
    assert.equal(await countPayments(), before + 1);
    const replay = await t.request('POST', '/v1/payments', body, { 'idempotency-key': 'order-9001' });
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(replay.body.id, [...ids][0]);
    const other = await t.request(
      'POST',
      '/v1/payments',
      { ...body, amount: 778 },
      { 'idempotency-key': 'order-9001' },
    );
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'idempotency_key_reused');
  });

  test("Idempotency-Key: a retry after the key's stored answer is gone (crash, lapsed claim) finds the same payment", async () => {
    const body = { terminal_id: terminalId, amount: 779, currency: 'INR', method: 'upi_qr' };
    const first = await t.request('POST', '/v1/payments', body, { 'idempotency-key': 'order-9002' });
    assert.equal(first.status, 201);
    const before = await countPayments();
    // What a process that died before storing the answer leaves, once its claim has lapsed.
    await t.db.query(`DELETE FROM platform.idempotency_keys WHERE key = 'order-9002'`);
    const retry = await t.request('POST', '/v1/payments', body, { 'idempotency-key': 'order-9002' });
    assert.equal(retry.status, 201, JSON.stringify(retry.body));
    assert.equal(retry.body.id, first.body.id);
    assert.equal(await countPayments(), before, 'no second payment');
    await t.db.query(`DELETE FROM platform.idempotency_keys WHERE key = 'order-9002'`);
    const changed = await t.request(
      'POST',
      '/v1/payments',
      { ...body, amount: 780 },
      { 'idempotency-key': 'order-9002' },
    );
    assert.equal(changed.status, 409);
    assert.equal(changed.body.error.code, 'idempotency_key_reused');
    assert.equal(await countPayments(), before);
  });

  test('bad input gets a stable 4xx error and writes nothing', async () => {
    const before = await countPayments();
    const base = { terminal_id: terminalId, amount: 100, currency: 'INR', method: 'upi_qr' };
    const cases: [unknown, number, string][] = [
      ['{"terminal_id": ', 400, 'malformed_json'],
      [{ ...base, amount: '100' }, 400, 'validation_failed'],
      [{ ...base, amount: 10.5 }, 400, 'invalid_amount'],
      [{ ...base, amount: -100 }, 400, 'invalid_amount'],
      [{ ...base, amount: 0 }, 400, 'invalid_amount'],
      [{ ...base, amount: 1e20 }, 400, 'invalid_amount'],
      [{ ...base, amount: 10_000_001 }, 422, 'amount_above_limit'],
      [{ ...base, currency: 'USD' }, 400, 'validation_failed'],
      [{ ...base, method: 'card' }, 400, 'validation_failed'],
      [{ ...base, method: 'upi_collect' }, 400, 'validation_failed'],
      [{ ...base, method: 'upi_collect', payer_vpa: 'not a vpa' }, 400, 'invalid_vpa'],
      [{ ...base, note: 'x'.repeat(51) }, 400, 'validation_failed'],
      // Sensitive authentication data is refused as such (PCI DSS 3.3.1), before schema validation.
      [{ ...base, cvv: '123' }, 400, 'sensitive_data_refused'],
      [{ ...base, terminal_id: 'trm_00000000000000000000000000000000' }, 404, 'terminal_not_found'],
      [{ ...base, terminal_id: "1' OR '1'='1" }, 404, 'terminal_not_found'],
      [[1, 2, 3], 400, 'validation_failed'],
      ['{"__proto__": {"admin": true}}', 400, 'malformed_json'],
    ];
    for (const [body, status, code] of cases) {
      const r = await t.request('POST', '/v1/payments', body);
      assert.equal(r.status, status, `${JSON.stringify(body)} -> ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, code, JSON.stringify(body));
      assert.ok(r.body.error.request_id, 'every error carries the request id');
    }
    const huge = await t.request('POST', '/v1/payments', { ...base, note: 'x'.repeat(200_000) });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'payload_too_large');
    const xml = await t.request('POST', '/v1/payments', '<payment/>', { 'content-type': 'application/xml' });
    assert.equal(xml.status, 415);
    assert.equal(await countPayments(), before, 'nothing was written');
  });

  test('unknown ids and routes are 404 with stable codes; no key is 401', async () => {
    assert.equal(
      (await t.request('GET', '/v1/payments/pay_00000000000000000000000000000000')).body.error.code,
      'payment_not_found',
    );
    assert.equal((await t.request('GET', '/v1/payments/nonsense')).body.error.code, 'payment_not_found');
    assert.equal((await t.request('GET', '/v1/nothing-here')).body.error.code, 'route_not_found');
    const noKey = await t.request('GET', '/v1/payments', undefined, { authorization: '' });
    assert.equal(noKey.status, 401);
    const badKey = await t.request('GET', '/v1/payments', undefined, {
      authorization: 'Bearer tp_notarealkeyatallnotarealkey',
    });
    assert.equal(badKey.status, 401);
    assert.equal(badKey.body.error.code, 'unauthenticated');
  });

  test("a merchant's key cannot see or use another merchant's terminals and payments", async () => {
    const other = await t.seedMerchant('Other Shop');
    const k = await createApiKey(t.db, {
      name: 'other merchant',
      merchantId: other.merchant.id,
      permissions: ['payments:read', 'payments:write', 'refunds:write', 'terminals:read', 'merchants:read'],
    });
    const as = { authorization: `Bearer ${k.key}` };
    const mine = await t.request(
      'POST',
      '/v1/payments',
      { terminal_id: other.terminal.id, amount: 100, currency: 'INR', method: 'upi_qr' },
      as,
    );
    assert.equal(mine.status, 201);
    const theirs = await t.request(
      'POST',
      '/v1/payments',
      { terminal_id: terminalId, amount: 100, currency: 'INR', method: 'upi_qr' },
      as,
    );
    assert.equal(theirs.status, 404);
    assert.equal(theirs.body.error.code, 'terminal_not_found');
    const list = await t.request('GET', '/v1/payments?limit=200', undefined, as);
    assert.ok(list.body.data.every((p: any) => p.merchant_id === other.merchant.id));
    const filter = await t.request('GET', `/v1/payments?merchant_id=${merchantId}`, undefined, as);
    assert.equal(filter.status, 404);
    const firstPaid = (await t.request('GET', `/v1/payments?merchant_id=${merchantId}&limit=1`)).body.data[0];
    assert.equal((await t.request('GET', `/v1/payments/${firstPaid.id}`, undefined, as)).status, 404);
    assert.equal((await t.request('POST', `/v1/payments/${firstPaid.id}/refunds`, { amount: 1 }, as)).status, 404);
    assert.equal((await t.request('GET', `/v1/merchants/${merchantId}`, undefined, as)).status, 404);
    assert.equal((await t.request('GET', `/v1/terminals/${terminalId}`, undefined, as)).status, 404);
    const ms = await t.request('GET', '/v1/merchants', undefined, as);
    assert.deepEqual(
      ms.body.data.map((m: any) => m.id),
      [other.merchant.id],
    );
    const readOnly = await createApiKey(t.db, {
      name: 'ro',
      merchantId: other.merchant.id,
      permissions: ['payments:read'],
    });
    const denied = await t.request(
      'POST',
      '/v1/payments',
      { terminal_id: other.terminal.id, amount: 100, currency: 'INR', method: 'upi_qr' },
      { authorization: `Bearer ${readOnly.key}` },
    );
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, 'forbidden');
  });

  test('lists filter by terminal, status and time, and paginate with a cursor', async () => {
    const s = await t.seedMerchant('Paging Shop');
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(
        (
          await t.request('POST', '/v1/payments', {
            terminal_id: s.terminal.id,
            amount: 100 + i,
            currency: 'INR',
            method: 'upi_qr',
          })
        ).body.id,
      );
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: any = await t.request(
        'GET',
        `/v1/payments?terminal_id=${s.terminal.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      assert.equal(r.status, 200);
      assert.ok(r.body.data.length <= 2);
      seen.push(...r.body.data.map((p: any) => p.id));
      cursor = r.body.next_cursor;
    } while (cursor);
    assert.deepEqual(seen, [...made].reverse(), 'newest first, each exactly once');
    const pending = await t.request('GET', `/v1/payments?terminal_id=${s.terminal.id}&status=pending`);
    assert.equal(pending.body.data.length, 5);
    const future = await t.request(
      'GET',
      `/v1/payments?terminal_id=${s.terminal.id}&created_from=${new Date(Date.now() + 60_000).toISOString()}`,
    );
    assert.equal(future.body.data.length, 0);
    assert.equal((await t.request('GET', '/v1/payments?cursor=garbage')).body.error.code, 'invalid_cursor');
    assert.equal((await t.request('GET', '/v1/payments?limit=0')).status, 400);
    assert.equal((await t.request('GET', '/v1/payments?limit=abc')).status, 400);
  });

  test('merchants, stores and terminals are managed through the API with pagination', async () => {
    const s = await t.seedMerchant('Catalog Shop');
    const stores = await t.request('GET', `/v1/merchants/${s.merchant.id}/stores`);
    assert.equal(stores.body.data.length, 1);
    assert.equal(stores.body.next_cursor, null);
    const t2 = await t.request('POST', '/v1/terminals', { store_id: s.store.id, label: 'Till 2', serial: 'SN-0002' });
    assert.equal(t2.status, 201);
    const dup = await t.request('POST', '/v1/terminals', { store_id: s.store.id, serial: 'SN-0002' });
    assert.equal(dup.status, 409);
    const terms = await t.request('GET', `/v1/terminals?merchant_id=${s.merchant.id}&limit=1`);
    assert.equal(terms.body.data.length, 1);
    assert.ok(terms.body.next_cursor);
    const disabled = await t.request('PATCH', `/v1/terminals/${t2.body.id}`, { status: 'disabled' });
    assert.equal(disabled.body.status, 'disabled');
    const refused = await t.request('POST', '/v1/payments', {
      terminal_id: t2.body.id,
      amount: 100,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(refused.body.error.code, 'terminal_inactive');
    const badBank = await t.request('POST', '/v1/merchants', {
      name: 'X',
      vpa: 'x1@simbank',
      mcc: '5411',
      acquiring_bank: 'NOPE',
    });
    assert.equal(badBank.status, 400);
    const badMcc = await t.request('POST', '/v1/merchants', {
      name: 'X',
      vpa: 'x1@simbank',
      mcc: '54',
      acquiring_bank: 'SIMBANK',
    });
    assert.equal(badMcc.body.error.code, 'validation_failed');
  });

  async function paidPayment(amount: number): Promise<string> {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount,
      currency: 'INR',
      method: 'upi_qr',
    });
    await t.payQr(r.body.upi_uri, 'payer.one@okicici', 'success');
    const ok = await t.eventually(
      async () => (await t.request('GET', `/v1/payments/${r.body.id}`)).body.status === 'succeeded',
    );
    assert.ok(ok, 'payment succeeded');
    return r.body.id;
  }
});
