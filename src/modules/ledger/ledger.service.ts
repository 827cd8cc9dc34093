import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { accountBalance, writeEntry } from './ledger.repo.ts';
import type { EntryInput, LedgerService, PostedEntry } from './types.ts';
import { DEFAULT_BOOK, normalizeEntry, type NormalizedEntry } from './validate.ts';
import { verifyLedger } from './ledger.verify.ts';

// post() is on the hot path of every payment: one round trip (ledger.post_entry()), duplicate or not.

// SQLSTATEs raised by ledger.post_entry() and ledger.checked_balance() (migrations/0004, 0014).
const FLOOR_BREACH = 'TPL01';
const TYPE_CONFLICT = 'TPL02';
const FLOOR_CONFLICT = 'TPL03';
const LINES_CONFLICT = 'TPL04';
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
  try {
    const w = await writeEntry(tx, {
      id: newId('journal'),
      book: entry.book,
      kind: entry.kind,
      reference: entry.reference,
      memo: entry.memo,
      accounts: entry.accounts,
      lines: entry.lines,
    });
    return { journalId: w.journal_id, duplicate: w.duplicate };
  } catch (e) {
    throw refusal(e, entry) ?? e;
  }
}

/** The AppError for a refusal raised by ledger.post_entry(), or undefined for any other error. */
function refusal(e: unknown, entry: NormalizedEntry): AppError | undefined {
  const err = e as { code?: string; detail?: string; constraint?: string } | null;
  const code = err?.code;
  if (code !== FLOOR_BREACH && code !== TYPE_CONFLICT && code !== FLOOR_CONFLICT && code !== LINES_CONFLICT) {
    if (code === '23514' && err?.constraint === FLOOR_CHECK_CONSTRAINT) {
      return new AppError('insufficient_funds', 'a ledger account would fall below its floor', {
        book: entry.book,
        kind: entry.kind,
        reference: entry.reference,
      });
    }
    return undefined;
  }
  let d: { code?: string; have?: unknown; want?: unknown; journal_id?: string } = {};
  try {
    d = JSON.parse(err?.detail ?? '{}');
  } catch {
    // The messages below still say what happened.
  }
  const account = d.code;
  switch (code) {
    case FLOOR_BREACH:
      return new AppError(
        'insufficient_funds',
        account
          ? `ledger account ${entry.book}/${account} would fall below its floor`
          : 'a ledger account would fall below its floor',
        { book: entry.book, account, kind: entry.kind, reference: entry.reference },
      );
    case TYPE_CONFLICT:
      return new AppError('conflict', `ledger account ${entry.book}/${account} is a ${d.have} account, not ${d.want}`, {
        book: entry.book,
        account,
      });
    case FLOOR_CONFLICT:
      return new AppError('conflict', `ledger account ${entry.book}/${account} has floor ${d.have}, not ${d.want}`, {
        book: entry.book,
        account,
      });
    default:
      return new AppError(
        'conflict',
        `ledger entry ${entry.kind} ${entry.reference} was already posted with different lines`,
        {
          book: entry.book,
          kind: entry.kind,
          reference: entry.reference,
          journalId: d.journal_id,
        },
      );
  }
}
