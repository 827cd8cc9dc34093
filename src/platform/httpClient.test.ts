import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHttpClient } from './httpClient.ts';

// The failures callers must tell apart (banks/transport.ts): a connection never made (the
// request cannot have arrived), an abort by the caller's budget, and a connection cut after the
// request was written (it may have arrived); and an answer of any status, read whole.

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('the http client: answers read whole, and each kind of failure with its own shape', async (t) => {
  const client = createHttpClient();
  t.after(() => client.close());
  const seen: { method?: string; url?: string; type?: string; body: string }[] = [];
  const ok = await listen((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, type: req.headers['content-type'], body });
      res.writeHead(req.url === '/refused' ? 403 : 200, { 'content-type': 'application/json', 'x-answer': 'yes' });
      res.end(JSON.stringify({ echoed: body.length }));
    });
  });
  const stalls = await listen(() => {});
  const cuts = await listen((req) => req.socket.destroy());
  // Headers and half a body, then nothing more (or the connection cut there).
  const stallsMidBody = await listen((_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('{"half":');
  });
  const cutsMidBody = await listen((_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('{"half":', () => res.socket?.destroy());
  });
  t.after(() =>
    Promise.all([ok, stalls, cuts, stallsMidBody, cutsMidBody].map((s) => new Promise((r) => s.server.close(r)))),
  );

  const a = await client.request(`${ok.url}/v1/intent?x=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"amount":"12.34"}',
    timeoutMs: 5_000,
  });
  assert.equal(a.status, 200);
  assert.equal(a.headers['x-answer'], 'yes');
  assert.deepEqual(JSON.parse(a.body.toString()), { echoed: 18 });
  assert.deepEqual(seen[0], {
    method: 'POST',
    url: '/v1/intent?x=1',
    type: 'application/json',
    body: '{"amount":"12.34"}',
  });
  // A 4xx is an answer, not a failure: the caller decides what it means.
  assert.equal(
    (await client.request(`${ok.url}/refused`, { method: 'POST', body: '{}', timeoutMs: 5_000 })).status,
    403,
  );

  const refusedPort = await listen(() => {});
  const closedUrl = refusedPort.url;
  await new Promise((r) => refusedPort.server.close(r));
  await assert.rejects(
    client.request(closedUrl, { method: 'POST', body: '{}', timeoutMs: 5_000 }),
    (e: Error & { cause?: { code?: string } }) => e instanceof TypeError && e.cause?.code === 'ECONNREFUSED',
  );
  await assert.rejects(
    client.request(stalls.url, { method: 'POST', body: '{}', timeoutMs: 200 }),
    (e: Error) => e.name === 'TimeoutError',
  );
  await assert.rejects(
    client.request(stallsMidBody.url, { method: 'POST', body: '{}', timeoutMs: 200 }),
    (e: Error) => e.name === 'TimeoutError',
  );
  await assert.rejects(
    client.request(cutsMidBody.url, { method: 'POST', body: '{}', timeoutMs: 5_000 }),
    (e: Error & { cause?: { code?: string } }) => e instanceof TypeError && e.cause?.code !== 'ECONNREFUSED',
  );
  for (const s of [stalls, stallsMidBody]) s.server.closeAllConnections();
  await assert.rejects(
    client.request(cuts.url, { method: 'POST', body: '{}', timeoutMs: 5_000 }),
    (e: Error & { cause?: { code?: string } }) => e instanceof TypeError && e.cause?.code !== 'ECONNREFUSED',
  );
  await assert.rejects(
    client.request('ftp://127.0.0.1/x', { method: 'GET', timeoutMs: 5_000 }),
    (e: Error & { cause?: { code?: string } }) => e instanceof TypeError && e.cause?.code === 'ERR_INVALID_PROTOCOL',
  );
  const pinned = createHttpClient({ ca: 'not used: plain http is refused first' });
  await assert.rejects(
    pinned.request(`${ok.url}/`, { method: 'GET', timeoutMs: 5_000 }),
    (e: Error & { cause?: { code?: string } }) => e instanceof TypeError && e.cause?.code === 'ERR_INVALID_PROTOCOL',
  );
  pinned.close();
});
