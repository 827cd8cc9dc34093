import pg from 'pg';
import { mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { RETRYABLE_SQLSTATES } from './errors.ts';

// One database interface, two drivers: a pg pool against PostgreSQL, or PGlite (PostgreSQL
// compiled to WASM) in-process for the embedded default. The SQL is the same for both.

// The interface every module codes against lives in queryable.ts (embedded.ts needs it too).
export type { Db, Queryable, QueryOptions, QueryResult } from './queryable.ts';
import type { Db, Queryable, QueryOptions } from './queryable.ts';

const INT8_OID = 20;
// int8 comes back as a JS number. Amounts are paise: Number.MAX_SAFE_INTEGER paise is
// ~90 trillion rupees, far beyond any balance this system holds; `money.ts` checks safety.
const parseInt8 = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value out of safe range: ${v}`);
  return n;
};

const MAX_TX_ATTEMPTS = 5;

// Statements with parameters run as named prepared statements, so PostgreSQL parses and plans
// each distinct SQL text once per connection instead of on every call: on the payment path that
// is about a third of the server's CPU (bench/PROFILE.md). The name is a digest of the text; the
// number of names is capped, so SQL that carries values in its text cannot fill server memory.
// The first calls of a statement run with `unpreparedCalls` (queryable.ts) are not prepared: they
// go as the unnamed statement, which PostgreSQL parses and plans with the call's values.
const MAX_PREPARED = 500;
/** How often a statement with `preparedOnceGrown` may look its table up again while it is young. */
const GROWTH_CHECK_MS = 5000;
const preparedNames = new Map<string, string>();
const unpreparedCounts = new Map<string, number>();
const digest = (sql: string) => createHash('sha256').update(sql).digest('hex').slice(0, 32);

/** Whether a table has grown, by the planner's estimate (QueryOptions.preparedOnceGrown). */
type HasGrown = (table: string, rows: number) => boolean;

/**
 * The rows the planner expects a scan of `table` (schema.table) to return: what ANALYZE last
 * counted, or for a table never analysed the width of its columns, scaled to its pages now.
 * That is the size the next plan made for a statement on it assumes, so it says when a generic
 * plan made now probes the index (QueryOptions.preparedOnceGrown).
 */
async function plannedRows(pool: pg.Pool, table: string): Promise<number> {
  const quoted = table
    .split('.')
    .map((part) => `"${part.replaceAll('"', '""')}"`)
    .join('.');
  const r = await pool.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
    `EXPLAIN (FORMAT JSON) SELECT * FROM ${quoted}`,
  );
  return Number(r.rows[0]?.['QUERY PLAN']?.[0]?.Plan?.['Plan Rows'] ?? -1);
}

function statement(sql: string, params?: unknown[], opts?: QueryOptions, hasGrown?: HasGrown): pg.QueryConfig {
  if (!params || params.length === 0) return { text: sql };
  if (opts?.unpreparedCalls && !(opts.preparedOnceGrown && hasGrown?.(opts.preparedOnceGrown, opts.unpreparedCalls))) {
    const calls = unpreparedCounts.get(sql) ?? (unpreparedCounts.size < MAX_PREPARED ? 0 : opts.unpreparedCalls);
    if (calls < opts.unpreparedCalls) {
      unpreparedCounts.set(sql, calls + 1);
      return { text: sql, values: params };
    }
  }
  let name = preparedNames.get(sql);
  if (name === undefined && preparedNames.size < MAX_PREPARED) {
    name = `tp_${digest(sql)}`;
    preparedNames.set(sql, name);
  }
  return { name, text: sql, values: params };
}

/**
 * A prepared statement whose result columns changed under it (a migration added a column to a
 * table it selects * from) fails before it runs. The text then gets a new name, so every
 * connection prepares it afresh, and the caller may safely run it again.
 */
function isStalePlan(e: unknown): boolean {
  const err = e as { code?: string; message?: string } | null;
  return err?.code === '0A000' && /cached plan must not change result type/.test(err.message ?? '');
}
function renewPrepared(sql: string) {
  if (preparedNames.has(sql)) preparedNames.set(sql, `tp_${digest(sql)}_${Date.now().toString(36)}`);
}

async function withRetry<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (attempt < MAX_TX_ATTEMPTS && ((code && RETRYABLE_SQLSTATES.has(code)) || isStalePlan(e))) {
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));
        continue;
      }
      throw e;
    }
  }
}

export function createPgDb(
  url: string,
  poolSize = 10,
  opts: {
    password?: () => string | Promise<string>;
    /** QueryOptions.preparedOnceGrown: how often a young table is looked up again (tests: 0). */
    growthCheckMs?: number;
  } = {},
): Db {
  const growthCheckMs = opts.growthCheckMs ?? GROWTH_CHECK_MS;
  // A password from the secrets provider, asked for at each new connection: after a rotation new
  // connections use the new password while open ones carry on (PostgreSQL does not drop them).
  // Set on the client itself, because pg lets the connection string's (empty) password win.
  const password = opts.password;
  const Client = password
    ? class extends pg.Client {
        constructor(c?: string | pg.ClientConfig) {
          super(c);
          (this as unknown as { password: unknown }).password = password;
        }
      }
    : undefined;
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    ...(Client ? { Client } : {}),
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client that errors (server restart) must not crash the process.
  pool.on('error', () => {});
  // Nor a checked-out one: pg-pool listens only while a client is idle, and a server that goes
  // away while a client is out (between two statements, or between a statement's end and its
  // release) would raise an unhandled 'error'. The client is marked unusable by pg itself, its
  // pending and later queries fail, and the pool discards it on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  // QueryOptions.preparedOnceGrown: the tables the planner estimates grown, looked up in the
  // background at most every growthCheckMs per table; once grown, grown for good.
  const grownTables = new Map<string, { grown: boolean; checkedAt: number }>();
  const hasGrown: HasGrown = (table, rows) => {
    const key = `${table}\n${rows}`;
    const known = grownTables.get(key);
    if (known?.grown) return true;
    const now = Date.now();
    if (known && now - known.checkedAt < growthCheckMs) return false;
    const entry = { grown: false, checkedAt: now };
    grownTables.set(key, entry);
    plannedRows(pool, table).then(
      (n) => {
        if (n >= rows) entry.grown = true;
      },
      () => {}, // asked again after growthCheckMs
    );
    return false;
  };
  const query = async <T>(sql: string, params?: unknown[], opts?: QueryOptions) => {
    let r: pg.QueryResult;
    try {
      r = await pool.query(statement(sql, params, opts, hasGrown));
    } catch (e) {
      if (!isStalePlan(e)) throw e;
      renewPrepared(sql);
      r = await pool.query(statement(sql, params, opts, hasGrown));
    }
    return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
  };
  // Readiness's own connection (Db.ping): one, opened on first use, thrown away when it fails.
  const probe = new pg.Pool({
    connectionString: url,
    max: 1,
    connectionTimeoutMillis: 2000,
    ...(Client ? { Client } : {}),
  });
  probe.on('error', () => {});
  probe.on('connect', (client) => client.on('error', () => {}));
  const ping = async (timeoutMs: number) => {
    const client = await probe.connect();
    let failed: Error | undefined;
    const timer = setTimeout(() => {
      // A server that stopped answering without closing the socket: the connection is dropped,
      // so the next probe opens a new one instead of queueing behind this one.
      failed = new Error(`no answer within ${timeoutMs} ms`);
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    }, timeoutMs);
    try {
      return (await client.query('SELECT 1')).rows.length === 1;
    } catch (e) {
      failed ??= e as Error;
      throw e;
    } finally {
      clearTimeout(timer);
      client.release(failed);
    }
  };
  return {
    driver: 'pg',
    ping,
    query,
    exec: async (sql: string) => {
      await pool.query(sql);
    },
    tx: <T>(fn: (tx: Queryable) => Promise<T>) =>
      withRetry(async () => {
        const client = await pool.connect();
        // A checked-out client has no pool listener: a server that ends the connection between two
        // statements (a restart, a failover) would raise an unhandled 'error' and end the process.
        // The error is kept, the next statement fails with it, and the client is thrown away.
        let broken: Error | undefined;
        const onError = (e: Error) => {
          broken = e;
        };
        client.on('error', onError);
        try {
          await client.query('BEGIN');
          const txq: Queryable = {
            query: async <R>(sql: string, params?: unknown[], opts?: QueryOptions) => {
              const r = await client.query(statement(sql, params, opts, hasGrown)).catch((e) => {
                if (isStalePlan(e)) renewPrepared(sql); // withRetry runs the transaction again
                throw e;
              });
              return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
            },
            exec: async (sql: string) => {
              await client.query(sql);
            },
          };
          const out = await fn(txq);
          await client.query('COMMIT');
          return out;
        } catch (e) {
          await client.query('ROLLBACK').catch((re: Error) => {
            broken ??= re;
          });
          throw e;
        } finally {
          client.removeListener('error', onError);
          client.release(broken);
        }
      }),
    close: async () => {
      await Promise.all([pool.end(), probe.end()]);
    },
    poolStats: () => ({ max: poolSize, total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}

/** A PGlite database, which can also write its data directory out as a tar (test templates). */
export interface PgliteDb extends Db {
  dumpDataDir(): Promise<Blob>;
}

/**
 * PGlite: in memory when `dataDir` is undefined, else persisted under it. `loadDataDir` starts it
 * from a tar written by dumpDataDir() instead of running initdb (the test kit's templates).
 */
export async function createPgliteDb(dataDir?: string, opts: { loadDataDir?: Blob } = {}): Promise<PgliteDb> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  // Loaded here, not at the top: a process on PostgreSQL never needs it (its JavaScript alone
  // cost the api ~35 MB at peak, bench/PROFILE.md "Memory of the api process").
  const { PGlite, types: pgliteTypes } = await import('@electric-sql/pglite');
  const lite = await PGlite.create(dataDir, {
    parsers: { [pgliteTypes.INT8]: parseInt8 },
    ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
  });
  const normalize = <T>(r: { rows: unknown[]; affectedRows?: number }) => ({
    rows: r.rows as T[],
    rowCount: r.affectedRows ?? r.rows.length,
  });
  // PGlite's query() sends the unnamed statement: every statement is planned with its values, so
  // `unpreparedCalls` (queryable.ts) is what it does anyway.
  return {
    driver: 'pglite',
    query: async <T>(sql: string, params?: unknown[]) => normalize<T>(await lite.query(sql, params)),
    exec: async (sql: string) => {
      await lite.exec(sql);
    },
    // PGlite is one connection; its transaction() holds a mutex, so concurrent transactions
    // serialize. That makes PGlite strictly safer than READ COMMITTED, never weaker.
    tx: <T>(fn: (tx: Queryable) => Promise<T>) =>
      withRetry(() =>
        lite.transaction(async (t) =>
          fn({
            query: async <R>(sql: string, params?: unknown[]) => normalize<R>(await t.query(sql, params)),
            exec: async (sql: string) => {
              await t.exec(sql);
            },
          }),
        ),
      ),
    close: () => lite.close(),
    dumpDataDir: () => lite.dumpDataDir('none'),
  };
}

export interface OpenDbOptions {
  databaseUrl?: string;
  dataDir: string;
  poolSize?: number;
  password?: () => string | Promise<string>;
  /**
   * Only for the embedded database (no databaseUrl), which one process owns (src/platform/embedded.ts).
   * `serve`: own the data directory and let other tillpoint processes work through this one's admin
   * socket; refuse if another live process owns it. `use` (the default): work through the server
   * that owns it, else own it for as long as this Db is open.
   */
  embedded?: 'serve' | 'use';
  /** Create the database if the data directory has none (serve, migrate). Default: refuse. */
  create?: boolean;
  /** What this process is, for the lock file and the error another process shows (e.g. "ledger verify"). */
  command?: string;
}

export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.databaseUrl) return createPgDb(opts.databaseUrl, opts.poolSize, { password: opts.password });
  const embedded = await import('./embedded.ts');
  const mode = opts.embedded ?? 'use';
  const command = opts.command ?? process.argv.slice(2).join(' ');
  if (mode === 'use') {
    const lock = embedded.readLock(opts.dataDir);
    if (lock && embedded.lockHolderAlive(lock)) return embedded.connectToOwner(opts.dataDir, lock);
  }
  if (!opts.create && !embedded.embeddedDbExists(opts.dataDir)) throw new embedded.NoEmbeddedDbError(opts.dataDir);
  let lock: Awaited<ReturnType<typeof embedded.acquireLock>>;
  try {
    lock = await embedded.acquireLock(opts.dataDir, command, mode === 'serve');
  } catch (e) {
    // A server took the directory between the look above and now: work through it.
    if (mode === 'use' && e instanceof embedded.EmbeddedDbBusyError && e.holder.server)
      return embedded.connectToOwner(opts.dataDir, e.holder);
    throw e;
  }
  let db: Db;
  try {
    db = await createPgliteDb(`${opts.dataDir}/pglite`);
  } catch (e) {
    lock.release();
    throw e;
  }
  const admin =
    mode === 'serve'
      ? await embedded.serveAdminSocket(db, opts.dataDir).catch(async (e) => {
          await db.close();
          lock.release();
          throw e;
        })
      : undefined;
  if (admin) lock.setSocket(admin.socket);
  return {
    ...db,
    async close() {
      try {
        await admin?.close();
        await db.close();
      } finally {
        lock.release();
      }
    },
  };
}
