// Helpers for the rewards tests (not a test file itself): the real payments service and ledger
// over a test database, with a bank that accepts every intent and refund, so a test can drive
// payments to success, failure, expiry and refund and watch the points follow.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createTestDb } from '../../platform/testing.ts';
import { fixedClock } from '../../platform/clock.ts';
import { loadConfig } from '../../config.ts';
import { createMetrics } from '../../metrics.ts';
import { createLogger } from '../../platform/log.ts';
import { newId } from '../../platform/ids.ts';
import type { Db } from '../../platform/db.ts';
import type { Principal } from '../../platform/principal.ts';
import { createLedgerService, runLedgerVerify } from '../ledger/index.ts';
import type { BankConnector, BankResult } from '../banks/index.ts';
import { createMerchantsService } from '../merchants/index.ts';
import { createPaymentsService, PAYER_VPA_FIELD, type CreatePaymentInput } from '../payments/index.ts';
import { createTestVault } from '../vault/index.ts';
import { createRewardsService, type ProgramInput } from './rewards.service.ts';
import { verifyRewards } from './rewards.verify.ts';
import { createCustomerHasher } from './customers.ts';

export const platform: Principal = { kind: 'api_key', id: 'key_test', merchantId: null, permissions: new Set() };

function acceptingBank(): { banks: { route(): Promise<BankConnector>; connector(): BankConnector } } {
  const ok = (responseCode: string, outcome: BankResult['outcome']): BankResult => ({ responseCode, outcome });
  const connector: BankConnector = {
    code: 'SIMBANK',
    registerIntent: async () => ({ bankRef: 'BR' + randomBytes(4).toString('hex') }),
    sendCollect: async () => ok('01', 'pending'),
    checkStatus: async () => ok('01', 'pending'),
    refund: async () => ok('00', 'success'),
    checkRefundStatus: async () => ok('00', 'success'),
    parseCallback() {
      throw new Error('unused');
    },
  };
  return { banks: { route: async () => connector, connector: () => connector } };
}

/**
 * `longWayOnly`: the rewards hook is given to payments without its SQL part, so every success
 * completes the long way (onSucceeded in a transaction): the reference the one-statement earn is
 * compared with (rewards.completion.test.ts).
 */
export async function rewardsWorld(opts: { start?: string; db?: Db; longWayOnly?: boolean } = {}) {
  const db = opts.db ?? (await createTestDb());
  const clock = fixedClock(opts.start ?? '2026-03-02T06:30:00Z'); // a Monday, 12:00 in Kolkata
  const config = loadConfig({ NODE_ENV: 'test', STATUS_CHECK_FIRST_AFTER_SECONDS: '0' });
  const logger = createLogger({ level: 'silent' });
  const ledger = createLedgerService();
  const vault = await createTestVault(db, { fields: [PAYER_VPA_FIELD] });
  const merchants = createMerchantsService({
    db,
    bankCodes: ['SIMBANK'],
    vpaPattern: config.payments.vpaPattern,
    fields: vault.cipher,
  });
  const hooks: NonNullable<Parameters<typeof createPaymentsService>[0]['hooks']> = [];
  const { banks } = acceptingBank();
  const payments = createPaymentsService({
    db,
    ledger,
    banks,
    config,
    metrics: createMetrics(),
    clock,
    logger,
    hooks,
    payerVpa: vault.cipher,
  });
  const customerKey = randomBytes(32);
  const rewards = createRewardsService({
    db,
    ledger,
    clock,
    logger,
    merchants,
    vpaPattern: config.payments.vpaPattern,
    customerKey,
    batchSize: 1000,
  });
  const hasher = createCustomerHasher(customerKey);
  hooks.push(
    opts.longWayOnly ? { ...rewards.hooks, succeededSql: undefined, succeededSetSql: undefined } : rewards.hooks,
  );

  async function seedMerchant(mcc = '5411') {
    const m = await merchants.createMerchant(platform, {
      name: 'Shop',
      vpa: `shop${randomBytes(4).toString('hex')}@simbank`,
      mcc,
      acquiring_bank: 'SIMBANK',
    });
    const s = await merchants.createStore(platform, m.id, { name: 'Main' });
    const t = await merchants.createTerminal(platform, { store_id: s.id });
    return { merchantId: m.id, storeId: s.id, terminalId: t.id };
  }

  async function createPayment(terminalId: string, amount: number, extra: Partial<CreatePaymentInput> = {}) {
    return payments.create(platform, { terminal_id: terminalId, amount, currency: 'INR', method: 'upi_qr', ...extra });
  }

  /** The bank confirms the payment, naming the payer. */
  async function succeed(paymentId: string, payerVpa?: string) {
    const p = await payments.get(platform, paymentId);
    await payments.handleCallback('SIMBANK', {
      kind: 'payment',
      ref: p.txn_ref,
      result: { outcome: 'success', responseCode: '00', payerVpa, amountPaise: p.amount },
    });
    return payments.get(platform, paymentId);
  }

  async function fail(paymentId: string) {
    const p = await payments.get(platform, paymentId);
    await payments.handleCallback('SIMBANK', {
      kind: 'payment',
      ref: p.txn_ref,
      result: { outcome: 'failed', responseCode: 'ZA' },
    });
    return payments.get(platform, paymentId);
  }

  async function pay(terminalId: string, amount: number, payerVpa: string, extra: Partial<CreatePaymentInput> = {}) {
    const p = await createPayment(terminalId, amount, extra);
    return succeed(p.id, payerVpa);
  }

  async function program(merchantId: string | undefined, over: Partial<ProgramInput> = {}) {
    return rewards.createProgram(platform, {
      merchant_id: merchantId,
      name: 'Points',
      point_value_paise: 25,
      earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
      ...over,
    });
  }

  const balance = (merchantId: string, vpa: string) => rewards.balance(platform, { merchant_id: merchantId, vpa });

  /** The customer's id in a program (tests only: they hold the HMAC key). */
  async function customerId(programId: string, vpa: string): Promise<string | undefined> {
    const r = await db.query<{ id: string }>(
      `SELECT id FROM rewards.customers WHERE program_id = $1 AND customer_hash = $2`,
      [programId, hasher(`vpa:${vpa.toLowerCase()}`)],
    );
    return r.rows[0]?.id;
  }

  /** Every invariant: the ledger's own, and the rewards tables against the PTS book. */
  async function check() {
    const ledgerReport = await runLedgerVerify(db);
    const pts = await db.query<{ total: string }>(
      `SELECT coalesce(sum(p.amount), 0)::text AS total FROM ledger.postings p JOIN ledger.entries e ON e.id = p.entry_id WHERE e.book = 'PTS'`,
    );
    const negative = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM rewards.lots WHERE remaining < 0 OR remaining > points`,
    );
    return {
      ledger: ledgerReport.violations,
      ptsSum: pts.rows[0].total,
      negativeLots: negative.rows[0].n,
      rewards: await verifyRewards(db),
    };
  }

  /** Asserts every invariant check() reads: a clean ledger, a PTS book summing to zero, no lot out of range, rewards agreeing with the book. */
  async function assertInvariants() {
    const c = await check();
    assert.deepEqual(c.ledger, [], 'ledger verify');
    assert.equal(c.ptsSum, '0', 'the PTS book sums to zero');
    assert.equal(c.negativeLots, 0, 'no lot below zero or above its points');
    assert.deepEqual(c.rewards, [], 'lots, statement and ledger agree');
  }

  /** Empties the rewards, ledger and payment tables, so a property run starts from nothing. */
  async function reset() {
    await db.query(`TRUNCATE rewards.movements, rewards.adjustments, rewards.payment_links, rewards.lot_consumptions, rewards.redemptions,
                             rewards.earnings, rewards.lots, rewards.customers, rewards.earn_rules, rewards.program_merchants, rewards.programs,
                             ledger.postings, ledger.entries, ledger.accounts, payments.payment_events, payments.refunds, payments.payments CASCADE`);
  }

  return {
    db,
    clock,
    reset,
    config,
    ledger,
    merchants,
    payments,
    rewards,
    seedMerchant,
    createPayment,
    succeed,
    fail,
    pay,
    program,
    balance,
    customerId,
    check,
    assertInvariants,
    newPaymentId: () => newId('payment'),
  };
}

export type RewardsWorld = Awaited<ReturnType<typeof rewardsWorld>>;
