import type { Queryable } from '../../platform/db.ts';

// SQL for operators, their sessions and second factors.

export interface OperatorRow {
  id: string;
  email: string;
  name: string;
  merchant_id: string | null;
  roles: string[];
  status: 'active' | 'disabled' | 'deleted';
  disabled_reason: string | null;
  password_hash: string;
  password_changed_at: Date;
  must_change_password: boolean;
  totp_secret_sealed: Buffer | null;
  totp_enrolled_at: Date | null;
  totp_last_step: number;
  failed_attempts: number;
  locked_until: Date | null;
  last_login_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
  created_by: string | null;
}

export async function getOperator(q: Queryable, id: string, lock = false): Promise<OperatorRow | undefined> {
  const r = await q.query<OperatorRow>(`SELECT * FROM identity.operators WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [
    id,
  ]);
  return r.rows[0];
}

export async function getOperatorByEmail(q: Queryable, email: string): Promise<OperatorRow | undefined> {
  const r = await q.query<OperatorRow>(
    `SELECT * FROM identity.operators WHERE lower(email) = lower($1) AND status <> 'deleted'`,
    [email],
  );
  return r.rows[0];
}

export async function insertOperator(
  q: Queryable,
  o: {
    id: string;
    email: string;
    name: string;
    merchant_id: string | null;
    roles: string[];
    password_hash: string;
    now: Date;
    created_by: string | null;
    must_change_password: boolean;
  },
) {
  await q.query(
    `INSERT INTO identity.operators (id, email, name, merchant_id, roles, password_hash, password_changed_at, must_change_password, created_at, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $9)`,
    [o.id, o.email, o.name, o.merchant_id, o.roles, o.password_hash, o.now, o.must_change_password, o.created_by],
  );
}

export async function listOperators(q: Queryable, f: { merchantId?: string; before?: string; limit: number }) {
  const r = await q.query<OperatorRow>(
    `SELECT * FROM identity.operators WHERE status <> 'deleted' AND ($1::text IS NULL OR merchant_id = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [f.merchantId ?? null, f.before ?? null, f.limit + 1],
  );
  return r.rows;
}

/** Ends every open session of an operator (disabled, password changed, MFA reset). */
export async function revokeSessions(
  q: Queryable,
  operatorId: string,
  reason: string,
  now: Date,
  exceptSessionId?: string,
) {
  const r = await q.query(
    `UPDATE identity.sessions SET revoked_at = $2, revoked_reason = $3 WHERE operator_id = $1 AND revoked_at IS NULL AND ($4::text IS NULL OR id <> $4)`,
    [operatorId, now, reason, exceptSessionId ?? null],
  );
  return r.rowCount;
}

export async function passwordHistory(q: Queryable, operatorId: string, depth: number): Promise<string[]> {
  const r = await q.query<{ password_hash: string }>(
    `SELECT password_hash FROM identity.password_history WHERE operator_id = $1 ORDER BY created_at DESC LIMIT $2`,
    [operatorId, depth],
  );
  return r.rows.map((x) => x.password_hash);
}

/** Sets a new password hash, keeping the old one in the history (only the newest few are kept). */
export async function setPassword(
  q: Queryable,
  o: { id: string; oldHash: string; newHash: string; now: Date; mustChange: boolean; keep: number },
) {
  await q.query(`INSERT INTO identity.password_history (operator_id, password_hash, created_at) VALUES ($1, $2, $3)`, [
    o.id,
    o.oldHash,
    o.now,
  ]);
  await q.query(
    `DELETE FROM identity.password_history WHERE operator_id = $1 AND created_at < (
       SELECT min(created_at) FROM (SELECT created_at FROM identity.password_history WHERE operator_id = $1 ORDER BY created_at DESC LIMIT $2) k)`,
    [o.id, o.keep],
  );
  await q.query(
    `UPDATE identity.operators SET password_hash = $2, password_changed_at = $3, must_change_password = $4 WHERE id = $1`,
    [o.id, o.newHash, o.now, o.mustChange],
  );
}
