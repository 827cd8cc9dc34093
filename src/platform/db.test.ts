import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from './testing.ts';
import { migrate } from './migrate.ts';

test('migrations apply once and int8 comes back as a number', async () => {
  const db = await createTestDb();
  try {
    assert.deepEqual(await migrate(db), [], 'second run applies nothing');
    const r = await db.query<{ v: number }>('SELECT 9007199254740991::int8 AS v');
    assert.equal(r.rows[0].v, Number.MAX_SAFE_INTEGER);
  } finally {
    await db.close();
  }
});

test('a failing transaction leaves nothing behind', async () => {
  const db = await createTestDb();
  try {
    await assert.rejects(
      db.tx(async (tx) => {
        await tx.query(`INSERT INTO platform.outbox (topic, key, payload) VALUES ('t', 'k', '{}')`);
        throw new Error('boom');
      }),
      /boom/,
    );
    const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM platform.outbox');
    assert.equal(r.rows[0].n, 0);
  } finally {
    await db.close();
  }
});

test('concurrent migrations from two handles are safe', async (t) => {
  if (!process.env.TEST_DATABASE_URL) return t.skip('needs a real PostgreSQL (TEST_DATABASE_URL)');
  const db = await createTestDb({ migrate: false });
  try {
    const { createPgDb } = await import('./db.ts');
    const other = createPgDb((db as { url?: string }).url!, 2);
    const [a, b] = await Promise.all([migrate(db), migrate(other)]);
    assert.equal(a.length + b.length > 0, true);
    assert.equal(a.length === 0 || b.length === 0, true, 'only one process applies the migrations');
    await other.close();
  } finally {
    await db.close();
  }
});
