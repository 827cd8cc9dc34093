import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { startAppGateway, type TestGateway } from './helpers/terminals.ts';
import { until } from '../src/modules/terminals/testkit.ts';
import { connectTerminal, TerminalRequestError, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';
import { issueMqttSecret } from '../src/modules/terminals/index.ts';
import { REQUEST_TYPES, type RequestType } from '../src/modules/terminals/protocol/schemas.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runRewardsVerify } from '../src/modules/rewards/index.ts';

// Reward points at the till over MQTT: a terminal asks for a balance and a quote, then takes a
// split-tender payment (points + UPI) that the customer pays through the bank simulator.

const ajv = new Ajv.default({ strict: false });
addFormats.default(ajv);
const conforms = (type: RequestType, body: unknown) => {
  const v = ajv.compile(REQUEST_TYPES[type].response);
  assert.ok(v(body), `${type}: ${JSON.stringify(v.errors)}`);
};

describe('rewards over the terminal protocol', { timeout: 60_000 }, () => {
  let t: TestApp;
  let gw: TestGateway;
  let term: TerminalClient;
  let merchantId: string;
  const customer = 'asha.rao@okhdfc';

  before(async () => {
    t = await startTestApp();
    gw = await startAppGateway(t);
    const s = await t.seedMerchant('Rao Provisions');
    merchantId = s.merchant.id;
    const p = await t.request('POST', '/v1/rewards/programs', {
      merchant_id: merchantId,
      name: 'Rao Points',
      point_value_paise: 25,
      earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
    });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const { password } = await issueMqttSecret(t.db, s.terminal.id, 'test');
    term = await connectTerminal({ url: gw.plainUrl!, terminalId: s.terminal.id, password, requestTimeoutMs: 5000 });
  });
  after(async () => {
    await term?.close().catch(() => {});
    await gw.stop();
    await t.close();
  });

  test('balance, quote, then a payment that burns points and earns on the UPI part', async () => {
    const empty = await term.request('rewards.balance', { vpa: customer });
    conforms('rewards.balance', empty);
    assert.deepEqual({ ...empty, program_id: '' }, { program_id: '', available: 0, pending: 0, expiring_30d: 0 });
    const adj = await t.request('POST', '/v1/rewards/adjustments', {
      merchant_id: merchantId,
      vpa: customer,
      points: 300,
      reason: 'welcome bonus',
    });
    assert.equal(adj.status, 201, JSON.stringify(adj.body));

    const quote = await term.request('rewards.quote', { amount: 50_000, vpa: customer });
    conforms('rewards.quote', quote);
    assert.equal(quote.available, 300);
    assert.equal(quote.max_redeem_points, 300);
    assert.equal(quote.earn_points, 50);
    const withPoints = await term.request('rewards.quote', { amount: 50_000, vpa: customer, redeem_points: 300 });
    assert.equal(withPoints.upi_amount, 42_500);
    assert.equal(withPoints.earn_points, 42);

    const p = await term.createPayment({
      method: 'upi_qr',
      amount: withPoints.upi_amount,
      currency: 'INR',
      rewards: { vpa: customer, redeem_points: 300 },
    });
    assert.equal(p.amount, 42_500, 'the QR asks for the UPI part only');
    assert.equal((await term.request('rewards.balance', { vpa: customer })).available, 0, 'reserved at creation');
    const paid = await t.payQr(p.upi_uri!, 'someone.else@okaxis', 'success');
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    const after = await until(async () => {
      const b = await term.request('rewards.balance', { vpa: customer });
      return b.available === 42 ? b : undefined;
    });
    assert.ok(after, 'the named customer earned on the UPI amount, not the payer');
    assert.equal((await runLedgerVerify(t.db)).ok, true);
    assert.equal((await runRewardsVerify(t.db)).ok, true);
  });

  test('refusals come back as protocol errors with the API codes', async () => {
    const tooMany = term.createPayment({
      method: 'upi_qr',
      amount: 1000,
      currency: 'INR',
      rewards: { vpa: 'nobody@okaxis', redeem_points: 10 },
    });
    await assert.rejects(
      tooMany,
      (e: unknown) => e instanceof TerminalRequestError && e.code === 'insufficient_points',
    );
    await assert.rejects(
      term.request('rewards.balance', { phone: '12345' }),
      (e: unknown) => e instanceof TerminalRequestError && e.code === 'validation_failed',
    );
    await assert.rejects(
      term.request('rewards.quote', { amount: 0, vpa: customer }),
      (e: unknown) => e instanceof TerminalRequestError && e.code === 'invalid_amount',
    );
    await assert.rejects(
      term.request('rewards.quote', { amount: 1000, vpa: customer, colour: 'red' } as never),
      (e: unknown) => e instanceof TerminalRequestError && e.code === 'validation_failed',
    );
  });
});
