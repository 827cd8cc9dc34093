import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { httpJson, startTestApp, type TestApp, type Res } from './helpers/harness.ts';
import { call, createOperator, signIn, uniqueEmail, type Session } from './helpers/operators.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { signRequest } from '../src/platform/signing.ts';
import { PERMISSIONS } from '../src/platform/principal.ts';
import {
  createApiKey,
  KEY_GRANTABLE_PERMISSIONS,
  ROLE_NAMES,
  MERCHANT_ROLES,
  SESSION_COOKIE,
} from '../src/modules/identity/index.ts';
import type { RouteInfo } from '../src/http/server.ts';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

// The shared security suite: every /v1 route the running API has registered (read from the
// app itself, so a new route is covered the day it is added) is called
//   - with no credentials, with wrong credentials and with an expired session: 401;
//   - by a caller that has every permission but the one the route needs: 403;
//   - by another merchant, for this merchant's resource: 404 (never confirming it exists);
// and for each refusal an audit record must exist, naming the request.

// Near real time: the bank simulator checks the timestamps of signed calls.
const clock = fixedClock(new Date());

// The only routes anyone may call without credentials. A new one must be added here on purpose.
const PUBLIC_ROUTES = new Set([
  'POST /v1/auth/login',
  'POST /v1/auth/mfa',
  'POST /v1/banks/:code/callbacks',
  'POST /v1/settlement/banks/:code/callbacks', // reversal callbacks: signed by the bank, like the one above
]);

describe('security suite over every route', () => {
  let t: TestApp;
  let routes: RouteInfo[];
  const fx: Record<string, string> = {};
  let expired: Session;
  let staffB: Session;
  let keyB: string;

  before(async () => {
    // Every route's schemas compile when this app starts, as in production: the runner's
    // TEST_LAZY_SCHEMAS (compile on first use, src/http/validation.ts) is for apps that call a few
    // routes; this one calls them all, so a schema Ajv (or fast-json-stringify, the response
    // serializers) refuses fails here at start.
    delete process.env.TEST_LAZY_SCHEMAS;
    t = await startTestApp({ clock, env: { RATE_LIMIT_ENABLED: 'false' } });
    routes = t.app.http!.routeTable;
    const a = await t.seedMerchant('Shop A');
    const b = await t.seedMerchant('Shop B');
    const pay = await t.request('POST', '/v1/payments', {
      terminal_id: a.terminal.id,
      amount: 2500,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(pay.status, 201, JSON.stringify(pay.body));
    const staffA = await createOperator(t, { roles: ['viewer'], merchantId: a.merchant.id });
    const keyA = await createApiKey(t.db, {
      name: 'A till',
      merchantId: a.merchant.id,
      permissions: ['payments:write'],
    });
    Object.assign(fx, {
      merchant: a.merchant.id,
      store: a.store.id,
      terminal: a.terminal.id,
      payment: pay.body.id,
      operator: staffA.id,
      apiKey: keyA.id,
      otherMerchant: b.merchant.id,
    });
    // A platform operator with every role, whose session then sits idle past 15 minutes.
    const everything = await createOperator(t, { roles: [...ROLE_NAMES] });
    expired = await signIn(t, clock, everything);
    // Merchant B's staff with every merchant role, and merchant B's key with every key permission.
    const sb = await createOperator(t, { roles: [...MERCHANT_ROLES], merchantId: b.merchant.id });
    staffB = await signIn(t, clock, sb);
    keyB = (
      await createApiKey(t.db, { name: 'B all', merchantId: b.merchant.id, permissions: KEY_GRANTABLE_PERMISSIONS })
    ).key;
    clock.advance(16 * 60_000);
    staffB = await signIn(t, clock, { ...sb, secret: staffB.secret });
  });
  after(() => t.close());

  /** A concrete path for a route: this merchant's (A's) resources fill the parameters. */
  function pathOf(url: string): string {
    const byParam: Record<string, string> = {
      store_id: fx.store,
      payment_id: fx.payment,
      merchant_id: fx.merchant,
      rule_id: 'rul_00000000000000000000000000000000',
      code: 'SIMBANK',
    };
    const seg = url.split('/');
    return seg
      .map((s, i) => {
        if (!s.startsWith(':')) return s;
        const name = s.slice(1);
        if (name !== 'id') return byParam[name] ?? 'x';
        const parent = seg[i - 1];
        return (
          (
            {
              merchants: fx.merchant,
              terminals: fx.terminal,
              payments: fx.payment,
              operators: fx.operator,
              'api-keys': fx.apiKey,
            } as Record<string, string>
          )[parent] ?? `${parent}_0`
        );
      })
      .join('/');
  }

  async function deniedAndAudited(r: Res, status: number, what: string) {
    assert.equal(r.status, status, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body?.error?.code, 'string', `${what}: error body`);
    const requestId = r.headers.get('x-request-id');
    const rec = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE record::jsonb -> 'origin' ->> 'request_id' = $1 AND outcome = 'failure'`,
      [requestId],
    );
    assert.equal(rec.rows.length, 1, `${what}: one audit record for the refusal (request ${requestId})`);
    const e = JSON.parse(rec.rows[0].record);
    assert.equal(e.outcome, 'failure');
    assert.ok(e.at && e.origin.ip && e.actor.type && e.action, `${what}: who, what, when, where`);
    return e;
  }

  test('the API has routes, and every one is protected or on the short public list', () => {
    assert.ok(routes.length > 40, `found ${routes.length} routes`);
    for (const r of routes) {
      const key = `${r.method} ${r.url}`;
      if (r.public) assert.ok(PUBLIC_ROUTES.has(key), `${key} is public but not on the list of public routes`);
      else assert.ok(r.permission, `${key} declares a permission`);
    }
  });

  test('no credentials, wrong credentials, an expired session: 401, recorded', async () => {
    for (const r of routes.filter((x) => x.permission)) {
      const path = pathOf(r.url);
      const what = `${r.method} ${r.url}`;
      const none = await deniedAndAudited(await call(t, r.method, path), 401, `${what} without credentials`);
      assert.equal(none.action, 'access.denied');
      assert.equal(none.details.permission, r.permission);
      await deniedAndAudited(
        await call(t, r.method, path, undefined, { authorization: 'Bearer tp_' + 'x'.repeat(43) }),
        401,
        `${what} with a wrong key`,
      );
      await deniedAndAudited(
        await call(t, r.method, path, undefined, { authorization: 'Bearer tps_' + 'y'.repeat(43) }),
        401,
        `${what} with a wrong session token`,
      );
      const old = await expired.req(r.method, path);
      const e = await deniedAndAudited(old, 401, `${what} with an expired session`);
      assert.equal(old.body.error.code, 'session_expired');
      assert.equal(e.details.code, 'session_expired');
    }
  });

  test('every permission but the one needed: 403, recorded', async () => {
    for (const r of routes.filter((x) => x.permission)) {
      const others = PERMISSIONS.filter((p) => p !== r.permission);
      const k = await createApiKey(t.db, { name: `all but ${r.permission}`, merchantId: null, permissions: others });
      const res = await call(t, r.method, pathOf(r.url), undefined, { authorization: `Bearer ${k.key}` });
      const e = await deniedAndAudited(res, 403, `${r.method} ${r.url} without ${r.permission}`);
      assert.equal(e.actor.id, k.id, 'the record names the key that tried');
    }
  });

  test("another merchant's resource: 404, recorded", async (ctx) => {
    const sample: Record<string, { path?: string; body?: unknown }> = {
      'GET /v1/merchants/:id': {},
      'PATCH /v1/merchants/:id': { body: { name: 'Taken over' } },
      'GET /v1/merchants/:id/stores': {},
      'POST /v1/merchants/:id/stores': { body: { name: 'Back room' } },
      'GET /v1/merchants/:id/stores/:store_id': {},
      'GET /v1/terminals': { path: `/v1/terminals?merchant_id=${fx.merchant}` },
      'POST /v1/terminals': { body: { store_id: fx.store } },
      'GET /v1/terminals/:id': {},
      'PATCH /v1/terminals/:id': { body: { label: 'Mine now' } },
      'POST /v1/terminals/:id/mqtt-credentials': {},
      'GET /v1/payments': { path: `/v1/payments?merchant_id=${fx.merchant}` },
      'POST /v1/payments': { body: { terminal_id: fx.terminal, amount: 100, currency: 'INR', method: 'upi_qr' } },
      'GET /v1/payments/:id': {},
      'GET /v1/payments/:id/refunds': {},
      'POST /v1/payments/:id/refunds': { body: { amount: 100 } },
      'GET /v1/operators/:id': {},
      'PATCH /v1/operators/:id': { body: { name: 'Renamed' } },
      'DELETE /v1/operators/:id': {},
      'POST /v1/operators': {
        body: { email: uniqueEmail('x'), name: 'Intruder', roles: ['viewer'], merchant_id: fx.merchant },
      },
      'POST /v1/operators/:id/disable': { body: {} },
      'POST /v1/operators/:id/enable': {},
      'POST /v1/operators/:id/unlock': {},
      'POST /v1/operators/:id/reset-password': {},
      'POST /v1/operators/:id/reset-mfa': {},
      'GET /v1/api-keys': { path: `/v1/api-keys?merchant_id=${fx.merchant}` },
      'POST /v1/api-keys': { body: { name: 'x', merchant_id: fx.merchant, permissions: ['payments:read'] } },
      'GET /v1/api-keys/:id': {},
      'POST /v1/api-keys/:id/revoke': { body: {} },
      'POST /v1/api-keys/:id/rotate': { body: {} },
    };
    let checked = 0;
    for (const [key, s] of Object.entries(sample)) {
      const r = routes.find((x) => `${x.method} ${x.url}` === key);
      assert.ok(r, `${key} is registered`);
      // Merchant B's key where a key may act; merchant B's own staff for people's routes.
      const viaKey = KEY_GRANTABLE_PERMISSIONS.includes(r!.permission!);
      const path = s.path ?? pathOf(r!.url);
      const res = viaKey
        ? await call(t, r!.method, path, s.body, { authorization: `Bearer ${keyB}` })
        : await staffB.req(r!.method, path, s.body);
      const e = await deniedAndAudited(res, 404, `${key} by merchant B`);
      assert.equal(e.details.other_merchant_id, fx.merchant, `${key}: the record says whose resource was asked for`);
      checked++;
    }
    // Routes with a resource in the path that this table does not cover yet, listed for the record.
    const uncovered = routes.filter(
      (r) => r.permission && /:/.test(r.url) && !sample[`${r.method} ${r.url}`] && !r.url.startsWith('/v1/audit/'),
    );
    if (uncovered.length)
      ctx.diagnostic(`no cross-merchant sample yet: ${uncovered.map((r) => `${r.method} ${r.url}`).join(', ')}`);
    assert.ok(checked >= 29);
    // And the data is unchanged: merchant A's merchant still has its name.
    assert.equal((await t.request('GET', `/v1/merchants/${fx.merchant}`)).body.name, 'Shop A');
  });

  /** As the admin key, or, where only a person may act (403 for a key), as an operator with every role. */
  let root: Session | undefined;
  async function asAnyone(method: string, path: string, rawBody?: string): Promise<Res> {
    const r = await httpJson(t.url + path, method, rawBody, { authorization: `Bearer ${t.adminKey}` });
    if (r.status !== 403) return r;
    root ??= await signIn(t, clock, await createOperator(t, { roles: [...ROLE_NAMES] }));
    return httpJson(t.url + path, method, rawBody, {
      cookie: `${SESSION_COOKIE}=${root.token}`,
      'x-csrf-token': root.csrf,
    });
  }

  // Hostile characters in every string the API reads: each string field of each body (filled
  // in from the route's own schema), each query parameter and each path parameter, with a NUL
  // (PostgreSQL cannot store it), other C0 controls, DEL and an unpaired surrogate. Any 5xx
  // fails; a NUL that reaches a handler at all is a failure too (it must stop at the door).
  test('control characters in every string field, query parameter and path parameter: never a 5xx', async () => {
    const HOSTILE = ['a\u0000b', '\u0001\u001f', 'x\u001b[2J', 'del\u007f', 'half \ud800 pair'];
    // Query strings arrive percent-encoded; %ED%A0%80 is the UTF-8 form of a lone surrogate.
    const HOSTILE_QUERY = ['a%00b', '%01%1F', 'x%1B%5B2J', 'del%7F', 'half%20%ED%A0%80%20pair'];
    const ajv = new Ajv.default({ strict: false });
    addFormats.default(ajv);
    const known: Record<string, () => unknown> = {
      terminal_id: () => fx.terminal,
      store_id: () => fx.store,
      merchant_id: () => fx.merchant,
      payment_id: () => fx.payment,
      email: () => uniqueEmail('fuzz'),
      vpa: () => 'asha.fuzz@simbank',
      payer_vpa: () => 'asha.fuzz@okaxis',
      currency: () => 'INR',
      mcc: () => '5411',
      acquiring_bank: () => 'SIMBANK',
      amount: () => 100,
      password: () => 'correct-Horse-battery-9',
      name: () => 'Fuzz',
      label: () => 'Till',
      city: () => 'Pune',
    };
    const CANDIDATES = [
      'x',
      'abc',
      'Fuzz Name',
      'SIMBANK',
      '5411',
      'INR',
      '2025-01-01T00:00:00.000Z',
      'https://example.com/x',
      'asha.fuzz@okaxis',
      '123456',
    ];
    /** A value that satisfies `schema` as far as a generic walk can: known names first, then candidates. */
    function sample(schema: any, name = ''): unknown {
      if (!schema || typeof schema !== 'object') return undefined;
      if ('const' in schema) return schema.const;
      if (Array.isArray(schema.enum)) return schema.enum[0];
      const alt = schema.anyOf ?? schema.oneOf;
      if (Array.isArray(alt)) return sample(alt.find((x: any) => x.type !== 'null') ?? alt[0], name);
      const fits = (v: unknown) => ajv.validate(schema, v);
      if (known[name]) {
        const v = known[name]();
        if (fits(v)) return v;
      }
      switch (schema.type) {
        case 'object': {
          const o: Record<string, unknown> = {};
          for (const [k, sub] of Object.entries<any>(schema.properties ?? {})) {
            const v = sample(sub, k);
            if (v !== undefined) o[k] = v;
          }
          return o;
        }
        case 'array': {
          const item = sample(schema.items, name);
          return item === undefined ? [] : Array.from({ length: Math.max(1, schema.minItems ?? 1) }, () => item);
        }
        case 'integer':
        case 'number':
          return Math.max(schema.minimum ?? 1, Math.min(100, schema.maximum ?? 100));
        case 'boolean':
          return false;
        case 'string':
          return CANDIDATES.find(fits) ?? 'x';
        default:
          return undefined;
      }
    }
    /** Paths (as key lists) of every string in `v`. */
    function stringPaths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
      if (typeof v === 'string') return [at];
      if (Array.isArray(v)) return v.flatMap((x, i) => stringPaths(x, [...at, i]));
      if (v && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => stringPaths(x, [...at, k]));
      return [];
    }
    const setAt = (o: any, path: (string | number)[], value: string) => {
      const copy = structuredClone(o);
      let cur = copy;
      for (const k of path.slice(0, -1)) cur = cur[k];
      cur[path[path.length - 1]] = value;
      return copy;
    };
    const failures: string[] = [];
    let sent = 0;
    let refusedAtTheDoor = 0;
    const send = async (what: string, method: string, path: string, body?: unknown, nul = false) => {
      const r = await asAnyone(method, path, body === undefined ? undefined : JSON.stringify(body));
      sent++;
      if (r.status >= 500) failures.push(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
      if (r.body?.error?.code === 'invalid_characters') refusedAtTheDoor++;
      else if (nul && r.status < 300) failures.push(`${what}: a NUL was accepted (${r.status})`);
    };
    for (const r of routes) {
      const path = pathOf(r.url);
      const what = `${r.method} ${r.url}`;
      const body = r.schema?.body ? sample(r.schema.body) : undefined;
      for (const p of stringPaths(body)) {
        for (const h of HOSTILE)
          await send(
            `${what} body.${p.join('.')}=${JSON.stringify(h)}`,
            r.method,
            path,
            setAt(body, p, h),
            h.includes('\u0000'),
          );
      }
      const q = (r.schema?.querystring as any)?.properties ?? {};
      for (const name of Object.keys(q)) {
        for (const h of HOSTILE_QUERY)
          await send(`${what} ?${name}=${h}`, r.method, `${path}?${name}=${h}`, body, h.includes('%00'));
      }
      const segments = path.split('/');
      for (const [i, seg] of r.url.split('/').entries()) {
        if (!seg.startsWith(':')) continue;
        const bad = [...segments];
        bad[i] = `${segments[i]}%00`;
        await send(`${what} ${seg}=…%00`, r.method, bad.join('/'), body, true);
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(refusedAtTheDoor > 100, `${refusedAtTheDoor} of ${sent} were refused as invalid_characters`);
    // The cases the issue names, with the code a client can rely on.
    for (const [method, path, body] of [
      ['POST', '/v1/merchants', { name: 'a\u0000b', vpa: 'nul.shop@simbank', mcc: '5411', acquiring_bank: 'SIMBANK' }],
      ['POST', `/v1/payments/${fx.payment}/refunds`, { amount: 100, reason: 'a\u0000b' }],
      ['GET', `/v1/payments?terminal_id=%00`, undefined],
    ] as const) {
      const res = await t.request(method, path, body);
      assert.equal(res.status, 400, `${method} ${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'invalid_characters');
    }
    const login = await call(t, 'POST', '/v1/auth/login', { email: 'a\u0000b@example.com', password: 'x' });
    assert.equal(login.status, 400, JSON.stringify(login.body));
    assert.equal(login.body.error.code, 'invalid_characters');
  });

  test('a body with a key twice is refused on every route that reads a body, before it is acted on', async () => {
    let checked = 0;
    // Banks' callbacks are read over the raw bytes and checked for the bank's signature first: an
    // unsigned body is refused (401) before it is parsed. A signed one with a key twice: below.
    const signedByBank = (r: RouteInfo) => PUBLIC_ROUTES.has(`${r.method} ${r.url}`) && r.url.endsWith('/callbacks');
    for (const r of routes.filter((x) => ['POST', 'PUT', 'PATCH'].includes(x.method) && !signedByBank(x))) {
      const res = await asAnyone(r.method, pathOf(r.url), '{"amount":100,"amount":20000}');
      assert.equal(res.status, 400, `${r.method} ${r.url}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'malformed_json', `${r.method} ${r.url}`);
      checked++;
    }
    assert.ok(checked > 20, `${checked} routes`);
    const dup =
      '{"type":"payment","txn_ref":"TP0000000000000000000000000000000","status":"success","status":"failure"}';
    const bank = t.config.banks.find((b) => b.code === 'SIMBANK')!;
    const signed = await httpJson(t.url + '/v1/banks/SIMBANK/callbacks', 'POST', dup, {
      'content-type': 'application/json',
      ...signRequest(bank.secret, dup, clock.now()),
    });
    assert.equal(signed.status, 400, JSON.stringify(signed.body));
    assert.equal(signed.body.error.code, 'malformed_json');
    // The issue's case: the last key does not win, no payment is made.
    const before = Number((await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM payments.payments`)).rows[0].n);
    const res = await t.request(
      'POST',
      '/v1/payments',
      `{"terminal_id":"${fx.terminal}","amount":100,"currency":"INR","method":"upi_qr","amount":20000}`,
    );
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.details.duplicate_key, '$.amount');
    assert.equal(
      Number((await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM payments.payments`)).rows[0].n),
      before,
    );
  });
});
