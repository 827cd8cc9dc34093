import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { decodeCursor, page, pageOf, PageQuery } from '../../../http/pagination.ts';
import type { Clock } from '../../../platform/clock.ts';
import type { Db } from '../../../platform/db.ts';
import { AppError } from '../../../platform/errors.ts';
import type { Principal } from '../../../platform/principal.ts';
import { agingBuckets, DUE_SOON_HOURS, listAgedExceptions } from './queue.repo.ts';
import type { ReconService } from './recon.service.ts';
import { EXCEPTION_KINDS } from './types.ts';

// The exception queue as the console works it: every exception with its age and the deadline it
// is held to (the RBI's T + tat days for a failed UPI payment; see queue.repo.ts), filters by age
// and by time left, and a summary by time left for the overview. Read-only: resolving and approving
// stay the routes of recon.routes.ts. Platform work, like the rest of reconciliation.

const Nullable = <T extends import('@sinclair/typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time' });
const BankCode = Type.String({ pattern: '^[A-Z0-9_]{2,20}$' });

const QueueItem = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  bank_code: Type.String(),
  cycle_key: Nullable(Type.String()),
  file_id: Nullable(Type.String()),
  line_no: Nullable(Type.Integer()),
  payment_id: Nullable(Type.String()),
  refund_id: Nullable(Type.String()),
  amount_paise: Type.Integer(),
  expected_paise: Nullable(Type.Integer()),
  detail: Type.String(),
  status: Type.String(),
  resolution: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  requested_resolution: Nullable(Type.String()),
  requested_by: Nullable(Type.String()),
  requested_at: Nullable(Time),
  resolved_by: Nullable(Type.String()),
  approved_by: Nullable(Type.String()),
  reversal_id: Nullable(Type.String()),
  created_at: Time,
  resolved_at: Nullable(Time),
  transaction_at: Time,
  deadline_at: Type.String({ format: 'date-time', description: 'First instant past T + tat days (IST)' }),
  age_seconds: Type.Integer({ description: 'From opening to now, or to its resolution' }),
  seconds_to_deadline: Type.Integer({ description: 'Negative once past the deadline' }),
  overdue: Type.Boolean(),
});

const QueueQuery = Type.Object(
  {
    ...PageQuery,
    status: Type.Optional(
      Type.Union(
        ['open', 'pending_approval', 'resolved', 'unresolved'].map((s) => Type.Literal(s)),
        {
          description: 'unresolved: open or waiting for a second operator',
        },
      ),
    ),
    kind: Type.Optional(Type.Union(EXCEPTION_KINDS.map((k) => Type.Literal(k)))),
    bank_code: Type.Optional(BankCode),
    min_age_hours: Type.Optional(Type.Number({ minimum: 0, maximum: 24 * 366 })),
    deadline: Type.Optional(
      Type.Union([Type.Literal('overdue'), Type.Literal('due_soon'), Type.Literal('on_time')], {
        description: `overdue: past it; due_soon: within ${DUE_SOON_HOURS} h; on_time: further away (or resolved in time)`,
      }),
    ),
  },
  { additionalProperties: false },
);

const Aging = Type.Object({
  generated_at: Time,
  tat_days: Type.Integer(),
  buckets: Type.Array(
    Type.Object({
      bucket: Type.String({ description: 'overdue, due_24h, due_48h, later' }),
      kind: Type.String(),
      count: Type.Integer(),
      amount_paise: Type.Integer(),
      oldest_created_at: Time,
      earliest_deadline_at: Time,
    }),
  ),
});

function platformOnly(req: FastifyRequest) {
  const p = (req as { principal?: Principal }).principal!;
  if (p.merchantId !== null || p.kind === 'terminal')
    throw new AppError('forbidden', "Reconciliation is platform work; a merchant's credentials cannot do it");
}

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function registerReconQueueRoutes(
  app: FastifyInstance,
  deps: { db: Db; recon: ReconService; clock: Clock; tatDays: number },
) {
  const tags = ['reconciliation'];

  app.get<{ Querystring: Static<typeof QueueQuery> }>(
    '/v1/recon/queue',
    {
      config: { permission: 'recon:read' },
      schema: {
        tags,
        summary: 'The exception queue with each exception’s age and deadline, newest first',
        querystring: QueueQuery,
        response: { 200: pageOf(QueueItem) },
      },
    },
    async (req) => {
      platformOnly(req);
      const q = req.query;
      // Flagged payments join the queue when it is read (an idempotent insert, as the plain list does).
      await deps.recon.syncFlagged();
      const now = deps.clock.now();
      const rows = await listAgedExceptions(deps.db, {
        status: q.status,
        kind: q.kind,
        bankCode: q.bank_code,
        minAgeHours: q.min_age_hours,
        deadline: q.deadline,
        before: decodeCursor(q.cursor),
        limit: q.limit,
        now,
        tatDays: deps.tatDays,
      });
      const out = page(rows, q.limit);
      return {
        next_cursor: out.next_cursor,
        data: out.data.map((r) => {
          const end = r.resolved_at ? new Date(r.resolved_at) : now;
          const deadline = new Date(r.deadline_at);
          return {
            ...r,
            amount_paise: Number(r.amount_paise),
            expected_paise: r.expected_paise === null ? null : Number(r.expected_paise),
            requested_at: iso(r.requested_at),
            created_at: iso(r.created_at)!,
            resolved_at: iso(r.resolved_at),
            transaction_at: iso(r.t_at)!,
            deadline_at: deadline.toISOString(),
            age_seconds: Math.max(0, Math.round((end.getTime() - new Date(r.created_at).getTime()) / 1000)),
            seconds_to_deadline: Math.round((deadline.getTime() - now.getTime()) / 1000),
            overdue: end.getTime() >= deadline.getTime(),
          };
        }),
      };
    },
  );

  app.get(
    '/v1/recon/aging',
    {
      config: { permission: 'recon:read' },
      schema: {
        tags,
        summary: 'Unresolved exceptions by kind and time left to their deadline (overdue, 24 h, 48 h, later)',
        response: { 200: Aging },
      },
    },
    async (req) => {
      platformOnly(req);
      await deps.recon.syncFlagged();
      const now = deps.clock.now();
      const rows = await agingBuckets(deps.db, now, deps.tatDays);
      return {
        generated_at: now.toISOString(),
        tat_days: deps.tatDays,
        buckets: rows.map((r) => ({
          ...r,
          oldest_created_at: iso(r.oldest_created_at)!,
          earliest_deadline_at: iso(r.earliest_deadline_at)!,
        })),
      };
    },
  );
}
