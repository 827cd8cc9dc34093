import { Readable } from 'node:stream';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { decodeCursor, encodeCursor, page, pageOf, PageQuery } from '../../../http/pagination.ts';
import type { Principal } from '../../../platform/principal.ts';
import { AppError } from '../../../platform/errors.ts';
import { FileRejected } from './ingest.ts';
import type { ReconService } from './recon.service.ts';
import { EXCEPTION_KINDS, LINE_OUTCOMES, type ReconActor } from './types.ts';

// HTTP routes of reconciliation, under /v1/recon. Platform work: a bank's file spans merchants,
// so merchant-scoped callers are refused whatever they hold. recon:read lists, recon:write
// ingests and resolves, recon:approve is the second pair of eyes (operators only).

/** Uploads larger than this go through `tillpoint recon ingest`, which streams from disk. */
export const UPLOAD_LIMIT_BYTES = 16 * 1024 * 1024;

const Nullable = <T extends import('@sinclair/typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time' });
const Counts = Type.Record(Type.String(), Type.Integer());

const File = Type.Object({
  id: Type.String(),
  bank_code: Type.String(),
  cycle_key: Type.String(),
  sha256: Type.String(),
  file_name: Nullable(Type.String()),
  mapping_id: Type.String(),
  status: Type.String(),
  lines: Type.Integer(),
  skipped_lines: Type.Integer(),
  credit_paise: Type.Integer(),
  debit_paise: Type.Integer(),
  matched_paise: Type.Integer(),
  outcomes: Counts,
  first_txn_at: Nullable(Time),
  last_txn_at: Nullable(Time),
  created_at: Time,
  matched_at: Nullable(Time),
});
const Report = Type.Object({
  status: Type.String(),
  file_id: Nullable(Type.String()),
  bank_code: Type.String(),
  cycle_key: Nullable(Type.String()),
  sha256: Type.String(),
  lines: Type.Integer(),
  skipped_lines: Type.Integer(),
  credit_paise: Type.Integer(),
  debit_paise: Type.Integer(),
  matched_paise: Type.Integer(),
  outcomes: Counts,
  matched_by_rule: Counts,
  exceptions: Counts,
  reversals_requested: Type.Integer(),
  message: Type.String(),
});
const Exception = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  bank_code: Type.String(),
  cycle_key: Nullable(Type.String()),
  file_id: Nullable(Type.String()),
  line_no: Nullable(Type.Integer()),
  payment_id: Nullable(Type.String()),
  refund_id: Nullable(Type.String()),
  compensation_id: Nullable(Type.String()),
  amount_paise: Type.Integer(),
  expected_paise: Nullable(Type.Integer()),
  detail: Type.String(),
  status: Type.String(),
  resolution: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  requested_resolution: Nullable(Type.String()),
  requested_by: Nullable(Type.String()),
  resolved_by: Nullable(Type.String()),
  approved_by: Nullable(Type.String()),
  reversal_id: Nullable(Type.String()),
  match_kind: Nullable(Type.String()),
  match_id: Nullable(Type.String()),
  created_at: Time,
  resolved_at: Nullable(Time),
});
const Line = Type.Object({
  line_no: Type.Integer(),
  direction: Type.String(),
  txn_ref: Nullable(Type.String()),
  bank_ref: Nullable(Type.String()),
  amount_paise: Type.Integer(),
  txn_at: Nullable(Time),
  outcome: Nullable(Type.String()),
  match_rule: Nullable(Type.String()),
  match_mode: Nullable(Type.String()),
  match_group: Nullable(Type.Integer()),
  our_kind: Nullable(Type.String()),
  our_id: Nullable(Type.String()),
  exception_id: Nullable(Type.String()),
});
const Run = Type.Object({
  id: Type.String(),
  file_id: Type.String(),
  rules_id: Type.String(),
  counts: Type.Record(Type.String(), Counts),
  started_at: Time,
  finished_at: Time,
  run_by: Nullable(Type.String()),
});

const BankCode = Type.String({ pattern: '^[A-Z0-9_]{2,20}$' });
const Upload = Type.Object(
  {
    bank_code: BankCode,
    file_name: Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9._-]+$' }),
    /** The file's text, as the bank sent it (UTF-8). */
    content: Type.String({ maxLength: UPLOAD_LIMIT_BYTES }),
    dry_run: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const Resolve = Type.Object(
  {
    resolution: Type.Union(['accept', 'refund_customer', 'reverse', 'write_off', 'match'].map((r) => Type.Literal(r))),
    reason: Type.String({ minLength: 3, maxLength: 500 }),
    payment_id: Type.Optional(Type.String({ pattern: '^pay_[0-9a-f]{32}$' })),
    refund_id: Type.Optional(Type.String({ pattern: '^rfd_[0-9a-f]{32}$' })),
    amount_paise: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
const Approve = Type.Object(
  {
    decision: Type.Union([Type.Literal('approve'), Type.Literal('reject')]),
    reason: Type.Optional(Type.String({ minLength: 3, maxLength: 500 })),
  },
  { additionalProperties: false },
);
const Bulk = Type.Object(
  { csv: Type.String({ minLength: 1, maxLength: 512 * 1024 }) },
  { additionalProperties: false },
);

const IdParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
const FileQuery = Type.Object({ ...PageQuery, bank_code: Type.Optional(BankCode) }, { additionalProperties: false });
const RunQuery = Type.Object(
  { ...PageQuery, file_id: Type.Optional(Type.String({ maxLength: 100 })) },
  { additionalProperties: false },
);
const LineQuery = Type.Object(
  { ...PageQuery, outcome: Type.Optional(Type.Union(LINE_OUTCOMES.map((o) => Type.Literal(o)))) },
  { additionalProperties: false },
);
const ExceptionQuery = Type.Object(
  {
    ...PageQuery,
    status: Type.Optional(Type.Union(['open', 'pending_approval', 'resolved'].map((s) => Type.Literal(s)))),
    kind: Type.Optional(Type.Union(EXCEPTION_KINDS.map((k) => Type.Literal(k)))),
    bank_code: Type.Optional(BankCode),
    file_id: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);

/** The caller as reconciliation records it; merchant-scoped callers never reach a bank's file. */
function actor(req: FastifyRequest): ReconActor {
  const p = (req as { principal?: Principal }).principal!;
  if (p.merchantId !== null)
    throw new AppError('forbidden', "Reconciliation is platform work; a merchant's credentials cannot do it");
  return { type: p.kind === 'operator' ? 'operator' : p.kind === 'terminal' ? 'terminal' : 'api_key', id: p.id };
}

/** Line lists page by line number (lines have no id of their own). */
function lineCursor(c: string | undefined): number {
  if (c === undefined) return 0;
  const s = Buffer.from(c, 'base64url').toString('utf8');
  if (!/^line:\d{1,9}$/.test(s)) throw new AppError('invalid_cursor', 'The cursor is not one this API issued');
  return Number(s.slice(5));
}

export function registerReconRoutes(app: FastifyInstance, svc: ReconService) {
  const tags = ['reconciliation'];

  app.post<{ Body: Static<typeof Upload> }>(
    '/v1/recon/files',
    {
      bodyLimit: UPLOAD_LIMIT_BYTES + 64 * 1024,
      config: { permission: 'recon:write' },
      schema: {
        tags,
        summary: "Ingest a bank's settlement file and match it (or, with dry_run, report what it would do)",
        body: Upload,
        response: { 200: Report, 201: Report },
      },
    },
    async (req, reply) => {
      const who = actor(req);
      const content = Buffer.from(req.body.content, 'utf8');
      try {
        const r = await svc.ingest({
          bankCode: req.body.bank_code,
          fileName: req.body.file_name,
          open: () => Readable.from([content]),
          dryRun: req.body.dry_run,
          actor: who,
        });
        return reply.status(r.status === 'ingested' ? 201 : 200).send(r);
      } catch (e) {
        if (e instanceof FileRejected)
          throw new AppError('file_rejected', e.message, { problems: e.problems, problem_count: e.problemCount });
        throw e;
      }
    },
  );

  app.get<{ Querystring: Static<typeof FileQuery> }>(
    '/v1/recon/files',
    { config: { permission: 'recon:read' }, schema: { tags, querystring: FileQuery, response: { 200: pageOf(File) } } },
    async (req) => {
      actor(req);
      const rows = await svc.listFiles({
        bankCode: req.query.bank_code,
        before: decodeCursor(req.query.cursor),
        limit: req.query.limit,
      });
      return page(rows, req.query.limit);
    },
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/recon/files/:id',
    { config: { permission: 'recon:read' }, schema: { tags, params: IdParam, response: { 200: File } } },
    async (req) => {
      actor(req);
      return svc.getFile(req.params.id);
    },
  );

  app.get<{ Params: Static<typeof IdParam>; Querystring: Static<typeof LineQuery> }>(
    '/v1/recon/files/:id/items',
    {
      config: { permission: 'recon:read' },
      schema: {
        tags,
        summary: "A file's lines with their outcomes",
        params: IdParam,
        querystring: LineQuery,
        response: { 200: pageOf(Line) },
      },
    },
    async (req) => {
      actor(req);
      const rows = await svc.listLines({
        fileId: req.params.id,
        outcome: req.query.outcome,
        after: lineCursor(req.query.cursor),
        limit: req.query.limit,
      });
      const data = rows.slice(0, req.query.limit);
      return {
        data,
        next_cursor: rows.length > req.query.limit ? encodeCursor(`line:${data[data.length - 1].line_no}`) : null,
      };
    },
  );

  app.get<{ Querystring: Static<typeof RunQuery> }>(
    '/v1/recon/runs',
    { config: { permission: 'recon:read' }, schema: { tags, querystring: RunQuery, response: { 200: pageOf(Run) } } },
    async (req) => {
      actor(req);
      const rows = await svc.listRuns({
        fileId: req.query.file_id,
        before: decodeCursor(req.query.cursor),
        limit: req.query.limit,
      });
      return page(rows, req.query.limit);
    },
  );

  app.get(
    '/v1/recon/status',
    {
      config: { permission: 'recon:read' },
      schema: { tags, summary: 'Files per bank, open exceptions, payments expected and missing' },
    },
    async (req) => {
      actor(req);
      return svc.status();
    },
  );

  app.get<{ Querystring: Static<typeof ExceptionQuery> }>(
    '/v1/recon/exceptions',
    {
      config: { permission: 'recon:read' },
      schema: {
        tags,
        summary: 'The exception queue, newest first',
        querystring: ExceptionQuery,
        response: { 200: pageOf(Exception) },
      },
    },
    async (req) => {
      actor(req);
      const q = req.query;
      const rows = await svc.listExceptions({
        status: q.status,
        kind: q.kind,
        bankCode: q.bank_code,
        fileId: q.file_id,
        before: decodeCursor(q.cursor),
        limit: q.limit,
      });
      return page(rows, q.limit);
    },
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/recon/exceptions/:id',
    { config: { permission: 'recon:read' }, schema: { tags, params: IdParam, response: { 200: Exception } } },
    async (req) => {
      actor(req);
      return svc.getException(req.params.id);
    },
  );

  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof Resolve> }>(
    '/v1/recon/exceptions/:id/resolve',
    {
      config: { permission: 'recon:write' },
      schema: {
        tags,
        summary: 'Resolve an exception (a forced match or a write-off waits for a second operator)',
        params: IdParam,
        body: Resolve,
        response: { 200: Exception },
      },
    },
    async (req) => svc.resolve(actor(req), req.params.id, req.body as Parameters<ReconService['resolve']>[2]),
  );

  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof Approve> }>(
    '/v1/recon/exceptions/:id/approve',
    {
      config: { permission: 'recon:approve' },
      schema: {
        tags,
        summary: 'Approve or reject a forced match or a write-off (four eyes)',
        params: IdParam,
        body: Approve,
        response: { 200: Exception },
      },
    },
    async (req) => svc.approve(actor(req), req.params.id, req.body.decision, req.body.reason),
  );

  app.post<{ Body: Static<typeof Bulk> }>(
    '/v1/recon/exceptions/bulk-resolve',
    {
      config: { permission: 'recon:write' },
      schema: {
        tags,
        summary: 'Resolve exceptions from a CSV (exception_id,resolution,reason[,payment_id]): all rows or none',
        body: Bulk,
      },
    },
    async (req) => svc.resolveBulk(actor(req), req.body.csv),
  );
}
