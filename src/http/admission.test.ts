import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { AppError } from '../platform/errors.ts';
import { createAdmission, registerAdmission, NOT_PROCESSED_HEADER } from './admission.ts';

// The admission gate on a real Fastify server: how many run, who waits, who is refused (and how a
// refusal says nothing ran), what a stop does to the waiting ones, and that probes never wait.

async function server(opts: { maxInFlight: number; maxQueue: number; queueTimeoutMs: number }) {
  const app = Fastify();
  const registry = new Registry();
  const admission = createAdmission({ ...opts, registry });
  registerAdmission(app, admission);
  app.setErrorHandler((e, _req, reply) => {
    const status = e instanceof AppError ? e.status : 500;
    reply.status(status).send({ error: { code: e instanceof AppError ? e.code : 'internal_error' } });
  });
  const gates: (() => void)[] = [];
  const started: number[] = [];
  let released = false;
  app.get('/work/:n', async (req) => {
    started.push(Number((req.params as { n: string }).n));
    if (!released) await new Promise<void>((r) => gates.push(r));
    return { ok: true };
  });
  /** Lets every handler finish (so a failed test still closes the server). */
  const close = () => {
    released = true;
    for (const g of gates.splice(0)) g();
    return app.close();
  };
  app.get('/readyz', async () => ({ status: 'ready' }));
  app.get('/v1/banks/:code/callbacks', async () => {
    started.push(-1);
    return { received: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as import('node:net').AddressInfo;
  const get = (path: string) =>
    fetch(`http://127.0.0.1:${port}${path}`).then(async (r) => ({
      status: r.status,
      headers: r.headers,
      body: (await r.json()) as any,
    }));
  return { app, admission, registry, gates, started, get, port, close };
}

const tick = (ms = 50) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => boolean, ms = 3000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('not in time');
    await tick(10);
  }
}

test('admission: at most maxInFlight run, the rest wait first come first served; probes never wait', async (t) => {
  const s = await server({ maxInFlight: 2, maxQueue: 10, queueTimeoutMs: 10_000 });
  t.after(() => s.close());
  const answers = [1, 2, 3, 4].map((n) => s.get(`/work/${n}`));
  await until(() => s.started.length === 2 && s.admission.queued === 2);
  assert.deepEqual([...s.started].sort(), [1, 2]);
  assert.equal((await s.get('/readyz')).status, 200, 'a probe is answered while the queue is full of work');
  const callback = s.get('/v1/banks/SIMBANK/callbacks');
  await until(() => s.admission.queued === 3);
  s.gates.shift()!();
  // One place frees: the callback takes it (and, done at once, hands it to the next waiting).
  await until(() => s.started.length >= 4);
  assert.equal(s.started[2], -1, "a bank's callback goes ahead of the waiting requests");
  assert.equal(s.started[3], 3, 'then the first to wait is the first admitted');
  assert.equal((await callback).status, 200);
  while (s.started.length < 5 || s.gates.length > 0) {
    s.gates.shift()?.();
    await tick(10);
  }
  for (const a of await Promise.all(answers)) assert.equal(a.status, 200);
  assert.equal(s.admission.inFlight, 0);
});

test('admission: a full queue and a wait past the timeout are refused 503 service_unavailable, marked not processed, with Retry-After', async (t) => {
  const s = await server({ maxInFlight: 1, maxQueue: 1, queueTimeoutMs: 300 });
  t.after(() => s.close());
  const first = s.get('/work/1');
  await until(() => s.started.length === 1);
  const waiting = s.get('/work/2');
  await until(() => s.admission.queued === 1);
  const full = await s.get('/work/3');
  assert.equal(full.status, 503);
  assert.equal(full.body.error.code, 'service_unavailable');
  assert.equal(full.headers.get(NOT_PROCESSED_HEADER), '1');
  assert.equal(full.headers.get('retry-after'), '1');
  const timedOut = await waiting;
  assert.equal(timedOut.status, 503);
  assert.equal(timedOut.headers.get(NOT_PROCESSED_HEADER), '1');
  assert.deepEqual(s.started, [1], 'neither of them ran');
  s.gates.shift()!();
  assert.equal((await first).status, 200);
  const m = await s.registry.getSingleMetricAsString('tillpoint_http_requests_shed_total');
  assert.match(m, /reason="queue_full"} 1/);
  assert.match(m, /reason="queue_timeout"} 1/);
});

test('admission: a client that goes away while waiting is dropped, its place given to the next', async (t) => {
  const s = await server({ maxInFlight: 1, maxQueue: 10, queueTimeoutMs: 10_000 });
  t.after(() => s.close());
  const first = s.get('/work/1');
  await until(() => s.started.length === 1);
  const gone = request({ host: '127.0.0.1', port: s.port, path: '/work/2' });
  gone.on('error', () => {});
  gone.end();
  await until(() => s.admission.queued === 1);
  gone.destroy();
  await until(() => s.admission.queued === 0);
  const third = s.get('/work/3');
  await until(() => s.admission.queued === 1);
  s.gates.shift()!();
  await until(() => s.started.length === 2);
  assert.deepEqual(s.started, [1, 3], 'the request whose client left never ran');
  s.gates.shift()!();
  assert.equal((await first).status, 200);
  assert.equal((await third).status, 200);
});

test('admission: a stop refuses every waiting request at once (not processed) and waits only for those at work', async () => {
  const s = await server({ maxInFlight: 1, maxQueue: 10, queueTimeoutMs: 60_000 });
  const first = s.get('/work/1');
  await until(() => s.started.length === 1);
  const waiting = [2, 3, 4].map((n) => s.get(`/work/${n}`));
  await until(() => s.admission.queued === 3);
  // As the app's own stop does (closeHttp in src/app.ts): the connection of the request at work
  // becomes idle after its answer and is closed then; Node closes only the connections idle when
  // close() began, so without this the stop waited for the client's keep-alive (~70 s).
  const sweep = setInterval(() => s.app.server.closeIdleConnections(), 100);
  const closed = s.app.close().finally(() => clearInterval(sweep));
  for (const w of await Promise.all(waiting)) {
    assert.equal(w.status, 503);
    assert.equal(w.body.error.code, 'service_unavailable');
    assert.equal(w.headers.get(NOT_PROCESSED_HEADER), '1');
  }
  assert.deepEqual(s.started, [1]);
  s.gates.shift()!();
  assert.equal((await first).status, 200, 'the request at work finished');
  await closed;
});
