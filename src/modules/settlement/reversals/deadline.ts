import { addDays, daysBetween, istDate, istMidnight } from '../calendar.ts';

// The RBI clock for failed transactions (circular RBI/2019-20/67, DPSS.CO.PD No.629/02.01.014/2019-20,
// 20 September 2019, Annex "Turn Around Time (TAT) for failed transactions", UPI, item (b): a UPI
// merchant payment debited to the customer but not confirmed to the merchant is reversed by T+5;
// past that, ₹100 a day is paid to the customer without a claim. "T" is the day of the transaction
// and is a calendar date (the Annex's notes), so holidays count like any other day.
// Pure functions: the service decides nothing about time anywhere else.

export interface RbiClock {
  /** Days after T by which the reversal must be done (UPI merchant payments: 5). */
  tatDays: number;
  /** Compensation per day of delay, in paise (₹100). */
  compensationPaisePerDay: number;
}

export const RBI_UPI_MERCHANT: RbiClock = { tatDays: 5, compensationPaisePerDay: 10_000 };

/** T: the IST calendar day of the debit. */
export const transactionDate = (debitedAt: Date) => istDate(debitedAt);

/** The first instant past the deadline: 00:00 IST of T + tat + 1 (the deadline is the whole of day T + tat). */
export const deadlineAt = (txnDate: string, clock: RbiClock = RBI_UPI_MERCHANT) =>
  istMidnight(addDays(txnDate, clock.tatDays + 1));

/**
 * Days of delay at `at` (or when the reversal was done): each IST calendar day after T + tat that
 * began before the reversal was done counts as one day. 0 on or before the deadline.
 */
export function delayDays(txnDate: string, at: Date, clock: RbiClock = RBI_UPI_MERCHANT): number {
  return Math.max(0, daysBetween(addDays(txnDate, clock.tatDays), istDate(at)));
}

/** The IST day of delay number `day` (1 = the day after T + tat). */
export const delayDate = (txnDate: string, day: number, clock: RbiClock = RBI_UPI_MERCHANT) =>
  addDays(txnDate, clock.tatDays + day);
