import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliWithDb } from './helpers/cliDb.ts';
import { createLedgerService, runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runSettlementVerify } from '../src/modules/settlement/index.ts';
import { seedPayment, simbankCsv } from '../src/modules/settlement/recon/testkit.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { insertPayment, scriptedCreditBank, silentLogger } from '../src/modules/settlement/testkit.ts';
import { createSettlementService } from '../src/modules/settlement/index.ts';

// `tillpoint recon ingest` as an operator runs it, a process against the same database (a PGlite
// directory, or the PostgreSQL at TEST_DATABASE_URL): a file settles the payments flagged deemed or
// unknown at the bank exactly as the API's upload does (test/settlement.recon.e2e.test.ts), because
// the command builds the same services (src/app.ts createServices).

test('recon ingest (the CLI) settles flagged payments: paid by its line, failed when the file covers it without one', async () => {
  const { dataDir, open, done, cli, close } = await cliWithDb('tp-recon-cli-');

  try {
    const T0 = new Date('2026-12-01T04:00:00Z'); // 09:30 IST, in the day's C6 (09:00–11:00 IST)
    let db = await open(true);
    const paid = await seedPayment(db, { amount: 12_300, at: T0, status: 'pending', flagged: 'deemed' });
    const unpaid = await seedPayment(db, {
      amount: 45_600,
      at: new Date(T0.getTime() + 60_000),
      status: 'pending',
      flagged: 'unknown_at_bank',
    });
    await done(db);
    const file = join(dataDir, 'SIMBANK_SETTLEMENT_20261201_C6.csv');
    writeFileSync(
      file,
      simbankCsv([
        { txnRef: paid.txnRef, bankRef: paid.bankRef, amount: 12_300, at: T0 },
        // The file's span reaches past the second payment's validity without a line for it.
        { txnRef: 'SPANEND1', amount: 100, at: new Date(T0.getTime() + 30 * 60_000) },
      ]),
    );

    const run = cli('recon', 'ingest', '--bank', 'SIMBANK', file);
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.status, 'ingested');
    assert.deepEqual(report.outcomes, { matched: 1, unknown: 1 });
    assert.deepEqual(report.matched_by_rule, { flagged_paid_in_file: 1 });
    assert.equal(report.matched_paise, 12_300);
    assert.match(run.stderr, /lines read|ingested/);

    db = await open();
    const status = async (id: string) =>
      (
        await db.query<{ status: string; needs_reconciliation: boolean }>(
          'SELECT status, needs_reconciliation FROM payments.payments WHERE id = $1',
          [id],
        )
      ).rows[0];
    // Paid: succeeded through payments' own transition; not paid: failed. Flags cleared.
    assert.deepEqual(await status(paid.id), { status: 'succeeded', needs_reconciliation: false });
    assert.deepEqual(await status(unpaid.id), { status: 'failed', needs_reconciliation: false });
    const events = await db.query<{ payment_id: string; to_status: string }>(
      `SELECT payment_id, to_status FROM payments.payment_events
        WHERE payment_id = ANY($1) AND source = 'reconciliation' ORDER BY to_status DESC`,
      [[paid.id, unpaid.id]],
    );
    assert.deepEqual(
      events.rows.map((e) => [e.payment_id, e.to_status]),
      [
        [paid.id, 'succeeded'],
        [unpaid.id, 'failed'],
      ],
    );
    // The money: the success's ledger entry, once; the books and settlement still verify.
    const ledger = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ledger.entries WHERE kind = 'payment.succeeded' AND reference = $1`,
      [paid.id],
    );
    assert.equal(ledger.rows[0].n, 1);
    // Each settlement is an audit event, as from the API's upload.
    const audit = await db.query<{ resource_id: string }>(
      `SELECT resource_id FROM audit.events WHERE action = 'recon.flagged_payment_settled' AND resource_id = ANY($1)`,
      [[paid.id, unpaid.id]],
    );
    assert.deepEqual(audit.rows.map((a) => a.resource_id).sort(), [paid.id, unpaid.id].sort());
    const ledgerReport = await runLedgerVerify(db);
    assert.equal(ledgerReport.ok, true, JSON.stringify(ledgerReport));
    const settleReport = await runSettlementVerify(db, createLedgerService());
    assert.equal(settleReport.ok, true, JSON.stringify(settleReport.violations));
    await done(db);

    // The same file again changes nothing and says so.
    const again = cli('recon', 'ingest', '--bank', 'SIMBANK', file);
    assert.equal(again.status, 0, again.stderr);
    assert.notEqual(JSON.parse(again.stdout).status, 'ingested');
  } finally {
    await close();
  }
});

test('settle retry-compensation (the CLI) sends a refused credit again under a new reference; not twice; never to another VPA', async () => {
  const { open, done, cli, close } = await cliWithDb('tp-settle-cli-');
  try {
    // A late success reversed a day late, whose compensation credit the bank refused (a scripted
    // bank: the credit side of a bank's API, as in reversals/compensation.test.ts).
    let db = await open(true);
    const bank = scriptedCreditBank({ script: ['decline'], refunds: ['rejected'] });
    const clock = fixedClock('2026-12-02T06:00:00Z');
    const settlement = createSettlementService({
      db,
      ledger: createLedgerService(),
      banks: { connector: () => bank.connector },
      clock,
      logger: silentLogger,
      config: (await import('../src/config.ts')).loadConfig({ NODE_ENV: 'test' }).settlement,
      bankCodes: ['COMPBANK'],
      publicUrl: 'http://127.0.0.1:1',
      accounts: { getSettlementAccount: async () => null },
    });
    const pay = await insertPayment(db, {
      merchantId: `mer_${'c'.repeat(32)}`,
      amount: 700,
      status: 'expired',
      createdAt: new Date('2026-12-01T06:00:00Z'),
      bankCode: 'COMPBANK',
    });
    await db.query(`UPDATE payments.payments SET payer_vpa = 'ravi.kumar@okaxis' WHERE id = $1`, [pay]);
    await db.tx((tx) =>
      settlement.requests.request(tx, { paymentId: pay, amountPaise: 700, reason: 'late_success', sourceRef: 'cli' }),
    );
    await settlement.reversals.runReversals();
    clock.set(new Date('2026-12-06T18:30:00Z'));
    assert.equal(await settlement.reversals.runCompensation(), 1);
    await settlement.compensation.runCredits();
    const [refused] = await settlement.compensation.list({ paymentId: pay, limit: 10 });
    assert.equal(refused.status, 'failed');
    await done(db);

    const listed = cli('settle', 'compensations', '--status', 'failed');
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${pay} day 1 .* failed +${refused.credit_ref}`));

    const other = cli('settle', 'retry-compensation', pay, '1', '--reason', 'closed', '--vpa', 'new.ravi@okaxis');
    assert.equal(other.status, 1);
    assert.match(other.stderr, /second operator's approval/);

    const retried = cli(
      'settle',
      'retry-compensation',
      pay,
      '1',
      '--reason',
      'customer reopened the account',
      '--json',
    );
    assert.equal(retried.status, 0, retried.stderr);
    const out = JSON.parse(retried.stdout);
    assert.equal(out.compensation.status, 'due');
    assert.notEqual(out.compensation.credit_ref, refused.credit_ref);
    assert.equal(out.retry.failed_credit_ref, refused.credit_ref);
    assert.equal(out.retry.requested_by.startsWith('cli:'), true);

    const again = cli('settle', 'retry-compensation', pay, '1', '--reason', 'twice');
    assert.equal(again.status, 1);
    assert.match(again.stderr, /compensation_not_retryable/);

    db = await open();
    const audit = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit.events WHERE action = 'settlement.compensation_retried' AND resource_id = $1`,
      [`${pay}:1`],
    );
    assert.equal(audit.rows[0].n, 1);
    const settleReport = await runSettlementVerify(db, createLedgerService());
    assert.equal(settleReport.ok, true, JSON.stringify(settleReport.violations));
    await done(db);
  } finally {
    await close();
  }
});
