import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countingDb, createTestDb } from '../../platform/testing.ts';
import type { Queryable } from '../../platform/db.ts';
import { newJournalId } from '../ledger/index.ts';
import { completeSucceeded, completeSucceededMany } from '../payments/payments.repo.ts';
import { paymentLedgerSql, paymentsLedgerSql } from '../payments/payments.apply.ts';
import type { PaymentHint } from '../payments/index.ts';
import { platform, rewardsWorld, type RewardsWorld } from './testkit.ts';

// The earn written by the payment's own completion statement (rewards.earn_in_completion,
// migration 0037) against the long way (onSucceeded in a transaction): the same payments, in the
// same order, give the same rewards rows, balances and ledger, whichever way each was completed.

/** What a hint is checked against: the payment's row as stored. */
const storedPayment = async (db: Queryable, id: string) =>
  (
    await db.query<{ store_id: string; created_at: Date; txn_ref: string }>(
      'SELECT store_id, created_at, txn_ref FROM payments.payments WHERE id = $1',
      [id],
    )
  ).rows[0];

/** The completion statements among `sent`: the single one and the batched one. */
const completions = (sent: string[]) =>
  sent.filter((s) => s.startsWith('WITH p AS ( UPDATE payments') || s.startsWith('WITH m AS ( SELECT * FROM unnest'));

interface Names {
  payments: string[];
  merchants: string[];
  programs: string[];
  vpas: string[];
}

/**
 * Everything rewards and the ledger hold, with every generated id replaced by a name that is the
 * same in both worlds (payment #i, merchant M<i>, program P<i>, customer P<i>:<vpa>, redemption
 * R#<payment>), sorted: two worlds that did the same thing give equal snapshots.
 */
async function snapshot(w: RewardsWorld, n: Names) {
  const names = new Map<string, string>();
  n.payments.forEach((id, i) => names.set(id, `#${i}`));
  n.merchants.forEach((id, i) => names.set(id, `M${i}`));
  n.programs.forEach((id, i) => names.set(id, `P${i}`));
  for (const [i, p] of n.programs.entries())
    for (const v of n.vpas) {
      const c = await w.customerId(p, v);
      if (c) names.set(c, `P${i}:${v}`);
    }
  const red = await w.db.query<{ id: string; payment_id: string }>('SELECT id, payment_id FROM rewards.redemptions');
  for (const r of red.rows) names.set(r.id, `R${names.get(r.payment_id)}`);
  const rules = await w.db.query<{ id: string; program_id: string }>(
    'SELECT id, program_id FROM rewards.earn_rules ORDER BY id',
  );
  for (const [i, r] of rules.rows.entries()) names.set(r.id, `${names.get(r.program_id)}:rule${i}`);
  // Every id inside a value (account codes, breakdowns, posting lines) by its name; one without a
  // name (a lot, a movement, a journal) as its kind only: those are not compared.
  const name = (v: unknown): unknown => {
    if (typeof v !== 'string') return v instanceof Date ? v.toISOString() : v;
    return v.replace(/\b[a-z]{3,4}_[0-9a-f]{32}\b/g, (id) => names.get(id) ?? `(${id.slice(0, id.indexOf('_'))})`);
  };
  const rows = async (sql: string) => {
    const r = await w.db.query<Record<string, unknown>>(sql);
    return r.rows
      .map((row) => JSON.stringify(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, name(v)]))))
      .sort();
  };
  return {
    customers: await rows(
      'SELECT id, program_id, debt, shortfall, earn_day::text AS earn_day, day_earned FROM rewards.customers',
    ),
    programs: await rows('SELECT id, budget_used, version FROM rewards.programs'),
    earnings: await rows(
      `SELECT payment_id, program_id, customer_id, merchant_id, lot_id IS NULL AS no_lot, amount, points, clawed_back, shortfall,
              breakdown::text AS breakdown, created_at FROM rewards.earnings`,
    ),
    lots: await rows(
      `SELECT program_id, customer_id, source, source_id, points, remaining, expired, status, available_at, expires_at, created_at
         FROM rewards.lots`,
    ),
    movements: await rows(
      `SELECT program_id, customer_id, kind, available_delta, pending_delta, payment_id, reference, detail, created_at
         FROM rewards.movements`,
    ),
    redemptions: await rows(
      'SELECT id, payment_id, program_id, customer_id, merchant_id, points, value_paise, mode, status FROM rewards.redemptions',
    ),
    links: await rows('SELECT payment_id, program_id, customer_id FROM rewards.payment_links'),
    balances: await rows(
      `SELECT a.book, a.code, a.type, a.floor, a.shards,
              (a.balance + coalesce((SELECT sum(s.balance) FROM ledger.balance_shards s WHERE s.account_id = a.id), 0))::bigint AS balance
         FROM ledger.accounts a`,
    ),
    entries: await rows(
      `SELECT e.book, e.kind, e.reference, e.memo,
              (SELECT string_agg(p.line || ' ' || a.code || ' ' || p.amount, ', ' ORDER BY p.line) FROM ledger.postings p
                 JOIN ledger.accounts a ON a.id = p.account_id WHERE p.entry_id = e.id) AS lines
         FROM ledger.entries e`,
    ),
    payments: await rows('SELECT id, status, amount, merchant_id FROM payments.payments'),
  };
}

/**
 * The scenario, run in a world: two programs (one with a daily cap and a budget, one with a
 * pending period), a plain merchant, and payments that meet the cases: a cold cache, a payer
 * with no customer yet, a customer named at the till, the daily cap, a reserved redemption, the
 * budget running out, a program changed behind the cache's back. Returns the names for the
 * snapshot, and for each payment whether its success took a transaction (the long way).
 */
async function scenario(w: RewardsWorld, sent: string[]) {
  const plain = await w.seedMerchant();
  const m1 = await w.seedMerchant();
  const m2 = await w.seedMerchant('5812');
  const p1 = await w.program(m1.merchantId, { budget_points: 40 });
  await w.rewards.addRule(platform, p1.id, {
    kind: 'cap_per_customer_day',
    points: 12,
  });
  const p2 = await w.program(m2.merchantId, { pending_period_seconds: 3600, validity_days: 30 });
  const payments: string[] = [];
  const longWay: boolean[] = [];
  const pay = async (terminalId: string, amount: number, payer: string, extra = {}) => {
    const p = await w.createPayment(terminalId, amount, extra);
    sent.length = 0;
    const done = await w.succeed(p.id, payer);
    assert.equal(done.status, 'succeeded');
    payments.push(p.id);
    longWay.push(sent.includes('BEGIN'));
  };
  await pay(plain.terminalId, 1000, 'ravi@okaxis');
  await pay(m1.terminalId, 5000, 'ravi@okaxis'); // cold cache: the long way (5)
  await pay(m1.terminalId, 5000, 'ravi@okaxis'); // 5, day 10
  await pay(m1.terminalId, 5000, 'ravi@okaxis'); // the daily cap: 2
  await pay(m1.terminalId, 5000, 'meera@okaxis'); // a payer with no customer yet: 5
  await pay(m1.terminalId, 5000, 'someone@okaxis', { rewards: { vpa: 'anil@okaxis' } }); // named at the till: to anil, 5
  await pay(m1.terminalId, 5000, 'ravi@okaxis', { rewards: { vpa: 'ravi@okaxis', redeem_points: 10 } }); // redemption; capped: 0
  await pay(m1.terminalId, 20_000, 'x1@okaxis'); // 20, capped at 12 (budget 34 of 40 used)
  await pay(m1.terminalId, 20_000, 'x2@okaxis'); // the budget's last 6
  await pay(m1.terminalId, 5000, 'x3@okaxis'); // the budget is spent: 0
  await pay(m2.terminalId, 3000, 'ravi@okaxis'); // cold cache: the long way (3 pending)
  await pay(m2.terminalId, 3000, 'ravi@okaxis'); // 3 pending
  // Another process doubles the earn rate: this one's cache is stale.
  await w.db.query('UPDATE rewards.programs SET earn_points = 2, version = version + 1 WHERE id = $1', [p2.id]);
  await pay(m2.terminalId, 3000, 'ravi@okaxis'); // stale: the long way, 6 pending
  await pay(m2.terminalId, 3000, 'new@okaxis'); // cached again: 6 pending to a new customer
  return {
    names: {
      payments,
      merchants: [plain.merchantId, m1.merchantId, m2.merchantId],
      programs: [p1.id, p2.id],
      vpas: [
        'ravi@okaxis',
        'meera@okaxis',
        'someone@okaxis',
        'anil@okaxis',
        'x1@okaxis',
        'x2@okaxis',
        'x3@okaxis',
        'new@okaxis',
      ],
    },
    longWay,
    balances: {
      m1: await Promise.all(
        ['ravi@okaxis', 'meera@okaxis', 'anil@okaxis', 'x1@okaxis', 'x2@okaxis'].map((v) =>
          w.balance(m1.merchantId, v),
        ),
      ),
      m2: await Promise.all(['ravi@okaxis', 'new@okaxis'].map((v) => w.balance(m2.merchantId, v))),
    },
  };
}

test('the same payments give the same rewards, balances and ledger, in one statement or the long way', async () => {
  const sentA: string[] = [];
  const sentB: string[] = [];
  const realA = await createTestDb();
  const realB = await createTestDb();
  try {
    const a = await rewardsWorld({ db: countingDb(realA, sentA), longWayOnly: true });
    const b = await rewardsWorld({ db: countingDb(realB, sentB) });
    const ra = await scenario(a, sentA);
    const rb = await scenario(b, sentB);
    // Every payment the long way in A; in B only the cold caches, the redemption and the stale program.
    assert.deepEqual(ra.longWay, Array(14).fill(true));
    assert.deepEqual(rb.longWay, [
      false,
      true,
      false,
      false,
      false,
      false,
      true,
      false,
      false,
      false,
      true,
      false,
      true,
      false,
    ]);
    // The balances as the API answers them, without the generated ids.
    const plainBalances = (b: typeof ra.balances) =>
      JSON.parse(JSON.stringify(b, (k, v) => (k.endsWith('_id') ? undefined : v)));
    assert.deepEqual(plainBalances(rb.balances), plainBalances(ra.balances));
    assert.deepEqual(
      ra.balances.m1.map((x) => x.available),
      [12 - 10, 5, 5, 12, 6],
      'ravi: 5 + 5 + 2, 10 redeemed; the cap and the budget',
    );
    assert.deepEqual(
      ra.balances.m2.map((x) => x.pending),
      [12, 6],
    );
    assert.deepEqual(await snapshot(b, rb.names), await snapshot(a, ra.names));
    for (const w of [a, b]) {
      await w.assertInvariants();
    }
  } finally {
    await realA.close();
    await realB.close();
  }
});

test('a batch of plain and member merchants, two payments of one customer among them, is one statement with the right earns', async () => {
  const sent: string[] = [];
  const real = await createTestDb();
  try {
    const w = await rewardsWorld({ db: countingDb(real, sent, 40) });
    const plain = await w.seedMerchant();
    const m1 = await w.seedMerchant();
    const m2 = await w.seedMerchant();
    await w.program(m1.merchantId);
    await w.program(m2.merchantId, { budget_points: 1000 });
    // Cache both programs (the long way, once each).
    await w.pay(m1.terminalId, 1000, 'warm@okaxis');
    await w.pay(m2.terminalId, 1000, 'warm@okaxis');
    const plan: [string, number, string][] = [
      [plain.terminalId, 4000, 'ravi@okaxis'],
      [m1.terminalId, 7000, 'ravi@okaxis'],
      [m1.terminalId, 3000, 'ravi@okaxis'],
      [m2.terminalId, 9000, 'ravi@okaxis'],
      [m1.terminalId, 2000, 'meera@okaxis'],
      [m2.terminalId, 5000, 'meera@okaxis'],
      [plain.terminalId, 6000, 'meera@okaxis'],
      [m2.terminalId, 8000, 'anil@okaxis'],
    ];
    const created = [];
    for (const [t, amount] of plan) created.push(await w.createPayment(t, amount));
    const refs = await Promise.all(created.map((p) => w.payments.get(platform, p.id)));
    sent.length = 0;
    // The bank's answers all at once: the completions' batcher writes them together.
    await Promise.all(
      refs.map((p, i) =>
        w.payments.handleCallback('SIMBANK', {
          kind: 'payment',
          ref: p.txn_ref,
          result: { outcome: 'success', responseCode: '00', payerVpa: plan[i][2], amountPaise: p.amount },
        }),
      ),
    );
    assert.ok(!sent.includes('BEGIN'), sent.join('\n'));
    assert.ok(completions(sent).length < plan.length, sent.join('\n'));
    assert.ok(
      sent.some((s) => s.startsWith('WITH m AS')),
      sent.join('\n'),
    );
    assert.equal((await w.balance(m1.merchantId, 'ravi@okaxis')).available, 10);
    assert.equal((await w.balance(m2.merchantId, 'ravi@okaxis')).available, 9);
    assert.equal((await w.balance(m1.merchantId, 'meera@okaxis')).available, 2);
    assert.equal((await w.balance(m2.merchantId, 'meera@okaxis')).available, 5);
    assert.equal((await w.balance(m2.merchantId, 'anil@okaxis')).available, 8);
    const budget = await real.query<{ used: number }>(
      'SELECT budget_used AS used FROM rewards.programs p JOIN rewards.program_merchants m ON m.program_id = p.id WHERE m.merchant_id = $1',
      [m2.merchantId],
    );
    assert.equal(Number(budget.rows[0].used), 1 + 9 + 5 + 8);
    await w.assertInvariants();
  } finally {
    await real.close();
  }
});

test('a hint that lies (amount, store, created_at, merchant, payer) is refused with TPP01 and nothing is written; the long way earns right', async () => {
  const real = await createTestDb();
  try {
    const w = await rewardsWorld({ db: real });
    const m = await w.seedMerchant();
    const other = await w.seedMerchant();
    await w.program(m.merchantId);
    await w.program(other.merchantId, { earn: { points: 5, per_amount_paise: 1000, rounding: 'down' } });
    await w.pay(m.terminalId, 1000, 'warm@okaxis'); // caches the programs
    await w.pay(other.terminalId, 1000, 'warm@okaxis');
    const p = await w.createPayment(m.terminalId, 5000);
    const row = await storedPayment(real, p.id);
    const bidx = null;
    const honest: PaymentHint = {
      merchant_id: m.merchantId,
      store_id: row.store_id,
      created_at: row.created_at,
      amount: 5000,
      payer_vpa: null,
      payer_vpa_bidx: bidx,
    };
    const lies: [string, PaymentHint][] = [
      ['amount', { ...honest, amount: 500_000 }],
      ['store', { ...honest, store_id: other.storeId }],
      ['created_at', { ...honest, created_at: new Date(row.created_at.getTime() - 86_400_000) }],
      ['merchant', { ...honest, merchant_id: other.merchantId }],
      ['payer', { ...honest, payer_vpa: 'ravi@okaxis', payer_vpa_bidx: 'not-the-row-s' }],
    ];
    for (const [what, hint] of lies) {
      await assert.rejects(
        completeSucceeded(real, {
          id: p.id,
          u: { completed_at: new Date(), response_code: '00' },
          now: new Date(),
          source: 'callback',
          only: { amount: 5000 },
          journalId: newJournalId(),
          traceparent: null,
          hint,
          hooks: [],
          setHooks: [w.rewards.hooks.succeededSetSql!.bind(w.rewards.hooks)],
          ledgerSql: paymentLedgerSql,
        }),
        (e: { code?: string }) => e.code === 'TPP01',
        what,
      );
      const still = await real.query<{ status: string }>('SELECT status FROM payments.payments WHERE id = $1', [p.id]);
      assert.equal(still.rows[0].status, 'pending', what);
      const written = await real.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM rewards.earnings WHERE payment_id = $1) + (SELECT count(*) FROM ledger.entries WHERE reference = $1)
                + (SELECT count(*) FROM rewards.customers WHERE program_id IN (SELECT program_id FROM rewards.program_merchants)) - 2 AS n`,
        [p.id],
      );
      assert.equal(Number(written.rows[0].n), 0, `${what}: nothing written (only the two warm customers exist)`);
    }
    // No payer on the row and none in the hint: the honest hint has nothing to earn to, and is done.
    // With the payer the bank names, the service completes it (its own hint is honest): 5 points.
    const done = await w.succeed(p.id, 'ravi@okaxis');
    assert.equal(done.status, 'succeeded');
    assert.equal((await w.balance(m.merchantId, 'ravi@okaxis')).available, 5);
    await w.assertInvariants();
  } finally {
    await real.close();
  }
});

test('batches of earns over the same customers and budgets, side by side, never deadlock and grant exactly', async () => {
  // On PGlite (one connection) the statements run one after another: the totals are checked
  // there too; on PostgreSQL (TEST_DATABASE_URL) they run on several connections at once.
  const real = await createTestDb();
  try {
    const w = await rewardsWorld({ db: real });
    const merchants = [await w.seedMerchant(), await w.seedMerchant(), await w.seedMerchant(), await w.seedMerchant()];
    const coalition = await w.program(undefined, { budget_points: 100_000 });
    const own = await w.program(merchants[3].merchantId, { budget_points: 100_000 });
    for (const m of merchants.slice(0, 3)) await w.rewards.addMerchant(platform, coalition.id, m.merchantId);
    for (const m of merchants) await w.pay(m.terminalId, 1000, 'warm@okaxis'); // caches the programs
    const customers = ['c1@okaxis', 'c2@okaxis', 'c3@okaxis'];
    const hook = w.rewards.hooks.succeededSetSql!.bind(w.rewards.hooks);
    // 60 payments: each customer named at the till at each merchant, amounts of 1,000 to 9,000.
    const pays: { id: string; hint: PaymentHint; merchant: number; customer: string; points: number }[] = [];
    for (let i = 0; i < 60; i++) {
      const merchant = i % 4;
      const customer = customers[(i * 7) % 3];
      const amount = 1000 * (1 + (i % 9));
      const p = await w.createPayment(merchants[merchant].terminalId, amount, { rewards: { vpa: customer } });
      const row = await storedPayment(real, p.id);
      pays.push({
        id: p.id,
        hint: {
          merchant_id: merchants[merchant].merchantId,
          store_id: row.store_id,
          created_at: row.created_at,
          amount,
          payer_vpa: null,
          payer_vpa_bidx: null,
        },
        merchant,
        customer,
        points: amount / 1000,
      });
    }
    // Shuffled into 15 statements of 4, each completing its payments with their earns.
    const order = pays.map((p, i) => ({ p, k: (i * 37) % 61 })).sort((a, b) => a.k - b.k);
    const batches: (typeof pays)[] = [];
    for (let i = 0; i < order.length; i += 4) batches.push(order.slice(i, i + 4).map((x) => x.p));
    const results = await Promise.allSettled(
      batches.map((b) =>
        completeSucceededMany(
          real,
          b.map((p) => ({
            id: p.id,
            u: { completed_at: new Date(), response_code: '00' },
            now: new Date(),
            source: 'callback',
            only: { amount: p.hint.amount },
            journalId: newJournalId(),
            traceparent: null,
            hint: p.hint,
          })),
          { hooks: [], setHooks: [hook], ledgerSql: paymentsLedgerSql },
        ),
      ),
    );
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
    assert.deepEqual(failed, []);
    for (const r of results)
      if (r.status === 'fulfilled') assert.ok(r.value.every((row) => row?.status === 'succeeded'));
    for (const c of customers) {
      const inCoalition = pays.filter((p) => p.customer === c && p.merchant < 3).reduce((s, p) => s + p.points, 0);
      const inOwn = pays.filter((p) => p.customer === c && p.merchant === 3).reduce((s, p) => s + p.points, 0);
      assert.equal((await w.balance(merchants[0].merchantId, c)).available, inCoalition, c);
      assert.equal((await w.balance(merchants[3].merchantId, c)).available, inOwn, c);
    }
    const used = await real.query<{ id: string; used: string }>(
      'SELECT id, budget_used::text AS used FROM rewards.programs WHERE id = ANY($1::text[])',
      [[coalition.id, own.id]],
    );
    const total = pays.reduce((s, p) => s + p.points, 0) + 4; // and the four warm-up payments
    assert.equal(
      used.rows.reduce((s, r) => s + Number(r.used), 0),
      total,
    );
    await w.assertInvariants();
  } finally {
    await real.close();
  }
});
