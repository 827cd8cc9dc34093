// The payment state machine: the only legal transitions. Everything that changes a payment's
// status goes through `canTransition`; a late or forged callback can therefore never turn a
// failed or expired payment into a success.

export const PAYMENT_STATUSES = [
  'created',
  'pending',
  'succeeded',
  'failed',
  'expired',
  'partially_refunded',
  'refunded',
] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

export const TRANSITIONS: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  // created -> failed: the bank refused the request before it ever went pending.
  created: ['pending', 'failed'],
  pending: ['succeeded', 'failed', 'expired'],
  succeeded: ['partially_refunded', 'refunded'],
  partially_refunded: ['partially_refunded', 'refunded'],
  failed: [],
  expired: [],
  refunded: [],
};

export const canTransition = (from: PaymentStatus, to: PaymentStatus) => TRANSITIONS[from].includes(to);

/** States in which money has been received (and may be refunded). */
export const PAID_STATUSES: readonly PaymentStatus[] = ['succeeded', 'partially_refunded', 'refunded'];
export const isFinal = (s: PaymentStatus) => TRANSITIONS[s].length === 0 || PAID_STATUSES.includes(s);

/** The status after refunds totalling `refunded` out of `amount` have succeeded. */
export function statusAfterRefund(amount: number, refunded: number): PaymentStatus {
  if (refunded <= 0) return 'succeeded';
  return refunded >= amount ? 'refunded' : 'partially_refunded';
}
