import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PageQuery, decodeCursor, encodeCursor } from '../../http/pagination.ts';
import { AppError } from '../../platform/errors.ts';
import type { AuditService } from './audit.service.ts';

// Reading the trail: the auditor permission only. Every read is itself recorded (the
// permission is in DATA_ACCESS_PERMISSIONS, so http.ts records it before the answer leaves).

const tags = ['audit'];
const Id = Type.String({ maxLength: 100 });
const ListQuery = Type.Object(
  {
    ...PageQuery,
    actor_id: Type.Optional(Type.String({ maxLength: 100 })),
    resource_id: Type.Optional(Type.String({ maxLength: 100 })),
    merchant_id: Type.Optional(Type.String({ maxLength: 100 })),
    action: Type.Optional(Type.String({ pattern: '^[a-z_]+(\\.[a-z_]+)*$', maxLength: 100 })),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);

const Record = Type.Object(
  {
    id: Type.String(),
    at: Type.String(),
    action: Type.String(),
    outcome: Type.String(),
    actor: Type.Object({}, { additionalProperties: true }),
    origin: Type.Object({}, { additionalProperties: true }),
    resource: Type.Object({}, { additionalProperties: true }),
    details: Type.Object({}, { additionalProperties: true }),
    host: Type.String(),
    leaf_index: Type.Union([Type.Integer(), Type.Null()]),
  },
  { additionalProperties: true },
);

const Head = Type.Object({
  tree_size: Type.Integer(),
  root_hash: Type.String(),
  timestamp: Type.String(),
  key_id: Type.String(),
  signature: Type.String(),
});

export function registerAuditRoutes(app: FastifyInstance, audit: AuditService) {
  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/audit/events',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags,
        summary: 'Read the audit trail, newest first',
        querystring: ListQuery,
        response: {
          200: Type.Object({ data: Type.Array(Record), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
        },
      },
    },
    async (req) => {
      const q = req.query;
      const rows = await audit.listEvents({
        actorId: q.actor_id,
        resourceId: q.resource_id,
        merchantId: q.merchant_id,
        action: q.action,
        from: q.from ? new Date(q.from) : undefined,
        to: q.to ? new Date(q.to) : undefined,
        before: decodeCursor(q.cursor),
        limit: q.limit,
      });
      const data = rows.slice(0, q.limit);
      return { data, next_cursor: rows.length > q.limit ? encodeCursor(data[data.length - 1].id) : null };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/audit/events/:id',
    {
      config: { permission: 'audit:read' },
      schema: { tags, params: Type.Object({ id: Id }), response: { 200: Record } },
    },
    async (req) => audit.getEvent(req.params.id),
  );

  app.get<{ Params: { id: string }; Querystring: { tree_size?: number } }>(
    '/v1/audit/events/:id/proof',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags,
        summary: 'Inclusion proof of a record in a signed tree head (RFC 6962), checkable without Tillpoint',
        params: Type.Object({ id: Id }),
        querystring: Type.Object(
          { tree_size: Type.Optional(Type.Integer({ minimum: 1 })) },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => audit.prove(req.params.id, req.query.tree_size),
  );

  app.get(
    '/v1/audit/head',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags,
        summary: 'The latest signed tree head and the public key that signed it',
        response: {
          200: Type.Object({ head: Type.Union([Head, Type.Null()]), public_key: Type.String(), key_id: Type.String() }),
        },
      },
    },
    async () => ({
      head: (await audit.latestHead()) ?? null,
      public_key: audit.keys.publicKey.toString('base64'),
      key_id: audit.keys.keyId,
    }),
  );

  app.get<{ Querystring: { first: number; second: number } }>(
    '/v1/audit/consistency',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags,
        summary: 'Consistency proof between two signed tree heads (RFC 6962)',
        querystring: Type.Object(
          { first: Type.Integer({ minimum: 1 }), second: Type.Integer({ minimum: 1 }) },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      if (req.query.first > req.query.second)
        throw new AppError('validation_failed', 'first must not be larger than second');
      return audit.consistency(req.query.first, req.query.second);
    },
  );
}
