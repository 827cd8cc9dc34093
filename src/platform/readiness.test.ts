import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadiness } from './readiness.ts';
import { fromDatabaseError, isDatabaseUnavailable } from './errors.ts';

test('readiness: every check must pass; draining wins; a hung check counts as failed; nothing is latched', async () => {
  let dbUp = true;
  const r = createReadiness({
    timeoutMs: 100,
    checks: [
      {
        name: 'database',
        check: async () => {
          if (!dbUp) throw new Error('ECONNREFUSED');
          return true;
        },
      },
    ],
  });
  assert.deepEqual(await r.status(), { ready: true, draining: false, checks: { database: 'ok' } });
  dbUp = false;
  assert.deepEqual(await r.status(), { ready: false, draining: false, checks: { database: 'failed' } });
  dbUp = true;
  assert.equal((await r.status()).ready, true, 'ready again by itself');
  r.add({ name: 'mqtt_broker', check: () => new Promise<boolean>(() => {}) }); // never answers
  const hung = await r.status();
  assert.deepEqual(hung.checks, { database: 'ok', mqtt_broker: 'failed' });
  assert.equal(hung.ready, false);
  const r2 = createReadiness({ checks: [{ name: 'database', check: () => true }] });
  r2.drain();
  assert.deepEqual(await r2.status(), { ready: false, draining: true, checks: { database: 'ok' } });
});

test('a database that is restarting or gone is 503 service_unavailable, not 500', () => {
  for (const code of ['57P01', '57P03', '08006', '08001', '53300', 'ECONNREFUSED']) {
    assert.equal(isDatabaseUnavailable({ code }), true, code);
    assert.equal(fromDatabaseError(Object.assign(new Error('x'), { code }))?.code, 'service_unavailable', code);
  }
  assert.equal(fromDatabaseError(new Error('Connection terminated unexpectedly'))?.code, 'service_unavailable');
  assert.equal(isDatabaseUnavailable({ code: '23505' }), false);
  assert.equal(fromDatabaseError({ code: '23505' })?.code, 'conflict');
  assert.equal(fromDatabaseError(new Error('something else')), undefined);
});
