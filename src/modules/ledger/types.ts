import type { Queryable } from '../../platform/db.ts';

// Double-entry ledger, as its callers see it. Amounts are integer paise (or integer points,
// in a separate book). Every entry's debits equal its credits.

export type AccountType = 'asset' | 'liability' | 'equity' | 'revenue' | 'expense';

export interface AccountSpec {
  /** Stable code, e.g. "bank_clearing:SIMBANK", "merchant_payable:mer_…". Unique per book. */
  code: string;
  type: AccountType;
  /** Lowest allowed balance on the account's normal side (debit for assets/expenses, credit otherwise). null = none. */
  floor?: number | null;
  /**
   * A hot account, posted to by many entries at once (a bank's clearing account): its balance is
   * kept in this many rows, so concurrent entries do not wait for one row lock. 1 (the default) =
   * one row. Such an account has no floor. An existing account's count only ever grows.
   */
  shards?: number;
}

export interface EntryLine {
  account: AccountSpec;
  debit?: number;
  credit?: number;
}

export interface EntryInput {
  /** Which book: money ('INR') or points ('PTS'); books never mix in one entry. */
  book?: string;
  /** What happened, e.g. "payment.succeeded", "refund.succeeded". */
  kind: string;
  /** The business object it belongs to, e.g. a payment or refund id. (kind, reference) is unique. */
  reference: string;
  lines: EntryLine[];
  memo?: string;
}

export interface PostedEntry {
  journalId: string;
  /** True when this (kind, reference) had already been posted: nothing new was written. */
  duplicate: boolean;
}

export interface LedgerViolation {
  invariant: 'entry_balances' | 'account_balance_matches_postings' | 'account_above_floor' | 'single_book_per_entry';
  subject: string;
  message: string;
}

export interface LedgerService {
  /** Posts one balanced entry inside the caller's transaction. Throws AppError if unbalanced or a floor would be breached. */
  post(tx: Queryable, entry: EntryInput): Promise<PostedEntry>;
  /** Balance on the account's normal side; 0 for an account never used. */
  balance(q: Queryable, code: string, book?: string): Promise<number>;
  /** Checks every invariant; returns the violations found (empty = ok), first one first. */
  verify(q: Queryable): Promise<LedgerViolation[]>;
}
