import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { accountBalance, ensureAccounts, findEntryLines, writeEntry } from './ledger.repo.ts';
import type { EntryInput, LedgerService, PostedEntry } from './types.ts';
import { DEFAULT_BOOK, normalSign, normalizeEntry, type NormalizedEntry } from './validate.ts';
import { verifyLedger } from './ledger.verify.ts';

// post() is on the hot path of every payment: two round trips for a new entry (accounts, then
// entry + postings + balances in one statement), one more only for a duplicate.

/** SQLSTATE raised by ledger.checked_balance() (migrations/0004_ledger.sql). */
const FLOOR_BREACH_SQLSTATE = 'TPL01';
const FLOOR_CHECK_CONSTRAINT = 'accounts_balance_above_floor';

export function createLedgerService(): LedgerService {
  return {
    post,
    balance: (q, code, book = DEFAULT_BOOK) => accountBalance(q, book, code),
    verify: verifyLedger,
  };
}

async function post(tx: Queryable, input: EntryInput): Promise<PostedEntry> {
  const entry = normalizeEntry(input);

  // All checks that can fail in the app run before the entry is written, so a refused entry
  // leaves at most some new, empty accounts behind (harmless, and gone if the caller rolls back).
  const rows = await ensureAccounts(tx, entry.book, entry.accounts);
  const byCode = new Map(rows.map((r) => [r.code, r]));
  for (const want of entry.accounts) {
    const have = byCode.get(want.code);
    if (!have) throw new AppError('internal_error', `ledger account ${entry.book}/${want.code} could not be created`);
    if (have.type !== want.type) {
      throw new AppError('conflict', `ledger account ${entry.book}/${want.code} is a ${have.type} account, not ${want.type}`, {
        book: entry.book,
        account: want.code,
      });
    }
    if (want.floor !== undefined && have.floor !== want.floor) {
      throw new AppError('conflict', `ledger account ${entry.book}/${want.code} has floor ${have.floor}, not ${want.floor}`, {
        book: entry.book,
        account: want.code,
      });
    }
  }

  const net = new Map<string, number>();
  for (const l of entry.lines) net.set(l.code, (net.get(l.code) ?? 0) + l.amount);
  const deltas = entry.accounts
    .map((a) => ({ id: byCode.get(a.code)!.id, delta: normalSign(a.type) * net.get(a.code)! }))
    .filter((d) => d.delta !== 0);
  const postings = entry.lines.map((l, line) => ({ line, account_id: byCode.get(l.code)!.id, amount: l.amount }));

  let written;
  try {
    written = await writeEntry(tx, {
      id: newId('journal'),
      book: entry.book,
      kind: entry.kind,
      reference: entry.reference,
      memo: entry.memo,
      deltas,
      postings,
    });
  } catch (e) {
    throw floorBreach(e, entry) ?? e;
  }

  if (written.id === null) return duplicate(tx, entry);
  if (written.updated !== deltas.length || written.posted !== postings.length) {
    // Cannot happen while the accounts exist; refuse rather than commit a partial entry.
    throw new AppError('internal_error', 'ledger entry was only partly written');
  }
  return { journalId: written.id, duplicate: false };
}

function floorBreach(e: unknown, entry: NormalizedEntry): AppError | undefined {
  const err = e as { code?: string; detail?: string; constraint?: string } | null;
  if (err?.code === FLOOR_BREACH_SQLSTATE) {
    let account: string | undefined;
    try {
      account = (JSON.parse(err.detail ?? '{}') as { code?: string }).code;
    } catch {
      // The message below still says what happened.
    }
    return new AppError(
      'insufficient_funds',
      account ? `ledger account ${entry.book}/${account} would fall below its floor` : 'a ledger account would fall below its floor',
      { book: entry.book, account, kind: entry.kind, reference: entry.reference },
    );
  }
  if (err?.code === '23514' && err.constraint === FLOOR_CHECK_CONSTRAINT) {
    return new AppError('insufficient_funds', 'a ledger account would fall below its floor', {
      book: entry.book,
      kind: entry.kind,
      reference: entry.reference,
    });
  }
  return undefined;
}

/**
 * The same business event posted again. Returns the first posting's journal id, after making
 * sure it is the same event: the same (kind, reference) with other lines is a caller's bug that
 * must not pass silently as a duplicate.
 */
async function duplicate(tx: Queryable, entry: NormalizedEntry): Promise<PostedEntry> {
  const existing = await findEntryLines(tx, entry.book, entry.kind, entry.reference);
  if (!existing) throw new AppError('internal_error', 'ledger entry conflicted but cannot be found');
  const key = (l: { code: string; amount: number }) => `${l.amount}\u0000${l.code}`;
  const a = existing.lines.map(key).sort();
  const b = entry.lines.map(key).sort();
  if (a.length !== b.length || a.some((x, i) => x !== b[i])) {
    throw new AppError(
      'conflict',
      `ledger entry ${entry.kind} ${entry.reference} was already posted with different lines`,
      { book: entry.book, kind: entry.kind, reference: entry.reference, journalId: existing.id },
    );
  }
  return { journalId: existing.id, duplicate: true };
}
