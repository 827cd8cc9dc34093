import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort, startTestApp, type TestApp } from './helpers/harness.ts';
import { signRequest } from '../src/platform/signing.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';

// A bank that may have acted although its answer says otherwise. The scripted bank below sits
// between Tillpoint and the real (embedded) bank simulator: per request it passes the call on,
// or passes it on and then answers 502 / resets the connection / sends a garbage body (the bank
// committed, its answer was lost), or answers U48 itself without asking the simulator. The
// simulator then behaves as a bank that did the work: it knows the QR, approves the collect,
// refunds the money and sends its signed callbacks. The scripted bank routes those callbacks
// through itself (it re-signs the requests it passes on, with callback_url pointing at it), so
// a test can hold them until Tillpoint has answered its caller: no race decides the outcome.

type Mode = 'pass' | 'commit_then_502' | 'commit_then_reset' | 'commit_then_garbage' | 'lost_then_502' | 'u48';

function scriptedBank(secret: () => string) {
  const script = new Map<string, Mode[]>(); // by path: the next answers, then 'pass'
  const calls: { path: string; ref: string; mode: Mode }[] = [];
  const held: { to: string; headers: Record<string, string>; raw: string }[] = [];
  let holding = false;
  let target = '';
  let self = '';
  const post = (url: string, headers: Record<string, string>, raw: Buffer | string) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const up = httpRequest(url, { method: 'POST', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 500, body: Buffer.concat(chunks) }));
      });
      up.on('error', reject);
      up.end(raw);
    });
  const deliver = (c: (typeof held)[number]) => post(c.to, c.headers, c.raw);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      if (req.url?.startsWith('/cb?')) {
        // A callback from the simulator on its way to Tillpoint: passed on, or held.
        const c = {
          to: new URL(req.url, 'http://x').searchParams.get('to')!,
          raw: raw.toString('utf8'),
          headers: {} as Record<string, string>,
        };
        for (const [k, v] of Object.entries(req.headers))
          if (k.startsWith('x-') || k === 'content-type') c.headers[k] = String(v);
        if (holding) {
          held.push(c);
          res.end();
        } else {
          const up = await deliver(c);
          res.statusCode = up.status;
          res.end(up.body);
        }
        return;
      }
      const path = (req.url ?? '').replace(/^\/sim/, '');
      const body = JSON.parse(raw.toString('utf8') || '{}');
      if (typeof body.callback_url === 'string')
        body.callback_url = `${self}/cb?to=${encodeURIComponent(body.callback_url)}`;
      const forward = () => {
        const out = JSON.stringify(body);
        return post(target + req.url, { 'content-type': 'application/json', ...signRequest(secret(), out) }, out);
      };
      const ref = body.refund_ref ?? body.txn_ref ?? '';
      const mode = script.get(path)?.shift() ?? 'pass';
      calls.push({ path, ref, mode });
      if (mode === 'u48') {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            ...(body.refund_ref ? { refund_ref: ref } : { txn_ref: ref }),
            response_code: 'U48',
            message: 'not present',
          }),
        );
        return;
      }
      if (mode === 'lost_then_502') {
        res.statusCode = 502;
        res.end('<html>Bad Gateway</html>');
        return;
      }
      const up = await forward();
      if (mode === 'pass') {
        res.statusCode = up.status;
        res.setHeader('content-type', 'application/json');
        res.end(up.body);
      } else if (mode === 'commit_then_502') {
        res.statusCode = 502;
        res.end('<html>Bad Gateway</html>');
      } else if (mode === 'commit_then_garbage') {
        res.setHeader('content-type', 'application/json');
        res.end('{"txn_ref": "TP');
      } else {
        req.socket.resetAndDestroy();
      }
    });
  });
  return {
    script: (path: string, ...modes: Mode[]) => script.set(path, modes),
    calls,
    callsFor: (ref: string, path?: string) => calls.filter((c) => c.ref === ref && (!path || c.path === path)).length,
    set target(url: string) {
      target = url;
    },
    /** Callbacks wait here until release(). */
    hold() {
      holding = true;
    },
    async release() {
      holding = false;
      for (const c of held.splice(0)) await deliver(c);
    },
    async listen() {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      self = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      return `${self}/sim`;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('an uncertain bank answer leaves money pending, never failed', () => {
  let t: TestApp;
  const bank = scriptedBank(() => t.config.banks[0].secret);
  let terminalId: string;
  before(async () => {
    const url = await bank.listen();
    t = await startTestApp({ env: { BANK_SIM_URL: url } });
    bank.target = t.url;
    terminalId = (await t.seedMerchant()).terminal.id;
  });
  after(async () => {
    await t.close();
    await bank.close();
  });

  const payments = () => t.app.services.payments;
  const get = async (id: string) => (await t.request('GET', `/v1/payments/${id}`)).body;
  const qr = (amount = 5000, headers: Record<string, string> = {}) =>
    t.request('POST', '/v1/payments', { terminal_id: terminalId, amount, currency: 'INR', method: 'upi_qr' }, headers);
  async function paid(amount = 5000) {
    const p = (await qr(amount)).body;
    await t.payQr(p.upi_uri);
    assert.ok(await t.eventually(async () => (await get(p.id)).status === 'succeeded'), 'paid');
    return p;
  }
  const refunds = async (paymentId: string) => (await t.request('GET', `/v1/payments/${paymentId}/refunds`)).body.data;

  test('create: a 502 after the bank registered the QR answers pending, and the QR can be paid', async () => {
    bank.script('/v1/intents', 'commit_then_502');
    const r = await qr(14_900);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.status, 'pending');
    // The bank did take it: the customer pays, the callback completes the payment.
    const pay = await t.payQr(r.body.upi_uri);
    assert.equal(pay.status, 200, JSON.stringify(pay.body));
    assert.ok(await t.eventually(async () => (await get(r.body.id)).status === 'succeeded'));
    assert.equal((await get(r.body.id)).needs_reconciliation, false);
  });

  test('create: a connection reset after sending a collect answers pending; the bank approves it', async () => {
    bank.script('/v1/collects', 'commit_then_reset');
    bank.hold();
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 2500,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'asha@okaxis',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.status, 'pending');
    await bank.release();
    assert.ok(
      await t.eventually(async () => (await get(r.body.id)).status === 'succeeded'),
      'the collect the bank got is paid',
    );
    assert.equal((await get(r.body.id)).needs_reconciliation, false);
  });

  test('create: a garbage body answers pending; the status check finds the QR at the bank', async () => {
    bank.script('/v1/intents', 'commit_then_garbage');
    const r = await qr(3000);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.status, 'pending');
    await payments().runStatusChecks();
    assert.ok(bank.callsFor(r.body.txn_ref, '/v1/transactions/status') >= 1, 'asked the bank');
    assert.equal((await get(r.body.id)).status, 'pending', 'still waiting for the customer (01)');
  });

  test('create: a bank that cannot be reached (never sent) fails with 503 and nothing charged', async () => {
    // The same app with its bank pointing at a port nothing listens on.
    const port = await freePort(); // nothing listens there: the bank cannot be reached
    const t2 = await startTestApp({ env: { BANK_SIM_URL: `http://127.0.0.1:${port}/sim` } });
    try {
      const term = (await t2.seedMerchant()).terminal.id;
      const r = await t2.request('POST', '/v1/payments', {
        terminal_id: term,
        amount: 1000,
        currency: 'INR',
        method: 'upi_qr',
      });
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'bank_unavailable');
      assert.equal((await t2.request('GET', `/v1/payments/${r.body.error.details.payment_id}`)).body.status, 'failed');
    } finally {
      await t2.close();
    }
  });

  test('status check: unanswered checks (502, reset, garbage) count; after the last one the worker stops asking', async () => {
    const p = (await qr(4000)).body;
    bank.script(
      '/v1/transactions/status',
      'commit_then_502',
      'commit_then_reset',
      'commit_then_garbage',
      'commit_then_502',
      'commit_then_502',
    );
    for (let i = 0; i < 5; i++) await payments().runStatusChecks();
    const max = t.config.payments.statusCheckMax;
    assert.equal(bank.callsFor(p.txn_ref, '/v1/transactions/status'), max, `asked ${max} times, then no more`);
    const g = await get(p.id);
    assert.equal(g.status, 'pending', 'an unanswered check never fails a payment');
    const row = await t.db.query<{ next_check_at: Date | null; status_checks: number }>(
      'SELECT next_check_at, status_checks FROM payments.payments WHERE id = $1',
      [p.id],
    );
    assert.equal(row.rows[0].next_check_at, null, 'left to the expiry job');
    bank.script('/v1/transactions/status');
  });

  test('refund: a 502 after the bank refunded keeps the refund pending and reserved; the late callback settles it', async () => {
    const p = await paid(6000);
    bank.script('/v1/refunds', 'commit_then_502');
    bank.hold();
    const r = await t.request('POST', `/v1/payments/${p.id}/refunds`, { amount: 6000 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.status, 'pending', 'not failed: the bank may have refunded');
    assert.equal((await get(p.id)).refundable_amount, 0, 'the amount stays reserved');
    await bank.release();
    // The bank's callback arrives (the simulator did refund): the refund succeeds.
    assert.ok(
      await t.eventually(async () => (await refunds(p.id))[0].status === 'succeeded'),
      'the late success is applied',
    );
    const g = await get(p.id);
    assert.equal(g.status, 'refunded');
    assert.equal(g.refundable_amount, 0);
    // Nothing left to refund twice.
    const again = await t.request('POST', `/v1/payments/${p.id}/refunds`, { amount: 1 });
    assert.equal(again.body.error.code, 'payment_not_refundable');
    assert.equal((await runLedgerVerify(t.db)).ok, true);
  });

  test('refund: a reset after sending and a garbage answer keep the refund pending, reserved', async () => {
    for (const mode of ['commit_then_reset', 'commit_then_garbage'] as const) {
      const p = await paid(2000);
      bank.script('/v1/refunds', mode);
      bank.hold();
      const r = await t.request('POST', `/v1/payments/${p.id}/refunds`, { amount: 1500 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.status, 'pending', mode);
      assert.equal((await get(p.id)).refundable_amount, 500, `${mode}: reserved`);
      await bank.release();
      assert.ok(
        await t.eventually(async () => (await refunds(p.id))[0].status === 'succeeded'),
        `${mode}: settled by the callback`,
      );
      assert.equal((await get(p.id)).refundable_amount, 500);
    }
  });

  test('refund: a success for a refund already closed as failed flags it and its payment for reconciliation', async () => {
    const p = await paid(3000); // another payment, not flagged
    // A refund whose request the bank answers U48, then declines (callback), then reports as refunded.
    const p2 = await paid(3000);
    bank.script('/v1/refunds', 'u48');
    const declined = await t.request('POST', `/v1/payments/${p2.id}/refunds`, { amount: 1000 });
    assert.equal(declined.status, 201);
    assert.equal(declined.body.status, 'pending', 'U48 on the request itself is not a decline');
    const ref2 = (
      await t.db.query<{ refund_ref: string }>('SELECT refund_ref FROM payments.refunds WHERE id = $1', [
        declined.body.id,
      ])
    ).rows[0].refund_ref;
    const secret = t.config.banks[0].secret;
    const send = async (code: string) => {
      const raw = JSON.stringify({
        type: 'refund',
        refund_ref: ref2,
        original_txn_ref: p2.txn_ref,
        amount: '10.00',
        response_code: code,
        bank_ref: '999988887777',
      });
      const res = await fetch(`${t.url}/v1/banks/SIMBANK/callbacks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signRequest(secret, raw) },
        body: raw,
      });
      assert.equal(res.status, 200, await res.text());
    };
    await send('U30'); // declined: failed, the 1000 released
    let list = await refunds(p2.id);
    assert.equal(list[0].status, 'failed');
    assert.equal((await get(p2.id)).refundable_amount, 3000);
    await send('00'); // ...and then the bank says it refunded after all
    list = await refunds(p2.id);
    assert.equal(list[0].status, 'failed', 'never revived');
    assert.equal(list[0].needs_reconciliation, true);
    const g = await get(p2.id);
    assert.equal(g.needs_reconciliation, true);
    const flagged = (await t.request('GET', '/v1/payments?needs_reconciliation=true&limit=100')).body.data.map(
      (x: any) => x.id,
    );
    assert.ok(flagged.includes(p2.id), 'listed for reconciliation');
    assert.ok(!flagged.includes(p.id));
  });

  test('refund: a bank that answers U48 forever is asked statusCheckMax times, then the refund is flagged and stays reserved', async () => {
    const p = await paid(5000);
    bank.script('/v1/refunds', 'lost_then_502'); // the request never reached the simulator; we cannot know
    const r = await t.request('POST', `/v1/payments/${p.id}/refunds`, { amount: 2000 });
    assert.equal(r.status, 201);
    assert.equal(r.body.status, 'pending');
    const ref = (
      await t.db.query<{ refund_ref: string }>('SELECT refund_ref FROM payments.refunds WHERE id = $1', [r.body.id])
    ).rows[0].refund_ref;
    bank.script('/v1/refunds/status', ...Array<Mode>(20).fill('u48'));
    for (let i = 0; i < 8; i++) await payments().runRefundChecks();
    const max = t.config.payments.statusCheckMax;
    assert.equal(bank.callsFor(ref, '/v1/refunds/status'), max, `asked ${max} times, not forever`);
    const [rf] = await refunds(p.id);
    assert.equal(rf.status, 'pending');
    assert.equal(rf.needs_reconciliation, true);
    const g = await get(p.id);
    assert.equal(g.refundable_amount, 3000, 'the 2000 stays reserved');
    assert.equal(g.needs_reconciliation, true);
    const flagged = (await t.request('GET', '/v1/payments?needs_reconciliation=true&limit=100')).body.data.map(
      (x: any) => x.id,
    );
    assert.ok(flagged.includes(p.id), 'listed for reconciliation');
    bank.script('/v1/refunds/status');
  });

  test('an Idempotency-Key retry of a create that got 503 replays the 503', async () => {
    const port = await freePort(); // nothing listens there: the bank cannot be reached
    const t2 = await startTestApp({ env: { BANK_SIM_URL: `http://127.0.0.1:${port}/sim` } });
    try {
      const term = (await t2.seedMerchant()).terminal.id;
      const body = { terminal_id: term, amount: 1000, currency: 'INR', method: 'upi_qr' };
      const first = await t2.request('POST', '/v1/payments', body, { 'idempotency-key': 'retry-503' });
      assert.equal(first.status, 503);
      assert.equal(first.headers.get('idempotent-replayed'), null);
      const again = await t2.request('POST', '/v1/payments', body, { 'idempotency-key': 'retry-503' });
      assert.equal(again.status, 503, JSON.stringify(again.body));
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(again.body, first.body);
      const n = await t2.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM payments.payments WHERE terminal_id = $1`,
        [term],
      );
      assert.equal(n.rows[0].n, 1, 'one payment');
    } finally {
      await t2.close();
    }
  });
});
