import { AppError } from '../../platform/errors.ts';
import { isId } from '../../platform/ids.ts';
import { maskVpa } from '../../platform/mask.ts';
import type { Principal } from '../../platform/principal.ts';
import { canAccessMerchant, merchantScope } from '../../platform/principal.ts';
import { page } from '../../http/pagination.ts';
import * as repo from './payments.repo.ts';
import type { PaymentRow, RefundRow } from './payments.repo.ts';
import { withPayerVpa, PAYER_VPA_FIELD } from './payments.fields.ts';
import type { PaymentsDeps } from './payments.types.ts';
import { REFUNDABLE_STATUSES } from './payments.decide.ts';

// The read side: what callers see of payments and refunds, and the reads that answer them.
// Nothing here writes.

/**
 * API view of a payment: the payer's VPA is masked, internal bookkeeping is left out.
 * `refundable`: what is left to refund, as the refund's reservation counts it (repo.refundableAmounts:
 * refunds in flight and operator reversals taken off); the views read it.
 */
export function paymentView(p: PaymentRow, refundable: number) {
  return {
    id: p.id,
    terminal_id: p.terminal_id,
    store_id: p.store_id,
    merchant_id: p.merchant_id,
    method: p.method,
    amount: p.amount,
    currency: p.currency,
    status: p.status,
    payer_vpa: maskVpa(p.payer_vpa),
    note: p.note,
    upi_uri: p.upi_uri,
    txn_ref: p.txn_ref,
    bank: { code: p.bank_code, ref: p.bank_ref, response_code: p.response_code },
    refunded_amount: p.refunded_amount,
    refundable_amount: refundable,
    needs_reconciliation: p.needs_reconciliation,
    expires_at: p.expires_at.toISOString(),
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
    completed_at: p.completed_at ? p.completed_at.toISOString() : null,
  };
}
export type PaymentView = ReturnType<typeof paymentView>;

export function refundView(r: RefundRow) {
  return {
    id: r.id,
    payment_id: r.payment_id,
    amount: r.amount,
    status: r.status,
    reason: r.reason,
    bank: { ref: r.bank_ref, response_code: r.response_code },
    needs_reconciliation: r.needs_reconciliation,
    created_at: r.created_at.toISOString(),
    completed_at: r.completed_at ? r.completed_at.toISOString() : null,
  };
}
export type RefundView = ReturnType<typeof refundView>;

export function createPaymentViews(deps: Pick<PaymentsDeps, 'db' | 'payerVpa'>) {
  const { db } = deps;

  /** The payment, if it exists and the principal may see it (else payment_not_found), with the payer's VPA decrypted. */
  async function visiblePayment(p: Principal, id: string): Promise<PaymentRow> {
    const row = isId('payment', id) ? await repo.getPayment(db, id) : undefined;
    if (!row || !canAccessMerchant(p, row.merchant_id)) throw new AppError('payment_not_found', 'Payment not found');
    return withPayerVpa(deps.payerVpa, row);
  }

  /**
   * The view of each row, with what is left to refund read in one statement. A payment not in a
   * refundable status has nothing to refund (the definition's first condition), so a page or a
   * create's answer without one costs no read.
   */
  async function views(rows: PaymentRow[]): Promise<PaymentView[]> {
    const ids = rows.filter((r) => REFUNDABLE_STATUSES.includes(r.status)).map((r) => r.id);
    const refundable = await repo.refundableAmounts(db, ids);
    return rows.map((r) => paymentView(r, refundable.get(r.id) ?? 0));
  }

  return {
    visiblePayment,

    /** The API view of a payment row (its payer's VPA already decrypted). */
    async view(row: PaymentRow): Promise<PaymentView> {
      return (await views([row]))[0];
    },

    async get(principal: Principal, id: string): Promise<PaymentView> {
      return (await views([await visiblePayment(principal, id)]))[0];
    },

    async list(
      principal: Principal,
      f: Omit<repo.PaymentFilter, 'merchantId' | 'payerVpaIndexes'> & { merchantId?: string; payerVpa?: string },
    ) {
      const merchantId = merchantScope(principal, f.merchantId);
      // By payer: the blind index under each live key version (no plaintext VPA in the query).
      const payerVpaIndexes =
        f.payerVpa !== undefined ? await deps.payerVpa.lookupIndexes(PAYER_VPA_FIELD, f.payerVpa) : undefined;
      const rows = await repo.listPayments(db, { ...f, merchantId, payerVpaIndexes });
      const pg = page(rows, f.limit);
      const data = await Promise.all(pg.data.map((r) => withPayerVpa(deps.payerVpa, r)));
      return { data: await views(data), next_cursor: pg.next_cursor };
    },

    async listRefunds(principal: Principal, paymentId: string) {
      const p = await visiblePayment(principal, paymentId);
      return { data: (await repo.listRefunds(db, p.id)).map(refundView), next_cursor: null };
    },
  };
}
