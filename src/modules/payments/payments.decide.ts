import { AppError } from '../../platform/errors.ts';
import type { BankResult } from '../banks/index.ts';
import type { PaymentRow, RefundRow } from './payments.repo.ts';
import { PAID_STATUSES, statusAfterRefund, type PaymentStatus } from './payments.state.ts';

// What a bank's answer does to a payment or a refund, decided apart from doing it. These are
// pure functions of the row as read (under its lock), the answer and who delivered it; the
// service (payments.apply.ts) only carries out the action they return. Which moves are legal at
// all is the table in payments.state.ts: every move decided here is one of its transitions
// (payments.decide.test.ts checks that for every state and every outcome), and the service
// refuses any other.

/** Who delivered the answer: the create or refund request itself, a bank callback, or a worker job. */
export type Source = 'api' | 'callback' | 'worker' | 'reconciliation';

export interface DecideContext {
  source: Source;
  /** The final check at expiry: an answer that leaves the payment open closes it instead. */
  expireIfOpen?: boolean;
  /** Status checks after which a payment or refund is no longer asked about (STATUS_CHECK_MAX). */
  statusCheckMax: number;
}

/** What decide() reads of a payment. */
export type PaymentFacts = Pick<PaymentRow, 'status' | 'amount' | 'status_checks'>;
/** What decideRefund() reads of a refund. */
export type RefundFacts = Pick<RefundRow, 'status' | 'status_checks'>;

/** Why a payment is left for people to settle (payments.reconciliation_reason). */
export type PaymentFlagReason = 'amount_mismatch' | 'deemed' | 'unknown_at_bank' | 'success_after_close';
/** Why a refund is left for people to settle (refunds.reconciliation_reason; its payment gets `refund_<reason>`). */
export type RefundFlagReason = 'success_after_close' | 'deemed' | 'unresolved_at_bank';

export type PaymentAction =
  /** Nothing to write: still open at the bank, or an answer that changes nothing (a duplicate). */
  | { kind: 'none' }
  /** Still open after the last status check: no more checks, the expiry job gives the final one. */
  | { kind: 'end_checks' }
  /** Nothing changes, but the answer is kept in the payment's history. */
  | { kind: 'note'; detail: string }
  /** Left for reconciliation (no more checks), with a history row; `warn`: also logged as a warning. */
  | { kind: 'flag'; reason: PaymentFlagReason; detail: string; warn?: string }
  /**
   * A status change to `to` (through `via` first, with nothing else written on that step),
   * recording the bank's answer as the payment's completion: `responseCode` overrides the
   * bank's code; `payer`: the payer's VPA the bank reported is kept.
   */
  | { kind: 'move'; to: PaymentStatus; via?: PaymentStatus; responseCode?: string; detail?: string; payer?: boolean };

export type RefundAction =
  | { kind: 'none' }
  /** The refund succeeded: counted on its payment, posted to the ledger; the payment moves (refundedPaymentStatus). */
  | { kind: 'succeed' }
  /** The refund failed for certain: its reserved amount is released. */
  | { kind: 'fail' }
  /** Left for reconciliation with its amount still reserved; its payment is flagged too. */
  | { kind: 'flag'; reason: RefundFlagReason; warn?: string };

const isPaid = (s: PaymentStatus) => PAID_STATUSES.includes(s);

/**
 * What a bank's answer about a payment (callback, status check, final check at expiry, or the
 * answer to the create itself) does to it. Legal moves happen; anything else is recorded and,
 * where money may have moved, flagged for reconciliation: never forced through, and a failed or
 * expired payment is never revived.
 */
export function decide(p: PaymentFacts, result: BankResult, ctx: DecideContext): PaymentAction {
  const { outcome } = result;
  if (outcome === 'success' && result.amountPaise !== undefined && result.amountPaise !== p.amount) {
    // The bank says a different amount moved: never book it as paid; people decide.
    return {
      kind: 'flag',
      reason: 'amount_mismatch',
      detail: `bank reported success for ${result.amountPaise} paise; flagged for reconciliation`,
      warn: 'bank reported a different amount',
    };
  }
  if (p.status === 'created' || p.status === 'pending') {
    const created = p.status === 'created';
    switch (outcome) {
      case 'success':
        return created
          ? { kind: 'move', via: 'pending', to: 'succeeded', payer: true }
          : { kind: 'move', to: 'succeeded', payer: true };
      case 'failed':
      case 'reversed':
        return { kind: 'move', to: 'failed' };
      case 'expired':
        // Only a pending payment was ever offered to the payer; one never registered just failed.
        return { kind: 'move', to: created ? 'failed' : 'expired' };
      case 'deemed':
      case 'unknown':
        if (ctx.expireIfOpen && created && outcome === 'unknown') {
          // Written, but its bank never heard of it (the process died around the bank call):
          // nothing can have been paid, so it ends here.
          return {
            kind: 'move',
            to: 'failed',
            responseCode: 'U69',
            detail: 'never reached the bank; closed at expiry',
          };
        }
        return {
          kind: 'flag',
          reason: outcome === 'deemed' ? 'deemed' : 'unknown_at_bank',
          detail: `bank answered ${outcome}; flagged for reconciliation`,
        };
      case 'pending':
        if (ctx.expireIfOpen)
          return created
            ? {
                kind: 'move',
                to: 'failed',
                responseCode: 'U69',
                detail: 'never confirmed by the bank; closed at expiry',
              }
            : { kind: 'move', to: 'expired', responseCode: 'U69', detail: 'expired unpaid' };
        // No more status checks after the last one: the expiry job gives it its final check.
        if (!created && p.status_checks >= ctx.statusCheckMax) return { kind: 'end_checks' };
        return { kind: 'none' };
    }
  }
  // Already final. The same answer again is a duplicate and changes nothing.
  const paid = isPaid(p.status);
  if (outcome === 'success' && !paid) {
    // The customer may have been debited for a payment we already closed: never revive it,
    // flag it so reconciliation reverses or refunds the money (RBI: within T+5).
    return {
      kind: 'flag',
      reason: 'success_after_close',
      detail: 'bank reported success for a closed payment; flagged for reconciliation',
      warn: 'late success for a closed payment',
    };
  }
  if (outcome !== 'success' && outcome !== 'pending' && paid && ctx.source === 'callback')
    return { kind: 'note', detail: `ignored ${outcome} for a paid payment` };
  return { kind: 'none' };
}

/**
 * What a bank's answer about a refund (its answer to the request, a callback or a status check)
 * does to it. `result` undefined: a status check the bank did not answer with certainty, which
 * counts like "still pending". Only answers from status checks (source 'worker') count toward
 * the refund's cadence: after statusCheckMax checks that settle nothing, it is flagged.
 */
export function decideRefund(r: RefundFacts, result: BankResult | undefined, ctx: DecideContext): RefundAction {
  const outcome = result?.outcome ?? 'pending';
  if (r.status !== 'pending') {
    // The customer may have been refunded after we released the amount (and the merchant may
    // refund it again): never revive it, flag it so people decide.
    if (r.status === 'failed' && outcome === 'success')
      return { kind: 'flag', reason: 'success_after_close', warn: 'late success for a closed refund' };
    return { kind: 'none' }; // the same final answer again, or one for a refund people already settled
  }
  switch (outcome) {
    case 'success':
      return { kind: 'succeed' };
    case 'failed':
    case 'reversed':
    case 'expired':
      return { kind: 'fail' };
    case 'deemed':
      // The switch does not know the outcome; reconciliation decides, as for payments.
      return { kind: 'flag', reason: 'deemed' };
    case 'pending':
    case 'unknown':
      // Pending or unknown (U48): asked again, statusCheckMax times at most.
      if (ctx.source === 'worker' && r.status_checks >= ctx.statusCheckMax)
        return { kind: 'flag', reason: 'unresolved_at_bank' };
      return { kind: 'none' };
  }
}

/** States a payment can be refunded in. */
export const REFUNDABLE_STATUSES: readonly PaymentStatus[] = ['succeeded', 'partially_refunded'];

/**
 * Why a refund of `amount` cannot be asked for now, or undefined when it can. The database has
 * the last word (payments.repo reserveRefund: one conditional UPDATE, so concurrent refunds
 * never exceed the amount); this says why it refused, and refuses early what it would refuse.
 */
export function refundRefusal(
  p: Pick<PaymentRow, 'status' | 'amount' | 'refund_reserved' | 'completed_at'>,
  amount: number,
  now: Date,
  refundWindowDays: number,
): AppError | undefined {
  if (!REFUNDABLE_STATUSES.includes(p.status))
    return new AppError('payment_not_refundable', `A ${p.status} payment cannot be refunded`);
  if (p.completed_at && now.getTime() - p.completed_at.getTime() > refundWindowDays * 86_400_000)
    return new AppError('payment_not_refundable', `The refund window of ${refundWindowDays} days has passed`);
  const left = p.amount - p.refund_reserved;
  if (amount > left)
    return new AppError('refund_exceeds_payment', `Only ${left} paise are left to refund`, { refundable_amount: left });
  return undefined;
}

/**
 * The payment's status once a refund of it has succeeded and been counted (`refunded_amount`
 * includes it). From succeeded or partially_refunded only: a refund is reserved on nothing else.
 */
export const refundedPaymentStatus = (p: Pick<PaymentRow, 'amount' | 'refunded_amount'>): PaymentStatus =>
  statusAfterRefund(p.amount, p.refunded_amount);
