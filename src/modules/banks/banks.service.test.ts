import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../../platform/testing.ts';
import { loadConfig } from '../../config.ts';
import { AppError } from '../../platform/errors.ts';
import { fixedClock } from '../../platform/clock.ts';
import { signRequest } from '../../platform/signing.ts';
import { BankCallError, createBanksService } from './index.ts';

const BANKS = JSON.stringify([
  { code: 'HDFCX', connector: 'simbank', url: 'http://127.0.0.1:9/sim', secret: 'h-new', previous_secret: 'h-old' },
  { code: 'ICICX', connector: 'simbank', url: 'http://127.0.0.1:9/sim', secret: 'i-secret' },
  { code: 'AXISX', connector: 'simbank', url: 'http://127.0.0.1:9/sim', secret: 'a-secret' },
]);
const config = loadConfig({ NODE_ENV: 'test', BANKS, BANK_FALLBACK_ORDER: 'AXISX,HDFCX,ICICX' });

async function withService(
  fn: (s: ReturnType<typeof createBanksService>, db: Awaited<ReturnType<typeof createTestDb>>) => Promise<void>,
) {
  const db = await createTestDb();
  try {
    await fn(createBanksService({ db, config }), db);
  } finally {
    await db.close();
  }
}

const isCode = (code: string) => (e: unknown) => e instanceof AppError && e.code === code;

test('route: the acquiring bank when up, else the fallback order, else bank_unavailable', async () => {
  await withService(async (banks) => {
    assert.equal((await banks.route('ICICX')).code, 'ICICX');
    await banks.markDown('ICICX', 'timeouts above threshold');
    assert.equal((await banks.route('ICICX')).code, 'AXISX', 'first of the fallback order');
    await banks.markDown('AXISX', 'maintenance');
    assert.equal((await banks.route('ICICX')).code, 'HDFCX', 'next in order, skipping the down one');
    assert.equal((await banks.route('HDFCX')).code, 'HDFCX');
    await banks.markDown('HDFCX', 'outage');
    await assert.rejects(banks.route('ICICX'), isCode('bank_unavailable'));
    await banks.markUp('ICICX');
    assert.equal((await banks.route('HDFCX')).code, 'ICICX');
  });
});

test('status is shared through the database (another replica sees it)', async () => {
  await withService(async (banks, db) => {
    const otherReplica = createBanksService({ db, config });
    await banks.markDown('HDFCX', 'outage');
    assert.equal((await otherReplica.route('HDFCX')).code, 'AXISX');
    const s = await otherReplica.statuses();
    assert.deepEqual(
      s.map((x) => [x.code, x.status, x.reason]),
      [
        ['HDFCX', 'down', 'outage'],
        ['ICICX', 'up', null],
        ['AXISX', 'up', null],
      ],
    );
    assert.ok(s[0].changedAt instanceof Date);
  });
});

test('unknown bank codes are not_found everywhere', async () => {
  await withService(async (banks) => {
    assert.throws(() => banks.connector('NOPE'), isCode('not_found'));
    await assert.rejects(banks.route('NOPE'), isCode('not_found'));
    await assert.rejects(banks.markDown('NOPE', 'x'), isCode('not_found'));
    await assert.rejects(banks.verifyCallback('NOPE', {}, '{}'), isCode('not_found'));
  });
});

test('an unknown connector name stops start-up', () => {
  const bad = loadConfig({
    NODE_ENV: 'test',
    BANKS: JSON.stringify([{ code: 'X1', connector: 'nosuch', url: 'http://x', secret: 's' }]),
  });
  assert.throws(
    () =>
      createBanksService({ db: { query: async () => ({ rows: [], rowCount: 0 }), exec: async () => {} }, config: bad }),
    /unknown connector/,
  );
});

const callback = JSON.stringify({
  type: 'payment',
  txn_ref: 'TP0001',
  amount: '149.00',
  response_code: '00',
  bank_ref: '123456789012',
  payer_vpa: 'ravi@okbank',
});

test('verifyCallback: current and previous secret accepted, replay and wrong secret refused', async () => {
  await withService(async (banks, db) => {
    const cb = await banks.verifyCallback('HDFCX', signRequest('h-new', callback), callback, '10.1.1.1');
    assert.deepEqual(cb, {
      kind: 'payment',
      ref: 'TP0001',
      result: {
        outcome: 'success',
        responseCode: '00',
        bankRef: '123456789012',
        payerVpa: 'ravi@okbank',
        message: 'success',
        amountPaise: 14900,
      },
    });
    // Rotation overlap: the bank still signs with the old secret.
    await banks.verifyCallback('HDFCX', signRequest('h-old', callback), callback);
    // Another bank's secret does not work for this bank.
    await assert.rejects(
      banks.verifyCallback('HDFCX', signRequest('i-secret', callback), callback),
      isCode('invalid_signature'),
    );
    const replay = signRequest('i-secret', callback);
    await banks.verifyCallback('ICICX', replay, callback);
    await assert.rejects(banks.verifyCallback('ICICX', replay, callback), isCode('replayed_request'));
    const r = await db.query<{ scope: string; reason: string }>(
      'SELECT scope, reason FROM platform.rejected_calls ORDER BY id',
    );
    assert.deepEqual(r.rows, [
      { scope: 'bank:HDFCX', reason: 'bad_signature' },
      { scope: 'bank:ICICX', reason: 'replayed_nonce' },
    ]);
  });
});

test('verifyCallback: a signed but malformed body is refused after verification, and recorded', async () => {
  await withService(async (banks, db) => {
    await assert.rejects(
      banks.verifyCallback('ICICX', signRequest('i-secret', 'not json'), 'not json'),
      isCode('malformed_json'),
    );
    const junk = JSON.stringify({ type: 'payment' });
    await assert.rejects(banks.verifyCallback('ICICX', signRequest('i-secret', junk), junk), isCode('malformed_json'));
    const r = await db.query<{ reason: string }>(
      `SELECT reason FROM platform.rejected_calls WHERE scope = 'bank:ICICX'`,
    );
    assert.deepEqual(
      r.rows.map((x) => x.reason),
      ['malformed_body', 'malformed_body'],
    );
  });
});

test('verifyCallback uses the service clock for freshness; pruneNonces keeps 2×maxAge', async () => {
  const db = await createTestDb();
  try {
    const clock = fixedClock('2026-03-01T10:00:00Z');
    const banks = createBanksService({ db, config, clock });
    const h = signRequest('i-secret', callback, clock.now());
    clock.advance((config.callbacks.maxAgeSeconds + 1) * 1000);
    await assert.rejects(banks.verifyCallback('ICICX', h, callback), isCode('invalid_signature'));
    await banks.verifyCallback('ICICX', signRequest('i-secret', callback, clock.now()), callback);
    clock.advance(config.callbacks.maxAgeSeconds * 1000);
    assert.equal(await banks.pruneNonces(), 0, 'still inside 2×maxAge');
    clock.advance(config.callbacks.maxAgeSeconds * 1000 + 1000);
    assert.equal(await banks.pruneNonces(), 1);
  } finally {
    await db.close();
  }
});

test('success-rate routing: the best bank gets most payments, the rest an exploration share; shown in routing()', async () => {
  const db = await createTestDb();
  try {
    const cfg = loadConfig({
      NODE_ENV: 'test',
      BANKS,
      BANK_FALLBACK_ORDER: 'AXISX,HDFCX,ICICX',
      BANK_ROUTING_RULE: 'success_rate',
      BANK_ROUTING_EXPLORATION: '0.3',
      BANK_BREAKER_MIN_CALLS: '1000',
      BANK_BREAKER_CONSECUTIVE: '1000',
    });
    // ok(): whether the next status query succeeds.
    const answer = (code: string, ok: () => boolean) => ({
      code,
      registerIntent: async () => ({}),
      sendCollect: async () => ({ outcome: 'pending' as const, responseCode: '01' }),
      checkStatus: async () => {
        if (!ok()) throw new BankCallError('uncertain', 'timeout', { timeout: true });
        return { outcome: 'success' as const, responseCode: '00' };
      },
      refund: async () => ({ outcome: 'success' as const, responseCode: '00' }),
      checkRefundStatus: async () => ({ outcome: 'success' as const, responseCode: '00' }),
    });
    let x = 0;
    let axis = false;
    const banks = createBanksService({
      db,
      config: cfg,
      connectors: {
        HDFCX: answer('HDFCX', () => false),
        ICICX: answer('ICICX', () => true),
        AXISX: answer('AXISX', () => (axis = !axis)),
      },
      rng: () => (x = (x + 0.37) % 1),
    });
    // ICICX: 10 ok; AXISX: 5 ok, 5 timeouts; HDFCX: 10 timeouts.
    for (let i = 0; i < 10; i++) {
      await banks.connector('ICICX').checkStatus('t');
      await banks
        .connector('AXISX')
        .checkStatus('t')
        .catch(() => undefined);
      await assert.rejects(banks.connector('HDFCX').checkStatus('t'));
    }
    const view = banks.routing('HDFCX');
    assert.equal(view.rule, 'success_rate');
    assert.match(view.description, /70% to the bank with the best success rate/);
    const w = Object.fromEntries(view.banks.map((b) => [b.code, b.weight]));
    assert.deepEqual(w, { HDFCX: 0.1, ICICX: 0.8, AXISX: 0.1 });
    const picks: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const c = (await banks.route('HDFCX', new Set())).code;
      picks[c] = (picks[c] ?? 0) + 1;
    }
    assert.ok(picks.ICICX >= 70 && picks.ICICX <= 90, JSON.stringify(picks));
    assert.ok(
      (picks.HDFCX ?? 0) > 0 && (picks.AXISX ?? 0) > 0,
      `every bank keeps being tried: ${JSON.stringify(picks)}`,
    );
    // Marked down: out, whatever its rate.
    const noIcic = new Set(['ICICX']);
    for (let i = 0; i < 20; i++) assert.notEqual((await banks.route('HDFCX', noIcic)).code, 'ICICX');
  } finally {
    await db.close();
  }
});
