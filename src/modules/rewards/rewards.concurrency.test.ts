import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { usingRealPostgres } from '../../platform/testing.ts';
import { rewardsWorld, platform, type RewardsWorld } from './testkit.ts';

// Races, on PGlite (one connection: transactions queue) and, with TEST_DATABASE_URL, on a real
// PostgreSQL where they truly overlap: the customer row lock decides, the ledger floor backs it.

describe(`rewards under concurrency (${usingRealPostgres() ? 'PostgreSQL' : 'PGlite'})`, () => {
  let w: RewardsWorld;
  before(async () => {
    w = await rewardsWorld();
  });
  after(() => w.db.close());

  test('50 concurrent redemptions against a balance that covers 10: exactly 10 succeed', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, { point_value_paise: 100 });
    const who = 'racer@okaxis';
    await w.rewards.adjust(platform, { merchant_id: m.merchantId, vpa: who, points: 100, reason: 'seed balance' });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        w.createPayment(m.terminalId, 5_000, { rewards: { vpa: who, redeem_points: 10 } }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 10, 'exactly the redemptions the balance covers');
    assert.deepEqual([...new Set(refused.map((r) => (r.reason as { code: string }).code))], ['insufficient_points']);
    const b = await w.balance(m.merchantId, who);
    assert.equal(b.available, 0);
    const reserved = await w.db.query<{ n: number; points: string }>(
      `SELECT count(*)::int AS n, sum(points)::text AS points FROM rewards.redemptions WHERE program_id = $1 AND status = 'reserved'`,
      [b.program_id],
    );
    assert.deepEqual(reserved.rows[0], { n: 10, points: '100' });
    const payments = await w.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM payments.payments WHERE merchant_id = $1`,
      [m.merchantId],
    );
    assert.equal(payments.rows[0].n, 10, 'a refused redemption leaves no payment behind');
    // Half of them fail at the bank, half succeed: the failed ones' points come back.
    const ids = ok.map((r) => (r as PromiseFulfilledResult<{ id: string }>).value.id);
    await Promise.all(ids.map((id, i) => (i % 2 ? w.fail(id) : w.succeed(id, who))));
    assert.equal(
      (await w.balance(m.merchantId, who)).available,
      50 + 5 * 5,
      '5 released × 10, plus 5 earns of 5 points',
    );
    const c = await w.check();
    assert.deepEqual([c.ledger, c.ptsSum, c.negativeLots, c.rewards], [[], '0', 0, []]);
  });

  test('a new customer paying at many tills at once gets one account and every point', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId);
    const who = 'newcomer@okhdfcbank';
    const created = await Promise.all(Array.from({ length: 20 }, () => w.createPayment(m.terminalId, 10_000)));
    await Promise.all(created.map((p) => w.succeed(p.id, who)));
    const b = await w.balance(m.merchantId, who);
    assert.equal(b.available, 200);
    const customers = await w.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM rewards.customers WHERE program_id = $1`,
      [b.program_id],
    );
    assert.equal(customers.rows[0].n, 1);
    const c = await w.check();
    assert.deepEqual([c.ledger, c.ptsSum, c.rewards], [[], '0', []]);
  });

  test('the expiry job racing redemptions and refunds keeps every invariant', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, { point_value_paise: 10, validity_days: 1 });
    const who = 'busy@okaxis';
    const paid = [];
    for (let i = 0; i < 6; i++) paid.push(await w.pay(m.terminalId, 10_000, who));
    w.clock.advance(86_400_000 - 1000); // just before the first lots expire
    const racers = [
      ...Array.from({ length: 10 }, () =>
        w.createPayment(m.terminalId, 1_000, { rewards: { vpa: who, redeem_points: 7 } }),
      ),
      ...paid.slice(0, 3).map((p) => w.payments.refund(platform, p.id, { amount: 5_000 })),
      (async () => {
        w.clock.advance(2000);
        return w.rewards.runJobs();
      })(),
    ];
    const settled = await Promise.allSettled(racers);
    for (const r of settled) {
      if (r.status === 'rejected')
        assert.equal((r.reason as { code: string }).code, 'insufficient_points', String(r.reason));
    }
    await w.rewards.runJobs();
    const c = await w.check();
    assert.deepEqual([c.ledger, c.ptsSum, c.negativeLots, c.rewards], [[], '0', 0, []]);
  });
});
