import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { counterSum } from './helpers/gateway.ts';
import { createApiKey } from '../src/modules/identity/index.ts';
import { PERMISSIONS } from '../src/platform/principal.ts';

// Edge protection inside the API itself (defence in depth: it holds with no gateway in front):
// rate limits per IP, per API key and per terminal; security headers and CORS; strict content
// types; JSON shape limits; header size; slow-client timeouts; the connection cap.

async function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string) {
  const r = await fetch(url, { method, headers, body });
  const text = await r.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, json, text };
}

/** Writes `data` on a raw socket and resolves with everything the server sent until it closed. */
function rawExchange(
  port: number,
  data: string,
  opts: { keepOpenMs?: number } = {},
): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = connect(port, '127.0.0.1', () => s.write(data));
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', () => {});
    s.on('close', () => resolve({ text, closedAfterMs: Date.now() - started }));
    setTimeout(() => {
      s.destroy();
      reject(new Error(`the server kept the connection open for ${opts.keepOpenMs ?? 8000} ms; got: ${text}`));
    }, opts.keepOpenMs ?? 8000).unref();
  });
}

describe('rate limits in the API (in-process token buckets)', () => {
  let t: TestApp;
  let terminalId: string;
  let terminal2: string;
  let otherMerchant: string;
  before(async () => {
    t = await startTestApp({
      env: {
        HTTP_TRUST_PROXY: '127.0.0.1',
        RATE_LIMIT_IP: '1/h',
        RATE_LIMIT_IP_BURST: '5',
        RATE_LIMIT_API_KEY: '1/h',
        RATE_LIMIT_API_KEY_BURST: '8',
        RATE_LIMIT_TERMINAL: '1/h',
        RATE_LIMIT_TERMINAL_BURST: '3',
      },
    });
    // Set up through the service layer, so the buckets start full for the tests.
    const h = { 'x-forwarded-for': '192.0.2.200' };
    const s = await t.seedMerchant('Limits Store');
    terminalId = s.terminal.id;
    terminal2 = (await t.request('POST', '/v1/terminals', { store_id: s.store.id, label: 'Till 2' }, h)).body.id;
    otherMerchant = (
      await t.request(
        'POST',
        '/v1/merchants',
        { name: 'Other', vpa: 'other.shop@simbank', mcc: '5411', acquiring_bank: 'SIMBANK' },
        { 'x-forwarded-for': '192.0.2.201' },
      )
    ).body.id;
  });
  after(() => t.close());

  const newKey = async (merchantId: string | null = null) =>
    (await createApiKey(t.db, { name: 'limits test', merchantId, permissions: PERMISSIONS })).key;
  let ipCounter = 0;
  const freshIp = () => `198.51.100.${++ipCounter}`;

  test('per client IP (from X-Forwarded-For set by a trusted proxy): 429 rate_limited with Retry-After; health probes are never limited', async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++)
      assert.equal(
        (await get(`${t.url}/v1/payments`, { 'x-forwarded-for': ip })).status,
        401,
        'counted before authentication',
      );
    const r = await get(`${t.url}/v1/payments`, { 'x-forwarded-for': ip });
    assert.equal(r.status, 429);
    assert.equal(r.json.error.code, 'rate_limited');
    assert.equal(r.json.error.details.limit, 'ip');
    assert.equal(r.headers.get('retry-after'), '3600', 'one token an hour');
    assert.equal(r.json.error.details.retry_after_seconds, 3600);
    assert.equal(r.headers.get('x-request-id'), r.json.error.request_id);
    assert.equal((await get(`${t.url}/healthz`, { 'x-forwarded-for': ip })).status, 200);
    assert.equal(
      (await get(`${t.url}/v1/payments`, { 'x-forwarded-for': freshIp() })).status,
      401,
      'another client has its own bucket',
    );
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.ok(counterSum(metrics, 'tillpoint_rate_limited_total', { limit: 'ip' }) >= 1);
  });

  test('per API key, across client addresses; other keys unaffected', async () => {
    const k1 = await newKey();
    for (let i = 0; i < 8; i++)
      assert.equal(
        (await get(`${t.url}/v1/merchants`, { authorization: `Bearer ${k1}`, 'x-forwarded-for': freshIp() })).status,
        200,
      );
    const r = await get(`${t.url}/v1/merchants`, { authorization: `Bearer ${k1}`, 'x-forwarded-for': freshIp() });
    assert.equal(r.status, 429);
    assert.equal(r.json.error.details.limit, 'api_key');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    const k2 = await newKey();
    assert.equal(
      (await get(`${t.url}/v1/merchants`, { authorization: `Bearer ${k2}`, 'x-forwarded-for': freshIp() })).status,
      200,
    );
  });

  test("per terminal: refused before the payment is written or an idempotency key is claimed; a merchant key cannot drain another merchant's terminal", async () => {
    const key = await newKey();
    const pay = (terminal: string, k: string, headers: Record<string, string> = {}) =>
      get(
        `${t.url}/v1/payments`,
        { authorization: `Bearer ${k}`, 'content-type': 'application/json', 'x-forwarded-for': freshIp(), ...headers },
        'POST',
        JSON.stringify({ terminal_id: terminal, amount: 100, currency: 'INR', method: 'upi_qr' }),
      );
    // Another merchant's key names our terminal: it is counted in its own namespace (and not found).
    const foreign = await newKey(otherMerchant);
    for (let i = 0; i < 3; i++)
      assert.notEqual((await pay(terminalId, foreign)).json?.error?.details?.limit, 'terminal' as unknown);
    for (let i = 0; i < 3; i++)
      assert.equal((await pay(terminalId, key)).status, 201, 'the foreign key drained nothing');
    const count = async () =>
      (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM payments.payments')).rows[0].n;
    const before = await count();
    const r = await pay(terminalId, key, { 'idempotency-key': 'limits-test-429' });
    assert.equal(r.status, 429);
    assert.equal(r.json.error.details.limit, 'terminal');
    assert.equal(await count(), before, 'no payment written');
    const claimed = await t.db.query(`SELECT 1 FROM platform.idempotency_keys WHERE key = 'limits-test-429'`);
    assert.equal(claimed.rows.length, 0, 'no idempotency key claimed');
    assert.equal((await pay(terminal2, key)).status, 201, 'the next terminal has its own bucket');
  });
});

describe('request limits, security headers, CORS, slow clients and the connection cap', () => {
  let t: TestApp;
  let port: number;
  before(async () => {
    t = await startTestApp({
      env: {
        HTTP_MAX_HEADER_BYTES: '4096',
        HTTP_JSON_MAX_DEPTH: '8',
        HTTP_JSON_MAX_ARRAY_LENGTH: '50',
        HTTP_HEADERS_TIMEOUT_MS: '500',
        HTTP_REQUEST_TIMEOUT_MS: '1500',
        HTTP_MAX_CONNECTIONS: '20',
        CORS_ALLOWED_ORIGINS: 'https://console.example.com',
      },
    });
    port = Number(new URL(t.url).port);
  });
  after(() => t.close());

  test('security headers on API answers, errors included; a console CSP on HTML pages', async () => {
    for (const r of [await t.request('GET', '/v1/merchants'), await get(`${t.url}/v1/payments`)]) {
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('strict-transport-security'), 'max-age=31536000; includeSubDomains');
      assert.equal(
        r.headers.get('content-security-policy'),
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
      );
      assert.equal(r.headers.get('x-frame-options'), 'DENY');
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.match(r.headers.get('x-request-id') ?? '', /^req_/);
    }
    const docs = await fetch(`${t.url}/docs`);
    assert.equal(docs.status, 200);
    const csp = docs.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.doesNotMatch(
      await docs.text(),
      /<script>(?!\s*<\/script>)/,
      'the page has no inline script for the CSP to break',
    );
  });

  test('CORS: closed to unknown origins, open (exactly, no wildcard) to the configured one', async () => {
    const preflight = (origin: string) =>
      fetch(`${t.url}/v1/payments`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
    const evil = await preflight('https://evil.example');
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    assert.notEqual(evil.status, 204);
    const simple = await fetch(`${t.url}/v1/payments`, { headers: { origin: 'https://evil.example' } });
    assert.equal(simple.headers.get('access-control-allow-origin'), null);
    const ok = await preflight('https://console.example.com');
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://console.example.com');
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /authorization/);
    assert.match(ok.headers.get('vary') ?? '', /Origin/);
  });

  test('strict content types: only application/json (UTF-8) bodies', async () => {
    const body = JSON.stringify({ name: 'X', vpa: 'x.y@simbank', mcc: '5411', acquiring_bank: 'SIMBANK' });
    for (const ct of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/json; charset=utf-16',
      'application/jsonx',
      'text/json',
    ]) {
      const r = await t.request('POST', '/v1/merchants', body, { 'content-type': ct });
      assert.equal(r.status, 415, ct);
      assert.equal(r.body.error.code, 'unsupported_media_type', ct);
    }
    const ok = await t.request('POST', '/v1/merchants', body, { 'content-type': 'application/json; charset=UTF-8' });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  test('JSON nested too deep or an array too long: 400 json_too_complex, nothing parsed', async () => {
    const deep = await t.request('POST', '/v1/merchants', '{"a":'.repeat(9) + '1' + '}'.repeat(9));
    assert.equal(deep.status, 400);
    assert.equal(deep.body.error.code, 'json_too_complex');
    assert.equal(deep.body.error.details.limit, 'depth');
    const hostile = await t.request('POST', '/v1/merchants', '['.repeat(30_000) + ']'.repeat(30_000));
    assert.equal(hostile.body.error.code, 'json_too_complex');
    const long = await t.request('POST', '/v1/merchants', JSON.stringify({ name: Array(51).fill(1) }));
    assert.equal(long.body.error.code, 'json_too_complex');
    assert.equal(long.body.error.details.limit, 'array_length');
  });

  test('headers larger than HTTP_MAX_HEADER_BYTES: 431 headers_too_large in the error shape', async () => {
    const r = await rawExchange(port, `GET /v1/payments HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(5000)}\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 431 /);
    const body = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error.code, 'headers_too_large');
    assert.match(body.error.request_id, /^req_/);
  });

  test('slow clients: headers or a body that trickle in are cut off with 408', async () => {
    // Slowloris: a request line and one header, then nothing.
    const slowHeaders = await rawExchange(port, 'GET /v1/payments HTTP/1.1\r\nHost: x\r\n');
    assert.match(slowHeaders.text, /^HTTP\/1\.1 408 /);
    assert.equal(
      JSON.parse(slowHeaders.text.slice(slowHeaders.text.indexOf('\r\n\r\n') + 4)).error.code,
      'request_timeout',
    );
    assert.ok(slowHeaders.closedAfterMs < 3000, `closed after ${slowHeaders.closedAfterMs} ms`);
    // Slow POST: complete headers, then 10 of the 100 promised bytes.
    const slowBody = await rawExchange(
      port,
      'POST /v1/banks/SIMBANK/callbacks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":"a',
    );
    assert.match(slowBody.text, /^HTTP\/1\.1 408 /);
    assert.ok(slowBody.closedAfterMs < 4000, `closed after ${slowBody.closedAfterMs} ms`);
  });

  test('connections past HTTP_MAX_CONNECTIONS are closed at once and counted', async () => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        held.push(
          await new Promise<Socket>((resolve) => {
            const s = connect(port, '127.0.0.1', () => resolve(s));
            s.on('error', () => {});
          }),
        );
      }
      await new Promise((r) => setTimeout(r, 100));
      const extra = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { keepOpenMs: 3000 });
      assert.equal(extra.text, '', 'no answer past the cap');
    } finally {
      for (const s of held) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.ok(counterSum(metrics, 'tillpoint_http_connections_dropped_total') >= 1);
    assert.equal((await get(`${t.url}/healthz`)).status, 200, 'and served again once below the cap');
  });
});
