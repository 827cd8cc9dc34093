import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDb } from '../src/platform/testing.ts';
import { testAuditService } from './helpers/audit.ts';
import { fixedClock } from '../src/platform/clock.ts';
import type { Db } from '../src/platform/db.ts';
import {
  auditKeysFromSeed,
  checkInclusionProof,
  localWorm,
  merkle,
  type AuditService,
} from '../src/modules/audit/index.ts';

// Tamper tests: change, remove or add audit rows with plain SQL, as a DBA or an attacker with
// database access could, and `audit verify` must fail, naming the first record concerned.

async function trail(opts: { records?: number } = {}) {
  const db = await createTestDb();
  const dir = mkdtempSync(join(tmpdir(), 'tp-audit-'));
  const clock = fixedClock('2025-01-10T10:00:00.000Z');
  const audit = testAuditService({ db, clock, dir, store: localWorm(join(dir, 'archive')) });
  const ids: string[] = [];
  for (let i = 0; i < (opts.records ?? 12); i++) {
    ids.push(
      await db.tx((tx) =>
        audit.record(tx, {
          action: 'merchant.created',
          resource: { type: 'merchant', id: `mer_${i}`, merchant_id: `mer_${i}` },
          details: { n: i },
        }),
      ),
    );
    clock.advance(1000);
  }
  return { db, dir, clock, audit, ids };
}

/** Plain SQL with the append-only triggers switched off, as someone with database rights would. */
async function tamper(db: Db, sql: string, params: unknown[] = []) {
  await db.tx(async (tx) => {
    await tx.query(`ALTER TABLE audit.events DISABLE TRIGGER USER`);
    await tx.query(`ALTER TABLE audit.leaves DISABLE TRIGGER USER`);
    await tx.query(sql, params);
    await tx.query(`ALTER TABLE audit.events ENABLE TRIGGER USER`);
    await tx.query(`ALTER TABLE audit.leaves ENABLE TRIGGER USER`);
  });
}

async function sealAndSign(audit: AuditService) {
  await audit.seal();
  return audit.signHead(true);
}

describe('audit trail: seal, sign, verify, prove', () => {
  let t: Awaited<ReturnType<typeof trail>>;
  before(async () => {
    t = await trail();
  });
  after(() => t.db.close());

  test('sealed records form the RFC 6962 tree of their canonical bytes; the head is signed', async () => {
    const head = await sealAndSign(t.audit);
    assert.equal(head?.tree_size, 12);
    const rows = (
      await t.db.query<{ record: string }>(
        `SELECT e.record FROM audit.leaves l JOIN audit.events e ON e.id = l.event_id ORDER BY l.leaf_index`,
      )
    ).rows;
    assert.equal(head!.root_hash, merkle.rootOf(rows.map((r) => merkle.leafHash(r.record))).toString('hex'));
    const report = await t.audit.verify();
    assert.equal(report.ok, true, JSON.stringify(report.first));
    assert.equal(report.records_checked, 12);
    assert.equal(report.heads_checked, 1);
  });

  test('an inclusion proof checks out with nothing but the proof; a doctored one does not', async () => {
    const p = await t.audit.prove(t.ids[5]);
    assert.equal(p.leaf_index, 5);
    assert.deepEqual(checkInclusionProof(p), { ok: true });
    assert.equal(JSON.parse(p.record).id, t.ids[5]);
    const doctored = { ...p, record: p.record.replace('"n":5', '"n":6') };
    assert.equal(checkInclusionProof(doctored).ok, false);
    const otherKey = auditKeysFromSeed(randomBytes(32)).publicKey.toString('base64');
    assert.equal(checkInclusionProof(p, otherKey).ok, false, 'a head signed by another key is refused');
  });

  test('consistency proofs between signed heads verify', async () => {
    for (let i = 0; i < 5; i++)
      await t.db.tx((tx) => t.audit.record(tx, { action: 'operator.created', details: { i } }));
    t.clock.advance(120_000);
    const h2 = await sealAndSign(t.audit);
    assert.equal(h2?.tree_size, 17);
    const c = await t.audit.consistency(12, 17);
    assert.ok(
      merkle.verifyConsistency(
        12,
        17,
        Buffer.from(c.first.root_hash, 'hex'),
        Buffer.from(c.second.root_hash, 'hex'),
        c.proof.map((h) => Buffer.from(h, 'hex')),
      ),
    );
    assert.equal((await t.audit.verify()).ok, true);
  });

  test('sealed segments go to write-once files: read-only, never rewritten', async () => {
    const first = await t.audit.exportSegments();
    assert.deepEqual([first?.start, first?.end], [0, 17]);
    const files = readdirSync(join(t.dir, 'archive', 'segments'));
    assert.equal(files.length, 1);
    const path = join(t.dir, 'archive', 'segments', files[0]);
    assert.equal(statSync(path).mode & 0o777, 0o444);
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    assert.equal(lines.length, 18, 'a header and 17 records');
    assert.equal(JSON.parse(lines[0]).head.tree_size, 17);
    assert.equal(await t.audit.exportSegments(), undefined, 'nothing new to export');
    await assert.rejects(
      localWorm(join(t.dir, 'archive')).put(`segments/${files[0]}`, Buffer.from('other'), new Date()),
      /never overwritten/,
    );
    // Root ignores file modes, so this part only means something for an ordinary user.
    if (process.getuid?.() !== 0)
      assert.throws(() => writeFileSync(path, 'x'), /EACCES|EPERM/, 'the file itself is read-only');
  });

  test('the database refuses UPDATE and DELETE on the trail', async () => {
    await assert.rejects(t.db.query(`UPDATE audit.events SET action = 'x' WHERE id = $1`, [t.ids[0]]), /append-only/);
    await assert.rejects(t.db.query(`DELETE FROM audit.leaves WHERE leaf_index = 0`), /append-only/);
    await assert.rejects(t.db.query(`TRUNCATE audit.events CASCADE`), /append-only/);
  });
});

describe('audit verify names the first record that was tampered with', () => {
  test('UPDATE of a record', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      await tamper(t.db, `UPDATE audit.events SET record = replace(record, '"n":4', '"n":40') WHERE id = $1`, [
        t.ids[4],
      ]);
      await tamper(t.db, `UPDATE audit.events SET record = replace(record, '"n":9', '"n":90') WHERE id = $1`, [
        t.ids[9],
      ]);
      const r = await t.audit.verify();
      assert.equal(r.ok, false);
      assert.equal(r.first?.kind, 'changed');
      assert.equal(r.first?.record_id, t.ids[4]);
      assert.equal(r.first?.leaf_index, 4);
      assert.ok(
        r.problems.some((p) => p.kind === 'head_mismatch'),
        'the signed head no longer matches either',
      );
    } finally {
      await t.db.close();
    }
  });

  test('UPDATE of a query column only (the record untouched)', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      await tamper(t.db, `UPDATE audit.events SET actor_id = 'opr_someone_else' WHERE id = $1`, [t.ids[2]]);
      const r = await t.audit.verify();
      assert.equal(r.first?.record_id, t.ids[2]);
    } finally {
      await t.db.close();
    }
  });

  test('UPDATE that rehashes the record and its leaf: the MAC and the signed head catch it', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      const rec = (await t.db.query<{ record: string }>(`SELECT record FROM audit.events WHERE id = $1`, [t.ids[3]]))
        .rows[0].record;
      const forged = rec.replace('"n":3', '"n":33');
      await tamper(t.db, `UPDATE audit.events SET record = $2 WHERE id = $1`, [t.ids[3], forged]);
      await tamper(t.db, `UPDATE audit.leaves SET leaf_hash = $2 WHERE event_id = $1`, [
        t.ids[3],
        merkle.leafHash(forged),
      ]);
      const r = await t.audit.verify();
      assert.equal(r.first?.record_id, t.ids[3]);
      assert.ok(r.problems.some((p) => p.kind === 'head_mismatch'));
    } finally {
      await t.db.close();
    }
  });

  test('DELETE of a record', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      await tamper(t.db, `DELETE FROM audit.events WHERE id = $1`, [t.ids[7]]);
      const r = await t.audit.verify();
      assert.equal(r.first?.kind, 'removed');
      assert.equal(r.first?.record_id, t.ids[7]);
      assert.equal(r.first?.leaf_index, 7);
    } finally {
      await t.db.close();
    }
  });

  test('DELETE of a record and its leaf', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      await tamper(t.db, `DELETE FROM audit.leaves WHERE event_id = $1`, [t.ids[6]]);
      await tamper(t.db, `DELETE FROM audit.events WHERE id = $1`, [t.ids[6]]);
      const r = await t.audit.verify();
      assert.equal(r.first?.kind, 'removed');
      assert.equal(r.first?.leaf_index, 6);
    } finally {
      await t.db.close();
    }
  });

  test('DELETE of the newest records, leaves and all', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      await tamper(t.db, `DELETE FROM audit.leaves WHERE leaf_index >= 10`);
      await tamper(t.db, `DELETE FROM audit.events WHERE id = ANY($1)`, [t.ids.slice(10)]);
      const r = await t.audit.verify();
      assert.equal(r.first?.kind, 'removed');
      assert.equal(r.first?.leaf_index, 10);
    } finally {
      await t.db.close();
    }
  });

  test('INSERT of a record (not yet sealed, and sealed by hand into the tree)', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      const rec = (await t.db.query<{ record: string }>(`SELECT record FROM audit.events WHERE id = $1`, [t.ids[1]]))
        .rows[0].record;
      const fake = rec.replace(t.ids[1], 'aud_0000000000000000000000000000beef');
      await tamper(
        t.db,
        `INSERT INTO audit.events (id, record, mac, occurred_at, action, outcome, actor_id, merchant_id, resource_id)
                          SELECT 'aud_0000000000000000000000000000beef', $1, mac, occurred_at, action, outcome, actor_id, merchant_id, resource_id FROM audit.events WHERE id = $2`,
        [fake, t.ids[1]],
      );
      let r = await t.audit.verify();
      assert.equal(r.first?.kind, 'inserted');
      assert.equal(r.first?.record_id, 'aud_0000000000000000000000000000beef');
      const sealed = await t.audit.seal();
      assert.deepEqual(
        sealed.forged,
        ['aud_0000000000000000000000000000beef'],
        'the sealer refuses to put it in the tree',
      );
      await tamper(
        t.db,
        `INSERT INTO audit.leaves (leaf_index, event_id, leaf_hash, sealed_at) VALUES (12, $1, $2, now())`,
        ['aud_0000000000000000000000000000beef', merkle.leafHash(fake)],
      );
      r = await t.audit.verify();
      assert.equal(r.first?.kind, 'inserted');
      assert.equal(r.first?.record_id, 'aud_0000000000000000000000000000beef');
      assert.equal(r.first?.leaf_index, 12);
    } finally {
      await t.db.close();
    }
  });

  test('a tree head that was not signed by the trail key', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      await t.db.tx(async (tx) => {
        await tx.query(`ALTER TABLE audit.tree_heads DISABLE TRIGGER USER`);
        await tx.query(`UPDATE audit.tree_heads SET signature = $1`, [randomBytes(64)]);
        await tx.query(`ALTER TABLE audit.tree_heads ENABLE TRIGGER USER`);
      });
      const r = await t.audit.verify();
      assert.equal(r.ok, false);
      assert.equal(r.first?.kind, 'bad_signature');
    } finally {
      await t.db.close();
    }
  });
});

/**
 * What a database owner can do without the signing key: cut the trail back to `size` leaves,
 * everything the database knows of the cut part included (records, leaves, tree nodes, signed
 * heads, export rows, the bookkeeping row), with the append-only triggers bypassed.
 */
async function cutBack(db: Db, size: number) {
  await db.tx(async (tx) => {
    await tx.query(`SET LOCAL session_replication_role = replica`);
    await tx.query(`DELETE FROM audit.events e USING audit.leaves l WHERE l.event_id = e.id AND l.leaf_index >= $1`, [
      size,
    ]);
    await tx.query(`DELETE FROM audit.leaves WHERE leaf_index >= $1`, [size]);
    await tx.query(`DELETE FROM audit.nodes WHERE (idx + 1) * (1::bigint << level) > $1`, [size]);
    await tx.query(`DELETE FROM audit.tree_heads WHERE tree_size > $1`, [size]);
    await tx.query(`DELETE FROM audit.exports WHERE segment_end > $1`, [size]);
    await tx.query(`UPDATE audit.state SET tree_size = $1, exported_size = least(exported_size, $1)`, [size]);
  });
}

describe('audit verify holds the database against the heads exported to write-once storage', () => {
  /** 12 records signed and exported, then 5 more signed and exported: segments 0-12 and 12-17. */
  async function exportedTwice() {
    const t = await trail();
    await sealAndSign(t.audit);
    assert.deepEqual(await t.audit.exportSegments().then((s) => [s?.start, s?.end]), [0, 12]);
    for (let i = 0; i < 5; i++)
      t.ids.push(await t.db.tx((tx) => t.audit.record(tx, { action: 'operator.created', details: { i } })));
    t.clock.advance(120_000);
    await sealAndSign(t.audit);
    assert.deepEqual(await t.audit.exportSegments().then((s) => [s?.start, s?.end]), [12, 17]);
    const ok = await t.audit.verify();
    assert.equal(ok.ok, true, JSON.stringify(ok.first));
    return t;
  }

  test('the trail cut back below a signed, exported head (records, leaves, nodes, heads, export rows): verify fails, naming the missing leaves', async () => {
    const t = await exportedTwice();
    try {
      await cutBack(t.db, 12);
      // The database alone is consistent again: its own heads and exports stop at 12.
      assert.equal((await t.db.query(`SELECT 1 FROM audit.tree_heads WHERE tree_size > 12`)).rows.length, 0);
      const r = await t.audit.verify();
      assert.equal(r.ok, false, 'a trail cut short past an exported head is not ok');
      assert.equal(r.first?.kind, 'removed');
      assert.equal(r.first?.leaf_index, 12);
      assert.equal(r.first?.tree_size, 17);
      assert.equal(r.exported_heads_checked, 2, 'both exported heads were read back');
      assert.equal(r.export_checked, true);
      assert.match(r.first!.message, /segments\/000000000012-000000000017\.jsonl/);
      assert.match(r.first!.message, /leaves 12 to 16 \(5 records\) are missing/);
    } finally {
      await t.db.close();
    }
  });

  test('cut back, then grown and exported again past the old size: the old exported head no longer matches', async () => {
    const t = await exportedTwice();
    try {
      await cutBack(t.db, 10);
      for (let i = 0; i < 9; i++)
        await t.db.tx((tx) => t.audit.record(tx, { action: 'merchant.updated', details: { i } }));
      t.clock.advance(120_000);
      const h = await sealAndSign(t.audit);
      assert.equal(h?.tree_size, 19);
      // The exporter writes a new segment under a new name; the old ones stay.
      assert.deepEqual(await t.audit.exportSegments().then((s) => [s?.start, s?.end]), [10, 19]);
      const r = await t.audit.verify();
      assert.equal(r.ok, false);
      const mismatch = r.problems.find((p) => p.kind === 'head_mismatch');
      assert.ok(mismatch, JSON.stringify(r.problems));
      // The first exported head past the cut: size 12, in the first segment.
      assert.equal(mismatch.tree_size, 12);
      assert.match(mismatch.message, /segments\/000000000000-000000000012\.jsonl/);
    } finally {
      await t.db.close();
    }
  });

  test('a backlog goes out in bounded segments, each ending at a signed head, never splitting an interval; verify holds against them all', async () => {
    const t = await trail();
    try {
      // Three signed heads while nothing is exported (the store was down): 12, 17 and 23.
      await sealAndSign(t.audit);
      for (const more of [5, 6]) {
        for (let i = 0; i < more; i++)
          t.ids.push(await t.db.tx((tx) => t.audit.record(tx, { action: 'operator.created', details: { i } })));
        t.clock.advance(120_000);
        await sealAndSign(t.audit);
      }
      const segments = [];
      for (
        let s = await t.audit.exportSegments({ maxLeaves: 10 });
        s;
        s = await t.audit.exportSegments({ maxLeaves: 10 })
      )
        segments.push([s.start, s.end]);
      // 0-12 is one interval larger than 10: whole. Then the latest head within 10 leaves each time.
      assert.deepEqual(segments, [
        [0, 12],
        [12, 17],
        [17, 23],
      ]);
      const files = readdirSync(join(t.dir, 'archive', 'segments')).sort();
      assert.deepEqual(files, [
        '000000000000-000000000012.jsonl',
        '000000000012-000000000017.jsonl',
        '000000000017-000000000023.jsonl',
      ]);
      const r = await t.audit.verify();
      assert.equal(r.ok, true, JSON.stringify(r.first));
      assert.equal(r.exported_heads_checked, 3);
    } finally {
      await t.db.close();
    }
  });

  test('an exported segment whose header cannot be read is reported, never skipped', async () => {
    const t = await trail();
    try {
      await sealAndSign(t.audit);
      await t.audit.exportSegments();
      await localWorm(join(t.dir, 'archive')).put(
        'segments/000000000012-000000000020.jsonl',
        Buffer.from('not a segment\n'),
        new Date(),
      );
      const r = await t.audit.verify();
      assert.equal(r.ok, false);
      assert.equal(r.first?.kind, 'export_unreadable');
      assert.match(r.first!.message, /000000000012-000000000020/);
    } finally {
      await t.db.close();
    }
  });
});
