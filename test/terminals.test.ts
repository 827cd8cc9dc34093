import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { startAppGateway, type TestGateway } from './helpers/terminals.ts';
import { until } from '../src/modules/terminals/testkit.ts';
import {
  connectTerminal,
  type TerminalRequestError,
  type TerminalClient,
  type PaymentUpdated,
} from '../src/tools/terminal-sdk/index.ts';
import {
  issueMqttSecret,
  revokeTerminalCredentials,
  topics,
  loadEnrollment,
  loadPki,
} from '../src/modules/terminals/index.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { REQUEST_TYPES, PaymentUpdatedEvent, type RequestType } from '../src/modules/terminals/protocol/schemas.ts';

const ajv = new Ajv.default({ strict: false });
addFormats.default(ajv);
/** What the gateway sent matches the schema published in docs/terminal-protocol/. */
function conforms(type: RequestType | 'event', body: unknown) {
  const v = ajv.compile(type === 'event' ? PaymentUpdatedEvent : REQUEST_TYPES[type].response);
  assert.ok(v(body), `${type}: ${JSON.stringify(v.errors)}`);
}

// The terminal gateway on the embedded broker, with mqtt.js (through the SDK, and raw where a
// test must misbehave) as the terminal: mutual TLS with enrolled certificates, development
// secrets, the topic ACL, redelivery, persistent sessions, bad messages. On PGlite, or on the
// PostgreSQL at TEST_DATABASE_URL.

describe('terminal gateway (embedded broker)', { timeout: 60_000 }, () => {
  let t: TestApp;
  let gw: TestGateway;
  let merchantId: string;
  let storeId: string;
  const clients: (TerminalClient | MqttClient)[] = [];

  before(async () => {
    t = await startTestApp();
    gw = await startAppGateway(t);
    const s = await t.seedMerchant('Kirana on Relay Road');
    merchantId = s.merchant.id;
    storeId = s.store.id;
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => ('endAsync' in c ? c.endAsync(true) : c.close())));
    await gw.stop();
    await t.close();
  });

  async function newTerminal(): Promise<string> {
    const r = await t.request('POST', '/v1/terminals', { store_id: storeId, label: 'Till' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id;
  }

  async function enroll(terminalId: string) {
    const { enrollTerminal } = await loadEnrollment();
    return enrollTerminal(t.db, { pkiDir: gw.pkiDir, terminalId });
  }

  async function viaCert(terminalId: string, extra: Partial<Parameters<typeof connectTerminal>[0]> = {}) {
    const b = await enroll(terminalId);
    const c = await connectTerminal({
      url: gw.tlsUrl!,
      terminalId,
      cert: b.certPem,
      key: b.keyPem,
      ca: b.caPem,
      servername: 'localhost',
      requestTimeoutMs: 3000,
      ...extra,
    });
    clients.push(c);
    return c;
  }

  async function viaSecret(terminalId: string, extra: Partial<Parameters<typeof connectTerminal>[0]> = {}) {
    const { password } = await issueMqttSecret(t.db, terminalId, 'test');
    const c = await connectTerminal({ url: gw.plainUrl!, terminalId, password, requestTimeoutMs: 3000, ...extra });
    clients.push(c);
    return { client: c, password };
  }

  /** A raw mqtt.js connection, for tests that must break the rules the SDK keeps. */
  async function raw(opts: mqtt.IClientOptions & { url?: string }) {
    const c = await mqtt.connectAsync(opts.url ?? gw.plainUrl!, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 3000,
      ...opts,
    });
    clients.push(c);
    return c;
  }

  /** A terminal on a raw connection with its development secret, subscribed to its responses. */
  async function bareTerminal(id: string) {
    const { password } = await issueMqttSecret(t.db, id, 'test');
    const c = await raw({ clientId: id, username: id, password, clean: true });
    await c.subscribeAsync(topics.responseTopic(id), { qos: 1 });
    const texts: string[] = [];
    const json: any[] = [];
    c.on('message', (_t, m) => {
      texts.push(m.toString());
      json.push(JSON.parse(m.toString()));
    });
    return { c, texts, json };
  }

  const violations = async (terminalId: string | null, kind: string) =>
    (
      await t.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM terminals.violations WHERE kind = $2 AND ($1::text IS NULL OR terminal_id = $1)`,
        [terminalId, kind],
      )
    ).rows[0].n;
  const flushViolations = () => gw.gateway.recorder.flush();
  const countPayments = async (terminalId: string) =>
    (
      await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments.payments WHERE terminal_id = $1`, [
        terminalId,
      ])
    ).rows[0].n;

  test('mutual TLS: an enrolled terminal takes a QR payment and is told the moment it is paid', async () => {
    const id = await newTerminal();
    const term = await viaCert(id);
    const events: PaymentUpdated[] = [];
    term.on('payment.updated', (e) => events.push(e));
    const pong = await term.ping();
    assert.equal(pong.pong, true);
    assert.equal(pong.terminal_id, id);
    conforms('ping', pong);

    const p = await term.createPayment({ method: 'upi_qr', amount: 24900, currency: 'INR', note: 'Bill 17' });
    assert.match(p.id, /^pay_/);
    assert.equal(p.status, 'pending');
    assert.equal(p.terminal_id, id);
    assert.ok(p.upi_uri?.startsWith('upi://pay?'), 'the QR string for the screen');
    conforms('payment.create', p);
    const paid = await t.payQr(p.upi_uri!, 'asha.rao@okhdfc', 'success');
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    const got = await until(() => events.find((e) => e.body.payment_id === p.id && e.body.status === 'succeeded'));
    assert.ok(got, `payment.updated succeeded arrived (got ${JSON.stringify(events)})`);
    assert.equal(got.body.amount, 24900);
    assert.ok(got.seq > 0);
    conforms('event', got);
    const again = await term.getPayment(p.id);
    assert.equal(again.status, 'succeeded');
    conforms('payment.get', again);
    assert.equal((await runLedgerVerify(t.db)).ok, true);
  });

  test("mutual TLS refusals: no certificate, a foreign CA, another terminal's certificate, a revoked one", async () => {
    const a = await newTerminal();
    const b = await newTerminal();
    const bundle = await enroll(a);
    const base = {
      url: gw.tlsUrl!,
      ca: bundle.caPem,
      servername: 'localhost',
      reconnectPeriodMs: 0,
      connectTimeoutMs: 3000,
    };

    await assert.rejects(connectTerminal({ ...base, terminalId: a }), 'no client certificate: the TLS handshake fails');

    // A certificate for the same terminal id from a CA the gateway does not trust.
    const { initPki, loadCa, issueClientCertificate } = await loadPki();
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const rogueDir = mkdtempSync(`${tmpdir()}/rogue-ca-`);
    await initPki(rogueDir);
    const rogue = await issueClientCertificate(await loadCa(rogueDir), { commonName: a, days: 30 });
    await assert.rejects(connectTerminal({ ...base, terminalId: a, cert: rogue.certPem, key: rogue.keyPem }));

    // Terminal A's certificate presented as terminal B: the certificate names the terminal.
    await assert.rejects(connectTerminal({ ...base, terminalId: b, cert: bundle.certPem, key: bundle.keyPem }));

    // The right certificate works; once revoked, it is refused at connect and the live session is closed.
    const ok = await connectTerminal({ ...base, terminalId: a, cert: bundle.certPem, key: bundle.keyPem });
    clients.push(ok);
    assert.equal((await ok.ping()).pong, true);
    const closed = new Promise<void>((r) => ok.once('offline', () => r()));
    await revokeTerminalCredentials(t.db, a, { reason: 'device stolen' });
    await closed;
    await assert.rejects(connectTerminal({ ...base, terminalId: a, cert: bundle.certPem, key: bundle.keyPem }));

    await flushViolations();
    assert.ok(
      (await violations(a, 'client_id_mismatch')) >= 1,
      "impersonation with A's certificate recorded against A",
    );
    assert.ok((await violations(a, 'credential_revoked')) >= 1, 'closing the revoked session recorded');
    assert.ok((await violations(null, 'auth_failed')) >= 3, 'refused handshakes and logins recorded');
  });

  test('disabling a terminal closes its live session, as revoking does', async () => {
    const id = await newTerminal();
    const { password } = await issueMqttSecret(t.db, id, 'test');
    const c = await connectTerminal({
      url: gw.plainUrl!,
      terminalId: id,
      password,
      reconnectPeriodMs: 0,
      requestTimeoutMs: 3000,
    });
    clients.push(c);
    assert.equal((await c.ping()).pong, true);
    let closed = false;
    c.once('offline', () => (closed = true));
    const r = await t.request('PATCH', `/v1/terminals/${id}`, { status: 'disabled' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // The gateway's sweep (every few seconds; 100 ms here) closes it.
    assert.ok(await until(() => closed, 15_000), 'the live session is closed');
    await assert.rejects(connectTerminal({ url: gw.plainUrl!, terminalId: id, password, reconnectPeriodMs: 0 }));
    await flushViolations();
    assert.ok((await violations(id, 'terminal_disabled')) >= 1, 'closing the session recorded');
  });

  test('a disabled terminal is refused at connect, whatever credential it holds', async () => {
    const id = await newTerminal();
    const bundle = await enroll(id);
    const { password } = await issueMqttSecret(t.db, id, 'test');
    const r = await t.request('PATCH', `/v1/terminals/${id}`, { status: 'disabled' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await assert.rejects(
      connectTerminal({
        url: gw.tlsUrl!,
        terminalId: id,
        cert: bundle.certPem,
        key: bundle.keyPem,
        ca: bundle.caPem,
        servername: 'localhost',
        reconnectPeriodMs: 0,
      }),
    );
    await assert.rejects(connectTerminal({ url: gw.plainUrl!, terminalId: id, password, reconnectPeriodMs: 0 }));
  });

  test('development listener: the terminal id and its secret, stored only as a digest', async () => {
    const id = await newTerminal();
    const { client, password } = await viaSecret(id);
    assert.equal((await client.ping()).terminal_id, id);
    const stored = await t.db.query<{ secret_hash: Buffer }>(
      `SELECT secret_hash FROM terminals.mqtt_secrets WHERE terminal_id = $1`,
      [id],
    );
    assert.equal(stored.rows.length, 1);
    assert.ok(
      !Buffer.from(stored.rows[0].secret_hash).toString('latin1').includes(password),
      'the secret itself is not stored',
    );
    await assert.rejects(
      connectTerminal({ url: gw.plainUrl!, terminalId: id, password: password + 'x', reconnectPeriodMs: 0 }),
      'wrong secret',
    );
    await assert.rejects(raw({ clientId: id, username: id }), 'no secret');
    const other = await newTerminal();
    await assert.rejects(
      raw({ clientId: other, username: id, password }),
      'secret of another terminal under its own client id',
    );
    await assert.rejects(issueMqttSecret(t.db, id, 'production'), /development listener only/);
  });

  test('topic ACL: publishing or subscribing outside its own topics is refused and recorded', async () => {
    const a = await newTerminal();
    const b = await newTerminal();
    const { password } = await issueMqttSecret(t.db, a, 'test');
    const c = await raw({ clientId: a, username: a, password, clean: true });

    // mqtt.js rejects when any filter is refused; the SUBACK it carries says which.
    const refused = await c
      .subscribeAsync({
        [topics.eventTopic(b)]: { qos: 1 },
        'tillpoint/v1/terminals/+/evt': { qos: 1 },
        '#': { qos: 1 },
        [topics.requestTopic(a)]: { qos: 1 },
        [topics.eventTopic(a)]: { qos: 1 },
      })
      .then(
        () => undefined,
        (e: { packet?: { granted?: number[] } }) => e,
      );
    assert.deepEqual(refused?.packet?.granted, [128, 128, 128, 128, 1], 'only its own /evt is granted');

    // Publishing to another terminal's request topic: MQTT 3.1.1 has no negative PUBACK, so the broker hangs up.
    const gone = new Promise<void>((r) => c.once('close', () => r()));
    c.publish(
      topics.requestTopic(b),
      JSON.stringify({
        v: 1,
        id: 'x1',
        type: 'payment.create',
        body: { method: 'upi_qr', amount: 100, currency: 'INR' },
      }),
      { qos: 1 },
    );
    await gone;
    await flushViolations();
    assert.equal(await violations(a, 'acl_subscribe'), 4);
    assert.equal(await violations(a, 'acl_publish'), 1);
    assert.equal(await countPayments(b), 0, 'nothing was created for the other terminal');
  });

  test('a terminal sees, refunds and lists only its own payments', async () => {
    const a = await newTerminal();
    const b = await newTerminal();
    const ta = (await viaSecret(a)).client;
    const tb = (await viaSecret(b)).client;
    const p = await ta.createPayment({ method: 'upi_qr', amount: 5000, currency: 'INR' });
    await t.payQr(p.upi_uri!, 'ravi.kumar@okaxis', 'success');
    await until(async () => (await ta.getPayment(p.id)).status === 'succeeded');

    await assert.rejects(tb.getPayment(p.id), (e: TerminalRequestError) => e.code === 'payment_not_found');
    await assert.rejects(tb.refundPayment(p.id, 100), (e: TerminalRequestError) => e.code === 'payment_not_found');
    assert.deepEqual(await tb.listRecentPayments(), []);
    const mine = await ta.listRecentPayments({ limit: 5 });
    assert.deepEqual(
      mine.map((x) => x.id),
      [p.id],
    );
    conforms('payment.list_recent', { data: mine });

    const refund = await ta.refundPayment(p.id, 1500, 'one item returned');
    assert.equal(refund.status, 'succeeded');
    assert.equal(refund.amount, 1500);
    conforms('payment.refund', refund);
    assert.equal((await ta.getPayment(p.id)).status, 'partially_refunded');
    await assert.rejects(
      ta.refundPayment(p.id, 4000),
      (e: TerminalRequestError) => e.code === 'refund_exceeds_payment',
    );
  });

  test('a redelivered request id returns the original response and creates nothing new', async () => {
    const id = await newTerminal();
    const { c, texts: responses } = await bareTerminal(id);
    const req = JSON.stringify({
      v: 1,
      id: 'sale-0001',
      type: 'payment.create',
      body: { method: 'upi_qr', amount: 7300, currency: 'INR' },
    });
    await c.publishAsync(topics.requestTopic(id), req, { qos: 1 });
    await until(() => responses.length === 1);
    // The same message again (as a terminal does when its PUBACK or our response got lost), twice, and once more with DUP set.
    await c.publishAsync(topics.requestTopic(id), req, { qos: 1 });
    await c.publishAsync(topics.requestTopic(id), req, { qos: 1, dup: true });
    await until(() => responses.length === 3);
    assert.equal(responses.length, 3);
    assert.equal(responses[1], responses[0], 'byte for byte the same response');
    assert.equal(responses[2], responses[0]);
    const first = JSON.parse(responses[0]);
    assert.equal(first.ok, true);
    assert.equal(first.id, 'sale-0001');
    assert.equal(await countPayments(id), 1, 'one payment, not three');

    // Same id, different request: refused, nothing created.
    await c.publishAsync(
      topics.requestTopic(id),
      JSON.stringify({
        v: 1,
        id: 'sale-0001',
        type: 'payment.create',
        body: { method: 'upi_qr', amount: 9999, currency: 'INR' },
      }),
      { qos: 1 },
    );
    await until(() => responses.length === 4);
    const reused = JSON.parse(responses[3]);
    assert.equal(reused.ok, false);
    assert.equal(reused.error.code, 'idempotency_key_reused');
    assert.equal(await countPayments(id), 1);

    // Concurrent duplicates: one payment, and every answer carries the same payment.
    const req2 = JSON.stringify({
      v: 1,
      id: 'sale-0002',
      type: 'payment.create',
      body: { method: 'upi_qr', amount: 100, currency: 'INR' },
    });
    await Promise.all(Array.from({ length: 5 }, () => c.publishAsync(topics.requestTopic(id), req2, { qos: 1 })));
    await until(() => responses.filter((r) => r.includes('"sale-0002"')).length >= 1);
    await new Promise((r) => setTimeout(r, 200));
    const answers = responses.filter((r) => r.includes('"sale-0002"')).map((r) => JSON.parse(r));
    assert.ok(answers.length >= 1);
    assert.equal(new Set(answers.map((a) => a.body.id)).size, 1, 'all answers name the same payment');
    assert.equal(await countPayments(id), 2);
  });

  test('a gateway that died before storing a response: the retry that takes over the lapsed claim gets the same payment', async () => {
    const id = await newTerminal();
    const { c, json: responses } = await bareTerminal(id);
    const req = JSON.stringify({
      v: 1,
      id: 'sale-crash-1',
      type: 'payment.create',
      body: { method: 'upi_qr', amount: 6100, currency: 'INR' },
    });
    await c.publishAsync(topics.requestTopic(id), req, { qos: 1 });
    await until(() => responses.length === 1);
    // What a crash between the payment and its stored response leaves, once the claim has lapsed.
    await t.db.query(
      `UPDATE terminals.requests SET state = 'in_progress', response = NULL, locked_until = now() - interval '1 second' WHERE terminal_id = $1 AND request_id = 'sale-crash-1'`,
      [id],
    );
    await c.publishAsync(topics.requestTopic(id), req, { qos: 1 });
    await until(() => responses.length === 2);
    assert.equal(responses[1].ok, true, JSON.stringify(responses[1]));
    assert.equal(responses[1].body.id, responses[0].body.id, 'the same payment');
    assert.equal(await countPayments(id), 1, 'not a second one');
  });

  test('the SDK retries a request with the same id when no response comes, and it is carried out once', async () => {
    const id = await newTerminal();
    const { client } = await viaSecret(id, { requestTimeoutMs: 40, retries: 20 });
    // A 40 ms timeout is shorter than a payment takes, so the SDK sends the request again and again.
    const p = await client.createPayment({ method: 'upi_qr', amount: 4200, currency: 'INR' });
    assert.equal(p.amount, 4200);
    assert.equal(await countPayments(id), 1);
  });

  test('persistent session: a terminal that was offline gets the events it missed when it reconnects', async () => {
    const id = await newTerminal();
    const { client, password } = await viaSecret(id);
    const p = await client.createPayment({ method: 'upi_qr', amount: 12000, currency: 'INR' });
    await client.close(); // the session (clean = false) and its subscriptions stay on the broker
    await until(async () => (await gw.gateway.connectedCount()) !== undefined);

    await t.payQr(p.upi_uri!, 'meena.iyer@oksbi', 'success');
    // Let the relay publish while the terminal is away.
    await until(
      async () =>
        (
          await t.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM platform.outbox WHERE key = $1 AND published_at IS NULL`,
            [id],
          )
        ).rows[0].n === 0 &&
        (
          await t.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM platform.outbox WHERE key = $1 AND payload->>'status' = 'succeeded'`,
            [id],
          )
        ).rows[0].n === 1,
    );

    const events: PaymentUpdated[] = [];
    const back = await connectTerminal({ url: gw.plainUrl!, terminalId: id, password });
    clients.push(back);
    back.on('payment.updated', (e) => events.push(e));
    // Queued QoS 1 messages can arrive before connectTerminal resolves; the raw client sees them all.
    const missed = await until(() => events.find((e) => e.body.status === 'succeeded'), 3000);
    assert.ok(missed, 'the missed "succeeded" event was delivered on reconnect');
    assert.equal(missed.body.payment_id, p.id);
  });

  test('a request with a key twice is refused under its id, nothing is written (no last-key-wins)', async () => {
    const id = await newTerminal();
    const { c, json: responses } = await bareTerminal(id);
    const send = (payload: string) => c.publishAsync(topics.requestTopic(id), payload, { qos: 1 });
    await send(
      '{"v":1,"id":"d1","type":"payment.create","body":{"method":"upi_qr","amount":100,"currency":"INR","amount":20000}}',
    );
    await send(
      '{"v":1,"id":"d2","type":"ping","type":"payment.create","body":{"method":"upi_qr","amount":100,"currency":"INR"}}',
    );
    await until(() => responses.length === 2);
    const d1 = responses.find((r) => r.id === 'd1');
    assert.equal(d1?.error.code, 'malformed_json', JSON.stringify(responses));
    assert.equal(d1?.error.details.duplicate_key, '$.body.amount');
    assert.equal(responses.find((r) => r.id === 'd2')?.error.code, 'malformed_json');
    assert.equal(await countPayments(id), 0, 'nothing was written');
  });

  test('bad messages get an error response, never a crash or a partial write', async () => {
    const id = await newTerminal();
    const { c, json: responses } = await bareTerminal(id);
    const send = (payload: string | Buffer) => c.publishAsync(topics.requestTopic(id), payload, { qos: 1 });

    await send('{"v":1,"id":"a1","type":"ping",');
    await send(JSON.stringify({ v: 1, id: 'a2', type: 'payment.teleport', body: {} }));
    await send(
      JSON.stringify({
        v: 1,
        id: 'a3',
        type: 'payment.create',
        body: { method: 'upi_qr', amount: '100', currency: 'INR' },
      }),
    );
    await send(JSON.stringify({ v: 2, id: 'a4', type: 'ping' }));
    await send(
      JSON.stringify({
        v: 1,
        id: 'a5',
        type: 'payment.create',
        body: { method: 'upi_qr', amount: 100.5, currency: 'INR' },
      }),
    );
    await send(
      JSON.stringify({
        v: 1,
        id: 'a6',
        type: 'payment.create',
        body: { method: 'upi_qr', amount: 100, currency: 'INR', note: 'x'.repeat(20_000) },
      }),
    );
    await send('{"v":1,"id":"a7","type":"ping","body":{"__proto__":{"polluted":true}}}');
    await until(() => responses.length === 7);
    const byId = (id: string | null) => responses.filter((r) => r.id === id);
    assert.equal(byId(null)[0]?.error.code, 'malformed_json');
    assert.equal(byId('a2')[0].error.code, 'unknown_message_type');
    assert.equal(byId('a3')[0].error.code, 'validation_failed');
    assert.deepEqual(byId('a3')[0].error.details, [{ field: 'body.amount', problem: 'must be number' }]);
    assert.equal(byId('a4')[0].error.code, 'validation_failed');
    assert.equal(byId('a5')[0].error.code, 'invalid_amount');
    assert.equal(byId('a6')[0].error.code, 'payload_too_large', 'oversized, yet answered under its id');
    assert.ok(byId(null).length === 2 || byId('a7')[0]?.error, 'prototype pollution attempt refused');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(await countPayments(id), 0, 'nothing was written');

    // A frame far beyond the limit is cut off at its header: the connection is dropped.
    const gone = new Promise<void>((r) => c.once('close', () => r()));
    c.publish(topics.requestTopic(id), Buffer.alloc(200_000, 0x20), { qos: 0 });
    await gone;
    await flushViolations();
    assert.equal(await violations(id, 'frame_too_large'), 1);
    assert.ok((await violations(id, 'malformed')) >= 1);
    assert.ok((await violations(id, 'unknown_type')) >= 1);
    assert.ok((await violations(id, 'oversized')) >= 1);

    // The gateway is still serving.
    const { client } = await viaSecret(id);
    assert.equal((await client.ping()).pong, true);
  });

  test('a connection that keeps sending garbage is closed as abusive', async () => {
    const id = await newTerminal();
    const { password } = await issueMqttSecret(t.db, id, 'test');
    const c = await raw({ clientId: id, username: id, password, clean: true });
    const gone = new Promise<void>((r) => c.once('close', () => r()));
    for (let i = 0; i < 10; i++) c.publish(topics.requestTopic(id), `not json ${i}`, { qos: 0 });
    await gone;
    await flushViolations();
    const abuse = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM terminals.violations WHERE terminal_id = $1 AND detail LIKE 'disconnected after%'`,
      [id],
    );
    assert.equal(abuse.rows[0].n, 1);
  });

  test('the SDK refuses to send a request above the size limit', async () => {
    const id = await newTerminal();
    const { client } = await viaSecret(id);
    await assert.rejects(
      client.createPayment({ method: 'upi_qr', amount: 100, currency: 'INR', note: 'x'.repeat(17_000) }),
      (e: TerminalRequestError) => e.code === 'payload_too_large',
    );
  });

  test('the enrolment bundle holds a certificate bound to the terminal id', async () => {
    const id = await newTerminal();
    const b = await enroll(id);
    const { X509Certificate } = await import('node:crypto');
    const cert = new X509Certificate(b.certPem);
    const ca = new X509Certificate(b.caPem);
    assert.equal(cert.subject, `CN=${id}`);
    assert.equal(cert.subjectAltName, `URI:urn:tillpoint:terminal:${id}`);
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'signed by the terminal CA');
    assert.equal(cert.ca, false);
    assert.ok(cert.keyUsage?.includes('1.3.6.1.5.5.7.3.2'), 'for client authentication');
    assert.equal(readFileSync(gw.config.mqtt.caFile, 'utf8').trim(), b.caPem.trim());
    assert.equal(b.fingerprint, cert.fingerprint256.replaceAll(':', '').toLowerCase());
    void merchantId;
  });
});
