import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../../platform/testing.ts';
import type { Db } from '../../platform/db.ts';
import { createApiKey, createApiKeyAuthenticator } from './apiKeys.ts';

// The authenticator's cache of API keys: one look-up per key at a time (every request of a
// partner carries the same key, and a look-up is an UPDATE of its row), a refresh ahead of
// expiry while the key is in use, and revocation within the cache's lifetime all the same.

const TTL = 5_000;

/** The database, counting the look-ups (UPDATEs of identity.api_keys) run through it. */
function counting(db: Db): { db: Db; lookups: () => number } {
  let n = 0;
  const counted = Object.create(db) as Db;
  counted.query = (sql, params, opts) => {
    if (sql.includes('UPDATE identity.api_keys')) n++;
    return db.query(sql, params, opts);
  };
  return { db: counted, lookups: () => n };
}

async function setUp() {
  const db = await createTestDb();
  const { key } = await createApiKey(db, { name: 'partner', merchantId: null, permissions: ['payments:write'] });
  let t = Date.parse('2026-12-04T12:00:00Z');
  const clock = {
    now: () => new Date(t),
    advance: (ms: number) => {
      t += ms;
    },
  };
  const c = counting(db);
  return { db, key, clock, lookups: c.lookups, auth: createApiKeyAuthenticator(c.db, clock.now) };
}

const many = <T>(n: number, f: () => Promise<T>) => Promise.all(Array.from({ length: n }, f));

test('concurrent requests with one key share one look-up, cold and after the entry expired', async () => {
  const { db, key, clock, lookups, auth } = await setUp();
  try {
    const first = await many(20, () => auth(key));
    assert.ok(first.every((p) => p?.kind === 'api_key'));
    assert.equal(lookups(), 1);

    clock.advance(TTL + 1);
    const again = await many(20, () => auth(key));
    assert.ok(again.every((p) => p?.kind === 'api_key'));
    assert.equal(lookups(), 2);
  } finally {
    await db.close();
  }
});

test('a key used in the last second of its entry is looked up again in the background', async () => {
  const { db, key, clock, lookups, auth } = await setUp();
  try {
    await auth(key);
    clock.advance(TTL - 500);
    assert.equal((await many(5, () => auth(key))).length, 5); // answered from the cache
    await new Promise((r) => setTimeout(r, 50)); // the refresh, begun by the first of them
    assert.equal(lookups(), 2);
    clock.advance(1_000); // past the first entry's end, within the refreshed one's
    assert.equal((await auth(key))?.kind, 'api_key');
    assert.equal(lookups(), 2);
  } finally {
    await db.close();
  }
});

test('a key revoked elsewhere stops working when its entry ends; here, at once', async () => {
  const { db, key, clock, auth } = await setUp();
  try {
    assert.equal((await auth(key))?.kind, 'api_key');
    await db.query(`UPDATE identity.api_keys SET revoked_at = now()`);
    // Another replica revoked it: this one finds out when its entry ends, not before.
    clock.advance(TTL - 2_000);
    assert.equal((await auth(key))?.kind, 'api_key');
    clock.advance(2_001);
    assert.equal(await auth(key), null);

    // Revoked in this process: invalidate() forgets the entry and any look-up in flight.
    await db.query(`UPDATE identity.api_keys SET revoked_at = NULL`);
    clock.advance(TTL + 1);
    assert.equal((await auth(key))?.kind, 'api_key');
    const inFlight = auth(key); // a cache hit: answered as it was
    await db.query(`UPDATE identity.api_keys SET revoked_at = now()`);
    auth.invalidate();
    assert.equal((await inFlight)?.kind, 'api_key');
    assert.equal(await auth(key), null);
  } finally {
    await db.close();
  }
});
