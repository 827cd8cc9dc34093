import type { Queryable } from '../../platform/db.ts';
import type { AccountType } from './types.ts';
import type { NormalizedAccount } from './validate.ts';

// SQL for ledger.*. Lists travel as one jsonb parameter each, so every statement has a fixed
// text (one plan, cached) whatever the number of lines, and runs in one round trip.

export interface AccountRow {
  id: number;
  code: string;
  type: AccountType;
  floor: number | null;
}

/**
 * Creates the accounts that do not exist yet and returns all of them. New accounts are inserted
 * in code order, so two entries creating the same accounts at once cannot deadlock.
 */
export async function ensureAccounts(tx: Queryable, book: string, accounts: NormalizedAccount[]): Promise<AccountRow[]> {
  const input = JSON.stringify(accounts.map((a) => ({ code: a.code, type: a.type, floor: a.floor ?? null })));
  const r = await tx.query<AccountRow>(
    `WITH input AS (
       SELECT x.code, x.type, x.floor FROM jsonb_to_recordset($2::jsonb) AS x(code text, type text, floor bigint)
     ),
     ins AS (
       INSERT INTO ledger.accounts (book, code, type, floor)
       SELECT $1::text, i.code, i.type, i.floor FROM input i
       WHERE NOT EXISTS (SELECT 1 FROM ledger.accounts a WHERE a.book = $1::text AND a.code = i.code)
       ORDER BY i.code COLLATE "C"
       ON CONFLICT (book, code) DO NOTHING
       RETURNING id, code, type, floor
     )
     SELECT id, code, type, floor FROM ins
     UNION ALL
     SELECT a.id, a.code, a.type, a.floor FROM ledger.accounts a
     WHERE a.book = $1::text AND a.code IN (SELECT code FROM input)`,
    [book, input],
  );
  if (r.rows.length === accounts.length) return r.rows;
  // An account another transaction created and committed after this statement's snapshot was
  // neither inserted nor seen; a new statement sees it (READ COMMITTED). Under REPEATABLE READ
  // the INSERT raises a serialization failure instead, and db.tx() retries.
  const again = await tx.query<AccountRow>(
    `SELECT id, code, type, floor FROM ledger.accounts
     WHERE book = $1::text AND code IN (SELECT jsonb_array_elements_text($2::jsonb))`,
    [book, JSON.stringify(accounts.map((a) => a.code))],
  );
  return again.rows;
}

export interface EntryWrite {
  id: string;
  book: string;
  kind: string;
  reference: string;
  memo: string | null;
  /** Normal-side change per account; accounts whose net change is 0 are left out. */
  deltas: { id: number; delta: number }[];
  /** Signed posting amounts; line = position in the entry, from 0. */
  postings: { line: number; account_id: number; amount: number }[];
}

export interface EntryWriteResult {
  /** null when (book, kind, reference) was already posted: nothing was written. */
  id: string | null;
  updated: number;
  posted: number;
}

/**
 * Writes the entry, its postings and the balance changes in one statement, so on any error
 * none of it happens. Account rows are locked in code order before they are updated (no
 * deadlocks between entries touching the same accounts); a balance that would fall below its
 * floor raises SQLSTATE TPL01 from ledger.checked_balance(). Nothing is locked or written for
 * a duplicate.
 *
 * The locks are FOR NO KEY UPDATE, the mode UPDATE itself takes: it does not conflict with the
 * FOR KEY SHARE locks that other transactions' posting inserts take through the foreign key.
 */
export async function writeEntry(tx: Queryable, w: EntryWrite): Promise<EntryWriteResult> {
  const r = await tx.query<EntryWriteResult>(
    `WITH e AS (
       INSERT INTO ledger.entries (id, book, kind, reference, memo)
       VALUES ($1::text, $2::text, $3::text, $4::text, $5::text)
       ON CONFLICT (book, kind, reference) DO NOTHING
       RETURNING id
     ),
     d AS (
       SELECT x.id, x.delta FROM jsonb_to_recordset($6::jsonb) AS x(id bigint, delta bigint)
     ),
     l AS MATERIALIZED (
       SELECT a.id FROM ledger.accounts a
       WHERE a.id IN (SELECT id FROM d) AND EXISTS (SELECT 1 FROM e)
       ORDER BY a.code COLLATE "C"
       FOR NO KEY UPDATE OF a
     ),
     u AS (
       UPDATE ledger.accounts a
       SET balance = ledger.checked_balance(a.book, a.code, a.balance + d.delta, a.floor)
       FROM d JOIN l ON l.id = d.id
       WHERE a.id = d.id
       RETURNING a.id
     ),
     p AS (
       INSERT INTO ledger.postings (entry_id, line, account_id, amount)
       SELECT e.id, x.line, x.account_id, x.amount
       FROM e, jsonb_to_recordset($7::jsonb) AS x(line smallint, account_id bigint, amount bigint)
       RETURNING 1
     )
     SELECT (SELECT id FROM e) AS id,
            (SELECT count(*)::int FROM u) AS updated,
            (SELECT count(*)::int FROM p) AS posted`,
    [w.id, w.book, w.kind, w.reference, w.memo, JSON.stringify(w.deltas), JSON.stringify(w.postings)],
  );
  return r.rows[0];
}

/** The entry already posted under (book, kind, reference), with its lines in order. */
export async function findEntryLines(
  q: Queryable,
  book: string,
  kind: string,
  reference: string,
): Promise<{ id: string; lines: { code: string; amount: number }[] } | undefined> {
  const r = await q.query<{ id: string; code: string | null; amount: number | null }>(
    `SELECT e.id, a.code, p.amount
     FROM ledger.entries e
     LEFT JOIN ledger.postings p ON p.entry_id = e.id
     LEFT JOIN ledger.accounts a ON a.id = p.account_id
     WHERE e.book = $1::text AND e.kind = $2::text AND e.reference = $3::text
     ORDER BY p.line`,
    [book, kind, reference],
  );
  if (r.rows.length === 0) return undefined;
  return {
    id: r.rows[0].id,
    lines: r.rows.filter((x) => x.code !== null).map((x) => ({ code: x.code!, amount: x.amount! })),
  };
}

export async function accountBalance(q: Queryable, book: string, code: string): Promise<number> {
  const r = await q.query<{ balance: number }>(
    'SELECT balance FROM ledger.accounts WHERE book = $1::text AND code = $2::text',
    [book, code],
  );
  return r.rows[0]?.balance ?? 0;
}
