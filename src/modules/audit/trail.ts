import { hostname } from 'node:os';
import type { Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { newId } from '../../platform/ids.ts';
import type { Principal } from '../../platform/principal.ts';
import { currentRequest, type RequestContext } from '../../platform/principal.ts';
import { canonicalJson, type Json } from './canonical.ts';
import type { AuditKeys } from './keys.ts';

// Writing records. The caller passes its own transaction handle, so a record commits or rolls
// back with the change it describes (PCI DSS 10.2: nothing happens unrecorded, and nothing is
// recorded that did not happen). Who and where default to the current request.

export type ActorType = 'operator' | 'api_key' | 'terminal' | 'system' | 'anonymous' | 'cli';

export interface Actor {
  type: ActorType;
  /** opr_…, key_…, trm_… (a terminal over MQTT), a service name ("worker"), an OS user for the CLI; null when unknown. */
  id: string | null;
  merchant_id: string | null;
  session_id?: string;
}

export interface Origin {
  ip: string | null;
  request_id: string | null;
  terminal_id: string | null;
  method: string | null;
  route: string | null;
}

export interface AuditInput {
  /** What happened, `<thing>.<verb>`: "merchant.created", "auth.login", "access.denied", … */
  action: string;
  outcome?: 'success' | 'failure';
  resource?: { type: string; id?: string | null; merchant_id?: string | null };
  /** Defaults to the caller of the current request, or the system. */
  actor?: Actor;
  /** Merged over the current request's origin. */
  origin?: Partial<Origin>;
  /** Small, and never personal data or secrets: ids, codes, counts. */
  details?: Record<string, Json | undefined>;
  /** The request this happened in, when it is not the current one (hooks outside the handler). */
  ctx?: RequestContext;
}

/** The record as stored and hashed (10.2.2: who, what, when, outcome, origin, resource). */
export interface AuditRecord {
  v: 1;
  id: string;
  /** UTC, millisecond precision. */
  at: string;
  action: string;
  outcome: 'success' | 'failure';
  actor: Actor;
  origin: Origin;
  resource: { type: string | null; id: string | null; merchant_id: string | null };
  details: Record<string, Json>;
  /** The host that wrote it; its clock is the time source (NTP-synchronised, 10.6). */
  host: string;
}

export function actorOf(p: Principal | undefined): Actor {
  if (!p) return { type: 'anonymous', id: null, merchant_id: null };
  if (p.kind === 'operator')
    return {
      type: 'operator',
      id: p.id,
      merchant_id: p.merchantId,
      ...(p.sessionId ? { session_id: p.sessionId } : {}),
    };
  return { type: p.kind === 'terminal' ? 'terminal' : 'api_key', id: p.id, merchant_id: p.merchantId };
}

export const SYSTEM_ACTOR = (name: string): Actor => ({ type: 'system', id: name, merchant_id: null });

export interface AuditWriter {
  /** Writes one record with `q`, which should be the transaction of the change it describes. Returns its id. */
  record(q: Queryable, input: AuditInput): Promise<string>;
  /**
   * The record as a row, for a caller that writes it in a statement of its own together with the
   * change it describes (one round trip instead of two, on a hot path): see insertAuditEventsSql().
   * The caller must write it; the current request counts it as recorded.
   */
  prepare(input: AuditInput): PreparedAuditEvent;
}

/** An audit.events row, ready to insert; `mac` in hex. */
export interface PreparedAuditEvent {
  id: string;
  record: string;
  mac: string;
  occurred_at: string;
  action: string;
  outcome: 'success' | 'failure';
  actor_id: string | null;
  merchant_id: string | null;
  resource_id: string | null;
}

/**
 * SQL that inserts the prepared events given as one jsonb array parameter (e.g. `$16`), to embed
 * as a data-modifying CTE (`WITH a AS (${insertAuditEventsSql('$16')})`) in the caller's statement;
 * `onlyIf`, a condition on the statement's other CTEs (e.g. that the change was written). A
 * statement that writes several changes at once tags each event with the change it belongs to
 * (`owner`, a key of the caller's choosing, not stored) and tests it as `x.owner` in `onlyIf`.
 */
export function insertAuditEventsSql(param: string, onlyIf = 'true'): string {
  return `INSERT INTO audit.events (id, record, mac, occurred_at, action, outcome, actor_id, merchant_id, resource_id)
          SELECT x.id, x.record, decode(x.mac, 'hex'), x.occurred_at, x.action, x.outcome, x.actor_id, x.merchant_id, x.resource_id
            FROM jsonb_to_recordset(${param}::jsonb) AS x(id text, record text, mac text, occurred_at timestamptz, action text,
                                                          outcome text, actor_id text, merchant_id text, resource_id text, owner text)
           WHERE ${onlyIf}`;
}

export function createAuditWriter(deps: { keys: Pick<AuditKeys, 'mac'>; clock: Clock; host?: string }): AuditWriter {
  const host = deps.host ?? hostname();
  function build(input: AuditInput): PreparedAuditEvent & { ctx: RequestContext | undefined } {
    const ctx = input.ctx ?? currentRequest();
    const id = newId('auditEvent');
    const actor = input.actor ?? (ctx ? actorOf(ctx.principal) : SYSTEM_ACTOR('tillpoint'));
    const details: Record<string, Json> = {};
    for (const [k, v] of Object.entries(input.details ?? {})) if (v !== undefined) details[k] = v;
    const rec: AuditRecord = {
      v: 1,
      id,
      at: deps.clock.now().toISOString(),
      action: input.action,
      outcome: input.outcome ?? 'success',
      actor,
      origin: {
        ip: ctx?.ip ?? null,
        request_id: ctx?.requestId ?? null,
        terminal_id: null,
        method: ctx?.method ?? null,
        route: ctx?.route ?? null,
        ...input.origin,
      },
      resource: {
        type: input.resource?.type ?? null,
        id: input.resource?.id ?? null,
        merchant_id: input.resource?.merchant_id ?? null,
      },
      details,
      host,
    };
    const text = canonicalJson(rec);
    return {
      ctx,
      id,
      record: text,
      mac: deps.keys.mac(text).toString('hex'),
      occurred_at: rec.at,
      action: rec.action,
      outcome: rec.outcome,
      actor_id: actor.id,
      merchant_id: rec.resource.merchant_id ?? actor.merchant_id,
      resource_id: rec.resource.id,
    };
  }
  return {
    async record(q, input) {
      const { ctx, ...row } = build(input);
      await q.query(insertAuditEventsSql('$1'), [JSON.stringify([row])]);
      ctx?.auditIds.push(row.id);
      return row.id;
    },
    prepare(input) {
      const { ctx, ...row } = build(input);
      ctx?.auditIds.push(row.id);
      return row;
    },
  };
}

/** The columns stored beside a record, as `audit verify` expects them from the record itself. */
export function indexColumnsOf(rec: AuditRecord) {
  return {
    occurred_at: rec.at,
    action: rec.action,
    outcome: rec.outcome,
    actor_id: rec.actor.id,
    merchant_id: rec.resource.merchant_id ?? rec.actor.merchant_id,
    resource_id: rec.resource.id,
  };
}
