import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertJsonWithinLimits, measureJson } from './jsonLimits.ts';
import { isAppError } from '../../platform/errors.ts';

/** The reference: depth and longest array computed on the parsed value. */
function reference(v: unknown): { depth: number; longestArray: number } {
  if (v === null || typeof v !== 'object') return { depth: 0, longestArray: 0 };
  const children = Array.isArray(v) ? v : Object.values(v);
  let depth = 0;
  let longest = Array.isArray(v) ? v.length : 0;
  for (const c of children) {
    const r = reference(c);
    depth = Math.max(depth, r.depth);
    longest = Math.max(longest, r.longestArray);
  }
  return { depth: depth + 1, longestArray: longest };
}

test('property: the one-pass scan agrees with the parsed value on depth and longest array', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 8 }), (v) => {
      const text = JSON.stringify(v);
      assert.deepEqual(measureJson(text), reference(JSON.parse(text)), text);
      const pretty = JSON.stringify(v, null, 2);
      assert.deepEqual(measureJson(pretty), reference(v), 'whitespace does not matter');
    }),
    { numRuns: 500 },
  );
});

test('brackets, commas and quotes inside strings do not count', () => {
  assert.deepEqual(measureJson('{"note":"[[[[,,,]]]] \\" {{ ,"}'), { depth: 1, longestArray: 0 });
  assert.deepEqual(measureJson('["a,b","c\\\\",3]'), { depth: 1, longestArray: 3 });
});

test('a hostile body is refused with json_too_complex before anything is parsed', () => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const long = '[' + Array(5000).fill('0').join(',') + ']';
  const limits = { maxDepth: 32, maxArrayLength: 1000 };
  for (const [text, limit] of [
    [deep, 'depth'],
    [long, 'array_length'],
  ] as const) {
    try {
      assertJsonWithinLimits(text, limits);
      assert.fail('accepted');
    } catch (e) {
      assert.ok(isAppError(e));
      assert.equal(e.code, 'json_too_complex');
      assert.equal((e.details as { limit: string }).limit, limit);
    }
  }
  assertJsonWithinLimits('{"a":[1,2,3],"b":{"c":{"d":[]}}}', limits);
});
