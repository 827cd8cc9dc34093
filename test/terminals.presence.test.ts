import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { startAppGateway, type TestGateway } from './helpers/terminals.ts';
import { until } from '../src/modules/terminals/testkit.ts';
import { connectTerminal, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';
import { loadEnrollment, topics } from '../src/modules/terminals/index.ts';
import { createPresenceWriter, parseStatus } from '../src/modules/terminals/presence.ts';
import { createLogger } from '../src/platform/log.ts';

// Presence on the embedded broker: a terminal that connects is online, one whose socket dies is
// offline (the broker sees the connection go; the SDK's will is published and retained on its
// status topic), last_seen moves with what the terminal does, and the API shows it (the terminal's
// JSON, the online filter, the Overview's count). Also the writer's ordering rule, and the topic
// ACL on status topics. On PGlite, or on the PostgreSQL at TEST_DATABASE_URL.

describe('terminal presence (embedded broker)', { timeout: 60_000 }, () => {
  let t: TestApp;
  let gw: TestGateway;
  let storeId: string;
  let merchantId: string;
  const clients: (TerminalClient | MqttClient)[] = [];

  before(async () => {
    t = await startTestApp();
    // last_seen written for every request here (0 ms), so the test sees it move at once.
    gw = await startAppGateway(t, { presenceLastSeenEveryMs: 0 });
    const s = await t.seedMerchant('Presence Provisions');
    storeId = s.store.id;
    merchantId = s.merchant.id;
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => ('endAsync' in c ? c.endAsync(true) : c.close())));
    await gw.stop();
    await t.close();
  });

  async function enrolled() {
    const r = await t.request('POST', '/v1/terminals', { store_id: storeId, label: 'Till' });
    assert.equal(r.status, 201);
    assert.equal(r.body.online, false);
    assert.equal(r.body.last_seen_at, null);
    const { enrollTerminal } = await loadEnrollment();
    return enrollTerminal(t.db, { pkiDir: gw.pkiDir, terminalId: r.body.id });
  }
  async function connect(
    b: Awaited<ReturnType<typeof enrolled>>,
    extra: Partial<Parameters<typeof connectTerminal>[0]> = {},
  ) {
    const c = await connectTerminal({
      url: gw.tlsUrl!,
      terminalId: b.terminalId,
      cert: b.certPem,
      key: b.keyPem,
      ca: b.caPem,
      servername: 'localhost',
      reconnectPeriodMs: 0,
      requestTimeoutMs: 3000,
      ...extra,
    });
    clients.push(c);
    return c;
  }
  const terminal = async (id: string) => (await t.request('GET', `/v1/terminals/${id}`)).body;
  const counts = async () => (await t.request('GET', `/v1/terminals/presence?merchant_id=${merchantId}`)).body;
  /** The counts are reused for up to 5 s per scope (terminals.routes.ts): they become `want`. */
  async function countsBecome(want: Record<string, number>) {
    const same = (c: Record<string, number>) => JSON.stringify(c) === JSON.stringify(want);
    const got = await until(async () => {
      const c = await counts();
      return same(c) ? c : undefined;
    }, 8000);
    assert.deepEqual(got ?? (await counts()), want);
  }

  test('connect -> online; requests move last_seen; the socket dies -> offline', async () => {
    const b = await enrolled();
    const before = await counts();
    const term = await connect(b);
    const online = await until(async () => {
      const r = await terminal(b.terminalId);
      return r.online ? r : undefined;
    });
    assert.ok(online, 'online after connect');
    assert.ok(online.last_seen_at, 'last_seen set at connect');
    await countsBecome({
      ...before,
      online: before.online + 1,
      never_seen: before.never_seen - 1,
    });
    const listed = await t.request('GET', `/v1/terminals?store_id=${storeId}&online=true`);
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.data.map((x: { id: string }) => x.id),
      [b.terminalId],
    );
    const offlineList = await t.request('GET', `/v1/terminals?store_id=${storeId}&online=false`);
    assert.ok(!offlineList.body.data.some((x: { id: string }) => x.id === b.terminalId));

    // A request later: last_seen moves forward.
    await new Promise((r) => setTimeout(r, 30));
    await term.ping();
    const moved = await until(async () => {
      const r = await terminal(b.terminalId);
      return r.last_seen_at > online.last_seen_at ? r : undefined;
    });
    assert.ok(moved, 'last_seen moved with the ping');

    // The socket dies (no DISCONNECT): the broker loses the connection and the terminal is offline.
    (term as unknown as { mqtt: MqttClient }).mqtt.stream.destroy();
    const offline = await until(async () => {
      const r = await terminal(b.terminalId);
      return r.online ? undefined : r;
    });
    assert.ok(offline, 'offline after the socket died');
    assert.ok(offline.last_seen_at >= moved.last_seen_at);
    await countsBecome({ ...before, offline: before.offline + 1, never_seen: before.never_seen - 1 });
  });

  test('a closed client is offline; a terminal without presence messages is tracked by the broker alone', async () => {
    const b = await enrolled();
    const term = await connect(b, { presence: false });
    assert.ok(await until(async () => (await terminal(b.terminalId)).online));
    await term.close();
    assert.ok(await until(async () => !(await terminal(b.terminalId)).online));
  });

  test("a reconnect that takes over the old session stays online: the old connection's offline is older", async () => {
    const b = await enrolled();
    const first = await connect(b);
    assert.ok(await until(async () => (await terminal(b.terminalId)).online));
    const second = await connect(b);
    // The broker closed the first connection (same client id); wait for that to be seen.
    assert.ok(await until(() => !first.connected));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await terminal(b.terminalId)).online, true);
    await second.close();
    assert.ok(await until(async () => !(await terminal(b.terminalId)).online));
  });

  test('the status topic: only a well-formed status on its own; anything else is refused and recorded', async () => {
    const a = await enrolled();
    const victim = await enrolled();
    const raw = async () => {
      const c = await mqtt.connectAsync(gw.tlsUrl!, {
        clientId: a.terminalId,
        cert: a.certPem,
        key: a.keyPem,
        ca: a.caPem,
        servername: 'localhost',
        protocolVersion: 4,
        reconnectPeriod: 0,
        clean: true,
      });
      clients.push(c);
      return c;
    };
    const violations = async (kind: string) =>
      (
        await t.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM terminals.violations WHERE terminal_id = $1 AND kind = $2`,
          [a.terminalId, kind],
        )
      ).rows[0].n;

    // Another terminal's status: refused, the connection closed, the victim untouched.
    let c = await raw();
    c.publish(topics.statusTopic(victim.terminalId), JSON.stringify({ v: 1, status: 'online', since: Date.now() }), {
      qos: 1,
      retain: true,
    });
    assert.ok(await until(() => !c.connected), 'closed');
    await gw.gateway.recorder.flush();
    assert.ok(await until(async () => (await violations('acl_publish')) >= 1));
    assert.equal((await terminal(victim.terminalId)).online, false);

    // Its own status, but not a status message: refused and recorded as malformed.
    c = await raw();
    c.publish(topics.statusTopic(a.terminalId), 'online', { qos: 1, retain: true });
    assert.ok(await until(() => !c.connected), 'closed');
    await gw.gateway.recorder.flush();
    assert.ok(await until(async () => (await violations('malformed')) >= 1));
  });

  test('revoke over HTTP: credentials revoked, the live session closed (offline), audited; permission and scope enforced', async () => {
    const b = await enrolled();
    const term = await connect(b);
    assert.ok(await until(async () => (await terminal(b.terminalId)).online));
    const path = `/v1/terminals/${b.terminalId}/revoke`;
    assert.equal((await t.request('POST', path, { reason: 'stolen' })).status, 400);
    assert.equal((await t.request('POST', path, {})).status, 400);
    const { createApiKey } = await import('../src/modules/identity/index.ts');
    const other = await t.seedMerchant('Someone Else');
    const otherKey = await createApiKey(t.db, {
      name: 'other merchant',
      merchantId: other.merchant.id,
      permissions: ['terminals:read', 'terminals:write', 'terminals:revoke'],
    });
    const asOther = await fetch(t.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${otherKey.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'lost_or_stolen' }),
    });
    assert.equal(asOther.status, 404, "another merchant's terminal is not found");
    const writeOnly = await createApiKey(t.db, {
      name: 'no revoke',
      merchantId: null,
      permissions: ['terminals:read', 'terminals:write'],
    });
    const noPerm = await fetch(t.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${writeOnly.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'lost_or_stolen' }),
    });
    assert.equal(noPerm.status, 403, 'terminals:write is not enough');

    const r = await t.request('POST', path, { reason: 'lost_or_stolen' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {
      terminal_id: b.terminalId,
      revoked_certificates: [b.serial],
      revoked_secrets: 0,
      crl_required: false,
    });
    assert.ok(await until(() => !term.connected), 'the sweep closed the session');
    assert.ok(await until(async () => !(await terminal(b.terminalId)).online));
    const sec = await t.request('GET', `/v1/terminals/${b.terminalId}/security`);
    assert.equal(sec.body.certificates[0].revoke_reason, 'lost_or_stolen');
    const audit = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE action = 'terminal.credentials_revoked' AND resource_id = $1`,
      [b.terminalId],
    );
    assert.equal(audit.rows.length, 1);
    const rec = JSON.parse(audit.rows[0].record);
    assert.equal(rec.details.reason, 'lost_or_stolen');
    assert.deepEqual(rec.details.serials, [b.serial]);
    // Nothing left to revoke: 200 with empty lists, and the connect is refused.
    const again = await t.request('POST', path, { reason: 'lost_or_stolen' });
    assert.deepEqual(again.body.revoked_certificates, []);
    await assert.rejects(connect(b));
  });

  test('the writer applies a status only if it is later than the one stored, and coalesces', async () => {
    const b = await enrolled();
    const w = createPresenceWriter({
      db: t.db,
      logger: createLogger({ level: 'silent' }),
      source: 'external',
      flushMs: 10_000,
    });
    const row = async () =>
      (
        await t.db.query<{ online: boolean; since_ms: string; last_seen_at: Date }>(
          `SELECT online, since_ms::text, last_seen_at FROM terminals.presence WHERE terminal_id = $1`,
          [b.terminalId],
        )
      ).rows[0];
    const base = Date.now() - 10_000;
    // Connection 2's "online" is written first; connection 1's will arrives after it (another replica, late).
    w.status(b.terminalId, true, base + 2000);
    await w.flush();
    w.status(b.terminalId, false, base + 1000);
    await w.flush();
    assert.equal((await row()).online, true, "an older connection's will does not undo a newer online");
    assert.equal((await row()).since_ms, String(base + 2000));
    // The same connection's offline is later than its online.
    w.status(b.terminalId, false, base + 2000);
    await w.flush();
    assert.equal((await row()).online, false);
    // Many changes between two writes: one row, the latest state.
    w.status(b.terminalId, true, base + 3000);
    w.status(b.terminalId, false, base + 3000);
    w.status(b.terminalId, true, base + 4000);
    assert.equal(w.pendingCount(), 1);
    await w.flush();
    assert.equal((await row()).online, true);
    // A terminal that does not exist is skipped, not a failed batch.
    w.status('trm_00000000000000000000000000000000', true, base);
    w.status(b.terminalId, false, base + 4000);
    await w.close();
    assert.equal((await row()).online, false);
  });

  test('status messages: the exact shape, nothing else', () => {
    assert.deepEqual(parseStatus(Buffer.from('{"v":1,"status":"online","since":1764758400000}')), {
      online: true,
      since: 1764758400000,
    });
    for (const bad of [
      '',
      'online',
      '{"v":2,"status":"online","since":1}',
      '{"v":1,"status":"away","since":1}',
      '{"v":1,"status":"offline","since":-1}',
      '{"v":1,"status":"offline","since":"1"}',
      '{"v":1,"status":"offline"}',
      `{"v":1,"status":"offline","since":1,"pad":"${'x'.repeat(300)}"}`,
    ])
      assert.equal(parseStatus(Buffer.from(bad)), undefined, bad);
  });
});
