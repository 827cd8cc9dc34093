import type { Queryable } from '../../platform/db.ts';
import { type LedgerRow, type LedgerTable, ledgerStatements } from '../../platform/requestLedger.repo.ts';

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

/**
 * The status of each of these terminals (`active`, `disabled`), undefined for one that does not
 * exist, in the order asked (an id may be asked twice). One read by primary key for a batch of
 * requests' status checks (protocol/handlers.ts).
 */
export async function terminalStatuses(q: Queryable, ids: readonly string[]): Promise<(string | undefined)[]> {
  if (ids.length === 0) return [];
  const { rows } = await q.query<{ id: string; status: string }>(
    `SELECT id, status FROM merchants.terminals WHERE id = ANY($1::text[])`,
    [[...new Set(ids)]],
  );
  const status = new Map(rows.map((r) => [r.id, r.status]));
  return ids.map((id) => status.get(id));
}

// ---- request ids ----

/**
 * Request ids of state-changing requests (migration 0008): the terminal protocol's part of the
 * request ledger (platform/requestLedger.ts), whose statements are built from these names. The
 * stored response is the exact JSON published on /res; `type` is the request type.
 */
export const REQUESTS_TABLE: LedgerTable = {
  table: 'terminals.requests',
  scope: 'terminal_id',
  key: 'request_id',
  response: 'response',
  label: 'type',
};
const requests = ledgerStatements(REQUESTS_TABLE);

export function getRequest(q: Queryable, terminalId: string, requestId: string): Promise<LedgerRow | undefined> {
  return requests.get(q, terminalId, requestId);
}

/** Retention (TERMINAL_REQUEST_RETENTION_HOURS), run by the gateway's housekeeping. */
export function pruneRequests(q: Queryable, olderThanHours: number): Promise<number> {
  return requests.prune(q, olderThanHours);
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
