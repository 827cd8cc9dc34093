import type { Queryable } from '../../../platform/db.ts';

// The reconciliation's ports and the shapes other parts of settlement rely on.

/**
 * Asks for a refund-type reversal of money a customer was debited for a payment that did not
 * complete at the merchant. Implemented by settlement's reversals (they own the RBI clock); the
 * recon side calls it in the transaction that decides it, so the decision and the request commit
 * together. `sourceRef` makes it idempotent: the same ref asks for the same reversal.
 */
export interface ReversalRequests {
  request(
    tx: Queryable,
    r: {
      paymentId: string;
      amountPaise: number;
      reason: 'late_success' | 'amount_mismatch' | 'duplicate_debit' | 'operator';
      sourceRef: string;
    },
  ): Promise<{ reversalId: string; created: boolean }>;
}

/**
 * Settles a payment flagged while still pending (deemed, unknown at the bank) on a bank file's
 * evidence, in the caller's transaction: paid (the file has its line, for its amount) makes it
 * `succeeded`, not paid (the file covers its whole validity without it) makes it `failed`.
 * Implemented by payments (its transition, ledger entry, hooks and terminal event). Returns the
 * payment after the change, or undefined when nothing changed (people decide).
 */
export interface FlaggedPaymentSettlement {
  settleFlaggedFromBankFile(
    tx: Queryable,
    paymentId: string,
    answer: { paid: boolean; amountPaise?: number; detail: string },
  ): Promise<{ id: string; status: string } | undefined>;
}

/** What a bank's file for a cycle said in total: settlement's cycle close compares it with ours. */
export interface BankFileTotals {
  forCycle(
    bankCode: string,
    cycleKey: string,
  ): Promise<{ fileId: string; creditPaise: number; debitPaise: number; lines: number } | null>;
}

/** A cycle key: the IST date of the NPCI settlement cycle and its number, e.g. 2026-12-03-C1. */
export const CYCLE_KEY_RE = /^\d{4}-\d{2}-\d{2}-C[1-9]\d?$/;

export type LineOutcome = 'matched' | 'amount_mismatch' | 'duplicate' | 'unknown' | 'late_success' | 'not_final';
export const LINE_OUTCOMES: readonly LineOutcome[] = [
  'matched',
  'amount_mismatch',
  'duplicate',
  'unknown',
  'late_success',
  'not_final',
];

export type ExceptionKind =
  | 'missing'
  | 'amount_over'
  | 'amount_under'
  | 'duplicate'
  | 'unknown'
  | 'late_success'
  | 'not_final'
  | 'flagged';
export const EXCEPTION_KINDS: readonly ExceptionKind[] = [
  'missing',
  'amount_over',
  'amount_under',
  'duplicate',
  'unknown',
  'late_success',
  'not_final',
  'flagged',
];

export type Resolution = 'accept' | 'refund_customer' | 'reverse' | 'write_off' | 'match';
export const RESOLUTIONS: readonly Resolution[] = ['accept', 'refund_customer', 'reverse', 'write_off', 'match'];

/** Who did something: an operator, an API key, the CLI's OS user, or the system. */
export interface ReconActor {
  type: 'operator' | 'api_key' | 'terminal' | 'system' | 'anonymous' | 'cli';
  id: string | null;
}

/** One parsed data line of a bank file. */
export interface BankLine {
  lineNo: number;
  direction: 'credit' | 'debit';
  txnRef: string | null;
  bankRef: string | null;
  reference: string | null;
  amountPaise: number;
  txnAt: Date | null;
}

export interface LineProblem {
  line: number;
  message: string;
}
