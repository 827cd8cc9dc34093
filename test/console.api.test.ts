import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import Fastify from 'fastify';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { createOperator, signIn, type Session } from './helpers/operators.ts';
import { registerConsole } from '../src/http/console.ts';
import { CONSOLE_CSP } from '../src/http/edge/index.ts';
import { paymentIdFloor } from '../src/modules/payments/index.ts';
import { systemClock } from '../src/platform/clock.ts';

// What the console needs from the server: the overview's aggregates and a payment's timeline
// (same permission and merchant scope as reading payments), and the console's files served with
// the strict CSP, cached right, and a page for every app route.

describe('console read endpoints', () => {
  let t: TestApp;
  let a: Awaited<ReturnType<TestApp['seedMerchant']>>;
  let b: Awaited<ReturnType<TestApp['seedMerchant']>>;
  let staffA: Session;
  let viewer: Session;
  let paidId: string;
  before(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
    a = await t.seedMerchant('Shop A');
    b = await t.seedMerchant('Shop B');
    const pay = async (terminal: string, amount: number, paid: boolean) => {
      const p = await t.request('POST', '/v1/payments', {
        terminal_id: terminal,
        amount,
        currency: 'INR',
        method: 'upi_qr',
      });
      assert.equal(p.status, 201);
      if (paid) {
        await t.payQr(p.body.upi_uri);
        await t.eventually(
          async () => (await t.request('GET', `/v1/payments/${p.body.id}`)).body.status === 'succeeded',
        );
      }
      return p.body.id as string;
    };
    paidId = await pay(a.terminal.id, 14900, true);
    await pay(a.terminal.id, 5000, false);
    await pay(b.terminal.id, 7000, true);
    staffA = await signIn(
      t,
      systemClock,
      await createOperator(t, { roles: ['support', 'refunds'], merchantId: a.merchant.id }),
    );
    viewer = await signIn(t, systemClock, await createOperator(t, { roles: ['viewer'] }));
    const refund = await staffA.req('POST', `/v1/payments/${paidId}/refunds`, { amount: 4900 });
    assert.equal(refund.status, 201);
    await t.eventually(
      async () => (await t.request('GET', `/v1/payments/${paidId}`)).body.status === 'partially_refunded',
    );
  });
  after(() => t.close());

  test('stats: the platform sees every merchant; per-minute counts, rates by bank, completion percentiles, backlog', async () => {
    const s = await t.request('GET', '/v1/payments/stats?window_minutes=60');
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(
      s.body.per_minute.reduce((n: number, m: { created: number }) => n + m.created, 0),
      3,
    );
    assert.equal(
      s.body.per_minute.reduce((n: number, m: { succeeded: number }) => n + m.succeeded, 0),
      2,
    );
    const bank = s.body.by_bank.find((x: { bank_code: string }) => x.bank_code === 'SIMBANK');
    assert.deepEqual(
      { completed: bank.completed, succeeded: bank.succeeded, success_rate: bank.success_rate },
      { completed: 2, succeeded: 2, success_rate: 1 },
    );
    assert.equal(s.body.completion_ms.count, 2);
    assert.ok(s.body.completion_ms.p95 >= s.body.completion_ms.p50 && s.body.completion_ms.p50 >= 0);
    assert.equal(s.body.pending.count, 1);
    assert.ok(s.body.pending.oldest_created_at);
    assert.equal(s.body.active_terminals, 2);
  });

  test('stats: merchant staff see their merchant only, and asking for another answers 404', async () => {
    const mine = await staffA.req('GET', '/v1/payments/stats');
    assert.equal(mine.status, 200);
    assert.equal(
      mine.body.per_minute.reduce((n: number, m: { created: number }) => n + m.created, 0),
      2,
    );
    const other = await staffA.req('GET', `/v1/payments/stats?merchant_id=${b.merchant.id}`);
    assert.equal(other.status, 404);
    assert.equal((await viewer.req('GET', '/v1/payments/stats')).status, 403, 'a viewer holds no payments:read');
    assert.equal((await t.request('GET', '/v1/payments/stats?window_minutes=1')).status, 400, 'the window has bounds');
  });

  test('timeline: state history and the ledger entries of the payment and its refund, which balance', async () => {
    const tl = await staffA.req('GET', `/v1/payments/${paidId}/timeline`);
    assert.equal(tl.status, 200, JSON.stringify(tl.body));
    assert.deepEqual(tl.body.events.map((e: { to_status: string }) => e.to_status).slice(-2), [
      'succeeded',
      'partially_refunded',
    ]);
    const kinds = tl.body.ledger_entries
      .filter((e: { book: string }) => e.book === 'INR')
      .map((e: { kind: string }) => e.kind);
    assert.deepEqual(kinds, ['payment.succeeded', 'refund.succeeded']);
    for (const e of tl.body.ledger_entries)
      assert.equal(
        e.postings.reduce((n: number, p: { amount: number }) => n + p.amount, 0),
        0,
        `${e.kind} balances`,
      );
    const payment = tl.body.ledger_entries.find((e: { kind: string }) => e.kind === 'payment.succeeded');
    assert.ok(payment.postings.some((p: { amount: number }) => p.amount === 14900));
  });

  test("timeline: another merchant's payment is a 404 for merchant staff, like the payment itself", async () => {
    const theirs = (await t.request('GET', `/v1/payments?merchant_id=${b.merchant.id}`)).body.data[0].id;
    assert.equal((await staffA.req('GET', `/v1/payments/${theirs}/timeline`)).status, 404);
    assert.equal((await staffA.req('GET', `/v1/payments/${theirs}`)).status, 404);
    assert.equal((await t.request('GET', '/v1/payments/pay_nope/timeline')).status, 404);
  });

  test("terminal security: certificates and violations of one's own terminal; another merchant's is a 404", async () => {
    await t.db.query(
      `INSERT INTO terminals.violations (terminal_id, kind, detail) VALUES ($1, 'acl_publish', 'topic of another terminal')`,
      [a.terminal.id],
    );
    const mine = await staffA.req('GET', `/v1/terminals/${a.terminal.id}/security`);
    assert.equal(mine.status, 200, JSON.stringify(mine.body));
    assert.deepEqual(mine.body.certificates, []);
    assert.deepEqual(
      mine.body.violations.map((v: { kind: string }) => v.kind),
      ['acl_publish'],
    );
    assert.equal((await staffA.req('GET', `/v1/terminals/${b.terminal.id}/security`)).status, 404);
    assert.equal((await t.request('GET', '/v1/terminals/trm_nope/security')).status, 404);
  });

  test('payment ids bound creation time: the floor of a time sorts before ids made after it', () => {
    const at = new Date('2026-12-02T10:00:00Z');
    assert.equal(paymentIdFloor(at), 'pay_' + at.getTime().toString(16).padStart(12, '0') + '0'.repeat(20));
    assert.ok(paymentIdFloor(at) < 'pay_' + (at.getTime() + 1).toString(16).padStart(12, '0') + '0'.repeat(20));
  });
});

describe('serving the console', () => {
  const dist = mkdtempSync(join(tmpdir(), 'console-dist-'));
  mkdirSync(join(dist, 'assets'));
  writeFileSync(
    join(dist, 'index.html'),
    '<!doctype html><title>x</title><script type="module" src="/console/assets/app-abc123.js"></script>',
  );
  writeFileSync(join(dist, 'assets', 'app-abc123.js'), 'console.log("hello");'.repeat(200));
  const app = Fastify();
  registerConsole(app, { distDir: dist });
  const empty = Fastify();
  registerConsole(empty, { distDir: join(dist, 'nope') });
  after(async () => {
    await app.close();
    await empty.close();
  });

  test('pages: index.html with the strict CSP, never cached; app routes get the same page', async () => {
    for (const url of ['/console/', '/console/payments/pay_0123', '/console/access']) {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 200, url);
      assert.match(r.headers['content-type'] as string, /^text\/html/);
      assert.equal(r.headers['content-security-policy'], CONSOLE_CSP);
      assert.match(CONSOLE_CSP, /script-src 'self';/);
      assert.doesNotMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/);
      assert.equal(r.headers['cache-control'], 'no-cache');
    }
    assert.equal((await app.inject({ url: '/console' })).headers.location, '/console/');
  });

  test('assets: hashed files cached for a year, gzip when asked, 304 on a matching ETag, 404 for a missing one', async () => {
    const r = await app.inject({ url: '/console/assets/app-abc123.js', headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.match(r.headers['cache-control'] as string, /immutable/);
    assert.match(gunzipSync(r.rawPayload).toString(), /^console\.log/);
    const again = await app.inject({
      url: '/console/assets/app-abc123.js',
      headers: { 'if-none-match': r.headers.etag as string },
    });
    assert.equal(again.statusCode, 304);
    assert.equal((await app.inject({ url: '/console/assets/old-123.js' })).statusCode, 404);
    // Only files read at start are ever sent: a path that climbs out is simply not one of them.
    assert.equal((await app.inject({ url: '/console/../package.json' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/console/%2e%2e/%2e%2e/package.json' })).statusCode, 404);
  });

  test('without a build, /console says how to build it', async () => {
    const r = await empty.inject({ url: '/console/' });
    assert.equal(r.statusCode, 503);
    assert.match(r.body, /npm start/);
  });
});
