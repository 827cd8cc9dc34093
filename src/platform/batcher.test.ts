import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBatcher } from './batcher.ts';

/** A write that records each batch it is given and answers when the test says so. */
function gatedWrite(fail: (item: number) => boolean = () => false) {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  const write = async (items: readonly number[]) => {
    batches.push([...items]);
    await new Promise<void>((r) => gates.push(r));
    if (items.some(fail)) throw new Error(`refused ${items.filter(fail).join(',')}`);
    return items.map((i) => i * 10);
  };
  const openNext = async () => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
  };
  return { batches, write, openNext };
}

test('a lone call is written at once, by itself', async () => {
  const w = gatedWrite();
  const b = createBatcher(w.write);
  const p = b.submit(1);
  await w.openNext();
  assert.equal(await p, 10);
  assert.deepEqual(w.batches, [[1]]);
});

test('calls made while a flush runs share the next one; each gets its own answer, in order', async () => {
  const w = gatedWrite();
  const b = createBatcher(w.write);
  const first = b.submit(1);
  await new Promise((r) => setImmediate(r)); // the first flush is under way
  const rest = [2, 3, 4].map((i) => b.submit(i));
  await w.openNext();
  assert.equal(await first, 10);
  await w.openNext();
  assert.deepEqual(await Promise.all(rest), [20, 30, 40]);
  assert.deepEqual(w.batches, [[1], [2, 3, 4]]);
});

test('calls made in the same turn share the first flush', async () => {
  const w = gatedWrite();
  const b = createBatcher(w.write);
  const all = [1, 2, 3].map((i) => b.submit(i));
  await w.openNext();
  assert.deepEqual(await Promise.all(all), [10, 20, 30]);
  assert.deepEqual(w.batches, [[1, 2, 3]]);
});

test('maxBatch bounds a flush; the rest follow in the next', async () => {
  const w = gatedWrite();
  const b = createBatcher(w.write, { maxBatch: 2 });
  const all = [1, 2, 3, 4, 5].map((i) => b.submit(i));
  for (let i = 0; i < 3; i++) await w.openNext();
  assert.deepEqual(await Promise.all(all), [10, 20, 30, 40, 50]);
  assert.deepEqual(w.batches, [[1, 2], [3, 4], [5]]);
});

test('a failed flush is retried item by item: only the bad item fails, the others are written', async () => {
  const w = gatedWrite((i) => i === 2);
  const b = createBatcher(w.write);
  const all = [1, 2, 3].map((i) =>
    b.submit(i).then(
      (v) => ({ v }),
      (e: Error) => ({ e: e.message }),
    ),
  );
  for (let i = 0; i < 4; i++) await w.openNext();
  assert.deepEqual(await Promise.all(all), [{ v: 10 }, { e: 'refused 2' }, { v: 30 }]);
  assert.deepEqual(w.batches, [[1, 2, 3], [1], [2], [3]]);
});

test('a write that answers for the wrong number of items fails them one by one rather than mixing answers up', async () => {
  let calls = 0;
  const b = createBatcher(async (items: readonly number[]) => {
    calls++;
    return items.length > 1 ? [0] : items.map((i) => i);
  });
  assert.deepEqual(await Promise.all([b.submit(7), b.submit(8)]), [7, 8]);
  assert.equal(calls, 3);
});

test('after a flush the batcher is idle again: the next call is written at once', async () => {
  const w = gatedWrite();
  const b = createBatcher(w.write);
  const p1 = b.submit(1);
  await w.openNext();
  await p1;
  const p2 = b.submit(2);
  await w.openNext();
  assert.equal(await p2, 20);
  assert.deepEqual(w.batches, [[1], [2]]);
});
