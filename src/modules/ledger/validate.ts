import { AppError } from '../../platform/errors.ts';
import type { AccountType, EntryInput } from './types.ts';

// Checks an entry before it goes near the database and puts it in the one shape the repo uses.
// Everything here is a caller's bug, never a customer's: messages name the field to fix.

export const ACCOUNT_TYPES: readonly AccountType[] = ['asset', 'liability', 'equity', 'revenue', 'expense'];

/** +1 for debit-normal accounts (asset, expense), -1 for credit-normal ones. */
export const normalSign = (type: AccountType): 1 | -1 => (type === 'asset' || type === 'expense' ? 1 : -1);

export const DEFAULT_BOOK = 'INR';
export const MAX_LINES = 100;

const BOOK_RE = /^[A-Z0-9_]{1,16}$/;
// Identifiers: printable ASCII, no spaces. Codes embed ids ("merchant_payable:mer_…").
const TOKEN_RE = /^[!-~]+$/;

export interface NormalizedAccount {
  code: string;
  type: AccountType;
  /** undefined = the caller did not say (any existing floor is accepted); null = no floor. */
  floor: number | null | undefined;
  /** Rows the balance is kept in (AccountSpec.shards); 1 = one row. */
  shards: number;
}

export const MAX_SHARDS = 256;

export interface NormalizedLine {
  code: string;
  /** Signed: debit > 0, credit < 0. */
  amount: number;
}

export interface NormalizedEntry {
  book: string;
  kind: string;
  reference: string;
  memo: string | null;
  lines: NormalizedLine[];
  /** One per distinct account, sorted by code (the order rows are locked in). */
  accounts: NormalizedAccount[];
}

const invalid = (field: string, message: string) => new AppError('validation_failed', message, { field });
const badAmount = (field: string, message: string) => new AppError('invalid_amount', message, { field });

function token(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max || !TOKEN_RE.test(v)) {
    throw invalid(field, `${field} must be 1-${max} printable characters without spaces`);
  }
  return v;
}

function lineAmount(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw badAmount(field, `${field} must be a safe integer (minor units)`);
  }
  if (v <= 0) throw badAmount(field, `${field} must be greater than zero`);
  return v;
}

export function normalizeEntry(input: EntryInput): NormalizedEntry {
  if (input === null || typeof input !== 'object') throw invalid('entry', 'entry must be an object');
  const book = input.book ?? DEFAULT_BOOK;
  if (typeof book !== 'string' || !BOOK_RE.test(book)) {
    throw invalid('book', 'book must be 1-16 characters of A-Z, 0-9 and _ (e.g. INR, PTS)');
  }
  const kind = token(input.kind, 'kind', 100);
  const reference = token(input.reference, 'reference', 200);
  let memo: string | null = null;
  if (input.memo !== undefined && input.memo !== null) {
    if (typeof input.memo !== 'string' || input.memo.length > 500)
      throw invalid('memo', 'memo must be a string of at most 500 characters');
    memo = input.memo;
  }
  if (!Array.isArray(input.lines) || input.lines.length < 2) {
    throw invalid('lines', 'an entry needs at least 2 lines');
  }
  if (input.lines.length > MAX_LINES) throw invalid('lines', `an entry has at most ${MAX_LINES} lines`);

  const accounts = new Map<string, NormalizedAccount>();
  const lines: NormalizedLine[] = [];
  // BigInt so that a sum of many safe integers is still exact.
  let debits = 0n;
  let credits = 0n;
  input.lines.forEach((line, i) => {
    const at = `lines[${i}]`;
    if (line === null || typeof line !== 'object') throw invalid(at, `${at} must be an object`);
    const spec = line.account;
    if (spec === null || typeof spec !== 'object') throw invalid(`${at}.account`, `${at}.account must be an object`);
    const code = token(spec.code, `${at}.account.code`, 200);
    if (!ACCOUNT_TYPES.includes(spec.type)) {
      throw invalid(`${at}.account.type`, `${at}.account.type must be one of ${ACCOUNT_TYPES.join(', ')}`);
    }
    const floor = spec.floor;
    if (floor !== undefined && floor !== null) {
      if (typeof floor !== 'number' || !Number.isSafeInteger(floor)) {
        throw badAmount(`${at}.account.floor`, `${at}.account.floor must be a safe integer or null`);
      }
      // An account starts at 0: a floor above 0 would be breached from the start.
      if (floor > 0) throw badAmount(`${at}.account.floor`, `${at}.account.floor must be 0 or less`);
    }
    const shards = spec.shards ?? 1;
    if (!Number.isSafeInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
      throw invalid(`${at}.account.shards`, `${at}.account.shards must be an integer from 1 to ${MAX_SHARDS}`);
    }
    if (shards > 1 && floor !== undefined && floor !== null) {
      throw invalid(`${at}.account.shards`, `${at}.account: an account kept in several rows cannot have a floor`);
    }
    const seen = accounts.get(code);
    if (!seen) {
      accounts.set(code, { code, type: spec.type, floor, shards });
    } else {
      seen.shards = Math.max(seen.shards, shards);
      if (seen.shards > 1 && floor !== undefined && floor !== null) {
        throw invalid(`${at}.account.shards`, `account ${code}: an account kept in several rows cannot have a floor`);
      }
      if (seen.type !== spec.type) {
        throw invalid(`${at}.account.type`, `account ${code} appears with two types in one entry`);
      }
      if (floor !== undefined) {
        if (seen.floor !== undefined && seen.floor !== floor) {
          throw invalid(`${at}.account.floor`, `account ${code} appears with two floors in one entry`);
        }
        seen.floor = floor;
      }
    }

    const hasDebit = line.debit !== undefined && line.debit !== null;
    const hasCredit = line.credit !== undefined && line.credit !== null;
    if (hasDebit === hasCredit) {
      throw invalid(at, `${at} must have exactly one of debit or credit`);
    }
    if (hasDebit) {
      const v = lineAmount(line.debit, `${at}.debit`);
      debits += BigInt(v);
      lines.push({ code, amount: v });
    } else {
      const v = lineAmount(line.credit, `${at}.credit`);
      credits += BigInt(v);
      lines.push({ code, amount: -v });
    }
  });
  if (debits !== credits) {
    throw new AppError('validation_failed', `entry is unbalanced: debits ${debits} != credits ${credits}`, {
      field: 'lines',
      debits: debits.toString(),
      credits: credits.toString(),
    });
  }
  // Every partial sum of the entry then stays within the safe range, so plain numbers are exact.
  if (debits > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw badAmount('lines', 'entry total exceeds the largest safe integer');
  }
  const sorted = [...accounts.values()].sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
  return { book, kind, reference, memo, lines, accounts: sorted };
}
