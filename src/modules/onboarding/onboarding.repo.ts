import type { Queryable } from '../../platform/db.ts';

// SQL for onboarding.* (migrations/0024_onboarding.sql). The reconciliation also reads, by primary
// key through the external references, the rows the import created in merchants.* and rewards.*
// (read only; those modules write them).

export type RefKind = 'merchant' | 'store' | 'terminal' | 'reward_balance' | 'payment' | 'refund';

export interface ImportRow {
  id: string;
  kind: string;
  format: string;
  mapping: string;
  file_sha256: string;
  file_bytes: number;
  dry_run: boolean;
  status: 'running' | 'interrupted' | 'completed' | 'failed';
  actor: string;
  lines_done: number;
  rows_total: number;
  created: number;
  unchanged: number;
  rejected: number;
  error: string | null;
  report: unknown;
  started_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

export async function insertImport(
  q: Queryable,
  j: Pick<ImportRow, 'id' | 'kind' | 'format' | 'mapping' | 'file_sha256' | 'file_bytes' | 'dry_run' | 'actor'>,
): Promise<ImportRow> {
  const { rows } = await q.query<ImportRow>(
    `INSERT INTO onboarding.imports (id, kind, format, mapping, file_sha256, file_bytes, dry_run, status, actor)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8) RETURNING *`,
    [j.id, j.kind, j.format, j.mapping, j.file_sha256, j.file_bytes, j.dry_run, j.actor],
  );
  return rows[0];
}

/** The unfinished (not dry-run) import of this file, to resume. */
export async function findUnfinished(q: Queryable, kind: string, sha256: string): Promise<ImportRow | undefined> {
  const { rows } = await q.query<ImportRow>(
    `SELECT * FROM onboarding.imports WHERE kind = $1 AND file_sha256 = $2 AND NOT dry_run AND status IN ('running', 'interrupted')
      ORDER BY id DESC LIMIT 1`,
    [kind, sha256],
  );
  return rows[0];
}

export async function getImport(q: Queryable, id: string, lock = false): Promise<ImportRow | undefined> {
  const { rows } = await q.query<ImportRow>(
    `SELECT * FROM onboarding.imports WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

export async function listImports(q: Queryable, f: { before?: string; limit: number }): Promise<ImportRow[]> {
  const { rows } = await q.query<ImportRow>(
    `SELECT * FROM onboarding.imports WHERE ($1::text IS NULL OR id < $1) ORDER BY id DESC LIMIT $2`,
    [f.before ?? null, f.limit + 1],
  );
  return rows;
}

/** Moves the checkpoint and the counts on, in the batch's transaction. */
export async function advance(
  q: Queryable,
  id: string,
  d: { linesDone: number; rows: number; created: number; unchanged: number; rejected: number },
) {
  await q.query(
    `UPDATE onboarding.imports SET lines_done = $2, rows_total = rows_total + $3, created = created + $4,
            unchanged = unchanged + $5, rejected = rejected + $6, updated_at = now() WHERE id = $1`,
    [id, d.linesDone, d.rows, d.created, d.unchanged, d.rejected],
  );
}

export async function finish(
  q: Queryable,
  id: string,
  status: 'completed' | 'failed' | 'interrupted',
  o: { error?: string; report?: unknown } = {},
) {
  await q.query(
    `UPDATE onboarding.imports SET status = $2, error = $3, report = coalesce($4::jsonb, report), updated_at = now(),
            finished_at = CASE WHEN $2 = 'interrupted' THEN NULL ELSE now() END WHERE id = $1`,
    [id, status, o.error ?? null, o.report === undefined ? null : JSON.stringify(o.report)],
  );
}

export async function markRunning(q: Queryable, id: string) {
  await q.query(`UPDATE onboarding.imports SET status = 'running', error = NULL, updated_at = now() WHERE id = $1`, [
    id,
  ]);
}

/** External references already known, of this kind in these scopes: "<scope>\n<ref>" -> entity id. */
export async function knownRefs(
  q: Queryable,
  kind: RefKind,
  keys: { scope: string; ref: string }[],
): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map();
  const { rows } = await q.query<{ scope: string; external_ref: string; entity_id: string }>(
    `SELECT r.scope, r.external_ref, r.entity_id FROM onboarding.external_refs r
       JOIN unnest($2::text[], $3::text[]) AS k(scope, ref) ON r.scope = k.scope AND r.external_ref = k.ref
      WHERE r.kind = $1`,
    [kind, keys.map((k) => k.scope), keys.map((k) => k.ref)],
  );
  return new Map(rows.map((r) => [`${r.scope}\n${r.external_ref}`, r.entity_id]));
}

export async function insertRefs(
  q: Queryable,
  importId: string,
  kind: RefKind,
  refs: { scope: string; ref: string; entityId: string }[],
) {
  if (refs.length === 0) return;
  await q.query(
    `INSERT INTO onboarding.external_refs (kind, scope, external_ref, entity_id, import_id)
     SELECT $1, s, r, e, $2 FROM unnest($3::text[], $4::text[], $5::text[]) AS x(s, r, e)`,
    [kind, importId, refs.map((r) => r.scope), refs.map((r) => r.ref), refs.map((r) => r.entityId)],
  );
}

export async function insertRejects(
  q: Queryable,
  importId: string,
  rejects: { line: number; field: string | null; reason: string }[],
) {
  if (rejects.length === 0) return;
  await q.query(
    `INSERT INTO onboarding.rejects (import_id, line, field, reason)
     SELECT $1, l, f, r FROM unnest($2::bigint[], $3::text[], $4::text[]) AS x(l, f, r) ON CONFLICT DO NOTHING`,
    [importId, rejects.map((r) => r.line), rejects.map((r) => r.field), rejects.map((r) => r.reason)],
  );
}

export async function listRejects(
  q: Queryable,
  importId: string,
  f: { afterLine?: number; limit: number },
): Promise<{ line: number; field: string | null; reason: string }[]> {
  const { rows } = await q.query<{ line: number; field: string | null; reason: string }>(
    `SELECT line, field, reason FROM onboarding.rejects WHERE import_id = $1 AND line > $2 ORDER BY line, reason LIMIT $3`,
    [importId, f.afterLine ?? 0, f.limit],
  );
  return rows;
}

export async function addSourceTotals(
  q: Queryable,
  importId: string,
  totals: Map<string, { rows: number; points: number; value: number }>,
) {
  if (totals.size === 0) return;
  const e = [...totals.entries()];
  await q.query(
    `INSERT INTO onboarding.source_totals (import_id, merchant_id, rows, points, value_paise)
     SELECT $1, m, r, p, v FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS x(m, r, p, v)
     ON CONFLICT (import_id, merchant_id) DO UPDATE SET rows = source_totals.rows + excluded.rows,
       points = source_totals.points + excluded.points, value_paise = source_totals.value_paise + excluded.value_paise`,
    [importId, e.map(([m]) => m), e.map(([, t]) => t.rows), e.map(([, t]) => t.points), e.map(([, t]) => t.value)],
  );
}

export interface ReconRow {
  merchant_id: string;
  source_rows: number;
  source_points: number;
  source_value_paise: number;
  tillpoint_rows: number;
  tillpoint_points: number;
  tillpoint_value_paise: number;
}

/**
 * Per merchant named in the file: what the file's accepted rows carried against what Tillpoint
 * holds under external references of that kind for the merchant (rows that exist, and for
 * balances the points of their lots and the value at the program's point value).
 */
export async function reconcile(q: Queryable, importId: string, kind: RefKind): Promise<ReconRow[]> {
  if (kind === 'payment') return reconcilePayments(q, importId);
  const target =
    kind === 'merchant'
      ? // A merchant's source line is keyed by the id its reference resolved to: does that merchant exist?
        `SELECT count(m.id)::bigint AS n, 0::bigint AS pts, 0::bigint AS val FROM merchants.merchants m WHERE m.id = s.merchant_id`
      : kind === 'store'
        ? `SELECT count(x.id)::bigint AS n, 0::bigint AS pts, 0::bigint AS val FROM onboarding.external_refs r
             JOIN merchants.stores x ON x.id = r.entity_id WHERE r.kind = 'store' AND r.scope = s.merchant_id`
        : kind === 'terminal'
          ? `SELECT count(x.id)::bigint AS n, 0::bigint AS pts, 0::bigint AS val FROM onboarding.external_refs r
               JOIN merchants.terminals x ON x.id = r.entity_id WHERE r.kind = 'terminal' AND r.scope = s.merchant_id`
          : `SELECT count(l.id)::bigint AS n, coalesce(sum(l.points), 0)::bigint AS pts,
                    coalesce(sum(l.points * p.point_value_paise), 0)::bigint AS val
               FROM onboarding.external_refs r JOIN rewards.lots l ON l.id = r.entity_id JOIN rewards.programs p ON p.id = l.program_id
              WHERE r.kind = 'reward_balance' AND r.scope = s.merchant_id`;
  const { rows } = await q.query<ReconRow>(
    `SELECT s.merchant_id, s.rows AS source_rows, s.points AS source_points, s.value_paise AS source_value_paise,
            t.n AS tillpoint_rows, t.pts AS tillpoint_points, t.val AS tillpoint_value_paise
       FROM onboarding.source_totals s CROSS JOIN LATERAL (${target}) t
      WHERE s.import_id = $1 ORDER BY s.merchant_id`,
    [importId],
  );
  return rows;
}

/** Terminals this import created, by store, a page at a time (for credential delivery). */
export async function importedTerminals(
  q: Queryable,
  importId: string,
  after: { storeId: string; terminalId: string },
  limit: number,
): Promise<{ terminal_id: string; external_ref: string; merchant_id: string; store_id: string }[]> {
  const { rows } = await q.query<{ terminal_id: string; external_ref: string; merchant_id: string; store_id: string }>(
    `SELECT r.entity_id AS terminal_id, r.external_ref, t.merchant_id, t.store_id
       FROM onboarding.external_refs r JOIN merchants.terminals t ON t.id = r.entity_id
      WHERE r.import_id = $1 AND r.kind = 'terminal' AND (t.store_id, r.entity_id) > ($2, $3) AND t.status = 'active'
      ORDER BY t.store_id, r.entity_id LIMIT $4`,
    [importId, after.storeId, after.terminalId, limit],
  );
  return rows;
}

// Payment history (migrations/0030): payments and refunds a legacy system took and settled.

export interface TerminalPlace {
  id: string;
  merchant_id: string;
  store_id: string;
  status: string;
  acquiring_bank: string;
}

/** Terminals with their store and their merchant's acquiring bank (read only; merchants.* belongs to the merchants module). */
export async function terminalPlaces(q: Queryable, ids: string[]): Promise<Map<string, TerminalPlace>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<TerminalPlace>(
    `SELECT t.id, t.merchant_id, t.store_id, t.status, m.acquiring_bank
       FROM merchants.terminals t JOIN merchants.merchants m ON m.id = t.merchant_id WHERE t.id = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

export interface HistoryPaymentInsert {
  id: string;
  merchant_id: string;
  store_id: string;
  terminal_id: string;
  external_ref: string;
  method: string;
  amount: number;
  status: string;
  bank_code: string;
  bank_ref: string | null;
  payer_vpa_ct: string | null;
  payer_vpa_bidx: string | null;
  points_earned: number;
  points_redeemed: number;
  created_at: Date;
  completed_at: Date | null;
}

export async function insertPaymentHistory(q: Queryable, importId: string, rows: HistoryPaymentInsert[]) {
  if (rows.length === 0) return;
  const col = <K extends keyof HistoryPaymentInsert>(k: K) => rows.map((r) => r[k]);
  await q.query(
    `INSERT INTO onboarding.payment_history (id, merchant_id, store_id, terminal_id, external_ref, method, amount, status,
       bank_code, bank_ref, payer_vpa_ct, payer_vpa_bidx, points_earned, points_redeemed, created_at, completed_at, import_id)
     SELECT *, $17 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
       $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::timestamptz[], $16::timestamptz[])`,
    [
      col('id'),
      col('merchant_id'),
      col('store_id'),
      col('terminal_id'),
      col('external_ref'),
      col('method'),
      col('amount'),
      col('status'),
      col('bank_code'),
      col('bank_ref'),
      col('payer_vpa_ct'),
      col('payer_vpa_bidx'),
      col('points_earned'),
      col('points_redeemed'),
      col('created_at'),
      col('completed_at'),
      importId,
    ],
  );
}

export interface HistoryPaymentRow {
  id: string;
  merchant_id: string;
  amount: number;
  refunded_amount: number;
  status: string;
  bank_code: string;
  completed_at: Date | null;
}

/** Historical payments by id, locked (their refunded amount moves with the refunds of this batch). */
export async function historyPayments(q: Queryable, ids: string[]): Promise<Map<string, HistoryPaymentRow>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<HistoryPaymentRow>(
    `SELECT id, merchant_id, amount::float8 AS amount, refunded_amount::float8 AS refunded_amount, status, bank_code, completed_at
       FROM onboarding.payment_history WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

export interface HistoryRefundInsert {
  id: string;
  payment_id: string;
  merchant_id: string;
  external_ref: string;
  amount: number;
  status: string;
  bank_ref: string | null;
  created_at: Date;
  completed_at: Date | null;
}

export async function insertRefundHistory(q: Queryable, importId: string, rows: HistoryRefundInsert[]) {
  if (rows.length === 0) return;
  const col = <K extends keyof HistoryRefundInsert>(k: K) => rows.map((r) => r[k]);
  await q.query(
    `INSERT INTO onboarding.refund_history (id, payment_id, merchant_id, external_ref, amount, status, bank_ref, created_at,
       completed_at, import_id)
     SELECT *, $10 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
       $8::timestamptz[], $9::timestamptz[])`,
    [
      col('id'),
      col('payment_id'),
      col('merchant_id'),
      col('external_ref'),
      col('amount'),
      col('status'),
      col('bank_ref'),
      col('created_at'),
      col('completed_at'),
      importId,
    ],
  );
}

export async function addRefunded(q: Queryable, amounts: Map<string, number>) {
  if (amounts.size === 0) return;
  await q.query(
    `UPDATE onboarding.payment_history h SET refunded_amount = h.refunded_amount + x.a
       FROM unnest($1::text[], $2::bigint[]) AS x(id, a) WHERE h.id = x.id`,
    [[...amounts.keys()], [...amounts.values()]],
  );
}

/**
 * Payment history: per merchant named in the file, the payments and refunds held, the points
 * (the rewards module's earnings less redemptions on historical payments) and the money (the
 * ledger's legacy_settled:<merchant>: succeeded payments less succeeded refunds as posted), so all
 * three places are compared with the file. Aggregated once per table (not per merchant): a
 * history has millions of rows.
 */
async function reconcilePayments(q: Queryable, importId: string): Promise<ReconRow[]> {
  const { rows } = await q.query<ReconRow>(
    `WITH s AS (SELECT merchant_id, rows, points, value_paise FROM onboarding.source_totals WHERE import_id = $1),
          p AS (SELECT h.merchant_id, count(*) AS n FROM onboarding.payment_history h JOIN s USING (merchant_id) GROUP BY 1),
          f AS (SELECT r.merchant_id, count(*) AS n FROM onboarding.refund_history r JOIN s USING (merchant_id) GROUP BY 1),
          e AS (SELECT h.merchant_id, sum(x.points) AS pts FROM onboarding.payment_history h JOIN s USING (merchant_id)
                  JOIN rewards.earnings x ON x.payment_id = h.id GROUP BY 1),
          d AS (SELECT h.merchant_id, sum(x.points) AS pts FROM onboarding.payment_history h JOIN s USING (merchant_id)
                  JOIN rewards.redemptions x ON x.payment_id = h.id GROUP BY 1),
          l AS (SELECT substr(a.code, 16) AS merchant_id, a.balance FROM ledger.accounts a
                 WHERE a.book = 'INR' AND a.code = ANY (SELECT 'legacy_settled:' || merchant_id FROM s))
     SELECT s.merchant_id, s.rows AS source_rows, s.points AS source_points, s.value_paise AS source_value_paise,
            (coalesce(p.n, 0) + coalesce(f.n, 0))::bigint AS tillpoint_rows,
            (coalesce(e.pts, 0) - coalesce(d.pts, 0))::bigint AS tillpoint_points,
            coalesce(l.balance, 0)::bigint AS tillpoint_value_paise
       FROM s LEFT JOIN p USING (merchant_id) LEFT JOIN f USING (merchant_id) LEFT JOIN e USING (merchant_id)
              LEFT JOIN d USING (merchant_id) LEFT JOIN l USING (merchant_id)
      ORDER BY s.merchant_id`,
    [importId],
  );
  return rows;
}
