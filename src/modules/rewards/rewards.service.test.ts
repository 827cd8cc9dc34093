import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rewardsWorld, platform, type RewardsWorld } from './testkit.ts';

// Points following real payments (payments service, ledger, database) through a bank that
// says yes: earning, pending, redemption at the till, refunds, expiry, adjustments, coalitions.

const DAY = 86_400_000;
let seq = 0;
const vpa = () => `cust${process.pid}x${seq++}@okaxis`;

describe('rewards on payments', () => {
  let w: RewardsWorld;
  before(async () => {
    w = await rewardsWorld();
  });
  after(() => w.db.close());

  const assertInvariants = () => w.assertInvariants();

  test('a succeeded payment earns 1 point per full ₹10, in the payment transaction', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId);
    const who = vpa();
    const p = await w.pay(m.terminalId, 14_999, who);
    assert.equal(p.status, 'succeeded');
    assert.deepEqual(await w.balance(m.merchantId, who), {
      program_id: (await w.balance(m.merchantId, who)).program_id,
      available: 14,
      pending: 0,
      expiring_30d: 0,
    });
    const pr = await w.rewards.paymentRewards(platform, p.id);
    assert.equal(pr.earned?.points, 14);
    // The points entry and the payment entry were committed together.
    const entries = await w.db.query<{ book: string; kind: string }>(
      `SELECT book, kind FROM ledger.entries WHERE reference = $1 ORDER BY book`,
      [p.id],
    );
    assert.deepEqual(entries.rows, [
      { book: 'INR', kind: 'payment.succeeded' },
      { book: 'PTS', kind: 'rewards.earned' },
    ]);
    // A payer VPA is matched case-insensitively; the raw VPA is nowhere in the rewards schema.
    assert.equal((await w.balance(m.merchantId, who.toUpperCase())).available, 14);
    const leaks = await w.db.query(`SELECT 1 FROM rewards.movements WHERE detail LIKE $1 OR reference LIKE $1`, [
      `%${who}%`,
    ]);
    assert.equal(leaks.rows.length, 0);
    await assertInvariants();
  });

  test('a merchant without a program, or a payment without a payer, earns nothing', async () => {
    const m = await w.seedMerchant();
    const p = await w.pay(m.terminalId, 50_000, vpa());
    assert.equal(p.status, 'succeeded');
    await assert.rejects(w.balance(m.merchantId, vpa()), { code: 'program_not_found' });
    const m2 = await w.seedMerchant();
    await w.program(m2.merchantId);
    const p2 = await w.pay(m2.terminalId, 50_000, undefined as unknown as string);
    assert.equal(p2.status, 'succeeded');
    await assert.rejects(w.rewards.paymentRewards(platform, p2.id), { code: 'payment_not_found' });
  });

  test('pending points become available after the pending period, through the worker job', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, { pending_period_seconds: 3600 });
    const who = vpa();
    await w.pay(m.terminalId, 10_000, who);
    let b = await w.balance(m.merchantId, who);
    assert.equal(b.available, 0);
    assert.equal(b.pending, 10);
    w.clock.advance(3600_000);
    b = await w.balance(m.merchantId, who);
    assert.equal(b.available, 10, 'the balance counts due points as available even before the job runs');
    assert.equal(b.pending, 0);
    const r = await w.rewards.runJobs();
    assert.ok(r.matured >= 1);
    const ledgerAvail = await w.db.query<{ balance: number }>(
      `SELECT a.balance FROM ledger.accounts a WHERE a.book = 'PTS' AND a.code = 'customer_available:' || (SELECT customer_id FROM rewards.earnings ORDER BY created_at DESC, payment_id DESC LIMIT 1)`,
    );
    assert.equal(ledgerAvail.rows[0].balance, 10);
    await assertInvariants();
  });

  test('redemption is reserved at creation, spent on success, released on failure', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, { point_value_paise: 100 });
    const who = vpa();
    await w.pay(m.terminalId, 100_000, who); // 100 points
    assert.equal((await w.balance(m.merchantId, who)).available, 100);

    // Basket ₹500: 40 points (₹40) + ₹460 by UPI.
    const p = await w.createPayment(m.terminalId, 46_000, { rewards: { vpa: who, redeem_points: 40 } });
    assert.equal((await w.balance(m.merchantId, who)).available, 60, 'reserved points are not available');
    const done = await w.succeed(p.id, who);
    assert.equal(done.status, 'succeeded');
    const pr = await w.rewards.paymentRewards(platform, p.id);
    assert.equal(pr.redemption?.status, 'committed');
    assert.equal(pr.redemption?.value_paise, 4000);
    assert.equal(pr.earned?.points, 46, 'earns on the UPI amount only');
    assert.equal((await w.balance(m.merchantId, who)).available, 106);

    const q = await w.createPayment(m.terminalId, 1000, { rewards: { vpa: who, redeem_points: 6 } });
    assert.equal((await w.balance(m.merchantId, who)).available, 100);
    const failed = await w.fail(q.id);
    assert.equal(failed.status, 'failed');
    assert.equal((await w.balance(m.merchantId, who)).available, 106, 'released on failure');
    assert.equal((await w.rewards.paymentRewards(platform, q.id)).redemption?.status, 'released');
    await assertInvariants();
  });

  test('a redemption larger than the balance, or than the basket share, creates no payment', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, { point_value_paise: 100, redemption: { max_basket_bp: 5000, min_points: 5 } });
    const who = vpa();
    await w.pay(m.terminalId, 50_000, who); // 50 points
    const before = await w.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments.payments`);
    await assert.rejects(w.createPayment(m.terminalId, 10_000, { rewards: { vpa: who, redeem_points: 51 } }), {
      code: 'insufficient_points',
    });
    // 30 points = ₹30 of a ₹50 basket: 60% > 50%
    await assert.rejects(w.createPayment(m.terminalId, 2000, { rewards: { vpa: who, redeem_points: 30 } }), {
      code: 'redemption_not_allowed',
    });
    await assert.rejects(w.createPayment(m.terminalId, 2000, { rewards: { vpa: who, redeem_points: 4 } }), {
      code: 'redemption_not_allowed',
    });
    await assert.rejects(w.createPayment(m.terminalId, 2000, { rewards: { vpa: who, redeem_points: 2.5 } }), {
      code: 'validation_failed',
    });
    await assert.rejects(w.createPayment(m.terminalId, 2000, { rewards: { redeem_points: 5 } }), {
      code: 'validation_failed',
    });
    const after = await w.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments.payments`);
    assert.equal(after.rows[0].n, before.rows[0].n, 'no payment row for a refused redemption');
    assert.equal((await w.balance(m.merchantId, who)).available, 50);
    // Exactly half is allowed.
    const ok = await w.createPayment(m.terminalId, 2500, { rewards: { vpa: who, redeem_points: 25 } });
    assert.equal(ok.status, 'pending');
    const noProgram = await w.seedMerchant();
    await assert.rejects(w.createPayment(noProgram.terminalId, 2000, { rewards: { vpa: who, redeem_points: 5 } }), {
      code: 'redemption_not_allowed',
    });
    // Naming a customer where there is no program is harmless.
    assert.equal((await w.createPayment(noProgram.terminalId, 2000, { rewards: { vpa: who } })).status, 'pending');
    await assertInvariants();
  });

  test('a customer named at the till by phone earns instead of the payer', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId);
    const payer = vpa();
    const p = await w.createPayment(m.terminalId, 20_000, { rewards: { phone: '+91 98765 43210' } });
    await w.succeed(p.id, payer);
    assert.equal(
      (await w.rewards.balance(platform, { merchant_id: m.merchantId, phone: '09876543210' })).available,
      20,
    );
    assert.equal((await w.balance(m.merchantId, payer)).available, 0);
    await assert.rejects(w.rewards.balance(platform, { merchant_id: m.merchantId, phone: '12345' }), {
      code: 'validation_failed',
    });
    await assert.rejects(w.rewards.balance(platform, { merchant_id: m.merchantId, vpa: 'not a vpa' }), {
      code: 'invalid_vpa',
    });
    await assert.rejects(w.rewards.balance(platform, { merchant_id: m.merchantId }), { code: 'validation_failed' });
  });

  test('refunds claw back earned points pro rata and return redeemed points', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, { point_value_paise: 100 });
    const who = vpa();
    const first = await w.pay(m.terminalId, 20_000, who); // 20 points
    await w.payments.refund(platform, first.id, { amount: 5_000 });
    assert.equal((await w.balance(m.merchantId, who)).available, 15, 'a quarter refunded: 5 of 20 back');
    await w.payments.refund(platform, first.id, { amount: 3_333 });
    assert.equal((await w.balance(m.merchantId, who)).available, 12, 'floor(20 × 8333/20000) = 8 clawed in all');
    await w.payments.refund(platform, first.id, { amount: 11_667 });
    assert.equal((await w.balance(m.merchantId, who)).available, 0, 'a full refund takes all 20');
    assert.equal((await w.rewards.paymentRewards(platform, first.id)).earned?.clawed_back, 20);

    await w.pay(m.terminalId, 30_000, who); // 30 points
    const redeemed = await w.pay(m.terminalId, 10_000, who, { rewards: { vpa: who, redeem_points: 20 } }); // -20, +10
    assert.equal((await w.balance(m.merchantId, who)).available, 20);
    await w.payments.refund(platform, redeemed.id, { amount: 5_000 }); // half: -5 earned, +10 redeemed
    assert.equal((await w.balance(m.merchantId, who)).available, 25);
    const pr = await w.rewards.paymentRewards(platform, redeemed.id);
    assert.equal(pr.redemption?.points_returned, 10);
    assert.equal(pr.earned?.clawed_back, 5);
    await assertInvariants();
  });

  test('a clawback of points already spent: a shortfall, or debt where the program allows it', async () => {
    for (const allow of [false, true]) {
      const m = await w.seedMerchant();
      await w.program(m.merchantId, { point_value_paise: 100, allow_negative_balance: allow });
      const who = vpa();
      const earned = await w.pay(m.terminalId, 10_000, who); // 10 points
      await w.pay(m.terminalId, 1_000, who, { rewards: { vpa: who, redeem_points: 10 } }); // spends 10, earns 1
      await w.payments.refund(platform, earned.id, { amount: 10_000 });
      const b = await w.balance(m.merchantId, who);
      const pr = await w.rewards.paymentRewards(platform, earned.id);
      if (allow) {
        assert.equal(b.available, -9, 'the balance goes negative by what could not be taken back');
        assert.equal(pr.earned?.clawed_back, 10);
        await w.pay(m.terminalId, 15_000, who); // 15 points: 9 repay the debt
        assert.equal((await w.balance(m.merchantId, who)).available, 6);
      } else {
        assert.equal(b.available, 0);
        assert.equal(pr.earned?.clawed_back, 1);
        assert.equal(pr.earned?.shortfall, 9);
        const st = await w.rewards.statement(platform, { merchant_id: m.merchantId, vpa: who, limit: 10 });
        assert.equal(st.data[0].kind, 'shortfall');
      }
      await assertInvariants();
    }
  });

  test('debt is repaid by points as they leave their pending period', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, {
      point_value_paise: 100,
      allow_negative_balance: true,
      pending_period_seconds: 60,
      validity_days: 30,
    });
    const who = vpa();
    const earned = await w.pay(m.terminalId, 10_000, who); // 10 pending
    w.clock.advance(60_000);
    await w.rewards.runJobs();
    await w.pay(m.terminalId, 1_000, who, { rewards: { vpa: who, redeem_points: 10 } }); // spends them; 1 pending
    await w.payments.refund(platform, earned.id, { amount: 10_000 }); // 1 from pending, 9 become debt
    assert.deepEqual(
      { ...(await w.balance(m.merchantId, who)), program_id: '' },
      { program_id: '', available: -9, pending: 0, expiring_30d: 0 },
    );
    await w.pay(m.terminalId, 15_000, who); // 15 pending
    assert.equal((await w.balance(m.merchantId, who)).pending, 15);
    w.clock.advance(60_000);
    await w.rewards.runJobs();
    assert.deepEqual(
      { ...(await w.balance(m.merchantId, who)), program_id: '' },
      { program_id: '', available: 6, pending: 0, expiring_30d: 6 },
    );
    w.clock.advance(31 * DAY);
    await w.rewards.runJobs();
    // The debt was repaid out of the lot, so only what was left of it expires: nothing is owed twice.
    assert.equal((await w.balance(m.merchantId, who)).available, 0);
    await assertInvariants();
  });

  test('lots expire oldest first, and redemption spends the oldest lots first', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId, { validity_days: 30 });
    const who = vpa();
    await w.pay(m.terminalId, 10_000, who); // lot A: 10
    w.clock.advance(10 * DAY);
    await w.pay(m.terminalId, 20_000, who); // lot B: 20
    assert.deepEqual(
      { ...(await w.balance(m.merchantId, who)), program_id: '' },
      { program_id: '', available: 30, pending: 0, expiring_30d: 30 },
    );
    // Spend 15: all of A (10) and 5 of B.
    await w.pay(m.terminalId, 100, who, { rewards: { vpa: who, redeem_points: 15 } });
    const lots = await w.db.query<{ points: number; remaining: number }>(
      `SELECT points, remaining FROM rewards.lots WHERE customer_id = (SELECT customer_id FROM rewards.redemptions ORDER BY id DESC LIMIT 1) ORDER BY id`,
    );
    assert.deepEqual(
      lots.rows.map((l) => [l.points, l.remaining]),
      [
        [10, 0],
        [20, 15],
      ],
    );
    w.clock.advance(21 * DAY); // B is 21 days old, A 31
    assert.equal((await w.balance(m.merchantId, who)).available, 15);
    w.clock.advance(10 * DAY); // B is 31 days old
    assert.equal(
      (await w.balance(m.merchantId, who)).available,
      0,
      'expired points are not available even before the job',
    );
    const r = await w.rewards.runJobs();
    assert.ok(r.expired >= 1);
    const st = await w.rewards.statement(platform, { merchant_id: m.merchantId, vpa: who, limit: 1 });
    assert.equal(st.data[0].kind, 'expire');
    assert.equal(st.data[0].points, -15);
    await assertInvariants();
  });

  test('split tender records what the program owes the merchant; a discount does not', async () => {
    const m = await w.seedMerchant();
    const prog = await w.program(m.merchantId, { point_value_paise: 50 });
    const who = vpa();
    await w.pay(m.terminalId, 100_000, who);
    const split = await w.pay(m.terminalId, 10_000, who, { rewards: { vpa: who, redeem_points: 20 } });
    const disc = await w.pay(m.terminalId, 10_000, who, { rewards: { vpa: who, redeem_points: 20, mode: 'discount' } });
    const funding = await w.ledger.balance(w.db, `rewards_funding:${prog.id}`, 'INR');
    assert.equal(funding, 1000, 'only the split-tender payment: 20 points × 50 paise');
    const payable = await w.ledger.balance(w.db, `merchant_payable:${m.merchantId}`, 'INR');
    assert.equal(payable, 100_000 + 10_000 + 1000 + 10_000);
    await w.payments.refund(platform, split.id, { amount: 10_000 });
    assert.equal(
      await w.ledger.balance(w.db, `rewards_funding:${prog.id}`, 'INR'),
      0,
      'a full refund reverses the funding',
    );
    assert.equal((await w.rewards.paymentRewards(platform, disc.id)).redemption?.mode, 'discount');
    await assertInvariants();
  });

  test('manual adjustments need a reason and cannot overdraw a program that forbids it', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId);
    const who = vpa();
    const a = await w.rewards.adjust(platform, {
      merchant_id: m.merchantId,
      vpa: who,
      points: 50,
      reason: 'goodwill: late delivery',
    });
    assert.equal(a.balance.available, 50);
    const b = await w.rewards.adjust(platform, {
      merchant_id: m.merchantId,
      vpa: who,
      points: -20,
      reason: 'correction',
    });
    assert.equal(b.balance.available, 30);
    await assert.rejects(
      w.rewards.adjust(platform, { merchant_id: m.merchantId, vpa: who, points: -31, reason: 'too much' }),
      { code: 'insufficient_points' },
    );
    await assert.rejects(
      w.rewards.adjust(platform, { merchant_id: m.merchantId, vpa: who, points: 0, reason: 'zero' }),
      { code: 'validation_failed' },
    );
    await assert.rejects(
      w.rewards.adjust(platform, { merchant_id: m.merchantId, vpa: who, points: 5, reason: '   ' }),
      { code: 'validation_failed' },
    );
    assert.equal((await w.balance(m.merchantId, who)).available, 30, 'a refused adjustment changed nothing');
    const st = await w.rewards.statement(platform, { merchant_id: m.merchantId, vpa: who, limit: 10 });
    assert.deepEqual(
      st.data.map((x) => [x.kind, x.points, x.detail]),
      [
        ['adjustment', -20, 'correction'],
        ['adjustment', 50, 'goodwill: late delivery'],
      ],
    );
    await assertInvariants();
  });

  test('statements page with a cursor, newest first', async () => {
    const m = await w.seedMerchant();
    await w.program(m.merchantId);
    const who = vpa();
    for (let i = 1; i <= 5; i++) await w.pay(m.terminalId, i * 1000, who);
    const seen: number[] = [];
    let cursor: string | undefined;
    for (;;) {
      const { decodeCursor } = await import('../../http/pagination.ts');
      const pg = await w.rewards.statement(platform, {
        merchant_id: m.merchantId,
        vpa: who,
        limit: 2,
        before: decodeCursor(cursor),
      });
      seen.push(...pg.data.map((x) => x.points));
      if (!pg.next_cursor) break;
      cursor = pg.next_cursor;
    }
    assert.deepEqual(seen, [5, 4, 3, 2, 1]);
    const unknown = await w.rewards.statement(platform, { merchant_id: m.merchantId, vpa: vpa(), limit: 2 });
    assert.deepEqual(unknown, { data: [], next_cursor: null });
  });

  test('a coalition program: earn at one merchant, burn at another', async () => {
    const a = await w.seedMerchant('5411');
    const b = await w.seedMerchant('5812');
    const prog = await w.program(undefined, { name: 'City Coalition', point_value_paise: 100 });
    await w.rewards.addMerchant(platform, prog.id, a.merchantId);
    await w.rewards.addMerchant(platform, prog.id, b.merchantId);
    await w.rewards.addRule(platform, prog.id, {
      kind: 'multiplier',
      multiplier_bp: 30_000,
      conditions: { mcc: ['5812'] },
    });
    const who = vpa();
    await w.pay(a.terminalId, 10_000, who); // 10
    await w.pay(b.terminalId, 10_000, who); // 10 × 3 at restaurants
    assert.equal((await w.balance(a.merchantId, who)).available, 40);
    assert.equal((await w.balance(b.merchantId, who)).available, 40, 'one balance across the coalition');
    const q = await w.rewards.quote(platform, { terminal_id: b.terminalId, amount: 5_000, vpa: who });
    assert.equal(q.max_redeem_points, 40);
    assert.equal(q.earn_points, 15);
    const q2 = await w.rewards.quote(platform, {
      terminal_id: b.terminalId,
      amount: 5_000,
      vpa: who,
      redeem_points: 40,
    });
    assert.equal(q2.upi_amount, 1_000);
    assert.equal(q2.earn_points, 3);
    await assert.rejects(
      w.rewards.quote(platform, { terminal_id: b.terminalId, amount: 5_000, vpa: who, redeem_points: 41 }),
      { code: 'redemption_not_allowed' },
    );
    await w.pay(b.terminalId, 1_000, who, { rewards: { vpa: who, redeem_points: 40 } });
    assert.equal((await w.balance(a.merchantId, who)).available, 3);
    // A merchant-scoped key sees the coalition but cannot change it.
    const mk = { ...platform, id: 'key_merchant', merchantId: a.merchantId };
    assert.equal((await w.rewards.getProgram(mk, prog.id)).name, 'City Coalition');
    await assert.rejects(w.rewards.updateProgram(mk, prog.id, { status: 'paused' }), { code: 'forbidden' });
    await assert.rejects(w.rewards.adjust(mk, { vpa: who, points: 5, reason: 'x' }), { code: 'forbidden' });
    await assert.rejects(w.rewards.balance(mk, { merchant_id: b.merchantId, vpa: who }), {
      code: 'merchant_not_found',
    });
    await assert.rejects(w.rewards.addMerchant(platform, prog.id, a.merchantId), { code: 'conflict' });
    await assertInvariants();
  });

  test('through payments: the daily cap counts the local day, the per-payment cap and multipliers apply', async () => {
    const m = await w.seedMerchant();
    const prog = await w.program(m.merchantId, {
      rules: [
        { kind: 'cap_per_customer_day', points: 15 },
        { kind: 'cap_per_transaction', points: 12 },
      ],
    });
    const who = vpa();
    const earned = async (amount: number) =>
      (await w.rewards.paymentRewards(platform, (await w.pay(m.terminalId, amount, who)).id)).earned?.points;
    assert.equal(await earned(20_000), 12, 'per-payment cap');
    assert.equal(await earned(10_000), 3, 'what is left of the day');
    assert.equal(await earned(10_000), 0);
    w.clock.advance(DAY);
    assert.equal(await earned(10_000), 10, 'a new local day');
    await w.rewards.addRule(platform, prog.id, { kind: 'multiplier', multiplier_bp: 15_000 });
    assert.equal(await earned(2_000), 3, 'a rule added just now applies to the next payment');
    const other = vpa();
    assert.equal(
      (await w.rewards.paymentRewards(platform, (await w.pay(m.terminalId, 100_000, other)).id)).earned?.points,
      12,
      'caps are per customer',
    );
  });

  test('a change made by another process reaches this one on its next earn (the cache is only a hint)', async () => {
    const m = await w.seedMerchant();
    const prog = await w.program(m.merchantId);
    const who = vpa();
    const earned = async (amount: number) =>
      (await w.rewards.paymentRewards(platform, (await w.pay(m.terminalId, amount, who)).id)).earned?.points;
    assert.equal(await earned(10_000), 10); // now cached in this process
    // Another replica: its own service over the same database.
    const { createRewardsService } = await import('./rewards.service.ts');
    const { createLedgerService } = await import('../ledger/index.ts');
    const { createLogger } = await import('../../platform/log.ts');
    const other = createRewardsService({
      db: w.db,
      ledger: createLedgerService(),
      clock: w.clock,
      logger: createLogger({ level: 'silent' }),
      merchants: w.merchants,
      vpaPattern: w.config.payments.vpaPattern,
      customerKey: Buffer.alloc(32, 7),
    });
    await other.updateProgram(platform, prog.id, { earn: { points: 3, per_amount_paise: 1000, rounding: 'down' } });
    assert.equal(await earned(10_000), 30, 'the new rate');
    await other.addRule(platform, prog.id, { kind: 'cap_per_transaction', points: 7 });
    assert.equal(await earned(10_000), 7, 'the new rule');
    await other.updateProgram(platform, prog.id, { status: 'paused' });
    const before = (await w.balance(m.merchantId, who)).available;
    const p = await w.pay(m.terminalId, 10_000, who);
    await assert.rejects(
      w.rewards.paymentRewards(platform, p.id),
      { code: 'payment_not_found' },
      'paused elsewhere: no earn here',
    );
    assert.equal((await w.balance(m.merchantId, who)).available, before);
    await assertInvariants();
  });

  test('through payments: the budget is never exceeded, the last earn is cut to what is left', async () => {
    const m = await w.seedMerchant();
    const prog = await w.program(m.merchantId, { budget_points: 25 });
    const got: (number | undefined)[] = [];
    for (let i = 0; i < 4; i++)
      got.push(
        (await w.rewards.paymentRewards(platform, (await w.pay(m.terminalId, 10_000, vpa())).id)).earned?.points,
      );
    assert.deepEqual(got, [10, 10, 5, 0]);
    assert.equal((await w.rewards.getProgram(platform, prog.id)).budget_used, 25);
    await assert.rejects(w.rewards.updateProgram(platform, prog.id, { budget_points: 20 }), { code: 'conflict' });
    await w.rewards.updateProgram(platform, prog.id, { budget_points: 40 });
    const more = await Promise.all(Array.from({ length: 6 }, async () => w.pay(m.terminalId, 10_000, vpa())));
    const total = (await Promise.all(more.map((p) => w.rewards.paymentRewards(platform, p.id)))).reduce(
      (s, r) => s + (r.earned?.points ?? 0),
      0,
    );
    assert.equal(total, 15, 'concurrent earns share what is left of the budget exactly');
    assert.equal((await w.rewards.getProgram(platform, prog.id)).budget_used, 40);
    await assertInvariants();
  });

  test('a paused program neither earns nor redeems, but settles what was reserved', async () => {
    const m = await w.seedMerchant();
    const prog = await w.program(m.merchantId, { point_value_paise: 100 });
    const who = vpa();
    await w.pay(m.terminalId, 10_000, who);
    const p = await w.createPayment(m.terminalId, 1_000, { rewards: { vpa: who, redeem_points: 5 } });
    await w.rewards.updateProgram(platform, prog.id, { status: 'paused' });
    await w.succeed(p.id, who);
    assert.equal((await w.rewards.paymentRewards(platform, p.id)).redemption?.status, 'committed');
    assert.equal((await w.rewards.paymentRewards(platform, p.id)).earned, null, 'no earn while paused');
    await assert.rejects(w.createPayment(m.terminalId, 1_000, { rewards: { vpa: who, redeem_points: 1 } }), {
      code: 'redemption_not_allowed',
    });
    await w.rewards.updateProgram(platform, prog.id, { status: 'active' });
    assert.equal((await w.balance(m.merchantId, who)).available, 5);
    await assertInvariants();
  });
});
