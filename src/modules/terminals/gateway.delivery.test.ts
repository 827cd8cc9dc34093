import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { startTestApp, type TestApp } from '../../../test/helpers/harness.ts';
import { startAppGateway, type TestGateway } from '../../../test/helpers/terminals.ts';
import { issueMqttSecret } from './credentials.ts';
import { eventTopic, requestTopic, responseTopic } from './topics.ts';
import { until } from './testkit.ts';

// Delivery to one terminal when many messages for it leave at once (its requests' claims,
// creates, stored responses and the relay's events come back in shared batches, so several
// messages for one connection are written in the same turn of the event loop): the terminal must
// get every response and every event, each once, the events in commit order.
// A raw mqtt.js connection is the terminal, so nothing (like the SDK's drop of an older `seq`)
// hides a lost, repeated or reordered message.

describe('terminal gateway: a burst to one terminal', { timeout: 60_000 }, () => {
  let t: TestApp;
  let gw: TestGateway;
  let client: MqttClient | undefined;

  before(async () => {
    t = await startTestApp();
    gw = await startAppGateway(t);
  });
  after(async () => {
    await client?.endAsync(true);
    await gw.stop();
    await t.close();
  });

  test('every response and every payment.updated arrives once, the events in seq order', async () => {
    const s = await t.seedMerchant('Kirana on Burst Lane');
    const r = await t.request('POST', '/v1/terminals', { store_id: s.store.id, label: 'Till' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id: string = r.body.id;
    const { password } = await issueMqttSecret(t.db, id, 'test');
    client = await mqtt.connectAsync(gw.plainUrl!, {
      protocolVersion: 4,
      clientId: id,
      username: id,
      password,
      clean: false,
      reconnectPeriod: 0,
      connectTimeout: 3000,
    });
    await client.subscribeAsync([responseTopic(id), eventTopic(id)], { qos: 1 });
    const arrived: { topic: string; msg: Record<string, any> }[] = [];
    client.on('message', (topic, payload) => arrived.push({ topic, msg: JSON.parse(payload.toString('utf8')) }));

    // Sent at once: their claims, creates, stored responses and the relay's events come back in
    // shared batches, so several messages for this one connection are written in the same turn.
    const n = 30; // under the 32 a connection may have in flight
    const ids = Array.from({ length: n }, (_, i) => `burst-${i}`);
    await Promise.all(
      ids.map((rid, i) =>
        client!.publishAsync(
          requestTopic(id),
          JSON.stringify({
            v: 1,
            id: rid,
            type: 'payment.create',
            body: { method: 'upi_qr', amount: 1000 + i, currency: 'INR' },
          }),
          { qos: 1 },
        ),
      ),
    );
    const responses = () => arrived.filter((a) => a.topic === responseTopic(id));
    const events = () => arrived.filter((a) => a.topic === eventTopic(id));
    await until(() => responses().length >= n && events().length >= n, 30_000);

    assert.equal(responses().length, n, 'one response per request');
    assert.deepEqual(
      responses()
        .map((a) => a.msg.id)
        .sort(),
      [...ids].sort(),
      'every request id answered once',
    );
    for (const { msg } of responses()) assert.equal(msg.ok, true, JSON.stringify(msg));
    const paymentIds = responses().map((a) => a.msg.body.id as string);

    assert.equal(events().length, n, 'one event per payment');
    const seqs = events().map((a) => a.msg.seq as number);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `events in commit order: ${seqs.join(',')}`);
    assert.deepEqual(
      events()
        .map((a) => a.msg.body.payment_id)
        .sort(),
      [...paymentIds].sort(),
      "each payment's own event",
    );
    for (const { msg } of events()) assert.equal(msg.body.status, 'pending');

    // Nothing more comes: no message was sent twice.
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(arrived.length, 2 * n);
  });
});
