import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { middayIst, startTestApp, type TestApp } from './helpers/harness.ts';
import type { Clock } from '../src/platform/clock.ts';
import { createApiKey } from '../src/modules/identity/index.ts';
import { simbankCsv } from '../src/modules/settlement/recon/testkit.ts';

// End to end over the API and the bank simulator: a day of payments, the simulator's settlement
// file for the cycle with every discrepancy it can make, the file ingested through
// POST /v1/recon/files, and the outcomes and exception queue read back through the API.

// Real time, moved to noon IST: a cycle is an Indian date, and near midnight IST (18:30 UTC) the
// day's payments and the cycle asked for could fall on two dates. The app and its embedded bank
// simulator share the clock.
const offsetMs = middayIst().getTime() - Date.now();
const clock: Clock = { now: () => new Date(Date.now() + offsetMs) };

let t: TestApp;
let terminalId: string;
before(async () => {
  t = await startTestApp({ clock, simulator: { clock } });
  const s = await t.seedMerchant('Recon Stores');
  terminalId = s.terminal.id;
});
after(() => t.close());

async function pay(amount: number, outcome: 'success' | 'decline') {
  const r = await t.request('POST', '/v1/payments', {
    terminal_id: terminalId,
    amount,
    currency: 'INR',
    method: 'upi_qr',
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  await t.payQr(r.body.upi_uri, 'ravi.kumar@okaxis', outcome);
  const want = outcome === 'success' ? 'succeeded' : 'failed';
  const done = await t.eventually(async () => {
    const g = await t.request('GET', `/v1/payments/${r.body.id}`);
    return g.body.status === want ? g.body : undefined;
  });
  assert.ok(done, `payment ${want}`);
  return done as { id: string; amount: number };
}

/** Today's IST date as a cycle key. */
const todaysCycle = (n: number) => `${new Date(clock.now().getTime() + 330 * 60_000).toISOString().slice(0, 10)}-C${n}`;

test("the simulator's file with discrepancies, ingested over the API: every line ends matched or as an exception", async () => {
  const paid = [];
  for (const amount of [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]) paid.push(await pay(amount, 'success'));
  const declined = await pay(7_500, 'decline');

  const cycle = todaysCycle(1);
  const sim = await fetch(
    `${t.url}/sim/v1/settlement-files?bank=SIMBANK&cycle=${cycle}&missing=1&extra=1&amount_off=1&duplicate=1&late_success=1`,
  );
  assert.equal(sim.status, 200);
  const file = (await sim.json()) as {
    file_name: string;
    content: string;
    lines: number;
    applied: Record<string, string[]>;
  };
  assert.equal(file.lines, 6 - 1 + 1 + 1 + 1); // six paid, one missing, one extra, one twice, one late
  for (const k of ['missing', 'extra', 'amount_off', 'duplicate', 'late_success'])
    assert.equal(file.applied[k].length, 1, k);

  // A dry run first: what would happen, nothing stored.
  const dry = await t.request('POST', '/v1/recon/files', {
    bank_code: 'SIMBANK',
    file_name: file.file_name,
    content: file.content,
    dry_run: true,
  });
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  assert.equal(dry.body.status, 'dry_run');

  const r = await t.request('POST', '/v1/recon/files', {
    bank_code: 'SIMBANK',
    file_name: file.file_name,
    content: file.content,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.cycle_key, cycle);
  assert.deepEqual(dry.body.outcomes, r.body.outcomes);
  assert.deepEqual(r.body.outcomes, { matched: 4, amount_mismatch: 1, duplicate: 1, unknown: 1, late_success: 1 });
  assert.equal(r.body.lines, 8);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const missingId = paid.find((p) => file.applied.missing.includes(`TP${p.id.slice(4).toUpperCase()}`))!.id;
  const offId = paid.find((p) => file.applied.amount_off.includes(`TP${p.id.slice(4).toUpperCase()}`))!.id;
  assert.equal(
    r.body.matched_paise,
    sum(paid.filter((p) => p.id !== missingId && p.id !== offId).map((p) => p.amount)),
  );

  // The same file again changes nothing, and says so.
  const again = await t.request('POST', '/v1/recon/files', {
    bank_code: 'SIMBANK',
    file_name: file.file_name,
    content: file.content,
  });
  assert.equal(again.status, 200);
  assert.equal(again.body.status, 'already_ingested');

  // Every line, through the items list (paged by line number).
  const seen: { outcome: string; exception_id: string | null }[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor ? `&cursor=${cursor}` : '';
    const pg = await t.request('GET', `/v1/recon/files/${r.body.file_id}/items?limit=3${q}`);
    assert.equal(pg.status, 200, JSON.stringify(pg.body));
    seen.push(...pg.body.data);
    cursor = pg.body.next_cursor;
  } while (cursor);
  assert.equal(seen.length, 8);
  for (const l of seen) assert.equal(l.outcome === 'matched', l.exception_id === null);

  // The exception queue: the file's exceptions, plus the payment it is missing. The late success
  // is not left waiting: settlement's reversal port (wired in the app) was asked to pay the
  // customer back, and its exception closed with the reversal named.
  const ex = await t.request('GET', '/v1/recon/exceptions?status=open&limit=200');
  assert.equal(ex.status, 200);
  const kinds = ex.body.data.map((e: { kind: string }) => e.kind).sort();
  assert.deepEqual(kinds, ['amount_over', 'duplicate', 'missing', 'unknown']);
  assert.equal(ex.body.data.find((e: { kind: string }) => e.kind === 'missing').payment_id, missingId);
  const resolved = await t.request('GET', '/v1/recon/exceptions?status=resolved&limit=200');
  const late = resolved.body.data.find((e: { kind: string }) => e.kind === 'late_success');
  assert.ok(late, JSON.stringify(resolved.body));
  assert.equal(late.payment_id, declined.id);
  assert.equal(late.resolution, 'reverse');
  assert.ok(late.reversal_id, 'the reversal is named');
  const reversals = await t.request('GET', '/v1/settlement/reversals?limit=200');
  assert.equal(reversals.status, 200, JSON.stringify(reversals.body));
  const reversal = reversals.body.data.find((x: { id: string }) => x.id === late.reversal_id);
  assert.ok(reversal, JSON.stringify(reversals.body));
  assert.equal(reversal.payment_id, declined.id);
  assert.equal(reversal.reason, 'late_success');
  // An accept resolves it; an API key cannot be the second pair of eyes.
  const unknown = ex.body.data.find((e: { kind: string }) => e.kind === 'unknown');
  const wo = await t.request('POST', `/v1/recon/exceptions/${unknown.id}/resolve`, {
    resolution: 'write_off',
    reason: 'bank error, noted',
  });
  assert.equal(wo.body.status, 'pending_approval');
  const ap = await t.request('POST', `/v1/recon/exceptions/${unknown.id}/approve`, { decision: 'approve' });
  assert.equal(ap.status, 403);

  // Files, runs, status and metrics.
  const files = await t.request('GET', '/v1/recon/files');
  assert.equal(files.body.data[0].id, r.body.file_id);
  const runs = await t.request('GET', `/v1/recon/runs?file_id=${r.body.file_id}`);
  assert.equal(runs.body.data.length, 1);
  const status = await t.request('GET', '/v1/recon/status');
  assert.equal(status.status, 200);
  const metrics = await (await fetch(`${t.url}/metrics`)).text();
  assert.match(metrics, /tillpoint_recon_lines\{bank="SIMBANK",outcome="matched"\} 4/);
  assert.match(metrics, /tillpoint_recon_exceptions_open\{kind="missing"\} 1/);
});

test('bad input: malformed lines are named (422, nothing stored); merchant keys and missing permissions are refused', async () => {
  const cycle = todaysCycle(2).replaceAll('-', '').slice(0, 8);
  const content =
    'TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION\nA,1,1.00,CR,01-01-2026 00:00:00,x\nB,2,-1.00,CR,01-01-2026 00:00:00,x\n';
  const r = await t.request('POST', '/v1/recon/files', {
    bank_code: 'SIMBANK',
    file_name: `SIMBANK_SETTLEMENT_${cycle}_C2.csv`,
    content,
  });
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, 'file_rejected');
  assert.deepEqual(r.body.error.details.problems, [
    { line: 3, message: 'a negative amount beside a debit/credit column' },
  ]);
  const files = await t.request('GET', '/v1/recon/files');
  assert.ok(!files.body.data.some((f: { cycle_key: string }) => f.cycle_key.endsWith('C2')));
  const bad = await t.request('GET', '/v1/recon/exceptions?cursor=nope');
  assert.equal(bad.status, 400);

  const m = await t.seedMerchant('Other');
  const merchantKey = await createApiKey(t.db, { name: 'm', merchantId: m.merchant.id, permissions: ['recon:read'] });
  const asMerchant = await fetch(`${t.url}/v1/recon/exceptions`, {
    headers: { authorization: `Bearer ${merchantKey.key}` },
  });
  assert.equal(asMerchant.status, 403);
  const reader = await createApiKey(t.db, { name: 'r', merchantId: null, permissions: ['recon:read'] });
  const write = await fetch(`${t.url}/v1/recon/files`, {
    method: 'POST',
    headers: { authorization: `Bearer ${reader.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bank_code: 'SIMBANK', file_name: 'x.csv', content: '' }),
  });
  assert.equal(write.status, 403);
});

test('payments flagged deemed are settled by the file: paid when it has their line, failed when it covers them without one', async () => {
  // Two payments the bank answered "deemed" (a timeout at the switch): pending, flagged.
  const deemed = async (amount: number) => {
    const r = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await t.payQr(r.body.upi_uri, 'ravi.kumar@okaxis', 'timeout');
    const row = await t.eventually(async () => {
      const q = await t.db.query<{
        id: string;
        txn_ref: string;
        status: string;
        needs_reconciliation: boolean;
        reconciliation_reason: string | null;
        created_at: Date;
        expires_at: Date;
      }>(
        `SELECT id, txn_ref, status, needs_reconciliation, reconciliation_reason, created_at, expires_at
           FROM payments.payments WHERE id = $1`,
        [r.body.id],
      );
      return q.rows[0]?.needs_reconciliation ? q.rows[0] : undefined;
    });
    assert.ok(row, 'flagged');
    assert.equal(row.status, 'pending');
    assert.equal(row.reconciliation_reason, 'deemed');
    return row;
  };
  const paid = await deemed(12_300);
  const unpaid = await deemed(45_600);
  // The bank's file has the first one's line; its span (the first line to the last) covers the
  // second one's whole validity, creation to expiry, without a line for it.
  const content = simbankCsv([
    { txnRef: paid.txn_ref, amount: 12_300, at: paid.created_at },
    { txnRef: 'DEEMEDSPAN1', amount: 100, at: new Date(unpaid.expires_at.getTime() + 60_000) },
  ]);
  const fileName = `SIMBANK_SETTLEMENT_${todaysCycle(3).replaceAll('-', '').slice(0, 8)}_C3.csv`;
  const status = async (id: string) =>
    (
      await t.db.query<{ status: string; needs_reconciliation: boolean }>(
        'SELECT status, needs_reconciliation FROM payments.payments WHERE id = $1',
        [id],
      )
    ).rows[0];

  // A dry run says what the file would do, and changes nothing.
  const dry = await t.request('POST', '/v1/recon/files', {
    bank_code: 'SIMBANK',
    file_name: fileName,
    content,
    dry_run: true,
  });
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  assert.deepEqual(dry.body.matched_by_rule, { flagged_paid_in_file: 1 });
  assert.deepEqual(await status(paid.id), { status: 'pending', needs_reconciliation: true });

  const r = await t.request('POST', '/v1/recon/files', { bank_code: 'SIMBANK', file_name: fileName, content });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual(r.body.outcomes, { matched: 1, unknown: 1 });
  assert.deepEqual(r.body.matched_by_rule, { flagged_paid_in_file: 1 });
  assert.equal(r.body.matched_paise, 12_300);

  // Paid: succeeded through payments' own transition (history row, ledger entry), flag cleared.
  assert.deepEqual(await status(paid.id), { status: 'succeeded', needs_reconciliation: false });
  // Not paid: failed, flag cleared.
  assert.deepEqual(await status(unpaid.id), { status: 'failed', needs_reconciliation: false });
  const events = await t.db.query<{ payment_id: string; to_status: string; source: string; detail: string }>(
    `SELECT payment_id, to_status, source, detail FROM payments.payment_events
      WHERE payment_id = ANY($1) AND source = 'reconciliation' ORDER BY payment_id = $2 DESC`,
    [[paid.id, unpaid.id], paid.id],
  );
  assert.deepEqual(
    events.rows.map((e) => [e.payment_id, e.to_status]),
    [
      [paid.id, 'succeeded'],
      [unpaid.id, 'failed'],
    ],
  );
  assert.match(events.rows[0].detail, new RegExp(`line 2 of bank file ${r.body.file_id}`));
  const ledger = await t.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ledger.entries WHERE kind = 'payment.succeeded' AND reference = $1`,
    [paid.id],
  );
  assert.equal(ledger.rows[0].n, 1);
  // The line names the rule; each change is an audit event; neither waits in the queue.
  const items = await t.request('GET', `/v1/recon/files/${r.body.file_id}/items`);
  assert.deepEqual(
    items.body.data.map((l: { outcome: string; match_rule: string | null; our_id: string | null }) => [
      l.outcome,
      l.match_rule,
      l.our_id,
    ]),
    [
      ['matched', 'flagged_paid_in_file', paid.id],
      ['unknown', null, null],
    ],
  );
  const audit = await t.db.query<{ resource_id: string; record: string }>(
    `SELECT resource_id, record FROM audit.events WHERE action = 'recon.flagged_payment_settled' AND resource_id = ANY($1)`,
    [[paid.id, unpaid.id]],
  );
  const details = (rec: string) => (JSON.parse(rec) as { details: { outcome: string; flag: string } }).details;
  assert.deepEqual(
    Object.fromEntries(audit.rows.map((a) => [a.resource_id, [details(a.record).outcome, details(a.record).flag]])),
    { [paid.id]: ['succeeded', 'deemed'], [unpaid.id]: ['failed', 'deemed'] },
  );
  const flagged = await t.request('GET', '/v1/recon/exceptions?kind=flagged&status=open&limit=200');
  assert.ok(
    !flagged.body.data.some((e: { payment_id: string }) => e.payment_id === paid.id || e.payment_id === unpaid.id),
  );
});
