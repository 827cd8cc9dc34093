import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { paymentIdFromTxnRef } from '../../platform/ids.ts';
import type { BankResult, ReplayGuard } from '../banks/index.ts';
import { newJournalId, postEntriesSql, postEntrySql } from '../ledger/index.ts';
import { createBatcher } from '../../platform/batcher.ts';
import { currentTraceparent } from '../../platform/tracing.ts';
import { rememberNonce } from '../../platform/signing.ts';
import { canTransition, type PaymentStatus } from './payments.state.ts';
import {
  decide,
  decideRefund,
  refundedPaymentStatus,
  type DecideContext,
  type PaymentAction,
  type PaymentFacts,
  type Source,
} from './payments.decide.ts';
import * as repo from './payments.repo.ts';
import type { PaymentRow, RefundRow } from './payments.repo.ts';
import { sealPayerVpa, withPayerVpa } from './payments.fields.ts';
import { paymentsMetrics, recordCompletion } from './payments.metrics.ts';
import type { PaymentsDeps } from './payments.types.ts';

// Carrying out decisions: what payments.decide.ts decided, written. Every status change goes
// through transition() (the table in payments.state.ts, then one compare-and-set statement);
// the hooks and the ledger entry follow in the same transaction.

/** Rows each bank's clearing account is kept in; above the database pool sizes of a few replicas. */
const CLEARING_SHARDS = 32;

/** The payment's ledger entry (postPaymentLedger's, below) as SQL over a payment's row `row` (its codes and amount are columns there). */
const paymentEntrySql = (row: string) =>
  ({
    kind: 'payment.succeeded',
    reference: `${row}.id`,
    amount: `${row}.amount`,
    debit: { prefix: 'bank_clearing:', key: `${row}.bank_code`, type: 'asset', shards: CLEARING_SHARDS },
    credit: { prefix: 'merchant_payable:', key: `${row}.merchant_id`, type: 'liability' },
  }) as const;

/** The entry for the completion in one statement, over its row (with its journal id). */
export const paymentLedgerSql = (row: string, param: (value: unknown) => string) =>
  postEntrySql({ ...paymentEntrySql(row), id: `${row}.journal_id` }, param);

/** The entries for a group of completions, over the rows of `from` (each with its journal id). */
export const paymentsLedgerSql = (from: string, param: (value: unknown) => string) =>
  postEntriesSql({ ...paymentEntrySql(from), id: `${from}.journal_id` }, from, param);

/** A callback's nonce was found used inside its transaction: rolled back, then refused as a replay. */
class Replayed extends Error {}

/** Which payment a bank's answer is about: our id, or the txnRef a bank's callback names (at that bank). */
export type PaymentTarget = string | { txnRef: string; bankCode: string };

export function createPaymentEffects(deps: PaymentsDeps) {
  const { db, ledger, metrics, clock, logger } = deps;
  const hooks = deps.hooks ?? [];
  const cfg = deps.config.payments;
  const pm = paymentsMetrics(metrics.registry);

  /**
   * Posts the money movement for a successful payment: the acquirer owes us, we owe the merchant.
   * Every payment at a bank debits its clearing account, so that account is a hot one, kept in
   * CLEARING_SHARDS rows (ledger: AccountSpec.shards): completions do not queue for one row lock.
   */
  const postPaymentLedger = (tx: Queryable, p: PaymentRow) =>
    ledger.post(tx, {
      kind: 'payment.succeeded',
      reference: p.id,
      lines: [
        { account: { code: `bank_clearing:${p.bank_code}`, type: 'asset', shards: CLEARING_SHARDS }, debit: p.amount },
        { account: { code: `merchant_payable:${p.merchant_id}`, type: 'liability' }, credit: p.amount },
      ],
    });

  /**
   * Group commit of the one-statement completions: bank answers that arrive while one is being
   * written wait for the next statement and are written together, in one statement and one commit
   * (platform/batcher.ts; repo.completeSucceededMany takes the ledger locks of all of them in one
   * global order). A lone answer is written at once, as before. Each caller's answer (and the
   * bank's HTTP response) still follows its own commit; a statement that fails is retried member
   * by member, so a replay or a payment with a rewards earn never sinks the others. The same
   * payment twice in one batch (a callback and a status check together) is also written member by
   * member.
   */
  const successes = createBatcher(async (members: readonly repo.SuccessCompletion[]) => {
    const hooksSql = successHooksSql();
    if (!hooksSql) throw new Error('a hook without its SQL part was added after the completion was queued');
    if (members.length === 1)
      return [await repo.completeSucceeded(db, { ...members[0], ...hooksSql, ledgerSql: paymentLedgerSql })];
    return repo.completeSucceededMany(db, members, { ...hooksSql, ledgerSql: paymentsLedgerSql });
  });

  /**
   * What this process knows of each payment it created and has not seen completed (its merchant,
   * store, created_at, amount and payer: repo.PaymentHint): a hint, never trusted. A success whose
   * hooks are known to have work the one statement cannot do goes the long way at once
   * (succeededNeedsLongWay); otherwise the hint goes with the completion to the hooks' set parts
   * (rewards computes the earn from it, and its SQL checks it against the row). A callback that
   * lands on another replica (or after a restart) has no hint and simply tries the one statement.
   * The payer's VPA is kept in memory only, as the row handed to hooks has it.
   */
  const hints = new Map<string, repo.PaymentHint>();
  const MAX_HINTS = 100_000;
  const rememberPayment = (paymentId: string, hint: repo.PaymentHint) => {
    if (hints.size >= MAX_HINTS) hints.clear();
    hints.set(paymentId, hint);
  };

  /**
   * The hooks' parts of a success completed in one statement, when every hook that acts on a
   * success says in SQL whether it has work (PaymentHooks.succeededSql); undefined otherwise, and
   * every success takes the long way. Read on every call, not once: the hooks array may be filled
   * after the service is made (app.ts, testkits).
   */
  const successHooksSql = () =>
    hooks.every((h) => !h.onSucceeded || h.succeededSql || h.succeededSetSql)
      ? {
          hooks: hooks.flatMap((h) => (h.succeededSql ? [h.succeededSql.bind(h)] : [])),
          setHooks: hooks.flatMap((h) => (h.succeededSetSql ? [h.succeededSetSql.bind(h)] : [])),
        }
      : undefined;

  const postRefundLedger = (tx: Queryable, p: PaymentRow, r: RefundRow) =>
    ledger.post(tx, {
      kind: 'refund.succeeded',
      reference: r.id,
      lines: [
        { account: { code: `merchant_payable:${p.merchant_id}`, type: 'liability' }, debit: r.amount },
        { account: { code: `bank_clearing:${p.bank_code}`, type: 'asset', shards: CLEARING_SHARDS }, credit: r.amount },
      ],
    });

  /**
   * Moves a payment from its status to `to` inside `tx`: compare-and-set on status, history row,
   * ledger entry when money arrived, outbox event for the terminal. Returns undefined when the
   * payment was no longer in that status (someone else moved it first), or, with `only`, was not
   * that txnRef at that bank for that amount.
   */
  async function transition(
    tx: Queryable,
    p: Pick<PaymentRow, 'id' | 'status'>,
    to: PaymentStatus,
    u: repo.PaymentUpdate,
    source: Source,
    detail?: string,
    only?: { txnRef: string; bankCode: string; amount?: number },
  ) {
    if (!canTransition(p.status, to))
      throw new AppError('invalid_state_transition', `A ${p.status} payment cannot become ${to}`);
    // Status, history row and outbox event in one statement; the ledger entry (which locks the
    // bank's clearing account, shared by every payment at that bank) comes last, so that lock
    // is held for as few round trips as possible before the commit.
    const next = await repo.transitionStatus(tx, {
      id: p.id,
      from: p.status,
      to,
      u,
      now: clock.now(),
      source,
      detail,
      only,
    });
    return next && afterTransition(tx, next);
  }

  /** What follows a state change in its transaction: the hooks, and the ledger entry when money arrived. */
  async function afterTransition(tx: Queryable, next: PaymentRow) {
    const to = next.status;
    // The hooks see the payer's VPA in clear (rewards keys customers by it): decrypted for them only.
    if (hooks.length > 0 && (to === 'succeeded' || to === 'failed' || to === 'expired'))
      await withPayerVpa(deps.payerVpa, next, tx);
    if (to === 'succeeded') {
      for (const h of hooks) await h.onSucceeded?.(tx, next);
      await postPaymentLedger(tx, next);
    }
    if (to === 'failed' || to === 'expired') for (const h of hooks) await h.onClosedUnpaid?.(tx, next);
    // No hooks on the way to pending: create() makes that move outside a transaction.
    return next;
  }

  /** What a bank's final answer writes on the payment, whatever the answer. */
  const completion = (result: BankResult, now: Date) => ({
    completed_at: now,
    response_code: result.responseCode,
    bank_ref: result.bankRef ?? null,
    next_check_at: null,
  });

  /** The VPA a bank reported for the payer, encrypted for this payment's row (inside its transaction). */
  const sealedPayer = async (tx: Queryable, paymentId: string, result: BankResult) =>
    result.payerVpa ? sealPayerVpa(deps.payerVpa, paymentId, result.payerVpa, tx) : {};

  /** Counts a payment that reached a final status (its hint is no longer needed). */
  function count(p: PaymentRow) {
    hints.delete(p.id);
    metrics.payments.inc({ method: p.method, status: p.status });
    recordCompletion(pm, p);
  }

  /**
   * The common callback, "paid", by txnRef: one compare-and-set by txnRef, bank and amount
   * instead of locking the row, reading it and then moving it. It asks decide() what it would do
   * with the payment it hopes for (pending, of the amount the bank reports) and takes the short
   * way only for a plain move to succeeded; the compare-and-set holds only for such a payment
   * (payments.decide.test.ts: for a pending payment of that amount, nothing else decide() reads
   * changes its answer). undefined when anything is unusual (another state, another amount, not
   * ours): the caller then takes the long way, in the same transaction.
   */
  async function succeedPendingByRef(
    tx: Queryable,
    target: { txnRef: string; bankCode: string },
    result: BankResult,
    ctx: DecideContext,
  ) {
    const id = paymentIdFromTxnRef(target.txnRef);
    if (!id || result.outcome !== 'success') return undefined;
    // The amount only matters when the bank reports one; then the compare-and-set requires it.
    const hoped: PaymentFacts = { status: 'pending', amount: result.amountPaise ?? 0, status_checks: 0 };
    const a = decide(hoped, result, ctx);
    if (a.kind !== 'move' || a.to !== 'succeeded' || a.via !== undefined || a.responseCode !== undefined)
      return undefined;
    const now = clock.now();
    const u = { ...completion(result, now), ...(a.payer ? await sealedPayer(tx, id, result) : {}) };
    return transition(tx, { id, status: 'pending' }, a.to, u, ctx.source, a.detail, {
      ...target,
      amount: result.amountPaise,
    });
  }

  /**
   * The common success, completed in ONE statement (repo.completeSucceeded, no BEGIN/COMMIT; or
   * together with others that arrive at the same time, `successes` above):
   * the compare-and-set from pending (by txnRef, bank and amount for a callback; by id, and the
   * amount the bank reports, for a status check), its history and outbox event, the callback's
   * nonce, the hooks' SQL parts and the ledger entry. Taken only where succeedPendingByRef's
   * reasoning holds: decide() for a pending payment of the reported amount says a plain move to
   * succeeded. What it says:
   *   done      the payment succeeded, everything committed;
   *   replayed  the nonce was used already: nothing was written;
   *   no_match  the payment was not pending (or not that txnRef/bank/amount): nothing was written;
   *   long_way  not this way (another outcome, a hook with work only its onSucceeded can do, an
   *             error): nothing was written; the caller completes it in a transaction.
   */
  async function completeInOneStatement(
    target: PaymentTarget,
    result: BankResult,
    ctx: DecideContext,
    replay: ReplayGuard | undefined,
  ): Promise<{ kind: 'done'; row: PaymentRow } | { kind: 'replayed' | 'no_match' | 'long_way' }> {
    const id = typeof target === 'string' ? target : paymentIdFromTxnRef(target.txnRef);
    const hooksSql = successHooksSql();
    if (!hooksSql || !id || result.outcome !== 'success') return { kind: 'long_way' };
    const known = hints.get(id);
    if (known !== undefined && hooks.some((h) => h.succeededNeedsLongWay?.(known.merchant_id)))
      return { kind: 'long_way' };
    const hoped: PaymentFacts = { status: 'pending', amount: result.amountPaise ?? 0, status_checks: 0 };
    const a = decide(hoped, result, ctx);
    if (a.kind !== 'move' || a.to !== 'succeeded' || a.via !== undefined || a.responseCode !== undefined)
      return { kind: 'long_way' };
    if (!canTransition('pending', a.to)) return { kind: 'long_way' };
    const now = clock.now();
    try {
      const u: repo.PaymentUpdate = {
        ...completion(result, now),
        ...(a.payer ? await sealedPayer(db, id, result) : {}),
      };
      // The payer the row will name: the bank's, sealed into `u` above, else the create's.
      const hint: repo.PaymentHint | undefined =
        known && u.payer_vpa_bidx && result.payerVpa
          ? { ...known, payer_vpa: result.payerVpa.toLowerCase(), payer_vpa_bidx: u.payer_vpa_bidx }
          : known;
      const row = await successes.submit({
        hint,
        id,
        u,
        now,
        source: ctx.source,
        detail: a.detail,
        only: typeof target === 'string' ? { amount: result.amountPaise } : { ...target, amount: result.amountPaise },
        nonce: replay && { scope: replay.scope, nonce: replay.nonce, at: replay.at },
        journalId: newJournalId(),
        traceparent: currentTraceparent(),
      });
      return row ? { kind: 'done', row } : { kind: 'no_match' };
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'TPP02') return { kind: 'replayed' };
      // TPP01: a hook has work for this payment (rewards: an earn). Anything else (the ledger
      // refusing, the database gone) is met again the long way, which reports it as it always has.
      if (code !== 'TPP01')
        logger.warn({ payment_id: id, code }, 'one-statement completion failed; completing the long way');
      return { kind: 'long_way' };
    }
  }

  /** Carries out what decide() said about `p` (locked by the caller, in `tx`). */
  async function carryOut(tx: Queryable, p: PaymentRow, a: PaymentAction, result: BankResult, source: Source) {
    const now = clock.now();
    switch (a.kind) {
      case 'none':
        return undefined;
      case 'end_checks':
        await repo.endStatusChecks(tx, p.id);
        return undefined;
      case 'note':
      case 'flag': {
        if (a.kind === 'flag') await repo.flagReconciliation(tx, p.id, a.reason, result.responseCode, now);
        await repo.insertEvent(tx, {
          paymentId: p.id,
          from: p.status,
          to: p.status,
          source,
          responseCode: result.responseCode,
          detail: a.detail,
          at: now,
        });
        if (a.kind === 'note') return undefined;
        if (a.warn) logger.warn({ payment_id: p.id, status: p.status, source }, a.warn);
        return repo.getPayment(tx, p.id);
      }
      case 'move': {
        const from = a.via ? await transition(tx, p, a.via, {}, source) : p;
        if (!from) return undefined;
        const u: repo.PaymentUpdate = {
          ...completion(result, now),
          ...(a.responseCode !== undefined ? { response_code: a.responseCode } : {}),
          ...(a.payer ? await sealedPayer(tx, p.id, result) : {}),
        };
        return transition(tx, from, a.to, u, source, a.detail);
      }
    }
  }

  /**
   * Applies what a bank said about a payment (callback, status check, final check at expiry, or
   * the answer to the create): decide(), then carryOut(), in one transaction.
   */
  async function applyPaymentResult(
    target: PaymentTarget,
    result: BankResult,
    source: Source,
    opts: { expireIfOpen?: boolean; replay?: ReplayGuard } = {},
  ) {
    const ctx: DecideContext = { source, expireIfOpen: opts.expireIfOpen, statusCheckMax: cfg.statusCheckMax };
    const { replay } = opts;
    const fast = await completeInOneStatement(target, result, ctx, replay);
    if (fast.kind === 'done') {
      count(fast.row);
      return fast.row;
    }
    if (fast.kind === 'replayed') return replay!.refuse();
    const updated = await db
      .tx(async (tx) => {
        // The callback's nonce in the transaction of its effect: remembered if and only if that commits.
        if (replay && !(await rememberNonce(tx, replay.scope, replay.nonce, replay.at))) throw new Replayed();
        if (typeof target !== 'string' && fast.kind === 'long_way') {
          const paid = await succeedPendingByRef(tx, target, result, ctx);
          if (paid) return paid;
        }
        // A callback names the payment by our txnRef: locked by it directly, with no read before.
        const p =
          typeof target === 'string'
            ? await repo.getPayment(tx, target, true)
            : await repo.getPaymentByTxnRef(tx, target.txnRef, true);
        if (typeof target !== 'string' && (!p || p.bank_code !== target.bankCode)) {
          throw new AppError('payment_not_found', 'No payment with this reference at this bank');
        }
        if (!p) throw new AppError('payment_not_found', 'Payment not found');
        return carryOut(tx, p, decide(p, result, ctx), result, source);
      })
      .catch((e) => (e instanceof Replayed ? replay!.refuse() : Promise.reject(e)));
    if (updated && updated.status !== 'pending') count(updated);
    return updated;
  }

  /**
   * Applies what a bank said about a refund (its answer to the request, a callback or a status
   * check): decideRefund(), then what it says, in one transaction. `answer` undefined: a status
   * check the bank did not answer with certainty. The payment's status change that a refund
   * causes is recorded with the refund's `source` (who brought the answer).
   */
  async function settleRefund(refundId: string, answer: BankResult | undefined, source: Source, replay?: ReplayGuard) {
    return db
      .tx(async (tx) => {
        if (replay && !(await rememberNonce(tx, replay.scope, replay.nonce, replay.at))) throw new Replayed();
        const r = await repo.getRefund(tx, refundId, true);
        if (!r) return r;
        const now = clock.now();
        const a = decideRefund(r, answer, { source, statusCheckMax: cfg.statusCheckMax });
        const responseCode = answer?.responseCode ?? null;
        switch (a.kind) {
          case 'none':
            return r;
          case 'flag':
            if (a.warn) logger.warn({ refund_id: r.id }, a.warn);
            return flagRefund(tx, r, a.reason, responseCode, now, source);
          case 'succeed': {
            const done = await repo.completeRefund(tx, r.id, 'succeeded', answer?.bankRef ?? null, responseCode, now);
            const p = (await repo.getPayment(tx, r.payment_id, true))!;
            const after = await repo.settleRefundOnPayment(tx, p.id, r.amount, true, now);
            // Hooks first, the ledger entry last, in the same order as a payment's success: rewards
            // locks the customer, the entry locks the merchant's accounts. The other order let a
            // refund and a success for the same customer and merchant deadlock (found by the chaos run).
            await withPayerVpa(deps.payerVpa, after, tx);
            for (const h of hooks) await h.onRefunded?.(tx, after, done);
            await postRefundLedger(tx, p, done);
            await transition(tx, p, refundedPaymentStatus(after), {}, source, `refund ${r.id}`);
            metrics.refunds.inc({ status: 'succeeded' });
            return done;
          }
          case 'fail': {
            const done = await repo.completeRefund(tx, r.id, 'failed', answer?.bankRef ?? null, responseCode, now);
            await repo.settleRefundOnPayment(tx, r.payment_id, r.amount, false, now);
            metrics.refunds.inc({ status: 'failed' });
            return done;
          }
        }
      })
      .catch((e) => (e instanceof Replayed ? replay!.refuse() : Promise.reject(e)));
  }

  /**
   * Flags a refund for reconciliation: no more status checks, its reserved amount stays held,
   * and its payment is flagged too, so it shows where flagged payments do (the reconciliation
   * list, the gauge).
   */
  async function flagRefund(
    tx: Queryable,
    r: RefundRow,
    reason: string,
    responseCode: string | null,
    now: Date,
    source: Source,
  ) {
    const flagged = await repo.flagRefundReconciliation(tx, r.id, reason, responseCode, now);
    const p = await repo.flagPaymentForRefund(tx, r.payment_id, `refund_${reason}`, now);
    await repo.insertEvent(tx, {
      paymentId: p.id,
      from: p.status,
      to: p.status,
      source,
      responseCode,
      detail: `refund ${r.id}: ${reason.replaceAll('_', ' ')}; flagged for reconciliation`,
      at: now,
    });
    return flagged;
  }

  return { pm, transition, count, applyPaymentResult, settleRefund, rememberPayment };
}

export type PaymentEffects = ReturnType<typeof createPaymentEffects>;
