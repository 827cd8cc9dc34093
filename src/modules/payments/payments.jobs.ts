import type { AppError } from '../../platform/errors.ts';
import { callBank } from '../banks/index.ts';
import * as repo from './payments.repo.ts';
import type { PaymentEffects } from './payments.apply.ts';
import { addSeconds, type PaymentsDeps } from './payments.types.ts';

// The worker's jobs (roles/worker.ts runs them): each claims what is due with a lease, asks the
// bank, and applies the answer through the same decisions as a callback (payments.apply.ts).

export function createPaymentJobs(
  deps: Pick<PaymentsDeps, 'db' | 'banks' | 'config' | 'metrics' | 'clock' | 'logger'>,
  effects: Pick<PaymentEffects, 'pm' | 'applyPaymentResult' | 'settleRefund'>,
) {
  const { db, banks, metrics, clock, logger } = deps;
  const cfg = deps.config.payments;
  const { pm, applyPaymentResult, settleRefund } = effects;

  return {
    /**
     * Status checks on the UPI cadence: first after statusCheckFirstAfterSeconds, at most
     * statusCheckMax. A check the bank does not answer with certainty (timeout, 5xx, unreadable)
     * counts as a check that learned nothing; after the last one the expiry job has the final word.
     */
    async runStatusChecks(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimDueStatusChecks(tx, now, addSeconds(now, cfg.statusCheckIntervalSeconds), 100),
      );
      for (const p of claimed) {
        const call = await callBank(() => banks.connector(p.bank_code).checkStatus(p.txn_ref));
        try {
          pm.statusChecks.inc({ bank: p.bank_code, outcome: call.kind === 'ok' ? call.value.outcome : 'error' });
          if (call.kind === 'ok') {
            await applyPaymentResult(p.id, call.value, 'worker');
            continue;
          }
          logger.warn(
            { payment_id: p.id, code: call.error.code, delivery: call.kind },
            'status check unanswered; counted as a check',
          );
          if (p.status_checks >= cfg.statusCheckMax) await repo.endStatusChecks(db, p.id);
        } catch (e) {
          logger.warn(
            { payment_id: p.id, code: (e as AppError).code },
            'status check could not be applied; will retry',
          );
        }
      }
      return claimed.length;
    },

    /** Unpaid QR and collect requests past their expiry get one last status check, then expire. */
    async runExpiry(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) => repo.claimExpired(tx, now, addSeconds(now, 30), 100));
      for (const p of claimed) {
        const call = await callBank(() => banks.connector(p.bank_code).checkStatus(p.txn_ref));
        // No certain answer: nothing may be closed on a guess; the lease runs out and we ask again.
        if (call.kind !== 'ok') continue;
        await applyPaymentResult(p.id, call.value, 'worker', { expireIfOpen: true });
      }
      return claimed.length;
    },

    /**
     * Refund status checks, on the payments' cadence: a refund the bank leaves pending or does
     * not know (U48), or does not answer with certainty, is asked statusCheckMax times, then
     * flagged for reconciliation with its amount still reserved.
     */
    async runRefundChecks(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimDueRefundChecks(tx, now, addSeconds(now, cfg.statusCheckIntervalSeconds), 100),
      );
      for (const r of claimed) {
        try {
          const p = (await repo.getPayment(db, r.payment_id))!;
          const call = await callBank(() => banks.connector(p.bank_code).checkRefundStatus(r.refund_ref));
          if (call.kind !== 'ok')
            logger.warn(
              { refund_id: r.id, code: call.error.code, delivery: call.kind },
              'refund status check unanswered; counted as a check',
            );
          // An unanswered check is a check that learned nothing: counted, like "still pending".
          await settleRefund(r.id, call.kind === 'ok' ? call.value : undefined, 'worker');
        } catch (e) {
          logger.warn(
            { refund_id: r.id, code: (e as AppError).code },
            'refund status check could not be applied; will retry',
          );
        }
      }
      return claimed.length;
    },

    async updateReconciliationGauge() {
      metrics.reconciliationPending.set(await repo.countNeedingReconciliation(db));
    },
  };
}
