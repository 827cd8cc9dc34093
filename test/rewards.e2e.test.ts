import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { createApiKey } from '../src/modules/identity/index.ts';
import { runRewardsVerify } from '../src/modules/rewards/index.ts';
import { loadDemo } from '../src/roles/demo.ts';

// Reward points over real HTTP: programs and rules, earning on a QR payment paid through the
// bank simulator, redemption at the till as split tender, balance, statement, adjustments,
// quotes, permissions and bad input. PGlite, or PostgreSQL with TEST_DATABASE_URL.

describe('rewards over the HTTP API', () => {
  let t: TestApp;
  let merchantId: string;
  let terminalId: string;
  let programId: string;
  const logLines: string[] = [];
  const payer = 'meera.iyer@okhdfcbank';

  before(async () => {
    t = await startTestApp({ logLines });
    const s = await t.seedMerchant('Iyer Stores');
    merchantId = s.merchant.id;
    terminalId = s.terminal.id;
  });
  after(() => t.close());

  async function payQr(amount: number, who: string, rewards?: Record<string, unknown>) {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount,
      currency: 'INR',
      method: 'upi_qr',
      ...(rewards ? { rewards } : {}),
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const paid = await t.payQr(r.body.upi_uri, who, 'success');
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    const done = await t.eventually(async () => {
      const g = await t.request('GET', `/v1/payments/${r.body.id}`);
      return g.body.status === 'succeeded' ? g : undefined;
    });
    assert.ok(done, 'payment succeeded');
    return r.body.id as string;
  }
  const balance = async (vpa: string) =>
    (await t.request('GET', `/v1/rewards/balance?merchant_id=${merchantId}&vpa=${encodeURIComponent(vpa)}`)).body;

  test('a merchant program with its rules is created and read back', async () => {
    const r = await t.request('POST', '/v1/rewards/programs', {
      merchant_id: merchantId,
      name: 'Iyer Points',
      point_value_paise: 50,
      earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
      validity_days: 365,
      rules: [{ kind: 'cap_per_transaction', points: 500 }],
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    programId = r.body.id;
    assert.match(programId, /^prg_[0-9a-f]{32}$/);
    assert.equal(r.body.owner_merchant_id, merchantId);
    assert.deepEqual(r.body.earn, { points: 1, per_amount_paise: 1000, rounding: 'down' });
    assert.equal(r.body.pending_period_seconds, 0);
    const rule = await t.request('POST', `/v1/rewards/programs/${programId}/rules`, {
      kind: 'multiplier',
      multiplier_bp: 20_000,
      conditions: { mcc: ['5411'] },
      description: 'double points on groceries',
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    assert.equal(rule.body.multiplier_bp, 20_000);
    const rules = await t.request('GET', `/v1/rewards/programs/${programId}/rules`);
    assert.deepEqual(rules.body.data.map((x: { kind: string }) => x.kind).sort(), [
      'cap_per_transaction',
      'multiplier',
    ]);
    const again = await t.request('POST', '/v1/rewards/programs', {
      merchant_id: merchantId,
      name: 'Second',
      point_value_paise: 1,
      earn: { points: 1, per_amount_paise: 100, rounding: 'up' },
    });
    assert.equal(again.status, 409, 'a merchant is in one program at a time');
    const got = await t.request('GET', `/v1/rewards/programs/${programId}`);
    assert.equal(got.body.name, 'Iyer Points');
  });

  test('a QR payment earns for the payer, and the balance shows it', async () => {
    await payQr(12_345, payer); // ₹123.45 -> 12 points, x2 on MCC 5411
    assert.deepEqual(await balance(payer), { program_id: programId, available: 24, pending: 0, expiring_30d: 0 });
    assert.deepEqual(await balance('someone.else@okaxis'), {
      program_id: programId,
      available: 0,
      pending: 0,
      expiring_30d: 0,
    });
  });

  test('split tender at the till: points plus UPI for the rest, reserved then spent', async () => {
    const q = await t.request('GET', `/v1/rewards/quote?terminal_id=${terminalId}&amount=10000&vpa=${payer}`);
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.equal(q.body.max_redeem_points, 24);
    assert.equal(q.body.earn_points, 20);
    const q2 = await t.request(
      'GET',
      `/v1/rewards/quote?terminal_id=${terminalId}&amount=10000&vpa=${payer}&redeem_points=20`,
    );
    assert.equal(q2.body.upi_amount, 9_000);
    // Basket ₹100: 20 points × 50 paise = ₹10 by points, ₹90 by UPI.
    const id = await payQr(q2.body.upi_amount, payer, { vpa: payer, redeem_points: 20 });
    const pr = await t.request('GET', `/v1/rewards/payments/${id}`);
    assert.equal(pr.status, 200, JSON.stringify(pr.body));
    assert.equal(pr.body.redemption.status, 'committed');
    assert.equal(pr.body.redemption.value_paise, 1_000);
    assert.equal(pr.body.earned.points, 18);
    assert.equal((await balance(payer)).available, 24 - 20 + 18);
    const over = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 100,
      currency: 'INR',
      method: 'upi_qr',
      rewards: { vpa: payer, redeem_points: 1000 },
    });
    assert.equal(over.status, 409);
    assert.equal(over.body.error.code, 'insufficient_points');
    assert.deepEqual(over.body.error.details, { available: 22, requested: 1000 });
    const bad = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 100,
      currency: 'INR',
      method: 'upi_qr',
      rewards: { vpa: payer, redeem_points: 1, colour: 'red' },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'validation_failed');
    assert.equal((await runLedgerVerify(t.db)).ok, true);
    assert.equal((await runRewardsVerify(t.db)).ok, true);
  });

  test('a refund claws back pro rata and gives back redeemed points', async () => {
    const who = 'refund.me@okicici';
    const id = await payQr(40_000, who); // 80 points
    const r = await t.request('POST', `/v1/payments/${id}/refunds`, { amount: 10_000, reason: 'returned one item' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.status, 'succeeded');
    assert.equal((await balance(who)).available, 60);
    const st = await t.request('GET', `/v1/rewards/statement?merchant_id=${merchantId}&vpa=${who}`);
    assert.deepEqual(
      st.body.data.map((m: { kind: string; points: number }) => [m.kind, m.points]),
      [
        ['clawback', -20],
        ['earn', 80],
      ],
    );
  });

  test('adjustments: a reason, idempotent with a key, refused when they would overdraw', async () => {
    const who = 'goodwill@okaxis';
    const body = { merchant_id: merchantId, vpa: who, points: 30, reason: 'delivery was late' };
    const a = await t.request('POST', '/v1/rewards/adjustments', body, { 'idempotency-key': 'adj-1' });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(a.body.balance.available, 30);
    const replay = await t.request('POST', '/v1/rewards/adjustments', body, { 'idempotency-key': 'adj-1' });
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal((await balance(who)).available, 30, 'the replay credited nothing');
    const over = await t.request('POST', '/v1/rewards/adjustments', { ...body, points: -31 });
    assert.equal(over.status, 409);
    assert.equal(over.body.error.code, 'insufficient_points');
    const noReason = await t.request('POST', '/v1/rewards/adjustments', {
      merchant_id: merchantId,
      vpa: who,
      points: 5,
    });
    assert.equal(noReason.status, 400);
    const frac = await t.request('POST', '/v1/rewards/adjustments', { ...body, points: 1.5 });
    assert.equal(frac.status, 400);
    assert.equal(frac.body.error.code, 'validation_failed');
  });

  test('statements page with an opaque cursor', async () => {
    const who = 'pager@okaxis';
    for (let i = 1; i <= 3; i++)
      await t.request('POST', '/v1/rewards/adjustments', {
        merchant_id: merchantId,
        vpa: who,
        points: i,
        reason: `credit ${i}`,
      });
    const p1 = await t.request('GET', `/v1/rewards/statement?merchant_id=${merchantId}&vpa=${who}&limit=2`);
    assert.deepEqual(
      p1.body.data.map((m: { points: number }) => m.points),
      [3, 2],
    );
    assert.ok(p1.body.next_cursor);
    const p2 = await t.request(
      'GET',
      `/v1/rewards/statement?merchant_id=${merchantId}&vpa=${who}&limit=2&cursor=${p1.body.next_cursor}`,
    );
    assert.deepEqual(
      p2.body.data.map((m: { points: number }) => m.points),
      [1],
    );
    assert.equal(p2.body.next_cursor, null);
    const bad = await t.request('GET', `/v1/rewards/statement?merchant_id=${merchantId}&vpa=${who}&cursor=nonsense`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_cursor');
  });

  test('permissions and merchant scope', async () => {
    const other = await t.seedMerchant('Other Shop');
    const own = await createApiKey(t.db, {
      name: 'merchant key',
      merchantId,
      permissions: ['rewards:read', 'rewards:write'],
    });
    const readOnly = await createApiKey(t.db, { name: 'payments only', merchantId, permissions: ['payments:read'] });
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const mine = await t.request('GET', `/v1/rewards/balance?vpa=${payer}`, undefined, as(own.key));
    assert.equal(mine.status, 200, 'a merchant key is its own merchant');
    assert.equal(mine.body.program_id, programId);
    const theirs = await t.request(
      'GET',
      `/v1/rewards/balance?merchant_id=${other.merchant.id}&vpa=${payer}`,
      undefined,
      as(own.key),
    );
    assert.equal(theirs.status, 404);
    assert.equal(theirs.body.error.code, 'merchant_not_found');
    const noPerm = await t.request('GET', `/v1/rewards/balance?vpa=${payer}`, undefined, as(readOnly.key));
    assert.equal(noPerm.status, 403);
    const noKey = await fetch(`${t.url}/v1/rewards/balance?merchant_id=${merchantId}&vpa=${payer}`);
    assert.equal(noKey.status, 401);
    const noProgram = await t.request('GET', `/v1/rewards/balance?merchant_id=${other.merchant.id}&vpa=${payer}`);
    assert.equal(noProgram.status, 404);
    assert.equal(noProgram.body.error.code, 'program_not_found');
    const coalition = await t.request(
      'POST',
      '/v1/rewards/programs',
      { name: 'Coalition', point_value_paise: 10, earn: { points: 1, per_amount_paise: 100, rounding: 'down' } },
      as(own.key),
    );
    assert.equal(
      coalition.status,
      409,
      'a merchant key creates a program for its own merchant only (and it already has one)',
    );
    const list = await t.request('GET', '/v1/rewards/programs', undefined, as(own.key));
    assert.deepEqual(
      list.body.data.map((p: { id: string }) => p.id),
      [programId],
    );
    const unknown = await t.request('GET', '/v1/rewards/programs/prg_00000000000000000000000000000000');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'program_not_found');
  });

  test('bad input gets a precise 400', async () => {
    const cases: [string, string, unknown, string][] = [
      [
        'POST',
        '/v1/rewards/programs',
        {
          merchant_id: merchantId,
          name: 'x',
          point_value_paise: 0,
          earn: { points: 1, per_amount_paise: 100, rounding: 'down' },
        },
        'validation_failed',
      ],
      [
        'POST',
        '/v1/rewards/programs',
        { name: 'x', point_value_paise: 1, earn: { points: 1, per_amount_paise: 100, rounding: 'sideways' } },
        'validation_failed',
      ],
      [
        'POST',
        '/v1/rewards/programs',
        {
          name: 'x',
          point_value_paise: 1,
          earn: { points: 1, per_amount_paise: 100, rounding: 'down' },
          timezone: 'Mars/Olympus',
        },
        'validation_failed',
      ],
      [
        'POST',
        '/v1/rewards/programs',
        {
          name: 'x',
          point_value_paise: 1,
          earn: { points: 1, per_amount_paise: 100, rounding: 'down' },
          pending_period_seconds: 86_400,
          validity_days: 1,
        },
        'validation_failed',
      ],
      [
        'POST',
        `/v1/rewards/programs/${'PROGRAM'}/rules`,
        { kind: 'multiplier', multiplier_bp: 2 },
        'program_not_found',
      ],
      ['GET', `/v1/rewards/balance?merchant_id=${'MERCHANT'}&vpa=not-a-vpa`, undefined, 'invalid_vpa'],
      ['GET', `/v1/rewards/balance?merchant_id=${'MERCHANT'}&vpa=a@b&phone=9876543210`, undefined, 'validation_failed'],
      ['GET', `/v1/rewards/balance?merchant_id=${'MERCHANT'}&phone=12345`, undefined, 'validation_failed'],
    ];
    for (const [method, path, body, code] of cases) {
      const r = await t.request(
        method,
        path.replace('PROGRAM', 'prg_00000000000000000000000000000000').replace('MERCHANT', merchantId),
        body,
      );
      assert.equal(r.body.error?.code, code, `${method} ${path}: ${JSON.stringify(r.body)}`);
    }
    const rule = await t.request('POST', `/v1/rewards/programs/${programId}/rules`, {
      kind: 'multiplier',
      multiplier_bp: 20_000,
      conditions: { time_from: '10:00' },
    });
    assert.equal(rule.status, 400);
    assert.equal(rule.body.error.details[0].field, 'body.conditions.time_from');
  });

  test('the OpenAPI document describes the rewards field of a payment', async () => {
    const doc = await (await fetch(`${t.url}/openapi.json`)).json();
    const body = doc.paths['/v1/payments'].post.requestBody.content['application/json'].schema;
    assert.ok(body.properties.rewards, 'rewards is in the create-payment body');
    assert.match(body.properties.rewards.description, /`amount` is what the customer pays by UPI/);
    assert.ok(doc.paths['/v1/rewards/balance'].get);
  });

  test('no raw VPA reaches the logs or the rewards tables', async () => {
    assert.ok(logLines.length > 0);
    for (const line of logLines) assert.ok(!line.includes(payer), `log line carries the VPA: ${line.slice(0, 200)}`);
    const tables = await t.db.query<{ row: string }>(
      `SELECT row_to_json(x)::text AS row FROM (
         SELECT to_jsonb(c) AS r FROM rewards.customers c UNION ALL SELECT to_jsonb(m) FROM rewards.movements m
         UNION ALL SELECT to_jsonb(e) FROM rewards.earnings e UNION ALL SELECT to_jsonb(a) FROM rewards.adjustments a) x`,
    );
    for (const r of tables.rows)
      assert.ok(
        !r.row.includes('okhdfcbank') && !r.row.includes('okaxis') && !r.row.includes('okicici'),
        r.row.slice(0, 200),
      );
    // Balance and statement reads are personal-data access: audited, by query keys, never values.
    const audited = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE action = 'data.read' AND record LIKE '%rewards:read%'`,
    );
    assert.ok(audited.rows.length > 0, 'rewards reads are in the audit trail');
    for (const r of audited.rows) assert.ok(!r.record.includes(payer), 'the audit record names no VPA');
  });

  test('the demo merchant gets a program: 1 point per full ₹10, no pending period', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const demo = await loadDemo(t.db, { dataDir: mkdtempSync(join(tmpdir(), 'tillpoint-demo-')), apiUrl: t.url });
    const p = await t.request('GET', `/v1/rewards/balance?merchant_id=${demo.info.merchant_id}&vpa=${payer}`);
    assert.equal(p.status, 200, JSON.stringify(p.body));
    const prog = await t.request('GET', `/v1/rewards/programs/${p.body.program_id}`);
    assert.deepEqual(prog.body.earn, { points: 1, per_amount_paise: 1000, rounding: 'down' });
    assert.equal(prog.body.pending_period_seconds, 0);
    const again = await loadDemo(t.db, { dataDir: mkdtempSync(join(tmpdir(), 'tillpoint-demo-')), apiUrl: t.url });
    assert.equal(again.info.merchant_id, demo.info.merchant_id);
    const progs = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM rewards.programs WHERE owner_merchant_id = $1`,
      [demo.info.merchant_id],
    );
    assert.equal(progs.rows[0].n, 1, 'loading the demo twice makes one program');
  });
});
