import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { decodeCursor, pageOf } from '../../http/pagination.ts';
import type { Principal } from '../../platform/principal.ts';
import type { RewardsService } from './rewards.service.ts';
import * as S from './rewards.schemas.ts';

// Thin HTTP layer over the rewards service. Merchant-scoped keys see their own program and the
// coalition they belong to; changing a coalition program needs a platform key. Reads that look a
// customer up (balance, statement, quote) are recorded in the audit trail as personal-data access.

const ProgramParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
const RuleParams = Type.Object({ id: Type.String({ maxLength: 100 }), rule_id: Type.String({ maxLength: 100 }) });
const MemberParams = Type.Object({ id: Type.String({ maxLength: 100 }), merchant_id: Type.String({ maxLength: 100 }) });
const PaymentParam = Type.Object({ payment_id: Type.String({ maxLength: 100 }) });
const Idem = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ maxLength: 255 })) });
const tags = ['rewards'];

export function registerRewardsRoutes(app: FastifyInstance, svc: RewardsService) {
  const p = (req: { principal?: Principal }) => req.principal!;

  app.post<{ Body: Static<typeof S.CreateProgram> }>(
    '/v1/rewards/programs',
    {
      config: { permission: 'rewards:write' },
      schema: {
        tags,
        summary: "Create a merchant's program, or (platform keys) a coalition program",
        headers: Idem,
        body: S.CreateProgram,
        response: { 201: S.Program },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.createProgram(p(req), req.body)),
  );

  app.get<{ Querystring: Static<typeof S.ProgramListQuery> }>(
    '/v1/rewards/programs',
    {
      config: { permission: 'rewards:read' },
      schema: {
        tags,
        summary: 'List programs, newest first',
        querystring: S.ProgramListQuery,
        response: { 200: pageOf(S.Program) },
      },
    },
    async (req) =>
      svc.listPrograms(p(req), {
        merchantId: req.query.merchant_id,
        before: decodeCursor(req.query.cursor),
        limit: req.query.limit,
      }),
  );

  app.get<{ Params: Static<typeof ProgramParam> }>(
    '/v1/rewards/programs/:id',
    {
      config: { permission: 'rewards:read' },
      schema: { tags, params: ProgramParam, response: { 200: S.Program } },
    },
    async (req) => svc.getProgram(p(req), req.params.id),
  );

  app.patch<{ Params: Static<typeof ProgramParam>; Body: Static<typeof S.UpdateProgram> }>(
    '/v1/rewards/programs/:id',
    {
      config: { permission: 'rewards:write' },
      schema: {
        tags,
        summary: 'Change settings or pause/resume a program (new settings apply to points earned from now on)',
        params: ProgramParam,
        body: S.UpdateProgram,
        response: { 200: S.Program },
      },
    },
    async (req) => svc.updateProgram(p(req), req.params.id, req.body),
  );

  app.post<{ Params: Static<typeof ProgramParam>; Body: Static<typeof S.CreateRule> }>(
    '/v1/rewards/programs/:id/rules',
    {
      config: { permission: 'rewards:write' },
      schema: {
        tags,
        summary: 'Add an earn rule (multiplier, minimum spend, cap per transaction, cap per customer per day)',
        params: ProgramParam,
        headers: Idem,
        body: S.CreateRule,
        response: { 201: S.Rule },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.addRule(p(req), req.params.id, req.body)),
  );

  app.get<{ Params: Static<typeof ProgramParam> }>(
    '/v1/rewards/programs/:id/rules',
    {
      config: { permission: 'rewards:read' },
      schema: { tags, params: ProgramParam, response: { 200: pageOf(S.Rule) } },
    },
    async (req) => svc.listRules(p(req), req.params.id),
  );

  app.delete<{ Params: Static<typeof RuleParams> }>(
    '/v1/rewards/programs/:id/rules/:rule_id',
    {
      config: { permission: 'rewards:write' },
      schema: { tags, params: RuleParams },
    },
    async (req, reply) => {
      await svc.deleteRule(p(req), req.params.id, req.params.rule_id);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: Static<typeof ProgramParam>; Body: Static<typeof S.AddMember> }>(
    '/v1/rewards/programs/:id/merchants',
    {
      config: { permission: 'rewards:write' },
      schema: {
        tags,
        summary: 'Add a merchant to a (coalition) program (platform keys only)',
        params: ProgramParam,
        body: S.AddMember,
        response: { 201: S.Member },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.addMerchant(p(req), req.params.id, req.body.merchant_id)),
  );

  app.get<{ Params: Static<typeof ProgramParam> }>(
    '/v1/rewards/programs/:id/merchants',
    {
      config: { permission: 'rewards:read' },
      schema: { tags, params: ProgramParam, response: { 200: pageOf(S.Member) } },
    },
    async (req) => svc.listMerchants(p(req), req.params.id),
  );

  app.delete<{ Params: Static<typeof MemberParams> }>(
    '/v1/rewards/programs/:id/merchants/:merchant_id',
    {
      config: { permission: 'rewards:write' },
      schema: {
        tags,
        summary: 'Remove a merchant from a program; its customers keep their points',
        params: MemberParams,
      },
    },
    async (req, reply) => {
      await svc.removeMerchant(p(req), req.params.id, req.params.merchant_id);
      return reply.status(204).send();
    },
  );

  app.get<{ Querystring: Static<typeof S.BalanceQuery> }>(
    '/v1/rewards/balance',
    {
      config: { permission: 'rewards:read', audit: 'access' },
      schema: {
        tags,
        summary: "A customer's points in the merchant's program (or the coalition it belongs to)",
        querystring: S.BalanceQuery,
        response: { 200: S.Balance },
      },
    },
    async (req) => svc.balance(p(req), req.query),
  );

  app.get<{ Querystring: Static<typeof S.StatementQuery> }>(
    '/v1/rewards/statement',
    {
      config: { permission: 'rewards:read', audit: 'access' },
      schema: {
        tags,
        summary: "A customer's point movements, newest first",
        querystring: S.StatementQuery,
        response: { 200: pageOf(S.Movement) },
      },
    },
    async (req) =>
      svc.statement(p(req), { ...req.query, before: decodeCursor(req.query.cursor), limit: req.query.limit }),
  );

  app.post<{ Body: Static<typeof S.CreateAdjustment> }>(
    '/v1/rewards/adjustments',
    {
      config: { permission: 'rewards:write' },
      schema: {
        tags,
        summary: "Credit or debit a customer's points by hand, with a reason",
        headers: Idem,
        body: S.CreateAdjustment,
        response: { 201: S.Adjustment },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.adjust(p(req), req.body)),
  );

  app.get<{ Querystring: Static<typeof S.QuoteQuery> }>(
    '/v1/rewards/quote',
    {
      config: { permission: 'rewards:read', audit: 'access' },
      schema: {
        tags,
        summary: 'What a basket would earn, and how many points it can burn',
        querystring: S.QuoteQuery,
        response: { 200: S.Quote },
      },
    },
    async (req) => svc.quote(p(req), req.query),
  );

  app.get<{ Params: Static<typeof PaymentParam> }>(
    '/v1/rewards/payments/:payment_id',
    {
      config: { permission: 'rewards:read' },
      schema: {
        tags,
        summary: 'Points a payment earned and redeemed',
        params: PaymentParam,
        response: { 200: S.PaymentRewards },
      },
    },
    async (req) => svc.paymentRewards(p(req), req.params.payment_id),
  );
}
