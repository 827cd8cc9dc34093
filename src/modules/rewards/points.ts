import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { AccountSpec, LedgerService } from '../ledger/index.ts';
import { rewardsId } from './ids.ts';
import * as repo from './rewards.repo.ts';
import type { CustomerRow, LotRow, NewMovement, ProgramRow, RedemptionRow } from './rewards.repo.ts';

// The points engine: every operation on a customer's points, inside the caller's transaction,
// with the customer row already locked (that lock serializes all work on their lots). Each
// operation changes the lots, writes the statement line and posts the same movement,
// double-entry, in the ledger's PTS book — so that, at every commit:
//
//   ledger customer_available = Σ remaining of available lots − customer.debt
//   ledger customer_pending   = Σ remaining of pending lots
//   ledger customer_reserved  = Σ points of reserved redemptions
//   statement Σ available_delta / pending_delta = the two ledger balances above

export const PTS = 'PTS';
/** Rows each program's issued account is kept in. */
const ISSUED_SHARDS = 32;
const DAY_MS = 86_400_000;

/** Ledger accounts. Customer accounts never go below 0 unless the program allows it. */
export const accounts = {
  available: (p: Pick<ProgramRow, 'allow_negative_balance'>, customerId: string): AccountSpec => ({
    code: `customer_available:${customerId}`,
    type: 'liability',
    floor: p.allow_negative_balance ? null : 0,
  }),
  pending: (customerId: string): AccountSpec => ({
    code: `customer_pending:${customerId}`,
    type: 'liability',
    floor: 0,
  }),
  reserved: (customerId: string): AccountSpec => ({
    code: `customer_reserved:${customerId}`,
    type: 'liability',
    floor: 0,
  }),
  /**
   * Points the program has granted (earned and credited, net of clawbacks and debits). Every earn
   * in the program posts to it (in a coalition, every earn at every member), so it is a hot
   * account: kept in several rows, no floor (ledger README, "Hot accounts").
   */
  issued: (programId: string): AccountSpec => ({
    code: `program_issued:${programId}`,
    type: 'expense',
    shards: ISSUED_SHARDS,
  }),
  redeemed: (programId: string): AccountSpec => ({ code: `program_redeemed:${programId}`, type: 'revenue', floor: 0 }),
  expired: (programId: string): AccountSpec => ({ code: `program_expired:${programId}`, type: 'revenue', floor: 0 }),
  // INR book, for split tender: what the program's owner owes the merchant the points paid.
  funding: (programId: string): AccountSpec => ({ code: `rewards_funding:${programId}`, type: 'asset' }),
  merchantPayable: (merchantId: string): AccountSpec => ({ code: `merchant_payable:${merchantId}`, type: 'liability' }),
};

export interface PointsDeps {
  ledger: Pick<LedgerService, 'post'>;
}

type Side = [AccountSpec, number];

/** Posts a PTS entry, leaving out zero lines; nothing at all when nothing moves. */
async function post(
  deps: PointsDeps,
  tx: Queryable,
  kind: string,
  reference: string,
  debits: Side[],
  credits: Side[],
  book = PTS,
) {
  const lines = [
    ...debits.filter(([, n]) => n > 0).map(([account, n]) => ({ account, debit: n })),
    ...credits.filter(([, n]) => n > 0).map(([account, n]) => ({ account, credit: n })),
  ];
  if (lines.length === 0) return;
  await deps.ledger.post(tx, { book, kind, reference, lines });
}

const movement = (
  p: ProgramRow,
  c: CustomerRow,
  m: Omit<NewMovement, 'id' | 'program_id' | 'customer_id'>,
): NewMovement => ({
  id: rewardsId('movement'),
  program_id: p.id,
  customer_id: c.id,
  ...m,
});

/** Points entering the available bucket repay any debt first; returns what is left for the lot. */
function repayDebt(c: CustomerRow, points: number): number {
  const repaid = Math.min(c.debt, points);
  c.debt -= repaid;
  return points - repaid;
}

export const expiryFor = (p: ProgramRow, from: Date): Date | null =>
  p.validity_days === null ? null : new Date(from.getTime() + p.validity_days * DAY_MS);

/** A lot can be spent when it is available, holds points and has not passed its expiry. */
const spendable = (l: LotRow, now: Date) =>
  l.status === 'available' && l.remaining > 0 && (l.expires_at === null || l.expires_at > now);

// ---- earn ----

export interface EarnWrite {
  paymentId: string;
  merchantId: string;
  amount: number;
  points: number;
  breakdown: unknown;
  /** The local day the points count against for the daily cap. */
  day: string;
  /** Points the program budget gives away with this earn (0 when the program has none). */
  budgetDelta: number;
}

export async function earn(deps: PointsDeps, tx: Queryable, p: ProgramRow, c: CustomerRow, e: EarnWrite, now: Date) {
  const pending = p.pending_seconds > 0;
  const dayEarned = (c.earn_day === e.day ? c.day_earned : 0) + e.points;
  let lot: Omit<LotRow, 'expired'> | null = null;
  let mv: NewMovement | null = null;
  if (e.points > 0) {
    const remaining = pending ? e.points : repayDebt(c, e.points);
    lot = {
      id: rewardsId('lot'),
      program_id: p.id,
      customer_id: c.id,
      source: 'earn',
      source_id: e.paymentId,
      points: e.points,
      remaining,
      status: pending ? 'pending' : 'available',
      available_at: new Date(now.getTime() + p.pending_seconds * 1000),
      expires_at: expiryFor(p, now),
      created_at: now,
    };
    mv = movement(p, c, {
      kind: 'earn',
      available_delta: pending ? 0 : e.points,
      pending_delta: pending ? e.points : 0,
      payment_id: e.paymentId,
      reference: null,
      detail: null,
    });
  }
  c.earn_day = e.day;
  c.day_earned = dayEarned;
  await repo.writeEarn(tx, {
    customer: c,
    programId: p.id,
    budgetDelta: e.budgetDelta,
    lot,
    earning: {
      payment_id: e.paymentId,
      program_id: p.id,
      customer_id: c.id,
      merchant_id: e.merchantId,
      lot_id: lot?.id ?? null,
      amount: e.amount,
      points: e.points,
      breakdown: e.breakdown,
      created_at: now,
    },
    movement: mv,
  });
  if (e.points > 0) await postEarned(deps, tx, p, c.id, e.paymentId, e.points, pending);
}

/** The ledger side of an earn (the rows are written by earn() or by rewards.earn_payment()). */
export async function postEarned(
  deps: PointsDeps,
  tx: Queryable,
  p: Pick<ProgramRow, 'id' | 'allow_negative_balance'>,
  customerId: string,
  paymentId: string,
  points: number,
  pending: boolean,
) {
  const to = pending ? accounts.pending(customerId) : accounts.available(p, customerId);
  await post(deps, tx, 'rewards.earned', paymentId, [[accounts.issued(p.id), points]], [[to, points]]);
}

/**
 * postEarned()'s two accounts for an earn posted from SQL (rewards.earn_in_completion, migration
 * 0037), as ledger.post_entry() takes accounts (the ledger's writeEntry shape: floor null when
 * none, floor_given when the spec names one). The customer's accounts carry `prefix` instead of
 * `code`: the customer's id is known only inside the statement, which appends it.
 */
export function earnedAccountsSql(p: Pick<ProgramRow, 'id' | 'allow_negative_balance'>) {
  const shape = (a: AccountSpec) => ({
    type: a.type,
    floor: a.floor ?? null,
    floor_given: a.floor !== undefined,
    shards: a.shards ?? 1,
  });
  const customer = (f: (id: string) => AccountSpec) => {
    const a = f('');
    return { prefix: a.code, ...shape(a) };
  };
  const issued = accounts.issued(p.id);
  return {
    issued: { code: issued.code, ...shape(issued) },
    available: customer((id) => accounts.available(p, id)),
    pending: customer(accounts.pending),
  };
}

// ---- pending -> available ----

/** Moves the customer's lots whose pending period is over into available. */
export async function mature(
  deps: PointsDeps,
  tx: Queryable,
  p: ProgramRow,
  c: CustomerRow,
  now: Date,
): Promise<number> {
  const due = await repo.duePendingLots(tx, c.id, now);
  if (due.length === 0) return 0;
  const debtBefore = c.debt;
  const moves: NewMovement[] = [];
  for (const l of due) {
    const r = l.remaining;
    l.status = 'available';
    l.remaining = repayDebt(c, r);
    if (r > 0) {
      moves.push(
        movement(p, c, {
          kind: 'mature',
          available_delta: r,
          pending_delta: -r,
          payment_id: l.source === 'earn' ? l.source_id : null,
          reference: l.id,
          detail: null,
        }),
      );
      await post(deps, tx, 'rewards.matured', l.id, [[accounts.pending(c.id), r]], [[accounts.available(p, c.id), r]]);
    }
  }
  await repo.updateLots(tx, due);
  await repo.insertMovements(tx, moves, now);
  if (c.debt !== debtBefore) await repo.setCustomerCounters(tx, c);
  return due.length;
}

// ---- expiry ----

/** Expires what is left in the customer's lots past their expiry. */
export async function expire(
  deps: PointsDeps,
  tx: Queryable,
  p: ProgramRow,
  c: CustomerRow,
  now: Date,
): Promise<number> {
  const due = await repo.dueExpiryLots(tx, c.id, now);
  const moves: NewMovement[] = [];
  for (const l of due) {
    const r = l.remaining;
    const from = l.status === 'pending' ? accounts.pending(c.id) : accounts.available(p, c.id);
    l.expired += r;
    l.remaining = 0;
    // A lot can expire more than once (a refund may put redeemed points back into it), so the
    // reference carries the lot's running expired total, which only grows.
    await post(deps, tx, 'rewards.expired', `${l.id}:${l.expired}`, [[from, r]], [[accounts.expired(p.id), r]]);
    moves.push(
      movement(p, c, {
        kind: 'expire',
        available_delta: l.status === 'pending' ? 0 : -r,
        pending_delta: l.status === 'pending' ? -r : 0,
        payment_id: null,
        reference: l.id,
        detail: null,
      }),
    );
  }
  await repo.updateLots(tx, due);
  await repo.insertMovements(tx, moves, now);
  return due.length;
}

// ---- spending: redemption and debits ----

/** Points the customer can spend now (after mature()), net of any debt. */
export async function spendableBalance(
  tx: Queryable,
  c: CustomerRow,
  now: Date,
): Promise<{ total: number; lots: LotRow[] }> {
  const lots = (await repo.openLots(tx, c.id)).filter((l) => spendable(l, now));
  return { total: lots.reduce((s, l) => s + l.remaining, 0) - c.debt, lots };
}

/** Takes `points` from the lots, oldest first. The caller has checked that they hold enough. */
function takeOldestFirst(lots: LotRow[], points: number): { lot: LotRow; take: number }[] {
  const out: { lot: LotRow; take: number }[] = [];
  let need = points;
  for (const l of lots) {
    if (need === 0) break;
    const take = Math.min(l.remaining, need);
    if (take === 0) continue;
    l.remaining -= take;
    need -= take;
    out.push({ lot: l, take });
  }
  if (need !== 0) throw new AppError('internal_error', 'lots hold fewer points than checked');
  return out;
}

export interface ReserveInput {
  paymentId: string;
  merchantId: string;
  points: number;
  valuePaise: number;
  mode: 'discount' | 'split_tender';
}

/** Holds points for a payment being created: available -> reserved, lots consumed oldest first. */
export async function reserve(
  deps: PointsDeps,
  tx: Queryable,
  p: ProgramRow,
  c: CustomerRow,
  r: ReserveInput,
  now: Date,
): Promise<string> {
  await mature(deps, tx, p, c, now);
  const bal = await spendableBalance(tx, c, now);
  if (bal.total < r.points) {
    throw new AppError(
      'insufficient_points',
      `The customer has ${Math.max(0, bal.total)} points available, fewer than ${r.points}`,
      { available: Math.max(0, bal.total), requested: r.points },
    );
  }
  const taken = takeOldestFirst(bal.lots, r.points);
  const id = rewardsId('redemption');
  await repo.insertRedemption(tx, {
    id,
    payment_id: r.paymentId,
    program_id: p.id,
    customer_id: c.id,
    merchant_id: r.merchantId,
    points: r.points,
    value_paise: r.valuePaise,
    mode: r.mode,
    created_at: now,
  });
  await repo.updateLots(
    tx,
    taken.map((t) => t.lot),
  );
  await repo.insertConsumptions(
    tx,
    id,
    taken.map((t) => ({ lot_id: t.lot.id, points: t.take })),
  );
  await repo.insertMovements(
    tx,
    [
      movement(p, c, {
        kind: 'redeem',
        available_delta: -r.points,
        pending_delta: 0,
        payment_id: r.paymentId,
        reference: id,
        detail: r.mode,
      }),
    ],
    now,
  );
  await post(
    deps,
    tx,
    'rewards.redemption.reserved',
    id,
    [[accounts.available(p, c.id), r.points]],
    [[accounts.reserved(c.id), r.points]],
  );
  return id;
}

/** The payment succeeded: reserved points are spent. Split tender also records the money owed. */
export async function commit(
  deps: PointsDeps,
  tx: Queryable,
  p: Pick<ProgramRow, 'id'>,
  d: RedemptionRow,
  now: Date,
): Promise<boolean> {
  const done = await repo.settleRedemption(tx, d.id, 'reserved', 'committed', now);
  if (!done) return false;
  await post(
    deps,
    tx,
    'rewards.redemption.committed',
    d.id,
    [[accounts.reserved(d.customer_id), d.points]],
    [[accounts.redeemed(p.id), d.points]],
  );
  if (d.mode === 'split_tender') {
    // The points paid part of the basket: the program's owner owes the merchant their value.
    await post(
      deps,
      tx,
      'rewards.redemption.funded',
      d.id,
      [[accounts.funding(p.id), d.value_paise]],
      [[accounts.merchantPayable(d.merchant_id), d.value_paise]],
      'INR',
    );
  }
  return true;
}

/**
 * Puts points back into the lots a redemption took them from, newest lot first, up to `points`.
 * Points going back into available repay debt first. Returns the lots and consumptions to save.
 */
async function restore(tx: Queryable, c: CustomerRow, redemptionId: string, points: number) {
  const cons = (await repo.consumptions(tx, redemptionId)).reverse();
  const lots = new Map(
    (
      await repo.getLots(
        tx,
        cons.map((x) => x.lot_id),
      )
    ).map((l) => [l.id, l]),
  );
  let need = points;
  const changed: { lot_id: string; returned: number }[] = [];
  for (const x of cons) {
    if (need === 0) break;
    const give = Math.min(x.points - x.returned, need);
    if (give === 0) continue;
    const lot = lots.get(x.lot_id)!;
    lot.remaining += repayDebt(c, give);
    x.returned += give;
    need -= give;
    changed.push({ lot_id: x.lot_id, returned: x.returned });
  }
  if (need !== 0) throw new AppError('internal_error', 'redemption has fewer points to return than asked');
  await repo.updateLots(tx, [...lots.values()]);
  await repo.setConsumptionReturned(tx, redemptionId, changed);
}

/** The payment failed or expired: reserved points go back to the lots they came from. */
export async function release(
  deps: PointsDeps,
  tx: Queryable,
  p: ProgramRow,
  c: CustomerRow,
  d: RedemptionRow,
  now: Date,
): Promise<boolean> {
  const done = await repo.settleRedemption(tx, d.id, 'reserved', 'released', now);
  if (!done) return false;
  const debtBefore = c.debt;
  await restore(tx, c, d.id, d.points);
  if (c.debt !== debtBefore) await repo.setCustomerCounters(tx, c);
  await repo.insertMovements(
    tx,
    [
      movement(p, c, {
        kind: 'release',
        available_delta: d.points,
        pending_delta: 0,
        payment_id: d.payment_id,
        reference: d.id,
        detail: null,
      }),
    ],
    now,
  );
  await post(
    deps,
    tx,
    'rewards.redemption.released',
    d.id,
    [[accounts.reserved(c.id), d.points]],
    [[accounts.available(p, c.id), d.points]],
  );
  return true;
}

/** floor(total × part / whole), exact for any safe integers. */
export const proRata = (total: number, part: number, whole: number) =>
  Number((BigInt(total) * BigInt(Math.min(part, whole))) / BigInt(whole));

// ---- refunds ----

/**
 * A refund took the payment's refunded total to `refunded` of `amount`: take back the earned
 * points pro rata (rounded down, cumulative, so a full refund takes all of them). From the
 * payment's own lot first, then other available lots oldest first, then pending lots; what is
 * still missing becomes debt where the program allows a negative balance, else a recorded
 * shortfall.
 */
export async function clawback(
  deps: PointsDeps,
  tx: Queryable,
  p: ProgramRow,
  c: CustomerRow,
  refundId: string,
  paymentId: string,
  refunded: number,
  amount: number,
  now: Date,
) {
  const e = await repo.getEarning(tx, paymentId, true);
  if (!e || e.points === 0) return;
  const need0 = proRata(e.points, refunded, amount) - e.clawed_back - e.shortfall;
  if (need0 <= 0) return;
  let need = need0;
  const lots = await repo.openLots(tx, c.id);
  const own = lots.filter((l) => l.id === e.lot_id);
  const order = [
    ...own,
    ...lots.filter((l) => l.id !== e.lot_id && l.status === 'available'),
    ...lots.filter((l) => l.id !== e.lot_id && l.status === 'pending'),
  ];
  let fromAvailable = 0;
  let fromPending = 0;
  const touched: LotRow[] = [];
  for (const l of order) {
    if (need === 0) break;
    const take = Math.min(l.remaining, need);
    if (take === 0) continue;
    l.remaining -= take;
    need -= take;
    if (l.status === 'pending') fromPending += take;
    else fromAvailable += take;
    touched.push(l);
  }
  let debt = 0;
  let shortfall = 0;
  if (need > 0 && p.allow_negative_balance) {
    debt = need;
    c.debt += need;
  } else if (need > 0) {
    shortfall = need;
    c.shortfall += need;
  }
  await repo.updateLots(tx, touched);
  await repo.updateEarning(tx, paymentId, e.clawed_back + fromAvailable + fromPending + debt, e.shortfall + shortfall);
  if (debt > 0 || shortfall > 0) await repo.setCustomerCounters(tx, c);
  const moves: NewMovement[] = [];
  if (fromAvailable + fromPending + debt > 0) {
    moves.push(
      movement(p, c, {
        kind: 'clawback',
        available_delta: -(fromAvailable + debt),
        pending_delta: -fromPending,
        payment_id: paymentId,
        reference: refundId,
        detail: debt > 0 ? `balance went ${debt} below zero` : null,
      }),
    );
  }
  if (shortfall > 0) {
    moves.push(
      movement(p, c, {
        kind: 'shortfall',
        available_delta: 0,
        pending_delta: 0,
        payment_id: paymentId,
        reference: refundId,
        detail: `${shortfall} points could not be clawed back`,
      }),
    );
  }
  await repo.insertMovements(tx, moves, now);
  await post(
    deps,
    tx,
    'rewards.clawback',
    refundId,
    [
      [accounts.available(p, c.id), fromAvailable + debt],
      [accounts.pending(c.id), fromPending],
    ],
    [[accounts.issued(p.id), fromAvailable + fromPending + debt]],
  );
}

/** A refund of a payment that redeemed points gives them back pro rata (cumulative, rounded down). */
export async function giveBack(
  deps: PointsDeps,
  tx: Queryable,
  p: ProgramRow,
  c: CustomerRow,
  refundId: string,
  paymentId: string,
  refunded: number,
  amount: number,
  now: Date,
) {
  const d = await repo.getRedemptionByPayment(tx, paymentId, true);
  if (d?.status !== 'committed') return;
  const target = proRata(d.points, refunded, amount);
  const give = target - d.points_returned;
  if (give <= 0) return;
  const debtBefore = c.debt;
  await restore(tx, c, d.id, give);
  if (c.debt !== debtBefore) await repo.setCustomerCounters(tx, c);
  await repo.setPointsReturned(tx, d.id, target);
  await repo.insertMovements(
    tx,
    [
      movement(p, c, {
        kind: 'return',
        available_delta: give,
        pending_delta: 0,
        payment_id: paymentId,
        reference: refundId,
        detail: null,
      }),
    ],
    now,
  );
  await post(
    deps,
    tx,
    'rewards.redemption.returned',
    refundId,
    [[accounts.redeemed(p.id), give]],
    [[accounts.available(p, c.id), give]],
  );
  if (d.mode === 'split_tender') {
    const value = proRata(d.value_paise, target, d.points) - proRata(d.value_paise, d.points_returned, d.points);
    await post(
      deps,
      tx,
      'rewards.redemption.unfunded',
      refundId,
      [[accounts.merchantPayable(d.merchant_id), value]],
      [[accounts.funding(p.id), value]],
      'INR',
    );
  }
}

// ---- manual adjustments ----

export async function adjust(
  deps: PointsDeps,
  tx: Queryable,
  p: ProgramRow,
  c: CustomerRow,
  a: { points: number; reason: string; actor: string },
  now: Date,
): Promise<string> {
  const id = rewardsId('adjustment');
  await repo.insertAdjustment(tx, {
    id,
    program_id: p.id,
    customer_id: c.id,
    points: a.points,
    reason: a.reason,
    actor: a.actor,
    now,
  });
  const debtBefore = c.debt;
  if (a.points > 0) {
    const remaining = repayDebt(c, a.points);
    await repo.insertLot(tx, {
      id: rewardsId('lot'),
      program_id: p.id,
      customer_id: c.id,
      source: 'adjustment',
      source_id: id,
      points: a.points,
      remaining,
      status: 'available',
      available_at: now,
      expires_at: expiryFor(p, now),
      created_at: now,
    });
    await post(
      deps,
      tx,
      'rewards.adjustment',
      id,
      [[accounts.issued(p.id), a.points]],
      [[accounts.available(p, c.id), a.points]],
    );
  } else {
    const debit = -a.points;
    await mature(deps, tx, p, c, now);
    const bal = await spendableBalance(tx, c, now);
    const fromLots = Math.min(Math.max(bal.total + c.debt, 0), debit);
    const rest = debit - fromLots;
    if (rest > 0 && !p.allow_negative_balance) {
      throw new AppError(
        'insufficient_points',
        `The customer has ${Math.max(0, bal.total)} points available, fewer than ${debit}`,
        { available: Math.max(0, bal.total), requested: debit },
      );
    }
    const taken = takeOldestFirst(bal.lots, fromLots);
    await repo.updateLots(
      tx,
      taken.map((t) => t.lot),
    );
    c.debt += rest;
    await post(
      deps,
      tx,
      'rewards.adjustment',
      id,
      [[accounts.available(p, c.id), debit]],
      [[accounts.issued(p.id), debit]],
    );
  }
  if (c.debt !== debtBefore) await repo.setCustomerCounters(tx, c);
  await repo.insertMovements(
    tx,
    [
      movement(p, c, {
        kind: 'adjustment',
        available_delta: a.points,
        pending_delta: 0,
        payment_id: null,
        reference: id,
        detail: a.reason,
      }),
    ],
    now,
  );
  return id;
}
