import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Queryable } from '../../platform/db.ts';
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
});
