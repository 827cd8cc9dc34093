import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from './testing.ts';
import { fromDatabaseError } from './errors.ts';

// The backstop behind the HTTP check: whatever NUL still reaches the database (another
// transport, a future route) is a 400 with a stable code, not a 500.
test('PostgreSQL refusing a NUL (22021 in text, 22P05 in jsonb) maps to invalid_characters', async () => {
  const db = await createTestDb();
  try {
    for (const [sql, param] of [
      [`SELECT $1::text AS v`, 'a\u0000b'],
      [`SELECT $1::jsonb AS v`, '{"a":"x\\u0000y"}'],
    ] as const) {
      const e = await db.query(sql, [param]).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(e, `${sql} refused`);
      assert.equal(
        fromDatabaseError(e)?.code,
        'invalid_characters',
        `${sql}: SQLSTATE ${(e as { code?: string }).code}`,
      );
    }
  } finally {
    await db.close();
  }
});
