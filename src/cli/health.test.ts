import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, Counter } from 'prom-client';
import { startHealthServer } from './health.ts';

test('health port: liveness, readiness from the check, draining, metrics, nothing else', async () => {
  const registry = new Registry();
  new Counter({ name: 'tillpoint_probe_test_total', help: 'test', registers: [registry] }).inc(3);
  let ready = true;
  const h = await startHealthServer({
    host: '127.0.0.1',
    port: 0,
    registry,
    ready: async () => {
      if (!ready) throw new Error('database down');
      return true;
    },
  });
  try {
    assert.equal((await fetch(`${h.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${h.url}/readyz`)).status, 200);
    ready = false;
    const down = await fetch(`${h.url}/readyz`);
    assert.equal(down.status, 503, 'a failing check is not ready');
    assert.deepEqual(await down.json(), { status: 'not_ready' });
    ready = true;
    h.drain();
    assert.equal((await fetch(`${h.url}/readyz`)).status, 503, 'draining leaves the endpoints');
    assert.equal((await fetch(`${h.url}/healthz`)).status, 200, 'but stays alive while it drains');
    const m = await fetch(`${h.url}/metrics`);
    assert.match(await m.text(), /tillpoint_probe_test_total 3/);
    assert.equal((await fetch(`${h.url}/v1/payments`)).status, 404);
    assert.equal((await fetch(`${h.url}/healthz`, { method: 'POST' })).status, 405);
  } finally {
    await h.close();
  }
});
