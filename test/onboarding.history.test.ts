import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pino from 'pino';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runRewardsVerify } from '../src/modules/rewards/index.ts';
import { PAYER_VPA_FIELD } from '../src/modules/payments/index.ts';
import { createSettlementService, cycleOf, loadSettlementConfig } from '../src/modules/settlement/index.ts';
import { formatReport, HISTORY_PAYER_VPA_FIELD, loadMapping } from '../src/modules/onboarding/index.ts';
import { onboardingWorld, platform, SAMPLES } from './helpers/onboarding.ts';

// Payment history from a legacy system (`tillpoint import payments`): rows validated with the
// API's rules and rejected by line, payer VPAs sealed as payments seals them, money posted to the
// ledger's legacy accounts (never to what settlement pays out from), points through the rewards
// module, a second run that changes nothing, a run stopped part way that resumes, the legacy
// SQL Server export's mapping, and settlement proven blind to history.

let w: Awaited<ReturnType<typeof onboardingWorld>>;
let mer1001: string;
let mer1002: string;
const DAY = 86_400_000;
const ago = (days: number, hours = 0) => new Date(Date.now() - days * DAY - hours * 3_600_000).toISOString();

before(async () => {
  w = await onboardingWorld();
  await w.importFile('merchants', join(SAMPLES, 'merchants.csv'), { constants: { program_id: w.coalition.id } });
  await w.importFile('stores', join(SAMPLES, 'stores.csv'));
  await w.importFile('terminals', join(SAMPLES, 'terminals.csv'));
  const ids = await w.db.query<{ external_ref: string; entity_id: string }>(
    `SELECT external_ref, entity_id FROM onboarding.external_refs WHERE kind = 'merchant'`,
  );
  const byRef = new Map(ids.rows.map((r) => [r.external_ref, r.entity_id]));
  mer1001 = byRef.get('M-1001')!;
  mer1002 = byRef.get('M-1002')!;
});
after(async () => {
  await w.close();
});

const HEAD =
  'external_ref,merchant_ref,terminal_ref,store_ref,refund_of,amount_paise,status,created_at,completed_at,payer_vpa,bank_ref,points_earned,points_redeemed';
// Line numbers: the header is line 1.
const history = () =>
  [
    HEAD,
    `P-1,M-1001,T-1,S-1,,15000,succeeded,${ago(60)},${ago(60)},Ravi@OKAXIS,412345678901,15,`, // 2
    `P-2,M-1001,T-2,,,9999,succeeded,${ago(40)},,ravi@okaxis,412345678902,9,20`, // 3: redeems 20 of P-1's 15+...
    `P-3,M-1001,T-1,,,5000,failed,${ago(39)},,asha@oksbi,,,`, // 4
    `P-4,M-1001,T-1,,,7000,expired,${ago(38)},,,,,`, // 5
    `R-1,M-1001,,,P-1,5000,succeeded,${ago(50)},${ago(50)},,,,`, // 6: partial refund
    `R-2,M-1001,,,P-1,10001,succeeded,${ago(49)},,,,,`, // 7: more than is left
    `R-3,M-1001,,,P-3,100,succeeded,${ago(37)},,,,,`, // 8: the payment failed
    `P-5,M-1001,T-1,,,12.5,succeeded,${ago(30)},,,,,`, // 9: a fraction of a paisa
    `P-6,M-1001,T-1,,,1000,succeeded,${new Date(Date.now() + DAY).toISOString()},,,,,`, // 10: in the future
    `P-7,M-1001,T-99,,,1000,succeeded,${ago(30)},,,,,`, // 11: no such terminal
    `P-8,M-1002,T-1,,,1000,succeeded,${ago(30)},,,,,`, // 12: another merchant's terminal
    `P-9,M-1001,T-1,,,2000,succeeded,${ago(20)},,asha@oksbi,,,500`, // 13: redeems what asha never had
    `P-1,M-1001,T-1,,,15000,succeeded,${ago(60)},,,,,`, // 14: repeats line 2
    `R-4,M-1001,,,P-404,100,succeeded,${ago(10)},,,,,`, // 15: unknown payment
    `P-10,M-1001,T-2,S-2,,1000,succeeded,${ago(10)},,,,,`, // 16: T-2 is in S-1
    `P-11,M-1002,T-4,,,25000,succeeded,${ago(5)},,meena@okicici,512345678903,25,`, // 17
    `R-5,M-1002,,,P-11,25000,succeeded,${ago(4)},,,,,`, // 18: full refund
    `P-12,M-1001,T-1,,,3000,succeeded,${ago(3)},,bad vpa,,,`, // 19: not a VPA
  ].join('\n');

let firstFile = '';

test('payment history: valid rows are imported, bad ones rejected by line with the field and the reason', async () => {
  firstFile = history();
  const r = await w.importFile('payments', { text: firstFile });
  assert.equal(r.status, 'completed');
  assert.equal(r.rows, 18);
  const rejects = await w.onboarding.rejects(r.import_id, { limit: 100 });
  assert.deepEqual(
    rejects.map((x) => [Number(x.line), x.field]),
    [
      [3, 'points_redeemed'],
      [7, 'amount_paise'],
      [8, 'refund_of'],
      [9, 'amount_paise'],
      [10, 'created_at'],
      [11, 'terminal_ref'],
      [12, 'terminal_ref'],
      [13, 'points_redeemed'],
      [14, 'external_ref'],
      [15, 'refund_of'],
      [16, 'store_ref'],
      [19, 'payer_vpa'],
    ],
  );
  const reason = (line: number) => rejects.find((x) => Number(x.line) === line)!.reason;
  assert.match(reason(3), /had 15 points at that time/);
  assert.match(reason(7), /more than is left to refund \(10000 paise\)/);
  assert.match(reason(8), /the payment failed/);
  assert.match(reason(9), /fraction of a paisa/);
  assert.match(reason(10), /in the future/);
  assert.match(reason(14), /repeats the reference of line 2/);
  assert.equal(r.created, 18 - 12);
  // Reconciliation per merchant: rows, net money (succeeded payments less succeeded refunds, read
  // back from the ledger) and net points (from the rewards tables).
  assert.equal(r.reconciliation?.merchants, 2);
  assert.equal(r.reconciliation?.matched, 2);
  assert.equal(r.reconciliation?.totals.source_value_paise, 15000 - 5000 + 25000 - 25000);
  assert.equal(r.reconciliation?.totals.tillpoint_value_paise, 10000);
  assert.equal(r.reconciliation?.totals.tillpoint_points, 15 + 25);
  assert.match(formatReport(r, rejects), /line 7 \(amount_paise\): is more than is left to refund/);
  // The audit trail names the import, its file hash and counts.
  const audit = await w.db.query<{ action: string }>(
    `SELECT action FROM audit.events WHERE resource_id = $1 ORDER BY seq`,
    [r.import_id],
  );
  assert.deepEqual(
    audit.rows.map((a) => a.action),
    ['import.started', 'import.completed'],
  );
});

test('the payer VPA is sealed as payments seals it: ciphertext and the same blind index, never the VPA', async () => {
  const rows = await w.db.query<{ id: string; ct: string; bidx: string }>(
    `SELECT id, payer_vpa_ct AS ct, payer_vpa_bidx AS bidx FROM onboarding.payment_history WHERE external_ref = 'P-1'`,
  );
  assert.match(rows.rows[0].ct, /^tp1\.payer_vpa\./);
  const [asPayments] = await w.vault.cipher.lookupIndexes(PAYER_VPA_FIELD, 'ravi@okaxis');
  assert.equal(rows.rows[0].bidx, asPayments, 'one lookup by VPA finds live and historical payments');
  assert.equal(await w.vault.cipher.open(HISTORY_PAYER_VPA_FIELD, rows.rows[0].id, rows.rows[0].ct), 'ravi@okaxis');
  const dump = await w.db.query<{ t: string }>(
    `SELECT (SELECT string_agg(h::text, '|') FROM onboarding.payment_history h) ||
            coalesce((SELECT string_agg(x::text, '|') FROM onboarding.rejects x), '') AS t`,
  );
  for (const vpa of ['ravi@okaxis', 'asha@oksbi', 'meena@okicici', 'Ravi@OKAXIS'])
    assert.ok(!dump.rows[0].t.includes(vpa));
});

test('money is posted to the legacy accounts; both verifies pass; the statement shows the history', async () => {
  const bal = await w.db.query<{ code: string; balance: string }>(
    `SELECT code, balance FROM ledger.accounts WHERE book = 'INR' AND code LIKE 'legacy%' ORDER BY code`,
  );
  assert.deepEqual(
    bal.rows.map((b) => [b.code, Number(b.balance)]),
    [
      ['legacy_clearing:SIMBANK', 10000],
      [`legacy_settled:${mer1001}`, 10000],
      [`legacy_settled:${mer1002}`, 0],
    ],
  );
  const payable = await w.db.query(
    `SELECT 1 FROM ledger.accounts WHERE code LIKE 'merchant_payable:%' OR code LIKE 'bank_clearing:%'`,
  );
  assert.equal(payable.rows.length, 0, 'history never touches what settlement pays out from');
  assert.deepEqual((await runLedgerVerify(w.db)).violations ?? [], []);
  assert.deepEqual((await runRewardsVerify(w.db)).violations, []);
  const st = await w.rewards.statement(platform, { merchant_id: mer1001, vpa: 'ravi@okaxis', limit: 10 });
  assert.deepEqual(
    st.data.map((m) => [m.kind, m.points ?? m.available_delta]),
    [['earn', 15]],
  );
  assert.equal(new Date(st.data[0].created_at).getTime() < Date.now() - 59 * DAY, true, 'at the payment time');
  const b = await w.rewards.balance(platform, { merchant_id: mer1002, vpa: 'meena@okicici' });
  assert.equal(b.available, 25);
});

test('running the same file again changes nothing', async () => {
  const before = await w.db.query<{ n: string }>(`SELECT count(*) AS n FROM ledger.entries`);
  const r = await w.importFile('payments', { text: firstFile });
  assert.equal(r.status, 'completed');
  assert.equal(r.created, 0);
  assert.equal(r.unchanged, 6);
  assert.equal(r.reconciliation?.matched, 2);
  const after = await w.db.query<{ n: string }>(`SELECT count(*) AS n FROM ledger.entries`);
  assert.equal(after.rows[0].n, before.rows[0].n);
});

test('a run stopped after a batch resumes from its checkpoint; points redeemed across batches hold', async () => {
  const lines = [HEAD];
  for (let i = 1; i <= 9; i++)
    lines.push(`Q-${i},M-1002,T-4,,,${1000 * i},succeeded,${ago(30 - i)},,kiran@okaxis,,${i},${i === 9 ? 20 : ''}`);
  lines.push(`RQ-1,M-1002,,,Q-2,500,succeeded,${ago(1)},,,,,`);
  const text = lines.join('\n');
  const stop = new AbortController();
  const first = await w.importFile(
    'payments',
    { text },
    { batchSize: 4, signal: stop.signal, afterBatch: (n) => void (n === 1 && stop.abort()) },
  );
  assert.equal(first.status, 'interrupted');
  assert.equal(first.created, 4);
  const second = await w.importFile('payments', { text }, { batchSize: 4 });
  assert.equal(second.import_id, first.import_id);
  assert.equal(second.status, 'completed');
  assert.equal(second.resumed_from_line, 5);
  assert.equal(second.created, 10);
  assert.equal(second.rejected, 0);
  const b = await w.rewards.balance(platform, { merchant_id: mer1002, vpa: 'kiran@okaxis' });
  assert.equal(b.available, 45 - 20);
  assert.deepEqual((await runRewardsVerify(w.db)).violations, []);
  assert.equal((await runLedgerVerify(w.db)).ok, true);
});

test('the legacy SQL Server export imports through its shipped mapping', async () => {
  // The default legacy mapping leaves points out (balances come from dbo.LoyaltyBalance); the
  // -points one brings them per transaction.
  const plain = loadMapping('legacy-sqlserver-payments');
  assert.equal(plain.kind, 'payments');
  assert.deepEqual(
    ['points_earned', 'points_redeemed'].filter((f) => f in plain.fields),
    [],
  );
  const legacy = [
    'TxnId,MerchantCode,DeviceCode,OutletCode,OrigTxnId,TxnMode,AmountRupees,TxnStatus,TxnDateTime,CompletedDateTime,PayerVpa,Rrn,AcquirerCode,LoyaltyMobile,PointsEarned,PointsRedeemed',
    'TX-9001,M-1003,T-5,S-4,,QR,149.99,SUCCESS,2026-09-14 18:22:05.123,2026-09-14 18:22:09,ravi@okaxis,425712345678,SIMBANK,9876543210,14,0',
    'TX-9002,M-1003,T-5,,,COLLECT,80.00,FAILURE,2026-09-14 19:01:00,,asha@oksbi,,,,,',
    'TX-9003,M-1003,,,TX-9001,,49.99,SUCCESS,2026-09-15 10:00:00,,,525712345679,,,,',
    'TX-9004,M-1003,T-5,,,QR,10.001,SUCCESS,2026-09-16 10:00:00,,,,,,,',
    'TX-9005,M-1003,T-5,,,QR,10.00,PENDING,2026-09-16 10:00:00,,,,,,,',
  ].join('\n');
  const r = await w.importFile('payments', { text: legacy }, { mappingName: 'legacy-sqlserver-payments-points' });
  assert.equal(r.created, 3);
  assert.deepEqual(
    (await w.onboarding.rejects(r.import_id, { limit: 10 })).map((x) => [Number(x.line), x.field]),
    [
      [5, 'amount_paise'],
      [6, 'status'],
    ],
  );
  const p = await w.db.query<{ amount: string; created_at: Date; refunded_amount: string; method: string }>(
    `SELECT amount, created_at, refunded_amount, method FROM onboarding.payment_history WHERE external_ref = 'TX-9001'`,
  );
  assert.equal(Number(p.rows[0].amount), 14999);
  assert.equal(Number(p.rows[0].refunded_amount), 4999);
  assert.equal(p.rows[0].created_at.toISOString(), '2026-09-14T12:52:05.123Z', 'India time');
  const mer1003 = (
    await w.db.query<{ id: string }>(
      `SELECT entity_id AS id FROM onboarding.external_refs WHERE external_ref = 'M-1003'`,
    )
  ).rows[0].id;
  const b = await w.rewards.balance(platform, { merchant_id: mer1003, phone: '9876543210' });
  assert.equal(b.available, 14);
  assert.equal(r.reconciliation?.matched, r.reconciliation?.merchants);
});

test('settlement never sees history: closing the cycle of a historical payment expects nothing and pays nobody', async () => {
  const config = loadSettlementConfig({});
  const settlement = createSettlementService({
    db: w.db,
    ledger: w.ledger,
    banks: {
      connector: () => {
        throw new Error('no bank call is expected');
      },
    },
    clock: { now: () => new Date() },
    logger: pino({ level: 'silent' }),
    config,
    bankCodes: ['SIMBANK', 'SIMBANK2'],
    publicUrl: 'http://localhost',
    accounts: { getSettlementAccount: async () => null },
  });
  const h = await w.db.query<{ completed_at: Date; amount: string }>(
    `SELECT completed_at, amount FROM onboarding.payment_history WHERE external_ref = 'P-11'`,
  );
  const key = cycleOf(h.rows[0].completed_at, config.cycleCutoffs).key;
  // A payment Tillpoint took itself in the same window is expected (the control): history is not.
  await w.db.query(
    `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status,
       bank_code, expires_at, created_at, updated_at, completed_at)
     VALUES ('pay_0190000000007000800000000000000a', 'CTRL1', $1, 'sto_x', 'trm_x', 'upi_qr', 777, 'INR', 'succeeded',
       'SIMBANK', $2, $2, $2, $2)`,
    [mer1002, h.rows[0].completed_at],
  );
  const closed = await settlement.cycles.close(key);
  const banks = (
    closed.cycle as unknown as { banks: { bank_code: string; expected: { credit: number; lines: number } }[] }
  ).banks;
  const simbank = banks.find((b) => b.bank_code === 'SIMBANK')!;
  assert.equal(simbank.expected.credit, 777, 'only the control payment, not the 250 rupees of history');
  assert.equal(simbank.expected.lines, 1);
  const payouts = await settlement.payouts.list({ merchant_id: mer1002, limit: 10 } as never);
  const rows = (payouts as unknown as { data: { payments_paise?: number; gross?: number }[] }).data;
  assert.equal(rows.length, 1, 'one payout: the control payment');
  assert.equal(JSON.stringify(rows[0]).includes('25000'), false);
});

test('a generated fleet with months of history imports without a reject, deterministically', async () => {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { writeFleet } = await import('../src/modules/onboarding/index.ts');
  const dirs = [mkdtempSync(join(tmpdir(), 'tp-hist-')), mkdtempSync(join(tmpdir(), 'tp-hist-'))];
  const end = new Date(Date.now() - 2 * DAY);
  const fleets = await Promise.all(
    dirs.map((dir) => writeFleet({ dir, merchants: 3, seed: 7, balances: 5, history: { days: 20, end } })),
  );
  assert.equal(
    readFileSync(fleets[0].payments!, 'utf8'),
    readFileSync(fleets[1].payments!, 'utf8'),
    'same seed, same file',
  );
  const f = fleets[0];
  assert.ok(f.history!.payments > 50 && f.history!.refunds >= 0 && f.history!.redeemed >= 0);
  const program = { constants: { program_id: w.coalition.id } };
  for (const [kind, file, o] of [
    ['merchants', f.merchants, program],
    ['stores', f.stores, {}],
    ['terminals', f.terminals, {}],
    ['payments', f.payments!, { batchSize: 250 }],
  ] as const) {
    const r = await w.importFile(kind, file, o);
    assert.equal(r.rejected, 0, `${kind}: ${JSON.stringify(await w.onboarding.rejects(r.import_id, { limit: 3 }))}`);
    assert.equal(r.reconciliation?.matched, r.reconciliation?.merchants);
    if (kind === 'payments') {
      assert.equal(r.created, f.history!.payments + f.history!.refunds);
      assert.equal(r.reconciliation?.totals.tillpoint_points, f.history!.earned - f.history!.redeemed);
    }
  }
  assert.equal((await runLedgerVerify(w.db)).ok, true);
  assert.deepEqual((await runRewardsVerify(w.db)).violations, []);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('the legacy sample files, payment history included, import as the migration guide says', async () => {
  const legacy = join(SAMPLES, 'legacy');
  for (const [kind, file] of [
    ['merchants', 'Merchant.csv'],
    ['stores', 'MerchantOutlet.csv'],
    ['terminals', 'PosDevice.csv'],
  ] as const)
    await w.importFile(kind, join(legacy, file), { mappingName: `legacy-sqlserver-${kind}` });
  const r = await w.importFile('payments', join(legacy, 'UpiTransaction.csv'), {
    mappingName: 'legacy-sqlserver-payments',
  });
  assert.equal(r.status, 'completed');
  assert.equal(r.created, 6);
  const rejects = await w.onboarding.rejects(r.import_id, { limit: 10 });
  assert.deepEqual(
    rejects.map((x) => [Number(x.line), x.field, x.reason]),
    [
      [7, 'amount_paise', 'has a fraction of a paisa (more than 2 decimals)'],
      [9, 'amount_paise', 'is more than is left to refund (8600 paise)'],
    ],
  );
  // 149.99 + 86.00 + 1260.50 − 260.50 rupees kept by the three merchants, in the ledger.
  assert.equal(r.reconciliation?.totals.tillpoint_value_paise, 14999 + 8600 + 126050 - 26050);
  assert.equal(r.reconciliation?.matched, r.reconciliation?.merchants);
});

test('a dry run of payment history reports what would be created and rejected, and writes none of it', async () => {
  const count = async () =>
    (
      await w.db.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM onboarding.payment_history) + (SELECT count(*) FROM ledger.entries)
              + (SELECT count(*) FROM rewards.movements) AS n`,
      )
    ).rows[0].n;
  const before = await count();
  const text = [
    HEAD,
    `D-1,M-1002,T-4,,,4200,succeeded,${ago(2)},,dry@okaxis,,4,`,
    `D-2,M-1002,T-4,,,4200,succeeded,${ago(1)},,dry@okaxis,,,9`,
    `D-R1,M-1002,,,D-1,4200,succeeded,${ago(0, 1)},,,,,`,
  ].join('\n');
  const r = await w.importFile('payments', { text }, { dryRun: true });
  assert.equal(r.dry_run, true);
  assert.equal(r.created, 2);
  assert.deepEqual(
    (await w.onboarding.rejects(r.import_id, { limit: 5 })).map((x) => [Number(x.line), x.field]),
    [[3, 'points_redeemed']],
  );
  assert.equal(await count(), before);
});
