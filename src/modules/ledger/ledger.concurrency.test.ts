import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../../platform/errors.ts';
import { useTestDb } from '../../platform/testing.ts';
import { createLedgerService } from './index.ts';
import { acct, cr, dr, entry, ref } from './testkit.ts';

// Many transactions at once on the same accounts. On PGlite transactions serialize; on
// PostgreSQL (TEST_DATABASE_URL) the row locks taken by post() do the work.

const ledger = createLedgerService();
const UNIT = 100;

describe('ledger concurrency', () => {
  const db = useTestDb();

  test('30 concurrent spends from a floor-0 wallet holding 10 units: exactly 10 succeed', async () => {
    const wallet = acct('c1:wallet', 'liability', 0);
    const cash = acct('c1:cash', 'asset');
    const shop = acct('c1:shop', 'liability');
    const fees = acct('c1:fees', 'revenue');
    await ledger.post(db, entry([dr(cash, 10 * UNIT), cr(wallet, 10 * UNIT)], { kind: 'wallet.topup' }));

    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        db.tx(async (tx) => {
          // Half list the accounts the other way round: locks are still taken in code order.
          const lines = [dr(wallet, UNIT), cr(shop, UNIT - 10), cr(fees, 10)];
          await tx.query(`INSERT INTO platform.outbox (topic, key, payload) VALUES ('c1', $1, '{}')`, [String(i)]);
          return ledger.post(tx, entry(i % 2 ? lines.reverse() : lines, { kind: 'wallet.spend' }));
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 10);
    assert.equal(failed.length, 20);
    for (const f of failed) {
      assert.ok(f.reason instanceof AppError && f.reason.code === 'insufficient_funds', String(f.reason));
    }
    assert.equal(await ledger.balance(db, 'c1:wallet'), 0);
    assert.equal(await ledger.balance(db, 'c1:shop'), 10 * (UNIT - 10));
    assert.equal(await ledger.balance(db, 'c1:fees'), 100);
    const outbox = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM platform.outbox WHERE topic = 'c1'`);
    assert.equal(outbox.rows[0].n, 10, 'the failed transactions rolled back entirely');
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('concurrent posts of one business event: one writes, the rest are duplicates', async () => {
    const e = entry([dr(acct('c2:cash', 'asset'), 500), cr(acct('c2:payable', 'liability'), 500)], {
      kind: 'payment.succeeded',
      reference: ref('pay'),
    });
    const results = await Promise.all(Array.from({ length: 12 }, () => db.tx((tx) => ledger.post(tx, e))));
    assert.equal(results.filter((r) => !r.duplicate).length, 1);
    assert.equal(new Set(results.map((r) => r.journalId)).size, 1);
    assert.equal(await ledger.balance(db, 'c2:cash'), 500);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('concurrent first use of the same new accounts creates each once', async () => {
    const codes = ['c3:a', 'c3:b', 'c3:c'];
    const results = await Promise.all(
      Array.from({ length: 15 }, (_, i) => {
        const [x, y] = i % 2 ? [codes[0], codes[1]] : [codes[2], codes[0]];
        return db.tx((tx) => ledger.post(tx, entry([dr(acct(x, 'asset'), 1), cr(acct(y, 'asset'), 1)])));
      }),
    );
    assert.equal(results.length, 15);
    const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger.accounts WHERE code LIKE 'c3:%'`);
    assert.equal(r.rows[0].n, 3);
    const total = (await Promise.all(codes.map((c) => ledger.balance(db, c)))).reduce((s, v) => s + v, 0);
    assert.equal(total, 0);
    assert.deepEqual(await ledger.verify(db), []);
  });
});
