import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCallbackClient } from './callbackClient.ts';

// The simulator's callback client (callbackClient.ts) against a plain node:http server: what
// arrives is what was given, answers count by their status, connections are reused, and a
// callback never outlives its timeout or the simulator.

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  socket: unknown;
}

async function server(t: TestContext, answer: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const seen: Seen[] = [];
  let connections = 0;
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body, socket: req.socket });
      answer(req, res, body);
    });
  });
  srv.on('connection', () => connections++);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  );
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/v1/banks/SIMBANK/callbacks?x=1`;
  return { url, seen, connections: () => connections };
}

test('a callback arrives as given (method, path, headers, body byte for byte); connections are kept alive', async (t) => {
  const s = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  const client = createCallbackClient();
  t.after(() => client.close());
  const body = JSON.stringify({ type: 'payment', txn_ref: 'TP1', amount: '149.00', note: 'chai ₹ and "quotes"' });
  const headers = {
    'content-type': 'application/json',
    'X-Tillpoint-Timestamp': '1700000000',
    'X-Tillpoint-Nonce': 'ab'.repeat(16),
    'X-Tillpoint-Signature': `v1=${'0'.repeat(64)}`,
  };
  for (let i = 0; i < 3; i++) assert.equal(await client.post(s.url, headers, body, 5_000), 200);
  assert.equal(s.seen.length, 3);
  for (const r of s.seen) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/v1/banks/SIMBANK/callbacks?x=1');
    assert.equal(r.body, body);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-tillpoint-timestamp'], '1700000000');
    assert.equal(r.headers['x-tillpoint-nonce'], 'ab'.repeat(16));
    assert.equal(r.headers['x-tillpoint-signature'], `v1=${'0'.repeat(64)}`);
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(body)));
  }
  // One connection for the three, one after the other: no connection (and handshake) per callback.
  assert.equal(s.connections(), 1);
  assert.equal(s.seen[0].socket, s.seen[2].socket);
});

test('a non-2xx answer resolves with its status (the engine retries it); an unreachable receiver rejects', async (t) => {
  const s = await server(t, (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"service_unavailable"}}');
  });
  const client = createCallbackClient();
  t.after(() => client.close());
  assert.equal(await client.post(s.url, { 'content-type': 'application/json' }, '{}', 5_000), 503);
  // A port nobody listens on (the server above, closed).
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const port = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  await assert.rejects(client.post(`http://127.0.0.1:${port}/cb`, {}, '{}', 5_000));
  await assert.rejects(client.post('ftp://127.0.0.1/cb', {}, '{}', 5_000), /unsupported protocol/);
});

test('an attempt ends at its timeout when the receiver never answers', async (t) => {
  const s = await server(t, () => {
    // never answers
  });
  const client = createCallbackClient();
  t.after(() => client.close());
  const started = Date.now();
  await assert.rejects(client.post(s.url, { 'content-type': 'application/json' }, '{}', 200), /timed out/);
  const took = Date.now() - started;
  assert.ok(took >= 190 && took < 10_000, `took ${took} ms`);
  assert.equal(s.seen.length, 1);
});

test('close() ends the callbacks in flight, and later ones are refused', async (t) => {
  const s = await server(t, () => {
    // never answers
  });
  const client = createCallbackClient();
  const pending = client.post(s.url, { 'content-type': 'application/json' }, '{}', 60_000);
  // Wait until the request has reached the server, then close the client.
  for (let i = 0; i < 200 && s.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(s.seen.length, 1);
  client.close();
  await assert.rejects(pending, /closed/);
  await assert.rejects(client.post(s.url, {}, '{}', 1_000), /closed/);
});
