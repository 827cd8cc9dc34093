import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { findDuplicateKey, findForbiddenCharacter, parseStrictJson } from './strictJson.ts';

test('duplicate keys are found at any depth, also when spelled with escapes', () => {
  assert.equal(findDuplicateKey('{"amount":100,"amount":20000}'), '$.amount');
  assert.equal(findDuplicateKey('{"amount":100,"\\u0061mount":20000}'), '$.amount');
  assert.equal(findDuplicateKey('{"a":{"b":1,"c":{"d":1,"d":2}}}'), '$.a.c.d');
  assert.equal(findDuplicateKey('{"items":[{"x":1},{"x":2,"x":3}]}'), '$.items.1.x');
  assert.equal(
    findDuplicateKey('{"k":1,"o":{"k":2},"a":[{"k":3},{"k":4}]}'),
    undefined,
    'the same name in different objects is fine',
  );
  assert.equal(findDuplicateKey('[1,2,{"a":1}]'), undefined);
  assert.equal(findDuplicateKey('{"a":"{\\"a\\":1,\\"a\\":2}"}'), undefined, 'JSON inside a string is a string');
});

test('parseStrictJson: duplicates and prototype keys refused, JSON syntax stays strict', () => {
  assert.deepEqual(parseStrictJson('{"amount":100}'), { amount: 100 });
  assert.throws(
    () => parseStrictJson('{"amount":100,"amount":20000}'),
    (e: any) => e.code === 'malformed_json' && e.details.duplicate_key === '$.amount',
  );
  assert.throws(
    () => parseStrictJson('{"__proto__":{"x":1}}'),
    (e: any) => e.code === 'malformed_json',
  );
  // jsonc-parser only looks for duplicates; what JSON.parse refuses stays refused.
  assert.throws(
    () => parseStrictJson('{"a":1,}'),
    (e: any) => e.code === 'malformed_json',
  );
  assert.throws(
    () => parseStrictJson('{"a":1 /* c */}'),
    (e: any) => e.code === 'malformed_json',
  );
});

test('control characters and unpaired surrogates are found in values and keys; ordinary text passes', () => {
  assert.equal(findForbiddenCharacter({ name: 'a\u0000b' }, 'body'), 'body.name');
  assert.equal(findForbiddenCharacter({ a: [{ b: 'x' }, { b: '\u001b[31m' }] }, 'body'), 'body.a[1].b');
  assert.equal(findForbiddenCharacter({ 'k\u0000': 1 }, 'body'), 'body."k\\u0000"');
  assert.equal(findForbiddenCharacter('\u007f', 'query'), 'query');
  assert.equal(findForbiddenCharacter({ s: 'x\ud800' }, 'body'), 'body.s');
  assert.equal(findForbiddenCharacter({ s: '\udc00x' }, 'body'), 'body.s');
  for (const ok of [
    'Chai & Co. — Koramangala',
    'line one\nline two\r\n\tindented',
    'नमस्ते',
    '😀 emoji (a surrogate pair)',
    '',
    'ÿ€',
  ]) {
    assert.equal(findForbiddenCharacter({ ok, n: 1, b: true, z: null }, 'body'), undefined, JSON.stringify(ok));
  }
});

test('property: the fast path refuses exactly the texts in which the scanner finds a duplicate', () => {
  // JSON texts written member by member, from a small set of names, so duplicates are common.
  const name = fc.constantFrom('a', 'b', 'amount', '\\u0061', 'a"b', 'a:b', '1');
  const json: fc.Memo<string> = fc.memo((n) =>
    n <= 1
      ? fc.oneof(fc.integer().map(String), fc.constantFrom('"x"', '"a:b"', 'null', 'true', '"\\":"'))
      : fc.oneof(
          fc
            .array(fc.tuple(name, json(n - 1)), { maxLength: 4 })
            .map((ms) => `{${ms.map(([k, v]) => `"${k.replace('"', '\\"')}":${v}`).join(',')}}`),
          fc.array(json(n - 1), { maxLength: 3 }).map((xs) => `[${xs.join(',')}]`),
        ),
  );
  fc.assert(
    fc.property(json(4), (text) => {
      const dup = findDuplicateKey(text);
      let refused: string | undefined;
      try {
        parseStrictJson(text);
      } catch (e: any) {
        refused = e.details?.duplicate_key;
      }
      assert.equal(refused, dup, text);
    }),
    { numRuns: 2000 },
  );
});
