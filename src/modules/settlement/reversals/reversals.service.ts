import type { Logger } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import type { Db, Queryable } from '../../../platform/db.ts';
import type { Clock } from '../../../platform/clock.ts';
import { AppError } from '../../../platform/errors.ts';
import { isId } from '../../../platform/ids.ts';
import { isValidPaise } from '../../../platform/money.ts';
import { page } from '../../../http/pagination.ts';
import type { LedgerService } from '../../ledger/index.ts';
import { callBank, type BankConnector, type BankResult } from '../../banks/index.ts';
import { newSettlementId } from '../ids.ts';
import { RBI_UPI_MERCHANT, deadlineAt, delayDate, delayDays, transactionDate, type RbiClock } from './deadline.ts';
import * as repo from './reversals.repo.ts';
import { listCompensations } from './compensation.repo.ts';
import { compensationView } from './compensation.view.ts';
import type { ReversalReason, ReversalRow } from './reversals.repo.ts';

/**
 * The port other parts call to have a customer paid back (recon/ resolves an exception with
 * "reverse"; the scheduler below turns today's flagged payments into requests). Idempotent on
 * (paymentId, reason, sourceRef); at most one active reversal per payment, never more than the
 * customer was debited. Runs in the caller's transaction: the request commits with the caller's
 * own change, or not at all.
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

export const REVERSAL_REASONS: readonly ReversalReason[] = [
  'late_success',
  'amount_mismatch',
  'duplicate_debit',
  'operator',
];

/** Rows each bank's clearing account is kept in: the same spec as payments posts with (a hot account). */
const CLEARING_SHARDS = 32;
export const clearingAccount = (bank: string) =>
  ({ code: `bank_clearing:${bank}`, type: 'asset', shards: CLEARING_SHARDS }) as const;
export const reversalPayableAccount = (bank: string) =>
  ({ code: `reversal_payable:${bank}`, type: 'liability' }) as const;
export const merchantPayableAccount = (merchantId: string) =>
  ({ code: `merchant_payable:${merchantId}`, type: 'liability' }) as const;
export const COMPENSATION_EXPENSE = { code: 'reversal_compensation', type: 'expense' } as const;
/** Compensation owed to that bank's customers, booked and not yet paid (compensation.service.ts pays it). */
export const compensationPayableAccount = (bank: string) =>
  ({ code: `compensation_payable:${bank}`, type: 'liability' }) as const;

const PAID = new Set(['succeeded', 'partially_refunded', 'refunded']);
const CLOSED_UNPAID = new Set(['failed', 'expired']);
const IN_FLIGHT = new Set(['created', 'pending']);
/** 1-200 characters, none of them a control character (a sourceRef ends up in logs and screens). */
const validSourceRef = (s: unknown): s is string =>
  typeof s === 'string' &&
  s.length >= 1 &&
  s.length <= 200 &&
  [...s].every((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f);

export interface ReversalsConfig {
  rbi: RbiClock;
  /** After an uncertain answer or a pending one: when to ask the bank again. */
  checkAfterSeconds: number;
  /** A refund call never sent (connection refused): when to send it again. */
  retryAfterSeconds: number;
  /** How long a claim keeps a reversal from other workers while its bank call runs. */
  claimSeconds: number;
  batchSize: number;
}

export const DEFAULT_REVERSALS_CONFIG: ReversalsConfig = {
  rbi: RBI_UPI_MERCHANT,
  checkAfterSeconds: 300,
  retryAfterSeconds: 60,
  claimSeconds: 60,
  batchSize: 100,
};

export interface ReversalsDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  banks: { connector(code: string): BankConnector };
  clock: Clock;
  logger: Logger;
  /** Where the bank's refund callback goes (the banks' callback route). */
  callbackUrl(bankCode: string): string;
  config?: Partial<ReversalsConfig>;
}

const addSeconds = (d: Date, s: number) => new Date(d.getTime() + s * 1000);

export function reversalView(r: ReversalRow, now?: Date) {
  return {
    id: r.id,
    payment_id: r.payment_id,
    merchant_id: r.merchant_id,
    bank_code: r.bank_code,
    reason: r.reason,
    source_ref: r.source_ref,
    amount: r.amount,
    debited_amount: r.debited_amount,
    charge_merchant: r.charge_merchant,
    status: r.status,
    transaction_date: r.txn_date,
    deadline_at: r.deadline_at.toISOString(),
    overdue: r.status !== 'succeeded' && (now ?? new Date()).getTime() >= r.deadline_at.getTime(),
    attempts: r.attempts,
    status_checks: r.status_checks,
    bank: { ref: r.bank_ref, response_code: r.response_code },
    compensation_days: r.compensation_days,
    created_at: r.created_at.toISOString(),
    completed_at: r.completed_at ? r.completed_at.toISOString() : null,
  };
}
export type ReversalView = ReturnType<typeof reversalView>;

export function createReversalsService(deps: ReversalsDeps) {
  const { db, ledger, banks, clock, logger } = deps;
  const cfg: ReversalsConfig = { ...DEFAULT_REVERSALS_CONFIG, ...deps.config };

  /** The money the customer is owed back: booked when the reversal is requested. */
  const postOwed = (tx: Queryable, r: ReversalRow) =>
    ledger.post(tx, {
      kind: 'reversal.owed',
      reference: r.id,
      lines: [
        // Money we never credited the merchant (it reached our account at the bank); or, for an
        // operator reversing a paid payment, money the merchant was credited with.
        r.charge_merchant
          ? { account: merchantPayableAccount(r.merchant_id), debit: r.amount }
          : { account: clearingAccount(r.bank_code), debit: r.amount },
        { account: reversalPayableAccount(r.bank_code), credit: r.amount },
      ],
    });

  const postReversed = (tx: Queryable, r: ReversalRow) =>
    ledger.post(tx, {
      kind: 'reversal.succeeded',
      reference: r.id,
      lines: [
        { account: reversalPayableAccount(r.bank_code), debit: r.amount },
        { account: clearingAccount(r.bank_code), credit: r.amount },
      ],
    });

  const postReleased = (tx: Queryable, r: ReversalRow) =>
    ledger.post(tx, {
      kind: 'reversal.released',
      reference: r.id,
      lines: [
        { account: reversalPayableAccount(r.bank_code), debit: r.amount },
        r.charge_merchant
          ? { account: merchantPayableAccount(r.merchant_id), credit: r.amount }
          : { account: clearingAccount(r.bank_code), credit: r.amount },
      ],
    });

  const requests: ReversalRequests = {
    async request(tx, input) {
      if (!isId('payment', input.paymentId)) throw new AppError('payment_not_found', 'Payment not found');
      if (!isValidPaise(input.amountPaise))
        throw new AppError('invalid_amount', 'amountPaise must be a positive integer number of paise');
      if (!REVERSAL_REASONS.includes(input.reason))
        throw new AppError('validation_failed', `reason must be one of ${REVERSAL_REASONS.join(', ')}`);
      if (!validSourceRef(input.sourceRef))
        throw new AppError('validation_failed', 'sourceRef must be 1-200 printable characters');
      const same = await repo.findByRequest(tx, input.paymentId, input.reason, input.sourceRef);
      if (same) return sameRequest(same, input.amountPaise);
      const p = await repo.paymentForReversal(tx, input.paymentId);
      if (!p) throw new AppError('payment_not_found', 'Payment not found');
      // The payment's state must fit the reason: a late success is for a payment we closed unpaid;
      // an operator reverses only what is no longer in flight. A mismatch stays open while flagged,
      // and a duplicate debit can come on top of any state (recon has the bank's line for it).
      if (input.reason === 'late_success' && !CLOSED_UNPAID.has(p.status))
        throw new AppError('payment_not_refundable', `A ${p.status} payment is not a late success to reverse`);
      if (input.reason === 'amount_mismatch' && PAID.has(p.status))
        throw new AppError('payment_not_refundable', `A ${p.status} payment is refunded, not reversed`);
      if (input.reason === 'operator' && IN_FLIGHT.has(p.status))
        throw new AppError('payment_not_refundable', `A ${p.status} payment is still in flight`);
      const chargeMerchant = input.reason === 'operator' && PAID.has(p.status);
      // What the customer was debited: the bank's own figure when it reported another amount;
      // for a paid payment an operator reverses, what the merchant still holds of it.
      const debited = chargeMerchant
        ? p.amount - p.refund_reserved
        : input.reason === 'amount_mismatch' && p.reported_amount
          ? p.reported_amount
          : p.amount;
      if (input.amountPaise > debited) {
        throw new AppError('refund_exceeds_payment', `At most ${debited} paise can be reversed for this payment`, {
          reversible_amount: debited,
        });
      }
      const now = clock.now();
      const txnDate = transactionDate(p.created_at);
      const id = newSettlementId('reversal');
      const row = await repo.insertReversal(tx, {
        id,
        payment_id: p.id,
        merchant_id: p.merchant_id,
        bank_code: p.bank_code,
        original_txn_ref: p.txn_ref,
        reason: input.reason,
        source_ref: input.sourceRef,
        amount: input.amountPaise,
        debited_amount: debited,
        charge_merchant: chargeMerchant,
        refund_ref: `RV${id.slice(4).toUpperCase()}`,
        txn_date: txnDate,
        deadline_at: deadlineAt(txnDate, cfg.rbi),
        now,
      });
      if (row) {
        await postOwed(tx, row);
        logger.info({ reversal_id: row.id, payment_id: p.id, reason: row.reason }, 'reversal scheduled');
        return { reversalId: row.id, created: true };
      }
      // Not inserted: the same request committed meanwhile, or the payment already has an active
      // reversal (one per payment): the caller gets that one.
      const existing =
        (await repo.findByRequest(tx, input.paymentId, input.reason, input.sourceRef)) ??
        (await repo.findActive(tx, input.paymentId));
      if (!existing) throw new AppError('conflict', 'The reversal could not be recorded; send the request again');
      return existing.reason === input.reason && existing.source_ref === input.sourceRef
        ? sameRequest(existing, input.amountPaise)
        : { reversalId: existing.id, created: false };
    },
  };

  function sameRequest(r: ReversalRow, amount: number) {
    if (r.amount !== amount)
      throw new AppError('idempotency_key_reused', 'This reversal was requested before for another amount', {
        reversal_id: r.id,
      });
    return { reversalId: r.id, created: false };
  }

  /**
   * The bank refused the reversal: no money moved. What was booked as owed is released (as payments
   * releases a refused refund's reservation), in the same transaction; the reversal stays `failed`,
   * counted as overdue past its deadline, until an operator decides (a new request books it again).
   */
  function fail(r: ReversalRow, from: ReversalRow['status'], u: repo.ReversalUpdate) {
    return db.tx(async (tx) => {
      const done = await repo.transition(tx, r.id, from, u);
      if (done) await postReleased(tx, done);
      return done;
    });
  }

  /** Applies the bank's answer about a reversal's refund call (its reply, a status check, a callback). */
  async function applyResult(r: ReversalRow, result: BankResult, via: string): Promise<ReversalRow | undefined> {
    const now = clock.now();
    const base = { bankRef: result.bankRef ?? null, responseCode: result.responseCode, now };
    switch (result.outcome) {
      case 'success':
        return db.tx(async (tx) => {
          const done = await repo.transition(tx, r.id, r.status, {
            ...base,
            to: 'succeeded',
            nextAttemptAt: null,
            completedAt: now,
            detail: `reversed by the bank (${via})`,
          });
          if (done) await postReversed(tx, done);
          return done;
        });
      case 'failed':
      case 'expired':
      case 'reversed':
        logger.warn({ reversal_id: r.id, code: result.responseCode }, 'reversal refused by the bank');
        return fail(r, r.status, {
          ...base,
          to: 'failed',
          nextAttemptAt: null,
          lastError: result.message ?? `bank answered ${result.responseCode}`,
          detail: `bank refused the reversal (${via})`,
        });
      case 'unknown':
        if (r.status === 'pending') {
          // Asked about a refund the bank has never seen: our call did not reach it. Sending it
          // again with the same refund reference is safe (the bank is idempotent on it).
          return repo.transition(db, r.id, 'pending', {
            ...base,
            to: 'scheduled',
            nextAttemptAt: now,
            detail: `bank does not know the reversal (${via}); sending it again`,
          });
        }
        return fail(r, r.status, {
          ...base,
          to: 'failed',
          nextAttemptAt: null,
          lastError: result.message ?? 'original transaction not present at the bank',
          detail: `bank does not know the original transaction (${via})`,
        });
      default:
        // pending or deemed: the bank has it; ask again.
        return repo.transition(db, r.id, r.status, {
          ...base,
          to: 'pending',
          nextAttemptAt: addSeconds(now, cfg.checkAfterSeconds),
          detail: `bank answered ${result.outcome} (${via}); status check scheduled`,
        });
    }
  }

  const service = {
    requests,
    reversalView,

    /**
     * Sends the refund-type call for reversals due, earliest deadline first. Each is claimed with
     * FOR UPDATE SKIP LOCKED and a lease, so two workers never send the same one; the bank is
     * idempotent on the refund reference besides. Only a definitive answer closes anything: an
     * uncertain one leaves the reversal pending for a status check.
     */
    async runReversals(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimDue(tx, 'scheduled', now, addSeconds(now, cfg.claimSeconds), cfg.batchSize),
      );
      for (const r of claimed) {
        const call = await callBank(() =>
          banks.connector(r.bank_code).refund({
            refundRef: r.refund_ref,
            originalTxnRef: r.original_txn_ref,
            amountPaise: r.amount,
            note: `reversal ${r.reason.replaceAll('_', ' ')}`,
            callbackUrl: deps.callbackUrl(r.bank_code),
          }),
        );
        try {
          if (call.kind === 'ok') await applyResult(r, call.value, 'refund call');
          else if (call.kind === 'uncertain')
            await repo.transition(db, r.id, 'scheduled', {
              to: 'pending',
              nextAttemptAt: addSeconds(clock.now(), cfg.checkAfterSeconds),
              lastError: call.error.message,
              detail: 'bank answer uncertain; status check scheduled',
              now: clock.now(),
            });
          else if (call.kind === 'not_sent')
            // Never reached the bank: nothing happened there; send it again soon.
            await repo.transition(db, r.id, 'scheduled', {
              to: 'scheduled',
              nextAttemptAt: addSeconds(clock.now(), cfg.retryAfterSeconds),
              lastError: call.error.message,
              detail: 'refund call not sent; retry scheduled',
              now: clock.now(),
            });
          else
            await fail(r, 'scheduled', {
              to: 'failed',
              nextAttemptAt: null,
              lastError: call.error.message,
              detail: 'bank rejected the refund call',
              now: clock.now(),
            });
        } catch (e) {
          logger.warn({ reversal_id: r.id, code: (e as AppError).code }, 'reversal answer not applied; will retry');
        }
      }
      return claimed.length;
    },

    /** Status checks for reversals the bank has not settled (pending, or answered uncertainly). */
    async runReversalChecks(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimDue(tx, 'pending', now, addSeconds(now, cfg.checkAfterSeconds), cfg.batchSize),
      );
      for (const r of claimed) {
        const call = await callBank(() => banks.connector(r.bank_code).checkRefundStatus(r.refund_ref));
        try {
          if (call.kind === 'ok') await applyResult(r, call.value, 'status check');
          else logger.warn({ reversal_id: r.id, delivery: call.kind }, 'reversal status check unanswered; asked again');
        } catch (e) {
          logger.warn({ reversal_id: r.id, code: (e as AppError).code }, 'reversal check not applied; will retry');
        }
      }
      return claimed.length;
    },

    /** A bank's verified refund callback for one of our reversal references. undefined: not ours. */
    async handleRefundCallback(refundRef: string, result: BankResult) {
      const r = await repo.getByRefundRef(db, refundRef);
      if (!r) return undefined;
      if (r.status === 'succeeded' || r.status === 'failed') return r;
      return (await applyResult(r, result, 'callback')) ?? r;
    },

    /** Today's flagged payments (late success, amount mismatch) get their reversal requested. */
    async scheduleFlagged(): Promise<number> {
      const flagged = await repo.flaggedWithoutReversal(db, cfg.batchSize);
      let n = 0;
      for (const f of flagged) {
        try {
          const created = await db.tx(async (tx) => {
            const p = await repo.paymentForReversal(tx, f.id);
            if (!p) return false;
            const mismatch = f.reason === 'amount_mismatch';
            const amount = mismatch && p.reported_amount ? p.reported_amount : p.amount;
            const res = await requests.request(tx, {
              paymentId: f.id,
              amountPaise: amount,
              reason: mismatch ? 'amount_mismatch' : 'late_success',
              sourceRef: `flag:${f.reason}`,
            });
            return res.created;
          });
          if (created) n++;
        } catch (e) {
          logger.warn({ payment_id: f.id, code: (e as AppError).code }, 'could not schedule a reversal; will retry');
        }
      }
      return n;
    },

    /**
     * Past the deadline, ₹100 (RbiClock.compensationPaisePerDay) per day of delay: one ledger entry
     * per day, posted as the day begins: an expense owed to the customer (compensation_payable),
     * paid by a push credit to their VPA (compensation.service.ts), without a claim. Stops accruing
     * the day it is reversed.
     */
    async runCompensation(): Promise<number> {
      const now = clock.now();
      const owing = await repo.owingCompensation(db, now, cfg.rbi.tatDays, cfg.batchSize);
      let posted = 0;
      for (const candidate of owing) {
        posted += await db.tx(async (tx) => {
          const r = await repo.lockForCompensation(tx, candidate.id);
          if (!r) return 0; // never deleted: defensive
          // Another worker that booked days for it meanwhile has moved compensation_days: only
          // the days still missing are booked (and a day's row is unique besides).
          const due = delayDays(r.txn_date, r.completed_at && r.completed_at < now ? r.completed_at : now, cfg.rbi);
          let n = 0;
          for (let day = r.compensation_days + 1; day <= due; day++) {
            const amount = cfg.rbi.compensationPaisePerDay;
            const fresh = await repo.insertCompensation(tx, {
              paymentId: r.payment_id,
              reversalId: r.id,
              day,
              bankCode: r.bank_code,
              amount,
              forDate: delayDate(r.txn_date, day, cfg.rbi),
              creditRef: `CP${uuidv7().replaceAll('-', '').toUpperCase()}`,
              now,
            });
            if (!fresh) continue;
            await ledger.post(tx, {
              kind: 'reversal.compensation',
              reference: `${r.payment_id}:${day}`,
              memo: `RBI/2019-20/67: day ${day} of delay`,
              lines: [
                { account: COMPENSATION_EXPENSE, debit: amount },
                { account: compensationPayableAccount(r.bank_code), credit: amount },
              ],
            });
            n++;
          }
          if (due > r.compensation_days) await repo.setCompensationDays(tx, r.id, due);
          return n;
        });
      }
      return posted;
    },

    async get(id: string) {
      const r = await repo.getReversal(db, id);
      if (!r) throw new AppError('not_found', 'Reversal not found');
      return {
        ...reversalView(r, clock.now()),
        events: (await repo.reversalEvents(db, id)).map(eventView),
        // The payment's compensation days (at most one per day of delay) and their credits.
        compensations: (await listCompensations(db, { paymentId: r.payment_id, limit: 400 })).map(compensationView),
      };
    },

    async list(f: Omit<repo.ReversalFilter, 'now'>) {
      const now = clock.now();
      const rows = await repo.listReversals(db, { ...f, now });
      const pg = page(rows, f.limit);
      return { data: pg.data.map((r) => reversalView(r, now)), next_cursor: pg.next_cursor };
    },
  };
  return service;
}

const eventView = (e: Awaited<ReturnType<typeof repo.reversalEvents>>[number]) => ({
  from_status: e.from_status,
  to_status: e.to_status,
  response_code: e.response_code,
  detail: e.detail,
  at: e.at.toISOString(),
});

export type ReversalsService = ReturnType<typeof createReversalsService>;
