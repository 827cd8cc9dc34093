import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { canonicalJson } from './canonical.ts';
import type { AuditKeys } from './keys.ts';
import { verifySignature } from './keys.ts';
import {
  CompactRange,
  consistencyProofFrom,
  inclusionProofFrom,
  leafHash,
  rangeHash,
  type HashSource,
} from './merkle.ts';

// The tree in the database: sealing records into leaves, signing tree heads, and reading
// proofs. The sealer is the only writer of audit.leaves and audit.nodes; it holds the row
// lock on audit.state, so worker replicas take turns and never assign a position twice.

export const LOG_ID = 'tillpoint-audit';

export interface TreeHead {
  tree_size: number;
  root_hash: string; // hex
  timestamp: string; // ISO UTC
  key_id: string;
  signature: string; // base64
}

/** The exact bytes a tree head signature covers. */
export const headMessage = (h: { tree_size: number; root_hash: string; timestamp: string }) =>
  Buffer.from(
    canonicalJson({ log: LOG_ID, v: 1, tree_size: h.tree_size, root_hash: h.root_hash, timestamp: h.timestamp }),
    'utf8',
  );

export function checkHeadSignature(h: TreeHead, trusted: Map<string, Buffer>): boolean {
  const key = trusted.get(h.key_id);
  return Boolean(key) && verifySignature(key!, headMessage(h), Buffer.from(h.signature, 'base64'));
}

const key = (level: number, index: number) => `${level}/${index}`;

/** Reads the perfect-subtree hashes an algorithm will ask for, in two queries. */
async function fetchNodes(q: Queryable, wanted: { level: number; index: number }[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const leaves = wanted.filter((w) => w.level === 0).map((w) => w.index);
  const inner = wanted.filter((w) => w.level > 0);
  if (leaves.length > 0) {
    const r = await q.query<{ leaf_index: number; leaf_hash: Buffer }>(
      `SELECT leaf_index, leaf_hash FROM audit.leaves WHERE leaf_index = ANY($1::bigint[])`,
      [leaves],
    );
    for (const row of r.rows) out.set(key(0, Number(row.leaf_index)), Buffer.from(row.leaf_hash));
  }
  if (inner.length > 0) {
    const r = await q.query<{ level: number; idx: number; hash: Buffer }>(
      `SELECT n.level, n.idx, n.hash FROM audit.nodes n
         JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON w.level = n.level AND w.idx = n.idx`,
      [inner.map((w) => w.level), inner.map((w) => w.index)],
    );
    for (const row of r.rows) out.set(key(row.level, Number(row.idx)), Buffer.from(row.hash));
  }
  return out;
}

/**
 * Runs a pure tree algorithm over the stored tree. It runs twice: once to learn which nodes
 * it reads (the shape of a proof never depends on hash values), then over the fetched nodes.
 */
export async function withStoredTree<T>(q: Queryable, fn: (src: HashSource) => T): Promise<T> {
  const wanted = new Map<string, { level: number; index: number }>();
  const zero = Buffer.alloc(32);
  fn({ perfect: (level, index) => (wanted.set(key(level, index), { level, index }), zero) });
  const got = await fetchNodes(q, [...wanted.values()]);
  return fn({
    perfect: (level, index) => {
      const h = got.get(key(level, index));
      if (!h) throw new AppError('internal_error', `audit tree node ${level}/${index} is missing`);
      return h;
    },
  });
}

async function compactRangeAt(q: Queryable, size: number): Promise<CompactRange> {
  const parts = CompactRange.decomposition(size);
  const got = await fetchNodes(q, parts);
  return new CompactRange(
    size,
    parts.map((p) => {
      const h = got.get(key(p.level, p.index));
      if (!h) throw new AppError('internal_error', `audit tree node ${p.level}/${p.index} is missing`);
      return [p.level, h];
    }),
  );
}

export const storedRoot = (q: Queryable, size: number) => withStoredTree(q, (src) => rangeHash(src, 0, size));

export interface SealResult {
  sealed: number;
  treeSize: number;
  /** Records whose MAC does not hold: written by someone without the key. Never sealed. */
  forged: string[];
  /** The batch was full: more records may be waiting (the worker seals again at once). */
  more: boolean;
}

/**
 * Gives up to `batchSize` unsealed records their place in the tree, in the order of their
 * transactions (xid, then insert order). Only records of ended transactions are visible, and the
 * xid horizon (see migrations/0013_audit.sql) makes sure a record committed late by a long
 * transaction is still found.
 */
export async function seal(
  db: Db,
  deps: { keys: Pick<AuditKeys, 'mac'>; clock: Clock; batchSize?: number },
): Promise<SealResult> {
  const batch = deps.batchSize ?? 1000;
  return db.tx(async (tx) => {
    const st = (
      await tx.query<{ tree_size: number; sealed_xmin: string }>(
        `SELECT tree_size, sealed_xmin::text AS sealed_xmin FROM audit.state WHERE id = 1 FOR UPDATE`,
      )
    ).rows[0];
    const horizon = (await tx.query<{ x: string }>(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`)).rows[0]
      .x;
    // In transaction order (then insert order within one), so a full batch can move the horizon
    // up to its last transaction: every visible unsealed record below it was in this batch. Were
    // they taken by seq, a sealer that falls behind would keep its horizon and scan everything
    // since on every pass, slower the further behind it is.
    const cands = (
      await tx.query<{ id: string; record: string; mac: Buffer; xid: string }>(
        `SELECT e.id, e.record, e.mac, e.xid::text AS xid FROM audit.events e
        WHERE e.xid >= $1::xid8 AND NOT EXISTS (SELECT 1 FROM audit.leaves l WHERE l.event_id = e.id)
        ORDER BY e.xid, e.seq LIMIT $2`,
        [st.sealed_xmin, batch],
      )
    ).rows;
    const size0 = Number(st.tree_size);
    const forged: string[] = [];
    const good = cands.filter((c) => {
      const ok = deps.keys.mac(c.record).equals(Buffer.from(c.mac));
      if (!ok) forged.push(c.id);
      return ok;
    });
    let size = size0;
    if (good.length > 0) {
      const cr = await compactRangeAt(tx, size0);
      const idx: number[] = [];
      const ids: string[] = [];
      const hashes: string[] = [];
      const nl: number[] = [];
      const ni: number[] = [];
      const nh: string[] = [];
      for (const c of good) {
        const lh = leafHash(c.record);
        idx.push(cr.size);
        ids.push(c.id);
        hashes.push(lh.toString('hex'));
        for (const n of cr.append(lh)) {
          nl.push(n.level);
          ni.push(n.index);
          nh.push(n.hash.toString('hex'));
        }
      }
      const now = deps.clock.now().toISOString();
      await tx.query(
        `INSERT INTO audit.leaves (leaf_index, event_id, leaf_hash, sealed_at)
         SELECT i, e, decode(h, 'hex'), $4 FROM unnest($1::bigint[], $2::text[], $3::text[]) AS t(i, e, h)`,
        [idx, ids, hashes, now],
      );
      if (nl.length > 0) {
        await tx.query(
          `INSERT INTO audit.nodes (level, idx, hash) SELECT l, i, decode(h, 'hex') FROM unnest($1::smallint[], $2::bigint[], $3::text[]) AS t(l, i, h)`,
          [nl, ni, nh],
        );
      }
      size = cr.size;
    }
    // The horizon: every record of a transaction below it is sealed (or forged). After a pass
    // that saw everything it could, the oldest transaction still running; after a full batch,
    // the batch's last transaction if lower (records of it may be left for the next pass).
    const full = cands.length === batch;
    const last = full ? cands[cands.length - 1].xid : undefined;
    await tx.query(
      `UPDATE audit.state
          SET tree_size = $1,
              sealed_xmin = greatest(sealed_xmin, CASE WHEN $2::xid8 IS NULL THEN $3::xid8 ELSE least($2::xid8, $3::xid8) END)
        WHERE id = 1`,
      [size, last ?? null, horizon],
    );
    return { sealed: good.length, treeSize: size, forged, more: full };
  });
}

function headOf(r: {
  tree_size: number;
  root_hash: Buffer;
  signed_at: Date;
  key_id: string;
  signature: Buffer;
}): TreeHead {
  return {
    tree_size: Number(r.tree_size),
    root_hash: Buffer.from(r.root_hash).toString('hex'),
    timestamp: new Date(r.signed_at).toISOString(),
    key_id: r.key_id,
    signature: Buffer.from(r.signature).toString('base64'),
  };
}

export async function latestHead(q: Queryable): Promise<TreeHead | undefined> {
  const r = await q.query<Parameters<typeof headOf>[0]>(
    `SELECT * FROM audit.tree_heads ORDER BY tree_size DESC LIMIT 1`,
  );
  return r.rows[0] ? headOf(r.rows[0]) : undefined;
}

/**
 * The signed head a segment from `start` ends at: the latest one at most `maxLeaves` past it, or,
 * when one signing interval alone holds more, the first one past it (an interval is never split).
 */
export async function segmentHead(q: Queryable, start: number, maxLeaves: number): Promise<TreeHead | undefined> {
  const within = await q.query<Parameters<typeof headOf>[0]>(
    `SELECT * FROM audit.tree_heads WHERE tree_size > $1 AND tree_size <= $2 ORDER BY tree_size DESC LIMIT 1`,
    [start, start + maxLeaves],
  );
  if (within.rows[0]) return headOf(within.rows[0]);
  const next = await q.query<Parameters<typeof headOf>[0]>(
    `SELECT * FROM audit.tree_heads WHERE tree_size > $1 ORDER BY tree_size LIMIT 1`,
    [start],
  );
  return next.rows[0] ? headOf(next.rows[0]) : undefined;
}

export async function headAt(q: Queryable, size: number): Promise<TreeHead | undefined> {
  const r = await q.query<Parameters<typeof headOf>[0]>(`SELECT * FROM audit.tree_heads WHERE tree_size = $1`, [size]);
  return r.rows[0] ? headOf(r.rows[0]) : undefined;
}

export async function allHeads(q: Queryable): Promise<TreeHead[]> {
  const r = await q.query<Parameters<typeof headOf>[0]>(`SELECT * FROM audit.tree_heads ORDER BY tree_size`);
  return r.rows.map(headOf);
}

/**
 * Signs the current tree head when the tree grew and `intervalSeconds` passed since the last
 * one (or always, with `force`). Returns the new head, or undefined when none was due.
 */
export async function signHead(
  db: Db,
  deps: { keys: Pick<AuditKeys, 'sign' | 'keyId'>; clock: Clock; intervalSeconds: number; force?: boolean },
): Promise<TreeHead | undefined> {
  return db.tx(async (tx) => {
    const st = (await tx.query<{ tree_size: number }>(`SELECT tree_size FROM audit.state WHERE id = 1 FOR UPDATE`))
      .rows[0];
    const size = Number(st.tree_size);
    const last = await latestHead(tx);
    const now = deps.clock.now();
    if (size === 0 || (last && last.tree_size >= size)) return undefined;
    if (!deps.force && last && now.getTime() - Date.parse(last.timestamp) < deps.intervalSeconds * 1000)
      return undefined;
    const root = (await compactRangeAt(tx, size)).root();
    const unsigned = { tree_size: size, root_hash: root.toString('hex'), timestamp: now.toISOString() };
    const signature = deps.keys.sign(headMessage(unsigned));
    await tx.query(
      `INSERT INTO audit.tree_heads (tree_size, root_hash, signed_at, key_id, signature) VALUES ($1, $2, $3, $4, $5)`,
      [size, root, unsigned.timestamp, deps.keys.keyId, signature],
    );
    return { ...unsigned, key_id: deps.keys.keyId, signature: signature.toString('base64') };
  });
}

export interface InclusionProof {
  log: string;
  /** The record exactly as hashed: the leaf is SHA-256(0x00 || these UTF-8 bytes). */
  record: string;
  leaf_index: number;
  leaf_hash: string;
  audit_path: string[];
  tree_head: TreeHead;
  /** Raw Ed25519 public key, base64, that signed the head. */
  public_key: string;
  how_to_check: string;
}

export const HOW_TO_CHECK =
  'leaf = SHA-256(0x00 || record as UTF-8); fold audit_path into it as RFC 9162 section 2.1.3.2 describes ' +
  '(node = SHA-256(0x01 || left || right)); the result must equal tree_head.root_hash, and tree_head.signature must be a valid ' +
  'Ed25519 signature by public_key over the canonical JSON {"log","root_hash","timestamp","tree_size","v":1} ' +
  '(keys sorted, no spaces). `tillpoint audit check-proof <file>` does exactly this without a database.';

/** An inclusion proof of one record in a signed tree head (the latest, or the one of `treeSize`). */
export async function proveRecord(
  q: Queryable,
  eventId: string,
  trusted: Map<string, Buffer>,
  treeSize?: number,
): Promise<InclusionProof> {
  const leaf = (
    await q.query<{ leaf_index: number; leaf_hash: Buffer; record: string | null }>(
      `SELECT l.leaf_index, l.leaf_hash, e.record FROM audit.leaves l LEFT JOIN audit.events e ON e.id = l.event_id WHERE l.event_id = $1`,
      [eventId],
    )
  ).rows[0];
  if (!leaf)
    throw new AppError(
      'not_found',
      'No sealed audit record with this id (records are sealed within seconds of being written)',
    );
  if (leaf.record === null)
    throw new AppError('not_found', 'This record has been moved to the archive; prove it from the exported segment');
  const head = treeSize === undefined ? await latestHead(q) : await headAt(q, treeSize);
  const index = Number(leaf.leaf_index);
  if (!head || head.tree_size <= index)
    throw new AppError(
      'conflict',
      'The record is not yet covered by a signed tree head; try again after the next signing interval',
    );
  const path = await withStoredTree(q, (src) => inclusionProofFrom(src, index, head.tree_size));
  return {
    log: LOG_ID,
    record: leaf.record,
    leaf_index: index,
    leaf_hash: Buffer.from(leaf.leaf_hash).toString('hex'),
    audit_path: path.map((h) => h.toString('hex')),
    tree_head: head,
    public_key: trusted.get(head.key_id)?.toString('base64') ?? '',
    how_to_check: HOW_TO_CHECK,
  };
}

export interface ConsistencyProof {
  log: string;
  first: TreeHead;
  second: TreeHead;
  proof: string[];
}

/** Proof that the signed head of `second` leaves extends the signed head of `first` leaves. */
export async function proveConsistency(q: Queryable, first: number, second: number): Promise<ConsistencyProof> {
  const [a, b] = [await headAt(q, first), await headAt(q, second)];
  if (!a || !b) throw new AppError('not_found', 'Both sizes must be sizes of signed tree heads');
  if (first > second) throw new AppError('validation_failed', 'first must not be larger than second');
  const proof = await withStoredTree(q, (src) => consistencyProofFrom(src, first, second));
  return { log: LOG_ID, first: a, second: b, proof: proof.map((h) => h.toString('hex')) };
}
