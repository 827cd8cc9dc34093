import type { Logger } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import type { Db, Queryable } from '../../../platform/db.ts';
import type { Clock } from '../../../platform/clock.ts';
import { AppError } from '../../../platform/errors.ts';
import { isId } from '../../../platform/ids.ts';
import { maskVpa } from '../../../platform/mask.ts';
import type { Principal } from '../../../platform/principal.ts';
import type { Actor, AuditWriter } from '../../audit/index.ts';
import type { EncryptedField } from '../../vault/index.ts';
import * as repo from './compensation.repo.ts';
import type { CompensationRow, RetryRow } from './compensation.repo.ts';
import { compensationView } from './compensation.view.ts';

// An operator sends again a compensation credit the bank refused (status failed: a closed or
// frozen account), to the payer's VPA or to another VPA the operator gives. The money is still
// owed (compensation_payable), so nothing moves in the ledger until the worker sends the credit
// (compensation.service.ts) under a NEW reference: the bank is idempotent on the refused one and
// would only refuse it again. The old reference was closed by a definitive answer (declined or
// rejected), never an uncertain one, so the customer cannot be paid under both.
//
// Four eyes (the approvals facility, as for a refund above REFUND_APPROVAL_THRESHOLD_PAISE):
//   - another VPA: always. An operator naming where money goes is the movement a second person
//     must see (otherwise one operator could pay compensation to an account of their own);
//   - the payer's own VPA: only above the refund threshold, as a refund of that size would be.
// The retry row is written with its request; the approval carries it out (carryOut), once.

/** The other VPA an operator gives, sealed by the vault (bound to the retry's id). */
export const COMPENSATION_PAYEE_VPA_FIELD: EncryptedField = {
  table: 'settlement.compensation_retries',
  idColumn: 'id',
  column: 'payee_vpa_ct',
  purpose: 'payer_vpa',
};

/** How a retry that needs four eyes is filed (the identity module's approvals, wired by the app). */
export interface CompensationRetryApprovals {
  file(
    by: Principal,
    r: {
      retry_id: string;
      payment_id: string;
      day: number;
      amount: number;
      /** Masked: an approval's payload never holds personal data in clear. */
      payee_vpa: string | null;
      reason: string;
    },
    tx: Queryable,
  ): Promise<{ id: string }>;
}

/** Who asks: an operator over the API, or the CLI's user (who can name no other VPA: no second operator). */
export type RetryActor = { principal: Principal } | { cli: string };

export interface CompensationRetryDeps {
  db: Db;
  clock: Clock;
  logger: Logger;
  audit?: AuditWriter;
  vpaPattern: RegExp;
  /** Seals another VPA (the vault). Without it, a retry to another VPA is refused. */
  sealPayeeVpa?(retryId: string, vpa: string, tx: Queryable): Promise<string>;
  approvals?: CompensationRetryApprovals;
  /** The refunds' four-eyes threshold (REFUND_APPROVAL_THRESHOLD_PAISE): a retry above it needs approval too. */
  approvalThresholdPaise: number;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: a reason with control characters is refused
const REASON_RE = /^[^\u0000-\u001f\u007f]{1,200}$/;
const newRetryId = () => `cpr_${uuidv7().replaceAll('-', '')}`;
const newCreditRef = () => `CP${uuidv7().replaceAll('-', '').toUpperCase()}`;

export function retryView(r: RetryRow) {
  return {
    id: r.id,
    payment_id: r.payment_id,
    day: r.day,
    failed_credit_ref: r.failed_credit_ref,
    credit_ref: r.credit_ref,
    payee_vpa: r.payee_vpa_masked,
    reason: r.reason,
    requested_by: r.requested_by,
    requested_at: r.requested_at.toISOString(),
    approval_id: r.approval_id,
    carried_out_at: r.carried_out_at ? r.carried_out_at.toISOString() : null,
  };
}

export function createCompensationRetries(deps: CompensationRetryDeps) {
  const { db, clock, logger } = deps;

  const notRetryable = (c: CompensationRow) =>
    new AppError(
      'compensation_not_retryable',
      c.status === 'paid'
        ? 'This compensation credit is paid already'
        : c.status === 'legacy'
          ? 'This compensation was booked before credits existed (legacy): it is not paid by a credit'
          : `This compensation credit is ${c.status}, not refused: the worker is sending it`,
      { status: c.status },
    );

  /**
   * Puts the refused credit back to due under a new reference, in `tx`, and marks the retry
   * carried out. Throws compensation_not_retryable when it is no longer failed (paid, or another
   * retry got there first): the caller's transaction rolls back, nothing changed.
   */
  async function carryOutIn(tx: Queryable, retry: RetryRow, by: string, actor?: Actor) {
    const now = clock.now();
    const creditRef = newCreditRef();
    const c = await repo.restartFailedCredit(tx, {
      paymentId: retry.payment_id,
      day: retry.day,
      creditRef,
      retryId: retry.id,
      now,
    });
    if (!c) {
      const cur = await repo.getCompensation(tx, retry.payment_id, retry.day);
      throw notRetryable(cur!);
    }
    const done = await repo.markRetryCarriedOut(tx, retry.id, creditRef, now);
    if (!done) throw new AppError('conflict', 'This retry was carried out already');
    await deps.audit?.record(tx, {
      action: 'settlement.compensation_retried',
      // Over the API: the request's caller (the approver, for an approved retry); the CLI names its user.
      ...(actor ? { actor } : {}),
      resource: { type: 'compensation', id: `${c.payment_id}:${c.day}` },
      details: {
        retry_id: retry.id,
        payment_id: c.payment_id,
        day: c.day,
        amount: c.amount,
        failed_credit_ref: retry.failed_credit_ref,
        credit_ref: creditRef,
        payee_vpa: retry.payee_vpa_masked,
        requested_by: retry.requested_by,
        carried_out_by: by,
        approval_id: retry.approval_id,
      },
    });
    logger.info({ payment_id: c.payment_id, day: c.day, retry_id: retry.id }, 'compensation credit sent again');
    return { compensation: compensationView(c), retry: retryView(done) };
  }

  return {
    /**
     * An operator's (or the CLI's) retry of a refused credit. Answers the compensation, due again;
     * or throws approval_required (202) with the filed request when four eyes apply.
     */
    async retry(by: RetryActor, input: { paymentId: string; day: number; reason: string; payeeVpa?: string }) {
      if (!isId('payment', input.paymentId) || !Number.isSafeInteger(input.day) || input.day < 1)
        throw new AppError('compensation_not_found', 'Compensation not found');
      const reason = input.reason?.trim() ?? '';
      if (!REASON_RE.test(reason))
        throw new AppError('validation_failed', 'reason must be 1-200 printable characters', [
          { field: 'body.reason', problem: 'must be 1-200 printable characters' },
        ]);
      const vpa = input.payeeVpa?.trim().toLowerCase();
      if (vpa !== undefined && !deps.vpaPattern.test(vpa))
        throw new AppError('invalid_vpa', 'payee_vpa is not a valid UPI address');
      const principal = 'principal' in by ? by.principal : undefined;
      const requestedBy = principal ? `${principal.kind}:${principal.id}` : `cli:${'cli' in by ? by.cli : ''}`;

      const c = await repo.getCompensation(db, input.paymentId, input.day);
      if (!c) throw new AppError('compensation_not_found', 'Compensation not found');
      if (c.status !== 'failed') throw notRetryable(c);

      const fourEyes = vpa !== undefined || c.amount > deps.approvalThresholdPaise;
      if (fourEyes) {
        if (principal?.kind !== 'operator')
          throw new AppError(
            'forbidden',
            vpa !== undefined
              ? "A credit to another VPA needs a second operator's approval: an operator asks for it over the API (POST /v1/settlement/compensations/{payment_id}/{day}/retry)"
              : `A credit above ${deps.approvalThresholdPaise} paise needs a second operator's approval: an operator asks for it over the API`,
          );
        if (!deps.approvals) throw new AppError('service_unavailable', 'Approvals are not wired in this process');
        if (vpa !== undefined && !deps.sealPayeeVpa)
          throw new AppError('service_unavailable', 'The vault is not wired in this process: no VPA can be sealed');
        const id = newRetryId();
        const masked = vpa === undefined ? null : maskVpa(vpa);
        const approval = await db.tx(async (tx) => {
          const a = await deps.approvals!.file(
            principal,
            { retry_id: id, payment_id: c.payment_id, day: c.day, amount: c.amount, payee_vpa: masked, reason },
            tx,
          );
          await repo.insertRetry(tx, {
            id,
            payment_id: c.payment_id,
            day: c.day,
            failed_credit_ref: c.credit_ref!,
            payee_vpa_ct: vpa === undefined ? null : await deps.sealPayeeVpa!(id, vpa, tx),
            payee_vpa_masked: masked,
            reason,
            requested_by: requestedBy,
            requested_at: clock.now(),
            approval_id: a.id,
          });
          return a;
        });
        throw new AppError(
          'approval_required',
          vpa !== undefined
            ? "A credit to another VPA needs a second operator's approval: the request is filed"
            : `A credit above ${deps.approvalThresholdPaise} paise needs a second operator's approval: the request is filed`,
          { approval },
        );
      }

      return db.tx(async (tx) => {
        const retry = await repo.insertRetry(tx, {
          id: newRetryId(),
          payment_id: c.payment_id,
          day: c.day,
          failed_credit_ref: c.credit_ref!,
          payee_vpa_ct: null,
          payee_vpa_masked: null,
          reason,
          requested_by: requestedBy,
          requested_at: clock.now(),
          approval_id: null,
        });
        return carryOutIn(
          tx,
          retry,
          requestedBy,
          'cli' in by ? { type: 'cli', id: by.cli, merchant_id: null } : undefined,
        );
      });
    },

    /**
     * An approved retry, carried out as `approver`; `claim` records the approval in the same
     * transaction, so the credit goes out again once, or not at all.
     */
    async carryOut(
      retryId: string,
      approver: Principal,
      claim: (tx: Queryable, outcome: Record<string, unknown>) => Promise<void>,
    ) {
      return db.tx(async (tx) => {
        const retry = await repo.getRetry(tx, retryId, true);
        if (!retry) throw new AppError('compensation_not_found', 'Compensation retry not found');
        if (retry.carried_out_at) throw new AppError('conflict', 'This retry was carried out already');
        const out = await carryOutIn(tx, retry, `${approver.kind}:${approver.id}`);
        await claim(tx, {
          retry_id: retry.id,
          payment_id: retry.payment_id,
          day: retry.day,
          credit_ref: out.retry.credit_ref,
        });
        return out;
      });
    },
  };
}

export type CompensationRetries = ReturnType<typeof createCompensationRetries>;
