import type { Queryable } from '../../platform/db.ts';

// SQL for approval requests (four eyes, migrations/0028_approvals.sql).

export type ApprovalKind = 'refund' | 'mfa_reset' | 'compensation_retry';
export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'failed';

export interface ApprovalRow {
  id: string;
  kind: ApprovalKind;
  subject_type: string;
  subject_id: string;
  merchant_id: string | null;
  payload: Record<string, unknown>;
  requested_by: string;
  requested_at: Date;
  status: ApprovalStatus;
  decided_by: string | null;
  decided_at: Date | null;
  reason: string | null;
  outcome: Record<string, unknown> | null;
  expires_at: Date;
}

/** Rows with the names of who asked and who decided (for people reading the queue). */
export type ApprovalListRow = ApprovalRow & { requested_by_name: string | null; decided_by_name: string | null };

const WITH_NAMES = `SELECT a.*, r.name AS requested_by_name, d.name AS decided_by_name
  FROM identity.approval_requests a
  LEFT JOIN identity.operators r ON r.id = a.requested_by
  LEFT JOIN identity.operators d ON d.id = a.decided_by`;

export async function insertApproval(
  q: Queryable,
  a: Pick<
    ApprovalRow,
    'id' | 'kind' | 'subject_type' | 'subject_id' | 'merchant_id' | 'payload' | 'requested_by' | 'expires_at'
  > & { now: Date },
): Promise<ApprovalRow> {
  const { rows } = await q.query<ApprovalRow>(
    `INSERT INTO identity.approval_requests
       (id, kind, subject_type, subject_id, merchant_id, payload, requested_by, requested_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [
      a.id,
      a.kind,
      a.subject_type,
      a.subject_id,
      a.merchant_id,
      JSON.stringify(a.payload),
      a.requested_by,
      a.now,
      a.expires_at,
    ],
  );
  return rows[0];
}

export async function getApproval(q: Queryable, id: string, lock = false): Promise<ApprovalListRow | undefined> {
  if (lock) {
    // FOR UPDATE cannot lock the nullable side of an outer join: lock the request, then read names.
    await q.query('SELECT id FROM identity.approval_requests WHERE id = $1 FOR UPDATE', [id]);
  }
  const { rows } = await q.query<ApprovalListRow>(`${WITH_NAMES} WHERE a.id = $1`, [id]);
  return rows[0];
}

export async function listApprovals(
  q: Queryable,
  f: {
    /** Visible: requests of these kinds, and the caller's own requests of any kind. */
    kinds: readonly ApprovalKind[];
    requestedBy: string;
    kind?: ApprovalKind;
    merchantId?: string;
    status?: ApprovalStatus;
    subjectType?: string;
    subjectId?: string;
    before?: string;
    limit: number;
  },
): Promise<ApprovalListRow[]> {
  const where = ['(a.kind = ANY($1::text[]) OR a.requested_by = $2)'];
  const args: unknown[] = [f.kinds, f.requestedBy];
  const add = (sql: string, v: unknown) => {
    args.push(v);
    where.push(sql.replace('?', `$${args.length}`));
  };
  if (f.kind !== undefined) add('a.kind = ?', f.kind);
  if (f.merchantId !== undefined) add('a.merchant_id = ?', f.merchantId);
  if (f.status !== undefined) add('a.status = ?', f.status);
  if (f.subjectType !== undefined) add('a.subject_type = ?', f.subjectType);
  if (f.subjectId !== undefined) add('a.subject_id = ?', f.subjectId);
  if (f.before !== undefined) add('a.id < ?', f.before);
  args.push(f.limit + 1);
  const { rows } = await q.query<ApprovalListRow>(
    `${WITH_NAMES} WHERE ${where.join(' AND ')} ORDER BY a.id DESC LIMIT $${args.length}`,
    args,
  );
  return rows;
}

/**
 * The claim: pending → decided, only if still pending and not expired. The one statement that
 * makes a decision happen once: a second approver (or a retry) finds no pending row.
 */
export async function decideApproval(
  q: Queryable,
  a: {
    id: string;
    status: 'approved' | 'rejected' | 'failed';
    decidedBy: string;
    now: Date;
    reason: string | null;
    outcome: Record<string, unknown> | null;
  },
): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE identity.approval_requests
        SET status = $2, decided_by = $3, decided_at = $4, reason = $5, outcome = $6
      WHERE id = $1 AND status = 'pending' AND expires_at > $4 AND requested_by <> $3`,
    [a.id, a.status, a.decidedBy, a.now, a.reason, a.outcome === null ? null : JSON.stringify(a.outcome)],
  );
  return (rowCount ?? 0) === 1;
}

/** Records what an approved request did (e.g. the refund's status after the bank answered). */
export async function setApprovalOutcome(q: Queryable, id: string, outcome: Record<string, unknown>) {
  await q.query('UPDATE identity.approval_requests SET outcome = $2 WHERE id = $1', [id, JSON.stringify(outcome)]);
}

/** Pending requests past their expiry become expired; returns them (for the audit trail). */
export async function expireApprovals(q: Queryable, now: Date, limit = 500): Promise<ApprovalRow[]> {
  const { rows } = await q.query<ApprovalRow>(
    `UPDATE identity.approval_requests SET status = 'expired', decided_at = $1
      WHERE id IN (SELECT id FROM identity.approval_requests
                    WHERE status = 'pending' AND expires_at <= $1
                    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [now, limit],
  );
  return rows;
}
