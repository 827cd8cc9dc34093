import type pg from 'pg';

// Tillpoint's ledger held against the bank's own books (the simulator's GET /sim/v1/books: what
// it debited per payment and paid per refund, from its state, never from the messages it sent),
// reference by reference, at the end of a chaos run:
//
//   payment   the bank debited it      ⇔ the ledger has its `payment.succeeded` entry, same amount
//   refund    the bank paid it         ⇔ the ledger has its `refund.succeeded` entry, same amount
//   reversal  the bank paid its RV…    ⇔ it is `succeeded`
//
// Where they differ it is `flagged` when Tillpoint said so itself (needs_reconciliation, or a
// reversal under way for the payment: people or the reversal job settle it), `open` when ours is
// still waiting for the bank's answer (pending), and otherwise a mismatch: money one side has
// and the other does not know of, which no flag announces. A bank refund or debit under a
// reference we never sent is a mismatch too.

export interface BankBooks {
  payments: { txn_ref: string; amount_paise: number; debited: boolean }[];
  refunds: { refund_ref: string; amount_paise: number }[];
}

export interface OurPayment {
  id: string;
  txn_ref: string;
  status: string;
  amount: number;
  flagged: boolean;
  /** The amount of its `payment.succeeded` entry, or null when there is none. */
  posted: number | null;
  /** It has a reversal that is not `failed`. */
  reversal: boolean;
}
export interface OurRefund {
  refund_ref: string;
  status: string;
  amount: number;
  flagged: boolean;
  posted: number | null;
}
export interface OurReversal {
  refund_ref: string;
  status: string;
  amount: number;
}

export interface BooksComparison {
  compared: { payments: number; refunds: number; reversals: number };
  matched: number;
  /** Differences Tillpoint flagged itself (reconciliation, or a reversal under way). */
  flagged: number;
  /** Ours still waiting for the bank's answer. */
  open: number;
  mismatches: number;
  /** The first few mismatches, with why. */
  examples: { ref: string; why: string }[];
}

export function compareBooks(
  bank: BankBooks,
  ours: { payments: OurPayment[]; refunds: OurRefund[]; reversals: OurReversal[] },
): BooksComparison {
  const out: BooksComparison = {
    compared: { payments: ours.payments.length, refunds: ours.refunds.length, reversals: ours.reversals.length },
    matched: 0,
    flagged: 0,
    open: 0,
    mismatches: 0,
    examples: [],
  };
  const mismatch = (ref: string, why: string) => {
    out.mismatches++;
    if (out.examples.length < 10) out.examples.push({ ref, why });
  };
  const bankPayments = new Map(bank.payments.map((p) => [p.txn_ref, p]));
  const bankRefunds = new Map(bank.refunds.map((r) => [r.refund_ref, r]));
  const openStatuses = new Set(['created', 'pending']);

  for (const p of ours.payments) {
    const b = bankPayments.get(p.txn_ref);
    bankPayments.delete(p.txn_ref);
    const debited = b?.debited === true;
    if (debited && p.posted !== null) {
      if (p.posted === b!.amount_paise) out.matched++;
      else mismatch(p.id, `booked ${p.posted} paise, the bank debited ${b!.amount_paise}`);
    } else if (debited) {
      if (p.flagged || p.reversal) out.flagged++;
      else if (openStatuses.has(p.status)) out.open++;
      else mismatch(p.id, `the bank debited it; ours is ${p.status}, not booked, not flagged`);
    } else if (p.posted !== null) {
      if (p.flagged) out.flagged++;
      else mismatch(p.id, `booked as paid (${p.status}); the bank debited nothing`);
    } else out.matched++;
  }
  for (const [ref, b] of bankPayments) if (b.debited) mismatch(ref, 'the bank debited a payment we do not have');

  for (const r of ours.refunds) {
    const b = bankRefunds.get(r.refund_ref);
    bankRefunds.delete(r.refund_ref);
    if (b && r.posted !== null) {
      if (r.posted === b.amount_paise) out.matched++;
      else mismatch(r.refund_ref, `refund booked ${r.posted} paise, the bank paid ${b.amount_paise}`);
    } else if (b) {
      if (r.flagged) out.flagged++;
      else if (r.status === 'pending') out.open++;
      else mismatch(r.refund_ref, `the bank paid the refund; ours is ${r.status}, not booked, not flagged`);
    } else if (r.posted !== null) {
      if (r.flagged) out.flagged++;
      else mismatch(r.refund_ref, `refund booked (${r.status}); the bank paid nothing`);
    } else out.matched++;
  }
  for (const v of ours.reversals) {
    const b = bankRefunds.get(v.refund_ref);
    bankRefunds.delete(v.refund_ref);
    if (b && v.status === 'succeeded') {
      if (v.amount === b.amount_paise) out.matched++;
      else mismatch(v.refund_ref, `reversal of ${v.amount} paise, the bank paid ${b.amount_paise}`);
    } else if (b) {
      if (v.status === 'failed') mismatch(v.refund_ref, 'the bank paid the reversal; ours is failed');
      else out.open++;
    } else if (v.status === 'succeeded') mismatch(v.refund_ref, 'reversal succeeded; the bank paid nothing');
    else out.matched++;
  }
  for (const [ref] of bankRefunds) mismatch(ref, 'the bank paid a refund we never asked for');
  return out;
}

/** Our side, read from the database at the end of the run. */
export async function readOurBooks(db: pg.Client) {
  const payments = (
    await db.query(
      `SELECT p.id, p.txn_ref, p.status, p.amount::int AS amount, p.needs_reconciliation AS flagged,
              (SELECT sum(po.amount)::bigint FROM ledger.entries e JOIN ledger.postings po ON po.entry_id = e.id
                WHERE e.book = 'INR' AND e.kind = 'payment.succeeded' AND e.reference = p.id AND po.amount > 0) AS posted,
              EXISTS (SELECT 1 FROM settlement.reversals v WHERE v.payment_id = p.id AND v.status <> 'failed') AS reversal
         FROM payments.payments p`,
    )
  ).rows.map((r) => ({ ...r, posted: r.posted === null ? null : Number(r.posted) })) as OurPayment[];
  const refunds = (
    await db.query(
      `SELECT r.refund_ref, r.status, r.amount::int AS amount, r.needs_reconciliation AS flagged,
              (SELECT sum(po.amount)::bigint FROM ledger.entries e JOIN ledger.postings po ON po.entry_id = e.id
                WHERE e.book = 'INR' AND e.kind = 'refund.succeeded' AND e.reference = r.id AND po.amount > 0) AS posted
         FROM payments.refunds r`,
    )
  ).rows.map((r) => ({ ...r, posted: r.posted === null ? null : Number(r.posted) })) as OurRefund[];
  const reversals = (await db.query(`SELECT refund_ref, status, amount::int AS amount FROM settlement.reversals`))
    .rows as OurReversal[];
  return { payments, refunds, reversals };
}
