import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db, Queryable } from '../../platform/db.ts';
import { createTestDb } from '../../platform/testing.ts';
import { createLedgerService, formatViolation, runLedgerVerify, type LedgerViolation } from './index.ts';
import { acct, cr, dr, entry } from './testkit.ts';

// Tampering by plain SQL, as an operator with a psql prompt could: verify must name the broken
// invariant and its subject. Each tamper runs in a transaction that is rolled back afterwards,
// so every case starts from the same clean ledger.

const ledger = createLedgerService();
const ROLLBACK = new Error('rollback');

const cash = acct('v:cash', 'asset');
const wallet = acct('v:wallet', 'liability', 0);
const shop = acct('v:shop', 'liability');
const till = acct('v:till', 'asset');
const issued = acct('v:issued', 'expense');
const points = acct('v:points', 'liability', 0);

describe('ledger.verify', () => {
  let db: Db;
  const ids: Record<string, string> = {};

  before(async () => {
    db = await createTestDb();
    ids.topup = (
      await ledger.post(db, entry([dr(cash, 1_000), cr(wallet, 1_000)], { kind: 'wallet.topup' }))
    ).journalId;
    ids.spend = (await ledger.post(db, entry([dr(wallet, 300), cr(shop, 300)], { kind: 'wallet.spend' }))).journalId;
    ids.till = (await ledger.post(db, entry([dr(shop, 100), cr(till, 100)], { kind: 'till.payout' }))).journalId;
    ids.earn = (
      await ledger.post(db, entry([dr(issued, 50), cr(points, 50)], { book: 'PTS', kind: 'points.earn' }))
    ).journalId;
  });
  after(async () => {
    await db?.close();
  });

  /** Runs `tamper`, then verify, in one transaction that is then rolled back. */
  async function verifyAfter(tamper: (tx: Queryable) => Promise<unknown>): Promise<LedgerViolation[]> {
    let found: LedgerViolation[] = [];
    await db
      .tx(async (tx) => {
        await tamper(tx);
        found = await ledger.verify(tx);
        throw ROLLBACK;
      })
      .catch((e) => {
        if (e !== ROLLBACK) throw e;
      });
    return found;
  }
  const brief = (vs: LedgerViolation[]) => vs.map((v) => [v.invariant, v.subject]);
  const accountId = async (tx: Queryable, code: string, book = 'INR') =>
    (await tx.query<{ id: number }>('SELECT id FROM ledger.accounts WHERE book = $1 AND code = $2', [book, code]))
      .rows[0].id;

  test('a clean ledger has no violations', async () => {
    assert.deepEqual(await ledger.verify(db), []);
    const report = await runLedgerVerify(db);
    assert.equal(report.ok, true);
    assert.deepEqual(report.violations, []);
    assert.equal(report.checked.entries, 4);
    assert.equal(report.checked.accounts, 6);
  });

  test('an UPDATE of an account balance breaks account_balance_matches_postings for that account', async () => {
    const vs = await verifyAfter((tx) =>
      tx.query(`UPDATE ledger.accounts SET balance = balance + 1 WHERE code = 'v:cash'`),
    );
    assert.deepEqual(brief(vs), [['account_balance_matches_postings', 'INR/v:cash']]);
    assert.match(vs[0].message, /stored balance 1001 but postings give 1000/);
  });

  test('a DELETE of a posting unbalances its entry and its account', async () => {
    const vs = await verifyAfter((tx) =>
      tx.query('DELETE FROM ledger.postings WHERE entry_id = $1 AND line = 1', [ids.spend]),
    );
    assert.deepEqual(brief(vs), [
      ['entry_balances', ids.spend],
      ['account_balance_matches_postings', 'INR/v:shop'],
    ]);
    assert.match(vs[0].message, /wallet\.spend .* postings sum to 300, not 0/);
  });

  test('an UPDATE of a posting amount unbalances its entry and its account', async () => {
    const vs = await verifyAfter((tx) =>
      tx.query('UPDATE ledger.postings SET amount = amount - 1 WHERE entry_id = $1 AND line = 0', [ids.topup]),
    );
    assert.deepEqual(brief(vs), [
      ['entry_balances', ids.topup],
      ['account_balance_matches_postings', 'INR/v:cash'],
    ]);
    assert.match(vs[0].message, /sum to -1/);
  });

  test('deleting all of an entry\'s postings is reported, though they "sum" to zero', async () => {
    const vs = await verifyAfter((tx) => tx.query('DELETE FROM ledger.postings WHERE entry_id = $1', [ids.earn]));
    assert.deepEqual(brief(vs), [
      ['entry_balances', ids.earn],
      ['account_balance_matches_postings', 'PTS/v:issued'],
      ['account_balance_matches_postings', 'PTS/v:points'],
    ]);
    assert.match(vs[0].message, /has 0 posting\(s\)/);
  });

  test('moving a posting to an account in another book breaks single_book_per_entry', async () => {
    const vs = await verifyAfter(async (tx) => {
      const pts = await accountId(tx, 'v:issued', 'PTS');
      await tx.query('UPDATE ledger.postings SET account_id = $1 WHERE entry_id = $2 AND line = 0', [pts, ids.topup]);
    });
    assert.deepEqual(brief(vs), [
      ['single_book_per_entry', ids.topup],
      ['account_balance_matches_postings', 'INR/v:cash'],
      ['account_balance_matches_postings', 'PTS/v:issued'],
    ]);
    assert.match(vs[0].message, /book INR has postings on accounts in book\(s\) PTS/);
  });

  test('an account below its floor breaks account_above_floor (with the CHECK backstop dropped)', async () => {
    // The floor is also a CHECK constraint, so plain SQL must first remove it.
    const check = await verifyAfter((tx) =>
      tx.query(`UPDATE ledger.accounts SET floor = 0 WHERE code = 'v:till'`),
    ).catch((e: { code?: string }) => e.code);
    assert.equal(check, '23514', 'the CHECK constraint refuses the tamper');

    const vs = await verifyAfter(async (tx) => {
      await tx.query('ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_balance_above_floor');
      await tx.query(`UPDATE ledger.accounts SET floor = 0 WHERE code = 'v:till'`);
    });
    assert.deepEqual(brief(vs), [['account_above_floor', 'INR/v:till']]);
    assert.match(vs[0].message, /balance -100 is below floor 0/);

    const both = await verifyAfter(async (tx) => {
      await tx.query('ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_balance_above_floor');
      await tx.query(`UPDATE ledger.accounts SET balance = -5 WHERE code = 'v:wallet'`);
    });
    assert.deepEqual(brief(both), [
      ['account_balance_matches_postings', 'INR/v:wallet'],
      ['account_above_floor', 'INR/v:wallet'],
    ]);
  });

  test('an entry inserted without postings is reported', async () => {
    const vs = await verifyAfter((tx) =>
      tx.query(`INSERT INTO ledger.entries (id, book, kind, reference) VALUES ('jrn_zzz', 'INR', 'x', 'y')`),
    );
    assert.deepEqual(brief(vs), [['entry_balances', 'jrn_zzz']]);
  });

  test('runLedgerVerify reports committed damage, and formatViolation names it', async () => {
    await db.query(`UPDATE ledger.accounts SET balance = balance + 7 WHERE code = 'v:shop'`);
    try {
      const report = await runLedgerVerify(db);
      assert.equal(report.ok, false);
      assert.deepEqual(brief(report.violations), [['account_balance_matches_postings', 'INR/v:shop']]);
      assert.equal(
        formatViolation(report.violations[0]),
        'account_balance_matches_postings: INR/v:shop: stored balance 207 but postings give 200',
      );
    } finally {
      await db.query(`UPDATE ledger.accounts SET balance = balance - 7 WHERE code = 'v:shop'`);
    }
    assert.equal((await runLedgerVerify(db)).ok, true);
  });
});
