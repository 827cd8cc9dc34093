import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from '../../platform/db.ts';
import { DATA_ACCESS_PERMISSIONS } from '../../platform/principal.ts';
import type { AuditWriter } from './trail.ts';
import { recordDataRead } from './dataReads.ts';

// What the HTTP layer records on its own, for every route, so no route can forget:
//   - every refused request (401 and 403, and the 404 a caller gets for another merchant's
//     resource), with who tried, what and why (PCI DSS 10.2.1.4, invalid access attempts);
//   - every successful read of personal or cardholder data, before the data leaves: if the
//     record cannot be written, the caller gets a 500 instead of the data (10.2.1.1);
//   - every other authenticated change that its service did not record itself in its own
//     transaction (a safety net: the record then follows the commit instead of joining it).

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

function errorCode(payload: unknown): string | undefined {
  if (typeof payload !== 'string' || payload.length > 10_000) return undefined;
  try {
    const code = (JSON.parse(payload) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON body a read answered with, or undefined. */
function parsed(payload: unknown): unknown {
  if (typeof payload !== 'string') return undefined;
  try {
    return JSON.parse(payload);
  } catch {
    return undefined; // not JSON
  }
}

/** "/v1/payments/:id/refunds" -> payments */
const resourceType = (route: string) => route.split('/')[2] ?? 'unknown';

function resourceId(req: FastifyRequest): string | null {
  const id = (req.params as Record<string, unknown> | undefined)?.id;
  return typeof id === 'string' && id.length <= 100 ? id : null;
}

async function anyCommitted(db: Db, ids: string[]): Promise<boolean> {
  if (ids.length === 0) return false;
  const r = await db.query(`SELECT 1 FROM audit.events WHERE id = ANY($1::text[]) LIMIT 1`, [ids]);
  return r.rows.length > 0;
}

export function registerAuditHooks(app: FastifyInstance, deps: { db: Db; audit: AuditWriter; logger: Logger }) {
  const { db, audit, logger } = deps;
  app.addHook('onSend', async (req, reply, payload) => {
    const ctx = req.ctx;
    const route = req.routeOptions.url;
    if (!ctx || !route?.startsWith('/v1/')) return payload;
    const cfg = req.routeOptions.config;
    const status = reply.statusCode;
    const resource = { type: resourceType(route), id: resourceId(req), merchant_id: null };

    if (status === 401 || status === 403 || (status === 404 && ctx.crossMerchant)) {
      // A refusal the service already recorded (and committed), e.g. a failed sign-in, is not recorded twice.
      if (await anyCommitted(db, ctx.auditIds)) return payload;
      try {
        await audit.record(db, {
          ctx,
          action: 'access.denied',
          outcome: 'failure',
          resource,
          details: {
            status,
            code: errorCode(payload) ?? null,
            permission: cfg?.permission ?? null,
            other_merchant_id: ctx.crossMerchant?.merchantId,
          },
        });
      } catch (e) {
        // The refusal stands either way; a lost record is an alarm for operations.
        logger.error(
          { err: { type: (e as Error).name, code: (e as { code?: string }).code }, request_id: req.id },
          'could not record a denied request',
        );
      }
      return payload;
    }
    if (!cfg?.permission) return payload;
    if (READS.has(req.method)) {
      if (status < 400 && (DATA_ACCESS_PERMISSIONS.has(cfg.permission) || cfg.audit === 'access')) {
        await recordDataRead(audit, db, {
          ctx,
          resource,
          permission: cfg.permission,
          result: parsed(payload),
          query: Object.keys((req.query as object) ?? {}),
        });
      }
      return payload;
    }
    const recorded = status < 400 ? ctx.auditIds.length > 0 : await anyCommitted(db, ctx.auditIds);
    if (!recorded) {
      await audit.record(db, {
        ctx,
        action: 'api.request',
        outcome: status < 400 ? 'success' : 'failure',
        resource,
        details: {
          status,
          code: status < 400 ? null : (errorCode(payload) ?? null),
          permission: cfg.permission,
          replayed: reply.getHeader('idempotent-replayed') === 'true',
        },
      });
    }
    return payload;
  });
}
