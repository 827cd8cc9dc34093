import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { rewardsWorld, platform, type RewardsWorld } from './testkit.ts';

// Property: for random sequences of earn, redeem (succeeding or failing), refund, expire and
// adjust, through the real payments service and ledger, the points ledger sums to zero, no lot
// goes negative, and every customer's balance equals the sum of their lots (the ledger's and
// the API's view both).

const DAY = 86_400_000;

type Op =
  | { kind: 'earn'; who: number; amount: number }
  | { kind: 'redeem'; who: number; points: number; upi: number; succeed: boolean }
  | { kind: 'refund'; pick: number; permille: number }
  | { kind: 'advance'; days: number }
  | { kind: 'adjust'; who: number; points: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('earn' as const),
      who: fc.nat(2),
      amount: fc.integer({ min: 1, max: 200_000 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('redeem' as const),
      who: fc.nat(2),
      points: fc.integer({ min: 1, max: 30 }),
      upi: fc.integer({ min: 1, max: 20_000 }),
      succeed: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('refund' as const),
      pick: fc.nat(50),
      permille: fc.integer({ min: 1, max: 1000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), days: fc.integer({ min: 1, max: 40 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const),
      who: fc.nat(2),
      points: fc.integer({ min: -40, max: 40 }).filter((x) => x !== 0),
    }),
  },
);

const EXPECTED = new Set([
  'insufficient_points',
  'redemption_not_allowed',
  'refund_exceeds_payment',
  'payment_not_refundable',
]);

describe('points ledger invariants under random sequences', () => {
  let w: RewardsWorld;
  let run = 0;
  // What actually happened across all runs, so the test can show it exercised every path.
  const done: Record<string, number> = {};
  const did = (k: string) => (done[k] = (done[k] ?? 0) + 1);
  before(async () => {
    w = await rewardsWorld();
  });
  after(() => w.db.close());

  test('earn / redeem / refund / expire / adjust keep every invariant', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          pending: fc.constantFrom(0, 3 * 3600),
          negative: fc.boolean(),
          validity: fc.constantFrom(null, 30),
        }),
        fc.array(op, { minLength: 1, maxLength: 24, size: 'medium' }),
        async (settings, ops) => {
          await w.reset(); // each run (and each shrink step) starts from an empty ledger
          const m = await w.seedMerchant();
          await w.program(m.merchantId, {
            point_value_paise: 10,
            pending_period_seconds: settings.pending,
            allow_negative_balance: settings.negative,
            validity_days: settings.validity,
          });
          const customers = [0, 1, 2].map((i) => `prop${process.pid}r${run}c${i}@okicici`);
          run++;
          const paid: string[] = [];
          for (const o of ops) {
            try {
              switch (o.kind) {
                case 'earn':
                  paid.push((await w.pay(m.terminalId, o.amount, customers[o.who])).id);
                  did('earn');
                  break;
                case 'redeem': {
                  const p = await w.createPayment(m.terminalId, o.upi, {
                    rewards: { vpa: customers[o.who], redeem_points: o.points },
                  });
                  if (o.succeed) paid.push((await w.succeed(p.id, customers[o.who])).id);
                  else await w.fail(p.id);
                  did(o.succeed ? 'redeem' : 'release');
                  break;
                }
                case 'refund': {
                  if (paid.length === 0) break;
                  const id = paid[o.pick % paid.length];
                  const p = await w.payments.get(platform, id);
                  if (p.refundable_amount === 0) break;
                  await w.payments.refund(platform, id, {
                    amount: Math.max(1, Math.floor((p.refundable_amount * o.permille) / 1000)),
                  });
                  did('refund');
                  break;
                }
                case 'advance':
                  w.clock.advance(o.days * DAY);
                  if ((await w.rewards.runJobs()).expired > 0) did('expire');
                  break;
                case 'adjust':
                  await w.rewards.adjust(platform, {
                    merchant_id: m.merchantId,
                    vpa: customers[o.who],
                    points: o.points,
                    reason: 'property test',
                  });
                  did('adjust');
                  break;
              }
            } catch (e) {
              if (!EXPECTED.has((e as { code?: string }).code ?? '')) throw e;
              did((e as { code: string }).code);
            }
          }
          const c = await w.check();
          assert.deepEqual(c.ledger, [], 'ledger verify');
          assert.equal(c.ptsSum, '0', 'the PTS book sums to zero');
          assert.equal(c.negativeLots, 0, 'no lot below zero or above its points');
          assert.deepEqual(c.rewards, [], 'ledger balances = sums of lots, reservations and statement');
          // The API's balance: live lots (due pending counted as available, expired left out) less debt.
          for (const who of customers) {
            const b = await w.balance(m.merchantId, who);
            const cid = await w.customerId(b.program_id, who);
            const lots = await w.db.query<{ available: number; pending: number; expiring: number }>(
              `SELECT coalesce(sum(remaining) FILTER (WHERE available_at <= $2), 0)::bigint AS available,
                      coalesce(sum(remaining) FILTER (WHERE available_at > $2), 0)::bigint AS pending,
                      coalesce(sum(remaining) FILTER (WHERE available_at <= $2 AND expires_at <= $3), 0)::bigint AS expiring
                 FROM rewards.lots WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > $2)`,
              [cid ?? '', w.clock.now(), new Date(w.clock.now().getTime() + 30 * DAY)],
            );
            const debt = cid
              ? (await w.db.query<{ debt: number }>(`SELECT debt FROM rewards.customers WHERE id = $1`, [cid])).rows[0]
                  .debt
              : 0;
            assert.deepEqual(
              { available: b.available, pending: b.pending, expiring: b.expiring_30d },
              {
                available: lots.rows[0].available - debt,
                pending: lots.rows[0].pending,
                expiring: lots.rows[0].expiring,
              },
              'the balance is the sum of the live lots, less any debt',
            );
            assert.ok(Number.isSafeInteger(b.available) && b.pending >= 0 && b.expiring_30d >= 0);
            if (!settings.negative) assert.ok(b.available >= 0, 'no negative balance unless the program allows it');
          }
        },
      ),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 25) },
    );
    if (process.env.PROPERTY_STATS) console.log(done);
  });
});
