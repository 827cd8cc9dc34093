import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { decodeCursor, pageOf } from '../../http/pagination.ts';
import { keepIdempotentAnswer } from '../../http/idempotency.ts';
import { isAppError } from '../../platform/errors.ts';
import type { Principal } from '../../platform/principal.ts';
import { registerBankCallbackRoute, type CheckedCallback } from '../banks/index.ts';
import type { PaymentsService } from './payments.service.ts';
import * as S from './payments.schemas.ts';
import { ApprovalRequired } from '../identity/index.ts';

const IdParam = Type.Object({ id: Type.String({ maxLength: 100 }) });

export interface CallbackVerifier {
  checkCallback(
    bankCode: string,
    headers: Record<string, string | string[] | undefined>,
    rawBody: string | Uint8Array,
    remoteAddr?: string,
  ): Promise<CheckedCallback>;
}

export function registerPaymentRoutes(app: FastifyInstance, svc: PaymentsService, verifier: CallbackVerifier) {
  const p = (req: { principal?: Principal }) => req.principal!;
  const tags = ['payments'];

  app.post<{ Body: Static<typeof S.CreatePayment> }>(
    '/v1/payments',
    {
      config: { permission: 'payments:write' },
      schema: {
        tags,
        summary: 'Create a UPI payment (dynamic QR or collect request) for a terminal',
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ maxLength: 255 })) }),
        body: S.CreatePayment,
        response: { 201: S.Payment },
      },
    },
    async (req, reply) => {
      // The Idempotency-Key also goes on the payment itself: a retry after the key's claim lapsed
      // (a crash before the response was stored) finds the payment instead of making a second.
      const clientRef = req.idempotency ? `${req.idempotency.scope}:${req.idempotency.key}` : undefined;
      try {
        return reply
          .status(201)
          .send(await svc.create(p(req), req.body as Parameters<PaymentsService['create']>[1], { clientRef }));
      } catch (e) {
        // A failure that names the payment it wrote (the bank could not take it) is this key's
        // final answer: a retry replays it rather than getting the failed payment as a 201.
        if (isAppError(e) && (e.details as { payment_id?: unknown } | undefined)?.payment_id !== undefined)
          keepIdempotentAnswer(req);
        throw e;
      }
    },
  );

  app.get<{ Querystring: Static<typeof S.PaymentListQuery> }>(
    '/v1/payments',
    {
      config: { permission: 'payments:read' },
      schema: {
        tags,
        summary: 'List payments, newest first',
        querystring: S.PaymentListQuery,
        response: { 200: pageOf(S.Payment) },
      },
    },
    async (req) => {
      const q = req.query;
      return svc.list(p(req), {
        merchantId: q.merchant_id,
        terminalId: q.terminal_id,
        storeId: q.store_id,
        status: q.status,
        createdFrom: q.created_from ? new Date(q.created_from) : undefined,
        createdTo: q.created_to ? new Date(q.created_to) : undefined,
        payerVpa: q.payer_vpa,
        needsReconciliation: q.needs_reconciliation,
        before: decodeCursor(q.cursor),
        limit: q.limit,
      });
    },
  );

  // What the console's refund form says before anyone submits: the window, and above which
  // amount an operator's refund waits for a second approver (the server decides either way).
  app.get(
    '/v1/payments/refund-policy',
    {
      config: { permission: 'payments:read' },
      schema: {
        tags,
        summary:
          "Refund rules: the window after success, and the amount above which an operator's refund needs a second approver",
        response: {
          200: Type.Object({
            window_days: Type.Integer(),
            approval_threshold_paise: Type.Integer({
              description:
                "An operator's refund above this waits for a second operator (API keys and terminals: never)",
            }),
          }),
        },
      },
    },
    async () => svc.refundPolicy(),
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/payments/:id',
    {
      config: { permission: 'payments:read' },
      schema: { tags, params: IdParam, response: { 200: S.Payment } },
    },
    async (req) => svc.get(p(req), req.params.id),
  );

  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof S.CreateRefund> }>(
    '/v1/payments/:id/refunds',
    {
      config: { permission: 'refunds:write' },
      schema: {
        tags,
        summary:
          "Refund all or part of a successful payment. An operator's refund above REFUND_APPROVAL_THRESHOLD_PAISE answers 202 approval_required: a second operator approves it (POST /v1/approvals/{id}/approve)",
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ maxLength: 255 })) }),
        params: IdParam,
        body: S.CreateRefund,
        response: { 201: S.Refund, 202: ApprovalRequired },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.refund(p(req), req.params.id, req.body)),
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/payments/:id/refunds',
    {
      config: { permission: 'payments:read' },
      schema: { tags, params: IdParam, response: { 200: pageOf(S.Refund) } },
    },
    async (req) => svc.listRefunds(p(req), req.params.id),
  );

  // Bank callbacks: verified by the bank's connector over the raw body, in a scope of their own
  // (src/modules/banks/callbacks.routes.ts), then applied here.
  registerBankCallbackRoute(app, verifier, (code, cb, replay) => svc.handleCallback(code, cb, replay));
}
