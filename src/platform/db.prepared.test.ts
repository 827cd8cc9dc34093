import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createTestDb } from './testing.ts';
import { createPgDb } from './db.ts';

// Parameterised statements run as named prepared statements on PostgreSQL (db.ts). These tests
// prove that they are, and that a migration adding a column under a prepared `SELECT *` (as a
// newer release's start-up does while older processes still run) is survived, not turned into
// errors until restart.

const needsPg = (t: { skip(msg: string): void }) => {
  if (!process.env.TEST_DATABASE_URL) {
    t.skip('needs a real PostgreSQL (TEST_DATABASE_URL); PGlite has no prepared statements across calls');
    return true;
  }
  return false;
};

test('parameterised statements are prepared once per connection', async (t) => {
  if (needsPg(t)) return;
  const base = await createTestDb({ migrate: false });
  const db = createPgDb(base.url!, 1); // one connection, so every call below shares its session
  try {
    const sql = 'SELECT $1::int + 1 AS v';
    for (let i = 0; i < 3; i++) assert.equal((await db.query<{ v: number }>(sql, [i])).rows[0].v, i + 1);
    const r = await db.query<{ statement: string }>(
      `SELECT statement FROM pg_prepared_statements WHERE name LIKE 'tp\\_%'`,
    );
    assert.deepEqual(
      r.rows.map((x) => x.statement),
      [sql],
      'prepared once, under one name',
    );
  } finally {
    await db.close();
    await base.close();
  }
});

test('a statement run with unpreparedCalls is prepared only after that many calls, outside and inside a transaction', async (t) => {
  if (needsPg(t)) return;
  const base = await createTestDb({ migrate: false });
  const db = createPgDb(base.url!, 1);
  try {
    const sql = 'SELECT count(*)::int AS n FROM unnest($1::int[]) AS x(v) WHERE v > $2';
    const prepared = async () =>
      (await db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).rows.map(
        (x) => x.statement,
      );
    for (let i = 0; i < 6; i++) {
      assert.equal(
        (await db.query<{ n: number }>(sql, [[1, 2, 3], i], { unpreparedCalls: 8 })).rows[0].n,
        Math.max(3 - i, 0),
      );
    }
    const inTx = await db.tx((tx) => tx.query<{ n: number }>(sql, [[1, 2, 3], 1], { unpreparedCalls: 8 }));
    assert.equal(inTx.rows[0].n, 2);
    assert.deepEqual(await prepared(), [], 'seven calls as the unnamed statement, planned at each call');
    await db.query(sql, [[1], 0], { unpreparedCalls: 8 });
    assert.deepEqual(await prepared(), [], 'the eighth still');
    assert.equal((await db.query<{ n: number }>(sql, [[1, 2], 0], { unpreparedCalls: 8 })).rows[0].n, 2);
    assert.deepEqual(await prepared(), [sql], 'from the ninth on, prepared as any other statement');
  } finally {
    await db.close();
    await base.close();
  }
});

test('a column added under a prepared SELECT * is survived, outside and inside a transaction', async (t) => {
  if (needsPg(t)) return;
  const base = await createTestDb({ migrate: false });
  const db = createPgDb(base.url!, 1);
  try {
    await db.exec('CREATE TABLE widgets (id int PRIMARY KEY, name text); INSERT INTO widgets VALUES (1, $$one$$)');
    const sql = 'SELECT * FROM widgets WHERE id = $1';
    assert.deepEqual((await db.query(sql, [1])).rows, [{ id: 1, name: 'one' }]);
    await db.tx((tx) => tx.query(`${sql} FOR UPDATE`, [1]));

    // The hazard is real: a plain client holding the same kind of prepared statement fails.
    const raw = new pg.Client({ connectionString: base.url });
    await raw.connect();
    await raw.query({ name: 'raw_widgets', text: sql, values: [1] });

    await base.exec('ALTER TABLE widgets ADD COLUMN colour text');
    await assert.rejects(
      raw.query({ name: 'raw_widgets', text: sql, values: [1] }),
      /cached plan must not change result type/,
    );
    await raw.end();

    assert.deepEqual((await db.query(sql, [1])).rows, [{ id: 1, name: 'one', colour: null }]);
    const inTx = await db.tx((tx) => tx.query(`${sql} FOR UPDATE`, [1]));
    assert.deepEqual(inTx.rows, [{ id: 1, name: 'one', colour: null }]);
  } finally {
    await db.close();
    await base.close();
  }
});
