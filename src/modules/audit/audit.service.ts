import type { Logger } from 'pino';
import type { Db } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import { AppError } from '../../platform/errors.ts';
import { awsCredentials } from '../../platform/aws.ts';
import { isId } from '../../platform/ids.ts';
import { loadAuditKeys, type AuditKeys } from './keys.ts';
import { createAuditWriter, SYSTEM_ACTOR, type AuditInput, type AuditRecord } from './trail.ts';
import { latestHead, proveConsistency, proveRecord, seal, signHead } from './tree.ts';
import { verifyTrail } from './verify.ts';
import { localWorm, s3Worm, type WormStore } from './worm.ts';
import { addMonths, exportSegments, pruneOnline, readExportedHeads } from './archive.ts';
import type { Queryable } from '../../platform/db.ts';

/** How long one worker pass may keep sealing full batches (1,000 records each) before its other jobs. */
const SEAL_BUDGET_MS = 500;
/** How long one worker pass may keep exporting segments of a backlog before its other jobs. */
const EXPORT_BUDGET_MS = 500;

export interface AuditDeps {
  db: Db;
  config: Pick<Config, 'mode' | 'dataDir' | 'audit'>;
  clock: Clock;
  logger: Logger;
  /** Tests hand in keys or a store; otherwise they come from config. */
  keys?: AuditKeys;
  store?: WormStore | null;
  fetch?: typeof fetch;
  /** Where AWS credentials for the S3 export come from (awsCredentials: env keys or IRSA); default process.env. */
  awsEnv?: Record<string, string | undefined>;
}

export interface EventFilter {
  actorId?: string;
  resourceId?: string;
  merchantId?: string;
  action?: string;
  from?: Date;
  to?: Date;
  before?: string;
  limit: number;
}

export function createAuditService(deps: AuditDeps) {
  const { db, config, clock, logger } = deps;
  const keys =
    deps.keys ??
    loadAuditKeys({
      mode: config.mode,
      dataDir: config.dataDir,
      signingKey: config.audit.signingKey,
      trustedPublicKeys: config.audit.trustedPublicKeys,
    });
  const writer = createAuditWriter({ keys, clock });
  const ex = config.audit.export;
  const store: WormStore | undefined =
    deps.store !== undefined
      ? (deps.store ?? undefined)
      : ex.target === 'local'
        ? localWorm(ex.dir)
        : ex.target === 's3'
          ? s3Worm({ ...ex.s3!, credentials: awsCredentials(deps.awsEnv), fetch: deps.fetch })
          : undefined;
  let lastRetention = 0;

  const exportNext = (maxLeaves?: number) =>
    store
      ? exportSegments(db, {
          store,
          clock,
          retentionMonths: config.audit.retentionMonths,
          publicKey: (id) => keys.trusted.get(id),
          maxLeaves,
        })
      : Promise.resolve(undefined);

  const errInfo = (e: unknown) => ({
    type: (e as Error).name,
    code: (e as { code?: string }).code,
    message: (e as Error).message?.slice(0, 200),
  });

  return {
    keys,
    writer,
    store,
    /** Writes a record in `q`, the transaction of the change it describes. */
    record: (q: Queryable, input: AuditInput) => writer.record(q, input),

    seal: () => seal(db, { keys, clock }),
    signHead: (force = false) =>
      signHead(db, { keys, clock, intervalSeconds: config.audit.signIntervalSeconds, force }),
    /** Exports the next segment due (undefined when none is): call again while it returns one. */
    exportSegments: (opts: { maxLeaves?: number } = {}) => exportNext(opts.maxLeaves),
    /** Recomputes the trail and holds it against every head exported to write-once storage. */
    verify: async () => verifyTrail(db, keys, store ? await readExportedHeads(store) : undefined),
    prove: (eventId: string, treeSize?: number) => proveRecord(db, eventId, keys.trusted, treeSize),
    consistency: (first: number, second: number) => proveConsistency(db, first, second),
    latestHead: () => latestHead(db),

    /** Removes records past the online period (already exported) and archive files past retention. */
    async runRetention() {
      const pruned = await pruneOnline(db, { clock, onlineMonths: config.audit.onlineMonths, audit: writer });
      const expired =
        store && 'expire' in store
          ? (store as ReturnType<typeof localWorm>).expire(addMonths(clock.now(), -config.audit.retentionMonths))
          : [];
      if (expired.length > 0) {
        await writer.record(db, {
          action: 'audit.archive_expired',
          actor: SYSTEM_ACTOR('worker'),
          resource: { type: 'audit_trail' },
          details: { files: expired.length },
        });
      }
      return { pruned, expired: expired.length };
    },

    /** One worker pass: seal, sign when due, export what a new head covers; retention daily. */
    async runJobs(): Promise<{ sealed: number; signed?: number }> {
      let sealed = 0;
      let signed: number | undefined;
      try {
        // Batch after batch while records are waiting, up to a time budget: a trail written
        // faster than one batch per tick is still sealed as fast as it is written.
        const until = performance.now() + SEAL_BUDGET_MS;
        for (;;) {
          const r = await seal(db, { keys, clock });
          sealed += r.sealed;
          if (r.forged.length > 0) {
            logger.error(
              { records: r.forged.slice(0, 10), count: r.forged.length },
              'audit records with an invalid MAC were found and left unsealed',
            );
          }
          if (!r.more || r.sealed === 0 || performance.now() >= until) break;
        }
        signed = (await signHead(db, { keys, clock, intervalSeconds: config.audit.signIntervalSeconds }))?.tree_size;
      } catch (e) {
        logger.error({ err: errInfo(e) }, 'audit sealing failed; will retry');
      }
      try {
        // Segment after segment while a backlog waits (the store was down), up to a time budget.
        const until = performance.now() + EXPORT_BUDGET_MS;
        while ((await exportNext()) && performance.now() < until);
      } catch (e) {
        logger.error({ err: errInfo(e) }, 'audit export failed; will retry');
      }
      if (clock.now().getTime() - lastRetention > 86_400_000) {
        try {
          await this.runRetention();
          lastRetention = clock.now().getTime();
        } catch (e) {
          logger.error({ err: errInfo(e) }, 'audit retention failed; will retry');
        }
      }
      return { sealed, signed };
    },

    async listEvents(f: EventFilter) {
      const r = await db.query<{ id: string; record: string; leaf_index: number | null }>(
        `SELECT e.id, e.record, l.leaf_index FROM audit.events e LEFT JOIN audit.leaves l ON l.event_id = e.id
          WHERE ($1::text IS NULL OR e.actor_id = $1) AND ($2::text IS NULL OR e.resource_id = $2)
            AND ($3::text IS NULL OR e.merchant_id = $3) AND ($4::text IS NULL OR e.action = $4)
            AND ($5::timestamptz IS NULL OR e.occurred_at >= $5) AND ($6::timestamptz IS NULL OR e.occurred_at < $6)
            AND ($7::text IS NULL OR e.id < $7)
          ORDER BY e.id DESC LIMIT $8`,
        [
          f.actorId ?? null,
          f.resourceId ?? null,
          f.merchantId ?? null,
          f.action ?? null,
          f.from?.toISOString() ?? null,
          f.to?.toISOString() ?? null,
          f.before ?? null,
          f.limit + 1,
        ],
      );
      return r.rows.map((row) => ({
        ...(JSON.parse(row.record) as AuditRecord),
        leaf_index: row.leaf_index === null ? null : Number(row.leaf_index),
      }));
    },

    async getEvent(id: string) {
      if (!isId('auditEvent', id)) throw new AppError('not_found', 'No audit record with this id');
      const r = await db.query<{ record: string; leaf_index: number | null }>(
        `SELECT e.record, l.leaf_index FROM audit.events e LEFT JOIN audit.leaves l ON l.event_id = e.id WHERE e.id = $1`,
        [id],
      );
      if (!r.rows[0]) throw new AppError('not_found', 'No audit record with this id');
      return {
        ...(JSON.parse(r.rows[0].record) as AuditRecord),
        leaf_index: r.rows[0].leaf_index === null ? null : Number(r.rows[0].leaf_index),
      };
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
