import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createTestDb } from '../../platform/testing.ts';
import { loadConfig } from '../../config.ts';
import { fixedClock, type Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { signRequest, verifySignedRequest } from '../../platform/signing.ts';
import { createBanksService, type BankCallback, type BanksService } from '../../modules/banks/index.ts';
import { startCallbackReceiver, type CallbackReceiver } from '../../modules/banks/testing.ts';
import { startBankSimulator, type StartBankSimulatorOptions } from './index.ts';

// The simulator exercised as Tillpoint uses it: over real HTTP, through the simbank connector,
// with callbacks verified by the banks service on a local HTTP server.

const SECRET = 'sim-test-secret';

interface Rig {
  banks: BanksService;
  receiver: CallbackReceiver<BankCallback>;
  sim: Awaited<ReturnType<typeof startBankSimulator>>;
  clock?: Clock;
  pay(body: Record<string, unknown>): Promise<{ status: number; body: any }>;
}

async function rig(
  t: TestContext,
  simOpts: Partial<StartBankSimulatorOptions> = {},
  recvOpts: { failFirst?: number } = {},
): Promise<Rig> {
  const db = await createTestDb();
  t.after(() => db.close());
  const sim = await startBankSimulator({ port: 0, secret: SECRET, latencyMs: 0, outcomes: { approve: 1 }, ...simOpts });
  t.after(() => sim.close());
  const config = loadConfig({
    NODE_ENV: 'test',
    BANK_SIM_URL: sim.bankUrl,
    BANK_SIM_SECRET: SECRET,
    BANK_TIMEOUT_MS: '2000',
  });
  const banks = createBanksService({ db, config, clock: simOpts.clock });
  // Tillpoint's callback endpoint: /<BANK CODE>, verified exactly as the API will verify it.
  const receiver = await startCallbackReceiver<BankCallback>(
    (path, headers, raw, addr) => banks.verifyCallback(path.slice(1), headers, raw, addr),
    recvOpts,
  );
  t.after(() => receiver.close());
  const pay = async (body: Record<string, unknown>) => {
    const res = await fetch(`${sim.bankUrl}/v1/customer-payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  return { banks, receiver, sim, clock: simOpts.clock, pay };
}

const ref = () => 'TP' + randomBytes(16).toString('hex').toUpperCase();

function intent(r: Rig, over: Partial<{ txnRef: string; amountPaise: number; expiresAt: Date }> = {}) {
  const now = r.clock?.now() ?? new Date();
  return {
    txnRef: over.txnRef ?? ref(),
    amountPaise: over.amountPaise ?? 14_900,
    payeeVpa: 'corner.store@simbank',
    payeeName: 'Corner Store',
    mcc: '5411',
    note: 'Order 17',
    expiresAt: over.expiresAt ?? new Date(now.getTime() + 300_000),
    callbackUrl: `${r.receiver.url}/SIMBANK`,
  };
}

const qr = (txnRef: string, am = '149.00') =>
  `upi://pay?pa=corner.store%40simbank&pn=Corner%20Store&mc=5411&tr=${txnRef}&tn=Order%2017&am=${am}&cu=INR`;

test('dynamic QR: register, customer pays, signed callback verified, status and refunds', async (t) => {
  const r = await rig(t);
  const bank = r.banks.connector('SIMBANK');
  const req = intent(r);
  const reg = await bank.registerIntent(req);
  assert.match(reg.bankRef ?? '', /^\d{12}$/);
  assert.deepEqual(await bank.registerIntent(req), reg, 'a retried registration is idempotent');
  assert.equal((await bank.checkStatus(req.txnRef)).outcome, 'pending', 'unpaid QR is pending');

  const paid = await r.pay({ upi_uri: qr(req.txnRef), payer_vpa: 'ravi.k@okbank', outcome: 'success' });
  assert.equal(paid.status, 200);
  assert.equal(paid.body.response_code, '00');
  assert.deepEqual(paid.body.callback, { sent: true, delivered: true, status: 204 });

  const cb = await r.receiver.next();
  assert.equal(cb.error, undefined);
  assert.deepEqual(cb.result, {
    kind: 'payment',
    ref: req.txnRef,
    result: {
      outcome: 'success',
      responseCode: '00',
      bankRef: reg.bankRef,
      payerVpa: 'ravi.k@okbank',
      message: 'success',
      amountPaise: req.amountPaise,
    },
  });

  const st = await bank.checkStatus(req.txnRef);
  assert.equal(st.outcome, 'success');
  assert.equal(st.payerVpa, 'ravi.k@okbank');

  // Paying the same QR again, an unknown tr, a wrong amount.
  assert.equal((await r.pay({ upi_uri: qr(req.txnRef), payer_vpa: 'ravi.k@okbank' })).status, 409);
  assert.equal((await r.pay({ upi_uri: qr(ref()), payer_vpa: 'ravi.k@okbank' })).status, 404);
  const other = intent(r);
  await bank.registerIntent(other);
  const wrong = await r.pay({ upi_uri: qr(other.txnRef, '1.49'), payer_vpa: 'ravi.k@okbank' });
  assert.equal(wrong.status, 400);
  assert.match(wrong.body.error.message, /am does not match/);

  // Refunds: partial succeeds, more than what is left fails, a retry is answered the same.
  const refund = {
    refundRef: 'rfd_' + randomBytes(8).toString('hex'),
    originalTxnRef: req.txnRef,
    amountPaise: 5_000,
    callbackUrl: `${r.receiver.url}/SIMBANK`,
  };
  const rf = await bank.refund(refund);
  assert.equal(rf.outcome, 'success');
  const rcb = await r.receiver.next();
  assert.deepEqual(rcb.result, {
    kind: 'refund',
    ref: refund.refundRef,
    result: { ...rf, amountPaise: refund.amountPaise },
  });
  assert.deepEqual(await bank.refund(refund), rf, 'refund is idempotent on refundRef');
  assert.equal((await bank.checkRefundStatus(refund.refundRef)).outcome, 'success');
  const tooMuch = await bank.refund({ ...refund, refundRef: 'rfd_big', amountPaise: 9_901 });
  assert.equal(tooMuch.outcome, 'failed');
  assert.equal(tooMuch.responseCode, 'U30');
  await r.receiver.next();
  assert.equal((await bank.refund({ ...refund, refundRef: 'rfd_rest', amountPaise: 9_900 })).outcome, 'success');
  await r.receiver.next();

  // Nothing known under these references.
  assert.deepEqual(await bank.checkStatus(ref()), {
    outcome: 'unknown',
    responseCode: 'U48',
    message: 'transaction id not present',
  });
  assert.equal((await bank.checkRefundStatus('rfd_none')).outcome, 'unknown');
  assert.equal(r.receiver.calls.filter((c) => c.error).length, 0, 'every callback verified');
});

test('QR outcomes: decline, deemed timeout, and pending (no callback)', async (t) => {
  // rng 0 picks the first code of each list: ZA for declines, U67 for timeouts.
  const r = await rig(t, { rng: () => 0 });
  const bank = r.banks.connector('SIMBANK');
  const a = intent(r);
  await bank.registerIntent(a);
  const declined = await r.pay({ upi_uri: qr(a.txnRef), payer_vpa: 'ravi.k@okbank', outcome: 'decline' });
  assert.equal(declined.body.response_code, 'ZA');
  assert.equal((await r.receiver.next()).result?.result.outcome, 'failed');

  const b = intent(r);
  await bank.registerIntent(b);
  await r.pay({ upi_uri: qr(b.txnRef), payer_vpa: 'ravi.k@okbank', outcome: 'timeout' });
  const deemed = (await r.receiver.next()).result!;
  assert.deepEqual([deemed.ref, deemed.result.outcome, deemed.result.responseCode], [b.txnRef, 'deemed', 'U67']);

  const c = intent(r);
  await bank.registerIntent(c);
  const pending = await r.pay({ upi_uri: qr(c.txnRef), payer_vpa: 'ravi.k@okbank', outcome: 'pending' });
  assert.deepEqual([pending.body.response_code, pending.body.callback], ['01', { sent: false }]);
  assert.equal((await bank.checkStatus(c.txnRef)).outcome, 'pending');
  assert.equal(r.receiver.calls.length, 2, 'no callback for a pending payment');
});

test('collect requests are decided after the latency and called back; magic VPAs pick outcomes', async (t) => {
  const r = await rig(t, { latencyMs: 5, rng: () => 0.999 });
  const bank = r.banks.connector('SIMBANK');
  const cases = [
    ['ravi.k@okbank', 'success'], // ratios: approve 1
    ['sim-decline.ravi@okbank', 'failed'],
    ['sim-timeout@okbank', 'deemed'],
  ] as const;
  for (const [payerVpa, outcome] of cases) {
    const req = { ...intent(r), payerVpa };
    const sent = await bank.sendCollect(req);
    assert.equal(sent.outcome, 'pending');
    const cb = await r.receiver.next();
    assert.equal(cb.result?.ref, req.txnRef);
    assert.equal(cb.result?.result.outcome, outcome, payerVpa);
    assert.equal((await bank.checkStatus(req.txnRef)).outcome, outcome);
    if (outcome === 'failed')
      assert.equal(cb.result?.result.responseCode, 'U30', 'rng near 1 picks the last decline code');
    if (outcome === 'deemed') assert.equal(cb.result?.result.responseCode, 'BT');
  }
  // Resending the same collect (a retry after a timeout) is answered, not duplicated.
  const req = { ...intent(r), payerVpa: 'sim-pending@okbank' };
  await bank.sendCollect(req);
  assert.equal((await bank.sendCollect(req)).outcome, 'pending');
  await assert.rejects(
    bank.sendCollect({ ...req, amountPaise: 1 }),
    (e: unknown) => e instanceof AppError && e.code === 'conflict',
  );
});

test('expiry: an unpaid QR answers 410 and U69; a pending collect turns U69', async (t) => {
  const clock = fixedClock(new Date());
  const r = await rig(t, { clock, latencyMs: 0 });
  const bank = r.banks.connector('SIMBANK');
  const q = intent(r, { expiresAt: new Date(clock.now().getTime() + 60_000) });
  await bank.registerIntent(q);
  const col = { ...intent(r, { expiresAt: new Date(clock.now().getTime() + 60_000) }), payerVpa: 'sim-pending@okbank' };
  await bank.sendCollect(col);
  assert.equal((await bank.checkStatus(col.txnRef)).outcome, 'pending');
  clock.advance(60_000);
  const late = await r.pay({ upi_uri: qr(q.txnRef), payer_vpa: 'ravi.k@okbank' });
  assert.equal(late.status, 410);
  assert.deepEqual(late.body.error.code, 'expired');
  assert.equal((await bank.checkStatus(q.txnRef)).responseCode, 'U69');
  assert.equal((await bank.checkStatus(col.txnRef)).outcome, 'expired');
  assert.equal((await r.pay({ upi_uri: qr(q.txnRef), payer_vpa: 'ravi.k@okbank' })).status, 410, 'still expired');
});

test('callbacks are retried with a fresh signature when Tillpoint answers non-2xx', async (t) => {
  const r = await rig(t, { callbackRetryDelaysMs: [5, 5] }, { failFirst: 2 });
  const bank = r.banks.connector('SIMBANK');
  const q = intent(r);
  await bank.registerIntent(q);
  const paid = await r.pay({ upi_uri: qr(q.txnRef), payer_vpa: 'ravi.k@okbank', outcome: 'success' });
  assert.deepEqual(paid.body.callback, { sent: true, delivered: false, status: 500 });
  const attempts = [await r.receiver.next(), await r.receiver.next(), await r.receiver.next()];
  // All three verified: each attempt carried its own nonce, so none looked like a replay.
  assert.deepEqual(
    attempts.map((a) => [a.error, a.result?.ref]),
    [
      [undefined, q.txnRef],
      [undefined, q.txnRef],
      [undefined, q.txnRef],
    ],
  );
});

test('callbacks to an unreachable Tillpoint are retried until it comes back', async (t) => {
  const db = await createTestDb();
  t.after(() => db.close());
  // Reserve a port, close it (unreachable), then listen on it again later.
  const { createServer } = await import('node:http');
  const probe = createServer();
  await new Promise<void>((res) => probe.listen(0, '127.0.0.1', res));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((res) => probe.close(() => res()));

  const sim = await startBankSimulator({
    port: 0,
    secret: SECRET,
    latencyMs: 0,
    outcomes: { approve: 1 },
    callbackRetryDelaysMs: [50, 100, 200, 400, 800],
  });
  t.after(() => sim.close());
  const config = loadConfig({ NODE_ENV: 'test', BANK_SIM_URL: sim.bankUrl, BANK_SIM_SECRET: SECRET });
  const banks = createBanksService({ db, config });
  const txnRef = ref();
  await banks.connector('SIMBANK').registerIntent({
    txnRef,
    amountPaise: 100,
    payeeVpa: 'corner.store@simbank',
    payeeName: 'Corner Store',
    mcc: '5411',
    expiresAt: new Date(Date.now() + 300_000),
    callbackUrl: `http://127.0.0.1:${port}/cb`,
  });
  const res = await fetch(`${sim.bankUrl}/v1/customer-payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      upi_uri: `upi://pay?pa=corner.store%40simbank&pn=C&tr=${txnRef}&am=1.00&cu=INR`,
      payer_vpa: 'a.b@okbank',
    }),
  });
  assert.equal((await res.json()).callback.delivered, false);
  // Now Tillpoint comes up, verifying with verifySignedRequest directly.
  const got = new Promise<string>((resolve, reject) => {
    const srv = createServer((req, resp) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const raw = Buffer.concat(chunks).toString();
        try {
          await verifySignedRequest({
            scope: 'bank:SIMBANK',
            secrets: [SECRET],
            headers: req.headers,
            rawBody: raw,
            maxAgeSeconds: 300,
            db,
          });
          resp.statusCode = 204;
          resp.end();
          resolve(JSON.parse(raw).txn_ref);
        } catch (e) {
          resp.statusCode = 401;
          resp.end();
          reject(e);
        }
      });
    });
    srv.listen(port, '127.0.0.1');
    t.after(
      () =>
        new Promise<void>((r) => {
          srv.closeAllConnections();
          srv.close(() => r());
        }),
    );
  });
  assert.equal(await got, txnRef);
});

test('the simulator refuses unsigned, wrongly signed and replayed requests', async (t) => {
  const r = await rig(t);
  const url = `${r.sim.bankUrl}/v1/transactions/status`;
  const body = JSON.stringify({ txn_ref: 'TP1' });
  const post = (headers: Record<string, string>) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  assert.equal((await post({})).status, 401);
  assert.equal((await post(signRequest('not-the-secret', body))).status, 401);
  const h = signRequest(SECRET, body);
  assert.equal((await post(h)).status, 200);
  const replay = await post(h);
  assert.equal(replay.status, 409);
  assert.equal((await replay.json()).error.code, 'replayed_request');

  // Through the connector, a secret out of step with the bank is our fault: internal_error.
  const config = loadConfig({ NODE_ENV: 'test', BANK_SIM_URL: r.sim.bankUrl, BANK_SIM_SECRET: 'stale-secret' });
  const db = await createTestDb();
  t.after(() => db.close());
  const wrong = createBanksService({ db, config }).connector('SIMBANK');
  await assert.rejects(
    wrong.checkStatus('TP1'),
    (e: unknown) =>
      e instanceof AppError && e.code === 'internal_error' && (e.details as { status: number }).status === 401,
  );
});

test('health endpoint answers without a signature', async (t) => {
  const sim = await startBankSimulator({ port: 0, secret: SECRET });
  t.after(() => sim.close());
  const res = await fetch(`${sim.bankUrl}/health`);
  assert.deepEqual(await res.json(), { status: 'ok' });
  assert.equal((await fetch(`${sim.bankUrl}/v1/nope`, { method: 'POST' })).status, 404);
});
