import type { Queryable } from '../../platform/db.ts';

// SQL for the terminals schema. Only this module writes these tables.

// ---- certificates ----

export interface CertificateRow {
  serial: string;
  terminal_id: string;
  fingerprint: string;
  not_before: Date;
  not_after: Date;
  revoked_at: Date | null;
  revoke_reason: string | null;
  created_at: Date;
}

export async function insertCertificate(
  q: Queryable,
  c: { serial: string; terminalId: string; fingerprint: string; notBefore: Date; notAfter: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO terminals.certificates (serial, terminal_id, fingerprint, not_before, not_after) VALUES ($1, $2, $3, $4, $5)`,
    [c.serial, c.terminalId, c.fingerprint, c.notBefore, c.notAfter],
  );
}

export async function getCertificateByFingerprint(
  q: Queryable,
  fingerprint: string,
): Promise<CertificateRow | undefined> {
  const { rows } = await q.query<CertificateRow>(`SELECT * FROM terminals.certificates WHERE fingerprint = $1`, [
    fingerprint,
  ]);
  return rows[0];
}

export async function listCertificates(q: Queryable, terminalId: string): Promise<CertificateRow[]> {
  const { rows } = await q.query<CertificateRow>(
    `SELECT * FROM terminals.certificates WHERE terminal_id = $1 ORDER BY created_at, serial`,
    [terminalId],
  );
  return rows;
}

/** Revokes one certificate (by serial) or every live one of the terminal. Returns the serials revoked. */
export async function revokeCertificates(
  q: Queryable,
  terminalId: string,
  reason: string,
  serial?: string,
): Promise<string[]> {
  const { rows } = await q.query<{ serial: string }>(
    `UPDATE terminals.certificates SET revoked_at = now(), revoke_reason = $3
      WHERE terminal_id = $1 AND revoked_at IS NULL AND ($2::text IS NULL OR serial = $2) RETURNING serial`,
    [terminalId, serial ?? null, reason],
  );
  return rows.map((r) => r.serial);
}

export async function listRevokedCertificates(q: Queryable): Promise<{ serial: string; revoked_at: Date }[]> {
  const { rows } = await q.query<{ serial: string; revoked_at: Date }>(
    `SELECT serial, revoked_at FROM terminals.certificates WHERE revoked_at IS NOT NULL AND not_after > now() ORDER BY revoked_at`,
  );
  return rows;
}

// ---- development MQTT secrets ----

export async function replaceMqttSecret(q: Queryable, terminalId: string, secretHash: Buffer): Promise<number> {
  await q.query(`UPDATE terminals.mqtt_secrets SET revoked_at = now() WHERE terminal_id = $1 AND revoked_at IS NULL`, [
    terminalId,
  ]);
  const { rows } = await q.query<{ id: number }>(
    `INSERT INTO terminals.mqtt_secrets (terminal_id, secret_hash) VALUES ($1, $2) RETURNING id`,
    [terminalId, secretHash],
  );
  return rows[0].id;
}

export async function getLiveMqttSecret(
  q: Queryable,
  terminalId: string,
): Promise<{ id: number; secret_hash: Buffer } | undefined> {
  const { rows } = await q.query<{ id: number; secret_hash: Buffer | Uint8Array }>(
    `SELECT id, secret_hash FROM terminals.mqtt_secrets WHERE terminal_id = $1 AND revoked_at IS NULL`,
    [terminalId],
  );
  return rows[0] && { id: rows[0].id, secret_hash: Buffer.from(rows[0].secret_hash) };
}

export async function revokeMqttSecrets(q: Queryable, terminalId: string): Promise<number> {
  const r = await q.query(
    `UPDATE terminals.mqtt_secrets SET revoked_at = now() WHERE terminal_id = $1 AND revoked_at IS NULL`,
    [terminalId],
  );
  return r.rowCount;
}

// ---- revocations since a point in time (the gateway closes live sessions that lost their credential) ----

export async function credentialsRevokedSince(
  q: Queryable,
  since: Date,
): Promise<{ now: Date; fingerprints: string[]; secretIds: number[] }> {
  const [nowRow, certs, secrets] = await Promise.all([
    q.query<{ now: Date }>(`SELECT now() AS now`),
    q.query<{ fingerprint: string }>(`SELECT fingerprint FROM terminals.certificates WHERE revoked_at >= $1`, [since]),
    q.query<{ id: number }>(`SELECT id FROM terminals.mqtt_secrets WHERE revoked_at >= $1`, [since]),
  ]);
  return {
    now: nowRow.rows[0].now,
    fingerprints: certs.rows.map((r) => r.fingerprint),
    secretIds: secrets.rows.map((r) => r.id),
  };
}

/**
 * Of these terminals, the ones that may no longer connect (disabled). A read of the merchants
 * module's table, by primary key: the gateway asks it for its live sessions every few seconds.
 */
export async function inactiveTerminals(q: Queryable, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const { rows } = await q.query<{ id: string }>(
    `SELECT id FROM merchants.terminals WHERE id = ANY($1::text[]) AND status <> 'active'`,
    [ids],
  );
  return rows.map((r) => r.id);
}

// ---- request ids ----

export interface RequestRow {
  request_hash: string;
  type: string;
  state: 'in_progress' | 'completed';
  response: string | null;
  claimable: boolean;
}

export async function claimRequest(
  q: Queryable,
  terminalId: string,
  requestId: string,
  type: string,
  hash: string,
  claimSeconds: number,
): Promise<boolean> {
  const r = await q.query(
    `INSERT INTO terminals.requests (terminal_id, request_id, type, request_hash, state, locked_until)
     VALUES ($1, $2, $3, $4, 'in_progress', now() + make_interval(secs => $5))
     ON CONFLICT (terminal_id, request_id) DO NOTHING RETURNING request_id`,
    [terminalId, requestId, type, hash, claimSeconds],
  );
  return r.rowCount === 1;
}

export interface RequestClaim {
  terminalId: string;
  requestId: string;
  type: string;
  hash: string;
}

export interface RequestCompletion {
  terminalId: string;
  requestId: string;
  response: string;
}

/**
 * Stores finished requests' responses and claims new request ids, in one statement (the gateway
 * batches what arrives while the previous statement runs). Returns the keys (`terminal\nrequest`)
 * of the claims that were won; a claim not returned lost to a row already there. Claims go in key
 * order, so two replicas claiming overlapping ids cannot deadlock.
 */
export async function claimAndCompleteRequests(
  q: Queryable,
  claims: RequestClaim[],
  completions: RequestCompletion[],
  claimSeconds: number,
): Promise<Set<string>> {
  const c = [...claims].sort((a, b) =>
    a.terminalId === b.terminalId ? (a.requestId < b.requestId ? -1 : 1) : a.terminalId < b.terminalId ? -1 : 1,
  );
  const { rows } = await q.query<{ terminal_id: string; request_id: string }>(
    `WITH completed AS (
       UPDATE terminals.requests r SET state = 'completed', response = d.response
         FROM unnest($6::text[], $7::text[], $8::text[]) AS d(terminal_id, request_id, response)
        WHERE r.terminal_id = d.terminal_id AND r.request_id = d.request_id
     ), claimed AS (
       INSERT INTO terminals.requests (terminal_id, request_id, type, request_hash, state, locked_until)
       SELECT c.terminal_id, c.request_id, c.type, c.request_hash, 'in_progress', now() + make_interval(secs => $5)
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS c(terminal_id, request_id, type, request_hash, n)
        ORDER BY c.n
       ON CONFLICT (terminal_id, request_id) DO NOTHING RETURNING terminal_id, request_id
     )
     SELECT terminal_id, request_id FROM claimed`,
    [
      c.map((x) => x.terminalId),
      c.map((x) => x.requestId),
      c.map((x) => x.type),
      c.map((x) => x.hash),
      claimSeconds,
      completions.map((x) => x.terminalId),
      completions.map((x) => x.requestId),
      completions.map((x) => x.response),
    ],
  );
  return new Set(rows.map((r) => `${r.terminal_id}\n${r.request_id}`));
}

export async function getRequest(q: Queryable, terminalId: string, requestId: string): Promise<RequestRow | undefined> {
  const { rows } = await q.query<RequestRow>(
    `SELECT request_hash, type, state, response, locked_until < now() AS claimable FROM terminals.requests WHERE terminal_id = $1 AND request_id = $2`,
    [terminalId, requestId],
  );
  return rows[0];
}

/** Takes over a claim whose holder died (its lease ran out). Only one taker wins. */
export async function takeOverRequest(
  q: Queryable,
  terminalId: string,
  requestId: string,
  claimSeconds: number,
): Promise<boolean> {
  const r = await q.query(
    `UPDATE terminals.requests SET locked_until = now() + make_interval(secs => $3)
      WHERE terminal_id = $1 AND request_id = $2 AND state = 'in_progress' AND locked_until < now() RETURNING request_id`,
    [terminalId, requestId, claimSeconds],
  );
  return r.rowCount === 1;
}

export async function releaseRequest(q: Queryable, terminalId: string, requestId: string): Promise<void> {
  await q.query(`DELETE FROM terminals.requests WHERE terminal_id = $1 AND request_id = $2 AND state = 'in_progress'`, [
    terminalId,
    requestId,
  ]);
}

export async function pruneRequests(q: Queryable, olderThanHours: number): Promise<number> {
  const r = await q.query(`DELETE FROM terminals.requests WHERE created_at < now() - make_interval(hours => $1)`, [
    olderThanHours,
  ]);
  return r.rowCount;
}

// ---- violations ----

export interface Violation {
  terminalId?: string | null;
  clientId?: string | null;
  kind: ViolationKind;
  detail?: string;
  remoteAddr?: string | null;
}

export type ViolationKind =
  | 'auth_failed'
  | 'client_id_mismatch'
  | 'acl_publish'
  | 'acl_subscribe'
  | 'oversized'
  | 'frame_too_large'
  | 'malformed'
  | 'schema'
  | 'unknown_type'
  | 'request_id_reused'
  | 'too_many_in_flight'
  | 'credential_revoked'
  | 'terminal_disabled';

export async function insertViolations(q: Queryable, vs: Violation[]): Promise<void> {
  if (vs.length === 0) return;
  const params: unknown[] = [];
  const values = vs.map((v, i) => {
    params.push(
      v.terminalId ?? null,
      v.clientId?.slice(0, 128) ?? null,
      v.kind,
      v.detail?.slice(0, 500) ?? null,
      v.remoteAddr ?? null,
    );
    const b = i * 5;
    return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5})`;
  });
  await q.query(
    `INSERT INTO terminals.violations (terminal_id, client_id, kind, detail, remote_addr) VALUES ${values.join(', ')}`,
    params,
  );
}

export async function listViolations(q: Queryable, f: { terminalId?: string; limit: number }) {
  const { rows } = await q.query<{
    id: number;
    terminal_id: string | null;
    client_id: string | null;
    kind: string;
    detail: string | null;
    remote_addr: string | null;
    at: Date;
  }>(`SELECT * FROM terminals.violations WHERE ($1::text IS NULL OR terminal_id = $1) ORDER BY id DESC LIMIT $2`, [
    f.terminalId ?? null,
    f.limit,
  ]);
  return rows;
}

/** Replaces the live MQTT secret of each terminal (bulk provisioning), in two statements. */
export async function replaceMqttSecretsBatch(
  q: Queryable,
  rows: { terminalId: string; hash: Buffer }[],
): Promise<void> {
  if (rows.length === 0) return;
  const ids = rows.map((r) => r.terminalId);
  await q.query(
    `UPDATE terminals.mqtt_secrets SET revoked_at = now() WHERE terminal_id = ANY($1::text[]) AND revoked_at IS NULL`,
    [ids],
  );
  await q.query(
    `INSERT INTO terminals.mqtt_secrets (terminal_id, secret_hash) SELECT * FROM unnest($1::text[], $2::bytea[])`,
    [ids, rows.map((r) => r.hash)],
  );
}

/** Of these terminal ids, the ones that exist and are active. */
export async function activeTerminalIds(q: Queryable, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await q.query<{ id: string }>(
    `SELECT id FROM merchants.terminals WHERE id = ANY($1::text[]) AND status = 'active'`,
    [ids],
  );
  return new Set(rows.map((r) => r.id));
}
