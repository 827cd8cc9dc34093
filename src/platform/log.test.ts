import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, scrubText, redactDeep } from './log.ts';

const VPA = 'ravi.kumar@okaxis';
const PAN = '4111111111111111';
const PHONE = '9876543210';

test('redaction: sensitive keys at any depth, sensitive values inside free text and error messages', () => {
  const lines: string[] = [];
  const log = createLogger({ destination: { write: (s: string) => void lines.push(s) } });
  log.info(
    { a: { b: { c: { payer_vpa: VPA, account_number: '000123456789', nested: [{ card_number: PAN, cvv: '123' }] } } } },
    'deep',
  );
  log.info(
    { note: `customer ${VPA} paid with ${PAN.replace(/(\d{4})/g, '$1 ').trim()} and called from +91 ${PHONE}` },
    'values in text',
  );
  log.warn(`late success for ${VPA}, card ${PAN}`);
  log.error({ err: new Error(`bank refused ${VPA}`) }, 'error objects');
  log.info(
    {
      headers: { 'x-vault-token': 'hvs.secret', authorization: 'Bearer tp_abc' },
      keyring: '{"keys":[]}',
      plaintext: 'x',
    },
    'secrets',
  );
  const all = lines.join('');
  for (const raw of [VPA, PAN, '4111 1111 1111 1111', PHONE, '000123456789', 'hvs.secret', 'tp_abc', '"cvv":"123"']) {
    assert.ok(!all.includes(raw), `log output carries ${raw}:\n${all}`);
  }
  assert.match(all, /ra\*\*\*\*@okaxis/, 'masked VPA stays recognisable');
  assert.match(all, /411111\*+1111/);
  assert.match(all, /\*{6}3210/);
});

test("redaction covers sensitive keys in a child logger's bindings as well as in each line", () => {
  const lines: string[] = [];
  const log = createLogger({ destination: { write: (s: string) => void lines.push(s) } });
  log.child({ payer_vpa: VPA, phone: PHONE, request_id: 'req_1' }).info({ session: { token: 'tok_secret' } }, 'child');
  const all = lines.join('');
  for (const raw of [VPA, PHONE, 'tok_secret']) assert.ok(!all.includes(raw), `log output carries ${raw}:\n${all}`);
  assert.match(all, /"request_id":"req_1"/, 'other bindings stay');
});

test('scrubbing leaves ids, amounts, references and timestamps alone', () => {
  const keep = [
    'pay_0198a1b2c3d4e5f60718293a4b5c6d7e',
    'TP0198A1B2C3D4E5F60718293A4B5C6D7E',
    'bank ref 123456789012',
    '2026-01-01T00:00:00.000Z',
    'amount 1500 paise',
    'node_modules/@fastify/swagger/index.js',
    '1767225600',
  ];
  for (const s of keep) assert.equal(scrubText(s), s);
  // Digits that fail the Luhn check are not a card number.
  assert.equal(scrubText('order 4111111111111112'), 'order 4111111111111112');
  assert.deepEqual(redactDeep({ ok: 1, list: ['a'], when: new Date(0) }), { ok: 1, list: ['a'], when: new Date(0) });
});
