import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rewardsWorld, type RewardsWorld } from './testkit.ts';
import { verifyRewards } from './rewards.verify.ts';

// `rewards verify` must find what it claims to check, on any page of customers: a verify that
// checked nothing would also say ok. Each test breaks one invariant behind the service's back
// and expects exactly that violation, read in pages of two customers.

describe('rewards verify finds each broken invariant', () => {
  let w: RewardsWorld;
  const ids: string[] = [];
  before(async () => {
    w = await rewardsWorld();
    const m = await w.seedMerchant();
    const prg = await w.program(m.merchantId);
    for (let i = 0; i < 5; i++) {
      const who = `verify${process.pid}x${i}@okaxis`;
      await w.pay(m.terminalId, 10_000 + i * 1_000, who);
      const id = await w.customerId(prg.id, who);
      assert.ok(id);
      ids.push(id);
    }
    ids.sort();
  });
  after(() => w.db.close());

  /** Runs `fn` inside a transaction that is always rolled back, so each test starts clean. */
  async function tampered(fn: (q: { query: typeof w.db.query }) => Promise<void>) {
    let found: Awaited<ReturnType<typeof verifyRewards>> = [];
    await w.db
      .tx(async (tx) => {
        await fn(tx);
        found = await verifyRewards(tx, { pageSize: 2 });
        throw new Error('rollback');
      })
      .catch((e: Error) => assert.equal(e.message, 'rollback'));
    return found;
  }

  test('clean data: no violation, whatever the page size', async () => {
    for (const pageSize of [1, 2, 5, 5000])
      assert.deepEqual(await verifyRewards(w.db, { pageSize }), [], `${pageSize}`);
  });

  test('a lot changed without the ledger (the last customer, on the last page)', async () => {
    const last = ids[ids.length - 1];
    const found = await tampered(async (q) => {
      await q.query(`UPDATE rewards.lots SET remaining = remaining - 1 WHERE customer_id = $1`, [last]);
    });
    assert.deepEqual(
      found.map((v) => [v.invariant, v.subject]),
      [['available_matches_lots', last]],
    );
  });

  test('a statement line that the ledger does not have (a middle page)', async () => {
    const mid = ids[2];
    const found = await tampered(async (q) => {
      await q.query(
        `UPDATE rewards.movements SET available_delta = available_delta + 7
          WHERE id = (SELECT id FROM rewards.movements WHERE customer_id = $1 LIMIT 1)`,
        [mid],
      );
    });
    assert.deepEqual(
      found.map((v) => [v.invariant, v.subject]),
      [['statement_matches_ledger', mid]],
    );
  });
});
