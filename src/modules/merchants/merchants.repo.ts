import type { Queryable } from '../../platform/db.ts';
import type { MerchantT, StoreT, TerminalT } from './merchants.schemas.ts';

// SQL for merchants, stores and terminals. Rows come back in API shape (snake_case, ISO times).

const iso = (d: Date) => d.toISOString();
type WithDate<T> = Omit<T, 'created_at'> & { created_at: Date };
const out = <T extends { created_at: string }>(r: WithDate<T>): T => ({ ...r, created_at: iso(r.created_at) }) as T;

const M_COLS = 'id, name, vpa, mcc, acquiring_bank, status, created_at, settlement_account_last4, settlement_bank_code';

/** The settlement account as stored: ciphertexts (vault) and the parts screens may show. */
export interface SealedSettlement {
  account_ct: string;
  ifsc_ct: string;
  last4: string;
  bank_code: string;
}
type MerchantRow = WithDate<Omit<MerchantT, 'settlement_account'>> & {
  settlement_account_last4: string | null;
  settlement_bank_code: string | null;
};
/** API shape: the account shows only its last 4 digits and the bank code of its IFSC. */
const merchantOut = ({
  settlement_account_last4: last4,
  settlement_bank_code: bank,
  ...r
}: MerchantRow): MerchantT => ({
  ...out<Omit<MerchantT, 'settlement_account'>>(r),
  settlement_account: last4 && bank ? { account_number: `******${last4}`, ifsc: `${bank}*******` } : null,
});
const S_COLS = 'id, merchant_id, name, city, status, created_at';
const T_COLS = 'id, merchant_id, store_id, label, serial, status, created_at';
// Presence (online, last_seen_at) is the terminals module's table (migration 0029), written by the
// gateway; read here by SQL only (terminals imports merchants, not the other way round).
const T_COLS_P = `t.id, t.merchant_id, t.store_id, t.label, t.serial, t.status, t.created_at,
  coalesce(p.online, false) AS online, p.last_seen_at`;
const T_FROM_P = 'merchants.terminals t LEFT JOIN terminals.presence p ON p.terminal_id = t.id';
const T_RETURNING_P = `${T_COLS},
  coalesce((SELECT p.online FROM terminals.presence p WHERE p.terminal_id = id), false) AS online,
  (SELECT p.last_seen_at FROM terminals.presence p WHERE p.terminal_id = id) AS last_seen_at`;
type TerminalRow = WithDate<Omit<TerminalT, 'last_seen_at'>> & { last_seen_at: Date | null };
const terminalOut = (r: TerminalRow): TerminalT => ({
  ...out<Omit<TerminalT, 'last_seen_at'>>(r),
  last_seen_at: r.last_seen_at ? iso(r.last_seen_at) : null,
});

export async function insertMerchant(
  q: Queryable,
  m: Omit<MerchantT, 'created_at' | 'status' | 'settlement_account'> & { settlement?: SealedSettlement },
) {
  const s = m.settlement;
  const { rows } = await q.query<MerchantRow>(
    `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank, settlement_account_ct, settlement_ifsc_ct, settlement_account_last4, settlement_bank_code)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${M_COLS}`,
    [
      m.id,
      m.name,
      m.vpa,
      m.mcc,
      m.acquiring_bank,
      s?.account_ct ?? null,
      s?.ifsc_ct ?? null,
      s?.last4 ?? null,
      s?.bank_code ?? null,
    ],
  );
  return merchantOut(rows[0]);
}

/** The encrypted settlement account, for the one caller that may open it (getSettlementAccount). */
export async function getSettlementCiphertexts(q: Queryable, id: string) {
  const { rows } = await q.query<{ account_ct: string | null; ifsc_ct: string | null }>(
    `SELECT settlement_account_ct AS account_ct, settlement_ifsc_ct AS ifsc_ct FROM merchants.merchants WHERE id = $1`,
    [id],
  );
  return rows[0];
}

export async function getMerchant(q: Queryable, id: string) {
  const { rows } = await q.query<MerchantRow>(`SELECT ${M_COLS} FROM merchants.merchants WHERE id = $1`, [id]);
  return rows[0] ? merchantOut(rows[0]) : undefined;
}

export async function updateMerchant(
  q: Queryable,
  id: string,
  patch: { name?: string; acquiring_bank?: string; status?: string; settlement?: SealedSettlement },
) {
  const s = patch.settlement;
  const { rows } = await q.query<MerchantRow>(
    `UPDATE merchants.merchants SET name = coalesce($2, name), acquiring_bank = coalesce($3, acquiring_bank),
            status = coalesce($4, status), updated_at = now(),
            settlement_account_ct = coalesce($5, settlement_account_ct), settlement_ifsc_ct = coalesce($6, settlement_ifsc_ct),
            settlement_account_last4 = coalesce($7, settlement_account_last4), settlement_bank_code = coalesce($8, settlement_bank_code)
      WHERE id = $1 RETURNING ${M_COLS}`,
    [
      id,
      patch.name ?? null,
      patch.acquiring_bank ?? null,
      patch.status ?? null,
      s?.account_ct ?? null,
      s?.ifsc_ct ?? null,
      s?.last4 ?? null,
      s?.bank_code ?? null,
    ],
  );
  return rows[0] ? merchantOut(rows[0]) : undefined;
}

export async function listMerchants(q: Queryable, f: { onlyId?: string; before?: string; limit: number }) {
  const { rows } = await q.query<MerchantRow>(
    `SELECT ${M_COLS} FROM merchants.merchants
      WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [f.onlyId ?? null, f.before ?? null, f.limit + 1],
  );
  return rows.map(merchantOut);
}

export async function insertStore(q: Queryable, s: { id: string; merchant_id: string; name: string; city?: string }) {
  const { rows } = await q.query<WithDate<StoreT>>(
    `INSERT INTO merchants.stores (id, merchant_id, name, city) VALUES ($1, $2, $3, $4) RETURNING ${S_COLS}`,
    [s.id, s.merchant_id, s.name, s.city ?? null],
  );
  return out<StoreT>(rows[0]);
}

export async function getStore(q: Queryable, id: string) {
  const { rows } = await q.query<WithDate<StoreT>>(`SELECT ${S_COLS} FROM merchants.stores WHERE id = $1`, [id]);
  return rows[0] ? out<StoreT>(rows[0]) : undefined;
}

export async function listStores(q: Queryable, f: { merchantId: string; before?: string; limit: number }) {
  const { rows } = await q.query<WithDate<StoreT>>(
    `SELECT ${S_COLS} FROM merchants.stores WHERE merchant_id = $1 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`,
    [f.merchantId, f.before ?? null, f.limit + 1],
  );
  return rows.map((r) => out<StoreT>(r));
}

export async function insertTerminal(
  q: Queryable,
  t: { id: string; merchant_id: string; store_id: string; label?: string; serial?: string },
) {
  const { rows } = await q.query<TerminalRow>(
    `INSERT INTO merchants.terminals (id, merchant_id, store_id, label, serial) VALUES ($1, $2, $3, $4, $5)
     RETURNING ${T_COLS}, false AS online, NULL::timestamptz AS last_seen_at`,
    [t.id, t.merchant_id, t.store_id, t.label ?? null, t.serial ?? null],
  );
  return terminalOut(rows[0]);
}

export async function getTerminal(q: Queryable, id: string) {
  const { rows } = await q.query<TerminalRow>(`SELECT ${T_COLS_P} FROM ${T_FROM_P} WHERE t.id = $1`, [id]);
  return rows[0] ? terminalOut(rows[0]) : undefined;
}

export async function updateTerminal(q: Queryable, id: string, patch: { label?: string; status?: string }) {
  const { rows } = await q.query<TerminalRow>(
    `UPDATE merchants.terminals SET label = coalesce($2, label), status = coalesce($3, status) WHERE id = $1 RETURNING ${T_RETURNING_P}`,
    [id, patch.label ?? null, patch.status ?? null],
  );
  return rows[0] ? terminalOut(rows[0]) : undefined;
}

export async function listTerminals(
  q: Queryable,
  f: { merchantId?: string; storeId?: string; status?: string; online?: boolean; before?: string; limit: number },
) {
  const { rows } = await q.query<TerminalRow>(
    `SELECT ${T_COLS_P} FROM ${T_FROM_P}
      WHERE ($1::text IS NULL OR t.merchant_id = $1) AND ($2::text IS NULL OR t.store_id = $2)
        AND ($3::text IS NULL OR t.status = $3) AND ($4::text IS NULL OR t.id < $4)
        AND ($6::boolean IS NULL OR coalesce(p.online, false) = $6)
      ORDER BY t.id DESC LIMIT $5`,
    [f.merchantId ?? null, f.storeId ?? null, f.status ?? null, f.before ?? null, f.limit + 1, f.online ?? null],
  );
  return rows.map(terminalOut);
}

export interface TerminalContext {
  terminal_id: string;
  terminal_status: string;
  store_id: string;
  merchant_id: string;
  merchant_status: string;
  merchant_name: string;
  merchant_vpa: string;
  mcc: string;
  acquiring_bank: string;
}

/**
 * The terminal's context (TerminalContext) for the terminal whose id is the parameter `param`, as
 * a query to embed in another module's statement: payments reads it together with the banks that
 * are down in the one round trip before every payment. A deliberate exception to "SQL stays in
 * its module" (docs/architecture.md, "Deliberate exceptions"); everyone else calls
 * getTerminalContext().
 */
export function terminalContextSql(param = '$1'): string {
  return `SELECT t.id AS terminal_id, t.status AS terminal_status, t.store_id, m.id AS merchant_id, m.status AS merchant_status,
            m.name AS merchant_name, m.vpa AS merchant_vpa, m.mcc, m.acquiring_bank
       FROM merchants.terminals t JOIN merchants.merchants m ON m.id = t.merchant_id WHERE t.id = ${param}`;
}
const TERMINAL_CONTEXT_SQL = terminalContextSql('$1');

/** What a payment needs to know about where it is taken: one indexed join. */
export async function getTerminalContext(q: Queryable, terminalId: string): Promise<TerminalContext | undefined> {
  const { rows } = await q.query<TerminalContext>(TERMINAL_CONTEXT_SQL, [terminalId]);
  return rows[0];
}

/** Whether the merchant exists (for other modules that scope something to a merchant, e.g. an operator). */
export async function merchantExists(q: Queryable, merchantId: string): Promise<boolean> {
  const { rows } = await q.query('SELECT 1 FROM merchants.merchants WHERE id = $1', [merchantId]);
  return rows.length > 0;
}

// ---- bulk paths (the onboarding import): one statement per batch ----

export interface MerchantBatchRow {
  id: string;
  name: string;
  vpa: string;
  mcc: string;
  acquiring_bank: string;
  settlement?: SealedSettlement;
}

/** Inserts a batch of merchants in one statement (arrays through unnest). */
export async function insertMerchantsBatch(q: Queryable, rows: MerchantBatchRow[]): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank, settlement_account_ct, settlement_ifsc_ct, settlement_account_last4, settlement_bank_code)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.name),
      rows.map((r) => r.vpa),
      rows.map((r) => r.mcc),
      rows.map((r) => r.acquiring_bank),
      rows.map((r) => r.settlement?.account_ct ?? null),
      rows.map((r) => r.settlement?.ifsc_ct ?? null),
      rows.map((r) => r.settlement?.last4 ?? null),
      rows.map((r) => r.settlement?.bank_code ?? null),
    ],
  );
}

/** Of these VPAs (lower-cased), the ones a merchant already uses. */
export async function takenVpas(q: Queryable, vpas: string[]): Promise<Set<string>> {
  if (vpas.length === 0) return new Set();
  const { rows } = await q.query<{ vpa: string }>(`SELECT vpa FROM merchants.merchants WHERE vpa = ANY($1::text[])`, [
    vpas,
  ]);
  return new Set(rows.map((r) => r.vpa));
}

/** Merchants by id: status and MCC, for the rows of a batch that name them. */
export async function merchantsByIds(
  q: Queryable,
  ids: string[],
): Promise<Map<string, { status: string; mcc: string }>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; status: string; mcc: string }>(
    `SELECT id, status, mcc FROM merchants.merchants WHERE id = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, { status: r.status, mcc: r.mcc }]));
}

export async function insertStoresBatch(
  q: Queryable,
  rows: { id: string; merchant_id: string; name: string; city?: string | null }[],
): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO merchants.stores (id, merchant_id, name, city) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
    [rows.map((r) => r.id), rows.map((r) => r.merchant_id), rows.map((r) => r.name), rows.map((r) => r.city ?? null)],
  );
}

/** Stores by id: merchant and status, for the terminals of a batch. */
export async function storesByIds(
  q: Queryable,
  ids: string[],
): Promise<Map<string, { merchant_id: string; status: string }>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; merchant_id: string; status: string }>(
    `SELECT id, merchant_id, status FROM merchants.stores WHERE id = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, { merchant_id: r.merchant_id, status: r.status }]));
}

export async function insertTerminalsBatch(
  q: Queryable,
  rows: { id: string; merchant_id: string; store_id: string; label?: string | null; serial?: string | null }[],
): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO merchants.terminals (id, merchant_id, store_id, label, serial) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.merchant_id),
      rows.map((r) => r.store_id),
      rows.map((r) => r.label ?? null),
      rows.map((r) => r.serial ?? null),
    ],
  );
}

/** Of these terminal serials, the ones already registered. */
export async function takenSerials(q: Queryable, serials: string[]): Promise<Set<string>> {
  if (serials.length === 0) return new Set();
  const { rows } = await q.query<{ serial: string }>(
    `SELECT serial FROM merchants.terminals WHERE serial = ANY($1::text[])`,
    [serials],
  );
  return new Set(rows.map((r) => r.serial));
}

/** Per merchant: how many stores and terminals it has (the reconciliation's Tillpoint side). */
export async function fleetCounts(
  q: Queryable,
  merchantIds: string[],
): Promise<Map<string, { stores: number; terminals: number }>> {
  if (merchantIds.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; stores: number; terminals: number }>(
    `SELECT m.id,
            (SELECT count(*)::int FROM merchants.stores s WHERE s.merchant_id = m.id) AS stores,
            (SELECT count(*)::int FROM merchants.terminals t WHERE t.merchant_id = m.id) AS terminals
       FROM unnest($1::text[]) AS m(id)`,
    [merchantIds],
  );
  return new Map(rows.map((r) => [r.id, { stores: r.stores, terminals: r.terminals }]));
}
