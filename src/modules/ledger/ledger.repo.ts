import type { Queryable } from '../../platform/db.ts';
import { newId } from '../../platform/ids.ts';
import type { AccountSpec } from './types.ts';
import { normalizeEntry, type NormalizedAccount } from './validate.ts';

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

/** An account of an entry posted from inside another module's statement: its code is `prefix` followed by the SQL text expression `key` (a column of the caller's row). */
export interface AccountSql extends Omit<AccountSpec, 'code'> {
  prefix: string;
  key: string;
}

/**
 * A two-line entry written as SQL expressions over a row of the caller's statement (postEntrySql,
 * postEntriesSql): its journal id, reference and amount, and the keys of its two accounts.
 */
export interface EntrySql {
  book?: string;
  kind: string;
  id: string;
  reference: string;
  amount: string;
  debit: AccountSql;
  credit: AccountSql;
}

/**
 * A two-line entry moving one amount, posted from inside a caller's own statement (the payment's
 * completion is one statement: payments.repo.completeSucceeded), where the codes and the amount
 * are columns of a row the statement has just written. `reference`, `debit.key`, `credit.key` and
 * `amount` are SQL expressions over that row; `amount` must be a positive bigint (the caller's
 * column constraint says so); `id` is the entry's journal id (newJournalId(), carried by the
 * caller). Constants travel as parameters through `param`.
 *
 * Returns a FROM item, `ledger.post_entry(…)`, for `CROSS JOIN LATERAL … AS x`: the same function,
 * checks, lock order (plain accounts in code order, hot accounts' shard rows after them) and
 * refusals (SQLSTATE TPL01-TPL04) as post(). A deliberate exception (docs/architecture.md).
 */
export function postEntrySql(e: EntrySql, param: (value: unknown) => string): string {
  const x = twoLineEntrySql(e, param);
  return `ledger.post_entry((${e.id})::text, ${x.book}, ${x.kind},
      (${e.reference})::text, NULL::text, ${x.accounts}, ${x.lines})`;
}

/**
 * postEntrySql's entry for each row of `from` (a relation in the caller's statement), posted by one
 * call of ledger.post_entries() (migrations/0036): every entry's plain accounts locked in code
 * order first, then the shard rows, then each entry posted as post_entry() posts one. So a
 * statement that completes several payments takes its ledger locks in the same global order as a
 * single entry does (no deadlock between two such statements over the same merchants). The
 * expressions of `e` are over the rows of `from`; `e.id` is each row's journal id (newJournalId()).
 *
 * Returns a FROM item, `ledger.post_entries(…)`, with one row (reference, journal_id, duplicate)
 * per entry. A refusal (TPL01-TPL04) raises, and with it the whole statement.
 */
export function postEntriesSql(e: EntrySql, from: string, param: (value: unknown) => string): string {
  const x = twoLineEntrySql(e, param);
  return `ledger.post_entries(${x.book}, (SELECT jsonb_agg(jsonb_build_object('id', (${e.id})::text, 'kind', ${x.kind},
      'reference', (${e.reference})::text, 'memo', NULL::text, 'accounts', ${x.accounts}, 'lines', ${x.lines})
      ORDER BY (${e.reference})::text COLLATE "C") FROM ${from}))`;
}

/** A journal id for an entry posted through postEntrySql or postEntriesSql (ids come from the application, as post()'s do). */
export const newJournalId = () => newId('journal');

/**
 * The parts of a two-line entry as SQL over a caller's row: the book and kind (parameters), the
 * accounts and the lines (jsonb expressions), as ledger.post_entry() takes them. What post()
 * would refuse (book, kind, types, floors, shards) is refused here once, with sample codes.
 */
function twoLineEntrySql(e: Omit<EntrySql, 'id' | 'reference'>, param: (value: unknown) => string) {
  if (e.debit.prefix === e.credit.prefix)
    throw new Error('postEntrySql: the two accounts need different code prefixes (they must be two accounts)');
  const sample = normalizeEntry({
    book: e.book,
    kind: e.kind,
    reference: 'sample',
    lines: [
      { account: { ...e.debit, code: `${e.debit.prefix}sample` }, debit: 1 },
      { account: { ...e.credit, code: `${e.credit.prefix}sample` }, credit: 1 },
    ],
  });
  const code = (a: AccountSql) => `(${param(a.prefix)}::text || (${a.key})::text)`;
  const account = (a: AccountSql) => {
    const n = sample.accounts.find((x) => x.code === `${a.prefix}sample`)!;
    return `jsonb_build_object('code', ${code(a)}, 'type', ${param(n.type)}::text, 'floor', ${param(n.floor ?? null)}::bigint,
      'floor_given', ${param(n.floor !== undefined)}::boolean, 'shards', ${param(n.shards)}::int)`;
  };
  return {
    book: `${param(sample.book)}::text`,
    kind: `${param(sample.kind)}::text`,
    accounts: `jsonb_build_array(${account(e.debit)}, ${account(e.credit)})`,
    lines: `jsonb_build_array(jsonb_build_object('line', 0, 'code', ${code(e.debit)}, 'amount', (${e.amount})::bigint),
                        jsonb_build_object('line', 1, 'code', ${code(e.credit)}, 'amount', -(${e.amount})::bigint))`,
  };
}
