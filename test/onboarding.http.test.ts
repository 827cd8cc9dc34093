import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestApp, httpJson, type TestApp } from './helpers/harness.ts';
import { createApiKey } from '../src/modules/identity/index.ts';
import { SAMPLES } from './helpers/onboarding.ts';

// The import over the API: upload, a job with its status, the rejected rows by line, the fleet
// found through the ordinary routes afterwards; one permission per kind, platform keys only.

let t: TestApp;
before(async () => {
  t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
});
after(() => t.close());

async function finished(id: string) {
  return t.eventually(async () => {
    const r = await t.request('GET', `/v1/imports/${id}`);
    return r.body.status !== 'running' ? r.body : undefined;
  }, 20_000);
}

test('upload the sample files, follow the jobs, read the rejects, find the fleet', async () => {
  const prg = await t.request('POST', '/v1/rewards/programs', {
    name: 'Coalition',
    point_value_paise: 25,
    earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
  });
  assert.equal(prg.status, 201, JSON.stringify(prg.body));
  const up = await t.request('POST', '/v1/imports/merchants', {
    content: readFileSync(join(SAMPLES, 'merchants.csv'), 'utf8'),
    constants: { program_id: prg.body.id },
  });
  assert.equal(up.status, 202, JSON.stringify(up.body));
  assert.match(up.body.id, /^imp_/);
  const m = await finished(up.body.id);
  assert.equal(m.status, 'completed');
  assert.equal(m.created, 4);
  assert.equal(m.rejected, 3);
  assert.equal(m.report.reconciliation.matched, 4);
  const rj = await t.request('GET', `/v1/imports/${up.body.id}/rejects?limit=2`);
  assert.equal(rj.status, 200);
  assert.deepEqual(
    rj.body.data.map((x: { line: number }) => x.line),
    [5, 6],
  );
  const rj2 = await t.request('GET', `/v1/imports/${up.body.id}/rejects?limit=2&cursor=${rj.body.next_cursor}`);
  assert.deepEqual(
    rj2.body.data.map((x: { line: number; field: string }) => [x.line, x.field]),
    [[7, 'settlement_ifsc']],
  );
  assert.equal(rj2.body.next_cursor, null);

  for (const [kind, file] of [
    ['stores', 'stores.csv'],
    ['terminals', 'terminals.csv'],
  ]) {
    const u = await t.request('POST', `/v1/imports/${kind}`, { content: readFileSync(join(SAMPLES, file), 'utf8') });
    assert.equal(u.status, 202, JSON.stringify(u.body));
    assert.equal((await finished(u.body.id)).status, 'completed');
  }
  const b = await t.request('POST', '/v1/imports/reward-balances', {
    format: 'jsonl',
    content: readFileSync(join(SAMPLES, 'reward-balances.jsonl'), 'utf8'),
  });
  const bj = await finished(b.body.id);
  assert.equal(bj.created, 5);
  assert.equal(bj.report.reconciliation.totals.tillpoint_points, 3750);

  // The fleet, through the ordinary API.
  const list = await t.request('GET', '/v1/merchants?limit=200');
  const sharma = list.body.data.find((x: { name: string }) => x.name === 'Sharma General Store');
  assert.equal(sharma.settlement_account.account_number, '******5678');
  const terms = await t.request('GET', `/v1/terminals?merchant_id=${sharma.id}`);
  assert.equal(terms.body.data.length, 3);
  const st = await t.request('GET', `/v1/rewards/statement?merchant_id=${sharma.id}&vpa=ravi@okaxis`);
  assert.equal(st.status, 200);
  assert.equal(st.body.data.at(-1).kind, 'opening_balance');

  // The same upload again: a new job that changes nothing.
  const again = await t.request('POST', '/v1/imports/merchants', {
    content: readFileSync(join(SAMPLES, 'merchants.csv'), 'utf8'),
    constants: { program_id: prg.body.id },
  });
  const aj = await finished(again.body.id);
  assert.equal(aj.created, 0);
  assert.equal(aj.unchanged, 4);

  const all = await t.request('GET', '/v1/imports?limit=2');
  assert.equal(all.body.data.length, 2);
  assert.ok(all.body.next_cursor);
  // Each import is in the audit trail: who, the file's hash, the counts.
  const audit = await t.db.query<{ record: string }>(
    `SELECT record FROM audit.events WHERE record::jsonb ->> 'action' = 'import.completed' AND record::jsonb -> 'resource' ->> 'id' = $1`,
    [up.body.id],
  );
  const rec = JSON.parse(audit.rows[0].record);
  assert.equal(rec.actor.type, 'api_key');
  assert.equal(rec.details.file_sha256, m.file_sha256);
  assert.equal(rec.details.created, 4);
});

test('bad uploads: a 4xx with a stable code; merchant keys and the wrong permission are refused', async () => {
  const bad = await t.request('POST', '/v1/imports/merchants', { content: 'x', mapping: 'no-such-mapping' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'validation_failed');
  const wrongFmt = await t.request('POST', '/v1/imports/merchants', {
    content: 'x',
    format: 'jsonl',
    mapping: 'tillpoint-merchants',
  });
  assert.equal(wrongFmt.status, 400);
  const inline = await t.request('POST', '/v1/imports/stores', {
    content: 'a,b\n1,2\n',
    mapping: { kind: 'stores', fields: { external_ref: { column: 'a' }, colour: { column: 'b' } } },
  });
  assert.equal(inline.status, 400);
  assert.match(inline.body.error.message, /"colour" is not a field of stores/);
  const failed = await t.request('POST', '/v1/imports/merchants', { content: '"never closed\n' });
  assert.equal(failed.status, 202);
  const fj = await finished(failed.body.id);
  assert.equal(fj.status, 'failed');
  assert.match(fj.error, /line 1: /);

  const mer = await t.seedMerchant('Key Holder');
  const mk = await createApiKey(t.db, {
    name: 'merchant',
    merchantId: mer.merchant.id,
    permissions: ['merchants:write', 'merchants:read'],
  });
  const asMerchant = await httpJson(
    `${t.url}/v1/imports/merchants`,
    'POST',
    { content: 'a\n' },
    {
      authorization: `Bearer ${mk.key}`,
    },
  );
  assert.equal(asMerchant.status, 403);
  const onlyMerchants = await createApiKey(t.db, {
    name: 'm only',
    merchantId: null,
    permissions: ['merchants:write'],
  });
  const noRewards = await httpJson(
    `${t.url}/v1/imports/reward-balances`,
    'POST',
    { content: 'a\n' },
    {
      authorization: `Bearer ${onlyMerchants.key}`,
    },
  );
  assert.equal(noRewards.status, 403);
  const missing = await t.request('GET', '/v1/imports/imp_00000000000000000000000000000000');
  assert.equal(missing.status, 404);
});

test('the import routes are in the OpenAPI document', async () => {
  const doc = (await (await fetch(`${t.url}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  for (const k of ['merchants', 'stores', 'terminals', 'reward-balances'])
    assert.ok(doc.paths[`/v1/imports/${k}`]?.post, k);
  assert.ok(doc.paths['/v1/imports/{id}']?.get);
  assert.ok(doc.paths['/v1/imports/{id}/rejects']?.get);
});
