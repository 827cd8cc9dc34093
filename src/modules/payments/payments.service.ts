import type { Logger } from 'pino';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import type { Metrics } from '../../platform/metrics.ts';
import { AppError } from '../../platform/errors.ts';
import { newId, isId, txnRefFromPaymentId, paymentIdFromTxnRef } from '../../platform/ids.ts';
import { isValidPaise } from '../../platform/money.ts';
import { maskVpa } from '../../platform/mask.ts';
import type { Principal } from '../../http/principal.ts';
import { canAccessMerchant, merchantScope } from '../../http/principal.ts';
import { page } from '../../http/pagination.ts';
import type { LedgerService } from '../ledger/types.ts';
import { callBank, type BankCallback, type BankConnector, type BankResult } from '../banks/index.ts';
import type { PaymentRewardsInput } from '../rewards/index.ts';
import type { PreparedAuditEvent } from '../audit/index.ts';
import { buildUpiUri } from './upiUri.ts';
import { canTransition, statusAfterRefund, type PaymentStatus } from './payments.state.ts';
import * as repo from './payments.repo.ts';
import type { PaymentRow, RefundRow } from './payments.repo.ts';
import { sealPayerVpa, withPayerVpa, PAYER_VPA_FIELD, type PayerVpaCipher } from './payments.fields.ts';
import { paymentsMetrics, recordCompletion, timedCreate } from './payments.metrics.ts';

/**
 * Extension points for other modules (rewards, audit, …). Each runs inside the transaction of
 * the event it names, so what it writes commits or rolls back with the payment itself.
 */
export interface PaymentHooks {
  onCreated?(tx: Queryable, payment: PaymentRow, input: CreatePaymentInput): Promise<void>;
  /**
   * Whether onCreated has anything to do for this input. A hook that has onCreated but not this
   * always gets the create transaction; when no hook has work, the payment, its history and its
   * audit records are written by one statement, with no BEGIN and COMMIT round trips.
   */
  createNeedsTransaction?(input: CreatePaymentInput): boolean;
  /** Audit records of the creation, written by the payment's own insert statement; `by`: who asked. */
  createdAuditEvents?(payment: repo.NewPayment, by: Principal): PreparedAuditEvent[];
  /**
   * In the transaction that posts the payment's ledger entry, just before the entry: the entry
   * locks the bank's clearing account, which every payment at that bank shares, so it is
   * written last and held only until the commit (bench/PROFILE.md).
   */
  onSucceeded?(tx: Queryable, payment: PaymentRow): Promise<void>;
  /** A payment closed without money: failed or expired. */
  onClosedUnpaid?(tx: Queryable, payment: PaymentRow): Promise<void>;
  /** After a refund's ledger entry, in the same transaction. */
  onRefunded?(tx: Queryable, payment: PaymentRow, refund: RefundRow): Promise<void>;
  /** A refund was asked for (by whoever is calling), in the transaction that reserves it. */
  onRefundRequested?(tx: Queryable, payment: PaymentRow, refund: RefundRow): Promise<void>;
}

/** Rows each bank's clearing account is kept in; above the database pool sizes of a few replicas. */
const CLEARING_SHARDS = 32;

export interface PaymentsDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  banks: {
    route(acquiringBank: string, down?: ReadonlySet<string>): Promise<BankConnector>;
    connector(code: string): BankConnector;
  };
  config: Pick<Config, 'payments' | 'publicUrl'>;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
  hooks?: PaymentHooks[];
  /** The vault's field cipher: the payer's VPA is stored only encrypted (payments.fields.ts). */
  payerVpa: PayerVpaCipher;
}

export interface CreatePaymentInput {
  terminal_id: string;
  amount: number;
  currency: string;
  method: 'upi_qr' | 'upi_collect';
  payer_vpa?: string;
  note?: string;
  /** Reward points (handled by the rewards hooks): the customer to earn to, and points to redeem. */
  rewards?: PaymentRewardsInput;
}

type Source = 'api' | 'callback' | 'worker';

/** A create whose bank call was never sent or was refused: the payment is recorded as failed. */
const createFailedAtBank = (paymentId: string) =>
  new AppError('bank_unavailable', 'The bank could not take the payment; nothing was charged', {
    payment_id: paymentId,
  });

const addSeconds = (d: Date, s: number) => new Date(d.getTime() + s * 1000);
const NOTE_RE = /^[^\u0000-\u001f\u007f]{1,50}$/;

/** API view of a payment: the payer's VPA is masked, internal bookkeeping is left out. */
export function paymentView(p: PaymentRow) {
  return {
    id: p.id,
    terminal_id: p.terminal_id,
    store_id: p.store_id,
    merchant_id: p.merchant_id,
    method: p.method,
    amount: p.amount,
    currency: p.currency,
    status: p.status,
    payer_vpa: maskVpa(p.payer_vpa),
    note: p.note,
    upi_uri: p.upi_uri,
    txn_ref: p.txn_ref,
    bank: { code: p.bank_code, ref: p.bank_ref, response_code: p.response_code },
    refunded_amount: p.refunded_amount,
    refundable_amount: ['succeeded', 'partially_refunded'].includes(p.status) ? p.amount - p.refund_reserved : 0,
    needs_reconciliation: p.needs_reconciliation,
    expires_at: p.expires_at.toISOString(),
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
    completed_at: p.completed_at ? p.completed_at.toISOString() : null,
  };
}
export type PaymentView = ReturnType<typeof paymentView>;

export function refundView(r: RefundRow) {
  return {
    id: r.id,
    payment_id: r.payment_id,
    amount: r.amount,
    status: r.status,
    reason: r.reason,
    bank: { ref: r.bank_ref, response_code: r.response_code },
    needs_reconciliation: r.needs_reconciliation,
    created_at: r.created_at.toISOString(),
    completed_at: r.completed_at ? r.completed_at.toISOString() : null,
  };
}
export type RefundView = ReturnType<typeof refundView>;

export function createPaymentsService(deps: PaymentsDeps) {
  const { db, ledger, banks, config, metrics, clock, logger } = deps;
  const hooks = deps.hooks ?? [];
  const cfg = config.payments;
  const pm = paymentsMetrics(metrics.registry);
  const callbackUrl = (bankCode: string) => `${config.publicUrl}/v1/banks/${bankCode}/callbacks`;

  function validateCreate(input: CreatePaymentInput) {
    if (!isValidPaise(input.amount))
      throw new AppError('invalid_amount', 'amount must be a positive integer number of paise');
    if (input.amount > cfg.maxAmountPaise) {
      throw new AppError(
        'amount_above_limit',
        `amount exceeds the per-transaction limit of ${cfg.maxAmountPaise} paise`,
      );
    }
    if (input.currency !== 'INR') throw new AppError('validation_failed', 'currency must be INR');
    if (input.method === 'upi_collect') {
      if (!input.payer_vpa)
        throw new AppError('validation_failed', 'payer_vpa is required for upi_collect', [
          { field: 'body.payer_vpa', problem: 'is required for upi_collect' },
        ]);
    }
    if (input.payer_vpa !== undefined && !cfg.vpaPattern.test(input.payer_vpa)) {
      throw new AppError('invalid_vpa', 'payer_vpa is not a valid UPI address');
    }
    if (input.note !== undefined && !NOTE_RE.test(input.note)) {
      throw new AppError('validation_failed', 'note must be 1-50 printable characters', [
        { field: 'body.note', problem: 'must be 1-50 printable characters' },
      ]);
    }
  }

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
   * Moves a payment from `from` to `to` inside `tx`: compare-and-set on status, history row,
   * ledger entry when money arrived, outbox event for the terminal. Returns undefined when the
   * payment was no longer in `from` (someone else moved it first).
   */
  async function transition(
    tx: Queryable,
    p: PaymentRow,
    to: PaymentStatus,
    u: repo.PaymentUpdate,
    source: Source,
    detail?: string,
  ) {
    if (!canTransition(p.status, to))
      throw new AppError('invalid_state_transition', `A ${p.status} payment cannot become ${to}`);
    // Status, history row and outbox event in one statement; the ledger entry (which locks the
    // bank's clearing account, shared by every payment at that bank) comes last, so that lock
    // is held for as few round trips as possible before the commit.
    const next = await repo.transitionStatus(tx, { id: p.id, from: p.status, to, u, now: clock.now(), source, detail });
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

  /**
   * The common callback, "paid", for a pending payment of the amount asked: one compare-and-set
   * by txnRef, bank and amount instead of locking the row, reading it and then moving it.
   * undefined when anything is unusual (another state, another amount, not ours): the caller
   * then takes the long way, in the same transaction.
   */
  async function succeedPendingByRef(
    tx: Queryable,
    target: { txnRef: string; bankCode: string },
    result: BankResult,
    source: Source,
  ) {
    const id = paymentIdFromTxnRef(target.txnRef);
    if (!id || result.outcome !== 'success') return undefined;
    const now = clock.now();
    const u = { ...completion(result, now), ...(await sealedPayer(tx, id, result)) };
    const next = await repo.transitionStatus(tx, {
      id,
      from: 'pending',
      to: 'succeeded',
      u,
      now,
      source,
      only: { ...target, amount: result.amountPaise },
    });
    return next && afterTransition(tx, next);
  }

  /** What a bank's final answer writes on the payment, whatever the answer. */
  const completion = (result: BankResult, now: Date) => ({
    completed_at: now,
    response_code: result.responseCode,
    bank_ref: result.bankRef ?? null,
    next_check_at: null,
  });

  function count(p: PaymentRow) {
    metrics.payments.inc({ method: p.method, status: p.status });
    recordCompletion(pm, p);
  }

  /**
   * Applies what a bank said about a payment (callback, status check or final check at expiry).
   * Legal moves happen; anything else is recorded and, where money may have moved, flagged for
   * reconciliation — never forced through.
   */
  async function applyPaymentResult(
    target: string | { txnRef: string; bankCode: string },
    result: BankResult,
    source: Source,
    opts: { expireIfOpen?: boolean } = {},
  ) {
    const updated = await db.tx(async (tx) => {
      if (typeof target !== 'string') {
        const paid = await succeedPendingByRef(tx, target, result, source);
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
      const now = clock.now();
      const done = completion(result, now);
      const note = async (detail: string) =>
        repo.insertEvent(tx, {
          paymentId: p.id,
          from: p.status,
          to: p.status,
          source,
          responseCode: result.responseCode,
          detail,
          at: now,
        });

      if (result.outcome === 'success' && result.amountPaise !== undefined && result.amountPaise !== p.amount) {
        // The bank says a different amount moved: never book it as paid; people decide.
        await repo.flagReconciliation(tx, p.id, 'amount_mismatch', result.responseCode, now);
        await note(`bank reported success for ${result.amountPaise} paise; flagged for reconciliation`);
        logger.warn({ payment_id: p.id, source }, 'bank reported a different amount');
        return repo.getPayment(tx, p.id);
      }
      if (p.status === 'pending' || p.status === 'created') {
        switch (result.outcome) {
          case 'success':
            if (p.status === 'created') {
              const pend = await transition(tx, p, 'pending', {}, source);
              return (
                pend && transition(tx, pend, 'succeeded', { ...done, ...(await sealedPayer(tx, p.id, result)) }, source)
              );
            }
            return transition(tx, p, 'succeeded', { ...done, ...(await sealedPayer(tx, p.id, result)) }, source);
          case 'failed':
          case 'reversed':
            return transition(tx, p, 'failed', done, source);
          case 'expired':
            return p.status === 'pending'
              ? transition(tx, p, 'expired', done, source)
              : transition(tx, p, 'failed', done, source);
          case 'deemed':
          case 'unknown':
            if (opts.expireIfOpen && p.status === 'created' && result.outcome === 'unknown') {
              // Written, but its bank never heard of it (the process died around the bank call):
              // nothing can have been paid, so it ends here.
              return transition(
                tx,
                p,
                'failed',
                { ...done, response_code: 'U69' },
                source,
                'never reached the bank; closed at expiry',
              );
            }
            await repo.flagReconciliation(
              tx,
              p.id,
              result.outcome === 'deemed' ? 'deemed' : 'unknown_at_bank',
              result.responseCode,
              now,
            );
            await note(`bank answered ${result.outcome}; flagged for reconciliation`);
            return repo.getPayment(tx, p.id);
          case 'pending':
            if (opts.expireIfOpen && p.status === 'pending')
              return transition(tx, p, 'expired', { ...done, response_code: 'U69' }, source, 'expired unpaid');
            if (opts.expireIfOpen && p.status === 'created')
              return transition(
                tx,
                p,
                'failed',
                { ...done, response_code: 'U69' },
                source,
                'never confirmed by the bank; closed at expiry',
              );
            if (p.status === 'pending' && p.status_checks >= cfg.statusCheckMax) {
              // No more status checks: the expiry job gives it its final check.
              await repo.endStatusChecks(tx, p.id);
            }
            return undefined;
        }
      }
      // Already final. The same answer again is a duplicate and changes nothing.
      const paid = ['succeeded', 'partially_refunded', 'refunded'].includes(p.status);
      if (result.outcome === 'success' && !paid) {
        // The customer may have been debited for a payment we already closed: never revive it,
        // flag it so reconciliation reverses or refunds the money (RBI: within T+5).
        await repo.flagReconciliation(tx, p.id, 'success_after_close', result.responseCode, now);
        await note('bank reported success for a closed payment; flagged for reconciliation');
        logger.warn({ payment_id: p.id, status: p.status, source }, 'late success for a closed payment');
        return repo.getPayment(tx, p.id);
      }
      if (result.outcome !== 'success' && result.outcome !== 'pending' && paid && source === 'callback') {
        await note(`ignored ${result.outcome} for a paid payment`);
      }
      return undefined;
    });
    if (updated && updated.status !== 'pending') count(updated);
    return updated;
  }

  async function visiblePayment(p: Principal, id: string): Promise<PaymentRow> {
    const row = isId('payment', id) ? await repo.getPayment(db, id) : undefined;
    if (!row || !canAccessMerchant(p, row.merchant_id)) throw new AppError('payment_not_found', 'Payment not found');
    return withPayerVpa(deps.payerVpa, row);
  }

  /** The VPA a bank reported for the payer, encrypted for this payment's row (inside its transaction). */
  const sealedPayer = async (tx: Queryable, paymentId: string, result: BankResult) =>
    result.payerVpa ? sealPayerVpa(deps.payerVpa, paymentId, result.payerVpa, tx) : {};

  /**
   * Applies what a bank said about a refund (its answer to the request, a callback or a status
   * check). An answer from a status check (source 'worker') counts toward the refund's cadence:
   * after statusCheckMax checks that settle nothing, it is flagged for reconciliation.
   * `result` undefined: a status check the bank did not answer with certainty.
   */
  async function settleRefund(refundId: string, answer: BankResult | undefined, source: Source) {
    const result = answer ?? { outcome: 'pending' as const, responseCode: null };
    return db.tx(async (tx) => {
      const r = await repo.getRefund(tx, refundId, true);
      if (!r) return r;
      const now = clock.now();
      if (r.status !== 'pending') {
        if (r.status === 'failed' && result.outcome === 'success') {
          // The customer may have been refunded after we released the amount (and the merchant
          // may refund it again): never revive it, flag it so people decide.
          logger.warn({ refund_id: r.id }, 'late success for a closed refund');
          return flagRefund(tx, r, 'success_after_close', result.responseCode, now, source);
        }
        return r; // the same final answer again, or one for a refund people already settled
      }
      if (result.outcome === 'success') {
        const done = await repo.completeRefund(tx, r.id, 'succeeded', result.bankRef ?? null, result.responseCode, now);
        const p = (await repo.getPayment(tx, r.payment_id, true))!;
        const after = await repo.settleRefundOnPayment(tx, p.id, r.amount, true, now);
        await postRefundLedger(tx, p, done);
        await withPayerVpa(deps.payerVpa, after, tx);
        for (const h of hooks) await h.onRefunded?.(tx, after, done);
        await transition(tx, p, statusAfterRefund(after.amount, after.refunded_amount), {}, 'api', `refund ${r.id}`);
        metrics.refunds.inc({ status: 'succeeded' });
        return done;
      }
      if (result.outcome === 'failed' || result.outcome === 'reversed' || result.outcome === 'expired') {
        const done = await repo.completeRefund(tx, r.id, 'failed', result.bankRef ?? null, result.responseCode, now);
        await repo.settleRefundOnPayment(tx, r.payment_id, r.amount, false, now);
        metrics.refunds.inc({ status: 'failed' });
        return done;
      }
      // Deemed: the switch does not know the outcome; reconciliation decides, as for payments.
      if (result.outcome === 'deemed') return flagRefund(tx, r, 'deemed', result.responseCode, now, source);
      // Pending or unknown (U48): asked again, statusCheckMax times at most.
      if (source === 'worker' && r.status_checks >= cfg.statusCheckMax)
        return flagRefund(tx, r, 'unresolved_at_bank', result.responseCode, now, source);
      return r;
    });
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

  /** A create whose clientRef the terminal has used already: the first payment, if it is the same request. */
  async function sameCreateAgain(
    terminalId: string,
    clientRef: string,
    input: CreatePaymentInput,
  ): Promise<PaymentView> {
    const first = (await repo.getPaymentByClientRef(db, terminalId, clientRef))!;
    const same = first.method === input.method && first.amount === input.amount && first.note === (input.note ?? null);
    if (!same) {
      throw new AppError('idempotency_key_reused', 'This request reference was used for another payment', {
        payment_id: first.id,
      });
    }
    // The first one failed at its bank call (never sent, or refused): the retry gets that same
    // answer, not a 201 for a failed payment.
    if (first.status === 'failed' && (await repo.failedAtCreate(db, first.id))) throw createFailedAtBank(first.id);
    return paymentView(await withPayerVpa(deps.payerVpa, first));
  }

  const service = {
    paymentView,
    /**
     * Creates a payment and asks its bank for it. `clientRef`: the caller's reference for this
     * create (a terminal's request id, an Idempotency-Key), unique per terminal: a create that
     * finds the terminal already has a payment under it returns that payment as it is now and
     * does nothing else (the same request retried after a crash); with other details it is an
     * `idempotency_key_reused`.
     */
    async create(
      principal: Principal,
      input: CreatePaymentInput,
      opts: { clientRef?: string } = {},
    ): Promise<PaymentView> {
      validateCreate(input);
      const ctx = isId('terminal', input.terminal_id) ? await repo.paymentContext(db, input.terminal_id) : undefined;
      if (!ctx || !canAccessMerchant(principal, ctx.merchant_id))
        throw new AppError('terminal_not_found', 'Terminal not found');
      if (ctx.terminal_status !== 'active') throw new AppError('terminal_inactive', 'The terminal is disabled');
      if (ctx.merchant_status !== 'active') throw new AppError('merchant_inactive', 'The merchant is suspended');
      const bank = await banks.route(ctx.acquiring_bank, new Set(ctx.down_banks));
      const now = clock.now();
      const id = newId('payment');
      const txnRef = txnRefFromPaymentId(id);
      const expiresAt = addSeconds(now, input.method === 'upi_qr' ? cfg.qrExpirySeconds : cfg.collectExpirySeconds);
      const upiUri =
        input.method === 'upi_qr'
          ? buildUpiUri({
              payeeVpa: ctx.merchant_vpa,
              payeeName: ctx.merchant_name,
              mcc: ctx.mcc,
              txnRef,
              amountPaise: input.amount,
              note: input.note,
            })
          : null;
      // The payer's VPA is encrypted (bound to this payment's id) before anything is written.
      const payer = input.payer_vpa
        ? await sealPayerVpa(deps.payerVpa, id, input.payer_vpa)
        : { payer_vpa_ct: null, payer_vpa_bidx: null };
      // 1. Record the intent before talking to the bank, so nothing the bank knows is unknown to us.
      const draft: repo.NewPayment = {
        id,
        txn_ref: txnRef,
        merchant_id: ctx.merchant_id,
        store_id: ctx.store_id,
        terminal_id: ctx.terminal_id,
        method: input.method,
        amount: input.amount,
        currency: 'INR',
        ...payer,
        note: input.note ?? null,
        upi_uri: upiUri,
        bank_code: bank.code,
        expires_at: expiresAt,
        now,
        client_ref: opts.clientRef ?? null,
      };
      const audit = hooks.flatMap((h) => h.createdAuditEvents?.(draft, principal) ?? []);
      const insert = async (q: Queryable) => {
        const row = await repo.insertPayment(q, draft, audit);
        if (row) row.payer_vpa = input.payer_vpa?.toLowerCase() ?? null; // in memory only, for the hooks
        return row;
      };
      const inserted = hooks.some((h) => h.onCreated && (h.createNeedsTransaction?.(input) ?? true))
        ? await db.tx(async (tx) => {
            const row = await insert(tx);
            if (row) for (const h of hooks) await h.onCreated?.(tx, row, input);
            return row;
          })
        : await insert(db);
      if (!inserted) return sameCreateAgain(ctx.terminal_id, opts.clientRef!, input);
      let payment = inserted;
      // 2. The bank call, outside any transaction, with our txnRef as the idempotent reference.
      const req = {
        txnRef,
        amountPaise: input.amount,
        payeeVpa: ctx.merchant_vpa,
        payeeName: ctx.merchant_name,
        mcc: ctx.mcc,
        note: input.note,
        expiresAt,
        callbackUrl: callbackUrl(bank.code),
      };
      const call = await callBank(async () =>
        input.method === 'upi_qr'
          ? { bankRef: (await bank.registerIntent(req)).bankRef }
          : { result: await bank.sendCollect({ ...req, payerVpa: input.payer_vpa! }) },
      );
      // 3. Record what happened.
      if (call.kind === 'not_sent' || call.kind === 'rejected') {
        // The bank never got the request, or refused it as such: nothing can have been charged.
        payment =
          (await db.tx((tx) =>
            transition(
              tx,
              payment,
              'failed',
              { response_code: 'U28', completed_at: clock.now(), next_check_at: null },
              'api',
              call.error.message,
            ),
          )) ?? payment;
        count(payment);
        throw createFailedAtBank(payment.id);
      }
      const firstCheck = addSeconds(clock.now(), cfg.statusCheckFirstAfterSeconds);
      const result = call.kind === 'ok' ? call.value.result : undefined;
      const bankRef = call.kind === 'ok' ? (call.value.bankRef ?? result?.bankRef) : undefined;
      // Uncertain (timeout, 5xx, reset after sending, unreadable answer): the bank may have taken
      // it, so the payment is pending like any other and its status checks find out.
      const detail =
        call.kind === 'uncertain' ? `bank answer uncertain (${call.error.message}); status check scheduled` : undefined;
      // Moving to pending is one statement (status, history row, outbox event) and runs no hooks,
      // so it is atomic without a transaction of its own: no BEGIN and COMMIT round trips.
      // undefined: the bank's callback got here first and moved it on; answer with what it is now.
      payment =
        (await transition(
          db,
          payment,
          'pending',
          { bank_ref: bankRef ?? null, next_check_at: firstCheck },
          'api',
          detail,
        )) ?? (await repo.getPayment(db, payment.id))!;
      metrics.payments.inc({ method: payment.method, status: 'pending' });
      if (result && result.outcome !== 'pending')
        payment = (await applyPaymentResult(payment.id, result, 'api')) ?? (await repo.getPayment(db, payment.id))!;
      // The VPA sealed above is known here: no need to decrypt it for the answer.
      if (payment.payer_vpa == null && payer.payer_vpa_ct !== null && payment.payer_vpa_ct === payer.payer_vpa_ct)
        payment.payer_vpa = input.payer_vpa!.toLowerCase();
      return paymentView(await withPayerVpa(deps.payerVpa, payment));
    },

    async get(principal: Principal, id: string): Promise<PaymentView> {
      return paymentView(await visiblePayment(principal, id));
    },

    async list(
      principal: Principal,
      f: Omit<repo.PaymentFilter, 'merchantId' | 'payerVpaIndexes'> & { merchantId?: string; payerVpa?: string },
    ) {
      const merchantId = merchantScope(principal, f.merchantId);
      // By payer: the blind index under each live key version (no plaintext VPA in the query).
      const payerVpaIndexes =
        f.payerVpa !== undefined ? await deps.payerVpa.lookupIndexes(PAYER_VPA_FIELD, f.payerVpa) : undefined;
      const rows = await repo.listPayments(db, { ...f, merchantId, payerVpaIndexes });
      const pg = page(rows, f.limit);
      const data = await Promise.all(pg.data.map((r) => withPayerVpa(deps.payerVpa, r)));
      return { data: data.map(paymentView), next_cursor: pg.next_cursor };
    },

    async refund(
      principal: Principal,
      paymentId: string,
      input: { amount: number; reason?: string },
    ): Promise<RefundView> {
      if (!isValidPaise(input.amount))
        throw new AppError('invalid_amount', 'amount must be a positive integer number of paise');
      const p = await visiblePayment(principal, paymentId);
      const now = clock.now();
      if (!['succeeded', 'partially_refunded'].includes(p.status)) {
        throw new AppError('payment_not_refundable', `A ${p.status} payment cannot be refunded`);
      }
      if (p.completed_at && now.getTime() - p.completed_at.getTime() > cfg.refundWindowDays * 86_400_000) {
        throw new AppError('payment_not_refundable', `The refund window of ${cfg.refundWindowDays} days has passed`);
      }
      // Reserve first, in one conditional UPDATE: concurrent refunds can never exceed the amount.
      const refund = await db.tx(async (tx) => {
        const reserved = await repo.reserveRefund(tx, p.id, input.amount, now);
        if (!reserved) {
          const cur = (await repo.getPayment(tx, p.id))!;
          if (!['succeeded', 'partially_refunded'].includes(cur.status))
            throw new AppError('payment_not_refundable', `A ${cur.status} payment cannot be refunded`);
          throw new AppError(
            'refund_exceeds_payment',
            `Only ${cur.amount - cur.refund_reserved} paise are left to refund`,
            { refundable_amount: cur.amount - cur.refund_reserved },
          );
        }
        const rid = newId('refund');
        const row = await repo.insertRefund(tx, {
          id: rid,
          payment_id: p.id,
          refund_ref: 'TR' + rid.slice(4).toUpperCase(),
          amount: input.amount,
          reason: input.reason ?? null,
          now,
          nextCheckAt: addSeconds(now, cfg.statusCheckFirstAfterSeconds),
        });
        for (const h of hooks) await h.onRefundRequested?.(tx, p, row);
        return row;
      });
      const call = await callBank(() =>
        banks.connector(p.bank_code).refund({
          refundRef: refund.refund_ref,
          originalTxnRef: p.txn_ref,
          amountPaise: refund.amount,
          note: input.reason,
          callbackUrl: callbackUrl(p.bank_code),
        }),
      );
      // Never sent or refused as such: the reservation is released. Uncertain: the refund stays
      // pending with its amount reserved, and the refund status checks find out what the bank did.
      if (call.kind === 'uncertain') {
        logger.warn(
          { refund_id: refund.id, code: call.error.code },
          'refund: bank answer uncertain; left pending for status checks',
        );
        return refundView((await repo.getRefund(db, refund.id))!);
      }
      const result: BankResult =
        call.kind === 'ok' ? call.value : { outcome: 'failed', responseCode: 'U28', message: call.error.message };
      return refundView((await settleRefund(refund.id, result, 'api'))!);
    },

    async listRefunds(principal: Principal, paymentId: string) {
      const p = await visiblePayment(principal, paymentId);
      return { data: (await repo.listRefunds(db, p.id)).map(refundView), next_cursor: null };
    },

    /** A verified callback from a bank. Duplicates are harmless. */
    async handleCallback(bankCode: string, cb: BankCallback) {
      if (cb.kind === 'payment') {
        await applyPaymentResult({ txnRef: cb.ref, bankCode }, cb.result, 'callback');
        return { received: true };
      }
      const r = await repo.getRefundByRef(db, cb.ref);
      if (!r) throw new AppError('not_found', 'No refund with this reference');
      await settleRefund(r.id, cb.result, 'callback');
      return { received: true };
    },

    // ---- worker jobs ----

    /**
     * Status checks on the UPI cadence: first after statusCheckFirstAfterSeconds, at most
     * statusCheckMax. A check the bank does not answer with certainty (timeout, 5xx, unreadable)
     * counts as a check that learned nothing; after the last one the expiry job has the final word.
     */
    async runStatusChecks(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimDueStatusChecks(tx, now, addSeconds(now, cfg.statusCheckIntervalSeconds), 100),
      );
      for (const p of claimed) {
        const call = await callBank(() => banks.connector(p.bank_code).checkStatus(p.txn_ref));
        try {
          pm.statusChecks.inc({ bank: p.bank_code, outcome: call.kind === 'ok' ? call.value.outcome : 'error' });
          if (call.kind === 'ok') {
            await applyPaymentResult(p.id, call.value, 'worker');
            continue;
          }
          logger.warn(
            { payment_id: p.id, code: call.error.code, delivery: call.kind },
            'status check unanswered; counted as a check',
          );
          if (p.status_checks >= cfg.statusCheckMax) await repo.endStatusChecks(db, p.id);
        } catch (e) {
          logger.warn(
            { payment_id: p.id, code: (e as AppError).code },
            'status check could not be applied; will retry',
          );
        }
      }
      return claimed.length;
    },

    /** Unpaid QR and collect requests past their expiry get one last status check, then expire. */
    async runExpiry(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) => repo.claimExpired(tx, now, addSeconds(now, 30), 100));
      for (const p of claimed) {
        const call = await callBank(() => banks.connector(p.bank_code).checkStatus(p.txn_ref));
        // No certain answer: nothing may be closed on a guess; the lease runs out and we ask again.
        if (call.kind !== 'ok') continue;
        await applyPaymentResult(p.id, call.value, 'worker', { expireIfOpen: true });
      }
      return claimed.length;
    },

    /**
     * Refund status checks, on the payments' cadence: a refund the bank leaves pending or does
     * not know (U48), or does not answer with certainty, is asked statusCheckMax times, then
     * flagged for reconciliation with its amount still reserved.
     */
    async runRefundChecks(): Promise<number> {
      const now = clock.now();
      const claimed = await db.tx((tx) =>
        repo.claimDueRefundChecks(tx, now, addSeconds(now, cfg.statusCheckIntervalSeconds), 100),
      );
      for (const r of claimed) {
        try {
          const p = (await repo.getPayment(db, r.payment_id))!;
          const call = await callBank(() => banks.connector(p.bank_code).checkRefundStatus(r.refund_ref));
          if (call.kind !== 'ok')
            logger.warn(
              { refund_id: r.id, code: call.error.code, delivery: call.kind },
              'refund status check unanswered; counted as a check',
            );
          // An unanswered check is a check that learned nothing: counted, like "still pending".
          await settleRefund(r.id, call.kind === 'ok' ? call.value : undefined, 'worker');
        } catch (e) {
          logger.warn(
            { refund_id: r.id, code: (e as AppError).code },
            'refund status check could not be applied; will retry',
          );
        }
      }
      return claimed.length;
    },

    async updateReconciliationGauge() {
      metrics.reconciliationPending.set(await repo.countNeedingReconciliation(db));
    },
  };
  return { ...service, create: timedCreate(pm, service.create) };
}

export type PaymentsService = ReturnType<typeof createPaymentsService>;
