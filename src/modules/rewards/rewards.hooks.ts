import type { Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import type { PaymentHint, PaymentHooks, PaymentRow, CreatePaymentInput } from '../payments/index.ts';
import { newJournalId } from '../ledger/index.ts';
import type { CustomerHasher, CustomerIdentity } from './customers.ts';
import { rewardsId } from './ids.ts';
import * as points from './points.ts';
import * as repo from './rewards.repo.ts';
import { computeEarn, localTime, type EarnBreakdown, type EarnRule } from './rules.ts';
import type { ProgramRow, RedemptionRow } from './rewards.repo.ts';

const MAX_CACHED_PROGRAMS = 50_000;

// How rewards follow a payment. Each hook runs inside the payment's own transaction, so the
// points move if and only if the payment's change commits:
//   created      -> the customer named at the till is linked; points to redeem are reserved
//   succeeded    -> reserved points are spent; the payment earns (same transaction, just before its ledger entry)
//   closed unpaid-> reserved points are released
//   refunded     -> earned points are clawed back and redeemed points returned, pro rata

interface HookDeps {
  engine: points.PointsDeps;
  clock: Clock;
  hashOf(id: CustomerIdentity): Buffer;
  hasher: CustomerHasher;
}

const bad = (field: string, problem: string) =>
  new AppError('validation_failed', `${field} ${problem}`, [{ field, problem }]);

export function createRewardsHooks({ engine, clock, hashOf, hasher }: HookDeps): PaymentHooks {
  async function onCreated(tx: Queryable, payment: PaymentRow, input: CreatePaymentInput) {
    const r = input.rewards;
    if (!r) return;
    const named = (r.vpa !== undefined && r.vpa !== '') || (r.phone !== undefined && r.phone !== '');
    const identity: CustomerIdentity | undefined = named
      ? { vpa: r.vpa, phone: r.phone }
      : payment.payer_vpa
        ? { vpa: payment.payer_vpa }
        : undefined;
    if (!identity)
      throw bad('body.rewards.vpa', 'or body.rewards.phone is needed to name the customer (or give payer_vpa)');
    const hash = hashOf(identity);
    const redeem = r.redeem_points;
    if (
      redeem !== undefined &&
      (typeof redeem !== 'number' || !Number.isSafeInteger(redeem) || redeem < 1 || redeem > 1_000_000_000)
    ) {
      throw bad('body.rewards.redeem_points', 'must be an integer from 1 to 1,000,000,000');
    }
    const program = await repo.programForMerchant(tx, payment.merchant_id);
    if (program?.status !== 'active') {
      // Naming a customer where there is nothing to earn is harmless; burning points is not.
      if (redeem === undefined) return;
      throw new AppError('redemption_not_allowed', 'The merchant has no active rewards program');
    }
    const now = clock.now();
    const c = await repo.lockOrCreateCustomer(tx, rewardsId('customer'), program.id, hash, now);
    await repo.insertLink(tx, { payment_id: payment.id, program_id: program.id, customer_id: c.id, now });
    if (redeem === undefined) return;
    if (redeem < program.redeem_min_points) {
      throw new AppError(
        'redemption_not_allowed',
        `At least ${program.redeem_min_points} points must be redeemed at once`,
        { min_points: program.redeem_min_points },
      );
    }
    const value = redeem * program.point_value_paise;
    if (!Number.isSafeInteger(value)) throw bad('body.rewards.redeem_points', 'is too large');
    // value / basket <= max share, in integers: value × 10000 <= (amount + value) × bp. (Never
    // reached when bp = 10000, so the divisor below is not 0.)
    if (BigInt(value) * 10_000n > BigInt(payment.amount + value) * BigInt(program.redeem_max_basket_bp)) {
      const maxPoints = Number(
        (BigInt(payment.amount) * BigInt(program.redeem_max_basket_bp)) /
          (BigInt(10_000 - program.redeem_max_basket_bp) * BigInt(program.point_value_paise)),
      );
      throw new AppError(
        'redemption_not_allowed',
        `Points may pay at most ${program.redeem_max_basket_bp / 100}% of the basket`,
        { max_basket_bp: program.redeem_max_basket_bp, max_redeem_points: maxPoints },
      );
    }
    await points.reserve(
      engine,
      tx,
      program,
      c,
      {
        paymentId: payment.id,
        merchantId: payment.merchant_id,
        points: redeem,
        valuePaise: value,
        mode: r.mode ?? 'split_tender',
      },
      now,
    );
  }

  /**
   * Each merchant's program and rules as this process last saw them. Only ever a hint: the
   * database checks the version on every earn and answers "stale" (with the current context)
   * when a program, its rules or the merchant's membership changed, and the long way is taken.
   */
  const programs = new Map<string, { program: ProgramRow; mcc: string | null; rules: EarnRule[] }>();
  const remember = (merchantId: string, ctx: repo.PaymentContext) => {
    if (programs.size >= MAX_CACHED_PROGRAMS) programs.clear();
    programs.set(merchantId, { program: ctx.program, mcc: ctx.mcc, rules: ctx.rules });
  };

  async function settle(tx: Queryable, p: Pick<ProgramRow, 'id'>, d: RedemptionRow | undefined, now: Date) {
    if (d?.status === 'reserved') await points.commit(engine, tx, p, d, now);
  }

  type Cached = { program: ProgramRow; mcc: string | null; rules: EarnRule[] };

  /**
   * The earn of a payment at a merchant whose program is cached and active, as far as the cache
   * knows it: nothing earned today and no budget yet (the SQL applies those under the row locks).
   * Rules are judged at the moment the customer paid at the till (`at`: the payment's created_at).
   */
  function planEarn(cached: Cached, p: { amount: number; store_id: string; created_at: Date }) {
    const b = computeEarn(cached.program, cached.rules, {
      amount: p.amount,
      mcc: cached.mcc,
      storeId: p.store_id,
      at: p.created_at,
      timezone: cached.program.timezone,
      earnedToday: 0,
      budgetLeft: null,
    });
    return {
      points: b.points,
      day: localTime(p.created_at, cached.program.timezone).day,
      dayCap: b.day_cap,
      breakdown: b as EarnBreakdown,
    };
  }

  const payerHashOf = (vpa: string | null | undefined) => (vpa ? hasher(`vpa:${vpa.toLowerCase()}`) : null);

  /**
   * The rewards part of the payments' one-statement completion (PaymentHooks.succeededSetSql):
   * rewards.earn_in_completion() (migration 0037) over the completed rows, with an earn planned
   * here for each payment whose hint names a merchant with a cached active program. The function
   * checks every hint against its row and the program's version, and writes the earns with their
   * PTS entries as the long way does; anything it cannot vouch for answers false (TPP01: the
   * statement is rolled back and onSucceeded runs). The payer's VPA is hashed here; only the hash
   * and the blind index the row must carry reach SQL.
   */
  function succeededSetSql(rows: string, param: (value: unknown) => string, facts: ReadonlyMap<string, PaymentHint>) {
    const plans: Record<string, unknown> = {};
    for (const [paymentId, h] of facts) {
      const cached = programs.get(h.merchant_id);
      if (cached?.program.status !== 'active') continue;
      // A blind index without the VPA: the payer is not known here, so no plan (the long way).
      if (h.payer_vpa_bidx !== null && h.payer_vpa === null) continue;
      const plan = planEarn(cached, h);
      plans[paymentId] = {
        payment_id: paymentId,
        merchant_id: h.merchant_id,
        store_id: h.store_id,
        created_at: h.created_at.toISOString(),
        amount: h.amount,
        payer_vpa_bidx: h.payer_vpa_bidx,
        payer_hash: payerHashOf(h.payer_vpa)?.toString('hex') ?? null,
        program_id: cached.program.id,
        version: cached.program.version,
        points: plan.points,
        day: plan.day,
        day_cap: plan.dayCap,
        breakdown: plan.breakdown,
        customer_id: rewardsId('customer'),
        lot_id: rewardsId('lot'),
        movement_id: rewardsId('movement'),
        journal_id: newJournalId(),
        accounts: points.earnedAccountsSql(cached.program),
      };
    }
    return repo.earnInCompletionSql(rows, param, plans, clock.now());
  }

  async function onSucceeded(tx: Queryable, payment: PaymentRow) {
    const payerHash = payerHashOf(payment.payer_vpa);
    const now = clock.now();
    // Rules are judged at the moment the customer paid at the till.
    const at = payment.created_at;
    const cached = programs.get(payment.merchant_id);
    const plan = cached && cached.program.status === 'active' ? planEarn(cached, payment) : undefined;
    // One round trip in the common case; it also says whether there is anything to do at all.
    const r = await repo.earnPayment(tx, {
      merchantId: payment.merchant_id,
      paymentId: payment.id,
      payerHash,
      programId: cached?.program.id ?? null,
      version: cached?.program.version ?? null,
      points: plan?.points ?? 0,
      day: plan?.day ?? null,
      dayCap: plan?.dayCap ?? null,
      amount: payment.amount,
      breakdown: plan?.breakdown ?? {},
      customerId: rewardsId('customer'),
      lotId: rewardsId('lot'),
      movementId: rewardsId('movement'),
      now,
    });
    if (r.state === 'none') return;
    if (r.state === 'inactive') return settle(tx, cached!.program, r.redemption, now);
    if (r.state === 'earned') {
      await settle(tx, cached!.program, r.redemption, now);
      if (r.points > 0)
        await points.postEarned(engine, tx, cached!.program, r.customer_id, payment.id, r.points, r.pending);
      return;
    }
    // Stale or not cached: the context is loaded and locked; earn the long way, and remember.
    const ctx = r.ctx;
    if (!ctx) return;
    remember(payment.merchant_id, ctx);
    const p = ctx.program;
    await settle(tx, p, ctx.redemption, now);
    if (p.status !== 'active') return;
    let c = ctx.customer;
    if (!c) {
      if (!payerHash) return;
      c = await repo.lockOrCreateCustomer(tx, rewardsId('customer'), p.id, payerHash, now, true);
    }
    const day = localTime(at, p.timezone).day;
    const budgetLeft = p.budget_points === null ? null : p.budget_points - (ctx.lockedBudgetUsed ?? p.budget_used);
    const b = computeEarn(p, ctx.rules, {
      amount: payment.amount,
      mcc: ctx.mcc,
      storeId: payment.store_id,
      at,
      timezone: p.timezone,
      earnedToday: c.earn_day === day ? c.day_earned : 0,
      budgetLeft,
    });
    await points.earn(
      engine,
      tx,
      p,
      c,
      {
        paymentId: payment.id,
        merchantId: payment.merchant_id,
        amount: payment.amount,
        points: b.points,
        breakdown: b,
        day,
        budgetDelta: p.budget_points === null ? 0 : b.points,
      },
      now,
    );
  }

  async function onClosedUnpaid(tx: Queryable, payment: PaymentRow) {
    const d = await repo.getRedemptionByPayment(tx, payment.id);
    if (d?.status !== 'reserved') return;
    const c = (await repo.lockCustomer(tx, d.customer_id))!;
    const p = (await repo.getProgram(tx, d.program_id))!;
    await points.release(engine, tx, p, c, d, clock.now());
  }

  async function onRefunded(tx: Queryable, payment: PaymentRow, refund: { id: string }) {
    const e = await repo.getEarning(tx, payment.id);
    const d = e ? undefined : await repo.getRedemptionByPayment(tx, payment.id);
    const owner = e ?? d;
    if (!owner) return;
    const c = (await repo.lockCustomer(tx, owner.customer_id))!;
    const p = (await repo.getProgram(tx, owner.program_id))!;
    const now = clock.now();
    await points.clawback(engine, tx, p, c, refund.id, payment.id, payment.refunded_amount, payment.amount, now);
    await points.giveBack(engine, tx, p, c, refund.id, payment.id, payment.refunded_amount, payment.amount, now);
  }

  return {
    onCreated,
    // Only a payment that names a customer or redeems points has work here.
    createNeedsTransaction: (input) => input.rewards !== undefined,
    onSucceeded,
    // In the payment's one-statement completion: done when there is nothing to earn (the merchant
    // is in no program and no customer was named), or when the earn was planned from the payment's
    // hint and this process's cached program and written by the statement; otherwise onSucceeded.
    succeededSetSql,
    // Only a paused program this process knows of: the one statement does not settle what it
    // would (a reserved redemption), so straight to onSucceeded. An active one is earned in it.
    succeededNeedsLongWay: (merchantId) => {
      const cached = programs.get(merchantId);
      return cached !== undefined && cached.program.status !== 'active';
    },
    onClosedUnpaid,
    onRefunded,
  };
}
