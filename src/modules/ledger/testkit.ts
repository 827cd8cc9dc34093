// Small helpers for the ledger's own tests (not a test file itself).
import type { Queryable } from '../../platform/db.ts';
import type { AccountSpec, AccountType, EntryInput, EntryLine } from './types.ts';

export const acct = (code: string, type: AccountType, floor?: number | null): AccountSpec =>
  floor === undefined ? { code, type } : { code, type, floor };

export const dr = (account: AccountSpec, amount: number): EntryLine => ({ account, debit: amount });
export const cr = (account: AccountSpec, amount: number): EntryLine => ({ account, credit: amount });

let seq = 0;
/** A unique reference, so tests sharing one database never collide. */
export const ref = (prefix = 'ref') => `${prefix}_${process.pid}_${Date.now().toString(36)}_${(seq++).toString(36)}`;

export const entry = (lines: EntryLine[], over: Partial<EntryInput> = {}): EntryInput => ({
  kind: 'test.entry',
  reference: ref(),
  lines,
  ...over,
});

export async function count(q: Queryable, table: 'entries' | 'postings' | 'accounts'): Promise<number> {
  const r = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger.${table}`);
  return r.rows[0].n;
}

/** Normal-side sum of an account's postings, straight from ledger.postings. */
export async function postedBalance(q: Queryable, code: string, book = 'INR'): Promise<number> {
  const r = await q.query<{ v: number }>(
    `SELECT (CASE WHEN a.type IN ('asset', 'expense') THEN 1 ELSE -1 END * COALESCE(sum(p.amount), 0))::bigint AS v
     FROM ledger.accounts a LEFT JOIN ledger.postings p ON p.account_id = a.id
     WHERE a.book = $1 AND a.code = $2 GROUP BY a.id, a.type`,
    [book, code],
  );
  return r.rows[0]?.v ?? 0;
}
