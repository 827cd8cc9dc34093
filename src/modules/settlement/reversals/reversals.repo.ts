import type { Queryable } from '../../../platform/db.ts';

// SQL for reversals. Every status change is one compare-and-set statement on (id, status) with its
// history row; the payment it belongs to is read from the payments schema (read only: settlement
// never writes another module's tables).

export type ReversalReason = 'late_success' | 'amount_mismatch' | 'duplicate_debit' | 'operator';
export type ReversalStatus = 'scheduled' | 'pending' | 'succeeded' | 'failed';

export interface ReversalRow {
  id: string;
  payment_id: string;
  merchant_id: string;
  bank_code: string;
  original_txn_ref: string;
  reason: ReversalReason;
  source_ref: string;
  amount: number;
  debited_amount: number;
  charge_merchant: boolean;
  refund_ref: string;
  status: ReversalStatus;
  txn_date: string;
  deadline_at: Date;
  attempts: number;
  status_checks: number;
  next_attempt_at: Date | null;
  bank_ref: string | null;
  response_code: string | null;
  last_error: string | null;
  compensation_days: number;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
}

const COLUMNS = [
  'id',
  'payment_id',
  'merchant_id',
  'bank_code',
  'original_txn_ref',
  'reason',
  'source_ref',
  'amount',
  'debited_amount',
  'charge_merchant',
  'refund_ref',
  'status',
  'txn_date',
  'deadline_at',
  'attempts',
  'status_checks',
  'next_attempt_at',
  'bank_ref',
  'response_code',
  'last_error',
  'compensation_days',
  'created_at',
  'updated_at',
  'completed_at',
];
/** The columns as ReversalRow wants them (a date as text), optionally qualified by a table alias. */
const cols = (alias = '') =>
  COLUMNS.map((c) => (c === 'txn_date' ? `to_char(${alias}txn_date, 'YYYY-MM-DD') AS txn_date` : `${alias}${c}`)).join(
    ', ',
  );
const COLS = cols();

export interface PaymentForReversal {
  id: string;
  merchant_id: string;
  bank_code: string;
  txn_ref: string;
  amount: number;
  refund_reserved: number;
  status: string;
  created_at: Date;
  needs_reconciliation: boolean;
  reconciliation_reason: string | null;
  /** The amount the bank said it took, when it reported a success for another amount. */
  reported_amount: number | null;
}

/** The payment a reversal is for, locked FOR SHARE so it cannot change under the request. */
export async function paymentForReversal(q: Queryable, id: string): Promise<PaymentForReversal | undefined> {
  const r = await q.query<PaymentForReversal>(
    `SELECT p.id, p.merchant_id, p.bank_code, p.txn_ref, p.amount, p.refund_reserved, p.status, p.created_at,
            p.needs_reconciliation, p.reconciliation_reason,
            (SELECT substring(e.detail from 'bank reported success for ([0-9]+) paise')::bigint
               FROM payments.payment_events e
              WHERE e.payment_id = p.id AND e.detail LIKE 'bank reported success for % paise%'
              ORDER BY e.id DESC LIMIT 1) AS reported_amount
       FROM payments.payments p WHERE p.id = $1 FOR SHARE OF p`,
    [id],
  );
  return r.rows[0];
}

export interface NewReversal {
  id: string;
  payment_id: string;
  merchant_id: string;
  bank_code: string;
  original_txn_ref: string;
  reason: ReversalReason;
  source_ref: string;
  amount: number;
  debited_amount: number;
  charge_merchant: boolean;
  refund_ref: string;
  txn_date: string;
  deadline_at: Date;
  now: Date;
}

/** Inserts unless this request, or another reversal still active for the payment, exists. */
export async function insertReversal(q: Queryable, r: NewReversal): Promise<ReversalRow | undefined> {
  const res = await q.query<ReversalRow>(
    `WITH ins AS (
       INSERT INTO settlement.reversals (id, payment_id, merchant_id, bank_code, original_txn_ref, reason, source_ref,
         amount, debited_amount, charge_merchant, refund_ref, status, txn_date, deadline_at, next_attempt_at,
         created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'scheduled', $12::date, $13, $14, $14, $14)
       ON CONFLICT DO NOTHING
       RETURNING *
     ), ev AS (
       INSERT INTO settlement.reversal_events (reversal_id, from_status, to_status, detail, at)
       SELECT id, NULL, 'scheduled', 'requested: ' || reason || ' (' || source_ref || ')', $14 FROM ins
     )
     SELECT ${COLS} FROM ins`,
    [
      r.id,
      r.payment_id,
      r.merchant_id,
      r.bank_code,
      r.original_txn_ref,
      r.reason,
      r.source_ref,
      r.amount,
      r.debited_amount,
      r.charge_merchant,
      r.refund_ref,
      r.txn_date,
      r.deadline_at,
      r.now,
    ],
  );
  return res.rows[0];
}

export async function findByRequest(
  q: Queryable,
  paymentId: string,
  reason: string,
  sourceRef: string,
): Promise<ReversalRow | undefined> {
  const r = await q.query<ReversalRow>(
    `SELECT ${COLS} FROM settlement.reversals WHERE payment_id = $1 AND reason = $2 AND source_ref = $3`,
    [paymentId, reason, sourceRef],
  );
  return r.rows[0];
}

export async function findActive(q: Queryable, paymentId: string): Promise<ReversalRow | undefined> {
  const r = await q.query<ReversalRow>(
    `SELECT ${COLS} FROM settlement.reversals WHERE payment_id = $1 AND status <> 'failed'`,
    [paymentId],
  );
  return r.rows[0];
}

/** What every reversal of this payment, not failed, has taken or holds (one active at most, by index). */
export async function activeTotal(q: Queryable, paymentId: string): Promise<number> {
  const r = await q.query<{ n: number }>(
    `SELECT coalesce(sum(amount), 0)::bigint AS n FROM settlement.reversals WHERE payment_id = $1 AND status <> 'failed'`,
    [paymentId],
  );
  return Number(r.rows[0].n);
}

export async function getReversal(q: Queryable, id: string, lock = false): Promise<ReversalRow | undefined> {
  const r = await q.query<ReversalRow>(
    `SELECT ${COLS} FROM settlement.reversals WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return r.rows[0];
}

export async function getByRefundRef(q: Queryable, refundRef: string): Promise<ReversalRow | undefined> {
  const r = await q.query<ReversalRow>(`SELECT ${COLS} FROM settlement.reversals WHERE refund_ref = $1`, [refundRef]);
  return r.rows[0];
}

/**
 * Claims reversals due for work in deadline order, skipping rows another worker holds: the claim
 * pushes next_attempt_at out to `leaseUntil`, so a worker that dies mid-call gives it back by
 * itself. `status` 'scheduled': refund calls to send; 'pending': status checks.
 */
export async function claimDue(
  tx: Queryable,
  status: 'scheduled' | 'pending',
  now: Date,
  leaseUntil: Date,
  limit: number,
): Promise<ReversalRow[]> {
  const counter = status === 'scheduled' ? 'attempts' : 'status_checks';
  const r = await tx.query<ReversalRow>(
    `WITH due AS (
       SELECT id FROM settlement.reversals
        WHERE status = $1 AND (next_attempt_at IS NULL OR next_attempt_at <= $2)
        ORDER BY deadline_at, id
        LIMIT $4
        FOR UPDATE SKIP LOCKED
     )
     UPDATE settlement.reversals r SET next_attempt_at = $3, ${counter} = r.${counter} + 1, updated_at = $2
       FROM due WHERE r.id = due.id
     RETURNING ${cols('r.')}`,
    [status, now, leaseUntil, limit],
  );
  return r.rows.sort((a, b) => a.deadline_at.getTime() - b.deadline_at.getTime() || (a.id < b.id ? -1 : 1));
}

export interface ReversalUpdate {
  to: ReversalStatus;
  nextAttemptAt: Date | null;
  bankRef?: string | null;
  responseCode?: string | null;
  lastError?: string | null;
  completedAt?: Date | null;
  detail: string;
  now: Date;
}

/** Compare-and-set: moves the reversal only from `from`, with its history row. undefined: someone else moved it. */
export async function transition(
  q: Queryable,
  id: string,
  from: ReversalStatus,
  u: ReversalUpdate,
): Promise<ReversalRow | undefined> {
  const r = await q.query<ReversalRow>(
    `WITH up AS (
       UPDATE settlement.reversals
          SET status = $3, next_attempt_at = $4, bank_ref = coalesce($5, bank_ref),
              response_code = coalesce($6, response_code), last_error = $7,
              completed_at = coalesce($8, completed_at), updated_at = $10
        WHERE id = $1 AND status = $2
       RETURNING *
     ), ev AS (
       INSERT INTO settlement.reversal_events (reversal_id, from_status, to_status, response_code, detail, at)
       SELECT id, $2, $3, $6, $9, $10 FROM up
     )
     SELECT ${COLS} FROM up`,
    [
      id,
      from,
      u.to,
      u.nextAttemptAt,
      u.bankRef ?? null,
      u.responseCode ?? null,
      u.lastError ?? null,
      u.completedAt ?? null,
      u.detail,
      u.now,
    ],
  );
  return r.rows[0];
}

/** Payments flagged today (late success, amount mismatch) with no reversal yet: the scheduler's input. */
export async function flaggedWithoutReversal(q: Queryable, limit: number) {
  const r = await q.query<{ id: string; reason: string }>(
    `SELECT p.id, p.reconciliation_reason AS reason
       FROM payments.payments p
      WHERE p.needs_reconciliation
        AND p.reconciliation_reason IN ('success_after_close', 'amount_mismatch')
        AND p.status NOT IN ('succeeded', 'partially_refunded', 'refunded')
        AND NOT EXISTS (SELECT 1 FROM settlement.reversals r WHERE r.payment_id = p.id)
      ORDER BY p.id
      LIMIT $1`,
    [limit],
  );
  return r.rows;
}

/**
 * Reversals owing compensation for more days than posted: past the deadline and not done by it.
 * Only the latest reversal of a payment counts (an earlier one refused by the bank is superseded).
 */
export async function owingCompensation(q: Queryable, now: Date, tatDays: number, limit: number) {
  const r = await q.query<ReversalRow>(
    `SELECT ${COLS} FROM settlement.reversals r
      WHERE deadline_at <= $1
        AND NOT EXISTS (SELECT 1 FROM settlement.reversals n WHERE n.payment_id = r.payment_id AND n.id > r.id)
        AND (completed_at IS NULL OR completed_at >= deadline_at)
        AND compensation_days <
            ((coalesce(least(completed_at, $1), $1) + interval '5 hours 30 minutes') AT TIME ZONE 'UTC')::date
            - (txn_date + $2::int)
      ORDER BY deadline_at, id
      LIMIT $3`,
    [now, tatDays, limit],
  );
  return r.rows;
}

/**
 * The reversal, locked for booking its compensation days: waits for whoever holds the row rather
 * than skipping it. SKIP LOCKED skipped it for any holder, not only another worker booking its
 * days: a bank callback whose compare-and-set lost to the refund call's own answer keeps the row
 * locked until its transaction ends, and the days owed were then left for a later run. Every
 * transaction that holds a reversal row is short (no bank call inside one); another worker booking
 * the same reversal has committed its days once this returns, and the row read here shows them.
 */
export async function lockForCompensation(tx: Queryable, id: string) {
  const r = await tx.query<ReversalRow>(`SELECT ${COLS} FROM settlement.reversals WHERE id = $1 FOR UPDATE`, [id]);
  return r.rows[0];
}

export async function insertCompensation(
  tx: Queryable,
  c: {
    paymentId: string;
    reversalId: string;
    day: number;
    bankCode: string;
    amount: number;
    forDate: string;
    /** The push credit's reference (compensation.service.ts pays it): due from now. */
    creditRef: string;
    now: Date;
  },
) {
  const r = await tx.query(
    `INSERT INTO settlement.compensations (payment_id, day, reversal_id, bank_code, amount, for_date, posted_at,
       status, credit_ref, next_attempt_at)
     VALUES ($1, $2, $3, $4, $5, $6::date, $7, 'due', $8, $7) ON CONFLICT DO NOTHING`,
    [c.paymentId, c.day, c.reversalId, c.bankCode, c.amount, c.forDate, c.now, c.creditRef],
  );
  return r.rowCount === 1;
}

export async function setCompensationDays(tx: Queryable, id: string, days: number) {
  await tx.query(`UPDATE settlement.reversals SET compensation_days = greatest(compensation_days, $2) WHERE id = $1`, [
    id,
    days,
  ]);
}

export interface ReversalFilter {
  status?: ReversalStatus;
  paymentId?: string;
  merchantId?: string;
  overdue?: boolean;
  now: Date;
  before?: string;
  limit: number;
}

export async function listReversals(q: Queryable, f: ReversalFilter): Promise<ReversalRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (f.status) add('status = ?', f.status);
  if (f.paymentId) add('payment_id = ?', f.paymentId);
  if (f.merchantId) add('merchant_id = ?', f.merchantId);
  if (f.overdue) add(`status <> 'succeeded' AND deadline_at <= ?`, f.now);
  if (f.before) add('id < ?', f.before);
  params.push(f.limit + 1);
  const r = await q.query<ReversalRow>(
    `SELECT ${COLS} FROM settlement.reversals ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY id DESC LIMIT $${params.length}`,
    params,
  );
  return r.rows;
}

export async function reversalEvents(q: Queryable, id: string) {
  const r = await q.query<{
    from_status: string | null;
    to_status: string;
    response_code: string | null;
    detail: string | null;
    at: Date;
  }>(
    `SELECT from_status, to_status, response_code, detail, at FROM settlement.reversal_events WHERE reversal_id = $1 ORDER BY id`,
    [id],
  );
  return r.rows;
}

/** Scrape-time counts: not yet done, and not done past the deadline. */
export async function reversalGauges(q: Queryable) {
  const r = await q.query<{ pending: number; overdue: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE status IN ('scheduled', 'pending'))::int AS pending,
            count(*) FILTER (WHERE status <> 'succeeded' AND deadline_at <= now())::int AS overdue,
            count(*) FILTER (WHERE status = 'failed')::int AS failed
       FROM settlement.reversals`,
  );
  return r.rows[0];
}
