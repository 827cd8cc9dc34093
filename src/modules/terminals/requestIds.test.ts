import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../../platform/testing.ts';
import { createRequestIdStore } from './requestIds.ts';
import { getRequest } from './terminals.repo.ts';

// Request-id claims and stored responses, batched: each write keeps its own outcome.

test('claims and responses asked for together share statements, and each keeps its own outcome', async () => {
  const db = await createTestDb();
  try {
    const store = createRequestIdStore(db, 60);
    const claim = (terminalId: string, requestId: string, hash = 'h') =>
      store.claim({ terminalId, requestId, type: 'payment.create', hash });
    // 40 distinct ids and the same id 5 times at once: every distinct one is claimed, the repeated one once.
    const distinct = await Promise.all(Array.from({ length: 40 }, (_, i) => claim(`trm_${i % 4}`, `r${i}`)));
    assert.ok(distinct.every(Boolean));
    const same = await Promise.all(Array.from({ length: 5 }, () => claim('trm_0', 'dup')));
    assert.equal(same.filter(Boolean).length, 1, 'one winner for one id');
    assert.equal(await claim('trm_0', 'r0'), false, 'an id claimed earlier is not claimed again');
    const s = store.stats();
    assert.equal(s.claims, 46);
    assert.ok(s.statements < s.claims, `batched: ${s.statements} statements for ${s.claims} claims`);

    // A response stored together with new claims.
    const [, won] = await Promise.all([
      store.complete({ terminalId: 'trm_1', requestId: 'r1', response: '{"ok":true}' }),
      claim('trm_9', 'new'),
    ]);
    assert.equal(won, true);
    const done = await getRequest(db, 'trm_1', 'r1');
    assert.equal(done?.state, 'completed');
    assert.equal(done?.response, '{"ok":true}');
    assert.equal((await getRequest(db, 'trm_2', 'r2'))?.state, 'in_progress');
  } finally {
    await db.close();
  }
});

test('a write that fails takes only itself down, not the writes batched with it', async () => {
  const db = await createTestDb();
  try {
    const store = createRequestIdStore(db, 60);
    const good = store.claim({ terminalId: 'trm_a', requestId: 'ok-1', type: 'payment.create', hash: 'h' });
    // NOT NULL violation. Its rejection is taken at once: it may settle before the good ones.
    const bad = assert.rejects(
      store.claim({ terminalId: 'trm_a', requestId: 'bad-1', type: null as unknown as string, hash: 'h' }),
    );
    const good2 = store.claim({ terminalId: 'trm_b', requestId: 'ok-2', type: 'payment.refund', hash: 'h' });
    assert.equal(await good, true);
    assert.equal(await good2, true);
    await bad;
    assert.equal(await getRequest(db, 'trm_a', 'bad-1'), undefined);
    assert.equal((await getRequest(db, 'trm_b', 'ok-2'))?.state, 'in_progress');
  } finally {
    await db.close();
  }
});
