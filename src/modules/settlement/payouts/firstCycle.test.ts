import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../../platform/db.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { createTestDb } from '../../../platform/testing.ts';
import { createLedgerService } from '../../ledger/index.ts';
import { parseCutoffs } from '../settlement.settings.ts';
import { createCyclesService } from '../cycles/cycles.service.ts';
import {
  emptySettlement,
  insertPayment,
  insertRefund,
  postPaymentEntries,
  silentLogger,
  verifyAll,
} from '../testkit.ts';
import { createPayoutsService } from './payouts.service.ts';

// A fresh installation's first cycle: the worker closes the last cycle that ended, and its payouts
// take everything completed before it too (payments of the days before, refunds), so nothing the
// merchant was paid for is left out of every payout. The bank's expectation stays the cycle's own.

const ledger = createLedgerService();
const cutoffs = parseCutoffs('09:00,15:00,21:00');
const M = 'mer_000000000000000000000000000000f1';

describe('the first cycle', () => {
  let db: Db;
  before(async () => {
    db = await createTestDb();
  });
  beforeEach(() => emptySettlement(db));
  after(async () => {
    await db?.close();
  });

  async function paid(amount: number, at: Date, refund?: number) {
    const id = await insertPayment(db, {
      merchantId: M,
      amount,
      status: refund ? 'partially_refunded' : 'succeeded',
      createdAt: at,
    });
    const r = refund ? await insertRefund(db, { paymentId: id, amount: refund, completedAt: at }) : undefined;
    await postPaymentEntries(ledger, db, { id, merchantId: M, amount }, r ? { id: r, amount: refund! } : undefined);
    return id;
  }

  test("a fresh install's first cycle pays out everything completed before it; later cycles only their own", async () => {
    const clock = fixedClock('2026-12-03T05:00:00Z'); // 10:30 IST: C1 of the 3rd (21:00 the 2nd – 09:00) ended
    const payouts = createPayoutsService({
      db,
      ledger,
      clock,
      logger: silentLogger,
      accounts: { getSettlementAccount: async () => ({ account_number: '000123456789', ifsc: 'SIMB0000001' }) },
    });
    const cycles = createCyclesService({
      db,
      clock,
      logger: silentLogger,
      cutoffs,
      bankCodes: ['SIMBANK'],
      onClose: payouts.createForCycle,
    });
    await paid(10_000, new Date('2026-11-28T06:00:00Z')); // days before the install's first close
    await paid(5_000, new Date('2026-12-02T08:00:00Z'), 1_000); // C2 of the 2nd, refunded in part
    await paid(2_000, new Date('2026-12-03T01:00:00Z')); // 06:30 IST: in C1 of the 3rd itself
    assert.equal(await cycles.runCycles(), 1);
    const c1 = await cycles.get('2026-12-03-C1');
    assert.equal(c1.settles_from, '1970-01-01T00:00:00.000Z');
    // The bank's file for C1 carries C1's lines only: so does the expectation.
    assert.deepEqual(c1.banks[0].expected, { credit: 2_000, debit: 0, lines: 1 });
    let list = await payouts.list({ merchantId: M, limit: 10 });
    assert.equal(list.data.length, 1);
    const first = list.data[0];
    assert.deepEqual(
      {
        cycle: first.cycle_key,
        payments: first.payments,
        count: first.payments_count,
        refunds: first.refunds,
        net: first.net,
      },
      { cycle: '2026-12-03-C1', payments: 17_000, count: 3, refunds: 1_000, net: 16_000 },
    );
    // Closing an older cycle by hand now would pay the same payments twice: refused.
    await assert.rejects(cycles.close('2026-12-02-C2'), { code: 'conflict' });
    // The next cycle is the usual window.
    await paid(3_000, new Date('2026-12-03T05:30:00Z')); // 11:00 IST: C2
    clock.set('2026-12-03T10:00:00Z');
    assert.equal(await cycles.runCycles(), 1);
    const c2 = await cycles.get('2026-12-03-C2');
    assert.equal(c2.settles_from, null);
    list = await payouts.list({ merchantId: M, cycleKey: '2026-12-03-C2', limit: 10 });
    assert.equal(list.data[0].payments, 3_000);
    await verifyAll(db);
  });
});
