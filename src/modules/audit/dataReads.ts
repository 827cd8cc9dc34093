import type { Queryable } from '../../platform/db.ts';
import type { Json } from './canonical.ts';
import type { AuditInput, AuditWriter } from './trail.ts';

// A read of personal or cardholder data, recorded before the data leaves (PCI DSS 10.2.1.1): by
// the HTTP layer for the API's GETs (http.ts) and by the terminal gateway for MQTT reads, in one
// shape so that both show up alike in the trail.

const MAX_IDS = 200;

/** Ids of what a read returned: `id` of one resource, or `data[].id` of a page (at most 200). */
export function idsRead(result: unknown): string[] {
  const b = result as { id?: unknown; data?: { id?: unknown }[] } | null;
  if (!b || typeof b !== 'object') return [];
  if (typeof b.id === 'string') return [b.id];
  if (Array.isArray(b.data))
    return b.data
      .map((d) => d?.id)
      .filter((x): x is string => typeof x === 'string')
      .slice(0, MAX_IDS);
  return [];
}

export function recordDataRead(
  audit: Pick<AuditWriter, 'record'>,
  q: Queryable,
  r: Pick<AuditInput, 'ctx' | 'actor' | 'origin'> & {
    resource: NonNullable<AuditInput['resource']>;
    permission: string;
    result: unknown;
    query: string[];
  },
): Promise<string> {
  const ids = idsRead(r.result);
  return audit.record(q, {
    ctx: r.ctx,
    actor: r.actor,
    origin: r.origin,
    action: 'data.read',
    resource: r.resource,
    details: { permission: r.permission, ids: ids as Json[], count: ids.length, query: [...r.query].sort() as Json[] },
  });
}
