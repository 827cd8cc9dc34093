import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from './testing.ts';
import type { Db } from './db.ts';
import { createRequestLedger, IDEMPOTENCY_KEYS, pruneRequestLedger, type LedgerTable } from './requestLedger.ts';

// The request ledger's protocol (claim, conflict, replay, take-over, release, in progress), the
// same over both tables it serves: HTTP Idempotency-Keys (status and body kept) and terminal
// request ids (the terminals module's table: a label column, no status), unbatched and batched.

const TERMINAL_REQUESTS: LedgerTable = {
  table: 'terminals.requests',
  scope: 'terminal_id',
  key: 'request_id',
  response: 'response',
  label: 'type',
};

let db: Db;
before(async () => {
  db = await createTestDb();
});
after(() => db.close());

/** Makes a held claim look like one whose holder died CLAIM seconds ago. */
async function lapse(t: LedgerTable, scope: string, key: string) {
  await db.query(
    `UPDATE ${t.table} SET locked_until = now() - interval '1 second' WHERE ${t.scope} = $1 AND ${t.key} = $2`,
    [scope, key],
  );
}

for (const [name, table, batch] of [
  ['HTTP keys', IDEMPOTENCY_KEYS, false],
  ['HTTP keys, batched', IDEMPOTENCY_KEYS, true],
  ['terminal request ids', TERMINAL_REQUESTS, false],
  ['terminal request ids, batched', TERMINAL_REQUESTS, true],
] as const) {
  describe(`request ledger: ${name}`, () => {
    const ledger = () => createRequestLedger(db, table, { claimSeconds: 60, batch });
    const scope = `scope_${name.replace(/\W/g, '_')}`;
    const req = (key: string, hash = 'h1') => ({ scope, key, hash, label: 'payment.create' });

    test('the first claims; the same request again replays the stored response; another request conflicts', async () => {
      const l = ledger();
      assert.deepEqual(await l.begin(req('k1')), { outcome: 'claimed' });
      await l.complete({ scope, key: 'k1', response: '{"id":"pay_1"}', status: 201 });
      const again = await l.begin(req('k1'));
      assert.equal(again.outcome, 'replay');
      assert.equal(again.outcome === 'replay' && again.response, '{"id":"pay_1"}');
      assert.equal(again.outcome === 'replay' && again.status, table.status ? 201 : null);
      assert.deepEqual(await l.begin(req('k1', 'h2')), { outcome: 'conflict' });
      // Keys are per scope: the same key under another scope is its own.
      assert.deepEqual(await l.begin({ ...req('k1'), scope: `${scope}_other` }), { outcome: 'claimed' });
    });

    test('concurrent requests with one key: exactly one claims, the others find it in progress', async () => {
      const l = ledger();
      const results = await Promise.all(Array.from({ length: 8 }, () => l.begin(req('k2'))));
      assert.equal(results.filter((r) => r.outcome === 'claimed').length, 1);
      assert.equal(results.filter((r) => r.outcome === 'in_progress').length, 7);
    });

    test('a waiting request gets the response once the holder stores it', async () => {
      const l = ledger();
      assert.equal((await l.begin(req('k3'))).outcome, 'claimed');
      const waiting = l.begin(req('k3'), { waitMs: 5000 });
      setTimeout(() => void l.complete({ scope, key: 'k3', response: 'done', status: 200 }), 60);
      const r = await waiting;
      assert.equal(r.outcome, 'replay');
      assert.equal(r.outcome === 'replay' && r.response, 'done');
    });

    test('a waiting request gives up after waitMs', async () => {
      const l = ledger();
      assert.equal((await l.begin(req('k4'))).outcome, 'claimed');
      const started = Date.now();
      assert.deepEqual(await l.begin(req('k4'), { waitMs: 100 }), { outcome: 'in_progress' });
      assert.ok(Date.now() - started >= 100);
    });

    test('a lapsed claim is taken over by one retry; a live one is not', async () => {
      const l = ledger();
      assert.equal((await l.begin(req('k5'))).outcome, 'claimed');
      assert.equal((await l.begin(req('k5'))).outcome, 'in_progress');
      await lapse(table, scope, 'k5');
      const takers = await Promise.all(Array.from({ length: 4 }, () => l.begin(req('k5'))));
      assert.equal(takers.filter((r) => r.outcome === 'claimed').length, 1);
      // A lapsed claim with another request still conflicts: the key stays bound to its digest.
      await lapse(table, scope, 'k5');
      assert.deepEqual(await l.begin(req('k5', 'other')), { outcome: 'conflict' });
    });

    test('release lets the next request run; a stored response is never released', async () => {
      const l = ledger();
      assert.equal((await l.begin(req('k6'))).outcome, 'claimed');
      await l.release(scope, 'k6');
      assert.equal(await l.get(scope, 'k6'), undefined);
      assert.equal((await l.begin(req('k6'))).outcome, 'claimed');
      await l.complete({ scope, key: 'k6', response: 'final', status: 503 });
      await l.release(scope, 'k6');
      assert.equal((await l.get(scope, 'k6'))?.state, 'completed');
      assert.equal((await l.begin(req('k6'))).outcome, 'replay');
    });

    test('retention deletes old rows only', async () => {
      const l = ledger();
      await l.begin(req('old'));
      await l.begin(req('new'));
      await db.query(
        `UPDATE ${table.table} SET created_at = now() - interval '25 hours' WHERE ${table.scope} = $1 AND ${table.key} = 'old'`,
        [scope],
      );
      assert.ok((await pruneRequestLedger(db, table, 24)) >= 1);
      assert.equal(await l.get(scope, 'old'), undefined);
      assert.ok(await l.get(scope, 'new'));
    });
  });
}

test('batched: concurrent claims and completions share statements', async () => {
  const l = createRequestLedger(db, IDEMPOTENCY_KEYS, { claimSeconds: 60, batch: true });
  const won = await Promise.all(
    Array.from({ length: 30 }, (_, i) => l.claim({ scope: 'batch', key: `b${i}`, hash: 'h' })),
  );
  assert.ok(won.every(Boolean));
  await Promise.all(
    Array.from({ length: 30 }, (_, i) => l.complete({ scope: 'batch', key: `b${i}`, response: `r${i}`, status: 201 })),
  );
  const s = l.stats();
  assert.equal(s.claims + s.completions, 60);
  assert.ok(s.statements < 60, `${s.statements} statements for 60 writes`);
  const row = await l.get('batch', 'b7');
  assert.equal(row?.response, 'r7');
  assert.equal(row?.status, 201);
});

test('a table described with a name that is not a plain identifier is refused', () => {
  assert.throws(() =>
    createRequestLedger(db, { ...IDEMPOTENCY_KEYS, table: 'platform.x; DROP TABLE y' }, { claimSeconds: 1 }),
  );
  assert.throws(() => createRequestLedger(db, { ...IDEMPOTENCY_KEYS, key: 'key"' }, { claimSeconds: 1 }));
});
