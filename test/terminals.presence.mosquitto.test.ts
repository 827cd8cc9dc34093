import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { startTestGateway, mosquittoForTests, until, type TestMosquitto } from '../src/modules/terminals/testkit.ts';
import { connectTerminal, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';
import { loadEnrollment, topics } from '../src/modules/terminals/index.ts';
import { pkiFiles, gatewayCertFiles } from '../src/modules/terminals/pki.ts';

// Presence on an external broker (Mosquitto, config from `tillpoint pki mosquitto-config`): the
// gateway learns of connections only from the terminals' status topics, through its shared
// subscription: the SDK's retained "online" at connect, and its will, which Mosquitto publishes
// when the connection dies. Two gateway replicas share the status messages. Skipped, saying why,
// without Mosquitto (CI has it).

const broker = await mosquittoForTests();
const skip = 'skip' in broker ? broker.skip : false;

describe('terminal presence on an external broker (Mosquitto)', { skip, timeout: 60_000 }, () => {
  const mq = broker as TestMosquitto;
  let t: TestApp;
  let storeId: string;
  const group = `p${randomBytes(4).toString('hex')}`;
  const gateways: Awaited<ReturnType<typeof startTestGateway>>[] = [];
  const clients: (TerminalClient | mqtt.MqttClient)[] = [];

  const gatewayEnv = (name: string) => {
    const g = gatewayCertFiles(mq.pkiDir, name);
    return {
      MQTT_URL: mq.url,
      MQTT_SHARE_GROUP: group,
      MQTT_CLIENT_CERT_FILE: g.cert,
      MQTT_CLIENT_KEY_FILE: g.key,
      MQTT_CA_FILE: pkiFiles(mq.pkiDir).caCert,
      TERMINAL_PKI_DIR: mq.pkiDir,
    };
  };

  before(async () => {
    t = await startTestApp();
    for (const name of ['tillpoint-gateway', 'tillpoint-gateway-2'])
      gateways.push(
        await startTestGateway({
          db: t.db,
          payments: t.app.services.payments,
          audit: t.app.services.audit,
          env: gatewayEnv(name),
          pkiDir: mq.pkiDir,
          presenceLastSeenEveryMs: 0,
        }),
      );
    storeId = (await t.seedMerchant('Mosquitto Presence Mart')).store.id;
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => ('endAsync' in c ? c.endAsync(true) : c.close())));
    for (const g of gateways) await g.stop();
    await t?.close();
    await mq.stop();
  });

  async function enrolled() {
    const r = await t.request('POST', '/v1/terminals', { store_id: storeId, label: 'Till' });
    const { enrollTerminal } = await loadEnrollment();
    return enrollTerminal(t.db, { pkiDir: mq.pkiDir, terminalId: r.body.id });
  }
  const terminal = async (id: string) => (await t.request('GET', `/v1/terminals/${id}`)).body;
  const raw = async (b: Awaited<ReturnType<typeof enrolled>>, opts: mqtt.IClientOptions = {}) => {
    const c = await mqtt.connectAsync(mq.url, {
      clientId: b.terminalId,
      cert: b.certPem,
      key: b.keyPem,
      ca: b.caPem,
      protocolVersion: 4,
      reconnectPeriod: 0,
      clean: true,
      ...opts,
    });
    clients.push(c);
    return c;
  };

  test('connect -> online; a request moves last_seen; the socket dies -> offline through the will', async () => {
    const b = await enrolled();
    const term = await connectTerminal({
      url: mq.url,
      terminalId: b.terminalId,
      cert: b.certPem,
      key: b.keyPem,
      ca: b.caPem,
      reconnectPeriodMs: 0,
      requestTimeoutMs: 4000,
    });
    clients.push(term);
    const online = await until(async () => {
      const r = await terminal(b.terminalId);
      return r.online ? r : undefined;
    });
    assert.ok(online, 'online from the retained status');
    await new Promise((r) => setTimeout(r, 30));
    await term.ping();
    const moved = await until(async () => {
      const r = await terminal(b.terminalId);
      return r.last_seen_at > online.last_seen_at ? r : undefined;
    });
    assert.ok(moved, 'last_seen moved with the ping');

    (term as unknown as { mqtt: mqtt.MqttClient }).mqtt.stream.destroy();
    const offline = await until(async () => {
      const r = await terminal(b.terminalId);
      return r.online ? undefined : r;
    });
    assert.ok(offline, 'offline: Mosquitto published the will');
    assert.ok(offline.last_seen_at >= moved.last_seen_at);

    // The broker keeps the latest status retained: the will, an "offline" for that connection.
    const peek = await raw(b);
    const retained = new Promise<string>((resolve) => peek.on('message', (_t, p) => resolve(p.toString())));
    await peek.subscribeAsync(topics.statusTopic(b.terminalId), { qos: 1 }).catch(() => {});
    // A terminal may not read its own status topic (ACL): nothing arrives. The gateway's record is the API's.
    const got = await Promise.race([retained, new Promise((r) => setTimeout(() => r('nothing'), 300))]);
    assert.equal(got, 'nothing');
  });

  test('a closed SDK client says offline itself (a clean DISCONNECT discards the will)', async () => {
    const b = await enrolled();
    const term = await connectTerminal({
      url: mq.url,
      terminalId: b.terminalId,
      cert: b.certPem,
      key: b.keyPem,
      ca: b.caPem,
      reconnectPeriodMs: 0,
    });
    assert.ok(await until(async () => (await terminal(b.terminalId)).online));
    await term.close();
    assert.ok(await until(async () => !(await terminal(b.terminalId)).online));
  });

  test("statuses out of order (through two replicas) keep the newest connection's; another terminal's status is dropped by the ACL", async () => {
    const b = await enrolled();
    const other = await enrolled();
    const c = await raw(b);
    const now = Date.now();
    const status = (online: boolean, since: number) =>
      JSON.stringify({ v: 1, status: online ? 'online' : 'offline', since });
    await c.publishAsync(topics.statusTopic(b.terminalId), status(true, now), { qos: 1, retain: true });
    assert.ok(await until(async () => (await terminal(b.terminalId)).online));
    // A late will of an earlier connection: ignored.
    await c.publishAsync(topics.statusTopic(b.terminalId), status(false, now - 5000), { qos: 1, retain: true });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await terminal(b.terminalId)).online, true);
    // Another terminal's topic: Mosquitto acknowledges and drops it.
    await c.publishAsync(topics.statusTopic(other.terminalId), status(true, now), { qos: 1, retain: true });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await terminal(other.terminalId)).online, false);
    // This connection's own offline: applied.
    await c.publishAsync(topics.statusTopic(b.terminalId), status(false, now), { qos: 1, retain: true });
    assert.ok(await until(async () => !(await terminal(b.terminalId)).online));
  });

  test("a will on another terminal's status topic is never delivered (the ACL applies when Mosquitto sends it)", async () => {
    const b = await enrolled();
    const victim = await enrolled();
    const c = await raw(b, {
      will: {
        topic: topics.statusTopic(victim.terminalId),
        payload: Buffer.from(JSON.stringify({ v: 1, status: 'online', since: Date.now() + 30_000 })),
        qos: 1,
        retain: true,
      },
    });
    c.stream.destroy();
    await new Promise((r) => setTimeout(r, 500));
    const v = await terminal(victim.terminalId);
    assert.equal(v.online, false);
    assert.equal(v.last_seen_at, null, 'nothing recorded for the victim');
  });
});
