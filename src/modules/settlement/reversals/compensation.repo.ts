import type { Queryable } from '../../../platform/db.ts';

// SQL for paying compensation: one push credit per compensation row (settlement.compensations,
// migration 0027). Each state change is one compare-and-set on (payment_id, day, status).

export type CreditStatus = 'legacy' | 'due' | 'pending' | 'paid' | 'failed';

export interface CompensationRow {
  payment_id: string;
  day: number;
  reversal_id: string;
  bank_code: string;
  amount: number;
  for_date: string;
  posted_at: Date;
  status: CreditStatus;
  credit_ref: string | null;
  attempts: number;
  status_checks: number;
  next_attempt_at: Date | null;
  bank_ref: string | null;
  response_code: string | null;
  last_error: string | null;
  paid_at: Date | null;
  /** The operator retry its current credit comes from (compensation_retries), or null. */
  retry_id: string | null;
}

const COLUMNS = [
  'payment_id',
  'day',
  'reversal_id',
  'bank_code',
  'amount',
  'for_date',
  'posted_at',
  'status',
  'credit_ref',
  'attempts',
  'status_checks',
  'next_attempt_at',
  'bank_ref',
  'response_code',
  'last_error',
  'paid_at',
  'retry_id',
];
/** The columns as CompensationRow wants them (a date as text), optionally qualified by a table alias. */
const cols = (alias = '') =>
  COLUMNS.map((c) => (c === 'for_date' ? `to_char(${alias}for_date, 'YYYY-MM-DD') AS for_date` : `${alias}${c}`)).join(
    ', ',
  );
const COLS = cols();
const RET = cols('c.');

const num = (r: CompensationRow): CompensationRow => ({ ...r, amount: Number(r.amount) });

/**
 * Claims credits due for work, oldest first, skipping rows another worker holds: the claim pushes
 * next_attempt_at out to `leaseUntil`, so a worker that dies mid-call gives it back by itself.
 * `status` 'due': credits to send; 'pending': status checks.
 */
export async function claimCredits(
  tx: Queryable,
  status: 'due' | 'pending',
  now: Date,
  leaseUntil: Date,
  limit: number,
): Promise<CompensationRow[]> {
  const counter = status === 'due' ? 'attempts' : 'status_checks';
  const r = await tx.query<CompensationRow>(
    `WITH work AS (
       SELECT payment_id, day FROM settlement.compensations
        WHERE status = $1 AND (next_attempt_at IS NULL OR next_attempt_at <= $2)
        ORDER BY posted_at, payment_id, day
        LIMIT $4
        FOR UPDATE SKIP LOCKED
     )
     UPDATE settlement.compensations c SET next_attempt_at = $3, ${counter} = c.${counter} + 1
       FROM work WHERE c.payment_id = work.payment_id AND c.day = work.day
     RETURNING ${RET}`,
    [status, now, leaseUntil, limit],
  );
  return r.rows.map(num).sort((a, b) => a.posted_at.getTime() - b.posted_at.getTime() || a.day - b.day);
}

export interface CreditUpdate {
  to: CreditStatus;
  nextAttemptAt: Date | null;
  bankRef?: string | null;
  responseCode?: string | null;
  lastError?: string | null;
  paidAt?: Date | null;
}

/** Compare-and-set: moves the credit only from `from`. undefined: someone else moved it. */
export async function moveCredit(
  q: Queryable,
  c: Pick<CompensationRow, 'payment_id' | 'day'>,
  from: CreditStatus,
  u: CreditUpdate,
): Promise<CompensationRow | undefined> {
  const r = await q.query<CompensationRow>(
    `UPDATE settlement.compensations c
        SET status = $4, next_attempt_at = $5, bank_ref = coalesce($6, c.bank_ref),
            response_code = coalesce($7, c.response_code), last_error = $8, paid_at = $9
      WHERE c.payment_id = $1 AND c.day = $2 AND c.status = $3
     RETURNING ${RET}`,
    [
      c.payment_id,
      c.day,
      from,
      u.to,
      u.nextAttemptAt,
      u.bankRef ?? null,
      u.responseCode ?? null,
      u.lastError ?? null,
      u.paidAt ?? null,
    ],
  );
  return r.rows[0] ? num(r.rows[0]) : undefined;
}

export interface PayerVpaRow {
  id: string;
  payer_vpa: string | null;
  payer_vpa_ct: string | null;
  txn_ref: string;
}

/** The customer's VPA as payments keeps it: sealed by the vault (or, before the vault's job ran, plain). */
export async function payerVpaOf(q: Queryable, paymentId: string): Promise<PayerVpaRow | undefined> {
  const r = await q.query<PayerVpaRow>(
    `SELECT id, payer_vpa, payer_vpa_ct, txn_ref FROM payments.payments WHERE id = $1`,
    [paymentId],
  );
  return r.rows[0];
}

export async function listCompensations(q: Queryable, f: { paymentId?: string; status?: CreditStatus; limit: number }) {
  const r = await q.query<CompensationRow>(
    `SELECT ${COLS} FROM settlement.compensations
      WHERE ($1::text IS NULL OR payment_id = $1) AND ($2::text IS NULL OR status = $2)
      ORDER BY posted_at, payment_id, day LIMIT $3`,
    [f.paymentId ?? null, f.status ?? null, f.limit],
  );
  return r.rows.map(num);
}

/** Scrape-time totals by state. */
export async function compensationGauges(q: Queryable) {
  const r = await q.query<{ status: string; n: number; paise: number }>(
    `SELECT status, count(*)::int AS n, coalesce(sum(amount), 0)::bigint AS paise
       FROM settlement.compensations GROUP BY status ORDER BY status`,
  );
  return r.rows.map((x) => ({ ...x, paise: Number(x.paise) }));
}

export async function getCompensation(
  q: Queryable,
  paymentId: string,
  day: number,
): Promise<CompensationRow | undefined> {
  const r = await q.query<CompensationRow>(
    `SELECT ${COLS} FROM settlement.compensations WHERE payment_id = $1 AND day = $2`,
    [paymentId, day],
  );
  return r.rows[0] ? num(r.rows[0]) : undefined;
}

/**
 * Compare-and-set: a refused credit (failed) goes out again, due now, under a new reference (the
 * bank is idempotent on the old one and would only refuse it again). undefined: it is not failed
 * (paid, sent, or another retry got there first). Nothing moves in the ledger: a failed credit's
 * money is in compensation_payable already, where a due one's is.
 */
export async function restartFailedCredit(
  q: Queryable,
  c: { paymentId: string; day: number; creditRef: string; retryId: string; now: Date },
): Promise<CompensationRow | undefined> {
  const r = await q.query<CompensationRow>(
    `UPDATE settlement.compensations c
        SET status = 'due', credit_ref = $3, retry_id = $4, next_attempt_at = $5, attempts = 0, status_checks = 0,
            bank_ref = NULL, response_code = NULL, last_error = NULL
      WHERE c.payment_id = $1 AND c.day = $2 AND c.status = 'failed'
     RETURNING ${RET}`,
    [c.paymentId, c.day, c.creditRef, c.retryId, c.now],
  );
  return r.rows[0] ? num(r.rows[0]) : undefined;
}

export interface RetryRow {
  id: string;
  payment_id: string;
  day: number;
  failed_credit_ref: string;
  credit_ref: string | null;
  payee_vpa_ct: string | null;
  payee_vpa_masked: string | null;
  reason: string;
  requested_by: string;
  requested_at: Date;
  approval_id: string | null;
  carried_out_at: Date | null;
}

export async function insertRetry(q: Queryable, r: Omit<RetryRow, 'credit_ref' | 'carried_out_at'>): Promise<RetryRow> {
  const res = await q.query<RetryRow>(
    `INSERT INTO settlement.compensation_retries
       (id, payment_id, day, failed_credit_ref, payee_vpa_ct, payee_vpa_masked, reason, requested_by, requested_at, approval_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
    [
      r.id,
      r.payment_id,
      r.day,
      r.failed_credit_ref,
      r.payee_vpa_ct,
      r.payee_vpa_masked,
      r.reason,
      r.requested_by,
      r.requested_at,
      r.approval_id,
    ],
  );
  return res.rows[0];
}

export async function getRetry(q: Queryable, id: string, lock = false): Promise<RetryRow | undefined> {
  const r = await q.query<RetryRow>(
    `SELECT * FROM settlement.compensation_retries WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return r.rows[0];
}

/** Marks a retry carried out (once: only while it is not). */
export async function markRetryCarriedOut(q: Queryable, id: string, creditRef: string, now: Date) {
  const r = await q.query<RetryRow>(
    `UPDATE settlement.compensation_retries SET credit_ref = $2, carried_out_at = $3
      WHERE id = $1 AND carried_out_at IS NULL RETURNING *`,
    [id, creditRef, now],
  );
  return r.rows[0];
}

/**
 * Compensation credits paid through the bank given as parameter `bankParam` (e.g. '$2'), as
 * reconciliation matches them with the bank's settlement-file lines, in the columns of payments'
 * `reconRefundsSql`: id (`<payment_id>:<day>`, stable across an operator's retry, which changes
 * the credit reference), txn_ref (the credit_ref the bank was sent and lists), bank_ref, amount,
 * at (paid, else booked), merchant_id (none: a credit to the customer nets no merchant),
 * flagged (never), payment_id, and state: 'success' (paid), 'closed' (failed), 'open' (due,
 * pending). Legacy rows had no credit call, so no bank line can name them.
 */
export const reconCompensationsSql = (bankParam: string) =>
  `SELECT c.payment_id || ':' || c.day AS id, c.credit_ref AS txn_ref, c.bank_ref, c.amount,
          coalesce(c.paid_at, c.posted_at) AS at, NULL::text AS merchant_id, false AS flagged, c.payment_id,
          CASE c.status WHEN 'paid' THEN 'success' WHEN 'failed' THEN 'closed' ELSE 'open' END AS state
     FROM settlement.compensations c WHERE c.bank_code = ${bankParam} AND c.status <> 'legacy'`;
