import { createHash } from 'node:crypto';
import type { Db } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { canonicalJson } from './canonical.ts';
import { LOG_ID, segmentHead, type TreeHead } from './tree.ts';
import type { WormStore } from './worm.ts';
import type { AuditWriter } from './trail.ts';
import { SYSTEM_ACTOR } from './trail.ts';

// Sealed segments: every leaf from the last export up to the latest signed tree head, with
// that head and its public key, as one JSON-lines file in write-once storage. A segment can be
// checked on its own: rehash its records, rebuild the tree with the previous segments, and
// compare with the signed head in its first line.

export const addMonths = (d: Date, months: number) => {
  const r = new Date(d);
  r.setUTCMonth(r.getUTCMonth() + months);
  return r;
};

const pad = (n: number) => String(n).padStart(12, '0');

export function segmentKey(start: number, end: number) {
  return `segments/${pad(start)}-${pad(end)}.jsonl`;
}

export function buildSegment(
  start: number,
  end: number,
  head: TreeHead,
  publicKey: Buffer,
  rows: { leaf_index: number; leaf_hash: Buffer; record: string | null }[],
): Buffer {
  const lines = [
    canonicalJson({
      type: 'segment',
      log: LOG_ID,
      start,
      end,
      head: { ...head },
      public_key: publicKey.toString('base64'),
    }),
    ...rows.map((r) =>
      canonicalJson({
        leaf_index: Number(r.leaf_index),
        leaf_hash: Buffer.from(r.leaf_hash).toString('hex'),
        record: r.record,
      }),
    ),
  ];
  return Buffer.from(lines.join('\n') + '\n', 'utf8');
}

/**
 * The most leaves a segment carries when the export has fallen behind (the store or the worker
 * was down): the backlog goes out as several segments, each ending at a signed head, so the
 * worker holds one segment's records in memory at a time, not the whole outage's (an hour at
 * 1,000 records/s would be ~3.6 GB). One signing interval is never split.
 */
export const MAX_SEGMENT_LEAVES = 20_000;

/**
 * Exports the next segment not yet in `store`: the sealed leaves from the last export up to the
 * latest signed head within `maxLeaves` of it. Undefined when nothing is due; call again while it
 * returns a segment to catch up.
 */
export async function exportSegments(
  db: Db,
  deps: {
    store: WormStore;
    clock: Clock;
    retentionMonths: number;
    publicKey: (keyId: string) => Buffer | undefined;
    maxLeaves?: number;
  },
) {
  const st = (await db.query<{ exported_size: number }>(`SELECT exported_size FROM audit.state WHERE id = 1`)).rows[0];
  const start = Number(st.exported_size);
  const head = await segmentHead(db, start, deps.maxLeaves ?? MAX_SEGMENT_LEAVES);
  if (!head) return undefined;
  const end = head.tree_size;
  const rows = (
    await db.query<{ leaf_index: number; leaf_hash: Buffer; record: string | null }>(
      `SELECT l.leaf_index, l.leaf_hash, e.record FROM audit.leaves l LEFT JOIN audit.events e ON e.id = l.event_id
      WHERE l.leaf_index >= $1 AND l.leaf_index < $2 ORDER BY l.leaf_index`,
      [start, end],
    )
  ).rows;
  const body = buildSegment(start, end, head, deps.publicKey(head.key_id) ?? Buffer.alloc(0), rows);
  const now = deps.clock.now();
  const location = await deps.store.put(segmentKey(start, end), body, addMonths(now, deps.retentionMonths));
  await db.tx(async (tx) => {
    await tx.query(
      `INSERT INTO audit.exports (segment_start, segment_end, target, location, sha256, exported_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT DO NOTHING`,
      [start, end, deps.store.target, location, createHash('sha256').update(body).digest('hex'), now.toISOString()],
    );
    // Only forwards: a slower replica that exported the same segment changes nothing.
    await tx.query(`UPDATE audit.state SET exported_size = greatest(exported_size, $1) WHERE id = 1`, [end]);
  });
  return { start, end, location };
}

/**
 * Removes from the database the records older than the online period that are already in
 * write-once storage (PCI DSS 10.5.1: 12 months kept, the last 3 at hand). Leaves and tree
 * nodes stay, so the tree and its proofs still verify. The run is itself recorded, in the
 * same transaction: `audit verify` accepts missing records only up to a recorded boundary.
 */
export async function pruneOnline(db: Db, deps: { clock: Clock; onlineMonths: number; audit: AuditWriter }) {
  const cutoff = addMonths(deps.clock.now(), -deps.onlineMonths);
  return db.tx(async (tx) => {
    const st = (
      await tx.query<{ tree_size: number; exported_size: number; pruned_size: number }>(
        `SELECT tree_size, exported_size, pruned_size FROM audit.state WHERE id = 1 FOR UPDATE`,
      )
    ).rows[0];
    const from = Number(st.pruned_size);
    const young = (
      await tx.query<{ first: number | null }>(
        `SELECT min(l.leaf_index) AS first FROM audit.leaves l JOIN audit.events e ON e.id = l.event_id
        WHERE l.leaf_index >= $1 AND e.occurred_at >= $2`,
        [from, cutoff.toISOString()],
      )
    ).rows[0].first;
    const to = Math.min(young === null ? Number(st.tree_size) : Number(young), Number(st.exported_size));
    if (to <= from) return undefined;
    await tx.query(`SELECT set_config('tillpoint.audit_prune', 'on', true)`);
    const del = await tx.query(
      `DELETE FROM audit.events e USING audit.leaves l WHERE l.event_id = e.id AND l.leaf_index >= $1 AND l.leaf_index < $2`,
      [from, to],
    );
    await tx.query(`SELECT set_config('tillpoint.audit_prune', 'off', true)`);
    await tx.query(`UPDATE audit.state SET pruned_size = $1 WHERE id = 1`, [to]);
    await deps.audit.record(tx, {
      action: 'audit.pruned',
      actor: SYSTEM_ACTOR('worker'),
      resource: { type: 'audit_trail' },
      details: { from, to, records: del.rowCount, cutoff: cutoff.toISOString() },
    });
    return { from, to, records: del.rowCount };
  });
}

/** A signed tree head as exported to write-once storage, with where it was found. */
export interface ExportedHead {
  key: string;
  start: number;
  end: number;
  head: TreeHead;
}

const SEGMENT_KEY = /^segments\/(\d{12})-(\d{12})\.jsonl$/;
// The header line is about 400 bytes; a segment's records follow it.
const HEADER_BYTES = 4096;

/**
 * Reads the header (the signed head) of every segment in write-once storage: the anchor that a
 * database owner cannot move. `audit verify` holds the database's tree against each of them.
 * A segment whose header cannot be read is reported, never skipped in silence.
 */
export async function readExportedHeads(
  store: WormStore,
): Promise<{ heads: ExportedHead[]; unreadable: { key: string; reason: string }[] }> {
  let keys: string[];
  try {
    keys = (await store.list('segments/')).filter((k) => SEGMENT_KEY.test(k));
  } catch (e) {
    return {
      heads: [],
      unreadable: [{ key: 'segments/', reason: `the store cannot be listed: ${(e as Error).message.slice(0, 200)}` }],
    };
  }
  const heads: ExportedHead[] = [];
  const unreadable: { key: string; reason: string }[] = [];
  // Sixteen at a time: a year of segments (one per signing interval while the trail grows) is many small reads.
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++];
      const [, start, end] = SEGMENT_KEY.exec(key)!.map(Number);
      try {
        let bytes = await store.read(key, HEADER_BYTES);
        if (!bytes.includes(0x0a)) bytes = await store.read(key);
        const nl = bytes.indexOf(0x0a);
        const header = JSON.parse(bytes.subarray(0, nl === -1 ? bytes.length : nl).toString('utf8')) as {
          type?: string;
          start?: number;
          end?: number;
          head?: TreeHead;
        };
        const h = header.head;
        if (
          header.type !== 'segment' ||
          header.start !== start ||
          header.end !== end ||
          !h ||
          h.tree_size !== end ||
          typeof h.root_hash !== 'string' ||
          typeof h.signature !== 'string' ||
          typeof h.key_id !== 'string' ||
          typeof h.timestamp !== 'string'
        ) {
          unreadable.push({ key, reason: 'its header is not the signed head of the leaves its name covers' });
          continue;
        }
        heads.push({
          key,
          start,
          end,
          head: {
            tree_size: h.tree_size,
            root_hash: h.root_hash,
            timestamp: h.timestamp,
            key_id: h.key_id,
            signature: h.signature,
          },
        });
      } catch (e) {
        unreadable.push({ key, reason: (e as Error).message.slice(0, 200) });
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  heads.sort((a, b) => a.head.tree_size - b.head.tree_size || a.key.localeCompare(b.key));
  return { heads, unreadable };
}
