import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import {
  allSchemas,
  schemaJson,
  RequestEnvelope,
  ResponseOk,
  ResponseError,
  PaymentUpdatedEvent,
  StatusMessage,
  REQUEST_TYPES,
  type RequestType,
} from './schemas.ts';
import { SCHEMA_DIR } from './writeSchemas.ts';

const ajv = new Ajv.default({ strict: false });
addFormats.default(ajv);

test('docs/terminal-protocol/*.schema.json are what the code validates with (npm run docs:terminal-protocol)', () => {
  const expected = allSchemas();
  const onDisk = readdirSync(SCHEMA_DIR)
    .filter((f) => f.endsWith('.schema.json'))
    .sort();
  assert.deepEqual(onDisk, Object.keys(expected).sort());
  for (const [name, s] of Object.entries(expected)) {
    assert.equal(readFileSync(join(SCHEMA_DIR, name), 'utf8'), schemaJson(name, s), `${name} is stale`);
  }
});

test('every example message in docs/terminal-protocol.md is valid', () => {
  const doc = readFileSync(join(SCHEMA_DIR, '..', 'terminal-protocol.md'), 'utf8');
  const examples = [...doc.matchAll(/```json\n(\{ "v": 1,[\s\S]*?)\n```/g)].map((m) => JSON.parse(m[1]));
  assert.ok(examples.length >= 6, `found ${examples.length} examples`);
  const check = (schema: object, value: unknown, what: string) => {
    const v = ajv.compile(schema);
    assert.ok(v(value), `${what}: ${JSON.stringify(v.errors)}`);
  };
  for (const e of examples) {
    if ('ok' in e && e.ok === true) {
      check(ResponseOk, e, 'response');
      const fits = Object.values(REQUEST_TYPES).some((t) => ajv.compile(t.response)(e.body));
      assert.ok(fits, `response body matches no response schema: ${JSON.stringify(e.body).slice(0, 80)}`);
    } else if ('ok' in e) check(ResponseError, e, 'error');
    else if (e.type === 'payment.updated' && 'seq' in e) check(PaymentUpdatedEvent, e, 'event');
    else if ('since' in e) check(StatusMessage, e, 'status');
    else {
      check(RequestEnvelope, e, 'request');
      check(REQUEST_TYPES[e.type as RequestType].request, e.body ?? {}, e.type);
    }
  }
});
