import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from './errors.ts';
import { errorReply, INTERNAL_ERROR_MESSAGE } from './errorReply.ts';

// The one mapping from anything thrown to what a caller is told, shared by the HTTP API and the
// terminal protocol.

function logged() {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  return { lines, log: { error: (obj: object, msg: string) => void lines.push({ obj: obj as never, msg }) } };
}

test('an AppError answers for itself, with its status and details, and is not logged', () => {
  const { lines, log } = logged();
  const r = errorReply(new AppError('refund_exceeds_payment', 'Only 40 left', { refundable_amount: 40 }), {
    log,
    msg: 'x',
  });
  assert.deepEqual(r, {
    code: 'refund_exceeds_payment',
    status: 409,
    message: 'Only 40 left',
    details: { refundable_amount: 40 },
  });
  assert.equal(lines.length, 0);
});

test('database errors map by SQLSTATE; an unreachable database is 503', () => {
  const { log } = logged();
  assert.equal(errorReply(Object.assign(new Error('dup'), { code: '23505' }), { log, msg: 'x' }).code, 'conflict');
  const down = errorReply(Object.assign(new Error('gone'), { code: '57P01' }), { log, msg: 'x' });
  assert.equal(down.code, 'service_unavailable');
  assert.equal(down.status, 503);
});

test('anything else is internal_error: it tells the caller nothing and is logged without its message', () => {
  const { lines, log } = logged();
  const secret = 'value 4111111111111111 from the query';
  const r = errorReply(Object.assign(new TypeError(secret), { code: 'EWHATEVER' }), {
    log,
    msg: 'terminal request failed',
    context: { request_type: 'payment.create' },
  });
  assert.deepEqual(r, { code: 'internal_error', status: 500, message: INTERNAL_ERROR_MESSAGE });
  assert.equal(lines.length, 1);
  assert.equal(lines[0].msg, 'terminal request failed');
  assert.equal(lines[0].obj.request_type, 'payment.create');
  assert.deepEqual(
    { type: (lines[0].obj.err as { type: string }).type, code: (lines[0].obj.err as { code: string }).code },
    { type: 'TypeError', code: 'EWHATEVER' },
  );
  assert.match(String((lines[0].obj.err as { stack: string }).stack), /^\s+at /, 'where it was thrown is logged');
  assert.ok(!JSON.stringify(lines[0]).includes('4111111111111111'), 'the message is not logged, not even in the stack');
});

test("a transport's own errors are translated first", () => {
  const { log } = logged();
  const r = errorReply(Object.assign(new Error('too big'), { code: 'FST_X' }), {
    log,
    msg: 'x',
    translate: (e) =>
      (e as { code?: string }).code === 'FST_X' ? new AppError('payload_too_large', 'Too large') : undefined,
  });
  assert.deepEqual(r, { code: 'payload_too_large', status: 413, message: 'Too large' });
});
