import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { completionOutcome, paymentsMetrics, timedCreate } from './payments.metrics.ts';

test('final states map to bounded outcomes; only bank-side failures are technical declines', () => {
  assert.equal(completionOutcome({ status: 'succeeded', response_code: '00' }), 'succeeded');
  assert.equal(completionOutcome({ status: 'expired', response_code: 'U69' }), 'expired');
  assert.equal(completionOutcome({ status: 'failed', response_code: 'U28' }), 'technical_decline');
  assert.equal(completionOutcome({ status: 'failed', response_code: 'u30' }), 'technical_decline');
  assert.equal(completionOutcome({ status: 'failed', response_code: 'ZA' }), 'declined');
  assert.equal(completionOutcome({ status: 'failed', response_code: null }), 'declined');
  assert.equal(completionOutcome({ status: 'pending', response_code: null }), undefined);
});

test('create is timed with ok or its error code; anything else is internal_error', async () => {
  const registry = new Registry();
  const m = paymentsMetrics(registry);
  assert.equal(paymentsMetrics(registry), m, 'one set per registry');
  const ok = timedCreate(m, async (_p: unknown, _i: { method: string }) => 'done');
  const refused = timedCreate(m, async (_p: unknown, _i: { method: string }) => {
    throw Object.assign(new Error('x'), { code: 'bank_unavailable' });
  });
  const odd = timedCreate(m, async (_p: unknown, _i: { method: string }) => {
    throw Object.assign(new Error('x'), { code: 'Some Driver Code 42' });
  });
  assert.equal(await ok(null, { method: 'upi_qr' }), 'done');
  await assert.rejects(refused(null, { method: 'upi_collect' }));
  await assert.rejects(odd(null, { method: 'card' }));
  const text = await registry.metrics();
  assert.match(text, /tillpoint_payment_create_duration_seconds_count\{method="upi_qr",outcome="ok"\} 1/);
  assert.match(
    text,
    /tillpoint_payment_create_duration_seconds_count\{method="upi_collect",outcome="bank_unavailable"\} 1/,
  );
  assert.match(text, /tillpoint_payment_create_duration_seconds_count\{method="invalid",outcome="internal_error"\} 1/);
});
