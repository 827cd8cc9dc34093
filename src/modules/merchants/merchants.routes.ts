import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PageQuery, decodeCursor, pageOf } from '../../http/pagination.ts';
import type { MerchantsService } from './merchants.service.ts';
import * as S from './merchants.schemas.ts';

// Thin HTTP layer: schemas in, service call, schema out.

const ListQuery = Type.Object(PageQuery, { additionalProperties: false });
const TerminalListQuery = Type.Object(
  {
    ...PageQuery,
    merchant_id: Type.Optional(S.MerchantId),
    store_id: Type.Optional(S.StoreId),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled')])),
    online: Type.Optional(Type.Boolean({ description: 'Only terminals connected now (true) or not (false)' })),
  },
  { additionalProperties: false },
);
const IdParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
const StoreParams = Type.Object({ id: Type.String({ maxLength: 100 }), store_id: Type.String({ maxLength: 100 }) });
const tags = (t: string) => [t];

export function registerMerchantRoutes(app: FastifyInstance, svc: MerchantsService) {
  const p = (req: { principal?: import('../../platform/principal.ts').Principal }) => req.principal!;

  app.post<{ Body: Static<typeof S.CreateMerchant> }>(
    '/v1/merchants',
    {
      config: { permission: 'merchants:write' },
      schema: {
        tags: tags('merchants'),
        summary: 'Create a merchant (platform keys only)',
        body: S.CreateMerchant,
        response: { 201: S.Merchant },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.createMerchant(p(req), req.body)),
  );

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/merchants',
    {
      config: { permission: 'merchants:read' },
      schema: {
        tags: tags('merchants'),
        summary: 'List merchants',
        querystring: ListQuery,
        response: { 200: pageOf(S.Merchant) },
      },
    },
    async (req) => svc.listMerchants(p(req), { limit: req.query.limit, before: decodeCursor(req.query.cursor) }),
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/merchants/:id',
    {
      config: { permission: 'merchants:read' },
      schema: { tags: tags('merchants'), params: IdParam, response: { 200: S.Merchant } },
    },
    async (req) => svc.getMerchant(p(req), req.params.id),
  );

  app.patch<{ Params: Static<typeof IdParam>; Body: Static<typeof S.UpdateMerchant> }>(
    '/v1/merchants/:id',
    {
      config: { permission: 'merchants:write' },
      schema: { tags: tags('merchants'), params: IdParam, body: S.UpdateMerchant, response: { 200: S.Merchant } },
    },
    async (req) => svc.updateMerchant(p(req), req.params.id, req.body),
  );

  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof S.CreateStore> }>(
    '/v1/merchants/:id/stores',
    {
      config: { permission: 'merchants:write' },
      schema: {
        tags: tags('stores'),
        summary: 'Add a store (merchant point)',
        params: IdParam,
        body: S.CreateStore,
        response: { 201: S.Store },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.createStore(p(req), req.params.id, req.body)),
  );

  app.get<{ Params: Static<typeof IdParam>; Querystring: Static<typeof ListQuery> }>(
    '/v1/merchants/:id/stores',
    {
      config: { permission: 'merchants:read' },
      schema: { tags: tags('stores'), params: IdParam, querystring: ListQuery, response: { 200: pageOf(S.Store) } },
    },
    async (req) =>
      svc.listStores(p(req), req.params.id, { limit: req.query.limit, before: decodeCursor(req.query.cursor) }),
  );

  app.get<{ Params: Static<typeof StoreParams> }>(
    '/v1/merchants/:id/stores/:store_id',
    {
      config: { permission: 'merchants:read' },
      schema: { tags: tags('stores'), params: StoreParams, response: { 200: S.Store } },
    },
    async (req) => svc.getStore(p(req), req.params.id, req.params.store_id),
  );

  app.post<{ Body: Static<typeof S.CreateTerminal> }>(
    '/v1/terminals',
    {
      config: { permission: 'terminals:write' },
      schema: {
        tags: tags('terminals'),
        summary: 'Register a terminal in a store',
        body: S.CreateTerminal,
        response: { 201: S.Terminal },
      },
    },
    async (req, reply) => reply.status(201).send(await svc.createTerminal(p(req), req.body)),
  );

  app.get<{ Querystring: Static<typeof TerminalListQuery> }>(
    '/v1/terminals',
    {
      config: { permission: 'terminals:read' },
      schema: { tags: tags('terminals'), querystring: TerminalListQuery, response: { 200: pageOf(S.Terminal) } },
    },
    async (req) => svc.listTerminals(p(req), { ...req.query, before: decodeCursor(req.query.cursor) }),
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/terminals/:id',
    {
      config: { permission: 'terminals:read' },
      schema: { tags: tags('terminals'), params: IdParam, response: { 200: S.Terminal } },
    },
    async (req) => svc.getTerminal(p(req), req.params.id),
  );

  app.patch<{ Params: Static<typeof IdParam>; Body: Static<typeof S.UpdateTerminal> }>(
    '/v1/terminals/:id',
    {
      config: { permission: 'terminals:write' },
      schema: {
        tags: tags('terminals'),
        summary: 'Relabel, disable or re-enable a terminal',
        params: IdParam,
        body: S.UpdateTerminal,
        response: { 200: S.Terminal },
      },
    },
    async (req) => svc.updateTerminal(p(req), req.params.id, req.body),
  );
}
