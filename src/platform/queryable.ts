// The database interface, apart from its drivers (db.ts) so the embedded database's owner
// (embedded.ts), which db.ts loads, can implement it without an import cycle.

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

/** How one statement is run. */
export interface QueryOptions {
  /**
   * The first this many calls of this SQL text in this process are planned with their parameters'
   * values (PostgreSQL: the unnamed statement); later calls are prepared once per connection as
   * usual (db.ts). For a batch that joins `unnest()` of its array parameters to a table: a prepared
   * statement keeps a generic plan after five runs, made with the table as it is then, and on a
   * young table (a fresh installation under sudden load) that plan scans every row for each batch
   * until autovacuum analyses the table (bench/PROFILE.md "Session 9"). Planning each call costs
   * the server a parse and a plan per batch (about 0.4 ms), so it is bounded: by the time a batch
   * has run this many times its table has grown, and the plan prepared then probes the index.
   * PGlite plans every statement with its values anyway.
   */
  unpreparedCalls?: number;
  /**
   * Ends `unpreparedCalls` early once the planner estimates this table (schema.table) at
   * `unpreparedCalls` rows or more, the size those calls stand in for (its own estimate, from an
   * `EXPLAIN`: it scales what ANALYZE last counted, or for a table never analysed the width of
   * its columns, to the table's pages now, as the plan made next will). A generic plan made from
   * then on probes the index, so the statement is prepared. A process that starts on a grown
   * database, or runs long enough for its table to grow, stops paying a parse and a plan per
   * batch within seconds, instead of after `unpreparedCalls` batches, which at a moderate rate
   * (small batches, many of them) is most of the server's CPU for minutes (bench/PROFILE.md
   * "Session 12", "Session 13"). Looked up at most every few seconds per database, in the
   * background.
   */
  preparedOnceGrown?: string;
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
