import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskVpa, maskPhone, maskPan, maskBankAccount, maskIfsc, maskName } from './mask.ts';

test('VPA: first two characters of the handle and the PSP', () => {
  assert.equal(maskVpa('rahul.k@okaxis'), 'ra****@okaxis');
  assert.equal(maskVpa('ab@x'), '****@x', 'a short handle shows nothing of itself');
  assert.equal(maskVpa(maskVpa('rahul.k@okaxis')), 'ra****@okaxis', 'masking a masked value changes nothing');
  assert.equal(maskVpa(null), null);
});

test('phone: last 4 digits only', () => {
  assert.equal(maskPhone('+91 98765 43210'), '******3210');
  assert.equal(maskPhone('9876543210'), '******3210');
  assert.equal(maskPhone('12'), '****');
});

test('PAN: at most the BIN and the last 4 (PCI DSS 3.4.1)', () => {
  assert.equal(maskPan('4111111111111111'), '411111******1111');
  assert.equal(maskPan('4111 1111 1111 1111'), '411111******1111');
  assert.equal(maskPan('5500000000000000004'), '550000*********0004');
  // 14 digits: BIN + last 4 would leave only 4 hidden, so fewer leading digits show.
  const m = maskPan('36000000000008')!;
  assert.equal(m.length, 14);
  assert.ok(m.replace(/\*/g, '').length <= 8 && (m.match(/\*/g) ?? []).length >= 6, m);
  assert.equal(maskPan('not a pan'), '****');
  for (const pan of ['4111111111111111', '5500000000000000004', '36000000000008', '378282246310005']) {
    const shown = maskPan(pan)!.replace(/\*/g, '');
    assert.ok(shown.length <= 10, `${pan} shows ${shown.length} digits`);
  }
});

test('bank account, IFSC and names', () => {
  assert.equal(maskBankAccount('000123456789'), '********6789');
  assert.equal(maskIfsc('HDFC0001234'), 'HDFC*******');
  assert.equal(maskName('Ravi Kumar'), 'R*** K****');
});
