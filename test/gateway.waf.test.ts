import { randomBytes } from 'node:crypto';
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { readSecurityEvents, type SecurityEvent } from '../src/http/edge/index.ts';
import { ATTACKS, type Attack } from './gateway.attacks.ts';
import { counterSum, gatewaySkip, startAppBehindGateway, type GatewayedApp } from './helpers/gateway.ts';
import { createOperator } from './helpers/operators.ts';

// Through a real nginx + ModSecurity v3 + OWASP CRS in front of a real API: the whole
// legitimate flow passes without a single block (or detection), and every request of our own
// attack set is refused, answered with a request id, recorded as a security event and counted
// in the API's metrics, and never reaches the API.

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** node:http rather than fetch: attacks need methods, headers and bodies fetch refuses to send. */
function raw(
  base: string,
  a: { method: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const headers: Record<string, string> = {
      'user-agent': 'tillpoint-waf-test/1',
      accept: 'application/json',
      ...(a.headers ?? {}),
    };
    for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
    if (a.body !== undefined) headers['content-length'] = String(Buffer.byteLength(a.body));
    const req = httpRequest({ host: u.hostname, port: u.port, method: a.method, path: a.path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (a.body !== undefined) req.write(a.body);
    req.end();
  });
}

/** Deterministic base64 "signatures": the same 40 every run, so a false positive reproduces. */
function signatures(n: number): string[] {
  const out: string[] = [];
  let seed = Buffer.from('tillpoint-waf-legit-traffic');
  for (let i = 0; i < n; i++) {
    seed = createHash('sha512').update(seed).digest();
    out.push(seed.subarray(0, 33 + (i % 30)).toString('base64'));
  }
  return out;
}

const BROWSER = {
  'user-agent':
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'accept-language': 'en-IN,en;q=0.9,hi;q=0.8',
  'accept-encoding': 'gzip, deflate, br',
  'sec-fetch-site': 'same-origin',
  'sec-fetch-mode': 'no-cors',
};

const MERCHANT_NAMES = [
  'Sharma & Sons, Pune',
  "D'Souza Bakery",
  'Lakshmi Stores (Main Rd)',
  "Kumar's Kirana",
  'A-1 Mobiles / Recharge',
  'Café Coffee #42',
  'Union Traders',
  'Select Fashions',
  'Drop & Shop',
  'New Delhi Sweets - Since 1952',
  'Java House Cafe',
  'Time Square Mobiles',
  'Echo Electricals & Sons',
];

const NOTES = [
  'Bill #42: rice & dal',
  'Order 17/3 - 2x chai @ Rs.10',
  '50% off; paid via UPI',
  'Table 4 (AC hall)',
  'Invoice INV-2024/0007',
  "Rent for Dec'24",
  'Select thali + 1 lassi',
  'Union Bank deposit',
  'drop-off charges',
  'Tip: 10% & service',
  'Qty: 3 x 250g = 750g',
  '1 or 2 samosas',
  "Ravi's order, table 5",
  'Paid in full -- thanks!',
  'चावल और दाल',
  'Item #7; size=M',
  'Customer: "walk-in"',
  'Return within <1 week>',
  'UPI ref 4021 9876 5432',
  'where: counter 2',
  // Values that begin with a word that is also a Unix command (CRS 932150 reads those as one).
  'time slot 5pm pickup',
  'java chip frappe x2',
  'Echo Dot (refurbished)',
  'Sort by size; tee XL',
  'Top up Rs.100 - ref 9981',
  'Find us at gate 2',
];

const VPAS = ['ravi.kumar@okaxis', 'Asha.M@oksbi', 'priya_98-x@ybl', 'store.owner.1990@paytm', '9876543210@upi'];

describe('WAF gateway: nginx + ModSecurity v3 + OWASP CRS in front of the API', { skip: gatewaySkip() }, () => {
  let g: GatewayedApp;
  const appLog: string[] = [];
  let key: string;
  before(async () => {
    g = await startAppBehindGateway({ logLines: appLog });
    key = g.t.adminKey;
  });
  after(() => g?.close());

  async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const r = await raw(g.url, {
      method,
      path,
      headers: {
        authorization: `Bearer ${key}`,
        'user-agent': 'tillpoint-partner-sdk/1.4 (node 20)',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.notEqual(
      r.json?.error?.code,
      'request_blocked',
      `blocked: ${method} ${path} ${JSON.stringify(body)} ${JSON.stringify(headers)}`,
    );
    return r;
  }

  const events = (): SecurityEvent[] => {
    g.gw.flushEvents();
    return readSecurityEvents(g.gw.eventsFile);
  };

  test('the whole legitimate flow passes through the gateway with zero blocks and zero detections', async () => {
    // The docs page, as a browser loads it: the page, every script and stylesheet, the spec.
    const docs = await fetch(`${g.url}/docs`, {
      headers: { ...BROWSER, accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' },
    });
    assert.equal(docs.status, 200);
    const html = await docs.text();
    assert.match(html, /swagger-ui/);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => new URL(m[1], docs.url).toString());
    assert.ok(assets.length >= 4, 'the page references its scripts and styles');
    for (const a of assets) {
      const r = await fetch(a, { headers: { ...BROWSER, referer: docs.url, accept: '*/*' } });
      assert.equal(r.status, 200, a);
      await r.arrayBuffer();
    }
    const spec = await fetch(`${g.url}/docs/json`, {
      headers: { ...BROWSER, referer: docs.url, accept: 'application/json,*/*' },
    });
    assert.equal(spec.status, 200);
    assert.ok(((await spec.json()) as { paths: object }).paths);
    assert.equal((await api('GET', '/healthz')).status, 200);

    const sigs = signatures(40);
    let sig = 0;
    const paid: string[] = [];
    for (const [i, name] of MERCHANT_NAMES.entries()) {
      const m = await api('POST', '/v1/merchants', {
        name,
        vpa: `shop.${i}-x_y@simbank`,
        mcc: '5411',
        acquiring_bank: 'SIMBANK',
      });
      assert.equal(m.status, 201, m.text);
      const s = await api('POST', `/v1/merchants/${m.json.id}/stores`, {
        name: 'Main & Co. (1st floor)',
        city: 'Navi Mumbai',
      });
      assert.equal(s.status, 201, s.text);
      const tr = await api('POST', '/v1/terminals', { store_id: s.json.id, label: 'Till #1 - front desk' });
      assert.equal(tr.status, 201, tr.text);
      assert.equal(
        (await api('PATCH', `/v1/terminals/${tr.json.id}`, { label: "Till #1 (Ravi's counter)" })).status,
        200,
      );
      assert.equal((await api('PATCH', `/v1/merchants/${m.json.id}`, { name: `${name} & Co.` })).status, 200);

      // Two notes per merchant, each payment with a base64 Idempotency-Key, paid by QR.
      for (const note of NOTES.slice((i * 2) % NOTES.length, ((i * 2) % NOTES.length) + 2)) {
        const p = await api(
          'POST',
          '/v1/payments',
          { terminal_id: tr.json.id, amount: 14900 + i, currency: 'INR', method: 'upi_qr', note },
          { 'idempotency-key': sigs[sig++ % sigs.length] },
        );
        assert.equal(p.status, 201, p.text);
        // The customer's app pays the UPI URI; half of them are signed QRs (mode/orgid/sign, base64).
        const uri =
          i % 2
            ? `${p.json.upi_uri}&mode=02&orgid=159761&sign=${encodeURIComponent(sigs[sig++ % sigs.length])}`
            : p.json.upi_uri;
        const pay = await raw(g.url, {
          method: 'POST',
          path: '/sim/v1/customer-payments',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'Mozilla/5.0 (Linux; Android 14; Pixel 8) UPIApp/3.2',
          },
          body: JSON.stringify({ upi_uri: uri, payer_vpa: VPAS[i % VPAS.length], outcome: 'success' }),
        });
        assert.equal(pay.status, 200, pay.text);
        paid.push(p.json.id);
      }
      // A collect request to a customer's VPA.
      const c = await api('POST', '/v1/payments', {
        terminal_id: tr.json.id,
        amount: 2599,
        currency: 'INR',
        method: 'upi_collect',
        payer_vpa: VPAS[(i + 1) % VPAS.length],
        note: 'Collect: order #' + (1000 + i),
      });
      assert.equal(c.status, 201, c.text);
    }

    // The bank's signed callbacks come back through the gateway; every payment settles.
    for (const id of paid) {
      const done = await g.t.eventually(async () =>
        (await api('GET', `/v1/payments/${id}`)).json.status === 'succeeded' ? true : undefined,
      );
      assert.ok(done, `payment ${id} succeeded through the gateway`);
    }
    for (const [i, id] of paid.slice(0, 6).entries()) {
      const r = await api('POST', `/v1/payments/${id}/refunds`, {
        amount: 500 + i,
        reason: [
          '1 item returned (damaged)',
          "Customer's request: wrong size",
          'Refund #2 - 50% off',
          'Duplicate charge; see ticket T-42',
          'Price match: Rs.5 less',
          'Goodwill (late delivery)',
        ][i],
      });
      assert.equal(r.status, 201, r.text);
      assert.equal((await api('GET', `/v1/payments/${id}/refunds`)).status, 200);
    }
    const list = await api(
      'GET',
      `/v1/payments?status=succeeded&created_from=${encodeURIComponent('2020-01-01T00:00:00.000Z')}&limit=5`,
    );
    assert.equal(list.status, 200);
    assert.ok(list.json.next_cursor, 'more than one page');
    const next = await api('GET', `/v1/payments?limit=5&cursor=${encodeURIComponent(list.json.next_cursor)}`);
    assert.equal(next.status, 200);
    assert.equal((await api('GET', '/v1/merchants?limit=3')).status, 200);

    // The console's sign-in: a password full of punctuation (it is only ever hashed) passes.
    const op = await createOperator(g.t, { roles: ['viewer'], password: "Rice&Dal;cat 2024'-- <b>$(x)" });
    const login = await api(
      'POST',
      '/v1/auth/login',
      { email: op.email, password: op.password },
      { authorization: '' },
    );
    assert.equal(login.status, 200, login.text);
    assert.ok(login.json.challenge);

    const ev = events();
    assert.deepEqual(
      ev.map((e) => `${e.action} ${e.method} ${e.path} ${e.rules.map((r) => r.id).join(',')}`),
      [],
      'no security event at all for our own traffic',
    );
  });

  test('random ids and references never trip a rule (hex is also valid base64)', async () => {
    // Found in CI: one legitimate request in ~200 carried an id whose hex, read as base64,
    // decoded to an attack marker. Ids, txn refs and digests must pass whatever their bytes.
    const before = events().length;
    for (let i = 0; i < 400; i++) {
      const hex = randomBytes(16).toString('hex');
      const r = await api(
        'POST',
        '/v1/terminals',
        { store_id: `sto_${hex}`, label: 'Till #1 - front desk' },
        { 'idempotency-key': `TP${hex.toUpperCase()}` },
      );
      assert.equal(r.status, 404, `store_not_found, not blocked (${r.status})`);
    }
    assert.equal(events().length, before, 'no security event');
  });

  test('every request of our attack set is refused, answered with a request id, recorded, counted, and never reaches the API', async () => {
    const before = events().length;
    const results: { a: Attack; r: Raw }[] = [];
    for (const a of ATTACKS) {
      const headers = { authorization: `Bearer ${key}`, ...a.headers };
      results.push({ a, r: await raw(g.url, { ...a, headers }) });
    }
    const missed = results
      .filter(({ a, r }) => r.status !== (a.expectStatus ?? 403))
      .map(({ a, r }) => `${a.cls}/${a.place} ${a.name}: ${r.status}`);
    assert.deepEqual(missed, [], `${ATTACKS.length - missed.length}/${ATTACKS.length} blocked`);

    for (const { a, r } of results) {
      assert.equal(r.json?.error?.code, a.expectStatus === 400 ? 'malformed_json' : 'request_blocked', a.name);
      assert.match(r.json.error.request_id, /^req_[0-9a-f]{32}$/, a.name);
      assert.equal(
        r.headers['x-request-id'],
        r.json.error.request_id,
        `${a.name}: the header and the body carry the same id`,
      );
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
    }

    // Recorded: one security event per refused request, under the id the client was given.
    const ids = new Set(results.map(({ r }) => r.json.error.request_id as string));
    let recorded: SecurityEvent[] = [];
    await g.t.eventually(async () => {
      recorded = events().slice(before);
      return recorded.length >= ids.size ? true : undefined;
    });
    const byId = new Map(recorded.map((e) => [e.id, e]));
    for (const { a, r } of results) {
      const e = byId.get(r.json.error.request_id);
      assert.ok(e, `${a.name}: recorded as a security event`);
      assert.equal(e.action, 'blocked');
      assert.equal(e.status, r.status);
      assert.equal(e.client_ip, '127.0.0.1');
      assert.equal(e.method, a.method);
      assert.ok(e.rules.length > 0 && e.rules.every((x) => /^\d+$/.test(x.id)), a.name);
      assert.ok(!e.path.includes('?'), 'no query string in an event');
      assert.ok(!JSON.stringify(e).includes(key), 'no API key in an event');
    }
    const cats = new Set(recorded.map((e) => e.category));
    for (const c of ['sqli', 'xss', 'lfi', 'rce', 'ssrf', 'java', 'protocol'])
      assert.ok(cats.has(c), `category ${c} among the events`);

    // Counted in the API's own metrics (it follows the events file).
    const counted = await g.t.eventually(async () => {
      const text = await (await fetch(`${g.t.url}/metrics`)).text();
      const n = counterSum(text, 'tillpoint_waf_events_total', { action: 'blocked' });
      return n >= ids.size ? n : undefined;
    });
    assert.equal(counted, ids.size);

    // Never reached the API: none of these request ids is in the API's request log.
    const seen = appLog.filter((l) => [...ids].some((id) => l.includes(id)));
    assert.deepEqual(seen, []);
  });

  test('the gateway answers its own refusals in the API error shape', async () => {
    const big = await raw(g.url, {
      method: 'POST',
      path: '/v1/payments',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: `{"note":"${'x'.repeat(70_000)}"}`,
    });
    assert.equal(big.status, 413);
    assert.equal(big.json.error.code, 'payload_too_large');
    assert.match(big.json.error.request_id, /^req_/);

    const hdr = await raw(g.url, {
      method: 'GET',
      path: '/v1/payments',
      headers: { 'x-filler': 'a'.repeat(20_000), authorization: `Bearer ${key}` },
    });
    assert.equal(hdr.status, 431);
    assert.equal(hdr.json.error.code, 'headers_too_large');

    // A path that climbs above the root is refused by nginx itself, before any rule.
    const climb = await raw(g.url, { method: 'GET', path: '/v1/payments/..%2f..%2f..%2fetc%2fpasswd' });
    assert.equal(climb.status, 400);
    assert.equal(climb.json.error.code, 'invalid_request');

    const metrics = await raw(g.url, { method: 'GET', path: '/metrics' });
    assert.equal(metrics.status, 404, 'the API metrics are not published through the gateway');
    assert.equal(metrics.json.error.code, 'route_not_found');

    // The API's own errors pass through untouched (not rewritten by the gateway).
    const forbidden = await raw(g.url, {
      method: 'GET',
      path: '/v1/payments',
      headers: { authorization: 'Bearer tp_not_a_real_key_at_all' },
    });
    assert.equal(forbidden.status, 401);
    assert.equal(forbidden.json.error.code, 'unauthenticated');
    const invalid = await api('POST', '/v1/payments', { amount: 10.5 });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.json.error.code, 'validation_failed');

    // The client's X-Forwarded-For is not believed: the API sees the gateway's view of the client.
    const spoof = await raw(g.url, {
      method: 'GET',
      path: '/healthz',
      headers: { 'x-forwarded-for': '203.0.113.9', 'x-request-id': 'chosen-by-client-123' },
    });
    assert.equal(spoof.status, 200);
    assert.match(String(spoof.headers['x-request-id']), /^req_[0-9a-f]{32}$/, 'the gateway assigns the request id');
  });
});
