import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, httpJson, type TestApp } from '../../../test/helpers/harness.ts';
import { createApiKey } from '../identity/index.ts';

// Merchants over the API: create, get, list (cursor pagination), update; validation with stable
// codes; the settlement account encrypted at rest and masked in every answer; a merchant key
// sees and changes only its own merchant (and its stores and terminals), and never learns
// whether another merchant's exists.

let t: TestApp;
let seq = 0;
const uniqueVpa = () => `shop${process.pid}x${seq++}@simbank`;
const newMerchant = (over: Record<string, unknown> = {}) => ({
  name: 'Kirana Stores',
  vpa: uniqueVpa(),
  mcc: '5411',
  acquiring_bank: 'SIMBANK',
  ...over,
});

before(async () => {
  t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
});
after(() => t.close());

/** A merchant key (every merchant and terminal permission) for `merchantId`. */
async function merchantKey(merchantId: string) {
  const k = await createApiKey(t.db, {
    name: 'merchant test key',
    merchantId,
    permissions: ['merchants:read', 'merchants:write', 'terminals:read', 'terminals:write'],
  });
  return (method: string, path: string, body?: unknown) =>
    httpJson(t.url + path, method, body, { authorization: `Bearer ${k.key}` });
}

describe('merchants', () => {
  test('create and get: the VPA is kept lower-case, the answer has the documented shape, the audit trail has it', async () => {
    const vpa = uniqueVpa().toUpperCase();
    const r = await t.request('POST', '/v1/merchants', newMerchant({ vpa }));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.match(r.body.id, /^mer_[0-9a-f]{32}$/);
    assert.equal(r.body.vpa, vpa.toLowerCase());
    assert.equal(r.body.status, 'active');
    assert.equal(r.body.settlement_account, null);
    const got = await t.request('GET', `/v1/merchants/${r.body.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, r.body);
    const audit = await t.db.query<{ action: string }>(`SELECT action FROM audit.events WHERE resource_id = $1`, [
      r.body.id,
    ]);
    assert.deepEqual(
      audit.rows.map((x) => x.action),
      ['merchant.created'],
    );
  });

  test('bad input gets a 4xx with a stable code and creates nothing', async () => {
    const before = Number((await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM merchants.merchants`)).rows[0].n);
    const cases: [string, Record<string, unknown>, number, string, string?][] = [
      ['VPA without a handle', { vpa: 'not-a-vpa' }, 400, 'invalid_vpa'],
      ['VPA with spaces', { vpa: 'shop one@simbank' }, 400, 'invalid_vpa'],
      ['MCC not 4 digits', { mcc: '541' }, 400, 'validation_failed', 'body.mcc'],
      ['MCC with letters', { mcc: '54A1' }, 400, 'validation_failed', 'body.mcc'],
      ['unknown acquiring bank', { acquiring_bank: 'NOBANK' }, 400, 'validation_failed', 'body.acquiring_bank'],
      [
        'IFSC without the 0 in 5th place',
        { settlement_account: { account_number: '123456789012', ifsc: 'HDFC1001234' } },
        400,
        'validation_failed',
        'body.settlement_account.ifsc',
      ],
      [
        'account number too short',
        { settlement_account: { account_number: '12345', ifsc: 'HDFC0001234' } },
        400,
        'validation_failed',
        'body.settlement_account.account_number',
      ],
      ['a field the API does not know', { gstin: '27AAPFU0939F1ZV' }, 400, 'validation_failed', 'body.gstin'],
      ['empty name', { name: '' }, 400, 'validation_failed', 'body.name'],
    ];
    for (const [what, over, status, code, field] of cases) {
      const r = await t.request('POST', '/v1/merchants', newMerchant(over));
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, code, what);
      if (field)
        assert.ok(
          r.body.error.details.some((d: { field: string }) => d.field === field),
          `${what}: ${JSON.stringify(r.body.error.details)}`,
        );
    }
    const missing = await t.request('POST', '/v1/merchants', {
      name: 'x',
      vpa: uniqueVpa(),
      acquiring_bank: 'SIMBANK',
    });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.code, 'validation_failed');
    assert.deepEqual(missing.body.error.details, [{ field: 'body.mcc', problem: "must have required property 'mcc'" }]);
    const after = Number((await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM merchants.merchants`)).rows[0].n);
    assert.equal(after, before, 'nothing written');
  });

  test('the settlement account is encrypted in the table, masked in answers, and opened only by settlement', async () => {
    const account = '004512349876';
    const ifsc = 'HDFC0004321';
    const r = await t.request(
      'POST',
      '/v1/merchants',
      newMerchant({ settlement_account: { account_number: account, ifsc } }),
    );
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual(r.body.settlement_account, { account_number: '******9876', ifsc: 'HDFC*******' });
    assert.deepEqual((await t.request('GET', `/v1/merchants/${r.body.id}`)).body.settlement_account, {
      account_number: '******9876',
      ifsc: 'HDFC*******',
    });

    // Neither the account nor the IFSC is anywhere in the merchant's row or the audit trail.
    const row = await t.db.query<{ j: string }>(
      `SELECT row_to_json(m)::text AS j FROM merchants.merchants m WHERE id = $1`,
      [r.body.id],
    );
    assert.ok(!row.rows[0].j.includes(account), 'account number not stored raw');
    assert.ok(!row.rows[0].j.includes(ifsc), 'IFSC not stored raw');
    const cts = await t.db.query<{ a: string | null; i: string | null }>(
      `SELECT settlement_account_ct AS a, settlement_ifsc_ct AS i FROM merchants.merchants WHERE id = $1`,
      [r.body.id],
    );
    assert.ok(cts.rows[0].a && cts.rows[0].i, 'ciphertexts stored');
    const audit = await t.db.query<{ j: string }>(
      `SELECT row_to_json(e)::text AS j FROM audit.events e WHERE resource_id = $1`,
      [r.body.id],
    );
    for (const e of audit.rows) assert.ok(!e.j.includes(account) && !e.j.includes(ifsc));

    // The one reader: in-process, audited.
    const merchants = t.app.services.merchants;
    assert.deepEqual(await merchants.getSettlementAccount(r.body.id, 'payout test'), { account_number: account, ifsc });
    const reads = await t.db.query(
      `SELECT 1 FROM audit.events WHERE resource_id = $1 AND action = 'merchant.settlement_account.read'`,
      [r.body.id],
    );
    assert.equal(reads.rows.length, 1);

    // A ciphertext moved to another merchant's row does not open there (bound to the merchant id).
    const other = await t.request('POST', '/v1/merchants', newMerchant());
    await t.db.query(
      `UPDATE merchants.merchants SET settlement_account_ct = $2, settlement_ifsc_ct = $3 WHERE id = $1`,
      [other.body.id, cts.rows[0].a, cts.rows[0].i],
    );
    await assert.rejects(merchants.getSettlementAccount(other.body.id, 'payout test'));
  });

  test('update: name, bank and settlement account; an empty patch or an unknown bank is refused', async () => {
    const m = (await t.request('POST', '/v1/merchants', newMerchant())).body;
    const r = await t.request('PATCH', `/v1/merchants/${m.id}`, {
      name: 'Kirana Stores (Pune)',
      settlement_account: { account_number: '99887766554', ifsc: 'ICIC0000099' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.name, 'Kirana Stores (Pune)');
    assert.equal(r.body.vpa, m.vpa, 'untouched fields stay');
    assert.deepEqual(r.body.settlement_account, { account_number: '******6554', ifsc: 'ICIC*******' });
    assert.deepEqual(await t.app.services.merchants.getSettlementAccount(m.id, 'payout test'), {
      account_number: '99887766554',
      ifsc: 'ICIC0000099',
    });

    const empty = await t.request('PATCH', `/v1/merchants/${m.id}`, {});
    assert.equal(empty.status, 400);
    assert.equal(empty.body.error.code, 'validation_failed');
    const bank = await t.request('PATCH', `/v1/merchants/${m.id}`, { acquiring_bank: 'NOBANK' });
    assert.equal(bank.status, 400);
    assert.equal(bank.body.error.code, 'validation_failed');
    const vpa = await t.request('PATCH', `/v1/merchants/${m.id}`, { vpa: uniqueVpa() });
    assert.equal(vpa.status, 400, 'the VPA is not changed by a patch');
    assert.equal(vpa.body.error.code, 'validation_failed');

    const suspended = await t.request('PATCH', `/v1/merchants/${m.id}`, { status: 'suspended' });
    assert.equal(suspended.body.status, 'suspended');
    const actions = await t.db.query<{ action: string }>(
      `SELECT action FROM audit.events WHERE resource_id = $1 AND action = 'merchant.updated'`,
      [m.id],
    );
    assert.equal(actions.rows.length, 2);
    assert.equal(
      (await t.request('GET', '/v1/merchants/mer_00000000000000000000000000000000')).body.error.code,
      'merchant_not_found',
    );
    assert.equal((await t.request('PATCH', '/v1/merchants/nonsense', { name: 'x' })).status, 404);
  });

  test('list: newest first, cursor pagination walks every merchant once, a forged cursor is refused', async () => {
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await t.request('POST', '/v1/merchants', newMerchant())).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2';
      const r = await t.request('GET', `/v1/merchants${q}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.data.length <= 2);
      seen.push(...r.body.data.map((m: { id: string }) => m.id));
      cursor = r.body.next_cursor;
      pages++;
    } while (cursor && pages < 100);
    assert.equal(new Set(seen).size, seen.length, 'no merchant twice');
    assert.deepEqual([...seen].sort().reverse(), seen, 'newest (highest id) first');
    const total = Number((await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM merchants.merchants`)).rows[0].n);
    assert.equal(seen.length, total, 'every merchant once');
    assert.deepEqual(seen.slice(0, 5), [...created].reverse(), 'the five just created lead the list');

    const bad = await t.request('GET', '/v1/merchants?cursor=bm90LWFuLWlk');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_cursor');
    const tooMany = await t.request('GET', '/v1/merchants?limit=201');
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.error.code, 'validation_failed');
  });

  test('a merchant key: only its own merchant, stores and terminals; never creates merchants or changes status', async () => {
    const mine = await t.seedMerchant();
    const theirs = await t.seedMerchant();
    const call = await merchantKey(mine.merchant.id);

    const list = await call('GET', '/v1/merchants');
    assert.deepEqual(
      list.body.data.map((m: { id: string }) => m.id),
      [mine.merchant.id],
    );
    assert.equal((await call('GET', `/v1/merchants/${mine.merchant.id}`)).status, 200);

    // Another merchant's resources are "not found", exactly like ids that do not exist.
    for (const [method, path, body] of [
      ['GET', `/v1/merchants/${theirs.merchant.id}`],
      ['PATCH', `/v1/merchants/${theirs.merchant.id}`, { name: 'taken over' }],
      ['GET', `/v1/merchants/${theirs.merchant.id}/stores`],
      ['POST', `/v1/merchants/${theirs.merchant.id}/stores`, { name: 'Annex' }],
      ['GET', `/v1/merchants/${theirs.merchant.id}/stores/${theirs.store.id}`],
    ] as const) {
      const r = await call(method, path, body);
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(r.body.error.code, 'merchant_not_found', `${method} ${path}`);
    }
    const t1 = await call('GET', `/v1/terminals/${theirs.terminal.id}`);
    assert.equal(t1.body.error.code, 'terminal_not_found');
    const t2 = await call('PATCH', `/v1/terminals/${theirs.terminal.id}`, { status: 'disabled' });
    assert.equal(t2.body.error.code, 'terminal_not_found');
    const t3 = await call('POST', '/v1/terminals', { store_id: theirs.store.id });
    assert.equal(t3.body.error.code, 'store_not_found');
    const t4 = await call('GET', `/v1/terminals?merchant_id=${theirs.merchant.id}`);
    assert.equal(t4.body.error.code, 'merchant_not_found');
    const own = await call('GET', '/v1/terminals');
    assert.deepEqual(
      own.body.data.map((x: { id: string }) => x.id),
      [mine.terminal.id],
    );
    assert.equal((await t.request('GET', `/v1/merchants/${theirs.merchant.id}`)).body.name, 'Test Store', 'unchanged');

    const create = await call('POST', '/v1/merchants', newMerchant());
    assert.equal(create.status, 403);
    assert.equal(create.body.error.code, 'forbidden');
    const status = await call('PATCH', `/v1/merchants/${mine.merchant.id}`, { status: 'suspended' });
    assert.equal(status.status, 403);
    assert.equal(status.body.error.code, 'forbidden');
    const rename = await call('PATCH', `/v1/merchants/${mine.merchant.id}`, { name: 'My Shop' });
    assert.equal(rename.status, 200);
    assert.equal(rename.body.name, 'My Shop');
  });
});
