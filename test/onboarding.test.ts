import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runRewardsVerify } from '../src/modules/rewards/index.ts';
import { formatReport } from '../src/modules/onboarding/index.ts';
import { onboardingWorld, platform, SAMPLES } from './helpers/onboarding.ts';

// The sample files that ship with the project, imported as a newcomer would: every kind, the
// rejected rows explained by line, a second run that changes nothing, the points verified, and
// no raw sensitive value anywhere in the database or the report.

let w: Awaited<ReturnType<typeof onboardingWorld>>;
before(async () => {
  w = await onboardingWorld();
});
after(async () => {
  await w.close();
});

const rejectsOf = (id: string) => w.onboarding.rejects(id, { limit: 100 });

test('the sample merchants import; bad rows are rejected by line with the field and the reason', async () => {
  const r = await w.importFile('merchants', join(SAMPLES, 'merchants.csv'), {
    constants: { program_id: w.coalition.id },
  });
  assert.equal(r.status, 'completed');
  assert.equal(r.rows, 7);
  assert.equal(r.created, 4);
  assert.equal(r.rejected, 3);
  const rejects = await rejectsOf(r.import_id);
  assert.deepEqual(
    rejects.map((x) => [Number(x.line), x.field]),
    [
      [5, 'vpa'],
      [6, 'mcc'],
      [7, 'settlement_ifsc'],
    ],
  );
  assert.match(rejects[0].reason, /not a valid UPI address/);
  assert.match(rejects[1].reason, /4 digits/);
  assert.match(rejects[2].reason, /both the account number and the IFSC/);
  // The reconciliation: 4 merchants, each present.
  assert.equal(r.reconciliation?.merchants, 4);
  assert.equal(r.reconciliation?.matched, 4);
  // The settlement account is sealed as the API seals it: only ciphertext, last 4 and bank code.
  const m = await w.db.query<{ ct: string; last4: string; bank: string; vpa: string }>(
    `SELECT settlement_account_ct AS ct, settlement_account_last4 AS last4, settlement_bank_code AS bank, vpa
       FROM merchants.merchants WHERE name = 'Sharma General Store'`,
  );
  assert.match(m.rows[0].ct, /^tp1\.merchant_bank\./);
  assert.equal(m.rows[0].last4, '5678');
  assert.equal(m.rows[0].bank, 'HDFC');
  const text = formatReport(r, rejects);
  assert.match(text, /line 5 \(vpa\): is not a valid UPI address/);
});

test("stores and terminals import by the merchants' references; unknown or repeated references are rejected", async () => {
  const s = await w.importFile('stores', join(SAMPLES, 'stores.csv'));
  assert.equal(s.created, 5);
  assert.deepEqual(
    (await rejectsOf(s.import_id)).map((x) => [Number(x.line), x.field, x.reason]),
    [
      [7, 'merchant_ref', 'no merchant was imported with this reference'],
      [8, 'external_ref', 'repeats the reference of line 2'],
    ],
  );
  const t = await w.importFile('terminals', join(SAMPLES, 'terminals.csv'));
  assert.equal(t.created, 6);
  assert.deepEqual(
    (await rejectsOf(t.import_id)).map((x) => [Number(x.line), x.field]),
    [
      [8, 'serial'],
      [9, 'store_ref'],
    ],
  );
  assert.equal(t.reconciliation?.matched, t.reconciliation?.merchants);
});

test('reward balances post opening balances that both verifies accept; the statement starts with them', async () => {
  const r = await w.importFile('reward-balances', join(SAMPLES, 'reward-balances.jsonl'));
  assert.equal(r.status, 'completed');
  assert.equal(r.created, 5);
  const rejects = await rejectsOf(r.import_id);
  assert.deepEqual(
    rejects.map((x) => [Number(x.line), x.field]),
    [
      [5, 'points'],
      [6, 'points'],
      [7, 'expires_at'],
      [8, null],
    ],
  );
  assert.match(rejects[0].reason, /whole number/);
  assert.match(rejects[3].reason, /not valid JSON/);
  // 1200 + 300 + 450 + 25000/25 + 800 points, valued at 25 paise each.
  assert.equal(r.reconciliation?.totals.source_points, 3750);
  assert.equal(r.reconciliation?.totals.tillpoint_points, 3750);
  assert.equal(r.reconciliation?.totals.tillpoint_value_paise, 3750 * 25);
  assert.equal((await runLedgerVerify(w.db)).ok, true);
  const rv = await runRewardsVerify(w.db);
  assert.deepEqual(rv.violations, []);
  const merchant = await w.db.query<{ id: string }>(
    `SELECT id FROM merchants.merchants WHERE vpa = 'sharmastore@okhdfc'`,
  );
  const st = await w.rewards.statement(platform, { merchant_id: merchant.rows[0].id, vpa: 'ravi@okaxis', limit: 10 });
  const oldestFirst = [...st.data].reverse();
  assert.equal(oldestFirst[0].kind, 'opening_balance');
  assert.match(oldestFirst[0].detail ?? '', /^opening balance/);
  const bal = await w.rewards.balance(platform, { merchant_id: merchant.rows[0].id, vpa: 'ravi@okaxis' });
  assert.equal(bal.available, 1500);
});

test('running every sample file again creates nothing and changes no balance', async () => {
  const before = await w.db.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM merchants.merchants) + (SELECT count(*) FROM merchants.stores)
          + (SELECT count(*) FROM merchants.terminals) + (SELECT count(*) FROM rewards.lots)
          + (SELECT count(*) FROM ledger.entries) AS n`,
  );
  const m = await w.importFile('merchants', join(SAMPLES, 'merchants.csv'), {
    constants: { program_id: w.coalition.id },
  });
  const s = await w.importFile('stores', join(SAMPLES, 'stores.csv'));
  const t = await w.importFile('terminals', join(SAMPLES, 'terminals.csv'));
  const b = await w.importFile('reward-balances', join(SAMPLES, 'reward-balances.jsonl'));
  for (const r of [m, s, t, b]) assert.equal(r.created, 0, r.kind);
  assert.deepEqual([m.unchanged, s.unchanged, t.unchanged, b.unchanged], [4, 5, 6, 5]);
  const afterCount = await w.db.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM merchants.merchants) + (SELECT count(*) FROM merchants.stores)
          + (SELECT count(*) FROM merchants.terminals) + (SELECT count(*) FROM rewards.lots)
          + (SELECT count(*) FROM ledger.entries) AS n`,
  );
  assert.equal(afterCount.rows[0].n, before.rows[0].n);
  assert.equal(b.reconciliation?.totals.source_points, 3750);
});

test('the legacy SQL Server export imports with the shipped mappings; fractional paise is refused', async () => {
  const L = join(SAMPLES, 'legacy');
  const m = await w.importFile('merchants', join(L, 'Merchant.csv'), {
    mappingName: 'legacy-sqlserver-merchants',
    constants: { program_id: w.coalition.id },
  });
  assert.equal(m.created, 3, JSON.stringify(await rejectsOf(m.import_id)));
  const mcc = await w.db.query<{ mcc: string }>(`SELECT mcc FROM merchants.merchants WHERE vpa = 'medplus@oksbi'`);
  assert.equal(mcc.rows[0].mcc, '0742');
  assert.equal(
    (await w.importFile('stores', join(L, 'MerchantOutlet.csv'), { mappingName: 'legacy-sqlserver-stores' })).created,
    3,
  );
  assert.equal(
    (await w.importFile('terminals', join(L, 'PosDevice.csv'), { mappingName: 'legacy-sqlserver-terminals' })).created,
    3,
  );
  const b = await w.importFile('reward-balances', join(L, 'LoyaltyBalance.csv'), {
    mappingName: 'legacy-sqlserver-reward-balances',
  });
  assert.equal(b.created, 2);
  const rj = await rejectsOf(b.import_id);
  assert.deepEqual(
    rj.map((x) => [Number(x.line), x.field]),
    [[4, 'value_paise']],
  );
  assert.match(rj[0].reason, /fraction of a paisa/);
  // ₹125.50 and ₹40.00 at 25 paise a point.
  assert.equal(b.reconciliation?.totals.tillpoint_points, 502 + 160);
  assert.equal((await runRewardsVerify(w.db)).ok, true);
});

test('no raw sensitive value reaches any table or the report', async () => {
  const secrets = [
    '50100012345678',
    'HDFC0001234',
    '123456789012',
    'SBIN0005678',
    '98765432101',
    'ravi@okaxis',
    'meera@oksbi',
    '9876543210',
    'kiran@okaxis',
    '50100098765432',
  ];
  const tables = await w.db.query<{ s: string; t: string }>(
    `SELECT table_schema AS s, table_name AS t FROM information_schema.tables
      WHERE table_schema IN ('merchants', 'onboarding', 'rewards', 'ledger', 'audit', 'terminals') AND table_type = 'BASE TABLE'`,
  );
  assert.ok(tables.rows.length > 10);
  for (const { s, t } of tables.rows) {
    const dump = await w.db.query<{ row: string }>(`SELECT x::text AS row FROM ${s}.${t} x`);
    const all = dump.rows.map((r) => r.row).join('\n');
    for (const v of secrets) assert.ok(!all.toLowerCase().includes(v.toLowerCase()), `${v} found in ${s}.${t}`);
  }
});

test('dry run: reports what would be created or rejected and writes nothing', async () => {
  const text =
    'external_ref,name,vpa,mcc,acquiring_bank\nDRY-1,Dry Run Dhaba,dryrun@okaxis,5812,SIMBANK\nDRY-2,Bad Bank,drybad@okaxis,5812,NOBANK\n';
  const r = await w.importFile('merchants', { text }, { dryRun: true });
  assert.equal(r.dry_run, true);
  assert.equal(r.created, 1);
  assert.equal(r.rejected, 1);
  assert.equal(r.reconciliation, undefined);
  const n = await w.db.query(`SELECT 1 FROM merchants.merchants WHERE vpa = 'dryrun@okaxis'`);
  assert.equal(n.rows.length, 0);
  const refs = await w.db.query(`SELECT 1 FROM onboarding.external_refs WHERE external_ref = 'DRY-1'`);
  assert.equal(refs.rows.length, 0);
});
