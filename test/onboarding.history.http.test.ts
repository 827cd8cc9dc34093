import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { SAMPLES } from './helpers/onboarding.ts';

// Payment history over the import API, as the app wires it: the legacy samples uploaded as jobs,
// the history's rejects by line, the payer VPA sealed by the app's own vault, and the customer's
// statement showing points earned before the move.

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

test('upload a legacy payment history as a job; rejects by line; the statement shows its points', async () => {
  const prg = await t.request('POST', '/v1/rewards/programs', {
    name: 'Coalition',
    point_value_paise: 25,
    earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
  });
  assert.equal(prg.status, 201, JSON.stringify(prg.body));
  const legacy = join(SAMPLES, 'legacy');
  for (const [kind, file, extra] of [
    ['merchants', 'Merchant.csv', { constants: { program_id: prg.body.id } }],
    ['stores', 'MerchantOutlet.csv', {}],
    ['terminals', 'PosDevice.csv', {}],
  ] as const) {
    const u = await t.request('POST', `/v1/imports/${kind}`, {
      content: readFileSync(join(legacy, file), 'utf8'),
      mapping: `legacy-sqlserver-${kind}`,
      ...extra,
    });
    assert.equal(u.status, 202, JSON.stringify(u.body));
    assert.equal((await finished(u.body.id)).status, 'completed');
  }
  const content = readFileSync(join(legacy, 'UpiTransaction.csv'), 'utf8').replace(
    'TxnId,MerchantCode,DeviceCode,OutletCode,OrigTxnId,TxnMode,AmountRupees,TxnStatus,TxnDateTime,CompletedDateTime,PayerVpa,Rrn,AcquirerCode',
    'TxnId,MerchantCode,DeviceCode,OutletCode,OrigTxnId,TxnMode,AmountRupees,TxnStatus,TxnDateTime,CompletedDateTime,PayerVpa,Rrn,AcquirerCode,PointsEarned,PointsRedeemed,LoyaltyMobile',
  );
  // The points mapping reads three more columns; every line gets them (empty), TX-100004 earns 126.
  const lines = content.trimEnd().split('\n');
  const withPoints = [
    lines[0],
    ...lines.slice(1).map((l) => (l.startsWith('TX-100004,') ? `${l},126,,9876543210` : `${l},,,`)),
  ].join('\n');
  const up = await t.request('POST', '/v1/imports/payments', {
    content: withPoints,
    mapping: 'legacy-sqlserver-payments-points',
  });
  assert.equal(up.status, 202, JSON.stringify(up.body));
  const job = await finished(up.body.id);
  assert.equal(job.status, 'completed');
  assert.equal(job.kind, 'payments');
  assert.equal(job.created, 6);
  assert.equal(job.report.reconciliation.matched, job.report.reconciliation.merchants);
  assert.equal(job.report.reconciliation.totals.tillpoint_points, 126);
  const rj = await t.request('GET', `/v1/imports/${up.body.id}/rejects`);
  assert.deepEqual(
    rj.body.data.map((x: { line: number; field: string }) => [x.line, x.field]),
    [
      [7, 'amount_paise'],
      [9, 'amount_paise'],
    ],
  );
  const list = await t.request('GET', '/v1/merchants?limit=200');
  const saravana = list.body.data.find((x: { name: string }) => x.name === 'Hotel Saravana');
  const st = await t.request('GET', `/v1/rewards/statement?merchant_id=${saravana.id}&phone=9876543210`);
  assert.equal(st.status, 200);
  assert.deepEqual(
    st.body.data.map((m: { kind: string; points: number }) => [m.kind, m.points]),
    [['earn', 126]],
  );
  assert.equal(st.body.data[0].created_at.slice(0, 10), '2026-09-15');
  // Only platform callers allowed to take payments may upload history.
  const denied = await t.request(
    'POST',
    '/v1/imports/payments',
    { content: withPoints },
    { authorization: 'Bearer nope' },
  );
  assert.equal(denied.status, 401);
});
