import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import type { SimOutage } from '../src/tools/bank-sim/index.ts';
import { fixedClock } from '../src/platform/clock.ts';

// Both wire formats end to end through the API and the bank simulator (SIMBANK speaks simbank,
// SIMBANK2 the encrypted pspbank format), and the circuit breaker driven through a simulated
// outage and back: it opens, the fallback bank takes the payments, probes find the bank
// recovered, it closes, and each step is an audit event and a metric.

describe('banks: two wire formats end to end, and routing on health', () => {
  let t: TestApp;
  const outage: SimOutage = {};
  let simbankTerminal: string;
  let pspTerminal: string;
  // The app's clock, moved by hand past the breaker's open period (a loaded machine must not
  // decide when it half-opens). Signatures stay fresh: it runs at most a minute or two ahead.
  const clock = fixedClock(new Date());

  before(async () => {
    t = await startTestApp({
      env: {
        BANK_SIM2_FORMAT: 'pspbank',
        BANK_TIMEOUT_MS: '1000',
        BANK_BREAKER_MIN_CALLS: '4',
        BANK_BREAKER_FAILURE_RATE: '0.5',
        BANK_BREAKER_OPEN_SECONDS: '30',
        BANK_BREAKER_PROBE_EVERY: '2',
        BANK_BREAKER_PROBES_TO_CLOSE: '2',
      },
      simulator: { outage },
      clock,
    });
    simbankTerminal = (await t.seedMerchant()).terminal.id;
    const m = await t.request('POST', '/v1/merchants', {
      name: 'PSP Store',
      vpa: `psp${Math.random().toString(36).slice(2, 8)}@simbank2`,
      mcc: '5411',
      acquiring_bank: 'SIMBANK2',
    });
    assert.equal(m.status, 201, JSON.stringify(m.body));
    const s = await t.request('POST', `/v1/merchants/${m.body.id}/stores`, { name: 'Main', city: 'Pune' });
    pspTerminal = (await t.request('POST', '/v1/terminals', { store_id: s.body.id, label: 'Till 1' })).body.id;
  });
  after(() => t.close());

  const pay = async (terminal: string, amount = 14_900) => {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminal,
      amount,
      currency: 'INR',
      method: 'upi_qr',
    });
    return r;
  };
  const payment = async (id: string) => (await t.request('GET', `/v1/payments/${id}`)).body;
  const audited = async (action: string) =>
    (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit.events WHERE action = $1`, [action])).rows[0]
      .n;

  test('pspbank end to end: QR paid (encrypted form callback), collect, refund, status', async () => {
    assert.equal(t.config.banks[1].connector, 'pspbank');
    const p = await pay(pspTerminal);
    assert.equal(p.status, 201, JSON.stringify(p.body));
    assert.equal(p.body.bank.code, 'SIMBANK2');
    const paid = await t.payQr(p.body.upi_uri, 'ravi.kumar@okaxis', 'success');
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    assert.equal(paid.body.callback.delivered, true, 'the form-encoded, encrypted callback was accepted');
    const done = await t.eventually(async () => {
      const x = await payment(p.body.id);
      return x.status === 'succeeded' ? x : undefined;
    });
    assert.equal(done?.bank.response_code, '00', 'the bank code mapped to NPCI 00');

    const refund = await t.request('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 4_900 });
    assert.equal(refund.status, 201, JSON.stringify(refund.body));
    const refunded = await t.eventually(async () => {
      const x = await payment(p.body.id);
      return x.status === 'partially_refunded' ? x : undefined;
    });
    assert.ok(refunded, 'the refund callback arrived and was applied');

    const c = await t.request('POST', '/v1/payments', {
      terminal_id: pspTerminal,
      amount: 5_000,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'sim-decline.ravi@okaxis',
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    const declined = await t.eventually(async () => {
      const x = await payment(c.body.id);
      return x.status === 'failed' ? x : undefined;
    });
    assert.ok(declined, 'the decline came back through the pspbank callback');

    // The status API (which answers in other terms than the callback) agrees.
    const status = await t.app.services.banks.connector('SIMBANK2').checkStatus(p.body.txn_ref);
    assert.equal(status.outcome, 'success');
  });

  test('malformed callbacks, JSON or form, reach verification and are recorded as refused', async () => {
    const count = async () =>
      (
        await t.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM platform.rejected_calls WHERE reason = 'malformed_body'`,
        )
      ).rows[0].n;
    const before = await count();
    const form = await fetch(`${t.url}/v1/banks/SIMBANK2/callbacks`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'requestId=x&encryptedData=%%%',
    });
    assert.equal(form.status, 400);
    assert.equal(((await form.json()) as any).error.code, 'malformed_json');
    const json = await fetch(`${t.url}/v1/banks/SIMBANK2/callbacks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"not json',
    });
    assert.equal(json.status, 400);
    assert.equal(await count(), before + 2);
  });

  test('a failing bank: the breaker opens, the fallback takes the traffic, probes close it again', async () => {
    // Healthy: the acquiring bank takes the payment.
    assert.equal((await pay(simbankTerminal)).body.bank.code, 'SIMBANK');

    outage.simbank = 'error';
    const during: string[] = [];
    for (let i = 0; i < 10; i++) during.push((await pay(simbankTerminal)).body.bank.code);
    // The first few meet the outage (and stay pending for status checks: a 5xx may have been acted
    // on); once 4 calls show >= 50 % technical failures the breaker opens and the rest go to SIMBANK2.
    const lostToOutage = during.filter((c) => c === 'SIMBANK').length;
    assert.ok(lostToOutage >= 1 && lostToOutage <= 4, `to the failing bank: ${during.join(',')}`);
    assert.deepEqual(during.slice(lostToOutage), Array(10 - lostToOutage).fill('SIMBANK2'));
    assert.equal(t.app.services.banks.routing('SIMBANK').banks[0].breaker, 'open');
    assert.equal(await t.eventually(() => audited('bank.breaker_opened')), 1);

    // Still failing after the open period: a probe goes through, fails, and it opens again.
    clock.advance(31_000);
    const probing: string[] = [];
    for (let i = 0; i < 4; i++) probing.push((await pay(simbankTerminal)).body.bank.code);
    assert.equal(probing.filter((c) => c === 'SIMBANK').length, 1, `one probe, then open again: ${probing}`);
    assert.equal(t.app.services.banks.routing('SIMBANK').banks[0].breaker, 'open');

    // Recovered: after the open period, probes (1 in 2) succeed and two of them close it.
    outage.simbank = undefined;
    clock.advance(31_000);
    const after: string[] = [];
    for (let i = 0; i < 8; i++) after.push((await pay(simbankTerminal)).body.bank.code);
    assert.equal(t.app.services.banks.routing('SIMBANK').banks[0].breaker, 'closed', after.join(','));
    assert.deepEqual(after.slice(-3), ['SIMBANK', 'SIMBANK', 'SIMBANK'], `back on the acquiring bank: ${after}`);
    assert.equal(await t.eventually(() => audited('bank.breaker_closed')), 1);
    assert.ok((await audited('bank.breaker_half_opened')) >= 2);

    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /tillpoint_bank_breaker_transitions_total\{bank="SIMBANK",from="closed",to="open"\} 1/);
    assert.match(metrics, /tillpoint_bank_breaker_transitions_total\{bank="SIMBANK",from="half_open",to="closed"\} 1/);
    assert.match(metrics, /tillpoint_bank_breaker_state\{bank="SIMBANK"\} 0/);

    // Every process's view is written for `banks status`.
    await t.app.services.banks.flushHealth();
    const views = await t.app.services.banks.health();
    assert.ok(views.some((v) => v.code === 'SIMBANK' && v.breaker === 'closed' && v.rule === 'priority'));
  });

  test('mark-down still overrides: a bank marked down gets nothing, whatever its breaker says', async () => {
    await t.app.services.banks.markDown('SIMBANK', 'maintenance');
    try {
      assert.equal((await pay(simbankTerminal)).body.bank.code, 'SIMBANK2');
    } finally {
      await t.app.services.banks.markUp('SIMBANK');
    }
    assert.equal((await pay(simbankTerminal)).body.bank.code, 'SIMBANK');
  });

  test('the simulator plays each kind of outage, per format', async () => {
    const { callBank } = await import('../src/modules/banks/index.ts');
    const status = (code: string) => callBank(() => t.app.services.banks.connector(code).checkStatus('TPNONE1'));
    try {
      outage.simbank = 'reset';
      assert.equal((await status('SIMBANK')).kind, 'uncertain');
      assert.equal((await status('SIMBANK2')).kind, 'ok', 'the other format is unaffected');
      outage.pspbank = 'hang';
      const hung = await status('SIMBANK2');
      assert.equal(hung.kind, 'uncertain');
      assert.equal((hung as { error: { details: { timeout: boolean } } }).error.details.timeout, true);
      outage.simbank = 'error';
      const failed = await status('SIMBANK');
      assert.equal(failed.kind, 'uncertain');
      assert.equal((failed as { error: { details: { status: number } } }).error.details.status, 503);
    } finally {
      outage.simbank = undefined;
      outage.pspbank = undefined;
    }
    assert.equal((await status('SIMBANK')).kind, 'ok');
  });
});
