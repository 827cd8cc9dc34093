import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb, usingRealPostgres } from '../src/platform/testing.ts';
import { createPgDb, type Db, type Queryable } from '../src/platform/db.ts';
import { ledgerStatements } from '../src/platform/requestLedger.repo.ts';
import { completeSucceededMany, movePendingMany } from '../src/modules/payments/payments.repo.ts';

// The batched statements (group commit) join unnest() of their parameters to a table. Run as
// prepared statements, PostgreSQL keeps a generic plan after five runs, made with the statistics
// of that moment: on a young table a scan of every open payment or every stored request id for
// each batch, until autovacuum analyses the table again (bench/PROFILE.md "Session 9"). These
// tests make the plans on a young table whose statistics are stale (autovacuum kept off it), let
// the table grow to 20,000 open rows, and count the rows the next batch of two reads: a probe of
// the primary key per member reads a handful, a scan reads them all. On PGlite too (the same SQL).

/** Rows read from `table` and its indexes so far in this transaction. */
async function rowsRead(q: Queryable, table: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(c.oid) + pg_stat_get_xact_tuples_fetched(c.oid)), 0)::int AS n
       FROM pg_class c
      WHERE c.oid = $1::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1::regclass)`,
    [table],
  );
  return rows[0].n;
}

/** A database of one connection (the prepared statements are per connection), and its closing. */
async function oneConnection(opts: { growthCheckMs?: number } = {}): Promise<{ db: Db; close: () => Promise<void> }> {
  const base = await createTestDb();
  if (!base.url) return { db: base, close: () => base.close() };
  const db = createPgDb(base.url, 1, opts);
  return {
    db,
    close: async () => {
      await db.close();
      await base.close();
    },
  };
}

let seq = 0;
async function insertPayments(db: Db, n: number, status: string): Promise<string[]> {
  const first = seq;
  seq += n;
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status,
                                    bank_code, expires_at)
     SELECT 'pay_plan_' || lpad(g::text, 8, '0'), 'TPLAN' || g, 'mer_plan', 'sto_plan', 'ter_plan_' || (g % 50),
            'upi_qr', 100, 'INR', $3, 'SIMBANK', now() + interval '10 minutes'
       FROM generate_series($1::int, $2::int) g
     RETURNING id`,
    [first, first + n - 1, status],
  );
  return rows.map((r) => r.id);
}

const move = (id: string) => ({
  id,
  bank_ref: null,
  next_check_at: new Date(Date.now() + 60_000),
  detail: null,
  now: new Date(),
  traceparent: null,
  bankAnswered: true,
});
const completion = (id: string) => ({
  id,
  u: { bank_ref: `BR${id.slice(-8)}`, response_code: '00', completed_at: new Date() },
  now: new Date(),
  source: 'callback',
  journalId: `jnl_${id}`,
  traceparent: null,
});
// No hooks, and a "ledger" that writes nothing (one row per completed member, as postEntriesSql
// answers): what is measured here is the reading of payments.payments.
const completionSql = { hooks: [], ledgerSql: () => '(SELECT journal_id FROM h)' };

test('batched moves and completions probe the primary key on a grown table with stale statistics', async () => {
  const { db, close } = await oneConnection();
  try {
    await db.exec('ALTER TABLE payments.payments SET (autovacuum_enabled = false)');
    // Analysed while no payment was open (a quiet night), then a burst of new payments.
    await insertPayments(db, 340, 'succeeded');
    await db.exec('ANALYZE payments.payments');
    const young = await insertPayments(db, 24, 'created');
    // More than five runs of each while the table is young: a prepared statement's plan is kept now.
    for (let i = 0; i < 24; i += 2) {
      const moved = await db.tx((tx) => movePendingMany(tx, [move(young[i]), move(young[i + 1])]));
      assert.equal(moved.length, 2);
    }
    for (let i = 0; i < 24; i += 2) {
      const done = await db.tx((tx) =>
        completeSucceededMany(tx, [completion(young[i]), completion(young[i + 1])], completionSql),
      );
      assert.deepEqual(
        done.map((r) => r?.status),
        ['succeeded', 'succeeded'],
      );
    }

    await insertPayments(db, 20_000, 'pending');
    const [a, b] = await insertPayments(db, 2, 'created');

    const moveRead = await db.tx(async (tx) => {
      const before = await rowsRead(tx, 'payments.payments');
      const moved = await movePendingMany(tx, [move(a), move(b)]);
      assert.deepEqual(moved.map((r) => r.id).sort(), [a, b]);
      return (await rowsRead(tx, 'payments.payments')) - before;
    });
    const completeRead = await db.tx(async (tx) => {
      const before = await rowsRead(tx, 'payments.payments');
      const done = await completeSucceededMany(tx, [completion(a), completion(b)], completionSql);
      assert.deepEqual(
        done.map((r) => r?.status),
        ['succeeded', 'succeeded'],
      );
      return (await rowsRead(tx, 'payments.payments')) - before;
    });
    // Two members: their two index entries and rows, and the history rows' foreign key checks.
    assert.ok(moveRead < 50, `the move of two payments read ${moveRead} rows of payments.payments`);
    assert.ok(completeRead < 50, `the completion of two payments read ${completeRead} rows of payments.payments`);
  } finally {
    await close();
  }
});

test("the request ledger's batch probes the primary key on a grown table with stale statistics", async () => {
  const { db, close } = await oneConnection();
  const ledger = ledgerStatements({
    table: 'terminals.requests',
    scope: 'terminal_id',
    key: 'request_id',
    response: 'response',
    label: 'type',
  });
  const claim = (key: string) => ({ scope: 'ter_plan', key, hash: 'h', label: 'create_payment' });
  const done = (key: string) => ({ scope: 'ter_plan', key, response: '{}' });
  try {
    await db.exec('ALTER TABLE terminals.requests SET (autovacuum_enabled = false)');
    await db.query(
      `INSERT INTO terminals.requests (terminal_id, request_id, type, request_hash, state, response, locked_until)
       SELECT 'ter_old', 'r' || g, 'create_payment', 'h', 'completed', '{}', now() FROM generate_series(1, 300) g`,
    );
    await db.exec('ANALYZE terminals.requests');
    // Each batch claims two new ids and completes the previous batch's two, as the batched writer does.
    for (let i = 0; i < 8; i++) {
      const won = await db.tx((tx) =>
        ledger.claimAndComplete(
          tx,
          [claim(`w${i}a`), claim(`w${i}b`)],
          i ? [done(`w${i - 1}a`), done(`w${i - 1}b`)] : [],
          30,
        ),
      );
      assert.equal(won.size, 2);
    }
    await db.query(
      `INSERT INTO terminals.requests (terminal_id, request_id, type, request_hash, state, locked_until)
       SELECT 'ter_' || (g % 500), 'g' || g, 'create_payment', 'h', 'in_progress', now() FROM generate_series(1, 20000) g`,
    );
    const read = await db.tx(async (tx) => {
      const before = await rowsRead(tx, 'terminals.requests');
      const won = await ledger.claimAndComplete(tx, [claim('n1'), claim('n2')], [done('w7a'), done('w7b')], 30);
      assert.equal(won.size, 2);
      return (await rowsRead(tx, 'terminals.requests')) - before;
    });
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM terminals.requests WHERE request_id IN ('w7a', 'w7b') AND state = 'completed'`,
    );
    assert.equal(rows[0].n, 2);
    assert.ok(read < 50, `the batch of two claims and two completions read ${read} rows of terminals.requests`);
  } finally {
    await close();
  }
});

test('batched statements are prepared as soon as the planner estimates their table grown', {
  skip: usingRealPostgres() ? false : 'PGlite plans every statement with its values',
}, async () => {
  const { db, close } = await oneConnection({ growthCheckMs: 0 });
  const lookUp = () => new Promise((r) => setTimeout(r, 100)); // the background look-up of the estimate
  const preparedMoves = async () =>
    (
      await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE '%''created'', ''pending'', ''api''%'`,
      )
    ).rows[0].n;
  try {
    // Never analysed, all along: the planner sizes the table from its pages as it is.
    await db.exec('ALTER TABLE payments.payments SET (autovacuum_enabled = false)');
    await insertPayments(db, 1000, 'succeeded');
    const open = await insertPayments(db, 20, 'created');
    const moveTwo = async (i: number) =>
      assert.equal((await movePendingMany(db, [move(open[i]), move(open[i + 1])])).length, 2);
    // 1,000 rows: young, so each batch is planned with its values.
    await moveTwo(0);
    await lookUp();
    await moveTwo(2);
    assert.equal(await preparedMoves(), 0);
    // 21,000 rows: the planner, sizing the table from its pages and the declared width of its
    // columns, estimates about 5,800 (these rows are narrower than it assumes).
    await insertPayments(db, 20_000, 'succeeded');
    await moveTwo(4); // finds out the table has grown
    await lookUp();
    await moveTwo(6);
    assert.equal(await preparedMoves(), 1, 'prepared long before its 5,000th call, with no ANALYZE');
    // Past the five runs after which a prepared statement may keep a generic plan, made at this size.
    for (let i = 8; i < 20; i += 2) await moveTwo(i);

    // The plan made at 21,000 rows still probes the primary key once the table has grown further.
    await insertPayments(db, 40_000, 'pending');
    const [a, b] = await insertPayments(db, 2, 'created');
    const read = await db.tx(async (tx) => {
      const before = await rowsRead(tx, 'payments.payments');
      assert.equal((await movePendingMany(tx, [move(a), move(b)])).length, 2);
      return (await rowsRead(tx, 'payments.payments')) - before;
    });
    assert.ok(read < 50, `the move of two payments read ${read} rows of payments.payments`);
    assert.equal(await preparedMoves(), 1);
  } finally {
    await close();
  }
});
