import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareBooks, type OurPayment } from '../bench/lib/books.ts';

// The chaos run's "money in the ledger not matching the banks' view" (bench/lib/books.ts): each
// way our side and the bank's books can differ, and which of them is a mismatch.

const pay = (over: Partial<OurPayment>): OurPayment => ({
  id: 'pay_x',
  txn_ref: 'T1',
  status: 'succeeded',
  amount: 1000,
  flagged: false,
  posted: 1000,
  reversal: false,
  ...over,
});

test('ledger vs the bank: matches, flagged differences, open ones and mismatches', () => {
  const bank = {
    payments: [
      { txn_ref: 'OK', amount_paise: 1000, debited: true },
      { txn_ref: 'DECLINED', amount_paise: 1000, debited: false },
      { txn_ref: 'LATE', amount_paise: 1000, debited: true },
      { txn_ref: 'REVERSING', amount_paise: 1000, debited: true },
      { txn_ref: 'PENDING', amount_paise: 1000, debited: true },
      { txn_ref: 'LOST', amount_paise: 1000, debited: true },
      { txn_ref: 'PHANTOM', amount_paise: 1000, debited: false },
      { txn_ref: 'AMOUNT', amount_paise: 1200, debited: true },
      { txn_ref: 'NOT_OURS', amount_paise: 500, debited: true },
      { txn_ref: 'NOT_OURS_DECLINED', amount_paise: 500, debited: false },
    ],
    refunds: [
      { refund_ref: 'R_OK', amount_paise: 300 },
      { refund_ref: 'R_PENDING', amount_paise: 300 },
      { refund_ref: 'R_FAILED', amount_paise: 300 },
      { refund_ref: 'RV1', amount_paise: 1000 },
      { refund_ref: 'R_UNKNOWN', amount_paise: 300 },
    ],
  };
  const r = compareBooks(bank, {
    payments: [
      pay({ id: 'ok', txn_ref: 'OK' }),
      pay({ id: 'declined', txn_ref: 'DECLINED', status: 'failed', posted: null }),
      // Failed here, debited there, flagged by us (success_after_close): reported apart.
      pay({ id: 'late', txn_ref: 'LATE', status: 'failed', posted: null, flagged: true }),
      pay({ id: 'reversing', txn_ref: 'REVERSING', status: 'expired', posted: null, reversal: true }),
      pay({ id: 'pending', txn_ref: 'PENDING', status: 'pending', posted: null }),
      // Failed here, debited there, no flag, no reversal: the customer's money is unaccounted for.
      pay({ id: 'lost', txn_ref: 'LOST', status: 'failed', posted: null }),
      pay({ id: 'phantom', txn_ref: 'PHANTOM', posted: 1000 }),
      pay({ id: 'amount', txn_ref: 'AMOUNT', posted: 1000 }),
    ],
    refunds: [
      { refund_ref: 'R_OK', status: 'succeeded', amount: 300, flagged: false, posted: 300 },
      { refund_ref: 'R_PENDING', status: 'pending', amount: 300, flagged: false, posted: null },
      { refund_ref: 'R_FAILED', status: 'failed', amount: 300, flagged: false, posted: null },
      { refund_ref: 'R_NEVER', status: 'failed', amount: 300, flagged: false, posted: null },
    ],
    reversals: [{ refund_ref: 'RV1', status: 'succeeded', amount: 1000 }],
  });
  assert.deepEqual(r.compared, { payments: 8, refunds: 4, reversals: 1 });
  assert.equal(r.flagged, 2);
  assert.equal(r.open, 2);
  assert.equal(r.matched, 5);
  assert.deepEqual(r.examples.map((e) => e.ref).sort(), [
    'NOT_OURS',
    'R_FAILED',
    'R_UNKNOWN',
    'amount',
    'lost',
    'phantom',
  ]);
  assert.equal(r.mismatches, 6);
});
