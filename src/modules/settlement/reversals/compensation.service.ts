import type { Logger } from 'pino';
import type { Db, Queryable } from '../../../platform/db.ts';
import type { Clock } from '../../../platform/clock.ts';
import type { AppError } from '../../../platform/errors.ts';
import type { AuditWriter } from '../../audit/index.ts';
import type { LedgerService } from '../../ledger/index.ts';
import { callBank, type BankConnector, type BankResult } from '../../banks/index.ts';
import * as repo from './compensation.repo.ts';
import type { CompensationRow, CreditStatus } from './compensation.repo.ts';
import { clearingAccount, compensationPayableAccount } from './reversals.service.ts';
import { compensationView } from './compensation.view.ts';

// Paying the RBI's compensation (RBI/2019-20/67: ₹100 per day a reversal is late), without a
// claim: each compensation row booked by runCompensation (expense -> compensation_payable) is one
// push credit to the customer's VPA (the banks' pushCredit), with its own reference (credit_ref).
// The bank is idempotent on that reference, and only a definitive answer closes a credit:
//
//   due --success--> paid                          compensation.sent + compensation.paid
//   due --pending, deemed or uncertain--> pending  compensation.sent (payable -> in transit)
//   pending --success--> paid                      compensation.paid (in transit -> bank_clearing)
//   pending --declined--> failed                   compensation.returned (in transit -> payable)
//   pending --"no such credit" (U48)--> due        compensation.returned; sent again, same reference
//   due --declined or rejected--> failed           nothing moved: still owed (payable), for an operator
//   due --not sent--> due                          sent again after retryAfterSeconds
//   failed --an operator's retry--> due            a new reference, maybe another VPA (compensationRetry.service.ts)
//
// A credit is never counted as paid on an uncertain answer, and never sent twice at once: rows are
// claimed with FOR UPDATE SKIP LOCKED and a lease, as reversals are.

export const compensationInTransitAccount = (bank: string) =>
  ({ code: `compensation_in_transit:${bank}`, type: 'liability' }) as const;

export interface CompensationCreditsConfig {
  checkAfterSeconds: number;
  retryAfterSeconds: number;
  claimSeconds: number;
  /** No VPA on file, or a connector without push credits: asked again this much later. */
  blockedRetrySeconds: number;
  batchSize: number;
}

export const DEFAULT_COMPENSATION_CREDITS_CONFIG: CompensationCreditsConfig = {
  checkAfterSeconds: 300,
  retryAfterSeconds: 60,
  claimSeconds: 60,
  blockedRetrySeconds: 3600,
  batchSize: 100,
};

export interface CompensationCreditsDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  banks: { connector(code: string): BankConnector };
  clock: Clock;
  logger: Logger;
  /** The customer's VPA from the payment's row (decrypted by the vault); undefined when none is on file. */
  payerVpa(row: repo.PayerVpaRow): Promise<string | undefined>;
  /** Opens another VPA an operator gave for a retry (compensationRetry.service.ts; the vault). */
  payeeVpa?(retryId: string, ciphertext: string): Promise<string>;
  audit?: AuditWriter;
  config?: Partial<CompensationCreditsConfig>;
}

const addSeconds = (d: Date, s: number) => new Date(d.getTime() + s * 1000);
const SYSTEM = { type: 'system', id: 'settlement', merchant_id: null } as const;

export function createCompensationCredits(deps: CompensationCreditsDeps) {
  const { db, ledger, banks, clock, logger } = deps;
  const cfg: CompensationCreditsConfig = { ...DEFAULT_COMPENSATION_CREDITS_CONFIG, ...deps.config };

  // Each send is its own entry (a credit the bank never received is sent again, same reference):
  // the send's number keeps (kind, reference) unique.
  const sendRef = (c: CompensationRow) => `${c.credit_ref}:${c.attempts}`;
  const postSent = (tx: Queryable, c: CompensationRow) =>
    ledger.post(tx, {
      kind: 'compensation.sent',
      reference: sendRef(c),
      memo: `compensation credit ${c.credit_ref} sent`,
      lines: [
        { account: compensationPayableAccount(c.bank_code), debit: c.amount },
        { account: compensationInTransitAccount(c.bank_code), credit: c.amount },
      ],
    });
  const postReturned = (tx: Queryable, c: CompensationRow) =>
    ledger.post(tx, {
      kind: 'compensation.returned',
      reference: sendRef(c),
      lines: [
        { account: compensationInTransitAccount(c.bank_code), debit: c.amount },
        { account: compensationPayableAccount(c.bank_code), credit: c.amount },
      ],
    });
  const postPaid = (tx: Queryable, c: CompensationRow) =>
    ledger.post(tx, {
      kind: 'compensation.paid',
      reference: c.credit_ref!,
      lines: [
        { account: compensationInTransitAccount(c.bank_code), debit: c.amount },
        { account: clearingAccount(c.bank_code), credit: c.amount },
      ],
    });
  const audit = (tx: Queryable, c: CompensationRow, action: string, details: Record<string, string | number | null>) =>
    deps.audit?.record(tx, {
      action,
      outcome: action.endsWith('paid') ? 'success' : 'failure',
      actor: SYSTEM,
      resource: { type: 'compensation', id: `${c.payment_id}:${c.day}` },
      details: { payment_id: c.payment_id, day: c.day, amount: c.amount, credit_ref: c.credit_ref, ...details },
    });

  /** Applies the bank's answer about a credit (its reply, or a status check) in one transaction. */
  async function apply(c: CompensationRow, from: CreditStatus, result: BankResult, via: string) {
    const now = clock.now();
    // A synthetic answer (an uncertain or rejected call) has no code of the bank's: none is recorded.
    const base = { bankRef: result.bankRef ?? null, responseCode: result.responseCode || null };
    // "No such transaction" in answer to the credit itself tells nothing: ask again later.
    const outcome = result.outcome === 'unknown' && from === 'due' ? 'deemed' : result.outcome;
    return db.tx(async (tx) => {
      switch (outcome) {
        case 'success': {
          const done = await repo.moveCredit(tx, c, from, { ...base, to: 'paid', nextAttemptAt: null, paidAt: now });
          if (!done) return undefined;
          if (from === 'due') await postSent(tx, c);
          await postPaid(tx, c);
          await audit(tx, done, 'settlement.compensation_paid', { via, bank_ref: done.bank_ref });
          logger.info({ payment_id: c.payment_id, day: c.day, credit_ref: c.credit_ref }, 'compensation paid');
          return done;
        }
        case 'failed':
        case 'expired':
        case 'reversed': {
          const done = await repo.moveCredit(tx, c, from, {
            ...base,
            to: 'failed',
            nextAttemptAt: null,
            lastError: result.message ?? `bank answered ${result.responseCode}`,
          });
          if (!done) return undefined;
          if (from === 'pending') await postReturned(tx, c);
          await audit(tx, done, 'settlement.compensation_failed', { via, response_code: result.responseCode || null });
          logger.warn({ payment_id: c.payment_id, day: c.day, code: result.responseCode }, 'compensation refused');
          return done;
        }
        case 'unknown': {
          // Asked about a credit the bank has never seen: the money did not leave. Sent again
          // with the same reference.
          const done = await repo.moveCredit(tx, c, 'pending', {
            ...base,
            to: 'due',
            nextAttemptAt: now,
            lastError: 'the bank does not know the credit; sending it again',
          });
          if (done) await postReturned(tx, c);
          return done;
        }
        default: {
          // pending or deemed: the bank has it; ask again later. In transit until it says.
          const done = await repo.moveCredit(tx, c, from, {
            ...base,
            to: 'pending',
            nextAttemptAt: addSeconds(now, cfg.checkAfterSeconds),
            lastError: result.outcome === 'pending' ? null : (result.message ?? `bank answered ${result.responseCode}`),
          });
          if (done && from === 'due') await postSent(tx, c);
          return done;
        }
      }
    });
  }

  return {
    compensationView,

    /** Sends the push credit for each compensation row due, oldest first. */
    async runCredits(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimCredits(tx, 'due', now, addSeconds(now, cfg.claimSeconds), cfg.batchSize),
      );
      for (const c of claimed) {
        try {
          const connector = banks.connector(c.bank_code);
          const p = await repo.payerVpaOf(db, c.payment_id);
          // An operator's retry may name another VPA (the payer's account is closed): that one.
          const retry = c.retry_id ? await repo.getRetry(db, c.retry_id) : undefined;
          const other =
            retry?.payee_vpa_ct && deps.payeeVpa ? await deps.payeeVpa(retry.id, retry.payee_vpa_ct) : undefined;
          if (retry?.payee_vpa_ct && !other) throw new Error('no vault here to open the VPA the retry names');
          let vpa = other ?? (p ? await deps.payerVpa(p) : undefined);
          let bankDown = false;
          if (p && !vpa) {
            // Payments keeps no payer for a payment it closed before the bank's success came
            // (a late success): the bank knows who paid. Asked, used for this call, not stored.
            const st = await callBank(() => connector.checkStatus(p.txn_ref));
            if (st.kind === 'ok' && st.value.outcome === 'success' && st.value.payerVpa) vpa = st.value.payerVpa;
            bankDown = st.kind !== 'ok';
          }
          if (!connector.pushCredit || !vpa) {
            // Nothing can be sent: stays owed (and counted unpaid), asked again later.
            const why = bankDown
              ? 'the bank did not answer the payer look-up'
              : !vpa
                ? 'no payer VPA on file for the payment, nor from the bank'
                : `bank ${c.bank_code} has no push credit call`;
            await repo.moveCredit(db, c, 'due', {
              to: 'due',
              nextAttemptAt: addSeconds(clock.now(), bankDown ? cfg.retryAfterSeconds : cfg.blockedRetrySeconds),
              lastError: why,
            });
            logger.warn({ payment_id: c.payment_id, day: c.day }, `compensation not sent: ${why}`);
            continue;
          }
          const call = await callBank(() =>
            connector.pushCredit!({
              creditRef: c.credit_ref!,
              payeeVpa: vpa,
              amountPaise: c.amount,
              note: `Compensation RBI/2019-20/67, day ${c.day} of delay`,
              relatedTxnRef: p!.txn_ref,
            }),
          );
          if (call.kind === 'ok') await apply(c, 'due', call.value, 'credit call');
          else if (call.kind === 'uncertain')
            // The bank may have paid: in transit, never counted as paid, asked by a status check.
            await apply(c, 'due', { outcome: 'deemed', responseCode: '', message: call.error.message }, 'credit call');
          else if (call.kind === 'not_sent') {
            await repo.moveCredit(db, c, 'due', {
              to: 'due',
              nextAttemptAt: addSeconds(clock.now(), cfg.retryAfterSeconds),
              lastError: call.error.message,
            });
          } else
            await apply(
              c,
              'due',
              { outcome: 'failed', responseCode: '', message: call.error.message },
              'credit call rejected',
            );
        } catch (e) {
          logger.warn(
            { payment_id: c.payment_id, day: c.day, code: (e as AppError).code },
            'compensation credit not applied; will retry',
          );
        }
      }
      return claimed.length;
    },

    /** Status checks for credits in transit (pending, or answered uncertainly). */
    async runCreditChecks(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimCredits(tx, 'pending', now, addSeconds(now, cfg.checkAfterSeconds), cfg.batchSize),
      );
      for (const c of claimed) {
        const connector = banks.connector(c.bank_code);
        if (!connector.checkPushCreditStatus) continue;
        const call = await callBank(() => connector.checkPushCreditStatus!(c.credit_ref!));
        try {
          if (call.kind === 'ok') await apply(c, 'pending', call.value, 'status check');
          else logger.warn({ payment_id: c.payment_id, day: c.day, delivery: call.kind }, 'credit status unanswered');
        } catch (e) {
          logger.warn({ payment_id: c.payment_id, code: (e as AppError).code }, 'credit check not applied; will retry');
        }
      }
      return claimed.length;
    },

    async list(f: { paymentId?: string; status?: CreditStatus; limit: number }) {
      return (await repo.listCompensations(db, f)).map(compensationView);
    },
  };
}

export type CompensationCredits = ReturnType<typeof createCompensationCredits>;
