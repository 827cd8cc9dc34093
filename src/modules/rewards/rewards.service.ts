import type { Logger } from 'pino';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { isId } from '../../platform/ids.ts';
import type { Principal } from '../../platform/principal.ts';
import { canAccessMerchant, merchantScope } from '../../platform/principal.ts';
import { page } from '../../http/pagination.ts';
import type { LedgerService } from '../ledger/index.ts';
import type { PaymentHooks } from '../payments/index.ts';
import { getTerminalContext } from '../merchants/index.ts';
import { canonicalCustomer, createCustomerHasher, type CustomerHasher, type CustomerIdentity } from './customers.ts';
import { isRewardsId, rewardsId } from './ids.ts';
import * as points from './points.ts';
import * as repo from './rewards.repo.ts';
import type { ProgramPatch, ProgramRow } from './rewards.repo.ts';
import {
  computeEarn,
  isValidTimezone,
  localTime,
  MAX_RULES_PER_PROGRAM,
  normalizeRule,
  ROUNDING_MODES,
  ruleView,
  type Rounding,
  type RuleInput,
} from './rules.ts';
import { createRewardsHooks } from './rewards.hooks.ts';

// Programs, rules, membership, balances, statements, adjustments and quotes; the payment hooks
// and the worker's jobs. The points themselves only ever change through points.ts.

export interface RewardsDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  clock: Clock;
  logger: Logger;
  /** HMAC key for customer identities (REWARDS_CUSTOMER_KEY). */
  customerKey: Buffer;
  vpaPattern: RegExp;
  /** Looks a merchant up for the caller (membership needs the MCC). */
  merchants: { getMerchant(p: Principal, id: string): Promise<{ id: string; mcc: string }> };
  batchSize?: number;
}

export const DEFAULT_TIMEZONE = 'Asia/Kolkata';
const EXPIRING_WINDOW_MS = 30 * 86_400_000;

export function programView(p: ProgramRow) {
  return {
    id: p.id,
    owner_merchant_id: p.owner_merchant_id,
    name: p.name,
    status: p.status,
    point_value_paise: p.point_value_paise,
    earn: { points: p.earn_points, per_amount_paise: p.earn_per_paise, rounding: p.rounding },
    pending_period_seconds: p.pending_seconds,
    validity_days: p.validity_days,
    allow_negative_balance: p.allow_negative_balance,
    budget_points: p.budget_points,
    budget_used: p.budget_used,
    timezone: p.timezone,
    redemption: { min_points: p.redeem_min_points, max_basket_bp: p.redeem_max_basket_bp },
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
  };
}
export type ProgramView = ReturnType<typeof programView>;

export interface ProgramInput {
  merchant_id?: string;
  name: string;
  point_value_paise: number;
  earn: { points: number; per_amount_paise: number; rounding: string };
  pending_period_seconds?: number;
  validity_days?: number | null;
  allow_negative_balance?: boolean;
  budget_points?: number | null;
  timezone?: string;
  redemption?: { min_points?: number; max_basket_bp?: number };
  rules?: RuleInput[];
}

export type ProgramUpdate = Partial<Omit<ProgramInput, 'merchant_id' | 'allow_negative_balance' | 'rules'>> & {
  status?: 'active' | 'paused';
};

const invalid = (field: string, problem: string) =>
  new AppError('validation_failed', `${field} ${problem}`, [{ field, problem }]);

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw invalid(field, `must be an integer from ${min} to ${max}`);
  return v;
}

/** Checks the economic settings of a program (on create, and on update merged with what is stored). */
function normalizeSettings(i: ProgramUpdate, prefix = 'body'): ProgramPatch {
  const out: ProgramPatch = {};
  if (i.name !== undefined) out.name = i.name;
  if (i.status !== undefined) out.status = i.status;
  if (i.point_value_paise !== undefined)
    out.point_value_paise = int(i.point_value_paise, `${prefix}.point_value_paise`, 1, 100_000);
  if (i.earn !== undefined) {
    out.earn_points = int(i.earn.points, `${prefix}.earn.points`, 0, 1_000_000);
    out.earn_per_paise = int(i.earn.per_amount_paise, `${prefix}.earn.per_amount_paise`, 1, 1_000_000_000);
    if (!(ROUNDING_MODES as readonly string[]).includes(i.earn.rounding))
      throw invalid(`${prefix}.earn.rounding`, `must be one of ${ROUNDING_MODES.join(', ')}`);
    out.rounding = i.earn.rounding as Rounding;
  }
  if (i.pending_period_seconds !== undefined)
    out.pending_seconds = int(i.pending_period_seconds, `${prefix}.pending_period_seconds`, 0, 365 * 86_400);
  if (i.validity_days !== undefined)
    out.validity_days = i.validity_days === null ? null : int(i.validity_days, `${prefix}.validity_days`, 1, 36_500);
  if (i.budget_points !== undefined)
    out.budget_points =
      i.budget_points === null ? null : int(i.budget_points, `${prefix}.budget_points`, 0, Number.MAX_SAFE_INTEGER);
  if (i.timezone !== undefined) {
    if (!isValidTimezone(i.timezone)) throw invalid(`${prefix}.timezone`, 'is not a known IANA timezone');
    out.timezone = i.timezone;
  }
  if (i.redemption?.min_points !== undefined)
    out.redeem_min_points = int(i.redemption.min_points, `${prefix}.redemption.min_points`, 1, 1_000_000_000);
  if (i.redemption?.max_basket_bp !== undefined)
    out.redeem_max_basket_bp = int(i.redemption.max_basket_bp, `${prefix}.redemption.max_basket_bp`, 1, 10_000);
  return out;
}

function checkPendingWithinValidity(pendingSeconds: number, validityDays: number | null) {
  if (validityDays !== null && pendingSeconds >= validityDays * 86_400) {
    throw invalid('body.pending_period_seconds', 'must be shorter than the validity period');
  }
}

export function createRewardsService(deps: RewardsDeps) {
  const { db, clock, logger } = deps;
  const hasher: CustomerHasher = createCustomerHasher(deps.customerKey);
  const engine: points.PointsDeps = { ledger: deps.ledger };
  const batchSize = deps.batchSize ?? 100;
  const hashOf = (id: CustomerIdentity) => hasher(canonicalCustomer(id, deps.vpaPattern));

  /** A program the caller may see: its own, the coalition it is in, or any for a platform key. */
  async function visibleProgram(p: Principal, id: string, q: Queryable = db): Promise<ProgramRow> {
    const prog = isRewardsId('program', id) ? await repo.getProgram(q, id) : undefined;
    if (
      prog &&
      (p.merchantId === null || prog.owner_merchant_id === p.merchantId || (await repo.isMember(q, id, p.merchantId)))
    )
      return prog;
    throw new AppError('program_not_found', 'Program not found');
  }

  /** A program the caller may change: any for a platform key, else only the merchant's own. */
  async function ownedProgram(p: Principal, id: string, q: Queryable = db): Promise<ProgramRow> {
    const prog = await visibleProgram(p, id, q);
    if (p.merchantId !== null && prog.owner_merchant_id !== p.merchantId) {
      throw new AppError('forbidden', 'Only the platform can change a coalition program');
    }
    return prog;
  }

  /** The program of the merchant named in a request (scoped to the caller). */
  async function merchantProgram(p: Principal, merchantId: string | undefined, q: Queryable = db) {
    const mid = merchantScope(p, merchantId);
    if (!mid) throw invalid('merchant_id', 'is required for a platform key');
    if (!isId('merchant', mid)) throw new AppError('merchant_not_found', 'Merchant not found');
    const prog = await repo.programForMerchant(q, mid);
    if (!prog) throw new AppError('program_not_found', 'The merchant is not in a rewards program');
    return { merchantId: mid, program: prog };
  }

  async function balanceOf(q: Queryable, programId: string, customerId: string | undefined) {
    if (!customerId) return { program_id: programId, available: 0, pending: 0, expiring_30d: 0 };
    const now = clock.now();
    const b = await repo.balanceAt(q, customerId, now, new Date(now.getTime() + EXPIRING_WINDOW_MS));
    return { program_id: programId, available: b.available, pending: b.pending, expiring_30d: b.expiring };
  }

  async function createProgramTx(tx: Queryable, owner: { id: string; mcc: string } | null, input: ProgramInput) {
    const s = normalizeSettings({ ...input, status: undefined });
    if (s.point_value_paise === undefined || s.earn_points === undefined)
      throw invalid('body', 'point_value_paise and earn are required');
    const rules = (input.rules ?? []).map((r) => normalizeRule(r));
    const now = clock.now();
    const prog: Omit<ProgramRow, 'budget_used' | 'updated_at' | 'status' | 'version'> = {
      id: rewardsId('program'),
      owner_merchant_id: owner?.id ?? null,
      name: input.name,
      point_value_paise: s.point_value_paise,
      earn_points: s.earn_points,
      earn_per_paise: s.earn_per_paise!,
      rounding: s.rounding!,
      timezone: s.timezone ?? DEFAULT_TIMEZONE,
      pending_seconds: s.pending_seconds ?? 0,
      validity_days: s.validity_days ?? null,
      allow_negative_balance: input.allow_negative_balance ?? false,
      budget_points: s.budget_points ?? null,
      redeem_min_points: s.redeem_min_points ?? 1,
      redeem_max_basket_bp: s.redeem_max_basket_bp ?? 10_000,
      created_at: now,
    };
    checkPendingWithinValidity(prog.pending_seconds, prog.validity_days);
    if (owner && (await repo.programForMerchant(tx, owner.id))) {
      throw new AppError('conflict', 'The merchant already belongs to a rewards program');
    }
    const row = await repo.insertProgram(tx, prog);
    if (owner) await repo.addMember(tx, row.id, owner.id, owner.mcc, now);
    for (const r of rules) await repo.insertRule(tx, { id: rewardsId('rule'), program_id: row.id, ...r, now });
    return row;
  }

  const hooks: PaymentHooks = createRewardsHooks({ engine, clock, hashOf, hasher });

  return {
    hooks,

    // ---- programs ----

    async createProgram(p: Principal, input: ProgramInput): Promise<ProgramView> {
      const ownerId = p.merchantId ?? input.merchant_id;
      if (p.merchantId !== null && input.merchant_id !== undefined && input.merchant_id !== p.merchantId) {
        throw new AppError('merchant_not_found', 'Merchant not found');
      }
      const owner = ownerId ? await deps.merchants.getMerchant(p, ownerId) : null;
      return programView(await db.tx((tx) => createProgramTx(tx, owner, input)));
    },

    async getProgram(p: Principal, id: string): Promise<ProgramView> {
      return programView(await visibleProgram(p, id));
    },

    async listPrograms(p: Principal, q: { merchantId?: string; before?: string; limit: number }) {
      const rows = await repo.listPrograms(db, {
        merchantId: merchantScope(p, q.merchantId),
        before: q.before,
        limit: q.limit,
      });
      const pg = page(rows, q.limit);
      return { data: pg.data.map(programView), next_cursor: pg.next_cursor };
    },

    async updateProgram(p: Principal, id: string, input: ProgramUpdate): Promise<ProgramView> {
      const patch = normalizeSettings(input);
      return programView(
        await db.tx(async (tx) => {
          await ownedProgram(p, id, tx);
          const locked = (await repo.getProgram(tx, id, true))!;
          checkPendingWithinValidity(
            patch.pending_seconds ?? locked.pending_seconds,
            patch.validity_days !== undefined ? patch.validity_days : locked.validity_days,
          );
          if (
            patch.budget_points !== undefined &&
            patch.budget_points !== null &&
            patch.budget_points < locked.budget_used
          ) {
            throw new AppError(
              'conflict',
              `The program has already granted ${locked.budget_used} points; the budget cannot be lower`,
              { budget_used: locked.budget_used },
            );
          }
          return (await repo.updateProgram(tx, id, patch, clock.now()))!;
        }),
      );
    },

    // ---- rules ----

    async addRule(p: Principal, programId: string, input: RuleInput) {
      const r = normalizeRule(input);
      return db.tx(async (tx) => {
        await ownedProgram(p, programId, tx);
        await repo.getProgram(tx, programId, true); // one writer at a time, so the count holds
        if ((await repo.countRules(tx, programId)) >= MAX_RULES_PER_PROGRAM) {
          throw new AppError('conflict', `A program has at most ${MAX_RULES_PER_PROGRAM} rules`);
        }
        return ruleView(
          await repo.insertRule(tx, { id: rewardsId('rule'), program_id: programId, ...r, now: clock.now() }),
        );
      });
    },

    async listRules(p: Principal, programId: string) {
      await visibleProgram(p, programId);
      return { data: (await repo.listRules(db, programId)).map(ruleView), next_cursor: null };
    },

    async deleteRule(p: Principal, programId: string, ruleId: string) {
      await ownedProgram(p, programId);
      if (!isRewardsId('rule', ruleId) || !(await repo.deleteRule(db, programId, ruleId, clock.now())))
        throw new AppError('not_found', 'Rule not found');
    },

    // ---- membership (coalitions) ----

    async addMerchant(p: Principal, programId: string, merchantId: string) {
      if (p.merchantId !== null) throw new AppError('forbidden', 'Only the platform manages program membership');
      const m = await deps.merchants.getMerchant(p, merchantId);
      return db.tx(async (tx) => {
        await visibleProgram(p, programId, tx);
        const now = clock.now();
        if (!(await repo.addMember(tx, programId, m.id, m.mcc, now))) {
          throw new AppError('conflict', 'The merchant already belongs to a rewards program');
        }
        return { program_id: programId, merchant_id: m.id, mcc: m.mcc, joined_at: now.toISOString() };
      });
    },

    async removeMerchant(p: Principal, programId: string, merchantId: string) {
      if (p.merchantId !== null) throw new AppError('forbidden', 'Only the platform manages program membership');
      const prog = await visibleProgram(p, programId);
      if (prog.owner_merchant_id === merchantId) throw new AppError('conflict', "A program's owner cannot leave it");
      if (!(await repo.removeMember(db, programId, merchantId)))
        throw new AppError('merchant_not_found', 'The merchant is not in this program');
    },

    async listMerchants(p: Principal, programId: string) {
      await visibleProgram(p, programId);
      const rows = await repo.listMembers(db, programId);
      return {
        data: rows
          .filter((r) => canAccessMerchant(p, r.merchant_id))
          .map((r) => ({
            program_id: programId,
            merchant_id: r.merchant_id,
            mcc: r.mcc,
            joined_at: r.joined_at.toISOString(),
          })),
        next_cursor: null,
      };
    },

    // ---- customers ----

    async balance(p: Principal, q: { merchant_id?: string } & CustomerIdentity) {
      const hash = hashOf(q);
      const { program } = await merchantProgram(p, q.merchant_id);
      const c = await repo.findCustomer(db, program.id, hash);
      return balanceOf(db, program.id, c?.id);
    },

    async statement(p: Principal, q: { merchant_id?: string; before?: string; limit: number } & CustomerIdentity) {
      const hash = hashOf(q);
      const { program } = await merchantProgram(p, q.merchant_id);
      const c = await repo.findCustomer(db, program.id, hash);
      const rows = c ? await repo.listMovements(db, c.id, q.before, q.limit) : [];
      const pg = page(rows, q.limit);
      return {
        data: pg.data.map((m) => ({
          id: m.id,
          kind: m.kind,
          points: m.available_delta + m.pending_delta,
          available_delta: m.available_delta,
          pending_delta: m.pending_delta,
          payment_id: m.payment_id,
          reference: m.reference,
          detail: m.detail,
          created_at: m.created_at.toISOString(),
        })),
        next_cursor: pg.next_cursor,
      };
    },

    /** A manual credit or debit, with a reason; only the program's owner (or the platform). */
    async adjust(p: Principal, input: { merchant_id?: string; points: number; reason: string } & CustomerIdentity) {
      const hash = hashOf(input);
      if (!Number.isSafeInteger(input.points) || input.points === 0 || Math.abs(input.points) > 1_000_000_000) {
        throw invalid('body.points', 'must be a non-zero integer of at most 1,000,000,000 points');
      }
      const reason = input.reason.trim();
      if (reason.length === 0) throw invalid('body.reason', 'must say why');
      const { program } = await merchantProgram(p, input.merchant_id);
      if (p.merchantId !== null && program.owner_merchant_id !== p.merchantId) {
        throw new AppError('forbidden', 'Only the platform can adjust balances in a coalition program');
      }
      return db.tx(async (tx) => {
        const now = clock.now();
        const c = await repo.lockOrCreateCustomer(tx, rewardsId('customer'), program.id, hash, now);
        const id = await points.adjust(engine, tx, program, c, { points: input.points, reason, actor: p.id }, now);
        return {
          id,
          program_id: program.id,
          points: input.points,
          reason,
          balance: await balanceOf(tx, program.id, c.id),
        };
      });
    },

    /** What a basket earns and how much of it points can pay, for the till. Changes nothing. */
    async quote(
      p: Principal,
      q: { terminal_id?: string; merchant_id?: string; amount: number; redeem_points?: number } & CustomerIdentity,
    ) {
      if (!Number.isSafeInteger(q.amount) || q.amount < 1)
        throw new AppError('invalid_amount', 'amount must be a positive integer number of paise');
      if (q.redeem_points !== undefined && (!Number.isSafeInteger(q.redeem_points) || q.redeem_points < 1))
        throw invalid('redeem_points', 'must be a positive integer');
      const hash = hashOf(q);
      let merchantId = q.merchant_id;
      let storeId: string | null = null;
      if (q.terminal_id !== undefined) {
        const t = isId('terminal', q.terminal_id) ? await getTerminalContext(db, q.terminal_id) : undefined;
        if (!t || !canAccessMerchant(p, t.merchant_id) || (merchantId !== undefined && merchantId !== t.merchant_id))
          throw new AppError('terminal_not_found', 'Terminal not found');
        merchantId = t.merchant_id;
        storeId = t.store_id;
      }
      const { program } = await merchantProgram(p, merchantId);
      const c = await repo.findCustomer(db, program.id, hash);
      const bal = await balanceOf(db, program.id, c?.id);
      const pv = program.point_value_paise;
      // Points may pay at most the program's share of the basket and must leave at least one paisa
      // for UPI (a payment of 0 is not a UPI payment).
      const byShare = Math.floor((q.amount * program.redeem_max_basket_bp) / (10_000 * pv));
      const byUpi = Math.floor((q.amount - 1) / pv);
      let maxRedeem = Math.max(0, Math.min(bal.available, byShare, byUpi));
      if (maxRedeem < program.redeem_min_points) maxRedeem = 0;
      const redeem = q.redeem_points ?? 0;
      if (redeem > 0 && redeem > maxRedeem) {
        throw new AppError('redemption_not_allowed', `At most ${maxRedeem} points can be redeemed on this basket`, {
          max_redeem_points: maxRedeem,
        });
      }
      const upiAmount = q.amount - redeem * pv;
      const now = clock.now();
      const rules = await repo.listRules(db, program.id);
      const day = localTime(now, program.timezone).day;
      const earn =
        program.status === 'active'
          ? computeEarn(program, rules, {
              amount: upiAmount,
              mcc: program.mcc,
              storeId,
              at: now,
              timezone: program.timezone,
              earnedToday: c && c.earn_day === day ? c.day_earned : 0,
              budgetLeft: program.budget_points === null ? null : program.budget_points - program.budget_used,
            }).points
          : 0;
      return {
        program_id: program.id,
        point_value_paise: pv,
        available: bal.available,
        max_redeem_points: program.status === 'active' ? maxRedeem : 0,
        redeem_points: redeem,
        redeem_value_paise: redeem * pv,
        upi_amount: upiAmount,
        earn_points: earn,
      };
    },

    /** What a payment earned and redeemed. */
    async paymentRewards(p: Principal, paymentId: string) {
      const e = isId('payment', paymentId) ? await repo.getEarning(db, paymentId) : undefined;
      const d = isId('payment', paymentId) ? await repo.getRedemptionByPayment(db, paymentId) : undefined;
      const merchantId = e?.merchant_id ?? d?.merchant_id;
      if (!merchantId || !canAccessMerchant(p, merchantId))
        throw new AppError('payment_not_found', 'No rewards on this payment');
      return {
        payment_id: paymentId,
        program_id: (e?.program_id ?? d?.program_id)!,
        earned: e
          ? { points: e.points, clawed_back: e.clawed_back, shortfall: e.shortfall, breakdown: e.breakdown }
          : null,
        redemption: d
          ? {
              id: d.id,
              points: d.points,
              value_paise: d.value_paise,
              mode: d.mode,
              status: d.status,
              points_returned: d.points_returned,
            }
          : null,
      };
    },

    // ---- worker ----

    /** Pending periods that ended and lots that expired, customer by customer (SKIP LOCKED). */
    async runJobs(): Promise<{ matured: number; expired: number }> {
      const now = clock.now();
      const ids = await repo.customersWithDueLots(db, now, batchSize);
      let matured = 0;
      let expired = 0;
      for (const id of ids) {
        try {
          await db.tx(async (tx) => {
            const c = await repo.lockCustomer(tx, id, true);
            if (!c) return; // another replica (or a payment) has them; next tick
            const prog = (await repo.getProgram(tx, c.program_id))!;
            matured += await points.mature(engine, tx, prog, c, now);
            expired += await points.expire(engine, tx, prog, c, now);
          });
        } catch (e) {
          logger.warn(
            { customer_id: id, code: (e as { code?: string }).code },
            'rewards job failed for a customer; will retry',
          );
        }
      }
      return { matured, expired };
    },

    /** Creates the merchant's own program unless it is already in one (demo data). */
    async ensureMerchantProgram(merchant: { id: string; mcc: string }, input: ProgramInput) {
      return db.tx(
        async (tx) => (await repo.programForMerchant(tx, merchant.id)) ?? createProgramTx(tx, merchant, input),
      );
    },
  };
}

export type RewardsService = ReturnType<typeof createRewardsService>;
