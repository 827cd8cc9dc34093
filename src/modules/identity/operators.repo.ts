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

export async function updateOperator(q: Queryable, id: string, name: string | null, roles: string[] | null) {
  await q.query(`UPDATE identity.operators SET name = coalesce($2, name), roles = coalesce($3, roles) WHERE id = $1`, [
    id,
    name,
    roles,
  ]);
}

/** Sets an operator's status. Re-enabling counts as use (last_used_at), or the inactivity job would disable the account again at once. */
export async function setOperatorStatus(
  q: Queryable,
  id: string,
  status: OperatorRow['status'],
  reason: string | null,
  now: Date,
) {
  await q.query(
    `UPDATE identity.operators SET status = $2, disabled_reason = $3, last_used_at = CASE WHEN $2 = 'active' THEN $4 ELSE last_used_at END WHERE id = $1`,
    [id, status, reason, now],
  );
}

/** Disables every active operator not used since `cutoff`; the operators disabled. */
export async function disableInactiveOperators(q: Queryable, cutoff: Date) {
  const r = await q.query<{ id: string; merchant_id: string | null; last_used_at: Date | null }>(
    `UPDATE identity.operators SET status = 'disabled', disabled_reason = 'inactive'
      WHERE status = 'active' AND coalesce(last_used_at, created_at) < $1
      RETURNING id, merchant_id, last_used_at`,
    [cutoff],
  );
  return r.rows;
}

// ---- failed attempts, locks, sign-in ----

export async function setFailedAttempts(q: Queryable, id: string, failures: number, lockedUntil: Date | null) {
  await q.query(`UPDATE identity.operators SET failed_attempts = $2, locked_until = $3 WHERE id = $1`, [
    id,
    failures,
    lockedUntil,
  ]);
}

export async function unlockOperator(q: Queryable, id: string) {
  await q.query(`UPDATE identity.operators SET locked_until = NULL, failed_attempts = 0 WHERE id = $1`, [id]);
}

/** A completed sign-in: counters cleared, last login and use, and the TOTP step that was used (a code works once). */
export async function recordLogin(q: Queryable, id: string, now: Date, totpStep: number) {
  await q.query(
    `UPDATE identity.operators SET failed_attempts = 0, locked_until = NULL, last_login_at = $2, last_used_at = $2,
            totp_last_step = greatest(totp_last_step, $3) WHERE id = $1`,
    [id, now, totpStep],
  );
}

/** Last use, for the inactivity rule. */
export async function touchOperator(q: Queryable, id: string, now: Date) {
  await q.query(`UPDATE identity.operators SET last_used_at = $2 WHERE id = $1`, [id, now]);
}

// ---- second factor ----

export async function setTotpSecret(q: Queryable, id: string, sealed: Buffer, now: Date) {
  await q.query(`UPDATE identity.operators SET totp_secret_sealed = $2, totp_enrolled_at = $3 WHERE id = $1`, [
    id,
    sealed,
    now,
  ]);
}

/** A demo operator's known TOTP secret; enrolled and counted as used now. */
export async function setDemoTotpSecret(q: Queryable, id: string, sealed: Buffer, now: Date) {
  await q.query(
    `UPDATE identity.operators SET totp_secret_sealed = $2, totp_enrolled_at = $3, last_used_at = $3 WHERE id = $1`,
    [id, sealed, now],
  );
}

export async function setTotpLastStep(q: Queryable, id: string, step: number) {
  await q.query(`UPDATE identity.operators SET totp_last_step = $2 WHERE id = $1`, [id, step]);
}

/** Forgets the TOTP secret: the next sign-in enrolls again. */
export async function clearTotp(q: Queryable, id: string) {
  await q.query(
    `UPDATE identity.operators SET totp_secret_sealed = NULL, totp_enrolled_at = NULL, totp_last_step = 0 WHERE id = $1`,
    [id],
  );
}

export interface MfaChallengeRow {
  id: string;
  operator_id: string;
  kind: 'totp' | 'enroll';
  pending_secret: Buffer | null;
  attempts: number;
  expires_at: Date;
  used_at: Date | null;
}

/** A second-factor challenge; `pending_secret` (sealed) only for an enrollment. */
export async function insertMfaChallenge(
  q: Queryable,
  c: {
    id: string;
    tokenHash: Buffer;
    operatorId: string;
    kind: 'totp' | 'enroll';
    pendingSecret: Buffer | null;
    expiresAt: Date;
    now: Date;
  },
) {
  await q.query(
    `INSERT INTO identity.mfa_challenges (id, token_hash, operator_id, kind, pending_secret, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [c.id, c.tokenHash, c.operatorId, c.kind, c.pendingSecret, c.expiresAt, c.now],
  );
}

export async function getMfaChallengeForUpdate(q: Queryable, tokenHash: Buffer): Promise<MfaChallengeRow | undefined> {
  const r = await q.query<MfaChallengeRow>(`SELECT * FROM identity.mfa_challenges WHERE token_hash = $1 FOR UPDATE`, [
    tokenHash,
  ]);
  return r.rows[0];
}

export async function countMfaChallengeAttempt(q: Queryable, id: string) {
  await q.query(`UPDATE identity.mfa_challenges SET attempts = attempts + 1 WHERE id = $1`, [id]);
}

export async function markMfaChallengeUsed(q: Queryable, id: string, now: Date) {
  await q.query(`UPDATE identity.mfa_challenges SET used_at = $2 WHERE id = $1`, [id, now]);
}

export async function deleteRecoveryCodes(q: Queryable, operatorId: string) {
  await q.query(`DELETE FROM identity.recovery_codes WHERE operator_id = $1`, [operatorId]);
}

export async function insertRecoveryCode(q: Queryable, operatorId: string, codeHash: Buffer, now: Date) {
  await q.query(`INSERT INTO identity.recovery_codes (operator_id, code_hash, created_at) VALUES ($1, $2, $3)`, [
    operatorId,
    codeHash,
    now,
  ]);
}

/** Uses an unused recovery code of the operator; whether there was one. */
export async function spendRecoveryCode(
  q: Queryable,
  operatorId: string,
  codeHash: Buffer,
  now: Date,
): Promise<boolean> {
  const r = await q.query(
    `UPDATE identity.recovery_codes SET used_at = $3 WHERE operator_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING 1`,
    [operatorId, codeHash, now],
  );
  return r.rows.length === 1;
}

// ---- sessions ----

export async function insertSession(
  q: Queryable,
  s: {
    id: string;
    tokenHash: Buffer;
    csrfHash: Buffer;
    operatorId: string;
    now: Date;
    expiresAt: Date;
    ip: string | null;
  },
) {
  await q.query(
    `INSERT INTO identity.sessions (id, token_hash, csrf_hash, operator_id, created_at, last_seen_at, expires_at, ip) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)`,
    [s.id, s.tokenHash, s.csrfHash, s.operatorId, s.now, s.expiresAt, s.ip],
  );
}

/** A session by its token's hash, with what authenticating it needs of its operator. */
export async function getSessionByTokenHash(q: Queryable, tokenHash: Buffer) {
  const r = await q.query<{
    id: string;
    operator_id: string;
    last_seen_at: Date;
    expires_at: Date;
    revoked_at: Date | null;
    status: string;
    roles: string[];
    merchant_id: string | null;
    must_change_password: boolean;
    last_used_at: Date | null;
  }>(
    `SELECT s.id, s.operator_id, s.last_seen_at, s.expires_at, s.revoked_at, o.status, o.roles, o.merchant_id, o.must_change_password, o.last_used_at
       FROM identity.sessions s JOIN identity.operators o ON o.id = s.operator_id WHERE s.token_hash = $1`,
    [tokenHash],
  );
  return r.rows[0];
}

export async function getSessionTimes(
  q: Queryable,
  id: string,
): Promise<{ expires_at: Date; created_at: Date } | undefined> {
  const r = await q.query<{ expires_at: Date; created_at: Date }>(
    `SELECT expires_at, created_at FROM identity.sessions WHERE id = $1`,
    [id],
  );
  return r.rows[0];
}

/** Ends one session (if still open), saying why. */
export async function endSession(q: Queryable, id: string, now: Date, reason: string) {
  await q.query(
    `UPDATE identity.sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL`,
    [id, now, reason],
  );
}

export async function touchSession(q: Queryable, id: string, now: Date) {
  await q.query(`UPDATE identity.sessions SET last_seen_at = $2 WHERE id = $1`, [id, now]);
}

// ---- access review (PCI DSS 7.2.4) ----

export async function listOperatorsForReview(q: Queryable): Promise<OperatorRow[]> {
  const r = await q.query<OperatorRow>(
    `SELECT * FROM identity.operators WHERE status <> 'deleted' ORDER BY merchant_id NULLS FIRST, email`,
  );
  return r.rows;
}

/** API keys in use (not revoked, not expired at `now`), for the access review. */
export async function listLiveApiKeysForReview(q: Queryable, now: Date) {
  const r = await q.query<{
    id: string;
    name: string;
    merchant_id: string | null;
    permissions: string[];
    created_at: Date;
    expires_at: Date | null;
    last_used_at: Date | null;
    revoked_at: Date | null;
    ip_allowlist: string[];
  }>(
    `SELECT id, name, merchant_id, permissions, created_at, expires_at, last_used_at, revoked_at, ip_allowlist::text[] AS ip_allowlist
       FROM identity.api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) ORDER BY merchant_id NULLS FIRST, name`,
    [now],
  );
  return r.rows;
}
