import type { Queryable } from '../../platform/db.ts';
import type { AuditKeys } from './keys.ts';
import { CompactRange, leafHash, verifyInclusion } from './merkle.ts';
import { allHeads, checkHeadSignature, type InclusionProof, headMessage } from './tree.ts';
import { indexColumnsOf, type AuditRecord } from './trail.ts';
import { verifySignature } from './keys.ts';
import type { ExportedHead } from './archive.ts';

// `tillpoint audit verify`: recompute everything from the records themselves and compare.
// Trust nothing stored except the signed tree heads (signature checked against configured
// public keys) and the MAC key. Report the first record, in tree order, that was changed,
// removed or inserted.

export type ProblemKind = 'changed' | 'removed' | 'inserted' | 'head_mismatch' | 'bad_signature' | 'export_unreadable';

export interface Problem {
  kind: ProblemKind;
  /** The record concerned, when one can be named. */
  record_id?: string;
  leaf_index?: number;
  tree_size?: number;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  records_checked: number;
  leaves: number;
  unsealed: number;
  heads_checked: number;
  /** Signed heads read back from write-once storage and held against the database's tree. */
  exported_heads_checked: number;
  /** False when export is off: then nothing outside the database anchors the trail. */
  export_checked: boolean;
  archived_leaves: number;
  /** The first problem in tree order (then unsealed records, in write order). */
  first?: Problem;
  problems: Problem[];
}

const PAGE = 5000;

type Row = {
  leaf_index: number;
  event_id: string;
  leaf_hash: Buffer;
  id: string | null;
  record: string | null;
  mac: Buffer | null;
  occurred_at: Date | null;
  action: string | null;
  outcome: string | null;
  actor_id: string | null;
  merchant_id: string | null;
  resource_id: string | null;
};

/** Checks one stored row against its own record: MAC and the query columns. */
function authentic(
  keys: Pick<AuditKeys, 'mac'>,
  row: Omit<Row, 'leaf_index' | 'event_id' | 'leaf_hash'>,
): { ok: boolean; rec?: AuditRecord } {
  if (row.record === null || row.mac === null) return { ok: false };
  if (!keys.mac(row.record).equals(Buffer.from(row.mac))) return { ok: false };
  let rec: AuditRecord;
  try {
    rec = JSON.parse(row.record) as AuditRecord;
  } catch {
    return { ok: false };
  }
  const want = indexColumnsOf(rec);
  const ok =
    row.id === rec.id &&
    new Date(row.occurred_at!).toISOString() === want.occurred_at &&
    row.action === want.action &&
    row.outcome === want.outcome &&
    row.actor_id === want.actor_id &&
    row.merchant_id === want.merchant_id &&
    row.resource_id === want.resource_id;
  return { ok, rec };
}

/** What write-once storage holds (archive.ts readExportedHeads), or undefined when export is off. */
export interface ExportedState {
  heads: ExportedHead[];
  unreadable: { key: string; reason: string }[];
}

export async function verifyTrail(
  q: Queryable,
  keys: Pick<AuditKeys, 'mac' | 'trusted'>,
  exported?: ExportedState,
): Promise<VerifyReport> {
  const problems: Problem[] = [];
  // The exported heads are the anchor a database owner cannot move: the database's tree must
  // reach each of them, and produce its root at its size. Rows of audit.exports, audit.state and
  // audit.tree_heads are not trusted for this: they are in the database too.
  for (const u of exported?.unreadable ?? []) {
    problems.push({
      kind: 'export_unreadable',
      message: `the exported segment ${u.key} cannot be checked: ${u.reason}`,
    });
  }
  const anchors: ExportedHead[] = [];
  for (const e of exported?.heads ?? []) {
    if (checkHeadSignature(e.head, keys.trusted)) anchors.push(e);
    else
      problems.push({
        kind: 'bad_signature',
        tree_size: e.head.tree_size,
        message: `the tree head in the exported segment ${e.key} is not signed by a trusted key`,
      });
  }
  let nextAnchor = 0;
  let firstExportMismatch: Problem | undefined;
  const heads = await allHeads(q);
  for (const h of heads) {
    if (!checkHeadSignature(h, keys.trusted)) {
      problems.push({
        kind: 'bad_signature',
        tree_size: h.tree_size,
        message: `the tree head of size ${h.tree_size} is not signed by a trusted key`,
      });
    }
  }
  const goodHeads = heads.filter((h) => checkHeadSignature(h, keys.trusted));
  const state = (await q.query<{ pruned_size: number }>(`SELECT pruned_size FROM audit.state WHERE id = 1`)).rows[0];
  const prunedSize = Number(state?.pruned_size ?? 0);

  const cr = new CompactRange();
  let nextHead = 0;
  let checked = 0;
  let archived = 0;
  let prunedAllowed = 0;
  // Leaves whose records are gone below the archive boundary, as [start, end) runs.
  const archivedRuns: [number, number][] = [];
  let expected = 0;
  let firstHeadMismatch: Problem | undefined;

  const checkHeadsUpTo = () => {
    while (nextAnchor < anchors.length && anchors[nextAnchor].head.tree_size === cr.size) {
      const a = anchors[nextAnchor++];
      if (cr.root().toString('hex') !== a.head.root_hash && !firstExportMismatch) {
        firstExportMismatch = {
          kind: 'head_mismatch',
          tree_size: a.head.tree_size,
          message: `the database's trail is inconsistent with the tree head signed at size ${a.head.tree_size} (${a.head.timestamp}) and exported in ${a.key}: leaves 0 to ${a.head.tree_size - 1} are not the ones that were signed (records were removed, changed or replaced)`,
        };
      }
    }
    while (nextHead < goodHeads.length && goodHeads[nextHead].tree_size === cr.size) {
      const h = goodHeads[nextHead++];
      if (cr.root().toString('hex') !== h.root_hash && !firstHeadMismatch) {
        firstHeadMismatch = {
          kind: 'head_mismatch',
          tree_size: h.tree_size,
          message: `the records no longer produce the tree head signed at size ${h.tree_size} (${h.timestamp}): a record before it was changed, removed or inserted`,
        };
      }
    }
  };

  for (;;) {
    const page = (
      await q.query<Row>(
        `SELECT l.leaf_index, l.event_id, l.leaf_hash, e.id, e.record, e.mac, e.occurred_at, e.action, e.outcome, e.actor_id, e.merchant_id, e.resource_id
         FROM audit.leaves l LEFT JOIN audit.events e ON e.id = l.event_id
        WHERE l.leaf_index >= $1 ORDER BY l.leaf_index LIMIT $2`,
        [expected, PAGE],
      )
    ).rows;
    if (page.length === 0) break;
    for (const row of page) {
      const index = Number(row.leaf_index);
      if (index !== expected) {
        // Leaves are numbered without gaps; a gap is a leaf (and its record) taken out.
        problems.push({
          kind: 'removed',
          leaf_index: expected,
          message: `leaf ${expected} is missing from the tree: its record was removed`,
        });
        // Carry on from the row we have, so later checks still run.
        while (cr.size < index) {
          cr.append(Buffer.alloc(32));
          checkHeadsUpTo();
        }
        expected = index;
      }
      let lh: Buffer;
      if (row.id === null) {
        // No record: archived by the retention job (allowed below the pruned size), or removed.
        if (index < prunedSize) {
          archived += 1;
          const last = archivedRuns[archivedRuns.length - 1];
          if (last && last[1] === index) last[1] = index + 1;
          else archivedRuns.push([index, index + 1]);
        } else {
          problems.push({
            kind: 'removed',
            record_id: row.event_id,
            leaf_index: index,
            message: `record ${row.event_id} (leaf ${index}) was removed`,
          });
        }
        lh = Buffer.from(row.leaf_hash);
      } else {
        checked += 1;
        lh = leafHash(row.record!);
        const a = authentic(keys, row);
        if (!a.ok) {
          const sealedAsIs = lh.equals(Buffer.from(row.leaf_hash));
          problems.push(
            sealedAsIs
              ? {
                  kind: 'inserted',
                  record_id: row.event_id,
                  leaf_index: index,
                  message: `record ${row.event_id} (leaf ${index}) was not written by Tillpoint: it was inserted`,
                }
              : {
                  kind: 'changed',
                  record_id: row.event_id,
                  leaf_index: index,
                  message: `record ${row.event_id} (leaf ${index}) was changed`,
                },
          );
        } else if (!lh.equals(Buffer.from(row.leaf_hash))) {
          problems.push({
            kind: 'changed',
            record_id: row.event_id,
            leaf_index: index,
            message: `the stored leaf hash of record ${row.event_id} (leaf ${index}) was changed`,
          });
        } else if (a.rec!.action === 'audit.pruned' && typeof a.rec!.details.to === 'number') {
          prunedAllowed = Math.max(prunedAllowed, a.rec!.details.to);
        }
      }
      cr.append(lh);
      expected = index + 1;
      checkHeadsUpTo();
    }
  }
  const leaves = cr.size;
  // A retention run is itself recorded; an archive boundary no record accounts for is a deletion.
  const unaccounted = archivedRuns.find(([, end]) => end > prunedAllowed);
  if (unaccounted) {
    const from = Math.max(unaccounted[0], prunedAllowed);
    problems.push({
      kind: 'removed',
      leaf_index: from,
      message: `the record at leaf ${from} was removed without a recorded retention run`,
    });
  }
  // Exported heads the database's tree never reached: it was cut short. Name the largest.
  const beyond = anchors.slice(nextAnchor).filter((a) => a.head.tree_size > leaves);
  if (beyond.length > 0) {
    const a = beyond[beyond.length - 1];
    problems.push({
      kind: 'removed',
      leaf_index: leaves,
      tree_size: a.head.tree_size,
      message: `the trail was cut short: ${a.key} in write-once storage holds a tree head signed at size ${a.head.tree_size} (${a.head.timestamp}), the database has ${leaves} leaves: leaves ${leaves} to ${a.head.tree_size - 1} (${a.head.tree_size - leaves} records) are missing`,
    });
  }
  for (const h of goodHeads.slice(nextHead)) {
    if (h.tree_size > leaves) {
      problems.push({
        kind: 'removed',
        leaf_index: leaves,
        tree_size: h.tree_size,
        message: `the tree head signed at size ${h.tree_size} covers ${h.tree_size - leaves} leaves that are gone, from leaf ${leaves}`,
      });
      break;
    }
  }
  // Records not (yet) in the tree must at least carry a valid MAC.
  let unsealed = 0;
  let after = 0;
  for (;;) {
    const page = (
      await q.query<Omit<Row, 'leaf_index' | 'event_id' | 'leaf_hash'> & { seq: number }>(
        `SELECT e.seq, e.id, e.record, e.mac, e.occurred_at, e.action, e.outcome, e.actor_id, e.merchant_id, e.resource_id
         FROM audit.events e WHERE e.seq > $1 AND NOT EXISTS (SELECT 1 FROM audit.leaves l WHERE l.event_id = e.id)
        ORDER BY e.seq LIMIT $2`,
        [after, PAGE],
      )
    ).rows;
    if (page.length === 0) break;
    for (const row of page) {
      unsealed += 1;
      checked += 1;
      after = Number(row.seq);
      if (!authentic(keys, row).ok) {
        problems.push({
          kind: 'inserted',
          record_id: row.id!,
          message: `record ${row.id} (not yet sealed) was not written by Tillpoint: it was inserted or changed`,
        });
      }
    }
  }
  // Order: record-level findings first (they name a record), in tree order; then head mismatches.
  const named = problems.filter((p) => p.kind !== 'bad_signature');
  named.sort((a, b) => (a.leaf_index ?? Number.MAX_SAFE_INTEGER) - (b.leaf_index ?? Number.MAX_SAFE_INTEGER));
  const all = [
    ...named,
    ...problems.filter((p) => p.kind === 'bad_signature'),
    ...(firstExportMismatch ? [firstExportMismatch] : []),
    ...(firstHeadMismatch ? [firstHeadMismatch] : []),
  ];
  return {
    ok: all.length === 0,
    records_checked: checked,
    leaves,
    unsealed,
    heads_checked: goodHeads.length,
    exported_heads_checked: anchors.length,
    export_checked: exported !== undefined,
    archived_leaves: archived,
    first: all[0],
    problems: all,
  };
}

/** Checks a printed inclusion proof with nothing but the proof itself (what an outsider does). */
export function checkInclusionProof(p: InclusionProof, expectedPublicKey?: string): { ok: boolean; reason?: string } {
  try {
    const leaf = leafHash(p.record);
    if (leaf.toString('hex') !== p.leaf_hash) return { ok: false, reason: 'the leaf hash does not match the record' };
    const root = Buffer.from(p.tree_head.root_hash, 'hex');
    if (
      !verifyInclusion(
        leaf,
        p.leaf_index,
        p.tree_head.tree_size,
        p.audit_path.map((h) => Buffer.from(h, 'hex')),
        root,
      )
    ) {
      return { ok: false, reason: 'the audit path does not lead to the root hash' };
    }
    const pub = Buffer.from(expectedPublicKey ?? p.public_key, 'base64');
    if (!verifySignature(pub, headMessage(p.tree_head), Buffer.from(p.tree_head.signature, 'base64'))) {
      return { ok: false, reason: 'the tree head signature does not verify with the public key' };
    }
    return { ok: true };
  } catch {
    return { ok: false, reason: 'the proof is malformed' };
  }
}
