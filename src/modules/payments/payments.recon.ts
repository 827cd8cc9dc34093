import type { Queryable } from '../../platform/db.ts';

// What reconciliation with the banks' files (src/modules/settlement/recon) reads and changes
// here, in one place: payments and refunds as one bank's file sees them, and the flag a resolved
// reconciliation clears. Kept as SQL fragments because matching a file of a million lines is a
// join in the database, not a million lookups.

/**
 * Payments of the bank given as parameter `bankParam` (e.g. '$2'), with columns id, txn_ref,
 * bank_ref, amount, at (completion, else creation), merchant_id, flagged, and state:
 * 'success' (succeeded, partially or wholly refunded), 'closed' (failed, expired), 'open'.
 */
export const reconPaymentsSql = (bankParam: string) =>
  `SELECT id, txn_ref, bank_ref, amount, coalesce(completed_at, created_at) AS at, merchant_id,
          needs_reconciliation AS flagged, id AS payment_id,
          CASE WHEN status IN ('succeeded', 'partially_refunded', 'refunded') THEN 'success'
               WHEN status IN ('failed', 'expired') THEN 'closed' ELSE 'open' END AS state
     FROM payments.payments WHERE bank_code = ${bankParam}`;

/** Refunds of payments of that bank, in the same columns (txn_ref is the refund's own reference). */
export const reconRefundsSql = (bankParam: string) =>
  `SELECT r.id, r.refund_ref AS txn_ref, r.bank_ref, r.amount, coalesce(r.completed_at, r.created_at) AS at,
          p.merchant_id, r.needs_reconciliation AS flagged, r.payment_id,
          CASE r.status WHEN 'succeeded' THEN 'success' WHEN 'failed' THEN 'closed' ELSE 'open' END AS state
     FROM payments.refunds r JOIN payments.payments p ON p.id = r.payment_id WHERE p.bank_code = ${bankParam}`;

export interface FlaggedPayment {
  id: string;
  bank_code: string;
  amount: number;
  reconciliation_reason: string | null;
  flagged_refund_id: string | null;
}

/** Payments flagged needs_reconciliation (with a flagged refund of theirs, if any), oldest first. */
export async function listFlaggedPayments(q: Queryable, limit: number): Promise<FlaggedPayment[]> {
  const { rows } = await q.query<FlaggedPayment>(
    `SELECT p.id, p.bank_code, p.amount, p.reconciliation_reason,
            (SELECT r.id FROM payments.refunds r WHERE r.payment_id = p.id AND r.needs_reconciliation ORDER BY r.id LIMIT 1) AS flagged_refund_id
       FROM payments.payments p WHERE p.needs_reconciliation ORDER BY p.id LIMIT $1`,
    [limit],
  );
  return rows;
}

/**
 * Clears the reconciliation flag of a payment and of its flagged refunds: reconciliation has
 * settled it (a bank file showed it, or an operator resolved it). Returns whether it was flagged.
 */
export async function clearReconciliationFlag(q: Queryable, paymentId: string, now: Date): Promise<boolean> {
  await q.query(
    `UPDATE payments.refunds SET needs_reconciliation = false WHERE payment_id = $1 AND needs_reconciliation`,
    [paymentId],
  );
  const { rowCount } = await q.query(
    `UPDATE payments.payments SET needs_reconciliation = false, updated_at = $2 WHERE id = $1 AND needs_reconciliation`,
    [paymentId, now],
  );
  return rowCount > 0;
}
