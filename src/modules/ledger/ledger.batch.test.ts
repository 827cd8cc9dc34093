import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db, Queryable } from '../../platform/db.ts';
import { useTestDb } from '../../platform/testing.ts';
import { createLedgerService, newJournalId, postEntriesSql } from './index.ts';
import { acct, count, dr, entry, postedBalance, ref } from './testkit.ts';

// Several entries posted by one statement through postEntriesSql / ledger.post_entries()
// (migrations/0036): the group commit of payment completions uses it. On PostgreSQL
// (TEST_DATABASE_URL) the statements of the last test run on up to ten connections at once.

const ledger = createLedgerService();

interface Row {
  id: string;
  merchant: string;
  amount: number;
}

/** One statement posting, for each row, `amount` from `<prefix>clearing:BANK` (hot) to `<prefix>merchant:<merchant>`. */
async function postBatch(q: Queryable, prefix: string, rows: readonly Row[]) {
  const params: unknown[] = [
    rows.map(() => newJournalId()),
    rows.map((r) => r.id),
    rows.map((r) => r.merchant),
    rows.map((r) => r.amount),
  ];
  const param = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  const from = postEntriesSql(
    {
      kind: 'test.batch',
      id: 'r.journal_id',
      reference: 'r.id',
      amount: 'r.amount',
      debit: { prefix: `${prefix}clearing:`, key: "'BANK'", type: 'asset', shards: 4 },
      credit: { prefix: `${prefix}merchant:`, key: 'r.merchant', type: 'liability' },
    },
    'r',
    param,
  );
  const { rows: out } = await q.query<{ reference: string; journal_id: string; duplicate: boolean }>(
    `WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS r(journal_id, id, merchant, amount))
     SELECT x.reference, x.journal_id, x.duplicate FROM ${from} AS x`,
    params,
  );
  return out;
}

/** An entry as ledger.post_entries() takes it: `lines` as [code, signed amount] (debits positive). */
interface RawEntry {
  reference: string;
  accounts: { code: string; type: string; floor?: number; shards?: number }[];
  lines: [string, number][];
}

/** ledger.post_entries() called with hand-made entries (any accounts, floors, signs). */
async function postRaw(q: Queryable, entries: readonly RawEntry[]) {
  const json = entries.map((e) => ({
    id: newJournalId(),
    kind: 'test.raw',
    reference: e.reference,
    memo: null,
    accounts: e.accounts.map((a) => ({
      code: a.code,
      type: a.type,
      floor: a.floor ?? null,
      floor_given: a.floor !== undefined,
      shards: a.shards ?? 1,
    })),
    lines: e.lines.map(([code, amount], line) => ({ line, code, amount })),
  }));
  const { rows } = await q.query<{ reference: string; journal_id: string; duplicate: boolean }>(
    `SELECT x.reference, x.journal_id, x.duplicate FROM ledger.post_entries('INR', $1::jsonb) AS x`,
    [JSON.stringify(json)],
  );
  return rows;
}

/**
 * How many times `fn` made ledger.post_entries() call ledger.post_entry() (one per entry posted one
 * by one): run in a transaction that is rolled back, with PL/pgSQL function calls counted
 * (track_functions, a superuser's setting: undefined where the test's role may not set it).
 */
async function postEntryCalls(db: Db, fn: (q: Queryable) => Promise<unknown>): Promise<number | undefined> {
  let calls: number | undefined;
  await db
    .tx(async (tx) => {
      try {
        await tx.query(`SET LOCAL track_functions = 'pl'`);
      } catch {
        return;
      }
      await fn(tx);
      const r = await tx.query<{ calls: number }>(
        `SELECT coalesce(sum(calls), 0)::int AS calls FROM pg_stat_xact_user_functions
          WHERE schemaname = 'ledger' AND funcname = 'post_entry'`,
      );
      calls = r.rows[0].calls;
      throw new RolledBack();
    })
    .catch((e) => {
      if (!(e instanceof RolledBack)) throw e;
    });
  return calls;
}
class RolledBack extends Error {}

describe('ledger entries posted together', () => {
  const db = useTestDb();

  test('each entry is posted as post() posts one; the same batch again is all duplicates', async () => {
    const rows = [
      { id: ref('b1'), merchant: 'm1', amount: 500 },
      { id: ref('b1'), merchant: 'm2', amount: 700 },
      { id: ref('b1'), merchant: 'm1', amount: 300 },
    ];
    const first = await postBatch(db, 'b1:', rows);
    assert.equal(first.length, 3);
    assert.deepEqual(first.map((r) => r.reference).sort(), rows.map((r) => r.id).sort());
    assert.ok(first.every((r) => !r.duplicate && r.journal_id.startsWith('jrn')));
    assert.equal(await ledger.balance(db, 'b1:clearing:BANK'), 1500);
    assert.equal(await ledger.balance(db, 'b1:merchant:m1'), 800);
    assert.equal(await ledger.balance(db, 'b1:merchant:m2'), 700);
    assert.equal(await postedBalance(db, 'b1:merchant:m1'), 800);

    const entries = await count(db, 'entries');
    const again = await postBatch(db, 'b1:', rows);
    assert.ok(again.every((r) => r.duplicate));
    // The journal ids are those of the first posting, not the new ones offered.
    assert.deepEqual(
      again.map((r) => `${r.reference} ${r.journal_id}`).sort(),
      first.map((r) => `${r.reference} ${r.journal_id}`).sort(),
    );
    assert.equal(await count(db, 'entries'), entries);
    assert.equal(await ledger.balance(db, 'b1:merchant:m1'), 800);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('one entry refused (an account of another type): nothing of the statement is written', async () => {
    // b2:merchant:bad exists as an asset; the batch would credit it as a liability (TPL02).
    await ledger.post(
      db,
      entry([dr(acct('b2:merchant:bad', 'asset'), 100), { account: acct('b2:equity', 'equity'), credit: 100 }]),
    );
    const entries = await count(db, 'entries');
    await assert.rejects(
      postBatch(db, 'b2:', [
        { id: ref('b2'), merchant: 'good', amount: 100 },
        { id: ref('b2'), merchant: 'bad', amount: 100 },
      ]),
      (e: { code?: string }) => e.code === 'TPL02',
    );
    assert.equal(await count(db, 'entries'), entries);
    assert.equal(await ledger.balance(db, 'b2:merchant:good'), 0);
    assert.equal(await ledger.balance(db, 'b2:clearing:BANK'), 0);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('concurrent statements over the same merchants in every order: no deadlock, exact balances', async () => {
    const merchants = ['m1', 'm2', 'm3', 'm4'];
    // Every account exists (and the hot one has its shard rows) before the race: only a first
    // payment creates accounts, and that is not what this test is about.
    await postBatch(
      db,
      'b3:',
      merchants.map((merchant) => ({ id: ref('b3'), merchant, amount: 1 })),
    );
    // Each statement posts to all four merchants; the entries' order follows their references,
    // which are random, so without the up-front locks (plain accounts in code order, then the
    // shard rows) two statements would take the merchants' locks in opposite orders.
    const statements = Array.from({ length: 24 }, () =>
      postBatch(
        db,
        'b3:',
        merchants.map((merchant, i) => ({
          id: `${Math.random().toString(36).slice(2)}_${ref('b3')}`,
          merchant,
          amount: 10 + i,
        })),
      ),
    );
    const results = await Promise.allSettled(statements);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.deepEqual(
      failed.map((f) => `${(f.reason as { code?: string }).code} ${String(f.reason)}`),
      [],
      'no statement failed (a deadlock would be 40P01)',
    );
    for (const [i, m] of merchants.entries())
      assert.equal(await ledger.balance(db, `b3:merchant:${m}`), 1 + 24 * (10 + i));
    assert.equal(await ledger.balance(db, 'b3:clearing:BANK'), 4 + 24 * (10 + 11 + 12 + 13));
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('over accounts that exist, the entries are written together: the same ledger as one by one', async () => {
    const merchants = ['m1', 'm2', 'm3'];
    // The same payments under two prefixes (two sets of accounts), each with references of its own.
    const rows = (amount: number) => merchants.map((merchant, i) => ({ merchant, amount: amount + i }));
    const withRefs = (spec: { merchant: string; amount: number }[]) => spec.map((r) => ({ ...r, id: ref('b4') }));
    // The accounts first (a first payment creates them, one entry at a time).
    await postBatch(db, 'b4:', withRefs(rows(1)));
    await postBatch(db, 'b4one:', withRefs(rows(1)));

    const spec = [...rows(100), ...rows(1_000)];
    const batch = withRefs(spec);
    const single = withRefs(spec);
    // The same reference twice with the same lines: the second is a duplicate of the first.
    batch.push({ ...batch[0] });
    single.push({ ...single[0] });
    const together = await postBatch(db, 'b4:', batch);
    const oneByOne: typeof together = [];
    for (const r of single) oneByOne.push(...(await postBatch(db, 'b4one:', [r])));

    const refIndex = (rs: typeof batch) => new Map(rs.map((r, i) => [r.id, i]));
    const answers = (out: typeof together, rs: typeof batch) =>
      out.map((r) => `${refIndex(rs).get(r.reference)} ${r.duplicate}`).sort();
    assert.deepEqual(answers(together, batch), answers(oneByOne, single));
    const dup = together.filter((r) => r.duplicate);
    assert.equal(dup.length, 1);
    assert.equal(dup[0].journal_id, together.find((r) => r.reference === dup[0].reference && !r.duplicate)!.journal_id);
    for (const code of ['clearing:BANK', ...merchants.map((m) => `merchant:${m}`)]) {
      assert.equal(await ledger.balance(db, `b4:${code}`), await ledger.balance(db, `b4one:${code}`), code);
      assert.equal(await postedBalance(db, `b4:${code}`), await postedBalance(db, `b4one:${code}`), code);
    }
    assert.equal(await ledger.balance(db, 'b4:merchant:m2'), 2 + 101 + 1_001);
    assert.deepEqual(await ledger.verify(db), []);

    // And it was written together: post_entry() only for the duplicate (counted where the test's
    // role may set track_functions).
    const calls = await postEntryCalls(db, (tx) => postBatch(tx, 'b4:', [...withRefs(rows(7)), { ...batch[0] }]));
    if (calls !== undefined) assert.equal(calls, 1);
  });

  test('written together, a reference posted earlier with other lines is refused (TPL04) and nothing is written', async () => {
    await postBatch(db, 'b6:', [{ id: ref('b6'), merchant: 'm1', amount: 1 }]);
    const taken = ref('b6');
    await postBatch(db, 'b6:', [{ id: taken, merchant: 'm1', amount: 50 }]);
    const entries = await count(db, 'entries');
    await assert.rejects(
      postBatch(db, 'b6:', [
        { id: ref('b6'), merchant: 'm1', amount: 10 },
        { id: taken, merchant: 'm1', amount: 60 },
      ]),
      (e: { code?: string }) => e.code === 'TPL04',
    );
    assert.equal(await count(db, 'entries'), entries);
    assert.equal(await ledger.balance(db, 'b6:merchant:m1'), 51);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('an account with a floor is moved entry by entry: a breach in between is refused (TPL01)', async () => {
    const wallet = { code: 'b5:wallet', type: 'liability', floor: 0 };
    const equity = { code: 'b5:equity', type: 'equity' };
    /** An entry moving `amount` from equity into the wallet (a negative amount: out of it). */
    const intoWallet = (amount: number): RawEntry => ({
      reference: ref('b5'),
      accounts: [wallet, equity],
      lines: [
        ['b5:equity', amount],
        ['b5:wallet', -amount],
      ],
    });
    await postRaw(db, [intoWallet(100)]);
    // Together the two would leave the wallet at 50; the first alone takes it to -50.
    const entries = await count(db, 'entries');
    await assert.rejects(
      postRaw(db, [intoWallet(-150), intoWallet(100)]),
      (e: { code?: string }) => e.code === 'TPL01',
    );
    assert.equal(await count(db, 'entries'), entries);
    assert.equal(await ledger.balance(db, 'b5:wallet'), 100);
    // In the other order each entry keeps the wallet above its floor.
    const ok = await postRaw(db, [intoWallet(100), intoWallet(-150)]);
    assert.equal(ok.length, 2);
    assert.equal(await ledger.balance(db, 'b5:wallet'), 50);
    assert.deepEqual(await ledger.verify(db), []);
  });
});
