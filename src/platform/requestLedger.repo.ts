import type { Queryable } from './db.ts';

// SQL of the request ledger (requestLedger.ts), for any table of the ledger's shape: a scope and
// a key (the primary key), the request's digest, its state, the stored response, the claim's
// lapse time and the row's age. Two tables have that shape and stay where they are (see
// requestLedger.ts for why): platform.idempotency_keys (HTTP, migration 0001) and
// terminals.requests (the terminal protocol, migration 0008, owned by the terminals module,
// which describes it with a LedgerTable of its own). The statements are built once per table
// from its column names, which come from code (never from a request).

export interface LedgerTable {
  /** schema.table */
  table: string;
  /** Who the key belongs to (the HTTP principal, the terminal). */
  scope: string;
  /** The caller's key (Idempotency-Key, request id). */
  key: string;
  /** The stored response (text, byte for byte). */
  response: string;
  /** The stored response's status, when the table keeps one (HTTP). */
  status?: string;
  /** A NOT NULL column written at claim time with a label of the request (the terminal's request type). */
  label?: string;
}

/** The table of HTTP Idempotency-Keys (platform, migration 0001): scope = principal id. */
export const IDEMPOTENCY_KEYS: LedgerTable = {
  table: 'platform.idempotency_keys',
  scope: 'scope',
  key: 'key',
  response: 'response_body',
  status: 'response_status',
};

export interface LedgerRow {
  request_hash: string;
  state: 'in_progress' | 'completed';
  status: number | null;
  response: string | null;
  /** The claim has lapsed (its holder died, or is far too slow): it may be taken over. */
  claimable: boolean;
}

export interface LedgerClaim {
  scope: string;
  key: string;
  hash: string;
  label?: string;
}

export interface LedgerCompletion {
  scope: string;
  key: string;
  response: string;
  status?: number;
}

export interface LedgerStatements {
  claim(q: Queryable, c: LedgerClaim, claimSeconds: number): Promise<boolean>;
  /**
   * Stores finished requests' responses and claims new keys, in one statement (the batched
   * writer's). Returns the `scope\nkey` of the claims won; a claim not returned lost to a row
   * already there.
   */
  claimAndComplete(
    q: Queryable,
    claims: LedgerClaim[],
    completions: LedgerCompletion[],
    claimSeconds: number,
  ): Promise<Set<string>>;
  get(q: Queryable, scope: string, key: string): Promise<LedgerRow | undefined>;
  takeOver(q: Queryable, scope: string, key: string, claimSeconds: number): Promise<boolean>;
  complete(q: Queryable, c: LedgerCompletion): Promise<void>;
  release(q: Queryable, scope: string, key: string): Promise<void>;
  prune(q: Queryable, olderThanHours: number): Promise<number>;
}

export const ledgerKey = (scope: string, key: string) => `${scope}\n${key}`;

const IDENT = /^[a-z_][a-z0-9_]*$/;
const QUALIFIED = /^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/;

/** The statements for one table, built once. */
export function ledgerStatements(t: LedgerTable): LedgerStatements {
  if (!QUALIFIED.test(t.table)) throw new Error(`request ledger: bad table name ${t.table}`);
  for (const c of [t.scope, t.key, t.response, t.status, t.label]) {
    if (c !== undefined && !IDENT.test(c)) throw new Error(`request ledger: bad column name ${c}`);
  }
  const { table, scope, key, response, status, label } = t;

  const claimSql = label
    ? `INSERT INTO ${table} (${scope}, ${key}, ${label}, request_hash, state, locked_until)
       VALUES ($1, $2, $5, $3, 'in_progress', now() + make_interval(secs => $4))
       ON CONFLICT (${scope}, ${key}) DO NOTHING RETURNING ${key}`
    : `INSERT INTO ${table} (${scope}, ${key}, request_hash, state, locked_until)
       VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $4))
       ON CONFLICT (${scope}, ${key}) DO NOTHING RETURNING ${key}`;

  // Batched: claims as arrays $1 scope, $2 key, $3 hash, ($4 label), then the claim length, then
  // completions as arrays scope, key, response, (status). Claims go in the order given (sorted by
  // the caller of claimAndComplete below), so two replicas claiming overlapping keys cannot deadlock.
  let n = 0;
  const p = () => `$${++n}`;
  const cScope = p();
  const cKey = p();
  const cHash = p();
  const cLabel = label ? p() : undefined;
  const secs = p();
  const dScope = p();
  const dKey = p();
  const dResponse = p();
  const dStatus = status ? p() : undefined;
  const batchSql = `WITH completed AS (
       UPDATE ${table} r SET state = 'completed', ${response} = d.response${status ? `, ${status} = d.status` : ''}
         FROM unnest(${dScope}::text[], ${dKey}::text[], ${dResponse}::text[]${dStatus ? `, ${dStatus}::int[]` : ''})
              AS d(scope, key, response${dStatus ? ', status' : ''})
        WHERE r.${scope} = d.scope AND r.${key} = d.key
     ), claimed AS (
       INSERT INTO ${table} (${scope}, ${key}, ${label ? `${label}, ` : ''}request_hash, state, locked_until)
       SELECT c.scope, c.key, ${label ? 'c.label, ' : ''}c.request_hash, 'in_progress', now() + make_interval(secs => ${secs})
         FROM unnest(${cScope}::text[], ${cKey}::text[], ${cHash}::text[]${cLabel ? `, ${cLabel}::text[]` : ''})
              WITH ORDINALITY AS c(scope, key, request_hash${cLabel ? ', label' : ''}, n)
        ORDER BY c.n
       ON CONFLICT (${scope}, ${key}) DO NOTHING RETURNING ${scope} AS scope, ${key} AS key
     )
     SELECT scope, key FROM claimed`;

  const getSql = `SELECT request_hash, state, ${status ?? 'NULL::int'} AS status, ${response} AS response,
                         locked_until < now() AS claimable
                    FROM ${table} WHERE ${scope} = $1 AND ${key} = $2`;
  const takeOverSql = `UPDATE ${table} SET locked_until = now() + make_interval(secs => $3)
     WHERE ${scope} = $1 AND ${key} = $2 AND state = 'in_progress' AND locked_until < now() RETURNING ${key}`;
  const completeSql = status
    ? `UPDATE ${table} SET state = 'completed', ${response} = $3, ${status} = $4 WHERE ${scope} = $1 AND ${key} = $2`
    : `UPDATE ${table} SET state = 'completed', ${response} = $3 WHERE ${scope} = $1 AND ${key} = $2`;
  // Only a claim is released: a stored response is final, whoever asks.
  const releaseSql = `DELETE FROM ${table} WHERE ${scope} = $1 AND ${key} = $2 AND state = 'in_progress'`;
  const pruneSql = `DELETE FROM ${table} WHERE created_at < now() - make_interval(hours => $1)`;

  return {
    async claim(q, c, claimSeconds) {
      const params: unknown[] = [c.scope, c.key, c.hash, claimSeconds];
      if (label) params.push(c.label ?? null);
      return (await q.query(claimSql, params)).rowCount === 1;
    },
    async claimAndComplete(q, claims, completions, claimSeconds) {
      const cs = [...claims].sort((a, b) =>
        a.scope === b.scope ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.scope < b.scope ? -1 : 1,
      );
      const params: unknown[] = [cs.map((c) => c.scope), cs.map((c) => c.key), cs.map((c) => c.hash)];
      if (label) params.push(cs.map((c) => c.label ?? null));
      params.push(
        claimSeconds,
        completions.map((d) => d.scope),
        completions.map((d) => d.key),
        completions.map((d) => d.response),
      );
      if (status) params.push(completions.map((d) => d.status ?? null));
      // The completions join unnest() to the table, which a generic plan made while the table was
      // young would scan whole: planned with its values until the table has grown (queryable.ts).
      const { rows } = await q.query<{ scope: string; key: string }>(batchSql, params, {
        unpreparedCalls: 5000,
        preparedOnceGrown: table,
      });
      return new Set(rows.map((r) => ledgerKey(r.scope, r.key)));
    },
    async get(q, s, k) {
      const { rows } = await q.query<LedgerRow>(getSql, [s, k]);
      return rows[0];
    },
    async takeOver(q, s, k, claimSeconds) {
      return (await q.query(takeOverSql, [s, k, claimSeconds])).rowCount === 1;
    },
    async complete(q, d) {
      await q.query(
        completeSql,
        status ? [d.scope, d.key, d.response, d.status ?? null] : [d.scope, d.key, d.response],
      );
    },
    async release(q, s, k) {
      await q.query(releaseSql, [s, k]);
    },
    async prune(q, olderThanHours) {
      return (await q.query(pruneSql, [olderThanHours])).rowCount;
    },
  };
}
