import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findSensitiveAuthData } from './sensitiveData.ts';

test('track data is found wherever it hides; SAD-named fields are refused by name', () => {
  assert.equal(findSensitiveAuthData({ note: ';4111111111111111=25121011234567890?' }), 'note');
  assert.equal(findSensitiveAuthData({ a: { b: ['x', '%B4111111111111111^RAO/ASHA^2512101000000000000'] } }), 'a.b[1]');
  assert.equal(findSensitiveAuthData({ card: { CVV: '' } }), 'card.CVV');
  assert.equal(findSensitiveAuthData({ pin_block: null }), 'pin_block');
});

test('hex transaction references are not mistaken for track 2 (a PAN must stand alone and pass Luhn)', () => {
  // Found by the rewards benchmark: a random reference can contain "<12+ digits>D<7 digits>".
  assert.equal(findSensitiveAuthData({ txn_ref: 'TP019B4E2A123456789012D1234567AB' }), undefined);
  assert.equal(findSensitiveAuthData({ ref: '411111111111111=1234567' }), undefined, 'not Luhn-valid');
  assert.equal(findSensitiveAuthData({ bank_ref: '123456789012', amount: '149.00' }), undefined);
  for (let i = 0; i < 2000; i++) {
    const ref = 'TP' + Array.from({ length: 32 }, () => '0123456789ABCDEF'[Math.floor(Math.random() * 16)]).join('');
    assert.equal(findSensitiveAuthData({ txn_ref: ref }), undefined, ref);
  }
});
