import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  TRANSITIONS,
  PAYMENT_STATUSES,
  canTransition,
  statusAfterRefund,
  type PaymentStatus,
} from './payments.state.ts';
import { createTestDb } from '../../platform/testing.ts';
import { fixedClock } from '../../platform/clock.ts';
import { loadConfig } from '../../config.ts';
import { createMetrics } from '../../metrics.ts';
import { createLogger } from '../../platform/log.ts';
import { newId } from '../../platform/ids.ts';
import { isAppError } from '../../platform/errors.ts';
import { createLedgerService, runLedgerVerify } from '../ledger/index.ts';
import type { BankCallback, BankConnector, BankOutcome } from '../banks/index.ts';
import { createPaymentsService } from './payments.service.ts';
import { createTestVault } from '../vault/index.ts';
import { PAYER_VPA_FIELD } from './payments.fields.ts';
import type { Principal } from '../../platform/principal.ts';

test('final states have no way out, and nothing leads back to created', () => {
  for (const s of ['failed', 'expired', 'refunded'] as PaymentStatus[]) assert.deepEqual(TRANSITIONS[s], []);
  for (const s of PAYMENT_STATUSES) assert.equal(canTransition(s, 'created'), false);
  for (const s of ['failed', 'expired'] as PaymentStatus[])
    for (const t of PAYMENT_STATUSES) assert.equal(canTransition(s, t), false);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: 0, max: 1e9 }), (amount, refunded) => {
      const s = statusAfterRefund(amount, Math.min(refunded, amount));
      return refunded === 0 ? s === 'succeeded' : refunded >= amount ? s === 'refunded' : s === 'partially_refunded';
    }),
  );
});

// Any sequence of bank answers (callbacks in any order, duplicates, forgeries of outcome) and
// refund requests keeps the payment on legal paths, never refunds more than was paid, and
// keeps the ledger balanced.
test('property: random bank answers and refunds only ever take legal transitions', async () => {
  const db = await createTestDb();
  try {
    const m = newId('merchant');
    const s = newId('store');
    const terminalId = newId('terminal');
    await db.query(
      `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'P', 'p@simbank', '5411', 'SIMBANK')`,
      [m],
    );
    await db.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'S')`, [s, m]);
    await db.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1, $2, $3)`, [
      terminalId,
      m,
      s,
    ]);
    let refundAnswer: BankOutcome = 'success';
    const connector: BankConnector = {
      code: 'SIMBANK',
      registerIntent: async () => ({ bankRef: 'X' }),
      sendCollect: async () => ({ outcome: 'pending', responseCode: '01' }),
      checkStatus: async () => ({ outcome: 'pending', responseCode: '01' }),
      refund: async () => ({
        outcome: refundAnswer,
        responseCode: refundAnswer === 'success' ? '00' : refundAnswer === 'pending' ? '01' : 'U30',
      }),
      checkRefundStatus: async () => ({ outcome: 'pending', responseCode: '01' }),
      parseCallback: () => {
        throw new Error('unused');
      },
    };
    const svc = createPaymentsService({
      db,
      ledger: createLedgerService(),
      banks: { route: async () => connector, connector: () => connector },
      config: loadConfig({ NODE_ENV: 'test' }),
      metrics: createMetrics(),
      clock: fixedClock('2026-01-01T00:00:00Z'),
      logger: createLogger({ level: 'silent' }),
      payerVpa: (await createTestVault(db, { fields: [PAYER_VPA_FIELD] })).cipher,
    });
    const principal: Principal = { kind: 'api_key', id: 'key_p', merchantId: null, permissions: new Set() };
    const codeFor: Record<string, string> = {
      success: '00',
      failed: 'ZA',
      expired: 'U69',
      deemed: 'U67',
      unknown: 'U48',
      pending: '01',
      reversed: '32',
    };
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('bank' as const),
        outcome: fc.constantFrom<BankOutcome>(
          'success',
          'failed',
          'expired',
          'deemed',
          'pending',
          'reversed',
          'unknown',
        ),
      }),
      fc.record({
        kind: fc.constant('refund' as const),
        amount: fc.integer({ min: -5, max: 1200 }),
        answer: fc.constantFrom<BankOutcome>('success', 'failed', 'pending'),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1000 }), fc.array(step, { maxLength: 8 }), async (amount, steps) => {
        const p = await svc.create(principal, { terminal_id: terminalId, amount, currency: 'INR', method: 'upi_qr' });
        const seen: PaymentStatus[] = [p.status];
        for (const st of steps) {
          if (st.kind === 'bank') {
            const cb: BankCallback = {
              kind: 'payment',
              ref: p.txn_ref,
              result: { outcome: st.outcome, responseCode: codeFor[st.outcome] },
            };
            await svc.handleCallback('SIMBANK', cb);
          } else {
            refundAnswer = st.answer;
            await svc.refund(principal, p.id, { amount: st.amount }).catch((e) => {
              if (!isAppError(e)) throw e;
            });
          }
          const now = await svc.get(principal, p.id);
          const prev = seen[seen.length - 1];
          if (now.status !== prev) assert.ok(canTransition(prev, now.status), `${prev} -> ${now.status}`);
          seen.push(now.status);
          assert.ok(now.refunded_amount <= amount);
          assert.ok(now.refundable_amount >= 0);
          if (['failed', 'expired'].includes(prev)) assert.equal(now.status, prev, 'a closed payment stays closed');
        }
      }),
      { numRuns: 40 },
    );
    const report = await runLedgerVerify(db);
    assert.equal(report.ok, true, JSON.stringify(report.violations[0]));
  } finally {
    await db.close();
  }
});
