// The database interface, apart from its drivers (db.ts) so the embedded database's owner
// (embedded.ts), which db.ts loads, can implement it without an import cycle.

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

/** Anything you can run SQL on: the database itself or an open transaction. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
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
