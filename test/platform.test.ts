import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { buildServer } from '../src/http/server.ts';
import { loadConfig, ConfigError } from '../src/config.ts';
import { createLogger } from '../src/platform/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { createTestDb } from '../src/platform/testing.ts';

describe('platform surface', () => {
  let t: TestApp;
  const logLines: string[] = [];
  before(async () => {
    t = await startTestApp({ logLines });
  });
  after(() => t.close());

  test('health, readiness, metrics, OpenAPI and the docs page', async () => {
    assert.deepEqual(await (await fetch(`${t.url}/healthz`)).json(), { status: 'ok' });
    assert.deepEqual(await (await fetch(`${t.url}/readyz`)).json(), { status: 'ready', checks: { database: 'ok' } });
    await t.request('GET', '/v1/payments');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /tillpoint_http_requests_total\{method="GET",route="\/v1\/payments",status="200"\} \d+/);
    assert.match(metrics, /tillpoint_http_request_duration_seconds_bucket/);
    const spec = (await (await fetch(`${t.url}/openapi.json`)).json()) as any;
    assert.equal(spec.openapi, '3.1.0');
    for (const p of [
      '/v1/payments',
      '/v1/payments/{id}',
      '/v1/payments/{id}/refunds',
      '/v1/merchants',
      '/v1/merchants/{id}/stores',
      '/v1/terminals',
    ]) {
      assert.ok(spec.paths[p], `OpenAPI documents ${p}`);
    }
    assert.ok(spec.paths['/v1/payments'].post.requestBody, 'request schemas are in the document');
    const docs = await fetch(`${t.url}/docs`);
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger/i);
  });

  test('every response carries a request id; a valid incoming one is kept', async () => {
    const r = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'lb-trace-12345678' } });
    assert.equal(r.headers.get('x-request-id'), 'lb-trace-12345678');
    const r2 = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(r2.headers.get('x-request-id')!, /^req_/);
  });

  test('logs carry no payer VPA, API key or UPI link, through a whole payment and refund', async () => {
    const { terminal } = await t.seedMerchant();
    const vpa = 'secret.payer.9876@okaxis';
    const c = await t.request('POST', '/v1/payments', {
      terminal_id: terminal.id,
      amount: 1500,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: vpa,
    });
    await t.eventually(async () => (await t.request('GET', `/v1/payments/${c.body.id}`)).body.status === 'succeeded');
    await t.request('POST', `/v1/payments/${c.body.id}/refunds`, { amount: 500 });
    const q = await t.request('POST', '/v1/payments', {
      terminal_id: terminal.id,
      amount: 1500,
      currency: 'INR',
      method: 'upi_qr',
    });
    await t.payQr(q.body.upi_uri, vpa, 'success');
    await t.request('POST', '/v1/payments', {
      terminal_id: terminal.id,
      amount: 1,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'bad vpa@@',
    });
    const all = logLines.join('');
    assert.ok(logLines.length > 5, 'the flow was logged');
    assert.ok(!all.includes(vpa), 'payer VPA never logged');
    assert.ok(!all.includes('secret.payer'), 'not even partly');
    assert.ok(!all.includes(t.adminKey), 'API key never logged');
    assert.ok(!all.includes('upi://'), 'UPI link never logged');
  });
});

test('a /v1 route that declares no permission cannot be registered (deny by default)', async () => {
  const db = await createTestDb({ migrate: false });
  try {
    const app = await buildServer({
      config: loadConfig({ NODE_ENV: 'test' }),
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics(),
      db,
      authenticate: async () => null,
    });
    assert.throws(() => app.get('/v1/oops', async () => ({})), /declares no permission/);
    await app.close();
  } finally {
    await db.close();
  }
});

test('config: bad values name the setting; production demands real settings', () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: '99999' }, /PORT/],
    [{ NODE_ENV: 'staging' }, /NODE_ENV/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ NODE_ENV: 'production' }, /DATABASE_URL/],
    [{ NODE_ENV: 'production', DATABASE_URL: 'postgres://db/tp' }, /BANKS/],
    [{ BANKS: '[{"code":"X"}]' }, /BANKS/],
    [{ BANK_FALLBACK_ORDER: 'NOPE' }, /BANK_FALLBACK_ORDER/],
    [{ PAYMENT_MAX_AMOUNT_PAISE: '1.5' }, /PAYMENT_MAX_AMOUNT_PAISE/],
    [{ VPA_PATTERN: '([' }, /VPA_PATTERN/],
  ];
  for (const [env, re] of bad)
    assert.throws(
      () => loadConfig(env),
      (e: Error) => e instanceof ConfigError && re.test(e.message),
      JSON.stringify(env),
    );
  const prod = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://db/tp',
    BANKS: '[{"code":"AXIS","connector":"simbank","url":"https://psp.example","secret":"s3cr3t-from-a-secret-store"}]',
  });
  assert.equal(prod.embeddedBankSim, false, 'no simulator in production');
  assert.equal(prod.host, '0.0.0.0');
});
