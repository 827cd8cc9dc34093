import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { decodeCursor, pageOf } from '../../http/pagination.ts';
import { merchantScope, type Principal } from '../../platform/principal.ts';
import { AppError } from '../../platform/errors.ts';
import type { BankCallback } from '../banks/index.ts';
import { ApprovalRequired } from '../identity/index.ts';
import type { SettlementService } from './settlement.service.ts';
import * as S from './settlement.schemas.ts';

// Settlement's HTTP routes. Cycles, their exceptions, payout batches and merchants' payout terms
// are platform work (a platform key or platform staff); payouts and reversals are also visible to
// a merchant's own key, for its own merchant only.

export interface CallbackVerifier {
  verifyCallback(
    bankCode: string,
    headers: Record<string, string | string[] | undefined>,
    rawBody: string,
    remoteAddr: string,
  ): Promise<BankCallback>;
}

const p = (req: { principal?: Principal }) => req.principal!;

function platformOnly(principal: Principal) {
  if (principal.merchantId !== null || principal.kind === 'terminal')
    throw new AppError('forbidden', 'Settlement cycles and batches are for platform staff and platform keys');
}

export function registerSettlementRoutes(app: FastifyInstance, svc: SettlementService, verifier: CallbackVerifier) {
  const tags = ['settlement'];
  const READ = { permission: 'settlement:read' };
  const WRITE = { permission: 'settlement:write' };

  app.get<{ Querystring: { limit: number; cursor?: string } }>(
    '/v1/settlement/cycles',
    {
      config: READ,
      schema: {
        tags,
        summary: 'Closed settlement cycles, newest first',
        querystring: S.PageQueryOnly,
        response: { 200: pageOf(S.Cycle) },
      },
    },
    async (req) => {
      platformOnly(p(req));
      return svc.cycles.list({ before: req.query.cursor, limit: req.query.limit });
    },
  );

  app.get<{ Params: Static<typeof S.CycleKeyParam> }>(
    '/v1/settlement/cycles/:key',
    { config: READ, schema: { tags, params: S.CycleKeyParam, response: { 200: S.Cycle } } },
    async (req) => {
      platformOnly(p(req));
      return svc.cycles.get(req.params.key);
    },
  );

  app.post<{ Params: Static<typeof S.CycleKeyParam> }>(
    '/v1/settlement/cycles/:key/close',
    {
      config: WRITE,
      schema: {
        tags,
        summary: 'Close an ended cycle: expected totals per bank, payouts, comparison with the bank files',
        params: S.CycleKeyParam,
        response: { 200: S.CloseCycleResult },
      },
    },
    async (req) => {
      platformOnly(p(req));
      return svc.cycles.close(req.params.key);
    },
  );

  app.get<{ Querystring: Static<typeof S.CycleExceptionQuery> }>(
    '/v1/settlement/cycle-exceptions',
    {
      config: READ,
      schema: {
        tags,
        summary: 'Differences between a cycle and a bank file',
        querystring: S.CycleExceptionQuery,
        response: { 200: pageOf(S.CycleException) },
      },
    },
    async (req) => {
      platformOnly(p(req));
      const q = req.query;
      return svc.cycles.listExceptions({
        status: q.status,
        cycleKey: q.cycle_key,
        bankCode: q.bank_code,
        before: decodeCursor(q.cursor),
        limit: q.limit,
      });
    },
  );

  app.post<{ Params: Static<typeof S.IdParam>; Body: Static<typeof S.Resolve> }>(
    '/v1/settlement/cycle-exceptions/:id/resolve',
    { config: WRITE, schema: { tags, params: S.IdParam, body: S.Resolve, response: { 200: S.CycleException } } },
    async (req) => {
      platformOnly(p(req));
      return svc.cycles.resolveException(req.params.id, req.body.resolution);
    },
  );

  app.get<{ Querystring: Static<typeof S.PayoutQuery> }>(
    '/v1/settlement/payouts',
    {
      config: READ,
      schema: {
        tags,
        summary: 'Payouts to merchants, newest first',
        querystring: S.PayoutQuery,
        response: { 200: pageOf(S.Payout) },
      },
    },
    async (req) => {
      const q = req.query;
      return svc.payouts.list({
        merchantId: merchantScope(p(req), q.merchant_id),
        cycleKey: q.cycle_key,
        status: q.status,
        before: decodeCursor(q.cursor),
        limit: q.limit,
      });
    },
  );

  app.get<{ Params: Static<typeof S.IdParam> }>(
    '/v1/settlement/payouts/:id',
    { config: READ, schema: { tags, params: S.IdParam, response: { 200: S.Payout } } },
    async (req) => {
      const out = await svc.payouts.get(req.params.id);
      if (merchantScope(p(req)) !== undefined && merchantScope(p(req)) !== out.merchant_id)
        throw new AppError('not_found', 'Payout not found');
      return out;
    },
  );

  app.post(
    '/v1/settlement/payouts/export',
    {
      config: { ...WRITE, audit: 'access' },
      schema: {
        tags,
        summary: 'Write the due payouts into one bulk-transfer batch and mark them sent',
        response: { 200: S.ExportResult },
      },
    },
    async (req) => {
      platformOnly(p(req));
      const out = await svc.payouts.exportDue();
      return { batch: out.batch, skipped: out.skipped };
    },
  );

  app.get<{ Params: Static<typeof S.IdParam> }>(
    '/v1/settlement/payout-batches/:id/file',
    {
      config: { ...WRITE, audit: 'access' },
      schema: { tags, summary: "A batch's bulk-transfer file (CSV), byte for byte as sent", params: S.IdParam },
    },
    async (req, reply) => {
      platformOnly(p(req));
      const f = await svc.payouts.batchFile(req.params.id);
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${f.file_name}"`)
        .send(f.content);
    },
  );

  app.post<{ Params: Static<typeof S.IdParam>; Body: Static<typeof S.MarkPaid> }>(
    '/v1/settlement/payouts/:id/paid',
    {
      config: WRITE,
      schema: {
        tags,
        summary: 'The bank confirmed the transfer',
        params: S.IdParam,
        body: S.MarkPaid,
        response: { 200: S.Payout },
      },
    },
    async (req) => {
      platformOnly(p(req));
      return svc.payouts.markPaid(req.params.id, req.body.bank_ref);
    },
  );

  app.post<{ Params: Static<typeof S.IdParam>; Body: Static<typeof S.MarkReturned> }>(
    '/v1/settlement/payouts/:id/returned',
    {
      config: WRITE,
      schema: {
        tags,
        summary: 'The bank returned the transfer',
        params: S.IdParam,
        body: S.MarkReturned,
        response: { 200: S.Payout },
      },
    },
    async (req) => {
      platformOnly(p(req));
      return svc.payouts.markReturned(req.params.id, req.body.reason);
    },
  );

  app.get<{ Params: Static<typeof S.MerchantParam> }>(
    '/v1/settlement/merchants/:id/terms',
    {
      config: READ,
      schema: {
        tags,
        summary: "A merchant's payout schedule, fees and holds",
        params: S.MerchantParam,
        response: { 200: S.Terms },
      },
    },
    async (req) => svc.payouts.getTerms(merchantScope(p(req), req.params.id)!),
  );

  app.patch<{ Params: Static<typeof S.MerchantParam>; Body: Static<typeof S.TermsPatch> }>(
    '/v1/settlement/merchants/:id/terms',
    {
      config: WRITE,
      schema: {
        tags,
        summary: "Change a merchant's payout terms (a review holds its unsent payouts)",
        params: S.MerchantParam,
        body: S.TermsPatch,
        response: { 200: S.Terms },
      },
    },
    async (req) => {
      platformOnly(p(req));
      return svc.payouts.setTerms(req.params.id, req.body);
    },
  );

  app.get<{ Querystring: Static<typeof S.ReversalQuery> }>(
    '/v1/settlement/reversals',
    {
      config: READ,
      schema: {
        tags,
        summary: 'Reversals to customers, newest first',
        querystring: S.ReversalQuery,
        response: { 200: pageOf(S.Reversal) },
      },
    },
    async (req) => {
      const q = req.query;
      return svc.reversals.list({
        status: q.status as 'scheduled' | 'pending' | 'succeeded' | 'failed' | undefined,
        paymentId: q.payment_id,
        merchantId: merchantScope(p(req), q.merchant_id),
        overdue: q.overdue,
        before: decodeCursor(q.cursor),
        limit: q.limit,
      });
    },
  );

  app.get<{ Params: Static<typeof S.IdParam> }>(
    '/v1/settlement/reversals/:id',
    { config: READ, schema: { tags, params: S.IdParam, response: { 200: S.ReversalDetail } } },
    async (req) => {
      const r = await svc.reversals.get(req.params.id);
      const scope = merchantScope(p(req));
      if (scope !== undefined && scope !== r.merchant_id) throw new AppError('not_found', 'Reversal not found');
      return r;
    },
  );

  app.post<{ Params: Static<typeof S.CompensationParams>; Body: Static<typeof S.RetryCompensation> }>(
    '/v1/settlement/compensations/:payment_id/:day/retry',
    {
      // Its own permission, people only (never an API key's): a credit to a VPA an operator gives.
      config: { permission: 'compensations:retry' },
      schema: {
        tags,
        summary:
          "Send again a compensation credit the bank refused (failed), under a new reference, to the payer's VPA or to payee_vpa. To another VPA (or above REFUND_APPROVAL_THRESHOLD_PAISE) it answers 202 approval_required: a second operator with compensations:approve approves it (POST /v1/approvals/{id}/approve)",
        params: S.CompensationParams,
        body: S.RetryCompensation,
        response: { 200: S.RetryCompensationResult, 202: ApprovalRequired },
      },
    },
    async (req) => {
      platformOnly(p(req));
      return svc.retries.retry(
        { principal: p(req) },
        {
          paymentId: req.params.payment_id,
          day: req.params.day,
          reason: req.body.reason,
          payeeVpa: req.body.payee_vpa,
        },
      );
    },
  );

  app.post<{ Body: Static<typeof S.CreateReversal> }>(
    '/v1/settlement/reversals',
    {
      config: WRITE,
      schema: {
        tags,
        summary: 'Pay a customer back through the bank (idempotent per caller, payment and reason)',
        body: S.CreateReversal,
        response: { 201: S.CreateReversalResult },
      },
    },
    async (req, reply) => {
      platformOnly(p(req));
      const sourceRef = req.idempotency ? `api:${req.idempotency.key}` : `api:${p(req).id}`;
      return reply.status(201).send(
        await svc.requestReversal({
          paymentId: req.body.payment_id,
          amountPaise: req.body.amount,
          reason: req.body.reason,
          sourceRef,
        }),
      );
    },
  );

  // The bank's signed callbacks for reversals (refund-type calls made by settlement). Proved by
  // signature, timestamp and single-use nonce (the banks module checks them) before anything.
  app.post<{ Params: Static<typeof S.BankParam> }>(
    '/v1/settlement/banks/:code/callbacks',
    {
      config: { public: true },
      schema: { tags: ['banks'], summary: 'Signed reversal callback from a bank', params: S.BankParam },
    },
    async (req) => {
      const cb = await verifier.verifyCallback(req.params.code, req.headers, req.rawBody ?? '', req.ip);
      if (cb.kind !== 'refund') throw new AppError('not_found', 'Not a reversal');
      const r = await svc.reversals.handleRefundCallback(cb.ref, cb.result);
      if (!r) throw new AppError('not_found', 'No reversal with this reference');
      return { received: true };
    },
  );
}
