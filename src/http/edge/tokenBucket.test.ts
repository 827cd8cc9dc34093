import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createMemoryBucketStore, step } from './tokenBucket.ts';

test('a bucket allows its burst at once, then refuses with the time until the next token', async () => {
  let now = 1_000_000;
  const store = createMemoryBucketStore({ now: () => now });
  const spec = { ratePerSecond: 2, burst: 3 };
  for (let i = 0; i < 3; i++) assert.equal((await store.take('k', spec)).allowed, true);
  const refused = await store.take('k', spec);
  assert.equal(refused.allowed, false);
  assert.equal(refused.retryAfterMs, 500, 'one token every 500 ms at 2/s');
  now += 499;
  assert.equal((await store.take('k', spec)).allowed, false);
  now += 1;
  assert.equal((await store.take('k', spec)).allowed, true);
  assert.equal((await store.take('other', spec)).allowed, true, 'buckets are per key');
});

test('refill never goes above the burst, and a clock stepping back drains nothing', () => {
  const spec = { ratePerSecond: 10, burst: 5 };
  const a = step(undefined, spec, 1, 0);
  assert.equal(a.state.tokens, 4);
  const b = step(a.state, spec, 1, 60_000);
  assert.equal(b.state.tokens, 4, 'refilled to 5, minus 1');
  const c = step(b.state, spec, 1, 30_000);
  assert.equal(c.result.allowed, true);
  assert.equal(c.state.tokens, 3);
});

test('property: over any run of requests, allowed <= burst + rate x elapsed', () => {
  fc.assert(
    fc.property(
      fc.record({ rate: fc.integer({ min: 1, max: 50 }), burst: fc.integer({ min: 1, max: 20 }) }),
      fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 200 }),
      ({ rate, burst }, gaps) => {
        const spec = { ratePerSecond: rate, burst };
        let state;
        let t = 0;
        let allowed = 0;
        for (const g of gaps) {
          t += g;
          const r = step(state, spec, 1, t);
          state = r.state;
          if (r.result.allowed) allowed++;
          else assert.ok(r.result.retryAfterMs > 0 && r.result.retryAfterMs <= Math.ceil(1000 / rate));
        }
        assert.ok(allowed <= burst + (rate * t) / 1000 + 1e-9, `${allowed} allowed in ${t} ms`);
      },
    ),
  );
});

test('memory stays bounded: past maxKeys, full buckets go first, then the least recently used', async () => {
  let now = 0;
  const store = createMemoryBucketStore({ now: () => now, maxKeys: 100 });
  const spec = { ratePerSecond: 1, burst: 2 };
  await store.take('hot', spec);
  await store.take('hot', spec);
  // A flood of one-off keys: a key in active use keeps its (empty) bucket all along.
  for (let i = 0; i < 2000; i++) {
    await store.take(`k${i}`, spec);
    if (i % 50 === 0)
      assert.equal((await store.take('hot', spec)).allowed, false, `hot still refused after ${i} other keys`);
  }
  now += 10_000;
  assert.equal((await store.take('hot', spec)).allowed, true, 'and refills with time');
});
