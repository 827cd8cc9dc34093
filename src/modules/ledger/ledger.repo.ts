import type { Queryable } from '../../platform/db.ts';
import type { NormalizedAccount } from './validate.ts';

// SQL for ledger.*. Lists travel as one jsonb parameter each, so every statement has a fixed
// text (one plan, cached) whatever the number of lines, and runs in one round trip.

export interface EntryWrite {
  id: string;
  book: string;
  kind: string;
  reference: string;
  memo: string | null;
  /** One per distinct account; floor undefined = the caller did not name one. */
  accounts: NormalizedAccount[];
  /** Signed amounts (debit > 0, credit < 0), in the entry's line order. */
  lines: { code: string; amount: number }[];
}

export interface EntryWriteResult {
  journal_id: string;
  /** True when (book, kind, reference) had been posted already, with the same lines: nothing was written. */
  duplicate: boolean;
}

/**
 * Posts the entry in one round trip through ledger.post_entry() (migrations/0014_ledger_post.sql):
 * accounts created when new, type and floor checked, the entry written once per (book, kind,
 * reference), the changed accounts locked in code order and their balances moved, the postings
 * written. Refusals raise SQLSTATE TPL01-TPL04 with a JSON detail and abort the transaction.
 */
export async function writeEntry(tx: Queryable, w: EntryWrite): Promise<EntryWriteResult> {
  const accounts = w.accounts.map((a) => ({
    code: a.code,
    type: a.type,
    floor: a.floor ?? null,
    floor_given: a.floor !== undefined,
    shards: a.shards,
  }));
  const lines = w.lines.map((l, line) => ({ line, code: l.code, amount: l.amount }));
  const r = await tx.query<EntryWriteResult>(
    'SELECT journal_id, duplicate FROM ledger.post_entry($1::text, $2::text, $3::text, $4::text, $5::text, $6::jsonb, $7::jsonb)',
    [w.id, w.book, w.kind, w.reference, w.memo, JSON.stringify(accounts), JSON.stringify(lines)],
  );
  return r.rows[0];
}

export async function accountBalance(q: Queryable, book: string, code: string): Promise<number> {
  const r = await q.query<{ balance: number }>(
    `SELECT a.balance + coalesce((SELECT sum(s.balance) FROM ledger.balance_shards s WHERE s.account_id = a.id), 0)::bigint AS balance
       FROM ledger.accounts a WHERE a.book = $1::text AND a.code = $2::text`,
    [book, code],
  );
  return r.rows[0]?.balance ?? 0;
}
