import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { newId, isId, txnRefFromPaymentId } from '../../platform/ids.ts';
import { isValidPaise } from '../../platform/money.ts';
import type { Principal } from '../../platform/principal.ts';
import { canAccessMerchant } from '../../platform/principal.ts';
import { callBank, type BankCallback, type BankResult, type ReplayGuard } from '../banks/index.ts';
import { buildUpiUri } from './upiUri.ts';
import * as repo from './payments.repo.ts';
import { sealPayerVpa, withPayerVpa } from './payments.fields.ts';
import { timedCreate } from './payments.metrics.ts';
import { refundRefusal } from './payments.decide.ts';
import { createPaymentEffects } from './payments.apply.ts';
import { createPaymentJobs } from './payments.jobs.ts';
import { createPaymentViews, paymentView, refundView, type PaymentView, type RefundView } from './payments.views.ts';
import { addSeconds, type ApprovedRefund, type CreatePaymentInput, type PaymentsDeps } from './payments.types.ts';
import { annotateSpan, currentTraceparent } from '../../platform/tracing.ts';
import { createBatcher } from '../../platform/batcher.ts';

// The payments service: its commands (create, refund, a bank's callback) here; the decisions
// they act on in payments.decide.ts, carried out by payments.apply.ts; the read side in
// payments.views.ts; the worker's jobs in payments.jobs.ts. One object, as before, for the
// routes, the terminal protocol and the worker.

export type {
  PaymentHooks,
  PaymentsDeps,
  CreatePaymentInput,
  RefundApprovals,
  ApprovedRefund,
} from './payments.types.ts';
export { paymentView, refundView, type PaymentView, type RefundView } from './payments.views.ts';

/** A create whose bank call was never sent or was refused: the payment is recorded as failed. */
const createFailedAtBank = (paymentId: string) =>
  new AppError('bank_unavailable', 'The bank could not take the payment; nothing was charged', {
    payment_id: paymentId,
  });

const NOTE_RE = /^[^\u0000-\u001f\u007f]{1,50}$/;

export function createPaymentsService(deps: PaymentsDeps) {
  const { db, banks, config, metrics, clock, logger } = deps;
  const hooks = deps.hooks ?? [];
  const cfg = config.payments;
  const callbackUrl = (bankCode: string) => `${config.publicUrl}/v1/banks/${bankCode}/callbacks`;
  const effects = createPaymentEffects(deps);
  const { pm, transition, count, applyPaymentResult, settleRefund, rememberPayment } = effects;
  const views = createPaymentViews(deps);
  const { visiblePayment } = views;
  const jobs = createPaymentJobs(deps, effects);
  // Group commit of the `created → pending` moves (platform/batcher.ts): each create still waits
  // for its own move's commit before it answers.
  // The same for the inserts of creates decided on a terminal context this process knows.
  const newPayments = createBatcher((creates: readonly repo.NewPaymentIfContext[]) =>
    repo.insertPaymentsIfContext(db, creates),
  );
  const pendingMoves = createBatcher(async (moves: readonly repo.PendingMove[]) => {
    const moved = new Map((await repo.movePendingMany(db, moves)).map((r) => [r.id, r]));
    return moves.map((m) => moved.get(m.id));
  });

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
    return views.view(await withPayerVpa(deps.payerVpa, first));
  }

  /**
   * Each terminal's context (and the banks marked down) as this process last read it: never
   * trusted, only compared (insertPaymentsIfContext writes nothing unless it is still current).
   */
  const contexts = new Map<string, repo.PaymentContext>();
  const MAX_CONTEXTS = 100_000;
  function rememberContext(terminalId: string, ctx: repo.PaymentContext | undefined) {
    if (!ctx) {
      contexts.delete(terminalId);
      return;
    }
    if (contexts.size >= MAX_CONTEXTS) contexts.clear();
    contexts.set(terminalId, ctx);
  }

  /** The payer's VPA as given at the till, on the new row in memory only (for the hooks). */
  const withTillPayer = (row: repo.PaymentRow, input: CreatePaymentInput) => {
    row.payer_vpa = input.payer_vpa?.toLowerCase() ?? null;
    return row;
  };

  /** Everything a create decides from the terminal's context before it writes: checks, bank, ids, the row. */
  async function plan(principal: Principal, input: CreatePaymentInput, ctx: repo.PaymentContext, clientRef?: string) {
    if (!canAccessMerchant(principal, ctx.merchant_id)) throw new AppError('terminal_not_found', 'Terminal not found');
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
    // Record the intent before talking to the bank, so nothing the bank knows is unknown to us.
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
      client_ref: clientRef ?? null,
    };
    const audit = hooks.flatMap((h) => h.createdAuditEvents?.(draft, principal) ?? []);
    return { bank, id, txnRef, expiresAt, payer, draft, audit };
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
      if (!isId('terminal', input.terminal_id)) throw new AppError('terminal_not_found', 'Terminal not found');
      const needsTx = hooks.some((h) => h.onCreated && (h.createNeedsTransaction?.(input) ?? true));
      let attempt: Awaited<ReturnType<typeof plan>> | undefined;
      let inserted: repo.PaymentRow | undefined;
      let done = false;
      // The context this terminal had when this process last created a payment for it: a create
      // decided on it is written only if it is still the current one (the insert and the context
      // read are one statement), so a create is 2 round trips instead of 3. A context that
      // changed (or was never seen here) costs nothing extra: the statement answers with the
      // current one, and the create is decided again on that.
      let ctx = needsTx ? undefined : contexts.get(input.terminal_id);
      if (ctx) {
        try {
          attempt = await plan(principal, input, ctx, opts.clientRef);
        } catch {
          attempt = undefined; // decided on the remembered context only; the current one decides below
        }
        if (attempt) {
          const r = await newPayments.submit({ draft: attempt.draft, audit: attempt.audit, known: ctx });
          rememberContext(input.terminal_id, r.ctx);
          ctx = r.ctx;
          if (r.matched) {
            done = true;
            inserted = r.row && withTillPayer(r.row, input);
          } else if (!ctx) throw new AppError('terminal_not_found', 'Terminal not found');
        } else ctx = undefined;
      }
      if (!done) {
        if (!ctx) {
          ctx = await repo.paymentContext(db, input.terminal_id);
          rememberContext(input.terminal_id, ctx);
        }
        if (!ctx) throw new AppError('terminal_not_found', 'Terminal not found');
        attempt = await plan(principal, input, ctx, opts.clientRef);
        const { draft, audit } = attempt;
        const insert = async (q: Queryable) => {
          const row = await repo.insertPayment(q, draft, audit);
          return row && withTillPayer(row, input);
        };
        inserted = needsTx
          ? await db.tx(async (tx) => {
              const row = await insert(tx);
              if (row) for (const h of hooks) await h.onCreated?.(tx, row, input);
              return row;
            })
          : await insert(db);
      }
      const { bank, txnRef, expiresAt, payer } = attempt!;
      ctx = ctx!;
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
      // so it is atomic without a transaction of its own, and the moves of creates that answer at
      // the same time share one statement and one commit (group commit, `pendingMoves`).
      // undefined: the bank's callback got here first and moved it on; answer with what it is now.
      payment =
        (await pendingMoves.submit({
          id: payment.id,
          bank_ref: bankRef ?? null,
          next_check_at: firstCheck,
          detail: detail ?? null,
          now: clock.now(),
          traceparent: currentTraceparent(),
          bankAnswered: call.kind === 'ok',
        })) ?? (await repo.getPayment(db, payment.id))!;
      metrics.payments.inc({ method: payment.method, status: 'pending' });
      rememberPayment(payment.id, {
        merchant_id: payment.merchant_id,
        store_id: payment.store_id,
        created_at: payment.created_at,
        amount: payment.amount,
        // The VPA given at the create, when the row holds it (sealed above, lower-cased).
        payer_vpa:
          input.payer_vpa && payment.payer_vpa_bidx && payment.payer_vpa_bidx === payer.payer_vpa_bidx
            ? input.payer_vpa.toLowerCase()
            : null,
        payer_vpa_bidx: payment.payer_vpa_bidx,
      });
      if (result && result.outcome !== 'pending')
        payment = (await applyPaymentResult(payment.id, result, 'api')) ?? (await repo.getPayment(db, payment.id))!;
      // The VPA sealed above is known here: no need to decrypt it for the answer.
      if (payment.payer_vpa == null && payer.payer_vpa_ct !== null && payment.payer_vpa_ct === payer.payer_vpa_ct)
        payment.payer_vpa = input.payer_vpa!.toLowerCase();
      return views.view(await withPayerVpa(deps.payerVpa, payment));
    },

    get: views.get,
    list: views.list,

    async refund(
      principal: Principal,
      paymentId: string,
      input: { amount: number; reason?: string },
      approved?: ApprovedRefund,
    ): Promise<RefundView> {
      if (!isValidPaise(input.amount))
        throw new AppError('invalid_amount', 'amount must be a positive integer number of paise');
      const p = await visiblePayment(principal, paymentId);
      const now = clock.now();
      const refused = refundRefusal(p, input.amount, now, cfg.refundWindowDays);
      if (refused) throw refused;
      // The four-eyes gate: a person's refund above the threshold waits for a second operator.
      // Nothing is reserved while it waits (the payment stays refundable by others); approval
      // runs this method again, and the reservation below re-checks what is left then.
      if (!approved && principal.kind === 'operator' && input.amount > cfg.refundApprovalThresholdPaise) {
        if (!deps.refundApprovals)
          throw new AppError(
            'service_unavailable',
            'Refunds above the approval threshold need approvals, not wired here',
          );
        const approval = await deps.refundApprovals.file(principal, {
          payment_id: p.id,
          merchant_id: p.merchant_id,
          amount: input.amount,
          reason: input.reason ?? null,
        });
        throw new AppError(
          'approval_required',
          `Refunds above ${cfg.refundApprovalThresholdPaise} paise need a second operator's approval: the request is filed`,
          { approval },
        );
      }
      // Reserve first, in one conditional UPDATE: concurrent refunds can never exceed the amount.
      const refund = await db.tx(async (tx) => {
        const reserved = await repo.reserveRefund(tx, p.id, input.amount, now);
        if (!reserved) {
          // Another refund or a status change got there first: say why, as it is now.
          const cur = (await repo.getPayment(tx, p.id))!;
          // An operator's reversal (settlement) takes back from what is refundable too.
          const reversed = await repo.reversedAmount(tx, p.id);
          throw (
            refundRefusal(
              { ...cur, refund_reserved: cur.refund_reserved + reversed },
              input.amount,
              now,
              cfg.refundWindowDays,
            ) ?? new AppError('payment_not_refundable', 'The payment cannot be refunded now')
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
        // An approved request is claimed with the reservation: the refund exists once, or not at all.
        if (approved) await approved.claim(tx, { refund_id: rid, payment_id: p.id, amount: input.amount });
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
      try {
        return refundView((await settleRefund(refund.id, result, 'api'))!);
      } catch (e) {
        // The bank has answered but its answer could not be recorded now (a conflict past its
        // retries, the database gone). Never an error from here: the caller would send the refund
        // again and the customer could be refunded twice. It stays pending with its amount
        // reserved, as the row committed before the call says, and the refund status checks
        // record what the bank did.
        logger.error(
          { refund_id: refund.id, err: { type: (e as Error).name, code: (e as { code?: string }).code } },
          'refund: the bank answered but the answer could not be recorded; left pending for status checks',
        );
        return refundView(refund);
      }
    },

    listRefunds: views.listRefunds,

    refundPolicy: () => ({
      window_days: cfg.refundWindowDays,
      approval_threshold_paise: cfg.refundApprovalThresholdPaise,
    }),

    /**
     * A verified callback from a bank. Duplicates are harmless. `replay`: its nonce, remembered
     * with its effect (in the one statement of a success, or in the transaction of anything
     * else); a nonce used already is refused and changes nothing.
     */
    async handleCallback(bankCode: string, cb: BankCallback, replay?: ReplayGuard) {
      // A real bank sends no trace context: the callback's span says what it was about.
      annotateSpan({ 'tillpoint.bank': bankCode, 'tillpoint.callback_kind': cb.kind, 'tillpoint.ref': cb.ref });
      if (cb.kind === 'payment') {
        await applyPaymentResult({ txnRef: cb.ref, bankCode }, cb.result, 'callback', { replay });
        return { received: true };
      }
      const r = await repo.getRefundByRef(db, cb.ref);
      if (!r) throw new AppError('not_found', 'No refund with this reference');
      await settleRefund(r.id, cb.result, 'callback', replay);
      return { received: true };
    },

    /**
     * Reconciliation's answer for a payment flagged while still pending (deemed, unknown at the
     * bank), in the caller's transaction: the bank's settlement file shows it paid for its amount
     * (`succeeded`, with its ledger entry, hooks and terminal event), or covers its whole validity
     * without it (`failed`). Anything else (another state or flag, another amount) changes
     * nothing and returns undefined: people decide. The flag itself is cleared by the caller.
     */
    async settleFlaggedFromBankFile(
      tx: Queryable,
      paymentId: string,
      a: { paid: boolean; amountPaise?: number; detail: string },
    ) {
      const p = await repo.getPayment(tx, paymentId, true);
      if (p?.status !== 'pending' || !p.needs_reconciliation) return undefined;
      if (p.reconciliation_reason !== 'deemed' && p.reconciliation_reason !== 'unknown_at_bank') return undefined;
      if (a.paid && a.amountPaise !== p.amount) return undefined;
      const u = { completed_at: clock.now(), next_check_at: null };
      return transition(tx, p, a.paid ? 'succeeded' : 'failed', u, 'reconciliation', a.detail);
    },

    // ---- worker jobs (payments.jobs.ts) ----
    runStatusChecks: jobs.runStatusChecks,
    runExpiry: jobs.runExpiry,
    runRefundChecks: jobs.runRefundChecks,
    updateReconciliationGauge: jobs.updateReconciliationGauge,
  };
  return { ...service, create: timedCreate(pm, service.create) };
}

export type PaymentsService = ReturnType<typeof createPaymentsService>;
