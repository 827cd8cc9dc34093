import type { Db, Queryable } from '../../platform/db.ts';
import type { LedgerViolation } from './types.ts';

// The ledger's invariants, checked from the rows themselves with SQL. Each check is one
// statement, so it sees one consistent snapshot even while entries are being posted.

/** At most this many violations are reported per invariant; a ledger with more is broken anyway. */
export const MAX_VIOLATIONS_PER_INVARIANT = 1000;

const LIMIT = MAX_VIOLATIONS_PER_INVARIANT;

// Normal-side balance of an account from its postings: postings are debit-positive.
const DERIVED = `CASE WHEN a.type IN ('asset', 'expense') THEN 1 ELSE -1 END * COALESCE(s.total, 0)`;
const SUMS = `(SELECT account_id, sum(amount) AS total FROM ledger.postings GROUP BY account_id) s`;
// The stored balance: the account's row, plus its shard rows for a hot account (migrations/0014).
const STORED = `(a.balance + COALESCE(sh.total, 0))`;
const SHARDS = `(SELECT account_id, sum(balance) AS total FROM ledger.balance_shards GROUP BY account_id) sh`;

export const accountSubject = (book: string, code: string) => `${book}/${code}`;

/** Checks every invariant; violations in a fixed order (invariant, then entry id or account). */
export async function verifyLedger(q: Queryable): Promise<LedgerViolation[]> {
  const out: LedgerViolation[] = [];

  // 1. Every entry's postings sum to zero (and there are at least two of them).
  const unbalanced = await q.query<{ id: string; kind: string; reference: string; total: string; n: number }>(
    `SELECT e.id, e.kind, e.reference, COALESCE(sum(p.amount), 0)::text AS total, count(p.entry_id)::int AS n
     FROM ledger.entries e LEFT JOIN ledger.postings p ON p.entry_id = e.id
     GROUP BY e.id
     HAVING COALESCE(sum(p.amount), 0) <> 0 OR count(p.entry_id) < 2
     ORDER BY e.id COLLATE "C"
     LIMIT ${LIMIT}`,
  );
  for (const r of unbalanced.rows) {
    out.push({
      invariant: 'entry_balances',
      subject: r.id,
      message:
        r.total !== '0'
          ? `entry ${r.kind} ${r.reference} postings sum to ${r.total}, not 0`
          : `entry ${r.kind} ${r.reference} has ${r.n} posting(s); an entry needs at least 2`,
    });
  }

  // 2. An entry's postings are all on accounts of the entry's book.
  const mixed = await q.query<{ id: string; book: string; books: string }>(
    `SELECT e.id, e.book, string_agg(DISTINCT a.book, ',') AS books
     FROM ledger.entries e
     JOIN ledger.postings p ON p.entry_id = e.id
     JOIN ledger.accounts a ON a.id = p.account_id
     WHERE a.book <> e.book
     GROUP BY e.id, e.book
     ORDER BY e.id COLLATE "C"
     LIMIT ${LIMIT}`,
  );
  for (const r of mixed.rows) {
    out.push({
      invariant: 'single_book_per_entry',
      subject: r.id,
      message: `entry in book ${r.book} has postings on accounts in book(s) ${r.books}`,
    });
  }

  // 3. Each account's stored balance is the (normal-side) sum of its postings.
  const drift = await q.query<{ book: string; code: string; balance: string; derived: string }>(
    `SELECT a.book, a.code, ${STORED}::text AS balance, (${DERIVED})::text AS derived
     FROM ledger.accounts a LEFT JOIN ${SUMS} ON s.account_id = a.id LEFT JOIN ${SHARDS} ON sh.account_id = a.id
     WHERE ${STORED} <> ${DERIVED}
     ORDER BY a.book COLLATE "C", a.code COLLATE "C"
     LIMIT ${LIMIT}`,
  );
  for (const r of drift.rows) {
    out.push({
      invariant: 'account_balance_matches_postings',
      subject: accountSubject(r.book, r.code),
      message: `stored balance ${r.balance} but postings give ${r.derived}`,
    });
  }

  // 4. No account is below its floor: neither its stored balance nor the one its postings give.
  const below = await q.query<{ book: string; code: string; floor: number; balance: number; derived: string }>(
    `SELECT a.book, a.code, a.floor, a.balance, (${DERIVED})::text AS derived
     FROM ledger.accounts a LEFT JOIN ${SUMS} ON s.account_id = a.id
     WHERE a.floor IS NOT NULL AND LEAST(a.balance, ${DERIVED}) < a.floor
     ORDER BY a.book COLLATE "C", a.code COLLATE "C"
     LIMIT ${LIMIT}`,
  );
  for (const r of below.rows) {
    out.push({
      invariant: 'account_above_floor',
      subject: accountSubject(r.book, r.code),
      message:
        String(r.balance) === r.derived
          ? `balance ${r.balance} is below floor ${r.floor}`
          : `stored balance ${r.balance}, postings give ${r.derived}; floor is ${r.floor}`,
    });
  }
  return out;
}

export function formatViolation(v: LedgerViolation): string {
  return `${v.invariant}: ${v.subject}: ${v.message}`;
}

export interface LedgerVerifyReport {
  ok: boolean;
  violations: LedgerViolation[];
  checked: { entries: number; accounts: number };
}

/**
 * What `tillpoint ledger verify` runs: every check in one read-only REPEATABLE READ transaction,
 * so the counts and all the checks describe the same moment.
 */
export async function runLedgerVerify(db: Pick<Db, 'tx'>): Promise<LedgerVerifyReport> {
  return db.tx(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const counts = await tx.query<{ entries: number; accounts: number }>(
      `SELECT (SELECT count(*)::int FROM ledger.entries) AS entries,
              (SELECT count(*)::int FROM ledger.accounts) AS accounts`,
    );
    const violations = await verifyLedger(tx);
    return { ok: violations.length === 0, violations, checked: counts.rows[0] };
  });
}
