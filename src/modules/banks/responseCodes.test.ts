import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outcomeForCode, RESPONSE_CODES, toBankResult, isKnownCode } from './responseCodes.ts';
import type { BankOutcome } from './types.ts';

test('every code in UPI.md maps to its final state', () => {
  const expected: Record<string, BankOutcome> = {
    '00': 'success',
    '01': 'pending',
    ZA: 'failed',
    ZM: 'failed',
    Z9: 'failed',
    Z8: 'failed',
    Z7: 'failed',
    ZU: 'failed',
    U69: 'expired',
    U16: 'failed',
    U28: 'failed',
    U30: 'failed',
    U31: 'failed',
    U48: 'unknown',
    U67: 'deemed',
    U68: 'deemed',
    BT: 'deemed',
    UT: 'deemed',
    RB: 'deemed',
    RR: 'deemed',
    '21': 'reversed',
    '32': 'reversed',
    '96': 'success',
  };
  for (const [code, outcome] of Object.entries(expected)) assert.equal(outcomeForCode(code), outcome, code);
  assert.deepEqual(
    Object.keys(RESPONSE_CODES).sort(),
    Object.keys(expected).sort(),
    'table and doc list the same codes',
  );
});

test('codes are matched case- and space-insensitively', () => {
  assert.equal(outcomeForCode(' za '), 'failed');
  assert.equal(isKnownCode('u69'), true);
});

test('an unrecognised code is deemed (reconcile), never failed', () => {
  assert.equal(outcomeForCode('XY'), 'deemed');
  assert.equal(outcomeForCode(''), 'deemed');
  assert.equal(toBankResult('QQ').message, 'unrecognised response code');
});

test('toBankResult carries the bank reference and payer VPA', () => {
  assert.deepEqual(toBankResult('00', { bankRef: '123456789012', payerVpa: 'ravi@okbank' }), {
    outcome: 'success',
    responseCode: '00',
    bankRef: '123456789012',
    payerVpa: 'ravi@okbank',
    message: 'success',
  });
});
