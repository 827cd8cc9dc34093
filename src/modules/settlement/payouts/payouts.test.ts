import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../../platform/db.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { createTestDb } from '../../../platform/testing.ts';
import { createLedgerService } from '../../ledger/index.ts';
import { parseCutoffs } from '../settlement.settings.ts';
import { createCyclesService } from '../cycles/cycles.service.ts';
import { emptySettlement, insertPayment, insertRefund, postPaymentEntries, silentLogger } from '../testkit.ts';
import { verifyAll } from '../testkit.ts';
import { BULK_TRANSFER_FORMATS, renderBatch } from './formats.ts';
import { createPayoutsService, feeFor } from './payouts.service.ts';

// Payouts on a real database: cycles close, payouts are computed per merchant (fees, holds,
// schedules), written into a bank bulk-transfer file and followed to paid or returned, with the
// ledger checked at each step. The merchants' settlement accounts come through the same port the
// merchants module serves (decrypted by the vault there); here a map stands in for it.

const ledger = createLedgerService();
const cutoffs = parseCutoffs('09:00,15:00,21:00');
const A = 'mer_000000000000000000000000000000a1';
const B = 'mer_000000000000000000000000000000b2';
const C = 'mer_000000000000000000000000000000c3';
const accounts = new Map([
  [A, { account_number: '000123456789', ifsc: 'SIMB0000001' }],
  [B, { account_number: '000223456789', ifsc: 'SIMB0000002' }],
  [C, { account_number: '000323456789', ifsc: 'SIMB0000003' }],
]);

describe('payouts', () => {
  let db: Db;
  before(async () => {
    db = await createTestDb();
  });
  beforeEach(() => emptySettlement(db));
  after(async () => {
    await db?.close();
  });

  function setup(clock = fixedClock('2026-12-03T10:00:00Z'), fileFormat?: string) {
    const payouts = createPayoutsService({
      db,
      ledger,
      clock,
      logger: silentLogger,
      accounts: { getSettlementAccount: async (id) => accounts.get(id) ?? null },
      fileFormat,
    });
    const cycles = createCyclesService({
      db,
      clock,
      logger: silentLogger,
      cutoffs,
      bankCodes: ['SIMBANK'],
      onClose: payouts.createForCycle,
    });
    return { clock, payouts, cycles };
  }

  async function paid(merchantId: string, amount: number, at: Date, refund?: number) {
    const id = await insertPayment(db, {
      merchantId,
      amount,
      status: refund ? 'partially_refunded' : 'succeeded',
      createdAt: at,
    });
    const r = refund ? await insertRefund(db, { paymentId: id, amount: refund, completedAt: at }) : undefined;
    await postPaymentEntries(ledger, db, { id, merchantId, amount }, r ? { id: r, amount: refund! } : undefined);
    return id;
  }

  const bal = (code: string) => ledger.balance(db, code);

  test('fees: basis points rounded down plus a fixed fee per payment; zero MDR by default', () => {
    assert.equal(feeFor({ fee_bps: 0, fee_fixed_paise: 0 }, 1_000_000, 10), 0);
    assert.equal(feeFor({ fee_bps: 90, fee_fixed_paise: 0 }, 10_001, 1), 90);
    assert.equal(feeFor({ fee_bps: 0, fee_fixed_paise: 200 }, 10_000, 3), 600);
  });

  test('net per merchant and cycle; schedules, review hold, disputed hold; scheduled → sent → paid / returned', async () => {
    const { clock, payouts, cycles } = setup();
    await payouts.setTerms(A, { schedule: 'T+0', fee_bps: 100 });
    await payouts.setTerms(B, { under_review: true, review_reason: 'KYC refresh' });
    await payouts.setTerms(C, { schedule: 'T+0', disputed_hold: 2_500 });
    const inC2 = new Date('2026-12-03T05:00:00Z');
    await paid(A, 10_000, inC2);
    await paid(A, 5_000, inC2, 1_000);
    await paid(B, 8_000, inC2);
    await paid(C, 3_000, inC2);
    await cycles.close('2026-12-03-C2');
    const list = (await payouts.list({ cycleKey: '2026-12-03-C2', limit: 10 })).data;
    const of = (m: string) => list.find((p) => p.merchant_id === m)!;
    assert.deepEqual(
      { payments: of(A).payments, refunds: of(A).refunds, fees: of(A).fees, net: of(A).net, status: of(A).status },
      { payments: 15_000, refunds: 1_000, fees: 150, net: 13_850, status: 'scheduled' },
    );
    assert.equal(of(A).due_at, '2026-12-03T09:30:00.000Z', 'T+0: due at the cut-off');
    assert.equal(of(B).status, 'held');
    assert.equal(of(C).held, 2_500);
    assert.equal(of(C).net, 500);
    assert.equal(await bal('fee_revenue'), 150);

    // Export: A and C are due (T+0); B is held. One batch file in the bank's format.
    const progress: number[] = [];
    const out = await payouts.exportDue({ onProgress: (d) => progress.push(d) });
    assert.equal(out.batch!.payouts, 2);
    assert.equal(out.batch!.total, 13_850 + 500);
    assert.deepEqual(progress, [1, 2]);
    const lines = out.content!.trim().split('\r\n');
    assert.equal(
      lines[0],
      'Transaction Type,Beneficiary Account Number,IFSC,Beneficiary Name,Amount,Value Date,Customer Reference,Narration',
    );
    assert.ok(lines.some((l) => l.startsWith('NEFT,000123456789,SIMB0000001,') && l.includes(',138.50,03-12-2026,')));
    assert.equal((await payouts.get(of(A).id)).status, 'sent');
    assert.equal(await bal(`payout_in_transit:${A}`), 13_850);
    assert.equal(await bal(`merchant_payable:${A}`), 0);
    assert.equal((await payouts.exportDue()).batch, null, 'nothing sent twice');
    // The same file again, byte for byte.
    assert.equal((await payouts.batchFile(out.batch!.id)).content, out.content);

    // The bank pays A and returns C's.
    await payouts.markPaid(of(A).id, 'UTR0001');
    await payouts.markReturned(of(C).id, 'account closed');
    await assert.rejects(payouts.markPaid(of(C).id, 'x'), { code: 'invalid_state_transition' });
    assert.equal(await bal(`payout_in_transit:${A}`), 0);
    assert.equal(await bal(`merchant_payable:${C}`), 3_000, 'returned: owed again, with the held part');

    // B's review ends: its payout is released. C's dispute is settled: the next cycle brings
    // forward what was held and what came back.
    await payouts.setTerms(B, { under_review: false });
    assert.equal((await payouts.get(of(B).id)).status, 'scheduled');
    await payouts.setTerms(C, { disputed_hold: 0 });
    clock.set('2026-12-03T16:00:00Z'); // 21:30 IST: C3 ended
    await paid(C, 1_000, new Date('2026-12-03T12:00:00Z'));
    await cycles.close('2026-12-03-C3');
    const c3 = (await payouts.list({ cycleKey: '2026-12-03-C3', merchantId: C, limit: 10 })).data[0];
    assert.equal(c3.carried, 500 + 2_500);
    assert.equal(c3.net, 4_000);
    clock.set('2026-12-04T12:00:00Z'); // B's T+1 has come
    const second = await payouts.exportDue();
    assert.equal(second.batch!.payouts, 2);
    assert.equal(second.batch!.total, 8_000 + 4_000);
    await verifyAll(db);
  });

  test('a cycle where refunds exceed payments: nothing due, the shortfall comes off the next payout', async () => {
    const { clock, payouts, cycles } = setup();
    await payouts.setTerms(A, { schedule: 'T+0' });
    // Paid in C1, refunded in C2.
    const id = await insertPayment(db, {
      merchantId: A,
      amount: 4_000,
      status: 'succeeded',
      createdAt: new Date('2026-12-03T02:00:00Z'),
    });
    await postPaymentEntries(ledger, db, { id, merchantId: A, amount: 4_000 });
    await cycles.close('2026-12-03-C1');
    await payouts.exportDue();
    const r = await insertRefund(db, { paymentId: id, amount: 3_000, completedAt: new Date('2026-12-03T05:00:00Z') });
    await ledger.post(db, {
      kind: 'refund.succeeded',
      reference: r,
      lines: [
        { account: { code: `merchant_payable:${A}`, type: 'liability' }, debit: 3_000 },
        { account: { code: 'bank_clearing:SIMBANK', type: 'asset', shards: 32 }, credit: 3_000 },
      ],
    });
    await cycles.close('2026-12-03-C2');
    const c2 = (await payouts.list({ cycleKey: '2026-12-03-C2', limit: 10 })).data[0];
    assert.equal(c2.status, 'nothing_due');
    assert.equal(c2.net, -3_000);
    clock.set('2026-12-03T16:00:00Z');
    await paid(A, 5_000, new Date('2026-12-03T12:00:00Z'));
    await cycles.close('2026-12-03-C3');
    const c3 = (await payouts.list({ cycleKey: '2026-12-03-C3', limit: 10 })).data[0];
    assert.equal(c3.net, 2_000);
    await verifyAll(db);
  });

  test('a merchant without a settlement account is skipped and reported; the mapping is data', async () => {
    const { payouts, cycles } = setup(undefined, 'simbank_bulk_csv');
    const D = 'mer_000000000000000000000000000000d4';
    await payouts.setTerms(D, { schedule: 'T+0' });
    await payouts.setTerms(A, { schedule: 'T+0' });
    await paid(D, 1_000, new Date('2026-12-03T05:00:00Z'));
    await paid(A, 2_000, new Date('2026-12-03T05:00:00Z'));
    await cycles.close('2026-12-03-C2');
    const out = await payouts.exportDue();
    assert.deepEqual(
      out.skipped.map((s) => s.merchant_id),
      [D],
    );
    assert.match(out.content!, /^pyo_[0-9a-f]{32},000123456789,SIMB0000001,2000,IMPS,03122026,mer_0+a1,mer_0+a1\n$/);
    // Spreadsheet formulas never survive into a file.
    const csv = renderBatch(BULK_TRANSFER_FORMATS.generic_neft_csv, [
      {
        payoutId: 'pyo_x',
        merchantId: 'm',
        beneficiaryName: '=HYPERLINK("x"),',
        account: '1',
        ifsc: 'I',
        amountPaise: 1,
        valueDate: new Date('2026-12-03T00:00:00Z'),
        narration: 'n',
      },
    ]);
    assert.ok(csv.includes(`"'=HYPERLINK(""x""),"`));
  });
});
