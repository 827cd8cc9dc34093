import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findDuplicateKey, findForbiddenCharacter, parseStrictJson } from './strictJson.ts';

test('duplicate keys are found at any depth, also when spelled with escapes', () => {
  assert.equal(findDuplicateKey('{"amount":100,"amount":20000}'), '$.amount');
  assert.equal(findDuplicateKey('{"amount":100,"\\u0061mount":20000}'), '$.amount');
  assert.equal(findDuplicateKey('{"a":{"b":1,"c":{"d":1,"d":2}}}'), '$.a.c.d');
  assert.equal(findDuplicateKey('{"items":[{"x":1},{"x":2,"x":3}]}'), '$.items.1.x');
  assert.equal(findDuplicateKey('{"k":1,"o":{"k":2},"a":[{"k":3},{"k":4}]}'), undefined, 'the same name in different objects is fine');
  assert.equal(findDuplicateKey('[1,2,{"a":1}]'), undefined);
  assert.equal(findDuplicateKey('{"a":"{\\"a\\":1,\\"a\\":2}"}'), undefined, 'JSON inside a string is a string');
});

test('parseStrictJson: duplicates and prototype keys refused, JSON syntax stays strict', () => {
  assert.deepEqual(parseStrictJson('{"amount":100}'), { amount: 100 });
  assert.throws(() => parseStrictJson('{"amount":100,"amount":20000}'), (e: any) => e.code === 'malformed_json' && e.details.duplicate_key === '$.amount');
  assert.throws(() => parseStrictJson('{"__proto__":{"x":1}}'), (e: any) => e.code === 'malformed_json');
  // jsonc-parser only looks for duplicates; what JSON.parse refuses stays refused.
  assert.throws(() => parseStrictJson('{"a":1,}'), (e: any) => e.code === 'malformed_json');
  assert.throws(() => parseStrictJson('{"a":1 /* c */}'), (e: any) => e.code === 'malformed_json');
});

test('control characters and unpaired surrogates are found in values and keys; ordinary text passes', () => {
  assert.equal(findForbiddenCharacter({ name: 'a\u0000b' }, 'body'), 'body.name');
  assert.equal(findForbiddenCharacter({ a: [{ b: 'x' }, { b: '\u001b[31m' }] }, 'body'), 'body.a[1].b');
  assert.equal(findForbiddenCharacter({ 'k\u0000': 1 }, 'body'), 'body."k\\u0000"');
  assert.equal(findForbiddenCharacter('\u007f', 'query'), 'query');
  assert.equal(findForbiddenCharacter({ s: 'x\ud800' }, 'body'), 'body.s');
  assert.equal(findForbiddenCharacter({ s: '\udc00x' }, 'body'), 'body.s');
  for (const ok of ['Chai & Co. — Koramangala', 'line one\nline two\r\n\tindented', 'नमस्ते', '😀 emoji (a surrogate pair)', '', 'ÿ€']) {
    assert.equal(findForbiddenCharacter({ ok, n: 1, b: true, z: null }, 'body'), undefined, JSON.stringify(ok));
  }
});
