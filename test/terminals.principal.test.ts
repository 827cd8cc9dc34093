import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { startAppGateway, type TestGateway } from './helpers/terminals.ts';
import { connectTerminal, TerminalRequestError, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';
import { issueMqttSecret } from '../src/modules/terminals/index.ts';
import { canAccessMerchant, merchantScope, terminalPrincipal, type Principal } from '../src/platform/principal.ts';
import { actorOf, type AuditRecord } from '../src/modules/audit/index.ts';
import { isAppError } from '../src/platform/errors.ts';

// The terminal principal: a terminal acts for the merchant it belongs to (read when it connected),
// only on its own payments, and only while it is active; what it reads is in the audit trail.

test('a terminal principal is scoped to its merchant, never platform-wide', () => {
  const p = terminalPrincipal('trm_a', 'mer_a');
  assert.equal(p.kind, 'terminal');
  assert.equal(merchantScope(p), 'mer_a');
  assert.equal(merchantScope(p, 'mer_a'), 'mer_a');
  assert.throws(
    () => merchantScope(p, 'mer_b'),
    (e: unknown) => isAppError(e) && e.code === 'merchant_not_found',
  );
  assert.equal(canAccessMerchant(p, 'mer_a'), true);
  assert.equal(canAccessMerchant(p, 'mer_b'), false);
  assert.deepEqual(actorOf(p), { type: 'terminal', id: 'trm_a', merchant_id: 'mer_a' });
  // A terminal without a merchant (which terminalPrincipal refuses to build) sees nothing, rather than everything.
  assert.throws(() => terminalPrincipal('trm_a', ''));
  const broken = { ...p, merchantId: null } as unknown as Principal;
  assert.throws(
    () => merchantScope(broken),
    (e: unknown) => isAppError(e) && e.code === 'merchant_not_found',
  );
  assert.equal(canAccessMerchant(broken, 'mer_a'), false);
  // A platform key still sees every merchant.
  const platform: Principal = { kind: 'api_key', id: 'key_p', merchantId: null, permissions: new Set() };
  assert.equal(canAccessMerchant(platform, 'mer_b'), true);
  assert.equal(merchantScope(platform, 'mer_b'), 'mer_b');
});

describe('terminal principal over MQTT', { timeout: 60_000 }, () => {
  let t: TestApp;
  let gw: TestGateway;
  const clients: TerminalClient[] = [];
  let merchantA: string;
  let storeA: string;
  let termA1: string;
  let termB1: string;

  before(async () => {
    t = await startTestApp();
    // No revocation sweep during these tests: they check what a disabled terminal is told on the
    // connection it still has, before the sweep closes it (that closing is tested in
    // terminals.test.ts); with the testkit's 100 ms sweep the session could vanish mid-test.
    gw = await startAppGateway(t, { revocationSweepMs: 3_600_000 });
    const a = await t.seedMerchant('Kirana A');
    const b = await t.seedMerchant('Kirana B');
    merchantA = a.merchant.id;
    storeA = a.store.id;
    termA1 = a.terminal.id;
    termB1 = b.terminal.id;
    const prog = await t.request('POST', '/v1/rewards/programs', {
      merchant_id: merchantA,
      name: 'A Points',
      point_value_paise: 25,
      earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
    });
    assert.equal(prog.status, 201, JSON.stringify(prog.body));
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await gw.stop();
    await t.close();
  });

  async function connect(terminalId: string) {
    const { password } = await issueMqttSecret(t.db, terminalId, 'test');
    const c = await connectTerminal({ url: gw.plainUrl!, terminalId, password, requestTimeoutMs: 5000, retries: 0 });
    clients.push(c);
    return c;
  }
  async function newTerminal(storeId: string) {
    const r = await t.request('POST', '/v1/terminals', { store_id: storeId, label: 'Till' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  }
  const countPayments = async (terminalId: string) =>
    (
      await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments.payments WHERE terminal_id = $1`, [
        terminalId,
      ])
    ).rows[0].n;
  const recordOf = async (requestId: string): Promise<AuditRecord | undefined> => {
    const r = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE record::jsonb -> 'origin' ->> 'request_id' = $1`,
      [requestId],
    );
    assert.ok(r.rows.length <= 1, 'one record per read');
    return r.rows[0] && (JSON.parse(r.rows[0].record) as AuditRecord);
  };
  const notFound = (e: unknown) => e instanceof TerminalRequestError && e.code === 'payment_not_found';
  const inactive = (e: unknown) => e instanceof TerminalRequestError && e.code === 'terminal_inactive';

  test("a terminal sees neither another merchant's payments nor another terminal's", async () => {
    const a1 = await connect(termA1);
    const termA2 = await newTerminal(storeA);
    const a2 = await connect(termA2);
    const b1 = await connect(termB1);
    const pa = await a1.createPayment({ method: 'upi_qr', amount: 5000, currency: 'INR' });
    const pb = await b1.createPayment({ method: 'upi_qr', amount: 7000, currency: 'INR' });
    assert.equal(pa.terminal_id, termA1);
    assert.equal(pb.terminal_id, termB1);
    const paid = await t.payQr(pb.upi_uri!, 'ravi.kumar@okaxis', 'success');
    assert.equal(paid.status, 200, JSON.stringify(paid.body));

    // Another merchant's payment, and another terminal's of the same merchant: "not found", never "forbidden".
    await assert.rejects(a1.getPayment(pb.id), notFound);
    await assert.rejects(a1.refundPayment(pb.id, 100), notFound);
    await assert.rejects(b1.getPayment(pa.id), notFound);
    await assert.rejects(a2.getPayment(pa.id), notFound);
    assert.deepEqual(await a2.listRecentPayments(), []);
    assert.deepEqual(
      (await a1.listRecentPayments()).map((p) => p.id),
      [pa.id],
    );
    assert.deepEqual(
      (await b1.listRecentPayments()).map((p) => p.id),
      [pb.id],
    );
    assert.equal(
      (await t.request('GET', `/v1/payments/${pb.id}`)).body.refunded_amount ?? 0,
      0,
      'nothing was refunded',
    );
  });

  test('a disabled terminal is refused on every request, on the connection it already had', async () => {
    const id = await newTerminal(storeA);
    const c = await connect(id);
    const p = await c.createPayment({ method: 'upi_qr', amount: 2500, currency: 'INR' });
    assert.equal((await c.ping()).pong, true);
    const r = await t.request('PATCH', `/v1/terminals/${id}`, { status: 'disabled' });
    assert.equal(r.status, 200, JSON.stringify(r.body));

    await assert.rejects(c.ping(), inactive);
    await assert.rejects(c.createPayment({ method: 'upi_qr', amount: 2500, currency: 'INR' }), inactive);
    await assert.rejects(c.getPayment(p.id), inactive);
    await assert.rejects(c.getPayment('pay_doesnotexist000000000000'), inactive, 'inactive wins over not found');
    await assert.rejects(c.listRecentPayments(), inactive);
    await assert.rejects(c.refundPayment(p.id, 100), inactive);
    await assert.rejects(c.request('rewards.balance', { vpa: 'asha.rao@okhdfc' }), inactive);
    await assert.rejects(c.request('rewards.quote', { amount: 1000, vpa: 'asha.rao@okhdfc' }), inactive);
    assert.equal(await countPayments(id), 1, 'nothing new was created');
    const reads = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit.events WHERE actor_id = $1 AND action = 'data.read'`,
      [id],
    );
    assert.equal(reads.rows[0].n, 0, 'no data left, so no read was recorded');

    // Enabled again, it works again on the same connection.
    assert.equal((await t.request('PATCH', `/v1/terminals/${id}`, { status: 'active' })).status, 200);
    assert.equal((await c.getPayment(p.id)).id, p.id);
  });

  test("terminal reads are in the audit trail's data-access log, as the API's GETs are", async () => {
    const c = await connect(termA1);
    const p = await c.createPayment({ method: 'upi_qr', amount: 3100, currency: 'INR' }, { id: 'audit-create-1' });

    await c.getPayment(p.id, { id: 'audit-get-1' });
    const get = await recordOf('audit-get-1');
    assert.ok(get, 'payment.get was recorded');
    assert.equal(get.action, 'data.read');
    assert.equal(get.outcome, 'success');
    assert.deepEqual(get.actor, { type: 'terminal', id: termA1, merchant_id: merchantA });
    assert.deepEqual(get.resource, { type: 'payments', id: p.id, merchant_id: null });
    assert.deepEqual(
      { ...get.origin, ip: null },
      { ip: null, request_id: 'audit-get-1', terminal_id: termA1, method: 'MQTT', route: 'payment.get' },
    );
    assert.match(get.origin.ip ?? '', /127\.0\.0\.1/, 'where the terminal connects from');
    assert.deepEqual(get.details, { permission: 'payments:read', ids: [p.id], count: 1, query: [] });

    const list = await c.listRecentPayments({ limit: 3 }, { id: 'audit-list-1' });
    const lr = await recordOf('audit-list-1');
    assert.ok(lr, 'payment.list_recent was recorded');
    assert.equal(lr.action, 'data.read');
    assert.equal(lr.origin.route, 'payment.list_recent');
    assert.deepEqual(lr.resource, { type: 'payments', id: null, merchant_id: null });
    assert.deepEqual(lr.details, {
      permission: 'payments:read',
      ids: list.map((x) => x.id),
      count: list.length,
      query: ['limit'],
    });
    assert.ok((lr.details.ids as string[]).includes(p.id));

    await c.request('rewards.balance', { vpa: 'asha.rao@okhdfc' }, { id: 'audit-balance-1' });
    const bal = await recordOf('audit-balance-1');
    assert.ok(bal, 'rewards.balance was recorded');
    assert.equal(bal.action, 'data.read');
    assert.equal(bal.actor.type, 'terminal');
    assert.equal(bal.origin.route, 'rewards.balance');
    assert.equal(bal.resource.type, 'rewards');
    assert.equal(bal.details.permission, 'rewards:read');
    assert.deepEqual(bal.details.query, ['vpa']);
    const raw = await t.db.query<{ record: string }>(`SELECT record FROM audit.events WHERE id = $1`, [bal.id]);
    assert.ok(!raw.rows[0].record.includes('asha.rao'), "the customer's VPA is not in the record");

    // A refused read is not a data read; creating is recorded by the payments service, not as a read.
    await assert.rejects(c.getPayment('pay_doesnotexist000000000000', { id: 'audit-get-2' }), notFound);
    assert.equal(await recordOf('audit-get-2'), undefined);
    assert.equal(await recordOf('audit-create-1'), undefined);
    const created = await t.db.query<{ record: string; actor_id: string }>(
      `SELECT record, actor_id FROM audit.events WHERE action = 'payment.created' AND resource_id = $1`,
      [p.id],
    );
    assert.equal(created.rows.length, 1);
    // The terminal that asked is the actor, not the system.
    assert.equal(JSON.parse(created.rows[0].record).actor.type, 'terminal');
    assert.equal(created.rows[0].actor_id, p.terminal_id);

    // The records are part of the tamper-evident trail like any other.
    await t.app.services.audit.seal();
    const v = await t.app.services.audit.verify();
    assert.equal(v.ok, true, JSON.stringify(v.first));
  });
});
