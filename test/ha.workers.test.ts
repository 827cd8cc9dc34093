import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { createTestDb, usingRealPostgres } from '../src/platform/testing.ts';
import { createLease } from '../src/platform/leases.ts';
import { createLogger } from '../src/platform/log.ts';
import { createWorker, AUDIT_SIGNER_LEASE } from '../src/roles/worker.ts';
import type { Db } from '../src/platform/db.ts';

// Worker replicas side by side on one database (PGlite by default; the PostgreSQL at
// TEST_DATABASE_URL, where two workers really run at the same time, in CI): no status check is
// made twice, the audit trail has one writer at a time and a new one soon after the old one dies,
// and a job that throws does not stop the others.

const silent = createLogger({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('leases', () => {
  let db: Db;
  before(async () => {
    db = await createTestDb();
  });
  after(() => db.close());

  test('one holder at a time; renewal keeps it; another takes it only after it expired or was released', async () => {
    const a = createLease('test.one', { ttlSeconds: 2, holder: 'a' });
    const b = createLease('test.one', { ttlSeconds: 2, holder: 'b' });
    assert.equal(await a.acquire(db), true);
    assert.equal(await b.acquire(db), false, 'b cannot take a live lease');
    assert.equal(await a.acquire(db), true, 'the holder renews');
    assert.equal(a.held(), true);
    assert.equal(b.held(), false);
    // a dies (stops renewing): b takes over once the lease ran out on the database's clock.
    let tookAfterMs = 0;
    const t0 = Date.now();
    while (!(await b.acquire(db))) {
      await sleep(100);
      assert.ok(Date.now() - t0 < 15_000, 'b never took the lease over');
    }
    tookAfterMs = Date.now() - t0;
    assert.ok(tookAfterMs >= 1500, `b took the lease after ${tookAfterMs} ms, before it expired`);
    assert.equal(await a.acquire(db), false, 'a came back: the lease is b’s now');
    assert.equal(a.held(), false);
    // A clean stop hands it over at once.
    await b.release(db);
    assert.equal(await a.acquire(db), true);
    const row = (await db.query<{ holder: string }>(`SELECT holder FROM platform.leases WHERE name = 'test.one'`))
      .rows[0];
    assert.equal(row.holder, 'a');
  });

  test('of many asking at once, exactly one gets it', async () => {
    const leases = Array.from({ length: 8 }, (_, i) => createLease('test.race', { ttlSeconds: 30, holder: `h${i}` }));
    const got = await Promise.all(leases.map((l) => l.acquire(db)));
    assert.equal(got.filter(Boolean).length, 1);
  });
});

describe('worker jobs', () => {
  let db: Db;
  before(async () => {
    db = await createTestDb();
  });
  after(() => db.close());

  const payments = (
    overrides: Partial<Record<'runStatusChecks' | 'runExpiry' | 'runRefundChecks', () => Promise<number>>> = {},
  ) => ({
    runStatusChecks: async () => 0,
    runExpiry: async () => 0,
    runRefundChecks: async () => 0,
    updateReconciliationGauge: async () => {},
    ...overrides,
  });

  test('a job that throws is counted and logged; the others in the tick still run', async () => {
    const ran: string[] = [];
    const registry = new Registry();
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(s) } });
    const w = createWorker({
      db,
      logger,
      intervalMs: 1000,
      registry,
      audit: { runJobs: async () => ran.push('audit') },
      payments: payments({
        runStatusChecks: async () => {
          throw Object.assign(new Error('bank connection reset'), { code: 'ECONNRESET' });
        },
        runExpiry: async () => (ran.push('expiry'), 2),
        runRefundChecks: async () => (ran.push('refunds'), 0),
      }),
      rewards: { runJobs: async () => (ran.push('rewards'), { matured: 1, expired: 0 }) },
      vault: {
        runWorkerTick: async () => (ran.push('vault'), 0),
        updateMetrics: async () => void ran.push('vault_metrics'),
      },
    });
    const done = await w.runOnce();
    assert.deepEqual(ran, ['audit', 'expiry', 'refunds', 'rewards', 'vault', 'vault_metrics']);
    assert.equal(done.status_checks, -1);
    assert.equal(done.expiry, 2);
    const failures = await registry.getSingleMetric('tillpoint_worker_job_failures_total')!.get();
    assert.deepEqual(
      failures.values.map((v) => [v.labels.task, v.value]),
      [['status_checks', 1]],
    );
    const durations = await registry.getSingleMetric('tillpoint_worker_job_duration_seconds')!.get();
    const counted = new Set(
      durations.values
        .filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))
        .map((v) => v.labels.task),
    );
    for (const job of ['audit', 'status_checks', 'expiry', 'refund_checks', 'rewards', 'vault_rewrap'])
      assert.ok(counted.has(job), `no duration for ${job}`);
    const failed = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'worker job failed; will retry next tick');
    assert.equal(failed.job, 'status_checks');
    assert.equal(failed.err.code, 'ECONNRESET');
    assert.ok(
      !JSON.stringify(failed).includes('bank connection reset'),
      'error messages (which can carry values) are not logged',
    );
    await w.stop();
  });

  test('a stop lets the job in progress finish and hands the rest of the tick back', async () => {
    await db.query(`DELETE FROM platform.leases`);
    const ran: string[] = [];
    const w = createWorker({
      db,
      logger: silent,
      intervalMs: 1000,
      audit: {
        runJobs: async () => {
          ran.push('audit started');
          await sleep(300);
          ran.push('audit finished');
        },
      },
      payments: payments({ runStatusChecks: async () => (ran.push('status checks'), 0) }),
    });
    const tick = w.runOnce();
    await sleep(100);
    await w.stop();
    assert.deepEqual(ran, ['audit started', 'audit finished'], 'stop() returned after the job in progress finished');
    const done = await tick;
    assert.equal(done.status_checks, undefined, 'not started after the stop');
    assert.equal((await db.query(`SELECT 1 FROM platform.leases`)).rows.length, 0, 'the lease was handed back');
  });

  test('two workers: only the audit lease holder runs the audit jobs; a clean stop hands over at once, a dead holder within the lease', async () => {
    await db.query(`DELETE FROM platform.leases`);
    const runs = { a: 0, b: 0 };
    const make = (who: 'a' | 'b') =>
      createWorker({
        db,
        logger: silent,
        intervalMs: 1000,
        leaseSeconds: 2,
        payments: payments(),
        audit: { runJobs: async () => void runs[who]++ },
      });
    const a = make('a');
    const b = make('b');
    await a.runOnce();
    await b.runOnce();
    await a.runOnce();
    await b.runOnce();
    assert.deepEqual(runs, { a: 2, b: 0 }, 'a took the lease first and kept it');
    assert.equal(a.auditLease.held(), true);
    // a stops cleanly: the lease is released and b signs at its next tick.
    await a.stop();
    await b.runOnce();
    assert.equal(runs.b, 1);
    // b "dies" (no stop, no more ticks): a third worker takes over within the lease's 2 s.
    const c = createWorker({
      db,
      logger: silent,
      intervalMs: 1000,
      leaseSeconds: 2,
      payments: payments(),
      audit: { runJobs: async () => void (runs.a += 100) },
    });
    const t0 = Date.now();
    for (;;) {
      const done = await c.runOnce();
      if (done.audit !== undefined) break;
      assert.ok(Date.now() - t0 < 15_000, 'nobody took the audit lease over');
      await sleep(200);
    }
    const took = Date.now() - t0;
    assert.ok(took >= 1000 && took < 15_000, `took over after ${took} ms`);
    await c.stop();
    await b.stop();
  });
});

describe('two workers on one database, real payments', { timeout: 180_000 }, () => {
  let t: TestApp;
  before(async () => {
    // Due at once, then not again for 10 minutes: a payment checked twice in this test was
    // claimed by both workers.
    t = await startTestApp({ env: { STATUS_CHECK_FIRST_AFTER_SECONDS: '0', STATUS_CHECK_INTERVAL_SECONDS: '600' } });
  });
  after(() => t?.close());

  test('pending payments due for a status check: each is checked exactly once by one of the two workers', async () => {
    const { terminal } = await t.seedMerchant();
    const n = 40;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await t.request(
        'POST',
        '/v1/payments',
        { terminal_id: terminal.id, amount: 1000 + i, currency: 'INR', method: 'upi_qr' },
        { 'idempotency-key': `ha-${i}` },
      );
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids.push(r.body.id);
    }
    const mk = () => createWorker({ db: t.db, payments: t.app.services.payments, logger: silent, intervalMs: 1000 });
    const [w1, w2] = [mk(), mk()];
    // Both at the same moment, twice over (PGlite serialises them; PostgreSQL runs them together).
    const rounds = await Promise.all([w1.runOnce(), w2.runOnce(), w1.runOnce(), w2.runOnce()]);
    const checked = rounds.reduce((s, r) => s + (r.status_checks ?? 0), 0);
    const rows = (
      await t.db.query<{ id: string; status_checks: number; status: string }>(
        `SELECT id, status_checks, status FROM payments.payments WHERE id = ANY($1::text[])`,
        [ids],
      )
    ).rows;
    assert.equal(rows.length, n);
    for (const r of rows) assert.equal(Number(r.status_checks), 1, `${r.id} was checked ${r.status_checks} times`);
    assert.equal(checked, n, 'the workers together report one check per payment');
    if (usingRealPostgres())
      assert.ok(
        rounds.every((r) => r.status_checks !== -1),
        'no job failed',
      );
    await w1.stop();
    await w2.stop();
  });

  test('only one of two workers seals and signs the audit trail while both run', async () => {
    await t.db.query(`DELETE FROM platform.leases`);
    const mk = () =>
      createWorker({
        db: t.db,
        payments: t.app.services.payments,
        audit: t.app.services.audit,
        logger: silent,
        intervalMs: 1000,
        leaseSeconds: 120,
      }); // no expiry within the test, however slow the machine
    const [w1, w2] = [mk(), mk()];
    const ran = { w1: 0, w2: 0 };
    for (let i = 0; i < 3; i++) {
      const [r1, r2] = await Promise.all([w1.runOnce(), w2.runOnce()]);
      if (r1.audit !== undefined) ran.w1++;
      if (r2.audit !== undefined) ran.w2++;
    }
    assert.equal(ran.w1 + ran.w2, 3, 'every tick one of them ran the audit jobs');
    assert.ok(ran.w1 === 0 || ran.w2 === 0, `both ran the audit jobs: ${JSON.stringify(ran)}`);
    const lease = (
      await t.db.query<{ holder: string }>(`SELECT holder FROM platform.leases WHERE name = $1`, [AUDIT_SIGNER_LEASE])
    ).rows[0];
    assert.equal(lease.holder, (ran.w1 ? w1 : w2).auditLease.holder);
    await w1.stop();
    await w2.stop();
    assert.equal(
      (await t.db.query(`SELECT 1 FROM platform.leases WHERE name = $1`, [AUDIT_SIGNER_LEASE])).rows.length,
      0,
      'released on stop',
    );
  });
});
