// Helpers for settlement's own tests (not a test file itself): payments and refunds as the
// payments module leaves them, and a scripted bank standing in for a bank's production API
// (its refund and refund-status calls, with the answers and failures the banks module's
// connectors report: BankCallError with not_sent / rejected / uncertain).
import assert from 'node:assert/strict';
import pino from 'pino';
import type { Queryable } from '../../platform/db.ts';
import { newId, txnRefFromPaymentId } from '../../platform/ids.ts';
import { BankCallError, type BankConnector, type BankResult, type RefundRequest } from '../banks/index.ts';

export const silentLogger = pino({ level: 'silent' });

export interface FixturePayment {
  id?: string;
  merchantId: string;
  bankCode?: string;
  amount: number;
  status: 'succeeded' | 'failed' | 'expired' | 'pending' | 'partially_refunded' | 'refunded';
  createdAt: Date;
  completedAt?: Date | null;
  flag?: 'success_after_close' | 'amount_mismatch' | 'deemed';
  /** For an amount mismatch: what the bank said it took (written as payments writes it, in the history). */
  reportedAmount?: number;
}

/** A payment row as the payments module writes it (with its ledger entry done by the caller, if any). */
export async function insertPayment(q: Queryable, p: FixturePayment): Promise<string> {
  const id = p.id ?? newId('payment');
  await q.query(
    `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status,
       bank_code, expires_at, needs_reconciliation, reconciliation_reason, created_at, updated_at, completed_at)
     VALUES ($1, $2, $3, 'sto_fixture', 'trm_fixture', 'upi_qr', $4, 'INR', $5, $6, $7, $8, $9, $7, $7, $10)`,
    [
      id,
      txnRefFromPaymentId(id),
      p.merchantId,
      p.amount,
      p.status,
      p.bankCode ?? 'SIMBANK',
      p.createdAt,
      p.flag !== undefined,
      p.flag ?? null,
      p.completedAt === undefined ? p.createdAt : p.completedAt,
    ],
  );
  if (p.reportedAmount !== undefined)
    await q.query(
      `INSERT INTO payments.payment_events (payment_id, from_status, to_status, source, response_code, detail, at)
       VALUES ($1, $2, $2, 'callback', '00', $3, $4)`,
      [id, p.status, `bank reported success for ${p.reportedAmount} paise; flagged for reconciliation`, p.createdAt],
    );
  return id;
}

export async function insertRefund(
  q: Queryable,
  r: { paymentId: string; amount: number; completedAt: Date; status?: 'succeeded' | 'pending' },
) {
  const id = newId('refund');
  await q.query(
    `INSERT INTO payments.refunds (id, payment_id, refund_ref, amount, status, created_at, completed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6)`,
    [id, r.paymentId, `TR${id.slice(4).toUpperCase()}`, r.amount, r.status ?? 'succeeded', r.completedAt],
  );
  await q.query(
    `UPDATE payments.payments SET refund_reserved = refund_reserved + $2, refunded_amount = refunded_amount + $2 WHERE id = $1`,
    [r.paymentId, r.amount],
  );
  return id;
}

export type RefundScript = 'success' | 'pending' | 'uncertain' | 'not_sent' | 'rejected' | 'decline';

/**
 * A bank's refund side, scripted per call: each refund call takes the next answer from `script`
 * (then 'success'). The bank is idempotent on refund_ref, as real ones are: a second call for a
 * reference it has taken returns the first answer and never pays twice. `latencyMs` lets two
 * workers' calls overlap.
 */
export function scriptedBank(opts: { script?: RefundScript[]; latencyMs?: number; code?: string } = {}) {
  const script = [...(opts.script ?? [])];
  const taken = new Map<string, BankResult & { req: RefundRequest }>();
  const calls: { kind: 'refund' | 'status'; ref: string }[] = [];
  /** Refunds the bank actually paid out, by reference. */
  const paid = new Map<string, number>();
  const wait = () => new Promise((r) => setTimeout(r, opts.latencyMs ?? 0));
  let statusAnswer: 'settle' | 'pending' | 'uncertain' = 'settle';
  const connector: BankConnector = {
    code: opts.code ?? 'SIMBANK',
    async registerIntent() {
      throw new Error('not used');
    },
    async sendCollect() {
      throw new Error('not used');
    },
    async checkStatus() {
      throw new Error('not used');
    },
    parseCallback() {
      throw new Error('not used');
    },
    async refund(req) {
      calls.push({ kind: 'refund', ref: req.refundRef });
      await wait();
      const first = taken.get(req.refundRef);
      if (first) return first;
      const step = script.shift() ?? 'success';
      if (step === 'not_sent') throw new BankCallError('not_sent', 'connection refused', {});
      if (step === 'rejected') throw new BankCallError('rejected', 'bank answered 400', {});
      const result: BankResult =
        step === 'decline'
          ? { outcome: 'failed', responseCode: 'U30', message: 'debit failed' }
          : step === 'pending'
            ? { outcome: 'pending', responseCode: '01' }
            : { outcome: 'success', responseCode: '00', bankRef: `RRN${req.refundRef.slice(-8)}` };
      taken.set(req.refundRef, { ...result, req });
      if (step !== 'decline') paid.set(req.refundRef, (paid.get(req.refundRef) ?? 0) + 1);
      // Uncertain: the bank took it (and pays), but its answer was lost.
      if (step === 'uncertain') throw new BankCallError('uncertain', 'bank answered 502 after committing', {});
      return result;
    },
    async checkRefundStatus(ref) {
      calls.push({ kind: 'status', ref });
      await wait();
      if (statusAnswer === 'uncertain') throw new BankCallError('uncertain', 'timeout', {});
      const t = taken.get(ref);
      if (!t) return { outcome: 'unknown', responseCode: 'U48', message: 'refund id not present' };
      if (statusAnswer === 'pending' || t.outcome === 'pending') {
        if (statusAnswer === 'settle') {
          const done: BankResult = { outcome: 'success', responseCode: '00', bankRef: `RRN${ref.slice(-8)}` };
          taken.set(ref, { ...done, req: t.req });
          return done;
        }
        return { outcome: 'pending', responseCode: '01' };
      }
      return { outcome: t.outcome, responseCode: t.responseCode, bankRef: t.bankRef };
    },
  };
  return {
    connector,
    calls,
    paid,
    refundCalls: (ref?: string) => calls.filter((c) => c.kind === 'refund' && (!ref || c.ref === ref)).length,
    setStatusAnswer(a: 'settle' | 'pending' | 'uncertain') {
      statusAnswer = a;
    },
    push(...steps: RefundScript[]) {
      script.push(...steps);
    },
  };
}

/** Empties settlement's tables and the ledger's (tests sharing one database, one test at a time). */
export async function emptySettlement(q: Queryable) {
  await q.query(
    `TRUNCATE settlement.reversal_events, settlement.compensation_retries, settlement.compensations, settlement.reversals, settlement.cycle_exceptions,
              settlement.cycle_banks, settlement.payouts, settlement.payout_batches, settlement.cycles,
              settlement.merchant_terms, ledger.postings, ledger.balance_shards, ledger.entries, ledger.accounts,
              payments.payment_events, payments.refunds, payments.payments`,
  );
}

/** The ledger entries payments posts for a success and a refund (payments.service.ts), for fixtures. */
export async function postPaymentEntries(
  ledger: { post: import('../ledger/index.ts').LedgerService['post'] },
  q: Queryable,
  p: { id: string; merchantId: string; bankCode?: string; amount: number },
  refund?: { id: string; amount: number },
) {
  const clearing = { code: `bank_clearing:${p.bankCode ?? 'SIMBANK'}`, type: 'asset' as const, shards: 32 };
  const payable = { code: `merchant_payable:${p.merchantId}`, type: 'liability' as const };
  await ledger.post(q, {
    kind: 'payment.succeeded',
    reference: p.id,
    lines: [
      { account: clearing, debit: p.amount },
      { account: payable, credit: p.amount },
    ],
  });
  if (refund)
    await ledger.post(q, {
      kind: 'refund.succeeded',
      reference: refund.id,
      lines: [
        { account: payable, debit: refund.amount },
        { account: clearing, credit: refund.amount },
      ],
    });
}

/** Both verifies: the ledger's invariants, and settlement's rows against the ledger. */
export async function verifyAll(db: import('../../platform/db.ts').Db) {
  const { runLedgerVerify, createLedgerService } = await import('../ledger/index.ts');
  const { runSettlementVerify } = await import('./settlement.verify.ts');
  const l = await runLedgerVerify(db);
  assert.equal(l.ok, true, JSON.stringify(l.violations));
  const s = await runSettlementVerify(db, createLedgerService());
  assert.equal(s.ok, true, JSON.stringify(s.violations));
}

export type CreditScript = 'success' | 'decline' | 'pending' | 'uncertain' | 'lost' | 'not_sent' | 'rejected';

/**
 * A bank's push-credit side, scripted per call (then 'success'), idempotent on the credit
 * reference as banks are: a second call for a reference it has taken returns the first answer and
 * never pays twice. 'uncertain': taken (and paid) but the answer lost; 'lost': never reached it but
 * the caller cannot tell (a timeout). `paid` counts what the bank paid per reference.
 */
export function scriptedCreditBank(
  opts: { script?: CreditScript[]; latencyMs?: number; refunds?: RefundScript[] } = {},
) {
  const bank = scriptedBank({ latencyMs: opts.latencyMs, script: opts.refunds });
  const script = [...(opts.script ?? [])];
  const taken = new Map<string, BankResult>();
  const paid = new Map<string, number>();
  const calls: { kind: 'credit' | 'status'; ref: string; vpa?: string }[] = [];
  const wait = () => new Promise((r) => setTimeout(r, opts.latencyMs ?? 0));
  const ok = (ref: string): BankResult => ({ outcome: 'success', responseCode: '00', bankRef: `CR${ref.slice(-8)}` });
  const connector: BankConnector = {
    ...bank.connector,
    // The payer look-up (a status query of the original payment): this bank names no payer.
    async checkStatus() {
      return { outcome: 'success', responseCode: '00' };
    },
    async pushCredit(req) {
      calls.push({ kind: 'credit', ref: req.creditRef, vpa: req.payeeVpa });
      await wait();
      const first = taken.get(req.creditRef);
      if (first) return first;
      const step = script.shift() ?? 'success';
      if (step === 'not_sent') throw new BankCallError('not_sent', 'connection refused', {});
      if (step === 'rejected') throw new BankCallError('rejected', 'bank answered 400', {});
      if (step === 'lost') throw new BankCallError('uncertain', 'timeout', { timeout: true });
      const result: BankResult =
        step === 'decline'
          ? { outcome: 'failed', responseCode: 'U31', message: 'credit failed' }
          : step === 'pending'
            ? { outcome: 'pending', responseCode: '01' }
            : ok(req.creditRef);
      taken.set(req.creditRef, result);
      if (step === 'success' || step === 'uncertain') paid.set(req.creditRef, (paid.get(req.creditRef) ?? 0) + 1);
      if (step === 'uncertain') throw new BankCallError('uncertain', 'bank answered 502 after committing', {});
      return result;
    },
    async checkPushCreditStatus(ref) {
      calls.push({ kind: 'status', ref });
      await wait();
      const t = taken.get(ref);
      if (!t) return { outcome: 'unknown', responseCode: 'U48', message: 'credit id not present' };
      if (t.outcome === 'pending') {
        // Settles on the first status query.
        taken.set(ref, ok(ref));
        paid.set(ref, (paid.get(ref) ?? 0) + 1);
        return { outcome: 'pending', responseCode: '01' };
      }
      return t;
    },
  };
  return {
    connector,
    calls,
    paid,
    creditCalls: (ref?: string) => calls.filter((c) => c.kind === 'credit' && (!ref || c.ref === ref)).length,
    push(...steps: CreditScript[]) {
      script.push(...steps);
    },
  };
}
