import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PageQuery, decodeCursor, pageOf } from '../../http/pagination.ts';
import { SELF_PERMISSION, type Principal } from '../../platform/principal.ts';
import { APPROVAL_KINDS, type ApprovalsService } from './approvals.service.ts';

// Four eyes over HTTP: the queue, a request, approve, reject. The routes declare account:self
// (every signed-in operator) because the permission that decides depends on the request's kind
// (refunds:approve, operators:approve): the service checks it for each request, and lists only
// the kinds the caller decides plus their own requests. API keys and terminals hold no
// account:self, so they never reach these routes.

const ts = Type.String({ format: 'date-time' });
const nts = Type.Union([ts, Type.Null()]);
const Kind = Type.Union(APPROVAL_KINDS.map((k) => Type.Literal(k)));
const Status = Type.Union(
  (['pending', 'approved', 'rejected', 'expired', 'failed'] as const).map((s) => Type.Literal(s)),
);
const Who = Type.Object({ id: Type.String(), name: Type.Union([Type.String(), Type.Null()]) });

export const Approval = Type.Object({
  id: Type.String(),
  kind: Kind,
  subject: Type.Object({ type: Type.String(), id: Type.String() }),
  merchant_id: Type.Union([Type.String(), Type.Null()]),
  payload: Type.Record(Type.String(), Type.Unknown(), {
    description: 'What was asked: for a refund {amount, reason}; for an MFA reset {operator_name}',
  }),
  status: Status,
  requested_by: Who,
  requested_at: ts,
  decided_by: Type.Union([Who, Type.Null()]),
  decided_at: nts,
  reason: Type.Union([Type.String(), Type.Null()], {
    description: "A rejection's reason, or why an approval could not be carried out (failed)",
  }),
  outcome: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], {
    description: 'What the approval did: {refund_id, refund_status} or {operator_id}; {error} when it failed',
  }),
  expires_at: ts,
  approve_permission: Type.String(),
  can_decide: Type.Boolean({ description: 'Whether the caller may approve or reject it now' }),
});

/** The 202 a gated action answers with: nothing was done yet; `details.approval` was filed. */
export const ApprovalRequired = Type.Object(
  {
    error: Type.Object({
      code: Type.Literal('approval_required'),
      message: Type.String(),
      request_id: Type.String(),
      details: Type.Object({ approval: Approval }),
    }),
  },
  { description: 'A second operator must approve: the request was filed and nothing was done yet' },
);

const IdParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
const ListQuery = Type.Object(
  {
    ...PageQuery,
    status: Type.Optional(Status),
    kind: Type.Optional(Kind),
    subject_type: Type.Optional(Type.Union([Type.Literal('payment'), Type.Literal('operator')])),
    subject_id: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);
const Reject = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

export function registerApprovalRoutes(app: FastifyInstance, approvals: ApprovalsService) {
  const p = (req: { principal?: Principal }) => req.principal!;
  const tags = ['approvals'];

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/approvals',
    {
      // Requests name operators and what they asked for: reading them is recorded.
      config: { permission: SELF_PERMISSION, audit: 'access' },
      schema: {
        tags,
        summary: 'Approval requests (four eyes) of the kinds you decide, and your own; newest first',
        querystring: ListQuery,
        response: { 200: pageOf(Approval) },
      },
    },
    async (req) =>
      approvals.list(p(req), {
        status: req.query.status,
        kind: req.query.kind,
        subject_type: req.query.subject_type,
        subject_id: req.query.subject_id,
        limit: req.query.limit,
        before: decodeCursor(req.query.cursor),
      }),
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/approvals/:id',
    {
      config: { permission: SELF_PERMISSION, audit: 'access' },
      schema: { tags, params: IdParam, response: { 200: Approval } },
    },
    async (req) => approvals.get(p(req), req.params.id),
  );

  app.post<{ Params: Static<typeof IdParam> }>(
    '/v1/approvals/:id/approve',
    {
      config: { permission: SELF_PERMISSION },
      schema: {
        tags,
        summary:
          "Approve another operator's request: it is carried out now, once (self_approval_forbidden for your own; approval_not_pending once decided or expired)",
        params: IdParam,
        response: { 200: Approval },
      },
    },
    async (req) => approvals.approve(p(req), req.params.id),
  );

  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof Reject> }>(
    '/v1/approvals/:id/reject',
    {
      config: { permission: SELF_PERMISSION },
      schema: {
        tags,
        summary: "Reject another operator's request, saying why; nothing is done",
        params: IdParam,
        body: Reject,
        response: { 200: Approval },
      },
    },
    async (req) => approvals.reject(p(req), req.params.id, req.body.reason),
  );
}
