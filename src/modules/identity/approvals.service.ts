import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError, isAppError, type ErrorCode } from '../../platform/errors.ts';
import { isId, newId } from '../../platform/ids.ts';
import { canAccessMerchant, type Principal } from '../../platform/principal.ts';
import { page } from '../../http/pagination.ts';
import { SYSTEM_ACTOR, type AuditWriter } from '../audit/index.ts';
import * as repo from './approvals.repo.ts';
import type { ApprovalKind, ApprovalListRow, ApprovalRow, ApprovalStatus } from './approvals.repo.ts';

// Four eyes: a request that a second, different operator must approve before it takes effect.
// One small facility for every kind (a refund above the threshold, an MFA reset over the API):
// the kind says which permission decides it and how an approved request is carried out.
//
// The rules, each enforced here and the first also by the schema (migrations/0028):
// - whoever asked never decides (self_approval_forbidden), nor does the operator an MFA reset is for;
// - a decision is a claim (UPDATE … WHERE status = 'pending' AND expires_at > now) made in the
//   transaction that carries out the effect, so an approved request acts exactly once, and two
//   approvers at once get one effect and one approval_not_pending;
// - a request past its expiry can no longer be approved (the worker also marks it expired);
// - every request, approval, rejection, failure and expiry is an audit record, in its transaction.

export const APPROVAL_KINDS = ['refund', 'mfa_reset', 'compensation_retry'] as const satisfies readonly ApprovalKind[];

/** The permission that decides each kind. Held by people only (never grantable to an API key). */
export const APPROVAL_PERMISSION: Record<ApprovalKind, string> = {
  refund: 'refunds:approve',
  mfa_reset: 'operators:approve',
  // A refused compensation credit sent to a VPA an operator gives (settlement).
  compensation_retry: 'compensations:approve',
};

/**
 * Writes the approval in `tx` (the transaction that carries out the effect), with what the
 * effect produced; throws approval_not_pending when someone else decided first (rolling `tx` back).
 */
export type ClaimApproval = (tx: Queryable, outcome: Record<string, unknown>) => Promise<void>;

export interface ApprovalExecutor {
  /** Carries out an approved request as `approver`; must call `claim` inside its effect's transaction. */
  execute(request: ApprovalRow, approver: Principal, claim: ClaimApproval): Promise<Record<string, unknown>>;
  /**
   * Refusals after which the request can never succeed (the payment was refunded meanwhile, the
   * operator was deleted): the request is closed as `failed` with the code, instead of lingering.
   */
  finalRefusals?: readonly ErrorCode[];
}

export interface ApprovalsDeps {
  db: Db;
  clock: Clock;
  audit: AuditWriter;
  config: { identity: { approvalExpiryHours: number } };
}

export interface FileApprovalInput {
  kind: ApprovalKind;
  subject_type: string;
  subject_id: string;
  merchant_id: string | null;
  payload: Record<string, unknown>;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

export function createApprovalsService(deps: ApprovalsDeps) {
  const { db, clock, audit } = deps;
  const ttlMs = deps.config.identity.approvalExpiryHours * 3_600_000;
  const executors = new Map<ApprovalKind, ApprovalExecutor>();

  const resource = (a: Pick<ApprovalRow, 'id' | 'merchant_id'>) => ({
    type: 'approval',
    id: a.id,
    merchant_id: a.merchant_id,
  });
  const mayDecideKind = (p: Principal, kind: ApprovalKind) =>
    p.kind === 'operator' && p.permissions.has(APPROVAL_PERMISSION[kind]);
  const selfReason = (p: Principal, a: Pick<ApprovalRow, 'requested_by' | 'kind' | 'subject_id'>) =>
    a.requested_by === p.id
      ? 'You asked for this: a second, different operator must approve it'
      : a.kind === 'mfa_reset' && a.subject_id === p.id
        ? 'This request is about your own account: another operator must decide it'
        : undefined;

  function view(a: ApprovalListRow, p: Principal) {
    const now = clock.now();
    const live = a.status === 'pending' && new Date(a.expires_at) > now;
    return {
      id: a.id,
      kind: a.kind,
      subject: { type: a.subject_type, id: a.subject_id },
      merchant_id: a.merchant_id,
      payload: a.payload,
      // A pending request past its expiry reads as expired even before the worker's sweep.
      status: (a.status === 'pending' && !live ? 'expired' : a.status) as ApprovalStatus,
      requested_by: { id: a.requested_by, name: a.requested_by_name },
      requested_at: iso(a.requested_at)!,
      decided_by: a.decided_by ? { id: a.decided_by, name: a.decided_by_name } : null,
      decided_at: iso(a.decided_at),
      reason: a.reason,
      outcome: a.outcome,
      expires_at: iso(a.expires_at)!,
      approve_permission: APPROVAL_PERMISSION[a.kind],
      can_decide: live && mayDecideKind(p, a.kind) && selfReason(p, a) === undefined,
    };
  }
  type ApprovalView = ReturnType<typeof view>;

  /** A request the caller may see: of a kind they decide, or their own; in their merchant. Else 404. */
  async function visible(q: Queryable, p: Principal, id: string, lock = false): Promise<ApprovalListRow> {
    const a = isId('approval', id) ? await repo.getApproval(q, id, lock) : undefined;
    if (!a) throw new AppError('not_found', 'Approval request not found');
    if (a.merchant_id !== null && !canAccessMerchant(p, a.merchant_id))
      throw new AppError('not_found', 'Approval request not found');
    if (a.merchant_id === null && p.merchantId !== null) throw new AppError('not_found', 'Approval request not found');
    if (!mayDecideKind(p, a.kind) && a.requested_by !== p.id)
      throw new AppError('not_found', 'Approval request not found');
    return a;
  }

  /** Checks that `p` may decide `a` now; records a refused self-approval (someone tried). */
  async function assertDecider(p: Principal, a: ApprovalListRow, decision: 'approve' | 'reject') {
    if (!mayDecideKind(p, a.kind))
      throw new AppError('forbidden', `Deciding this request needs the ${APPROVAL_PERMISSION[a.kind]} permission`);
    const self = selfReason(p, a);
    if (self) {
      await audit.record(db, {
        action: decision === 'approve' ? 'approval.approved' : 'approval.rejected',
        outcome: 'failure',
        resource: resource(a),
        details: { kind: a.kind, reason: 'self_approval', requested_by: a.requested_by },
      });
      throw new AppError('self_approval_forbidden', self);
    }
    if (a.status !== 'pending')
      throw new AppError('approval_not_pending', `This request is ${a.status} already`, { status: a.status });
    if (new Date(a.expires_at) <= clock.now()) {
      await svc.expireStale();
      throw new AppError('approval_not_pending', 'This request has expired; ask again if it is still needed', {
        status: 'expired',
      });
    }
  }

  const svc = {
    /** How an approved request of `kind` is carried out (wired by the app: refunds live in payments). */
    registerExecutor(kind: ApprovalKind, executor: ApprovalExecutor) {
      executors.set(kind, executor);
    },

    /** Files a request. Only a person asks: an operator (API keys and terminals are never gated). */
    async file(p: Principal, input: FileApprovalInput, q: Queryable = db): Promise<ApprovalView> {
      if (p.kind !== 'operator') throw new AppError('forbidden', 'Only an operator can ask for an approval');
      if (!executors.has(input.kind))
        throw new AppError('service_unavailable', `Approvals of ${input.kind} are not available in this process`);
      const now = clock.now();
      const id = newId('approval');
      const write = async (tx: Queryable) => {
        const row = await repo.insertApproval(tx, {
          id,
          kind: input.kind,
          subject_type: input.subject_type,
          subject_id: input.subject_id,
          merchant_id: input.merchant_id,
          payload: input.payload,
          requested_by: p.id,
          expires_at: new Date(now.getTime() + ttlMs),
          now,
        });
        await audit.record(tx, {
          action: 'approval.requested',
          resource: resource(row),
          details: {
            kind: input.kind,
            subject_type: input.subject_type,
            subject_id: input.subject_id,
            ...input.payload,
            expires_at: row.expires_at.toISOString(),
          },
        });
      };
      try {
        if (q === db) await db.tx(write);
        else await write(q);
      } catch (e) {
        // The partial unique index: one pending MFA reset per operator.
        if ((e as { code?: string }).code === '23505')
          throw new AppError('conflict', 'A request for this is already waiting for approval');
        throw e;
      }
      return view((await repo.getApproval(q, id))!, p);
    },

    async list(
      p: Principal,
      f: {
        status?: ApprovalStatus;
        kind?: ApprovalKind;
        subject_type?: string;
        subject_id?: string;
        limit: number;
        before?: string;
      },
    ) {
      if (p.kind !== 'operator') throw new AppError('forbidden', 'Approval requests are for operators');
      const kinds = APPROVAL_KINDS.filter((k) => mayDecideKind(p, k));
      const rows = await repo.listApprovals(db, {
        kinds,
        requestedBy: p.id,
        kind: f.kind,
        merchantId: p.merchantId ?? undefined,
        status: f.status,
        subjectType: f.subject_type,
        subjectId: f.subject_id,
        before: f.before,
        limit: f.limit,
      });
      return page(
        rows.map((r) => view(r, p)),
        f.limit,
      );
    },

    async get(p: Principal, id: string) {
      return view(await visible(db, p, id), p);
    },

    /** The second pair of eyes says yes: the request is carried out, once. */
    async approve(p: Principal, id: string): Promise<ApprovalView> {
      const a = await visible(db, p, id);
      await assertDecider(p, a, 'approve');
      const executor = executors.get(a.kind);
      if (!executor) throw new AppError('service_unavailable', `Approvals of ${a.kind} are not available here`);
      let claimed = false;
      const claim: ClaimApproval = async (tx, outcome) => {
        const ok = await repo.decideApproval(tx, {
          id: a.id,
          status: 'approved',
          decidedBy: p.id,
          now: clock.now(),
          reason: null,
          outcome,
        });
        if (!ok)
          throw new AppError('approval_not_pending', 'This request was decided meanwhile, or has expired', {
            status: (await repo.getApproval(tx, a.id))?.status,
          });
        await audit.record(tx, {
          action: 'approval.approved',
          resource: resource(a),
          details: { kind: a.kind, subject_id: a.subject_id, requested_by: a.requested_by, ...outcome },
        });
        claimed = true;
      };
      try {
        const outcome = await executor.execute(a, p, claim);
        await repo.setApprovalOutcome(db, a.id, outcome);
      } catch (e) {
        if (!claimed && isAppError(e) && executor.finalRefusals?.includes(e.code)) {
          await db.tx(async (tx) => {
            const closed = await repo.decideApproval(tx, {
              id: a.id,
              status: 'failed',
              decidedBy: p.id,
              now: clock.now(),
              reason: e.message.slice(0, 200),
              outcome: { error: e.code },
            });
            if (closed)
              await audit.record(tx, {
                action: 'approval.failed',
                outcome: 'failure',
                resource: resource(a),
                details: { kind: a.kind, subject_id: a.subject_id, error: e.code },
              });
          });
        }
        throw e;
      }
      return view((await repo.getApproval(db, a.id))!, p);
    },

    /** The second pair of eyes says no, and why. Nothing was done, nothing is. */
    async reject(p: Principal, id: string, reason: string): Promise<ApprovalView> {
      const text = reason.trim();
      if (!text)
        throw new AppError('validation_failed', 'Say why the request is rejected', [
          { field: 'body.reason', problem: 'is required' },
        ]);
      // Checked outside the transaction (a refused attempt is recorded on its own); the claim
      // below is the guard against a decision made in between.
      const a = await visible(db, p, id);
      await assertDecider(p, a, 'reject');
      return db.tx(async (tx) => {
        const ok = await repo.decideApproval(tx, {
          id: a.id,
          status: 'rejected',
          decidedBy: p.id,
          now: clock.now(),
          reason: text,
          outcome: null,
        });
        if (!ok) throw new AppError('approval_not_pending', 'This request was decided meanwhile, or has expired');
        await audit.record(tx, {
          action: 'approval.rejected',
          resource: resource(a),
          details: { kind: a.kind, subject_id: a.subject_id, requested_by: a.requested_by, reason: text },
        });
        return view((await repo.getApproval(tx, a.id))!, p);
      });
    },

    /** Pending requests past their expiry become expired (run by the worker; also on a late decision). */
    async expireStale(): Promise<number> {
      return db.tx(async (tx) => {
        const rows = await repo.expireApprovals(tx, clock.now());
        for (const a of rows)
          await audit.record(tx, {
            action: 'approval.expired',
            actor: SYSTEM_ACTOR('worker'),
            resource: resource(a),
            details: { kind: a.kind, subject_id: a.subject_id, requested_by: a.requested_by },
          });
        return rows.length;
      });
    },
  };
  return svc;
}

export type ApprovalsService = ReturnType<typeof createApprovalsService>;
export type ApprovalView = Awaited<ReturnType<ApprovalsService['get']>>;
