import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { useTestDb } from '../../platform/testing.ts';
import { createLedgerService, type AccountSpec } from './index.ts';
import { acct, cr, dr, entry, postedBalance } from './testkit.ts';

// Hot accounts (AccountSpec.shards > 1): the balance lives in several rows so concurrent entries
// do not wait for one row lock. On PGlite transactions serialize; on PostgreSQL
// (TEST_DATABASE_URL) the posts below run on up to ten connections at once.

const ledger = createLedgerService();
const hot = (code: string, shards = 8): AccountSpec => ({ code, type: 'asset', shards });

async function shardRows(db: Db, code: string) {
  const r = await db.query<{ shards: number; rows: number; balance: number }>(
    `SELECT a.shards, (SELECT count(*)::int FROM ledger.balance_shards s WHERE s.account_id = a.id) AS rows, a.balance
       FROM ledger.accounts a WHERE a.book = 'INR' AND a.code = $1`,
    [code],
  );
  return r.rows[0];
}

describe('ledger hot accounts', () => {
  const db = useTestDb();

  test('60 concurrent entries on one hot account: its balance is exact and verify is clean', async () => {
    const clearing = hot('h1:clearing');
    const amounts = Array.from({ length: 60 }, (_, i) => 100 + i);
    await Promise.all(
      amounts.map((a, i) =>
        db.tx((tx) => ledger.post(tx, entry([dr(clearing, a), cr(acct(`h1:merchant:${i % 6}`, 'liability'), a)]))),
      ),
    );
    const total = amounts.reduce((x, y) => x + y, 0);
    assert.equal(await ledger.balance(db, 'h1:clearing'), total);
    assert.equal(await postedBalance(db, 'h1:clearing'), total);
    const rows = await shardRows(db, 'h1:clearing');
    assert.equal(rows.shards, 8);
    assert.equal(rows.balance, 0, 'a hot account keeps its balance in its shard rows');
    assert.ok(rows.rows >= 1 && rows.rows <= 8, `${rows.rows} shard rows`);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('credits and debits both land in shards; a refund-like entry takes the balance back down', async () => {
    const clearing = hot('h2:clearing');
    const shop = acct('h2:shop', 'liability');
    await ledger.post(db, entry([dr(clearing, 1_000), cr(shop, 1_000)]));
    await ledger.post(db, entry([dr(shop, 400), cr(clearing, 400)]));
    assert.equal(await ledger.balance(db, 'h2:clearing'), 600);
    assert.equal(await ledger.balance(db, 'h2:shop'), 600);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('an account made hot later keeps its balance: the row it had plus the shards', async () => {
    const shop = acct('h3:shop', 'liability');
    await ledger.post(db, entry([dr(acct('h3:clearing', 'asset'), 500), cr(shop, 500)]));
    assert.equal((await shardRows(db, 'h3:clearing')).shards, 1);
    await ledger.post(db, entry([dr(hot('h3:clearing', 16), 250), cr(shop, 250)]));
    const rows = await shardRows(db, 'h3:clearing');
    assert.equal(rows.shards, 16);
    assert.equal(rows.balance, 500);
    assert.equal(await ledger.balance(db, 'h3:clearing'), 750);
    // Asking for fewer rows later changes nothing: the count only grows.
    await ledger.post(db, entry([dr(acct('h3:clearing', 'asset'), 1), cr(shop, 1)]));
    assert.equal((await shardRows(db, 'h3:clearing')).shards, 16);
    assert.equal(await ledger.balance(db, 'h3:clearing'), 751);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('a tampered shard row is reported by verify', async () => {
    await ledger.post(db, entry([dr(hot('h4:clearing'), 70), cr(acct('h4:shop', 'liability'), 70)]));
    await db.query(
      `UPDATE ledger.balance_shards SET balance = balance + 5 WHERE account_id = (SELECT id FROM ledger.accounts WHERE code = 'h4:clearing')`,
    );
    try {
      const v = await ledger.verify(db);
      assert.equal(v.length, 1);
      assert.equal(v[0].invariant, 'account_balance_matches_postings');
      assert.equal(v[0].subject, 'INR/h4:clearing');
      assert.match(v[0].message, /stored balance 75 but postings give 70/);
    } finally {
      await db.query(
        `UPDATE ledger.balance_shards SET balance = balance - 5 WHERE account_id = (SELECT id FROM ledger.accounts WHERE code = 'h4:clearing')`,
      );
    }
  });

  test('a hot account cannot have a floor, and shards must be 1-256', async () => {
    const bad = (spec: AccountSpec) =>
      assert.rejects(
        ledger.post(db, entry([dr(spec, 1), cr(acct('h5:shop', 'liability'), 1)])),
        (e: unknown) => e instanceof AppError && e.code === 'validation_failed',
      );
    await bad({ code: 'h5:a', type: 'asset', shards: 4, floor: 0 });
    await bad({ code: 'h5:a', type: 'asset', shards: 0 });
    await bad({ code: 'h5:a', type: 'asset', shards: 257 });
    await bad({ code: 'h5:a', type: 'asset', shards: 1.5 });
    const r = await db.query(`SELECT 1 FROM ledger.accounts WHERE code = 'h5:a'`);
    assert.equal(r.rows.length, 0);
  });
});
