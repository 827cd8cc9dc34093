import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { decodeCursor, encodeCursor, pageOf } from '../../http/pagination.ts';
import type { Principal } from '../../platform/principal.ts';
import { AppError } from '../../platform/errors.ts';
import {
  defaultMappingName,
  IMPORT_KINDS,
  loadMapping,
  parseMapping,
  withConstants,
  type ImportKind,
} from './mapping.ts';
import type { OnboardingService } from './onboarding.service.ts';
import type { ImportRow } from './onboarding.repo.ts';

// The import over HTTP: upload a file (its text in a JSON body, as every body here is JSON), get
// a job back at once (202), and follow it with GET /v1/imports/{id}. The file's contents live only
// in this process's memory while the job runs; a job whose process stopped resumes when the same
// file is uploaded again. Platform keys and platform operators only.

/** Uploads up to this size go through the API; larger files through `tillpoint import`. */
export const UPLOAD_LIMIT_BYTES = 32 * 1024 * 1024;

const PERMISSION: Record<ImportKind, string> = {
  merchants: 'merchants:write',
  stores: 'merchants:write',
  terminals: 'terminals:write',
  'reward-balances': 'rewards:write',
  // Payment history writes the ledger and customers' points: a platform caller allowed to take payments.
  payments: 'payments:write',
};

const Upload = Type.Object(
  {
    format: Type.Optional(Type.Union([Type.Literal('csv'), Type.Literal('jsonl')], { default: 'csv' })),
    content: Type.String({ minLength: 1, maxLength: UPLOAD_LIMIT_BYTES, description: 'The file, as UTF-8 text' }),
    mapping: Type.Optional(
      Type.Union([Type.String({ pattern: '^[a-z0-9-]{1,80}$', description: 'A shipped mapping' }), Type.Object({})], {
        description: 'A shipped mapping by name, or a mapping object (src/modules/onboarding/README.md)',
      }),
    ),
    constants: Type.Optional(
      Type.Record(Type.String({ maxLength: 40 }), Type.String({ maxLength: 100 }), {
        description: 'Fields set to one value for every row, e.g. {"program_id": "prg_…"}',
      }),
    ),
    dry_run: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);

const Job = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  format: Type.String(),
  mapping: Type.String(),
  file_sha256: Type.String(),
  file_bytes: Type.Integer(),
  dry_run: Type.Boolean(),
  status: Type.Union([
    Type.Literal('running'),
    Type.Literal('interrupted'),
    Type.Literal('completed'),
    Type.Literal('failed'),
  ]),
  actor: Type.String(),
  lines_done: Type.Integer(),
  rows: Type.Integer(),
  created: Type.Integer(),
  unchanged: Type.Integer({ description: 'Rows already imported (same external reference): left as they are' }),
  rejected: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  report: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], {
    description: 'Counts and the reconciliation per merchant, when the job has finished',
  }),
  started_at: Type.String({ format: 'date-time' }),
  finished_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const view = (j: ImportRow): Static<typeof Job> => ({
  id: j.id,
  kind: j.kind,
  format: j.format,
  mapping: j.mapping,
  file_sha256: j.file_sha256,
  file_bytes: Number(j.file_bytes),
  dry_run: j.dry_run,
  status: j.status,
  actor: j.actor,
  lines_done: Number(j.lines_done),
  rows: Number(j.rows_total),
  created: Number(j.created),
  unchanged: Number(j.unchanged),
  rejected: Number(j.rejected),
  error: j.error,
  report: (j.report as Record<string, unknown> | null) ?? null,
  started_at: new Date(j.started_at).toISOString(),
  finished_at: j.finished_at ? new Date(j.finished_at).toISOString() : null,
});

const IdParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
const ListQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
const Reject = Type.Object({
  line: Type.Integer(),
  field: Type.Union([Type.String(), Type.Null()]),
  reason: Type.String(),
});
const tags = ['imports'];

function platformOnly(p: Principal | undefined): Principal {
  if (!p || p.merchantId !== null) throw new AppError('forbidden', 'Imports are for platform keys and operators');
  return p;
}

export function registerOnboardingRoutes(
  app: FastifyInstance,
  svc: OnboardingService,
  opts: { onError?: (importId: string | undefined, e: unknown) => void } = {},
) {
  for (const kind of IMPORT_KINDS) {
    app.post<{ Body: Static<typeof Upload> }>(
      `/v1/imports/${kind}`,
      {
        bodyLimit: UPLOAD_LIMIT_BYTES + 64 * 1024,
        config: { permission: PERMISSION[kind] },
        schema: {
          tags,
          summary: `Import ${kind} from a CSV or JSON-lines file (a job; follow it with GET /v1/imports/{id})`,
          body: Upload,
          response: { 202: Job },
        },
      },
      async (req, reply) => {
        const p = platformOnly(req.principal);
        const b = req.body;
        const format = b.format ?? 'csv';
        let mapping =
          b.mapping === undefined || typeof b.mapping === 'string'
            ? loadMapping(b.mapping ?? defaultMappingName(kind, format))
            : parseMapping(b.mapping, 'inline');
        if (mapping.format !== format)
          throw new AppError('validation_failed', `The mapping reads ${mapping.format}, the upload says ${format}`, [
            { field: 'body.format', problem: `must match the mapping (${mapping.format})` },
          ]);
        if (b.constants) mapping = withConstants(mapping, b.constants);
        const content = Buffer.from(b.content, 'utf8');
        let started: (id: string) => void = () => {};
        const jobStarted = new Promise<string>((r) => {
          started = r;
        });
        const done = svc.run({
          kind,
          mapping,
          open: async function* () {
            // In slices, so progress and memory behave as for a file.
            for (let i = 0; i < content.length; i += 1 << 16) yield content.subarray(i, i + (1 << 16));
          },
          sha256: createHash('sha256').update(content).digest('hex'),
          bytes: content.length,
          dryRun: b.dry_run === true,
          actor: { type: p.kind, id: p.id, merchant_id: null },
          onStarted: started,
        });
        done.catch((e) => opts.onError?.(undefined, e));
        const id = await Promise.race([jobStarted, done.then((r) => r.import_id)]);
        const job = await svc.get(id);
        return reply.status(202).send(view(job!));
      },
    );
  }

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/imports',
    {
      config: { permission: 'merchants:read' },
      schema: { tags, summary: 'Imports, newest first', querystring: ListQuery, response: { 200: pageOf(Job) } },
    },
    async (req) => {
      platformOnly(req.principal);
      const limit = req.query.limit;
      const rows = await svc.list({ before: decodeCursor(req.query.cursor), limit });
      const data = rows.slice(0, limit).map(view);
      return { data, next_cursor: rows.length > limit ? encodeCursor(data[data.length - 1].id) : null };
    },
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/imports/:id',
    {
      config: { permission: 'merchants:read' },
      schema: { tags, summary: 'An import: status, counts, report', params: IdParam, response: { 200: Job } },
    },
    async (req) => {
      platformOnly(req.principal);
      const j = await svc.get(req.params.id);
      if (!j) throw new AppError('not_found', 'No import with this id');
      return view(j);
    },
  );

  const RejectQuery = Type.Object(
    {
      limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
      cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'The last line number seen' })),
    },
    { additionalProperties: false },
  );
  app.get<{ Params: Static<typeof IdParam>; Querystring: Static<typeof RejectQuery> }>(
    '/v1/imports/:id/rejects',
    {
      config: { permission: 'merchants:read' },
      schema: {
        tags,
        summary: "An import's rejected rows by line number, with the field and the reason (never the value)",
        params: IdParam,
        querystring: RejectQuery,
        response: { 200: pageOf(Reject) },
      },
    },
    async (req) => {
      platformOnly(req.principal);
      if (!(await svc.get(req.params.id))) throw new AppError('not_found', 'No import with this id');
      const limit = req.query.limit;
      const rows = await svc.rejects(req.params.id, {
        afterLine: req.query.cursor ? Number(req.query.cursor) : 0,
        limit: limit + 1,
      });
      const data = rows.slice(0, limit).map((r) => ({ line: Number(r.line), field: r.field, reason: r.reason }));
      // One reason per rejected line: the cursor is the last line of the page.
      return { data, next_cursor: rows.length > limit ? String(data[data.length - 1].line) : null };
    },
  );
}
