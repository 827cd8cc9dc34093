import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { useTestDb } from '../../platform/testing.ts';
import { createLogger } from '../../platform/log.ts';
import { createOutboxRelay } from './outboxRelay.ts';
import { eventTopic } from './topics.ts';

// The relay over a real database (PGlite, or PostgreSQL with TEST_DATABASE_URL, where several
// replicas really do contend for rows with FOR UPDATE SKIP LOCKED).

const logger = createLogger({ level: 'silent' });
const term = (i: number) => `trm_${i.toString(16).padStart(32, '0')}`;

describe('outbox relay', () => {
  const db = useTestDb();

  async function enqueue(n: number, topic = 'payment.updated') {
    await db.tx(async (tx) => {
      for (let i = 0; i < n; i++) {
        await tx.query(`INSERT INTO platform.outbox (topic, key, payload) VALUES ($1, $2, $3)`, [
          topic,
          term(i % 7),
          JSON.stringify({
            payment_id: `pay_${i}`,
            status: 'succeeded',
            amount: 100 + i,
            at: new Date().toISOString(),
          }),
        ]);
      }
    });
  }
  const unpublished = async () =>
    (
      await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM platform.outbox WHERE published_at IS NULL AND topic = 'payment.updated'`,
      )
    ).rows[0].n;

  test("publishes committed payment.updated rows to the terminal's /evt in order, marks them, leaves other topics alone", async () => {
    await enqueue(5);
    await enqueue(2, 'rewards.earned');
    const sent: { topic: string; msg: any }[] = [];
    const relay = createOutboxRelay({
      db,
      logger,
      batchSize: 100,
      pollMs: 10,
      publish: async (topic, payload) => void sent.push({ topic, msg: JSON.parse(payload) }),
    });
    assert.equal(await relay.runOnce(), 5);
    assert.equal(sent.length, 5);
    assert.deepEqual(
      sent.map((s) => s.msg.body.amount),
      [100, 101, 102, 103, 104],
    );
    assert.equal(sent[0].topic, eventTopic(term(0)));
    assert.equal(sent[0].msg.type, 'payment.updated');
    assert.equal(sent[0].msg.v, 1);
    assert.ok(
      sent.every((s, i) => i === 0 || s.msg.seq > sent[i - 1].msg.seq),
      'seq increases',
    );
    assert.equal(await unpublished(), 0);
    assert.equal(await relay.runOnce(), 0, 'nothing twice');
    const other = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM platform.outbox WHERE topic = 'rewards.earned' AND published_at IS NULL`,
    );
    assert.equal(other.rows[0].n, 2);
  });

  test('a rolled-back change leaves no event; a broker failure leaves the rows for the next attempt', async () => {
    await assert.rejects(
      db.tx(async (tx) => {
        await tx.query(`INSERT INTO platform.outbox (topic, key, payload) VALUES ('payment.updated', $1, '{}')`, [
          term(1),
        ]);
        throw new Error('the payment change failed');
      }),
    );
    assert.equal(await unpublished(), 0);

    await enqueue(3);
    let fail = true;
    const sent: string[] = [];
    const relay = createOutboxRelay({
      db,
      logger,
      batchSize: 100,
      pollMs: 10,
      publish: async (_t, payload) => {
        if (fail) throw new Error('broker down');
        sent.push(payload);
      },
    });
    await assert.rejects(relay.runOnce(), /broker down/);
    assert.equal(await unpublished(), 3, 'still waiting');
    fail = false;
    assert.equal(await relay.runOnce(), 3);
    assert.equal(sent.length, 3);
  });

  test('a broker that never answers times the batch out instead of holding the rows forever', async () => {
    await enqueue(1);
    const relay = createOutboxRelay({
      db,
      logger,
      batchSize: 10,
      pollMs: 10,
      publishTimeoutMs: 50,
      publish: () => new Promise(() => {}),
    });
    await assert.rejects(relay.runOnce(), /within 50 ms/);
    assert.equal(await unpublished(), 1);
    const ok = createOutboxRelay({ db, logger, batchSize: 10, pollMs: 10, publish: async () => {} });
    assert.equal(await ok.runOnce(), 1);
  });

  test('three replicas publish every row exactly once', async () => {
    await enqueue(300);
    const seen = new Map<number, number>();
    const replicas = [0, 1, 2].map(() =>
      createOutboxRelay({
        db,
        logger,
        batchSize: 25,
        pollMs: 5,
        publish: async (_t, payload) => {
          const seq = JSON.parse(payload).seq as number;
          seen.set(seq, (seen.get(seq) ?? 0) + 1);
          await new Promise((r) => setImmediate(r));
        },
      }),
    );
    for (const r of replicas) r.start();
    const end = Date.now() + 15_000;
    while ((await unpublished()) > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(replicas.map((r) => r.stop()));
    assert.equal(await unpublished(), 0);
    assert.equal(seen.size, 300);
    assert.ok(
      [...seen.values()].every((n) => n === 1),
      'no row published twice',
    );
  });
});
