import { terminalContextSql, type TerminalContext } from '../merchants/index.ts';
import { downBankCodesSql } from '../banks/index.ts';
import { insertAuditEventsSql, type PreparedAuditEvent } from '../audit/index.ts';
import type { Queryable } from '../../platform/db.ts';
import type { PaymentStatus } from './payments.state.ts';
import { currentTraceparent } from '../../platform/tracing.ts';
import { rememberNonceSql } from '../../platform/signing.ts';

// SQL for payments and refunds. The service owns the transactions; these take the handle.

export interface PaymentRow {
  id: string;
  txn_ref: string;
  merchant_id: string;
  store_id: string;
  terminal_id: string;
  method: 'upi_qr' | 'upi_collect';
  amount: number;
  currency: string;
  status: PaymentStatus;
  /** Legacy plaintext column: NULL for every payment since field encryption (the vault empties old rows). In memory: the decrypted VPA. */
  payer_vpa: string | null;
  /** The payer's VPA encrypted by the vault (payments.fields.ts). */
  payer_vpa_ct: string | null;
  /** Blind index of the payer's VPA, for lookups by VPA. */
  payer_vpa_bidx: string | null;
  note: string | null;
  upi_uri: string | null;
  bank_code: string;
  bank_ref: string | null;
  response_code: string | null;
  expires_at: Date;
  refund_reserved: number;
  refunded_amount: number;
  status_checks: number;
  next_check_at: Date | null;
  needs_reconciliation: boolean;
  reconciliation_reason: string | null;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
}

export interface RefundRow {
  id: string;
  payment_id: string;
  refund_ref: string;
  amount: number;
  status: 'pending' | 'succeeded' | 'failed';
  reason: string | null;
  bank_ref: string | null;
  response_code: string | null;
  status_checks: number;
  /** Set when the bank's answers leave the refund for people to settle (reason says why). */
  needs_reconciliation: boolean;
  reconciliation_reason: string | null;
  flagged_at: Date | null;
  created_at: Date;
  completed_at: Date | null;
}

/** A payment about to be written. */
export type NewPayment = Pick<
  PaymentRow,
  | 'id'
  | 'txn_ref'
  | 'merchant_id'
  | 'store_id'
  | 'terminal_id'
  | 'method'
  | 'amount'
  | 'currency'
  | 'payer_vpa_ct'
  | 'payer_vpa_bidx'
  | 'note'
  | 'upi_uri'
  | 'bank_code'
  | 'expires_at'
> & { now: Date; client_ref?: string | null };

/**
 * Writes a new payment, its first history row and the audit records of its creation in one
 * statement: one round trip, and atomic on its own. The audit records are inserted by the audit
 * module's insertAuditEventsSql(), a deliberate exception (docs/architecture.md). undefined when the terminal already has a
 * payment with this client_ref (nothing is written then).
 */
export async function insertPayment(
  q: Queryable,
  p: NewPayment,
  audit: PreparedAuditEvent[] = [],
): Promise<PaymentRow | undefined> {
  const { rows } = await q.query<PaymentRow>(
    `WITH ${newPaymentCtes(`VALUES (${NEW_PAYMENT_ROW})`)}
     SELECT * FROM p`,
    newPaymentParams(p, audit),
  );
  return rows[0];
}

/** The new payment's row over newPaymentParams(): $1 to $17, $16 being its audit records. */
const NEW_PAYMENT_ROW = "$1, $2, $3, $4, $5, $6, $7, $8, 'created', $9, $10, $11, $12, $13, $14, $14, $15, $17";

/** The insert of a payment row, its columns in the order both insert paths give them. */
const INSERT_PAYMENT = `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status,
                                      payer_vpa_ct, note, upi_uri, bank_code, expires_at, created_at, updated_at, payer_vpa_bidx, client_ref)`;

/**
 * How the batched statements below run (group commit: several payments' moves, completions or
 * creates in one statement, joining `unnest()` of their array parameters to payments.payments).
 * Their first 5,000 calls in a process are planned with each batch's values, not as a prepared
 * statement whose generic plan, made once while the table was young, would read every
 * `created`/`pending` payment per batch until autovacuum analyses the table (bench/PROFILE.md
 * "Session 9"); by then the table holds at least 5,000 payments, and the plan prepared from there
 * on probes the primary key (a generic plan made at 2,000 rows scans, at 5,000 it probes). They
 * are prepared sooner once the planner's own estimate counts 5,000 payments (a grown database,
 * analysed or not: QueryOptions.preparedOnceGrown). The
 * moves and completions also take the status they expect as a column of their batch
 * (`from_status`), not a constant: from a constant the planner could prove the partial indexes
 * `payments_due_*` usable, and with statistics taken while no payment was open (a quiet night,
 * then a burst) it would scan one of them whole instead of probing the primary key per member.
 */
const BATCH_PLAN = { unpreparedCalls: 5000, preparedOnceGrown: 'payments.payments' } as const;

/** The terminal's `payment.updated` outbox payload for row `p`, over SQL expressions for its parts. */
const paymentUpdatedPayload = (status: string, at: string, traceparent: string) =>
  `jsonb_build_object('payment_id', p.id, 'status', ${status}, 'amount', p.amount, 'at', ${at})
                || CASE WHEN ${traceparent} IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('traceparent', ${traceparent}) END`;

/**
 * A new payment as three CTEs over newPaymentParams(): `p` inserts the row `rowSource` gives
 * (`VALUES (…)`, or a SELECT that may give none) unless the terminal already has a payment under
 * this client_ref; `a` its audit records and `e` its first history row, only when `p` wrote it.
 */
const newPaymentCtes = (rowSource: string) => `p AS (
       ${INSERT_PAYMENT}
       ${rowSource}
       ON CONFLICT (terminal_id, client_ref) WHERE client_ref IS NOT NULL DO NOTHING
       RETURNING *
     ), a AS (${insertAuditEventsSql('$16', 'EXISTS (SELECT 1 FROM p)')}
     ), e AS (
       INSERT INTO payments.payment_events (payment_id, from_status, to_status, source, at)
       SELECT id, NULL, 'created', 'api', $14 FROM p
     )`;

const newPaymentParams = (p: NewPayment, audit: PreparedAuditEvent[]) => [
  p.id,
  p.txn_ref,
  p.merchant_id,
  p.store_id,
  p.terminal_id,
  p.method,
  p.amount,
  p.currency,
  p.payer_vpa_ct,
  p.note,
  p.upi_uri,
  p.bank_code,
  p.expires_at,
  p.now,
  p.payer_vpa_bidx,
  JSON.stringify(audit),
  p.client_ref ?? null,
];

/** Whether the payment went from created straight to failed at its create (its bank call was never sent or was refused). */
export async function failedAtCreate(q: Queryable, id: string): Promise<boolean> {
  const { rows } = await q.query<{ yes: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM payments.payment_events WHERE payment_id = $1 AND from_status = 'created' AND to_status = 'failed' AND source = 'api') AS yes`,
    [id],
  );
  return rows[0].yes;
}

export async function getPaymentByClientRef(
  q: Queryable,
  terminalId: string,
  clientRef: string,
): Promise<PaymentRow | undefined> {
  const { rows } = await q.query<PaymentRow>(
    'SELECT * FROM payments.payments WHERE terminal_id = $1 AND client_ref = $2',
    [terminalId, clientRef],
  );
  return rows[0];
}

export async function getPayment(q: Queryable, id: string, forUpdate = false): Promise<PaymentRow | undefined> {
  const { rows } = await q.query<PaymentRow>(
    `SELECT * FROM payments.payments WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

export async function getPaymentByTxnRef(
  q: Queryable,
  txnRef: string,
  forUpdate = false,
): Promise<PaymentRow | undefined> {
  const { rows } = await q.query<PaymentRow>(
    `SELECT * FROM payments.payments WHERE txn_ref = $1${forUpdate ? ' FOR UPDATE' : ''}`,
    [txnRef],
  );
  return rows[0];
}

export interface PaymentFilter {
  merchantId?: string;
  terminalId?: string;
  storeId?: string;
  status?: string;
  createdFrom?: Date;
  createdTo?: Date;
  /** Blind indexes of a payer VPA (one per live index-key version): payments by that payer. */
  payerVpaIndexes?: string[];
  needsReconciliation?: boolean;
  before?: string;
  limit: number;
}

export async function listPayments(q: Queryable, f: PaymentFilter): Promise<PaymentRow[]> {
  const { rows } = await q.query<PaymentRow>(
    `SELECT * FROM payments.payments
      WHERE ($1::text IS NULL OR merchant_id = $1) AND ($2::text IS NULL OR terminal_id = $2)
        AND ($3::text IS NULL OR store_id = $3) AND ($4::text IS NULL OR status = $4)
        AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)
        AND ($7::text IS NULL OR id < $7) AND ($9::boolean IS NULL OR needs_reconciliation = $9)
        AND ($10::text[] IS NULL OR payer_vpa_bidx = ANY($10::text[]))
      ORDER BY id DESC LIMIT $8`,
    [
      f.merchantId ?? null,
      f.terminalId ?? null,
      f.storeId ?? null,
      f.status ?? null,
      f.createdFrom ?? null,
      f.createdTo ?? null,
      f.before ?? null,
      f.limit + 1,
      f.needsReconciliation ?? null,
      f.payerVpaIndexes ?? null,
    ],
  );
  return rows;
}

export async function insertEvent(
  q: Queryable,
  e: {
    paymentId: string;
    from: PaymentStatus | null;
    to: PaymentStatus;
    source: string;
    responseCode?: string | null;
    detail?: string | null;
    at: Date;
  },
) {
  await q.query(
    `INSERT INTO payments.payment_events (payment_id, from_status, to_status, source, response_code, detail, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [e.paymentId, e.from, e.to, e.source, e.responseCode ?? null, e.detail ?? null, e.at],
  );
}

/** Columns a state change may set alongside the status. */
export interface PaymentUpdate {
  bank_ref?: string | null;
  response_code?: string | null;
  /** The payer's VPA as sealed by the vault (sealPayerVpa): ciphertext and blind index together. */
  payer_vpa_ct?: string | null;
  payer_vpa_bidx?: string | null;
  next_check_at?: Date | null;
  completed_at?: Date | null;
  needs_reconciliation?: boolean;
  reconciliation_reason?: string | null;
}

/**
 * A state change as three CTEs (`p`, the compare-and-set with the new row; `e`, its history row;
 * `o`, the outbox event for the terminal), over the parameters transitionParams() lays out ($1 to
 * $19): the start of transitionStatus() and of completeSucceeded(), which adds to it.
 */
const TRANSITION_CTES = `p AS (
       UPDATE payments.payments SET status = $3, updated_at = $4,
              bank_ref = coalesce($5, bank_ref), response_code = coalesce($6, response_code),
              payer_vpa_ct = coalesce(($7::text[])[1], payer_vpa_ct), payer_vpa_bidx = coalesce(($7::text[])[2], payer_vpa_bidx),
              next_check_at = CASE WHEN $8::boolean THEN $9::timestamptz ELSE next_check_at END,
              completed_at = coalesce($10, completed_at),
              needs_reconciliation = coalesce($11, needs_reconciliation),
              reconciliation_reason = coalesce($12, reconciliation_reason)
        WHERE id = $1 AND status = $2
          AND ($16::text IS NULL OR txn_ref = $16) AND ($17::text IS NULL OR bank_code = $17) AND ($18::bigint IS NULL OR amount = $18)
        RETURNING *
     ), e AS (
       INSERT INTO payments.payment_events (payment_id, from_status, to_status, source, response_code, detail, at)
       SELECT p.id, $2, $3, $13, $6, $14, $4 FROM p
     ), o AS (
       INSERT INTO platform.outbox (topic, key, payload)
       SELECT 'payment.updated', p.terminal_id, ${paymentUpdatedPayload('$3::text', '$15::text', '$19::text')}
         FROM p
     )`;

interface TransitionInput {
  id: string;
  from: PaymentStatus;
  to: PaymentStatus;
  u: PaymentUpdate;
  now: Date;
  source: string;
  detail?: string | null;
  /** Further conditions: the move happens only for this txnRef, at this bank, for this amount. */
  only?: { txnRef?: string; bankCode?: string; amount?: number };
  /** The trace the terminal's push continues; default: the current one (taken when the statement is built). */
  traceparent?: string | null;
}

const transitionParams = (t: TransitionInput): unknown[] => [
  t.id,
  t.from,
  t.to,
  t.now,
  t.u.bank_ref ?? null,
  t.u.response_code ?? null,
  t.u.payer_vpa_ct ? [t.u.payer_vpa_ct, t.u.payer_vpa_bidx ?? null] : null,
  'next_check_at' in t.u,
  t.u.next_check_at ?? null,
  t.u.completed_at ?? null,
  t.u.needs_reconciliation ?? null,
  t.u.reconciliation_reason ?? null,
  t.source,
  t.detail ?? null,
  t.now.toISOString(),
  t.only?.txnRef ?? null,
  t.only?.bankCode ?? null,
  t.only?.amount ?? null,
  // The terminal's push continues this trace (null while tracing is off).
  t.traceparent !== undefined ? t.traceparent : currentTraceparent(),
];

/**
 * One state change in one statement: the compare-and-set on status, its history row and the
 * outbox event for the terminal (`payment.updated`, keyed by terminal id). Nothing is written
 * when the payment was no longer in `from`. One round trip instead of three, so a transaction
 * that must also post to the ledger holds its row locks for less time.
 */
export async function transitionStatus(q: Queryable, t: TransitionInput): Promise<PaymentRow | undefined> {
  const { rows } = await q.query<PaymentRow>(
    `WITH ${TRANSITION_CTES}
     SELECT * FROM p`,
    transitionParams(t),
  );
  return rows[0];
}

/** A new payment the bank has taken (or may have taken): `created → pending` with what the bank said. */
export interface PendingMove {
  id: string;
  bank_ref: string | null;
  next_check_at: Date;
  detail: string | null;
  now: Date;
  traceparent: string | null;
  /**
   * The bank answered the create (it registered the QR or took the collect request). Then the
   * move is committed without waiting for its WAL flush: losing it in a crash is the same as
   * crashing just before it, which a `created` payment survives (its bank's callback completes
   * it through `pending`, and the expiry job gives it a final status check). The answer to the
   * create is the only thing that acts on it; any later commit that depends on it (a callback,
   * a status result) waits for a flush that covers it too, since the WAL is written in order.
   * An uncertain call (the bank may or may not have it) waits: its status checks start from
   * `pending`.
   */
  bankAnswered: boolean;
}

/**
 * Several new payments moved `created → pending` in one statement (group commit: the create's
 * batcher in payments.service.ts): per payment the same compare-and-set, history row and outbox
 * event as transitionStatus(). One row per payment that was still `created`, in no particular
 * order; one whose callback got there first is left as it is and is not among them.
 */
export async function movePendingMany(q: Queryable, moves: readonly PendingMove[]): Promise<PaymentRow[]> {
  // $9: every bank answered, so the commit need not wait for its WAL flush (PendingMove.bankAnswered).
  // set_config(…, true) lasts to the end of this statement's own transaction.
  const { rows } = await q.query<PaymentRow>(
    `WITH b AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
                            $8::text[])
                  AS b(id, bank_ref, next_check_at, detail, at, at_text, traceparent, from_status)
        WHERE CASE WHEN $9::boolean THEN set_config('synchronous_commit', 'off', true) IS NOT NULL ELSE true END
     ), p AS (
       UPDATE payments.payments t
          SET status = 'pending', updated_at = b.at, bank_ref = coalesce(b.bank_ref, t.bank_ref), next_check_at = b.next_check_at
         FROM b
        WHERE t.id = b.id AND t.status = b.from_status
        RETURNING t.*
     ), e AS (
       INSERT INTO payments.payment_events (payment_id, from_status, to_status, source, response_code, detail, at)
       SELECT p.id, 'created', 'pending', 'api', NULL, b.detail, b.at FROM p JOIN b USING (id)
     ), o AS (
       INSERT INTO platform.outbox (topic, key, payload)
       SELECT 'payment.updated', p.terminal_id, ${paymentUpdatedPayload("'pending'", 'b.at_text', 'b.traceparent')}
         FROM p JOIN b USING (id)
     )
     SELECT * FROM p`,
    [
      moves.map((m) => m.id),
      moves.map((m) => m.bank_ref),
      moves.map((m) => m.next_check_at),
      moves.map((m) => m.detail),
      moves.map((m) => m.now),
      moves.map((m) => m.now.toISOString()),
      moves.map((m) => m.traceparent),
      moves.map(() => 'created'),
      moves.every((m) => m.bankAnswered),
    ],
    BATCH_PLAN,
  );
  return rows;
}

/** A callback's nonce, remembered by the completion statement itself (platform/signing rememberNonceSql). */
export interface CompletionNonce {
  scope: string;
  nonce: string;
  at: Date;
}

/**
 * What this process remembers of a payment it created, until it completes (payments.apply.ts `hints`):
 * a hint, never trusted. The one-statement completion hands it to the hooks' succeededSetSql,
 * which must check it against the row (rewards: in SQL, abandoning with TPP01 on any difference).
 * `payer_vpa` (lower case) and `payer_vpa_bidx`: the payer the row will name once completed (the
 * bank's, or the one given at the create), both null when none; the VPA is in memory only.
 */
export interface PaymentHint {
  merchant_id: string;
  store_id: string;
  created_at: Date;
  amount: number;
  payer_vpa: string | null;
  payer_vpa_bidx: string | null;
}

/** A bank's "paid" for one payment, to complete in one statement (alone, or with others: completeSucceededMany). */
export interface SuccessCompletion {
  id: string;
  u: PaymentUpdate;
  now: Date;
  source: string;
  detail?: string | null;
  only?: { txnRef?: string; bankCode?: string; amount?: number };
  nonce?: CompletionNonce;
  /** The journal id of its ledger entry (postEntrySql, postEntriesSql: ids come from the application). */
  journalId: string;
  /** What this process remembers of the payment (a hint, never trusted), for the hooks' set parts. */
  hint?: PaymentHint;
  /**
   * The trace of the request that brought the answer (null while tracing is off), taken when it
   * is queued: the statement that writes it may run in another request's context.
   */
  traceparent: string | null;
}

/** A hook's part of a success, an SQL condition over the new row `row` (PaymentHooks.succeededSql). */
export type SuccessHookSql = (row: string, param: (value: unknown) => string) => string;

/** A hook's part over all the rows of a completion statement (PaymentHooks.succeededSetSql). */
export type SuccessSetHookSql = (
  rows: string,
  param: (value: unknown) => string,
  facts: ReadonlyMap<string, PaymentHint>,
) => string;

/**
 * The set parts as one boolean expression, over the relation `rows` and the members' hints;
 * CASE takes them in order and stops at the first that needs its long way (TPP01).
 */
const successSetHooksCase = (
  hooks: readonly SuccessSetHookSql[],
  rows: string,
  param: (value: unknown) => string,
  members: readonly SuccessCompletion[],
) => {
  if (!hooks.length) return 'true';
  const facts = new Map(members.flatMap((m) => (m.hint ? [[m.id, m.hint] as const] : [])));
  return `CASE ${hooks.map((h, i) => `WHEN NOT (${h(rows, param, facts)}) THEN payments.abandon_completion('TPP01', ${param(`hook ${i + 1} needs its long way for a payment`)})`).join(' ')} ELSE true END`;
};

/** The hooks' parts as one boolean expression: CASE takes them in order and stops at the first that needs its long way (TPP01). */
const successHooksCase = (hooks: readonly SuccessHookSql[], row: string, param: (value: unknown) => string) =>
  hooks.length
    ? `CASE ${hooks.map((h, i) => `WHEN NOT (${h(row, param)}) THEN payments.abandon_completion('TPP01', ${param(`hook ${i + 1} needs its long way`)})`).join(' ')} ELSE true END`
    : 'true';

/**
 * A payment's success completed in ONE statement, without BEGIN/COMMIT (atomic on its own): the
 * compare-and-set from `pending` with its history row and outbox event (as transitionStatus),
 * the callback's nonce (when given), each hook's part (PaymentHooks.succeededSql, over the new
 * row `p`), the hooks' set parts (`setHooks`, PaymentHooks.succeededSetSql, over `h`, the new
 * rows with their journal ids, and the completion's `hint`; CTE `k`, which the entry's CTE is
 * gated on, so it runs before the entry), then the ledger entry (`ledgerSql(row, param)`: a FROM item over the row named by
 * `row`, from the ledger's postEntrySql). The hooks run before the entry, as onSucceeded does: the
 * entry locks the merchant's account and the bank's clearing shard, held only to the commit.
 *
 * undefined when the payment was not pending (or not that txnRef, bank, amount): nothing is
 * written then. A hook that needs its long way raises TPP01, a nonce seen already TPP02, and an
 * entry that was not written (never expected) TPP03 (payments.abandon_completion, migrations/0033):
 * the whole statement is rolled back.
 */
export async function completeSucceeded(
  q: Queryable,
  t: SuccessCompletion & {
    hooks: readonly SuccessHookSql[];
    /** The hooks' parts over all the statement's rows (PaymentHooks.succeededSetSql), after `hooks`. */
    setHooks?: readonly SuccessSetHookSql[];
    ledgerSql: (row: string, param: (value: unknown) => string) => string;
  },
): Promise<PaymentRow | undefined> {
  const params: unknown[] = transitionParams({ ...t, from: 'pending', to: 'succeeded' });
  const param = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const nonce = t.nonce
    ? rememberNonceSql(param(t.nonce.scope), param(t.nonce.nonce), param(t.nonce.at), 'p')
    : 'SELECT 1 FROM p';
  const hooks = successHooksCase(t.hooks, 'p', param);
  const setHooks = successSetHooksCase(t.setHooks ?? [], 'h', param, [t]);
  const ledger = t.ledgerSql('h', param);
  const { rows } = await q.query<PaymentRow & { completed: boolean }>(
    `WITH ${TRANSITION_CTES}, n AS (
       ${nonce}
     ), h AS MATERIALIZED (
       SELECT p.*, ${param(t.journalId)}::text AS journal_id, ${hooks} AS ok
         FROM p WHERE EXISTS (SELECT 1 FROM n)
     ), k AS MATERIALIZED (
       SELECT ${setHooks} AS ok
     ), l AS (
       SELECT x.journal_id FROM h CROSS JOIN LATERAL ${ledger} AS x WHERE (SELECT ok FROM k)
     )
     SELECT p.*,
            CASE WHEN NOT EXISTS (SELECT 1 FROM n) THEN payments.abandon_completion('TPP02', 'the nonce was used already')
                 WHEN (SELECT count(*) FROM l) <> 1 THEN payments.abandon_completion('TPP03', 'no ledger entry was written')
                 ELSE true END AS completed
       FROM p`,
    params,
  );
  const r = rows[0];
  if (!r) return undefined;
  const { completed: _c, ...row } = r;
  return row as PaymentRow;
}

/**
 * Several payments' successes completed in ONE statement and one commit (group commit: the
 * completions' batcher in payments.apply.ts), each exactly as completeSucceeded() completes one:
 * its compare-and-set from `pending` (by its own txnRef, bank and amount), history row, outbox
 * event, nonce, the hooks' parts and its ledger entry; the hooks' set parts see all members'
 * rows at once (with their hints), before any entry. The entries are posted by one call of
 * ledger.post_entries() (`ledgerSql(from, param)`, from the ledger's postEntriesSql, over the rows
 * of `from`), which takes every entry's ledger locks in one global order first, so two such
 * statements never deadlock over the same merchants or clearing shards.
 *
 * All or nothing: a member whose hook needs its long way (TPP01), whose nonce was seen already
 * (TPP02), or an entry not written (TPP03) rolls back the whole statement, and the caller then
 * completes each member on its own (the batcher retries item by item), where each meets its own
 * outcome. One result per member, in order: its row, or undefined when it was not pending (or
 * not that txnRef, bank, amount): nothing was written for it. The ids must be distinct.
 */
export async function completeSucceededMany(
  q: Queryable,
  members: readonly SuccessCompletion[],
  sql: {
    hooks: readonly SuccessHookSql[];
    /** The hooks' parts over all the statement's rows (PaymentHooks.succeededSetSql), after `hooks`. */
    setHooks?: readonly SuccessSetHookSql[];
    ledgerSql: (from: string, param: (value: unknown) => string) => string;
  },
): Promise<(PaymentRow | undefined)[]> {
  if (new Set(members.map((m) => m.id)).size !== members.length)
    throw new Error('completeSucceededMany: the same payment twice in one statement');
  const column = <T>(f: (m: SuccessCompletion) => T) => members.map(f);
  const params: unknown[] = [
    column((m) => m.id),
    column((m) => m.only?.txnRef ?? null),
    column((m) => m.only?.bankCode ?? null),
    column((m) => m.only?.amount ?? null),
    column((m) => m.u.bank_ref ?? null),
    column((m) => m.u.response_code ?? null),
    column((m) => m.u.payer_vpa_ct ?? null),
    column((m) => (m.u.payer_vpa_ct ? (m.u.payer_vpa_bidx ?? null) : null)),
    column((m) => 'next_check_at' in m.u),
    column((m) => m.u.next_check_at ?? null),
    column((m) => m.u.completed_at ?? null),
    column((m) => m.u.needs_reconciliation ?? null),
    column((m) => m.u.reconciliation_reason ?? null),
    column((m) => m.now),
    column((m) => m.now.toISOString()),
    column((m) => m.source),
    column((m) => m.detail ?? null),
    // The terminal's push continues each completion's own trace (null while tracing is off).
    column((m) => m.traceparent),
    column((m) => m.nonce?.scope ?? null),
    column((m) => m.nonce?.nonce ?? null),
    column((m) => m.nonce?.at ?? null),
    column((m) => m.journalId),
    column(() => 'pending'),
  ];
  const param = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const hooks = successHooksCase(sql.hooks, 'p', param);
  const setHooks = successSetHooksCase(sql.setHooks ?? [], 'h', param, members);
  const ledger = sql.ledgerSql('h', param);
  const { rows } = await q.query<PaymentRow & { completed: boolean }>(
    `WITH m AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                            $8::text[], $9::boolean[], $10::timestamptz[], $11::timestamptz[], $12::boolean[], $13::text[],
                            $14::timestamptz[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[],
                            $21::timestamptz[], $22::text[], $23::text[])
                  AS m(id, txn_ref, bank_code, amount, bank_ref, response_code, payer_ct, payer_bidx, set_next_check,
                       next_check_at, completed_at, needs_reconciliation, reconciliation_reason, at, at_text, source,
                       detail, traceparent, nonce_scope, nonce, nonce_at, journal_id, from_status)
     ), p AS (
       UPDATE payments.payments t
          SET status = 'succeeded', updated_at = m.at,
              bank_ref = coalesce(m.bank_ref, t.bank_ref), response_code = coalesce(m.response_code, t.response_code),
              payer_vpa_ct = coalesce(m.payer_ct, t.payer_vpa_ct), payer_vpa_bidx = coalesce(m.payer_bidx, t.payer_vpa_bidx),
              next_check_at = CASE WHEN m.set_next_check THEN m.next_check_at ELSE t.next_check_at END,
              completed_at = coalesce(m.completed_at, t.completed_at),
              needs_reconciliation = coalesce(m.needs_reconciliation, t.needs_reconciliation),
              reconciliation_reason = coalesce(m.reconciliation_reason, t.reconciliation_reason)
         FROM m
        WHERE t.id = m.id AND t.status = m.from_status
          AND (m.txn_ref IS NULL OR t.txn_ref = m.txn_ref) AND (m.bank_code IS NULL OR t.bank_code = m.bank_code)
          AND (m.amount IS NULL OR t.amount = m.amount)
        RETURNING t.*
     ), e AS (
       INSERT INTO payments.payment_events (payment_id, from_status, to_status, source, response_code, detail, at)
       SELECT p.id, 'pending', 'succeeded', m.source, m.response_code, m.detail, m.at FROM p JOIN m USING (id)
     ), o AS (
       INSERT INTO platform.outbox (topic, key, payload)
       SELECT 'payment.updated', p.terminal_id, ${paymentUpdatedPayload("'succeeded'", 'm.at_text', 'm.traceparent')}
         FROM p JOIN m USING (id)
     ), n AS (
       ${rememberNonceSql('m.nonce_scope', 'm.nonce', 'm.nonce_at', 'p JOIN m USING (id) WHERE m.nonce IS NOT NULL')}
     ), h AS MATERIALIZED (
       SELECT p.*, m.journal_id, ${hooks} AS ok FROM p JOIN m ON m.id = p.id
     ), k AS MATERIALIZED (
       SELECT ${setHooks} AS ok
     ), l AS (
       SELECT x.journal_id FROM ${ledger} AS x WHERE (SELECT ok FROM k)
     )
     SELECT p.*,
            CASE WHEN (SELECT count(*) FROM n) <> (SELECT count(*) FROM p JOIN m USING (id) WHERE m.nonce IS NOT NULL)
                   THEN payments.abandon_completion('TPP02', 'a nonce was used already')
                 WHEN (SELECT count(*) FROM l) <> (SELECT count(*) FROM h)
                   THEN payments.abandon_completion('TPP03', 'a ledger entry was not written')
                 ELSE true END AS completed
       FROM p`,
    params,
    BATCH_PLAN,
  );
  const byId = new Map<string, PaymentRow>();
  for (const { completed: _c, ...row } of rows) byId.set(row.id, row as PaymentRow);
  return members.map((m) => byId.get(m.id));
}

export async function flagReconciliation(
  q: Queryable,
  id: string,
  reason: string,
  responseCode: string | null,
  now: Date,
) {
  await q.query(
    `UPDATE payments.payments SET needs_reconciliation = true, reconciliation_reason = $2,
            response_code = coalesce($3, response_code), next_check_at = NULL, updated_at = $4 WHERE id = $1`,
    [id, reason, responseCode, now],
  );
}

/**
 * Flags a refund for reconciliation: no more status checks. Its amount stays reserved on the
 * payment (a pending refund's reservation is released only by a definitive failure).
 */
export async function flagRefundReconciliation(
  q: Queryable,
  id: string,
  reason: string,
  responseCode: string | null,
  now: Date,
): Promise<RefundRow> {
  const { rows } = await q.query<RefundRow>(
    `UPDATE payments.refunds SET needs_reconciliation = true, reconciliation_reason = $2,
            response_code = coalesce($3, response_code), next_check_at = NULL, flagged_at = $4
      WHERE id = $1 RETURNING *`,
    [id, reason, responseCode, now],
  );
  return rows[0];
}

/** Flags the payment of a flagged refund, so it is listed for reconciliation; a reason it already has is kept. */
export async function flagPaymentForRefund(q: Queryable, id: string, reason: string, now: Date): Promise<PaymentRow> {
  const { rows } = await q.query<PaymentRow>(
    `UPDATE payments.payments SET reconciliation_reason = CASE WHEN needs_reconciliation THEN reconciliation_reason ELSE $2 END,
            needs_reconciliation = true, updated_at = $3
      WHERE id = $1 RETURNING *`,
    [id, reason, now],
  );
  return rows[0];
}

/** No more status checks for this payment: the expiry job gives it its final check. */
export async function endStatusChecks(q: Queryable, id: string) {
  await q.query(`UPDATE payments.payments SET next_check_at = NULL WHERE id = $1 AND status = 'pending'`, [id]);
}

/** Claims up to `limit` pending payments due for a status check (one replica gets each). */
export async function claimDueStatusChecks(q: Queryable, now: Date, nextCheckAt: Date, limit: number) {
  const { rows } = await q.query<PaymentRow>(
    `UPDATE payments.payments SET status_checks = status_checks + 1, next_check_at = $2
      WHERE id IN (SELECT id FROM payments.payments
                    WHERE status = 'pending' AND next_check_at <= $1 AND NOT needs_reconciliation
                    ORDER BY next_check_at LIMIT $3 FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [now, nextCheckAt, limit],
  );
  return rows;
}

/**
 * Pending payments past their expiry. The claim pushes next_check_at out by a lease, so other
 * replicas skip them while this one asks the bank; a crashed worker's lease simply runs out.
 */
export async function claimExpired(q: Queryable, now: Date, leaseUntil: Date, limit: number) {
  const { rows } = await q.query<PaymentRow>(
    `UPDATE payments.payments SET next_check_at = $2
      WHERE id IN (SELECT id FROM payments.payments
                    WHERE status IN ('created', 'pending') AND expires_at <= $1 AND NOT needs_reconciliation
                      AND (next_check_at IS NULL OR next_check_at <= $1)
                    ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [now, leaseUntil, limit],
  );
  return rows;
}

/** What operator reversals charged to the merchant (settlement, not failed) took back of the payment `id` (SQL). */
const reversedSql = (id: string) => `(SELECT coalesce(sum(r.amount), 0) FROM settlement.reversals r
   WHERE r.payment_id = ${id} AND r.charge_merchant AND r.status <> 'failed')`;
const REVERSED_SQL = reversedSql('$1');

/**
 * What is left to refund of the payment whose row is `p`: the one definition of "refundable". The
 * reservation below admits a refund only up to it, and the payments API shows it as
 * `refundable_amount` (refundableAmounts), so the two cannot disagree. A refund in flight is
 * reserved (refund_reserved); an operator reversal charged to the merchant takes back its amount.
 */
const refundableSql = (p: string) =>
  `(CASE WHEN ${p}.status IN ('succeeded', 'partially_refunded')
         THEN ${p}.amount - ${p}.refund_reserved - ${reversedSql(`${p}.id`)} ELSE 0 END)`;

/**
 * Reserves `amount` of the payment for a refund; undefined when not refundable or too much. What
 * an operator reversal charged to the merchant took back (settlement.reversals, not failed) is not
 * refundable either. The row is locked first, in a statement of its own: a reversal request holds
 * the payment FOR SHARE until it commits, so this waits for it, and the UPDATE that follows (a new
 * statement, a new snapshot under READ COMMITTED) sees the reversal it committed.
 */
export async function reserveRefund(q: Queryable, paymentId: string, amount: number, now: Date) {
  await q.query(`SELECT 1 FROM payments.payments WHERE id = $1 FOR UPDATE`, [paymentId]);
  const { rows } = await q.query<PaymentRow>(
    `UPDATE payments.payments p SET refund_reserved = p.refund_reserved + $2, updated_at = $3
      WHERE p.id = $1 AND $2 <= ${refundableSql('p')}
      RETURNING *`,
    [paymentId, amount, now],
  );
  return rows[0];
}

export async function reversedAmount(q: Queryable, paymentId: string): Promise<number> {
  const { rows } = await q.query<{ n: string }>(`SELECT ${REVERSED_SQL}::bigint AS n`, [paymentId]);
  return Number(rows[0].n);
}

/** What is left to refund of each payment (refundableSql), by id; one statement for a page. */
export async function refundableAmounts(q: Queryable, paymentIds: string[]): Promise<Map<string, number>> {
  if (paymentIds.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; n: string }>(
    `SELECT p.id, ${refundableSql('p')}::bigint AS n FROM payments.payments p WHERE p.id = ANY($1::text[])`,
    [paymentIds],
  );
  return new Map(rows.map((r) => [r.id, Number(r.n)]));
}

export async function insertRefund(
  q: Queryable,
  r: Pick<RefundRow, 'id' | 'payment_id' | 'refund_ref' | 'amount' | 'reason'> & { now: Date; nextCheckAt: Date },
) {
  const { rows } = await q.query<RefundRow>(
    `INSERT INTO payments.refunds (id, payment_id, refund_ref, amount, status, reason, created_at, next_check_at)
     VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) RETURNING *`,
    [r.id, r.payment_id, r.refund_ref, r.amount, r.reason, r.now, r.nextCheckAt],
  );
  return rows[0];
}

export async function getRefund(q: Queryable, id: string, forUpdate = false): Promise<RefundRow | undefined> {
  const { rows } = await q.query<RefundRow>(
    `SELECT * FROM payments.refunds WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

export async function getRefundByRef(q: Queryable, ref: string): Promise<RefundRow | undefined> {
  const { rows } = await q.query<RefundRow>(`SELECT * FROM payments.refunds WHERE refund_ref = $1`, [ref]);
  return rows[0];
}

export async function listRefunds(q: Queryable, paymentId: string): Promise<RefundRow[]> {
  const { rows } = await q.query<RefundRow>(`SELECT * FROM payments.refunds WHERE payment_id = $1 ORDER BY id`, [
    paymentId,
  ]);
  return rows;
}

export async function completeRefund(
  q: Queryable,
  id: string,
  status: 'succeeded' | 'failed',
  bankRef: string | null,
  code: string | null,
  now: Date,
) {
  const { rows } = await q.query<RefundRow>(
    `UPDATE payments.refunds SET status = $2, bank_ref = coalesce($3, bank_ref), response_code = $4, completed_at = $5, next_check_at = NULL
      WHERE id = $1 AND status = 'pending' RETURNING *`,
    [id, status, bankRef, code, now],
  );
  return rows[0];
}

/** Moves the payment's refund totals after a refund settles: success counts it, failure releases it. */
export async function settleRefundOnPayment(
  q: Queryable,
  paymentId: string,
  amount: number,
  succeeded: boolean,
  now: Date,
) {
  const { rows } = await q.query<PaymentRow>(
    succeeded
      ? `UPDATE payments.payments SET refunded_amount = refunded_amount + $2, updated_at = $3 WHERE id = $1 RETURNING *`
      : `UPDATE payments.payments SET refund_reserved = refund_reserved - $2, updated_at = $3 WHERE id = $1 RETURNING *`,
    [paymentId, amount, now],
  );
  return rows[0];
}

export async function claimDueRefundChecks(q: Queryable, now: Date, nextCheckAt: Date, limit: number) {
  const { rows } = await q.query<RefundRow>(
    `UPDATE payments.refunds SET status_checks = status_checks + 1, next_check_at = $2
      WHERE id IN (SELECT id FROM payments.refunds WHERE status = 'pending' AND next_check_at <= $1 AND NOT needs_reconciliation
                    ORDER BY next_check_at LIMIT $3 FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [now, nextCheckAt, limit],
  );
  return rows;
}

export async function enqueueOutbox(q: Queryable, topic: string, key: string, payload: unknown) {
  await q.query(`INSERT INTO platform.outbox (topic, key, payload) VALUES ($1, $2, $3)`, [
    topic,
    key,
    JSON.stringify(payload),
  ]);
}

export async function countNeedingReconciliation(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM payments.payments WHERE needs_reconciliation`,
  );
  return rows[0].n;
}

/** What creating a payment needs to know: the terminal's context and the banks marked down (sorted). */
export type PaymentContext = TerminalContext & { down_banks: string[] };

/**
 * The context as one row `c`, for paymentContext() and insertPaymentIfContext(): both hand it back
 * as to_jsonb(c), so a context read by one compares equal (jsonb =) with the same one read by the
 * other. The banks marked down are sorted, so the same set is the same array.
 */
const contextRowSql = (param: string) =>
  `SELECT ctx.*, ARRAY(SELECT d.code FROM (${downBankCodesSql()}) d ORDER BY d.code COLLATE "C") AS down_banks
     FROM (${terminalContextSql(param)}) ctx`;

/**
 * What creating a payment needs to know, in one round trip: the terminal, its store and merchant
 * (as merchants' getTerminalContext() reads them) and the banks marked down right now (as the
 * banks module's route() would read them). A read of the other modules' tables, through the
 * queries they export for it, kept to this one statement because it runs before every payment:
 * a deliberate exception (docs/architecture.md, "Deliberate exceptions").
 */
export async function paymentContext(q: Queryable, terminalId: string): Promise<PaymentContext | undefined> {
  const { rows } = await q.query<{ ctx: PaymentContext }>(`SELECT to_jsonb(c) AS ctx FROM (${contextRowSql('$1')}) c`, [
    terminalId,
  ]);
  return rows[0]?.ctx;
}

/** A create decided on a context this process read before (`known`), for insertPaymentsIfContext(). */
export interface NewPaymentIfContext {
  draft: NewPayment;
  audit: PreparedAuditEvent[];
  known: PaymentContext;
}

/** What insertPaymentsIfContext() answers for one create. */
export interface NewPaymentOutcome {
  /** The terminal's context as the statement read it (undefined: the terminal is gone). */
  ctx: PaymentContext | undefined;
  /** Whether it was exactly `known`: only then was the payment written. */
  matched: boolean;
  /** The payment written; undefined when the context did not match, or when the terminal already has a payment with this client_ref. */
  row: PaymentRow | undefined;
}

/**
 * insertPayment() and the context read in ONE statement, for creates decided on a context this
 * process read before (`known`): each payment is written only if its terminal's context (and the
 * banks marked down) read by this statement is still exactly its `known`, so nothing is decided
 * on a stale one. Either way the statement answers, per create and in order, with the context as
 * it is now and whether it matched. Several creates at once are one statement and one commit
 * (the create's batcher in payments.service.ts); each one's audit records are tagged with its
 * payment's id and written only with it.
 */
export async function insertPaymentsIfContext(
  q: Queryable,
  creates: readonly NewPaymentIfContext[],
): Promise<NewPaymentOutcome[]> {
  const col = <T>(f: (d: NewPayment) => T) => creates.map((c) => f(c.draft));
  const { rows } = await q.query<PaymentRow & { i: string; ctx_now: PaymentContext | null; ctx_matched: boolean }>(
    `WITH b AS MATERIALIZED (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
                            $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::text[],
                            $16::text[], $17::text[])
                WITH ORDINALITY AS b(id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, payer_vpa_ct, note,
                                     upi_uri, bank_code, expires_at, now, payer_vpa_bidx, client_ref, known, i)
     ), c AS MATERIALIZED (
       SELECT b.i, (SELECT to_jsonb(x) FROM (${contextRowSql('b.terminal_id')}) x) AS ctx FROM b
     ), ok AS MATERIALIZED (
       SELECT b.* FROM b JOIN c USING (i) WHERE c.ctx = b.known::jsonb
     ), p AS (
       ${INSERT_PAYMENT}
       SELECT id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, 'created',
              payer_vpa_ct, note, upi_uri, bank_code, expires_at, now, now, payer_vpa_bidx, client_ref
         FROM ok ORDER BY i
       ON CONFLICT (terminal_id, client_ref) WHERE client_ref IS NOT NULL DO NOTHING
       RETURNING *
     ), a AS (${insertAuditEventsSql('$18', 'x.owner IN (SELECT id FROM p)')}
     ), e AS (
       INSERT INTO payments.payment_events (payment_id, from_status, to_status, source, at)
       SELECT id, NULL, 'created', 'api', created_at FROM p
     )
     SELECT c.i, c.ctx AS ctx_now, ok.i IS NOT NULL AS ctx_matched, p.*
       FROM c LEFT JOIN ok USING (i) LEFT JOIN p ON p.id = ok.id
      ORDER BY c.i`,
    [
      col((d) => d.id),
      col((d) => d.txn_ref),
      col((d) => d.merchant_id),
      col((d) => d.store_id),
      col((d) => d.terminal_id),
      col((d) => d.method),
      col((d) => d.amount),
      col((d) => d.currency),
      col((d) => d.payer_vpa_ct),
      col((d) => d.note),
      col((d) => d.upi_uri),
      col((d) => d.bank_code),
      col((d) => d.expires_at),
      col((d) => d.now),
      col((d) => d.payer_vpa_bidx),
      col((d) => d.client_ref ?? null),
      creates.map((c) => JSON.stringify(c.known)),
      JSON.stringify(creates.flatMap((c) => c.audit.map((e) => ({ ...e, owner: c.draft.id })))),
    ],
    BATCH_PLAN,
  );
  return rows.map(({ i: _i, ctx_now, ctx_matched, ...row }) => ({
    ctx: ctx_now ?? undefined,
    matched: ctx_matched,
    row: row.id ? (row as PaymentRow) : undefined,
  }));
}
