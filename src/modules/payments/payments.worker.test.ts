import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../../platform/testing.ts';
import { fixedClock } from '../../platform/clock.ts';
import { loadConfig } from '../../config.ts';
import { createMetrics } from '../../metrics.ts';
import { createLogger } from '../../platform/log.ts';
import { AppError } from '../../platform/errors.ts';
import type { Db } from '../../platform/db.ts';
import { newId, txnRefFromPaymentId } from '../../platform/ids.ts';
import { createLedgerService, runLedgerVerify } from '../ledger/index.ts';
import { BankCallError, type BankConnector, type BankResult } from '../banks/index.ts';
import { createPaymentsService } from './payments.service.ts';
import * as repo from './payments.repo.ts';
import { createTestVault, type Vault } from '../vault/index.ts';
import { PAYER_VPA_FIELD } from './payments.fields.ts';
import type { Principal } from '../../platform/principal.ts';

// The worker's jobs against a scripted bank: each test says what the bank will answer and
// checks where the payment ends up. Real database, fake bank (the bank's side is what varies).

const ok = (responseCode: string, outcome: BankResult['outcome'], extra: Partial<BankResult> = {}): BankResult => ({
  responseCode,
  outcome,
  ...extra,
});

function scriptedBank() {
  const script = {
    intent: [] as (() => Promise<{ bankRef?: string }>)[],
    status: [] as BankResult[],
    refund: [] as BankResult[],
    refundStatus: [] as BankResult[],
  };
  const calls: string[] = [];
  const connector: BankConnector = {
    code: 'SIMBANK',
    async registerIntent() {
      calls.push('intent');
      return (script.intent.shift() ?? (async () => ({ bankRef: 'BR1' })))();
    },
    async sendCollect() {
      calls.push('collect');
      return ok('01', 'pending');
    },
    async checkStatus() {
      calls.push('status');
      const r = script.status.shift();
      if (!r) throw new AppError('bank_unavailable', 'no scripted answer');
      return r;
    },
    async refund() {
      calls.push('refund');
      return script.refund.shift() ?? ok('00', 'success');
    },
    async checkRefundStatus() {
      calls.push('refund_status');
      return script.refundStatus.shift() ?? ok('01', 'pending');
    },
    parseCallback() {
      throw new Error('unused');
    },
  };
  return { script, calls, banks: { route: async () => connector, connector: () => connector } };
}

describe('payment worker jobs', () => {
  let db: Db;
  let terminalId: string;
  const principal: Principal = { kind: 'api_key', id: 'key_test', merchantId: null, permissions: new Set() };
  const clock = fixedClock('2026-03-01T10:00:00Z');
  const config = loadConfig({ NODE_ENV: 'test' }); // UPI defaults: first check after 90 s, at most 3
  let bank: ReturnType<typeof scriptedBank>;
  let svc: ReturnType<typeof createPaymentsService>;
  let vault: Vault;

  before(async () => {
    db = await createTestDb();
    vault = await createTestVault(db, { fields: [PAYER_VPA_FIELD] });
    const m = newId('merchant');
    const s = newId('store');
    terminalId = newId('terminal');
    await db.query(
      `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'W', 'w@simbank', '5411', 'SIMBANK')`,
      [m],
    );
    await db.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'S')`, [s, m]);
    await db.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1, $2, $3)`, [
      terminalId,
      m,
      s,
    ]);
  });
  after(() => db.close());
  beforeEach(() => {
    bank = scriptedBank();
    svc = createPaymentsService({
      db,
      ledger: createLedgerService(),
      banks: bank.banks,
      config,
      metrics: createMetrics(),
      clock,
      logger: createLogger({ level: 'silent' }),
      payerVpa: vault.cipher,
    });
  });

  const create = (amount = 1000) =>
    svc.create(principal, { terminal_id: terminalId, amount, currency: 'INR', method: 'upi_qr' });
  const get = (id: string) => svc.get(principal, id);
  /** The payment's status changes that refunds caused, in order. */
  const refundMoves = async (id: string) =>
    (
      await db.query<{ from_status: string; to_status: string; source: string; detail: string }>(
        `SELECT from_status, to_status, source, detail FROM payments.payment_events
          WHERE payment_id = $1 AND detail LIKE 'refund %' AND from_status <> to_status ORDER BY id`,
        [id],
      )
    ).rows;

  test('no status check before 90 s; a check that finds the payment paid completes it', async () => {
    const p = await create();
    clock.advance(60_000);
    assert.equal(await svc.runStatusChecks(), 0, 'too early for the first check');
    clock.advance(31_000);
    bank.script.status.push(ok('00', 'success', { bankRef: 'RRN1', payerVpa: 'late.payer@okhdfc' }));
    assert.equal(await svc.runStatusChecks(), 1);
    const g = await get(p.id);
    assert.equal(g.status, 'succeeded');
    assert.equal(g.payer_vpa, 'la****@okhdfc');
    assert.equal((await runLedgerVerify(db)).ok, true);
  });

  test('at most 3 status checks, then expiry gives a final check and expires the unpaid QR', async () => {
    const p = await create();
    for (let i = 0; i < 5; i++) {
      clock.advance(91_000 + 600_000);
      bank.script.status.push(ok('01', 'pending'));
      await svc.runStatusChecks();
    }
    assert.equal(bank.calls.filter((c) => c === 'status').length, 3, 'three checks at most');
    assert.equal((await get(p.id)).status, 'pending');
    bank.script.status.length = 0;
    bank.script.status.push(ok('01', 'pending'));
    assert.ok((await svc.runExpiry()) >= 1);
    const g = await get(p.id);
    assert.equal(g.status, 'expired');
    assert.equal(g.bank.response_code, 'U69');
  });

  test('expiry first asks the bank: a payment paid at the last moment succeeds instead of expiring', async () => {
    const p = await create();
    clock.advance(301_000);
    bank.script.status.push(ok('00', 'success'));
    await svc.runExpiry();
    assert.equal((await get(p.id)).status, 'succeeded');
  });

  test('a deemed answer flags the payment for reconciliation and no job touches it again', async () => {
    const p = await create();
    clock.advance(91_000);
    bank.script.status.push(ok('U67', 'deemed'));
    await svc.runStatusChecks();
    let g = await get(p.id);
    assert.equal(g.status, 'pending');
    assert.equal(g.needs_reconciliation, true);
    clock.advance(3_600_000);
    const before = bank.calls.length;
    await svc.runStatusChecks();
    await svc.runExpiry();
    assert.equal(bank.calls.length, before, 'reconciliation decides, not the worker');
    g = await get(p.id);
    assert.equal(g.status, 'pending');
  });

  test('a bank timeout while registering leaves the payment pending with a status check scheduled', async () => {
    bank.script.intent.push(async () => {
      throw new BankCallError('uncertain', 'timed out', { timeout: true });
    });
    const p = await create();
    assert.equal(p.status, 'pending');
    clock.advance(91_000);
    bank.script.status.push(ok('00', 'success'));
    await svc.runStatusChecks();
    assert.equal((await get(p.id)).status, 'succeeded');
  });

  test('a bank that refuses before accepting fails the payment with a 503 and nothing to reconcile', async () => {
    bank.script.intent.push(async () => {
      throw new BankCallError('not_sent', 'connection refused', {});
    });
    await assert.rejects(
      create(),
      (e: AppError) => e.code === 'bank_unavailable' && typeof (e.details as any)?.payment_id === 'string',
    );
  });

  test('a refund the bank leaves pending is settled by the refund status job', async () => {
    const p = await create(2000);
    clock.advance(91_000);
    bank.script.status.push(ok('00', 'success'));
    await svc.runStatusChecks();
    bank.script.refund.push(ok('01', 'pending'));
    const r = await svc.refund(principal, p.id, { amount: 500 });
    assert.equal(r.status, 'pending');
    assert.equal((await get(p.id)).refundable_amount, 1500, 'the pending refund is reserved');
    clock.advance(91_000);
    bank.script.refundStatus.push(ok('00', 'success'));
    assert.equal(await svc.runRefundChecks(), 1);
    const g = await get(p.id);
    assert.equal(g.status, 'partially_refunded');
    assert.equal(g.refunded_amount, 500);
    assert.equal((await runLedgerVerify(db)).ok, true);
    // The payment's change is recorded as the worker's doing: it brought the bank's answer.
    assert.deepEqual(await refundMoves(p.id), [
      { from_status: 'succeeded', to_status: 'partially_refunded', source: 'worker', detail: `refund ${r.id}` },
    ]);
    // A refund settled by the bank's callback: the change is the callback's.
    bank.script.refund.push(ok('01', 'pending'));
    const r2 = await svc.refund(principal, p.id, { amount: 1500 });
    const row = (await repo.getRefund(db, r2.id))!;
    await svc.handleCallback('SIMBANK', { kind: 'refund', ref: row.refund_ref, result: ok('00', 'success') });
    assert.equal((await get(p.id)).status, 'refunded');
    assert.deepEqual((await refundMoves(p.id))[1], {
      from_status: 'partially_refunded',
      to_status: 'refunded',
      source: 'callback',
      detail: `refund ${r2.id}`,
    });
    // And one the bank settles in its answer to the request: the API call's.
    const p2 = await create(800);
    clock.advance(91_000);
    bank.script.status.push(ok('00', 'success'));
    await svc.runStatusChecks();
    await svc.refund(principal, p2.id, { amount: 800 });
    assert.deepEqual(
      (await refundMoves(p2.id)).map((e) => [e.to_status, e.source]),
      [['refunded', 'api']],
    );
  });

  test('a refund the bank took but whose answer cannot be recorded stays pending (never an error to retry), and the status job records it', async () => {
    let failures = 1;
    const withHook = createPaymentsService({
      db,
      ledger: createLedgerService(),
      banks: bank.banks,
      config,
      metrics: createMetrics(),
      clock,
      logger: createLogger({ level: 'silent' }),
      payerVpa: vault.cipher,
      hooks: [
        {
          async onRefunded() {
            if (failures-- > 0) throw new Error('the database could not record it');
          },
        },
      ],
    });
    const p = await withHook.create(principal, {
      terminal_id: terminalId,
      amount: 2000,
      currency: 'INR',
      method: 'upi_qr',
    });
    clock.advance(91_000);
    bank.script.status.push(ok('00', 'success'));
    await withHook.runStatusChecks();
    bank.script.refund.push(ok('00', 'success'));
    const r = await withHook.refund(principal, p.id, { amount: 700 });
    assert.equal(r.status, 'pending', 'an answer, not an error: a retry would refund twice');
    assert.equal((await get(p.id)).refundable_amount, 1300, 'its amount stays reserved');
    assert.equal(bank.calls.filter((c) => c === 'refund').length, 1);
    clock.advance(91_000);
    bank.script.refundStatus.push(ok('00', 'success'));
    assert.equal(await withHook.runRefundChecks(), 1);
    const g = await get(p.id);
    assert.equal(g.refunded_amount, 700);
    assert.equal(g.status, 'partially_refunded');
    assert.equal(bank.calls.filter((c) => c === 'refund').length, 1, 'the bank was asked to refund once');
    assert.equal((await runLedgerVerify(db)).ok, true);
  });

  test('a refund the bank leaves pending is asked at most 3 times, then flagged with its amount still reserved', async () => {
    const p = await create(2000);
    clock.advance(91_000);
    bank.script.status.push(ok('00', 'success'));
    await svc.runStatusChecks();
    bank.script.refund.push(ok('01', 'pending'));
    const r = await svc.refund(principal, p.id, { amount: 700 });
    const asked = () => bank.calls.filter((c) => c === 'refund_status').length;
    const before = asked();
    for (let i = 0; i < 6; i++) {
      clock.advance(700_000);
      bank.script.refundStatus.push(i % 2 ? ok('U48', 'unknown') : ok('01', 'pending'));
      await svc.runRefundChecks();
    }
    assert.equal(asked() - before, 3, 'three checks, then no more');
    const [rf] = (await svc.listRefunds(principal, p.id)).data;
    assert.equal(rf.id, r.id);
    assert.equal(rf.status, 'pending');
    assert.equal(rf.needs_reconciliation, true);
    const g = await get(p.id);
    assert.equal(g.refundable_amount, 1300, 'the 700 stays reserved');
    assert.equal(g.needs_reconciliation, true);
    bank.script.refundStatus.length = 0;
  });

  test('a deemed answer for a refund flags it at once', async () => {
    const p = await create(2000);
    clock.advance(91_000);
    bank.script.status.push(ok('00', 'success'));
    await svc.runStatusChecks();
    bank.script.refund.push(ok('U67', 'deemed'));
    const r = await svc.refund(principal, p.id, { amount: 2000 });
    assert.equal(r.status, 'pending');
    assert.equal(r.needs_reconciliation, true);
    const g = await get(p.id);
    assert.equal(g.refundable_amount, 0);
    assert.equal(g.needs_reconciliation, true);
    clock.advance(700_000);
    const before = bank.calls.length;
    await svc.runRefundChecks();
    assert.equal(
      bank.calls.filter((c, i) => i >= before && c === 'refund_status').length,
      0,
      'reconciliation decides, not the worker',
    );
  });

  test('a refund the bank declines releases the reserved amount', async () => {
    const p = await create(2000);
    clock.advance(91_000);
    bank.script.status.push(ok('00', 'success'));
    await svc.runStatusChecks();
    bank.script.refund.push(ok('U30', 'failed'));
    const r = await svc.refund(principal, p.id, { amount: 2000 });
    assert.equal(r.status, 'failed');
    const g = await get(p.id);
    assert.equal(g.status, 'succeeded');
    assert.equal(g.refundable_amount, 2000);
  });

  test('a create retried with the same client reference returns the first payment and asks the bank once', async () => {
    const first = await svc.create(
      principal,
      { terminal_id: terminalId, amount: 1500, currency: 'INR', method: 'upi_qr' },
      { clientRef: 'mqtt:req-1' },
    );
    const again = await svc.create(
      principal,
      { terminal_id: terminalId, amount: 1500, currency: 'INR', method: 'upi_qr' },
      { clientRef: 'mqtt:req-1' },
    );
    assert.equal(again.id, first.id);
    assert.equal(again.status, 'pending');
    assert.deepEqual(bank.calls, ['intent'], 'one bank call');
    const n = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM payments.payments WHERE client_ref = 'mqtt:req-1'`,
    );
    assert.equal(n.rows[0].n, 1);
    await assert.rejects(
      svc.create(
        principal,
        { terminal_id: terminalId, amount: 1600, currency: 'INR', method: 'upi_qr' },
        { clientRef: 'mqtt:req-1' },
      ),
      (e: unknown) => e instanceof AppError && e.code === 'idempotency_key_reused',
    );
  });

  test('after a crash between writing a payment and asking its bank: the retry finds it, and expiry closes it', async () => {
    // What create() writes before the bank call, left as a process that died right then leaves it.
    const id = newId('payment');
    await repo.insertPayment(db, {
      id,
      txn_ref: txnRefFromPaymentId(id),
      merchant_id: (
        await db.query<{ merchant_id: string }>('SELECT merchant_id FROM merchants.terminals WHERE id = $1', [
          terminalId,
        ])
      ).rows[0].merchant_id,
      store_id: (
        await db.query<{ store_id: string }>('SELECT store_id FROM merchants.terminals WHERE id = $1', [terminalId])
      ).rows[0].store_id,
      terminal_id: terminalId,
      method: 'upi_qr',
      amount: 700,
      currency: 'INR',
      payer_vpa_ct: null,
      payer_vpa_bidx: null,
      note: null,
      upi_uri: null,
      bank_code: 'SIMBANK',
      expires_at: new Date(clock.now().getTime() + 300_000),
      now: clock.now(),
      client_ref: 'mqtt:req-crash',
    });
    const retried = await svc.create(
      principal,
      { terminal_id: terminalId, amount: 700, currency: 'INR', method: 'upi_qr' },
      { clientRef: 'mqtt:req-crash' },
    );
    assert.equal(retried.id, id);
    assert.equal(retried.status, 'created');
    assert.deepEqual(bank.calls, [], 'the retry does not start a second payment at the bank');
    clock.advance(301_000);
    // The bank never heard of it (U48). Earlier tests' open payments get their final check too.
    for (let i = 0; i < 100; i++) bank.script.status.push(ok('U48', 'unknown'));
    assert.ok((await svc.runExpiry()) >= 1);
    const g = await get(id);
    assert.equal(g.status, 'failed');
    assert.equal(g.bank.response_code, 'U69');
    assert.equal((await runLedgerVerify(db)).ok, true);
  });
});
