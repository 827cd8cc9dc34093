import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { coalesceWrites } from './embedded.ts';

// The broker's writes to one terminal, coalesced per turn of the event loop: over a real loopback
// connection, written by mqtt-packet as Aedes writes them (a PUBACK while input is handled, each
// delivery in a setImmediate of its own), read back by mqtt-packet's parser on the other end.

const topic = (kind: 'res' | 'evt') => `tillpoint/v1/terminals/trm_0123456789abcdef0123456789abcdef/${kind}`;
const publish = (i: number): Packet => ({
  cmd: 'publish',
  topic: topic(i % 2 ? 'evt' : 'res'),
  payload: Buffer.from(JSON.stringify({ v: 1, n: i })),
  qos: 1,
  messageId: 100 + i,
  dup: false,
  retain: false,
});

/** A connected pair: the server's side (as the broker has it) and what the client side parsed. */
async function pair(coalesce: boolean) {
  let accepted!: net.Socket;
  const server = net.createServer((s) => {
    accepted = s;
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  while (!accepted) await new Promise((r) => setImmediate(r));
  accepted.setNoDelay(true);
  if (coalesce) coalesceWrites(accepted);
  // Every system call the stream makes for these writes goes through _writev (several chunks) or _write (one).
  const calls = { writev: 0, write: 0 };
  const s = accepted as net.Socket & { _writev: (...a: unknown[]) => void; _write: (...a: unknown[]) => void };
  const writev = s._writev.bind(s);
  const write = s._write.bind(s);
  s._writev = (...a) => {
    calls.writev++;
    writev(...a);
  };
  s._write = (...a) => {
    calls.write++;
    write(...a);
  };
  const received: Packet[] = [];
  const parser = mqttPacket.parser();
  parser.on('packet', (p) => received.push(p));
  client.on('data', (d) => parser.parse(d));
  return {
    server: accepted,
    calls,
    received,
    async close() {
      client.destroy();
      accepted.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The broker's pattern in one turn: a PUBACK now, then deliveries, each in its own setImmediate. */
async function brokerTurn(socket: net.Socket, deliveries: number) {
  mqttPacket.writeToStream({ cmd: 'puback', messageId: 7 }, socket);
  await new Promise<void>((resolve) => {
    for (let i = 0; i < deliveries; i++) setImmediate(() => mqttPacket.writeToStream(publish(i), socket));
    setImmediate(resolve);
  });
}

const settle = async (received: Packet[], n: number) => {
  for (let i = 0; i < 200 && received.length < n; i++) await new Promise((r) => setTimeout(r, 5));
};

test('what the broker writes to one connection in one turn leaves in one system call, every packet in order', async () => {
  const c = await pair(true);
  try {
    await brokerTurn(c.server, 6);
    await settle(c.received, 7);
    assert.deepEqual(
      c.received.map((p) => (p.cmd === 'publish' ? `${p.topic.slice(-3)}:${JSON.parse(String(p.payload)).n}` : p.cmd)),
      ['puback', 'res:0', 'evt:1', 'res:2', 'evt:3', 'res:4', 'evt:5'],
    );
    // The PUBACK's turn and the deliveries' setImmediates: at most two system calls, not seven.
    assert.ok(c.calls.writev + c.calls.write <= 2, JSON.stringify(c.calls));
  } finally {
    await c.close();
  }
});

test('without it, each packet is a system call of its own (what the coalescing saves)', async () => {
  const c = await pair(false);
  try {
    await brokerTurn(c.server, 6);
    await settle(c.received, 7);
    assert.equal(c.received.length, 7);
    assert.equal(c.calls.writev + c.calls.write, 7, JSON.stringify(c.calls));
  } finally {
    await c.close();
  }
});

test('a destroy right after a write still sends what was written (a refusal before the close)', async () => {
  const c = await pair(true);
  try {
    mqttPacket.writeToStream({ cmd: 'connack', returnCode: 5, sessionPresent: false }, c.server);
    c.server.destroy();
    await settle(c.received, 1);
    assert.deepEqual(
      c.received.map((p) => [p.cmd, (p as { returnCode?: number }).returnCode]),
      [['connack', 5]],
    );
  } finally {
    await c.close();
  }
});

test('many turns: nothing is lost or reordered, and nothing waits for a later write to leave', async () => {
  const c = await pair(true);
  try {
    let n = 0;
    for (let turn = 0; turn < 50; turn++) {
      const k = 1 + (turn % 4);
      await new Promise<void>((resolve) => {
        for (let i = 0; i < k; i++) setImmediate(() => mqttPacket.writeToStream(publish(n++), c.server));
        setImmediate(resolve);
      });
      // Each turn's packets arrive without another write to push them out.
      await settle(c.received, n);
      assert.equal(c.received.length, n);
    }
    assert.deepEqual(
      c.received.map((p) => (p as { messageId?: number }).messageId),
      Array.from({ length: n }, (_, i) => 100 + i),
    );
  } finally {
    await c.close();
  }
});
