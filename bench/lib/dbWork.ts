// What the database did per completed payment during a measured window: statements the clients
// sent (round trips), commits, and WAL bytes written. Unlike throughput these barely move with
// other load on a shared machine, and they are what a capacity model needs (docs/capacity.md).
//
// Statements come from pg_stat_statements (top-level statements only, i.e. one per round trip,
// BEGIN and COMMIT included), which needs `shared_preload_libraries`; without it they are null.
// The window covers everything the system did meanwhile (status checks, outbox, audit sealing),
// charged to the payments completed in it.

import { withClient } from './postgres.ts';

export interface DbWorkMark {
  walLsn: string;
  commits: number;
  statements: number | null;
  /** Calls and server time (ms) so far per statement text (first 100 characters), to say which statements they were. */
  byStatement: Map<string, { calls: number; ms: number }>;
}

export interface DbWorkPerPayment {
  statements: number | null;
  commits: number;
  wal_bytes: number;
  /** The statements sent at least 0.05 times per payment, most frequent first. */
  statements_by_text: { statement: string; per_payment: number }[];
}

/** Our own monitoring statements, left out of the count. */
const OWN = `query NOT ILIKE '%pg_stat%' AND query NOT ILIKE '%pg_current_wal%'`;

/** Makes pg_stat_statements readable in the benchmark's database when the server loaded it. */
export async function enableStatementCounts(url: string): Promise<boolean> {
  return withClient(url, async (c) => {
    const loaded = await c.query<{ on: boolean }>(
      `SELECT current_setting('shared_preload_libraries') ILIKE '%pg_stat_statements%' AS on`,
    );
    if (!loaded.rows[0]?.on) return false;
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return true;
  });
}

export async function markDbWork(url: string, countStatements: boolean): Promise<DbWorkMark> {
  return withClient(url, async (c) => {
    const r = await c.query<{ lsn: string; commits: string }>(
      `SELECT pg_current_wal_lsn()::text AS lsn,
              (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::text AS commits`,
    );
    let statements: number | null = null;
    const byStatement = new Map<string, { calls: number; ms: number }>();
    if (countStatements) {
      const s = await c.query<{ q: string; n: string; ms: number }>(
        `SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS q, sum(calls)::text AS n, sum(total_exec_time) AS ms
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database() AND ${OWN} GROUP BY 1`,
      );
      statements = 0;
      for (const row of s.rows) {
        byStatement.set(row.q, { calls: Number(row.n), ms: Number(row.ms) });
        statements += Number(row.n);
      }
    }
    return { walLsn: r.rows[0].lsn, commits: Number(r.rows[0].commits), statements, byStatement };
  });
}

export async function dbWorkPerPayment(
  url: string,
  a: DbWorkMark,
  b: DbWorkMark,
  payments: number,
): Promise<DbWorkPerPayment | null> {
  if (payments <= 0) return null;
  const wal = await withClient(url, async (c) => {
    const r = await c.query<{ bytes: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS bytes', [
      b.walLsn,
      a.walLsn,
    ]);
    return Number(r.rows[0].bytes);
  });
  const per = (x: number) => Math.round((x / payments) * 100) / 100;
  const byText = [...b.byStatement]
    .map(([statement, v]) => ({ statement, per_payment: per(v.calls - (a.byStatement.get(statement)?.calls ?? 0)) }))
    .filter((x) => x.per_payment >= 0.05)
    .sort((x, y) => y.per_payment - x.per_payment);
  return {
    statements: a.statements === null || b.statements === null ? null : per(b.statements - a.statements),
    commits: per(b.commits - a.commits),
    wal_bytes: Math.round(wal / payments),
    statements_by_text: byText,
  };
}

/**
 * Server time per item (a payment, an answered request) of each statement between two marks that
 * took at least 0.01 ms of it, largest first, and their total; null when nothing was counted.
 */
export function statementTimePer(a: DbWorkMark, b: DbWorkMark, items: number) {
  if (items <= 0 || a.statements === null || b.statements === null) return null;
  const rows = [...b.byStatement].map(([statement, v]) => ({
    statement,
    ms: Math.round(((v.ms - (a.byStatement.get(statement)?.ms ?? 0)) / items) * 1000) / 1000,
    calls: Math.round(((v.calls - (a.byStatement.get(statement)?.calls ?? 0)) / items) * 100) / 100,
  }));
  return {
    total: Math.round(rows.reduce((t, r) => t + r.ms, 0) * 1000) / 1000,
    by_statement: rows.filter((r) => r.ms >= 0.01).sort((x, y) => y.ms - x.ms),
  };
}
