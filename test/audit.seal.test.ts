import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb, usingRealPostgres } from '../src/platform/testing.ts';
import { fixedClock } from '../src/platform/clock.ts';
import type { Db, Queryable } from '../src/platform/db.ts';
import { seal } from '../src/modules/audit/tree.ts';
import { testAuditService } from './helpers/audit.ts';

// The sealer under a backlog: records written faster than one batch per worker pass. Each full
// batch moves the horizon up to its last transaction, so a pass reads only what is still
// unsealed, and the worker seals batch after batch within one pass.

function setup(db: Db) {
  const clock = fixedClock('2025-01-10T10:00:00.000Z');
  const audit = testAuditService({ db, clock });
  const write = (q: Queryable, n: number) =>
    audit.record(q, {
      action: 'merchant.created',
      resource: { type: 'merchant', id: `mer_${n}`, merchant_id: `mer_${n}` },
      details: { n },
    });
  const state = async () =>
    (
      await db.query<{ tree_size: string; sealed_xmin: string }>(
        `SELECT tree_size::text, sealed_xmin::text FROM audit.state WHERE id = 1`,
      )
    ).rows[0];
  /** Every record in the tree exactly once, leaves numbered 0..n-1. */
  const assertAllSealedOnce = async (n: number) => {
    const r = await db.query<{ events: string; leaves: string; distinct_events: string; max_index: string | null }>(
      `SELECT (SELECT count(*) FROM audit.events)::text AS events, count(*)::text AS leaves,
              count(DISTINCT event_id)::text AS distinct_events, max(leaf_index)::text AS max_index
         FROM audit.leaves`,
    );
    assert.deepEqual(r.rows[0], {
      events: String(n),
      leaves: String(n),
      distinct_events: String(n),
      max_index: String(n - 1),
    });
  };
  /** Seals in batches of 10 until a batch is not full; what each pass did and left as horizon. */
  const sealUntilDone = async () => {
    const passes: { sealed: number; more: boolean; horizon: bigint }[] = [];
    for (;;) {
      const r = await seal(db, { keys: audit.keys, clock: fixedClock('2025-01-10T10:00:01.000Z'), batchSize: 10 });
      passes.push({ sealed: r.sealed, more: r.more, horizon: BigInt((await state()).sealed_xmin) });
      if (!r.more) return passes;
    }
  };
  return { clock, audit, write, state, assertAllSealedOnce, sealUntilDone };
}

/** A test on a database of its own, closed afterwards. */
const inFreshDb = (fn: (db: Db) => Promise<void>) => async () => {
  const db = await createTestDb();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
};

describe('audit sealing behind the writers', () => {
  test(
    'full batches seal every record once, in transaction order, and move the horizon each time',
    inFreshDb(async (db) => {
      const { audit, write, state, assertAllSealedOnce, sealUntilDone } = setup(db);
      for (let i = 0; i < 25; i++) await db.tx((tx) => write(tx, i));
      const xids = (await db.query<{ xid: string }>(`SELECT xid::text FROM audit.events ORDER BY xid, seq`)).rows.map(
        (r) => r.xid,
      );
      const before = BigInt((await state()).sealed_xmin);
      const passes = await sealUntilDone();
      assert.deepEqual(
        passes.map((p) => [p.sealed, p.more]),
        [
          [10, true],
          [10, true],
          [5, false],
        ],
      );
      // After a full batch the horizon is that batch's last transaction (or lower, while an older
      // transaction is still running somewhere on the server): the next pass starts there.
      assert.ok(passes[0].horizon <= BigInt(xids[9]) && passes[1].horizon <= BigInt(xids[19]));
      assert.ok(passes[0].horizon >= before && passes[1].horizon >= passes[0].horizon);
      if (!usingRealPostgres()) {
        assert.equal(passes[0].horizon, BigInt(xids[9]));
        assert.equal(passes[1].horizon, BigInt(xids[19]));
      }
      await assertAllSealedOnce(25);
      const order = await db.query<{ ok: boolean }>(
        `SELECT bool_and(e.xid::text::bigint >= coalesce(p.xid::text::bigint, 0)) AS ok
         FROM audit.leaves l JOIN audit.events e ON e.id = l.event_id
         LEFT JOIN audit.leaves lp ON lp.leaf_index = l.leaf_index - 1
         LEFT JOIN audit.events p ON p.id = lp.event_id`,
      );
      assert.equal(order.rows[0].ok, true, 'leaves follow the records’ transactions');
      assert.equal((await audit.verify()).ok, true);
    }),
  );

  test(
    'records of one transaction split over several batches are all sealed, once',
    inFreshDb(async (db) => {
      const { write, assertAllSealedOnce, sealUntilDone } = setup(db);
      await db.tx(async (tx) => {
        for (let i = 0; i < 23; i++) await write(tx, i);
      });
      assert.deepEqual(
        (await sealUntilDone()).map((p) => p.sealed),
        [10, 10, 3],
      );
      await assertAllSealedOnce(23);
    }),
  );

  test(
    'one worker pass seals a backlog of several batches',
    inFreshDb(async (db) => {
      const { audit, write, assertAllSealedOnce } = setup(db);
      // 2,500 records: two and a half of the worker's batches of 1,000.
      for (let t = 0; t < 5; t++) {
        await db.tx(async (tx) => {
          for (let i = 0; i < 500; i++) await write(tx, t * 500 + i);
        });
      }
      const r = await audit.runJobs();
      assert.equal(r.sealed, 2500);
      await assertAllSealedOnce(2500);
    }),
  );

  test(
    'a record whose transaction began before full batches and committed after them is still sealed',
    {
      skip: usingRealPostgres() ? false : 'needs two concurrent transactions (TEST_DATABASE_URL)',
    },
    inFreshDb(async (db) => {
      const { audit, write, state, assertAllSealedOnce, sealUntilDone } = setup(db);
      let commitLate!: () => void;
      const held = new Promise<void>((r) => (commitLate = r));
      let written!: (xid: bigint) => void;
      const lateWritten = new Promise<bigint>((r) => (written = r));
      // The long transaction takes its xid first, then stays open while later ones commit.
      const late = db.tx(async (tx) => {
        await write(tx, 1000);
        written(BigInt((await tx.query<{ x: string }>(`SELECT pg_current_xact_id()::text AS x`)).rows[0].x));
        await held;
      });
      const lateXid = await lateWritten;
      for (let i = 0; i < 25; i++) await db.tx((tx) => write(tx, i));
      assert.equal((await sealUntilDone()).length, 3);
      assert.equal((await state()).tree_size, '25', 'the open transaction’s record is not visible yet');
      assert.ok(BigInt((await state()).sealed_xmin) <= lateXid, 'the horizon waits for it');
      commitLate();
      await late;
      const r = await seal(db, { keys: audit.keys, clock: fixedClock('2025-01-10T10:00:02.000Z'), batchSize: 10 });
      assert.equal(r.sealed, 1);
      await assertAllSealedOnce(26);
      assert.equal((await audit.verify()).ok, true);
    }),
  );
});
