// The database interface, apart from its drivers (db.ts) so the embedded database's owner
// (embedded.ts), which db.ts loads, can implement it without an import cycle.

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

/** How one statement is run. */
export interface QueryOptions {
  /**
   * Plan the statement with this call's parameter values, every call, instead of preparing it once
   * per connection (db.ts): on PostgreSQL it runs as the unnamed statement. For a batch that joins
   * `unnest()` of its array parameters to a table: after five runs a prepared statement may keep a
   * generic plan, made for no particular batch size and with the table's statistics of that moment
   * (a young, never analysed table: a scan of every row for each batch until autovacuum analyses
   * it; bench/PROFILE.md "Session 9"). Planned with its values, the batch's size is known and the
   * table's current size is read at each planning: one planning per batch, shared by its members.
   * PGlite plans every statement this way already.
   */
  planEachCall?: boolean;
}

/** Anything you can run SQL on: the database itself or an open transaction. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], opts?: QueryOptions): Promise<QueryResult<T>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly driver: 'pg' | 'pglite';
  /**
   * Runs `fn` in one transaction. The service owns the transaction: everything a business
   * event changes commits together or not at all. Serialization failures and deadlocks are
   * retried a few times, so `fn` must be safe to run again (no calls to a bank inside).
   */
  tx<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** Connection pool occupancy, for /metrics (pg only; PGlite is one in-process connection). */
  poolStats?(): { max: number; total: number; idle: number; waiting: number };
  /**
   * `SELECT 1` on a connection of its own, outside the pool (pg only): readiness asks whether the
   * database answers, and must not wait in the pool's queue behind a backlog of requests and jobs.
   */
  ping?(timeoutMs: number): Promise<boolean>;
}
