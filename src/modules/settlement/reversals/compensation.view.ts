import type { CompensationRow } from './compensation.repo.ts';

// A compensation row (one payment, one day of delay) and its push credit, as the API shows it.
export function compensationView(c: CompensationRow) {
  return {
    payment_id: c.payment_id,
    day: c.day,
    reversal_id: c.reversal_id,
    bank_code: c.bank_code,
    amount: c.amount,
    for_date: c.for_date,
    status: c.status,
    credit_ref: c.credit_ref,
    attempts: c.attempts,
    status_checks: c.status_checks,
    bank: { ref: c.bank_ref, response_code: c.response_code },
    last_error: c.last_error,
    posted_at: c.posted_at.toISOString(),
    paid_at: c.paid_at ? c.paid_at.toISOString() : null,
    retry_id: c.retry_id,
  };
}
