import type { Queryable } from '../../platform/db.ts';

// SQL for terminals.presence (migration 0029): whether a terminal is connected and when it was last
// heard from. Written only by the gateway's presence writer (presence.ts), in batches.

export interface PresenceWrite {
  terminalId: string;
  /** null: no status in this batch, only last_seen (a request). */
  online: boolean | null;
  /** The connection's start in ms (the ordering key); -1 with online = null. */
  sinceMs: number;
  /** When the gateway received the status (changed_at if it changes the state). */
  at: Date;
  seenAt: Date;
}

/**
 * One statement for a whole batch. A status is applied only when its (since, offline-after-online)
 * key is later than the stored one, so statuses delivered out of order (to different replicas, or
 * a will published late) never undo a newer state; last_seen only moves forward. Rows whose
 * terminal does not exist are skipped (the join), never a failed batch. Rows with nothing new are
 * not rewritten (the WHERE of DO UPDATE), so replicas repeating each other cost no dead tuples.
 */
export async function upsertPresence(q: Queryable, rows: PresenceWrite[], source: 'embedded' | 'external') {
  if (rows.length === 0) return 0;
  const newer = `(excluded.since_ms, CASE WHEN excluded.online THEN 0 ELSE 1 END) > (p.since_ms, CASE WHEN p.online THEN 0 ELSE 1 END)`;
  const r = await q.query(
    `INSERT INTO terminals.presence AS p (terminal_id, online, since_ms, changed_at, last_seen_at, source)
     SELECT u.id, coalesce(u.online, false), CASE WHEN u.online IS NULL THEN -1 ELSE u.since_ms END, u.at, u.seen, $6
       FROM unnest($1::text[], $2::boolean[], $3::bigint[], $4::timestamptz[], $5::timestamptz[]) AS u(id, online, since_ms, at, seen)
       JOIN merchants.terminals t ON t.id = u.id
     ON CONFLICT (terminal_id) DO UPDATE SET
       online = CASE WHEN ${newer} THEN excluded.online ELSE p.online END,
       since_ms = CASE WHEN ${newer} THEN excluded.since_ms ELSE p.since_ms END,
       changed_at = CASE WHEN ${newer} AND excluded.online <> p.online THEN excluded.changed_at ELSE p.changed_at END,
       source = CASE WHEN ${newer} THEN excluded.source ELSE p.source END,
       last_seen_at = greatest(p.last_seen_at, excluded.last_seen_at)
     WHERE ${newer} OR excluded.last_seen_at > p.last_seen_at`,
    [
      rows.map((w) => w.terminalId),
      rows.map((w) => w.online),
      rows.map((w) => (w.online === null ? -1 : w.sinceMs)),
      rows.map((w) => w.at),
      rows.map((w) => w.seenAt),
      source,
    ],
  );
  return r.rowCount;
}

/**
 * An embedded broker starts with no connections: whatever an embedded broker recorded online
 * before (this process, before a crash or restart) is offline now. One embedded broker per
 * database: several replicas need an external broker (README).
 */
export async function resetEmbeddedPresence(q: Queryable): Promise<number> {
  const r = await q.query(
    `UPDATE terminals.presence SET online = false, changed_at = now() WHERE online AND source = 'embedded'`,
  );
  return r.rowCount;
}

export interface PresenceRow {
  terminal_id: string;
  online: boolean;
  changed_at: Date;
  last_seen_at: Date;
}

export async function getPresence(q: Queryable, terminalId: string): Promise<PresenceRow | undefined> {
  const { rows } = await q.query<PresenceRow>(
    `SELECT terminal_id, online, changed_at, last_seen_at FROM terminals.presence WHERE terminal_id = $1`,
    [terminalId],
  );
  return rows[0];
}

/**
 * The fleet's presence in one pass over the presence rows (the online ones through their partial
 * index when a merchant is not given): active terminals online, offline (heard from before), and
 * never heard from. Disabled terminals are left out: they cannot connect.
 */
export async function presenceCounts(
  q: Queryable,
  merchantId: string | null,
): Promise<{ online: number; offline: number; never_seen: number; total: number }> {
  const { rows } = await q.query<{ online: number; offline: number; never_seen: number; total: number }>(
    `SELECT count(*) FILTER (WHERE p.online)::int AS online,
            count(*) FILTER (WHERE p.online = false)::int AS offline,
            count(*) FILTER (WHERE p.terminal_id IS NULL)::int AS never_seen,
            count(*)::int AS total
       FROM merchants.terminals t LEFT JOIN terminals.presence p ON p.terminal_id = t.id
      WHERE t.status = 'active' AND ($1::text IS NULL OR t.merchant_id = $1)`,
    [merchantId],
  );
  return rows[0];
}
