import { Gauge, type Registry } from 'prom-client';
import type { Queryable } from '../../platform/db.ts';

// The audit trail's health for /metrics, read from the database at scrape time:
// - tillpoint_audit_head_age_seconds: since the latest signed tree head;
// - tillpoint_audit_unsigned_records: sealed into the tree but not yet under a signed head;
// - tillpoint_audit_unsealed_oldest_age_seconds: the oldest record written after the last sealed one.
// Heads are signed only when the tree grew, so an old head alone is not a stall: the
// AuditSignerStalled rule asks for an old head with work waiting, or an old unsealed record.
export function registerAuditMetrics(registry: Registry, db: Queryable) {
  if (registry.getSingleMetric('tillpoint_audit_head_age_seconds')) return;
  let last: { headAge: number | null; unsigned: number; unsealedAge: number } | undefined;
  let inflight: Promise<void> | undefined;
  const refresh = () =>
    (inflight ??= (async () => {
      try {
        const r = await db.query<{ head_age: number | null; unsigned: number; unsealed_age: number | null }>(
          `WITH head AS (SELECT tree_size, signed_at FROM audit.tree_heads ORDER BY tree_size DESC LIMIT 1),
                last_sealed AS (SELECT e.seq FROM audit.leaves l JOIN audit.events e ON e.id = l.event_id ORDER BY l.leaf_index DESC LIMIT 1)
           SELECT EXTRACT(EPOCH FROM now() - (SELECT signed_at FROM head))::float8 AS head_age,
                  ((SELECT tree_size FROM audit.state WHERE id = 1) - coalesce((SELECT tree_size FROM head), 0))::int AS unsigned,
                  EXTRACT(EPOCH FROM now() - (SELECT min(occurred_at) FROM audit.events
                    WHERE seq > coalesce((SELECT seq FROM last_sealed), 0)
                      AND NOT EXISTS (SELECT 1 FROM audit.leaves l WHERE l.event_id = audit.events.id)))::float8 AS unsealed_age`,
        );
        const row = r.rows[0];
        last = {
          headAge: row.head_age === null ? null : Number(row.head_age),
          unsigned: Number(row.unsigned),
          unsealedAge: Number(row.unsealed_age ?? 0),
        };
      } catch {
        // database unavailable: keep the last values
      } finally {
        inflight = undefined;
      }
    })());
  new Gauge({
    name: 'tillpoint_audit_head_age_seconds',
    help: 'Seconds since the latest signed audit tree head (absent before the first head)',
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      if (last?.headAge != null) this.set(last.headAge);
    },
  });
  new Gauge({
    name: 'tillpoint_audit_unsigned_records',
    help: 'Audit records sealed into the tree but not yet covered by a signed tree head',
    registers: [registry],
    async collect() {
      await refresh();
      if (last) this.set(last.unsigned);
    },
  });
  new Gauge({
    name: 'tillpoint_audit_unsealed_oldest_age_seconds',
    help: 'Age of the oldest audit record not yet sealed into the tree (0 when none waits)',
    registers: [registry],
    async collect() {
      await refresh();
      if (last) this.set(last.unsealedAge);
    },
  });
}
