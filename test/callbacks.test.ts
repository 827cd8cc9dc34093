import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { signRequest } from '../src/platform/signing.ts';

// Bank callbacks are the one unauthenticated write path: each must prove itself with an HMAC
// signature, a fresh timestamp and a single-use nonce, and even a valid one may only make
// legal state changes.

describe('signed bank callbacks', () => {
  let t: TestApp;
  let terminalId: string;
  let secret: string;
  before(async () => {
    t = await startTestApp();
    terminalId = (await t.seedMerchant()).terminal.id;
    secret = t.config.banks[0].secret;
  });
  after(() => t.close());

  const newPayment = async (amount = 5000) =>
    (await t.request('POST', '/v1/payments', { terminal_id: terminalId, amount, currency: 'INR', method: 'upi_qr' }))
      .body;

  async function send(body: object, opts: { secret?: string; at?: Date; headers?: Record<string, string> } = {}) {
    const raw = JSON.stringify(body);
    const headers = {
      'content-type': 'application/json',
      ...signRequest(opts.secret ?? secret, raw, opts.at),
      ...opts.headers,
    };
    const r = await fetch(`${t.url}/v1/banks/SIMBANK/callbacks`, { method: 'POST', headers, body: raw });
    return { status: r.status, body: (await r.json()) as any, headers, raw };
  }
  const success = (p: any) => ({
    type: 'payment',
    txn_ref: p.txn_ref,
    amount: (p.amount / 100).toFixed(2),
    response_code: '00',
    bank_ref: '123456789012',
    payer_vpa: 'forger@okaxis',
  });
  const status = async (id: string) => (await t.request('GET', `/v1/payments/${id}`)).body;
  const rejected = async () =>
    (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM platform.rejected_calls')).rows[0].n;

  test('a callback signed with the wrong secret is refused, recorded, and changes nothing', async () => {
    const p = await newPayment();
    const before = await rejected();
    const r = await send(success(p), { secret: 'not-the-bank-secret' });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'invalid_signature');
    assert.equal((await status(p.id)).status, 'pending');
    assert.equal(await rejected(), before + 1);
  });

  test('a tampered body fails the signature', async () => {
    const p = await newPayment();
    const raw = JSON.stringify(success(p));
    const headers = { 'content-type': 'application/json', ...signRequest(secret, raw) };
    const r = await fetch(`${t.url}/v1/banks/SIMBANK/callbacks`, {
      method: 'POST',
      headers,
      body: raw.replace('"00"', '"00" '),
    });
    assert.equal(r.status, 401);
    assert.equal((await status(p.id)).status, 'pending');
  });

  test('a timestamp older than 5 minutes is refused', async () => {
    const p = await newPayment();
    const r = await send(success(p), { at: new Date(Date.now() - 6 * 60_000) });
    assert.equal(r.status, 401);
    assert.equal((await status(p.id)).status, 'pending');
  });

  test('missing signature headers are refused', async () => {
    const p = await newPayment();
    const r = await fetch(`${t.url}/v1/banks/SIMBANK/callbacks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(success(p)),
    });
    assert.equal(r.status, 401);
  });

  test('a replayed nonce is refused; a duplicate valid callback changes nothing', async () => {
    const p = await newPayment();
    const first = await send(success(p));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const after1 = await status(p.id);
    assert.equal(after1.status, 'succeeded');
    // The exact same request again (same nonce): a replay.
    const replay = await fetch(`${t.url}/v1/banks/SIMBANK/callbacks`, {
      method: 'POST',
      headers: first.headers,
      body: first.raw,
    });
    assert.equal(replay.status, 409);
    assert.equal(((await replay.json()) as any).error.code, 'replayed_request');
    // The bank sending the same news again, freshly signed: accepted, changes nothing.
    const dup = await send(success(p));
    assert.equal(dup.status, 200);
    const after2 = await status(p.id);
    assert.equal(after2.updated_at, after1.updated_at);
    const entries = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ledger.entries WHERE reference = $1`,
      [p.id],
    );
    assert.equal(entries.rows[0].n, 1, 'one ledger entry, however often the bank says so');
  });

  test('a late success can never revive a failed payment; it is flagged for reconciliation', async () => {
    const p = await newPayment();
    const declined = await send({ ...success(p), response_code: 'ZA' });
    assert.equal(declined.status, 200);
    assert.equal((await status(p.id)).status, 'failed');
    const late = await send(success(p));
    assert.equal(late.status, 200);
    const s = await status(p.id);
    assert.equal(s.status, 'failed');
    assert.equal(s.needs_reconciliation, true);
    const flagged = await t.request('GET', '/v1/payments?needs_reconciliation=true');
    assert.ok(flagged.body.data.some((x: any) => x.id === p.id));
    assert.ok(flagged.body.data.every((x: any) => x.needs_reconciliation));
  });

  test('a success for a different amount is never booked as paid', async () => {
    const p = await newPayment(5000);
    const r = await send({ ...success(p), amount: '5.00' });
    assert.equal(r.status, 200);
    const s = await status(p.id);
    assert.equal(s.status, 'pending');
    assert.equal(s.needs_reconciliation, true);
  });

  test('a decline for a paid payment is ignored', async () => {
    const p = await newPayment();
    await send(success(p));
    await send({ ...success(p), response_code: 'U30' });
    assert.equal((await status(p.id)).status, 'succeeded');
  });

  test('unknown bank and unknown reference are 404; malformed callback body is 4xx', async () => {
    const raw = JSON.stringify({ type: 'payment', txn_ref: 'TPNOSUCHREF', amount: '1.00', response_code: '00' });
    const h = { 'content-type': 'application/json', ...signRequest(secret, raw) };
    assert.equal(
      (await fetch(`${t.url}/v1/banks/NOSUCHBANK/callbacks`, { method: 'POST', headers: h, body: raw })).status,
      404,
    );
    const unknownRef = await send({ type: 'payment', txn_ref: 'TPNOSUCHREF', amount: '1.00', response_code: '00' });
    assert.equal(unknownRef.status, 404);
    const garbage = await send({ hello: 'world' });
    assert.ok(garbage.status >= 400 && garbage.status < 500, String(garbage.status));
  });
});
