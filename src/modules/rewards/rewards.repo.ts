import type { Queryable } from '../../platform/db.ts';
import type { EarnRule, Rounding, RuleConditions, RuleKind } from './rules.ts';

// SQL for rewards.*. The service owns the transactions; these take the handle. Lists travel as
// one jsonb parameter, so a statement's text is fixed whatever the number of rows it touches.

export interface ProgramRow {
  id: string;
  owner_merchant_id: string | null;
  name: string;
  status: 'active' | 'paused';
  point_value_paise: number;
  earn_points: number;
  earn_per_paise: number;
  rounding: Rounding;
  timezone: string;
  pending_seconds: number;
  validity_days: number | null;
  allow_negative_balance: boolean;
  budget_points: number | null;
  budget_used: number;
  redeem_min_points: number;
  redeem_max_basket_bp: number;
  /** Raised by every change to the program or its rules (cache validation on the earn path). */
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface RuleRow extends EarnRule {
  program_id: string;
  description: string | null;
  created_at: Date;
}

export interface CustomerRow {
  id: string;
  program_id: string;
  debt: number;
  shortfall: number;
  /** "YYYY-MM-DD" in the program's timezone, or null before the first earn. */
  earn_day: string | null;
  day_earned: number;
}

export interface LotRow {
  id: string;
  program_id: string;
  customer_id: string;
  source: 'earn' | 'adjustment' | 'import';
  source_id: string;
  points: number;
  remaining: number;
  expired: number;
  status: 'pending' | 'available';
  available_at: Date;
  expires_at: Date | null;
  created_at: Date;
}

export interface EarningRow {
  payment_id: string;
  program_id: string;
  customer_id: string;
  merchant_id: string;
  lot_id: string | null;
  amount: number;
  points: number;
  clawed_back: number;
  shortfall: number;
  breakdown: unknown;
  created_at: Date;
}

export interface RedemptionRow {
  id: string;
  payment_id: string;
  program_id: string;
  customer_id: string;
  merchant_id: string;
  points: number;
  value_paise: number;
  mode: 'discount' | 'split_tender';
  status: 'reserved' | 'committed' | 'released';
  points_returned: number;
  created_at: Date;
  settled_at: Date | null;
}

export interface ConsumptionRow {
  redemption_id: string;
  lot_id: string;
  points: number;
  returned: number;
}

export type MovementKind =
  | 'earn'
  | 'mature'
  | 'redeem'
  | 'release'
  | 'clawback'
  | 'return'
  | 'expire'
  | 'adjustment'
  | 'shortfall'
  /** Points brought in from another system (src/modules/onboarding): the statement's first line. */
  | 'opening_balance';

export interface MovementRow {
  id: string;
  program_id: string;
  customer_id: string;
  kind: MovementKind;
  available_delta: number;
  pending_delta: number;
  payment_id: string | null;
  reference: string | null;
  detail: string | null;
  created_at: Date;
}

export type NewMovement = Omit<MovementRow, 'created_at'>;

const CUSTOMER_COLS = 'id, program_id, debt, shortfall, earn_day::text AS earn_day, day_earned';
const LOT_COLS =
  'id, program_id, customer_id, source, source_id, points, remaining, expired, status, available_at, expires_at, created_at';

// ---- programs ----

export async function insertProgram(
  q: Queryable,
  p: Omit<ProgramRow, 'budget_used' | 'updated_at' | 'status' | 'version'>,
): Promise<ProgramRow> {
  const { rows } = await q.query<ProgramRow>(
    `INSERT INTO rewards.programs (id, owner_merchant_id, name, point_value_paise, earn_points, earn_per_paise, rounding, timezone,
                                   pending_seconds, validity_days, allow_negative_balance, budget_points, redeem_min_points,
                                   redeem_max_basket_bp, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) RETURNING *`,
    [
      p.id,
      p.owner_merchant_id,
      p.name,
      p.point_value_paise,
      p.earn_points,
      p.earn_per_paise,
      p.rounding,
      p.timezone,
      p.pending_seconds,
      p.validity_days,
      p.allow_negative_balance,
      p.budget_points,
      p.redeem_min_points,
      p.redeem_max_basket_bp,
      p.created_at,
    ],
  );
  return rows[0];
}

export async function getProgram(q: Queryable, id: string, lock = false): Promise<ProgramRow | undefined> {
  const { rows } = await q.query<ProgramRow>(
    `SELECT * FROM rewards.programs WHERE id = $1${lock ? ' FOR NO KEY UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

/** The program a merchant's customers earn and burn in, with the merchant's MCC. */
export async function programForMerchant(
  q: Queryable,
  merchantId: string,
): Promise<(ProgramRow & { mcc: string }) | undefined> {
  const { rows } = await q.query<ProgramRow & { mcc: string }>(
    `SELECT p.*, pm.mcc FROM rewards.program_merchants pm JOIN rewards.programs p ON p.id = pm.program_id WHERE pm.merchant_id = $1`,
    [merchantId],
  );
  return rows[0];
}

export interface ProgramPatch {
  name?: string;
  status?: 'active' | 'paused';
  point_value_paise?: number;
  earn_points?: number;
  earn_per_paise?: number;
  rounding?: Rounding;
  timezone?: string;
  pending_seconds?: number;
  /** undefined = unchanged; null = points never expire. */
  validity_days?: number | null;
  budget_points?: number | null;
  redeem_min_points?: number;
  redeem_max_basket_bp?: number;
}

export async function updateProgram(
  q: Queryable,
  id: string,
  patch: ProgramPatch,
  now: Date,
): Promise<ProgramRow | undefined> {
  const { rows } = await q.query<ProgramRow>(
    `UPDATE rewards.programs SET
       name = coalesce($2, name), status = coalesce($3, status), point_value_paise = coalesce($4, point_value_paise),
       earn_points = coalesce($5, earn_points), earn_per_paise = coalesce($6, earn_per_paise), rounding = coalesce($7, rounding),
       timezone = coalesce($8, timezone), pending_seconds = coalesce($9, pending_seconds),
       validity_days = CASE WHEN $10::boolean THEN $11::int ELSE validity_days END,
       budget_points = CASE WHEN $12::boolean THEN $13::bigint ELSE budget_points END,
       redeem_min_points = coalesce($14, redeem_min_points), redeem_max_basket_bp = coalesce($15, redeem_max_basket_bp),
       version = version + 1, updated_at = $16
     WHERE id = $1 RETURNING *`,
    [
      id,
      patch.name ?? null,
      patch.status ?? null,
      patch.point_value_paise ?? null,
      patch.earn_points ?? null,
      patch.earn_per_paise ?? null,
      patch.rounding ?? null,
      patch.timezone ?? null,
      patch.pending_seconds ?? null,
      patch.validity_days !== undefined,
      patch.validity_days ?? null,
      patch.budget_points !== undefined,
      patch.budget_points ?? null,
      patch.redeem_min_points ?? null,
      patch.redeem_max_basket_bp ?? null,
      now,
    ],
  );
  return rows[0];
}

/** Programs a caller may see: all (platform), or the merchant's own and the coalition it is in. */
export async function listPrograms(
  q: Queryable,
  f: { merchantId?: string; before?: string; limit: number },
): Promise<ProgramRow[]> {
  const { rows } = await q.query<ProgramRow>(
    `SELECT * FROM rewards.programs p
      WHERE ($1::text IS NULL OR p.owner_merchant_id = $1
             OR EXISTS (SELECT 1 FROM rewards.program_merchants pm WHERE pm.program_id = p.id AND pm.merchant_id = $1))
        AND ($2::text IS NULL OR p.id < $2)
      ORDER BY p.id DESC LIMIT $3`,
    [f.merchantId ?? null, f.before ?? null, f.limit + 1],
  );
  return rows;
}

export async function isMember(q: Queryable, programId: string, merchantId: string): Promise<boolean> {
  const { rows } = await q.query(`SELECT 1 FROM rewards.program_merchants WHERE program_id = $1 AND merchant_id = $2`, [
    programId,
    merchantId,
  ]);
  return rows.length > 0;
}

/** Adds a merchant to a program; false when the merchant is already in one. */
export async function addMember(
  q: Queryable,
  programId: string,
  merchantId: string,
  mcc: string,
  now: Date,
): Promise<boolean> {
  const r = await q.query(
    `INSERT INTO rewards.program_merchants (merchant_id, program_id, mcc, joined_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (merchant_id) DO NOTHING RETURNING merchant_id`,
    [merchantId, programId, mcc, now],
  );
  return r.rowCount === 1;
}

export async function removeMember(q: Queryable, programId: string, merchantId: string): Promise<boolean> {
  const r = await q.query(
    `DELETE FROM rewards.program_merchants WHERE program_id = $1 AND merchant_id = $2 RETURNING merchant_id`,
    [programId, merchantId],
  );
  return r.rowCount === 1;
}

export async function listMembers(
  q: Queryable,
  programId: string,
): Promise<{ merchant_id: string; mcc: string; joined_at: Date }[]> {
  const { rows } = await q.query<{ merchant_id: string; mcc: string; joined_at: Date }>(
    `SELECT merchant_id, mcc, joined_at FROM rewards.program_merchants WHERE program_id = $1 ORDER BY merchant_id`,
    [programId],
  );
  return rows;
}

// ---- rules ----

/** Adds a rule and raises the program's version (so cached copies of its rules go stale). */
export async function insertRule(
  q: Queryable,
  r: {
    id: string;
    program_id: string;
    kind: RuleKind;
    value: number;
    conditions: RuleConditions;
    description: string | null;
    now: Date;
  },
): Promise<RuleRow> {
  const { rows } = await q.query<RuleRow>(
    `WITH v AS (UPDATE rewards.programs SET version = version + 1, updated_at = $7 WHERE id = $2)
     INSERT INTO rewards.earn_rules (id, program_id, kind, value, conditions, description, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
    [r.id, r.program_id, r.kind, r.value, JSON.stringify(r.conditions), r.description, r.now],
  );
  return rows[0];
}

export async function listRules(q: Queryable, programId: string): Promise<RuleRow[]> {
  const { rows } = await q.query<RuleRow>(`SELECT * FROM rewards.earn_rules WHERE program_id = $1 ORDER BY id`, [
    programId,
  ]);
  return rows;
}

export async function countRules(q: Queryable, programId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM rewards.earn_rules WHERE program_id = $1`,
    [programId],
  );
  return rows[0].n;
}

export async function deleteRule(q: Queryable, programId: string, ruleId: string, now: Date): Promise<boolean> {
  const r = await q.query(
    `WITH d AS (DELETE FROM rewards.earn_rules WHERE program_id = $1 AND id = $2 RETURNING id),
          v AS (UPDATE rewards.programs SET version = version + 1, updated_at = $3 WHERE id = $1 AND EXISTS (SELECT 1 FROM d))
     SELECT id FROM d`,
    [programId, ruleId, now],
  );
  return r.rowCount === 1;
}

// ---- the payment hot path ----

export interface PaymentContext {
  program: ProgramRow;
  /** The merchant's MCC in this program; null if the merchant has since left it. */
  mcc: string | null;
  rules: EarnRule[];
  /** The customer identified at the till, or the payer, locked FOR UPDATE; undefined if new. */
  customer: CustomerRow | undefined;
  /** budget_used read under a row lock (only when the program has a budget). */
  lockedBudgetUsed: number | null;
  redemption: RedemptionRow | undefined;
}

/**
 * Everything a succeeded payment needs, in one round trip (rewards.payment_context): the program
 * (the one the customer was linked to at the till, else the merchant's), its rules, the customer
 * row locked, the budget locked when there is one, and any redemption. undefined: the merchant
 * is in no program.
 */
export async function loadPaymentContext(
  q: Queryable,
  merchantId: string,
  paymentId: string,
  payerHash: Buffer | null,
): Promise<PaymentContext | undefined> {
  const { rows } = await q.query<{ ctx: RawContext | null }>(
    'SELECT rewards.payment_context($1::text, $2::text, $3::bytea) AS ctx',
    [merchantId, paymentId, payerHash],
  );
  return contextFromJson(rows[0]?.ctx ?? null);
}

interface RawContext {
  program: ProgramRow;
  mcc: string | null;
  rules: EarnRule[];
  customer: CustomerRow | null;
  budget_used: number | null;
  redemption: RedemptionRow | null;
}

function contextFromJson(r: RawContext | null): PaymentContext | undefined {
  if (!r) return undefined;
  return {
    program: programFromJson(r.program),
    mcc: r.mcc,
    rules: r.rules,
    customer: r.customer ?? undefined,
    lockedBudgetUsed: r.budget_used,
    redemption: r.redemption ? redemptionFromJson(r.redemption) : undefined,
  };
}

export type EarnPaymentResult =
  | { state: 'none'; redemption?: RedemptionRow }
  | { state: 'inactive'; redemption?: RedemptionRow }
  | { state: 'stale'; ctx: PaymentContext | undefined }
  | { state: 'earned'; customer_id: string; points: number; pending: boolean; redemption?: RedemptionRow };

/**
 * The one-round-trip earn (rewards.earn_payment) for a caller holding the program and its rules
 * in cache: `points` come from computeEarn() with nothing earned today and no budget; the
 * function applies the daily cap and the budget under the row locks and writes the earn.
 */
export async function earnPayment(
  q: Queryable,
  a: {
    merchantId: string;
    paymentId: string;
    payerHash: Buffer | null;
    programId: string | null;
    version: number | null;
    points: number;
    day: string | null;
    dayCap: number | null;
    amount: number;
    breakdown: unknown;
    customerId: string;
    lotId: string;
    movementId: string;
    now: Date;
  },
): Promise<EarnPaymentResult> {
  const { rows } = await q.query<{
    r: {
      state: string;
      ctx?: RawContext | null;
      redemption?: RedemptionRow | null;
      customer_id?: string;
      points?: number;
      pending?: boolean;
    };
  }>(
    `SELECT rewards.earn_payment($1::text, $2::text, $3::bytea, $4::text, $5::bigint, $6::bigint, $7::date, $8::bigint, $9::bigint, $10::jsonb,
                                 $11::text, $12::text, $13::text, $14::timestamptz) AS r`,
    [
      a.merchantId,
      a.paymentId,
      a.payerHash,
      a.programId,
      a.version,
      a.points,
      a.day,
      a.dayCap,
      a.amount,
      JSON.stringify(a.breakdown),
      a.customerId,
      a.lotId,
      a.movementId,
      a.now,
    ],
  );
  const r = rows[0].r;
  const redemption = r.redemption ? redemptionFromJson(r.redemption) : undefined;
  switch (r.state) {
    case 'stale':
      return { state: 'stale', ctx: contextFromJson(r.ctx ?? null) };
    case 'earned':
      return { state: 'earned', customer_id: r.customer_id!, points: r.points!, pending: r.pending!, redemption };
    case 'inactive':
      return { state: 'inactive', redemption };
    default:
      return { state: 'none', redemption };
  }
}

// to_jsonb() turns timestamps into strings; bring them back to Dates.
function programFromJson(p: ProgramRow): ProgramRow {
  return { ...p, created_at: new Date(p.created_at), updated_at: new Date(p.updated_at) };
}
function redemptionFromJson(d: RedemptionRow): RedemptionRow {
  return { ...d, created_at: new Date(d.created_at), settled_at: d.settled_at ? new Date(d.settled_at) : null };
}

/**
 * The customer row, locked; created first if needed. The lock serializes all work on their lots.
 * `knownMissing`: the caller just looked and found none, so go straight to the insert.
 */
export async function lockOrCreateCustomer(
  q: Queryable,
  id: string,
  programId: string,
  hash: Buffer,
  now: Date,
  knownMissing = false,
): Promise<CustomerRow> {
  const sel = `SELECT ${CUSTOMER_COLS} FROM rewards.customers WHERE program_id = $1 AND customer_hash = $2 FOR UPDATE`;
  if (!knownMissing) {
    const found = await q.query<CustomerRow>(sel, [programId, hash]);
    if (found.rows[0]) return found.rows[0];
  }
  const ins = await q.query<CustomerRow>(
    `INSERT INTO rewards.customers (id, program_id, customer_hash, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (program_id, customer_hash) DO NOTHING RETURNING ${CUSTOMER_COLS}`,
    [id, programId, hash, now],
  );
  if (ins.rows[0]) return ins.rows[0];
  // Another transaction created them first: wait for its row.
  return (await q.query<CustomerRow>(sel, [programId, hash])).rows[0];
}

export async function findCustomer(
  q: Queryable,
  programId: string,
  hash: Buffer,
  lock = false,
): Promise<CustomerRow | undefined> {
  const { rows } = await q.query<CustomerRow>(
    `SELECT ${CUSTOMER_COLS} FROM rewards.customers WHERE program_id = $1 AND customer_hash = $2${lock ? ' FOR UPDATE' : ''}`,
    [programId, hash],
  );
  return rows[0];
}

export async function lockCustomer(q: Queryable, id: string, skipLocked = false): Promise<CustomerRow | undefined> {
  const { rows } = await q.query<CustomerRow>(
    `SELECT ${CUSTOMER_COLS} FROM rewards.customers WHERE id = $1 FOR UPDATE${skipLocked ? ' SKIP LOCKED' : ''}`,
    [id],
  );
  return rows[0];
}

export async function setCustomerCounters(
  q: Queryable,
  c: Pick<CustomerRow, 'id' | 'debt' | 'shortfall' | 'earn_day' | 'day_earned'>,
) {
  await q.query(
    `UPDATE rewards.customers SET debt = $2, shortfall = $3, earn_day = $4::date, day_earned = $5 WHERE id = $1`,
    [c.id, c.debt, c.shortfall, c.earn_day, c.day_earned],
  );
}

/** Writes one earn in one round trip (rewards.write_earn): counters, budget, lot, earning, statement line. */
export async function writeEarn(
  q: Queryable,
  w: {
    customer: Pick<CustomerRow, 'id' | 'debt' | 'earn_day' | 'day_earned'>;
    programId: string;
    budgetDelta: number;
    lot: Omit<LotRow, 'expired'> | null;
    earning: Omit<EarningRow, 'clawed_back' | 'shortfall'>;
    movement: NewMovement | null;
  },
) {
  const { customer: c, lot: l, earning: e, movement: m } = w;
  await q.query(
    `SELECT rewards.write_earn($1::text, $2::bigint, $3::date, $4::bigint, $5::text, $6::bigint, $7::text, $8::text, $9::text, $10::bigint,
                               $11::bigint, $12::text, $13::timestamptz, $14::timestamptz, $15::timestamptz, $16::bigint, $17::jsonb,
                               $18::text, $19::bigint, $20::bigint)`,
    [
      c.id,
      c.debt,
      c.earn_day,
      c.day_earned,
      w.programId,
      w.budgetDelta,
      l?.id ?? null,
      e.payment_id,
      e.merchant_id,
      e.points,
      l?.remaining ?? null,
      l?.status ?? null,
      l?.available_at ?? null,
      l?.expires_at ?? null,
      e.created_at,
      e.amount,
      JSON.stringify(e.breakdown),
      m?.id ?? null,
      m?.available_delta ?? null,
      m?.pending_delta ?? null,
    ],
  );
}

// ---- lots ----

export async function insertLot(q: Queryable, l: Omit<LotRow, 'expired'>) {
  await q.query(
    `INSERT INTO rewards.lots (id, program_id, customer_id, source, source_id, points, remaining, status, available_at, expires_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      l.id,
      l.program_id,
      l.customer_id,
      l.source,
      l.source_id,
      l.points,
      l.remaining,
      l.status,
      l.available_at,
      l.expires_at,
      l.created_at,
    ],
  );
}

/** The customer's lots that still hold points, oldest first. */
export async function openLots(q: Queryable, customerId: string): Promise<LotRow[]> {
  const { rows } = await q.query<LotRow>(
    `SELECT ${LOT_COLS} FROM rewards.lots WHERE customer_id = $1 AND remaining > 0 ORDER BY id`,
    [customerId],
  );
  return rows;
}

export async function getLots(q: Queryable, ids: string[]): Promise<LotRow[]> {
  const { rows } = await q.query<LotRow>(
    `SELECT ${LOT_COLS} FROM rewards.lots WHERE id = ANY($1::text[]) ORDER BY id`,
    [ids],
  );
  return rows;
}

/** Pending lots of the customer whose pending period is over. */
export async function duePendingLots(q: Queryable, customerId: string, now: Date): Promise<LotRow[]> {
  const { rows } = await q.query<LotRow>(
    `SELECT ${LOT_COLS} FROM rewards.lots WHERE customer_id = $1 AND status = 'pending' AND available_at <= $2 ORDER BY id`,
    [customerId, now],
  );
  return rows;
}

export async function dueExpiryLots(q: Queryable, customerId: string, now: Date): Promise<LotRow[]> {
  const { rows } = await q.query<LotRow>(
    `SELECT ${LOT_COLS} FROM rewards.lots WHERE customer_id = $1 AND remaining > 0 AND expires_at <= $2 ORDER BY id`,
    [customerId, now],
  );
  return rows;
}

/** Sets remaining / status / expired on several lots in one statement. */
export async function updateLots(q: Queryable, lots: Pick<LotRow, 'id' | 'remaining' | 'status' | 'expired'>[]) {
  if (lots.length === 0) return;
  await q.query(
    `UPDATE rewards.lots l SET remaining = x.remaining, status = x.status, expired = x.expired
       FROM jsonb_to_recordset($1::jsonb) AS x(id text, remaining bigint, status text, expired bigint)
      WHERE l.id = x.id`,
    [JSON.stringify(lots.map((l) => ({ id: l.id, remaining: l.remaining, status: l.status, expired: l.expired })))],
  );
}

/** Customers with work due (pending period over, or lots past expiry), for the worker. */
export async function customersWithDueLots(q: Queryable, now: Date, limit: number): Promise<string[]> {
  const { rows } = await q.query<{ customer_id: string }>(
    `SELECT customer_id FROM (
       (SELECT customer_id FROM rewards.lots WHERE status = 'pending' AND available_at <= $1 ORDER BY available_at LIMIT $2)
       UNION
       (SELECT customer_id FROM rewards.lots WHERE remaining > 0 AND expires_at <= $1 ORDER BY expires_at LIMIT $2)
     ) d LIMIT $2`,
    [now, limit],
  );
  return rows.map((r) => r.customer_id);
}

// ---- earnings, redemptions ----

export async function getEarning(q: Queryable, paymentId: string, lock = false): Promise<EarningRow | undefined> {
  const { rows } = await q.query<EarningRow>(
    `SELECT * FROM rewards.earnings WHERE payment_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [paymentId],
  );
  return rows[0];
}

export async function updateEarning(q: Queryable, paymentId: string, clawedBack: number, shortfall: number) {
  await q.query(`UPDATE rewards.earnings SET clawed_back = $2, shortfall = $3 WHERE payment_id = $1`, [
    paymentId,
    clawedBack,
    shortfall,
  ]);
}

export async function insertRedemption(
  q: Queryable,
  d: Omit<RedemptionRow, 'points_returned' | 'settled_at' | 'status'>,
) {
  await q.query(
    `INSERT INTO rewards.redemptions (id, payment_id, program_id, customer_id, merchant_id, points, value_paise, mode, status, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'reserved', $9)`,
    [d.id, d.payment_id, d.program_id, d.customer_id, d.merchant_id, d.points, d.value_paise, d.mode, d.created_at],
  );
}

export async function getRedemptionByPayment(
  q: Queryable,
  paymentId: string,
  lock = false,
): Promise<RedemptionRow | undefined> {
  const { rows } = await q.query<RedemptionRow>(
    `SELECT * FROM rewards.redemptions WHERE payment_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [paymentId],
  );
  return rows[0];
}

/** Compare-and-set on a redemption's status; undefined when it was not `from`. */
export async function settleRedemption(
  q: Queryable,
  id: string,
  from: RedemptionRow['status'],
  to: RedemptionRow['status'],
  now: Date,
) {
  const { rows } = await q.query<RedemptionRow>(
    `UPDATE rewards.redemptions SET status = $3, settled_at = $4 WHERE id = $1 AND status = $2 RETURNING *`,
    [id, from, to, now],
  );
  return rows[0];
}

export async function setPointsReturned(q: Queryable, id: string, pointsReturned: number) {
  await q.query(`UPDATE rewards.redemptions SET points_returned = $2 WHERE id = $1`, [id, pointsReturned]);
}

export async function insertConsumptions(q: Queryable, redemptionId: string, c: { lot_id: string; points: number }[]) {
  await q.query(
    `INSERT INTO rewards.lot_consumptions (redemption_id, lot_id, points)
     SELECT $1, x.lot_id, x.points FROM jsonb_to_recordset($2::jsonb) AS x(lot_id text, points bigint)`,
    [redemptionId, JSON.stringify(c)],
  );
}

export async function consumptions(q: Queryable, redemptionId: string): Promise<ConsumptionRow[]> {
  const { rows } = await q.query<ConsumptionRow>(
    `SELECT * FROM rewards.lot_consumptions WHERE redemption_id = $1 ORDER BY lot_id`,
    [redemptionId],
  );
  return rows;
}

export async function setConsumptionReturned(
  q: Queryable,
  redemptionId: string,
  c: { lot_id: string; returned: number }[],
) {
  await q.query(
    `UPDATE rewards.lot_consumptions lc SET returned = x.returned
       FROM jsonb_to_recordset($2::jsonb) AS x(lot_id text, returned bigint)
      WHERE lc.redemption_id = $1 AND lc.lot_id = x.lot_id`,
    [redemptionId, JSON.stringify(c)],
  );
}

export async function insertLink(
  q: Queryable,
  l: { payment_id: string; program_id: string; customer_id: string; now: Date },
) {
  await q.query(
    `INSERT INTO rewards.payment_links (payment_id, program_id, customer_id, created_at) VALUES ($1, $2, $3, $4)`,
    [l.payment_id, l.program_id, l.customer_id, l.now],
  );
}

export async function getLink(
  q: Queryable,
  paymentId: string,
): Promise<{ program_id: string; customer_id: string } | undefined> {
  const { rows } = await q.query<{ program_id: string; customer_id: string }>(
    `SELECT program_id, customer_id FROM rewards.payment_links WHERE payment_id = $1`,
    [paymentId],
  );
  return rows[0];
}

export async function insertAdjustment(
  q: Queryable,
  a: { id: string; program_id: string; customer_id: string; points: number; reason: string; actor: string; now: Date },
) {
  await q.query(
    `INSERT INTO rewards.adjustments (id, program_id, customer_id, points, reason, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [a.id, a.program_id, a.customer_id, a.points, a.reason, a.actor, a.now],
  );
}

// ---- statement ----

export async function insertMovements(q: Queryable, ms: NewMovement[], now: Date) {
  if (ms.length === 0) return;
  await q.query(
    `INSERT INTO rewards.movements (id, program_id, customer_id, kind, available_delta, pending_delta, payment_id, reference, detail, created_at)
     SELECT x.id, x.program_id, x.customer_id, x.kind, x.available_delta, x.pending_delta, x.payment_id, x.reference, x.detail, $2
       FROM jsonb_to_recordset($1::jsonb) AS x(id text, program_id text, customer_id text, kind text, available_delta bigint,
                                               pending_delta bigint, payment_id text, reference text, detail text)`,
    [JSON.stringify(ms), now],
  );
}

export async function listMovements(
  q: Queryable,
  customerId: string,
  before: string | undefined,
  limit: number,
): Promise<MovementRow[]> {
  const { rows } = await q.query<MovementRow>(
    `SELECT * FROM rewards.movements WHERE customer_id = $1 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`,
    [customerId, before ?? null, limit + 1],
  );
  return rows;
}

/** The balance as of `now`, from the lots: due pending lots count as available, expired lots not at all. */
export async function balanceAt(
  q: Queryable,
  customerId: string,
  now: Date,
  expiringBy: Date,
): Promise<{ available: number; pending: number; expiring: number }> {
  const { rows } = await q.query<{ available: number; pending: number; expiring: number }>(
    `SELECT coalesce(sum(remaining) FILTER (WHERE live AND (status = 'available' OR available_at <= $2)), 0)::bigint
              - (SELECT debt FROM rewards.customers WHERE id = $1) AS available,
            coalesce(sum(remaining) FILTER (WHERE live AND status = 'pending' AND available_at > $2), 0)::bigint AS pending,
            coalesce(sum(remaining) FILTER (WHERE live AND (status = 'available' OR available_at <= $2) AND expires_at <= $3), 0)::bigint AS expiring
       FROM (SELECT remaining, status, available_at, expires_at, (expires_at IS NULL OR expires_at > $2) AS live
               FROM rewards.lots WHERE customer_id = $1 AND remaining > 0) l`,
    [customerId, now, expiringBy],
  );
  return rows[0];
}

// ---- bulk paths (opening balances from an import, coalition membership for imported merchants) ----

/** The program of each merchant that is in one. */
export async function programsForMerchants(q: Queryable, merchantIds: string[]): Promise<Map<string, ProgramRow>> {
  if (merchantIds.length === 0) return new Map();
  const { rows } = await q.query<ProgramRow & { merchant_id: string }>(
    `SELECT pm.merchant_id, p.* FROM rewards.program_merchants pm JOIN rewards.programs p ON p.id = pm.program_id
      WHERE pm.merchant_id = ANY($1::text[])`,
    [merchantIds],
  );
  return new Map(rows.map(({ merchant_id, ...p }) => [merchant_id, p as ProgramRow]));
}

/** Adds merchants to a program; those already in one (this or another) are left as they are. */
export async function addMembersBatch(
  q: Queryable,
  programId: string,
  members: { merchant_id: string; mcc: string }[],
  now: Date,
): Promise<number> {
  if (members.length === 0) return 0;
  const r = await q.query(
    `INSERT INTO rewards.program_merchants (merchant_id, program_id, mcc, joined_at)
     SELECT m, $1, c, $4 FROM unnest($2::text[], $3::text[]) AS x(m, c)
     ON CONFLICT (merchant_id) DO NOTHING`,
    [programId, members.map((m) => m.merchant_id), members.map((m) => m.mcc), now],
  );
  return r.rowCount;
}

/**
 * The customers of these (program, hash) pairs, created where missing, locked in id order (the
 * order every bulk caller takes them in, so two never deadlock).
 */
export async function lockOrCreateCustomersBatch(
  q: Queryable,
  wanted: { id: string; program_id: string; hash: Buffer }[],
  now: Date,
): Promise<(CustomerRow & { customer_hash: Buffer })[]> {
  if (wanted.length === 0) return [];
  const params = [wanted.map((w) => w.id), wanted.map((w) => w.program_id), wanted.map((w) => w.hash), now];
  await q.query(
    `INSERT INTO rewards.customers (id, program_id, customer_hash, created_at)
     SELECT * , $4::timestamptz FROM unnest($1::text[], $2::text[], $3::bytea[]) ORDER BY 1
     ON CONFLICT (program_id, customer_hash) DO NOTHING`,
    params,
  );
  const { rows } = await q.query<CustomerRow & { customer_hash: Buffer | Uint8Array }>(
    `SELECT ${CUSTOMER_COLS}, customer_hash FROM rewards.customers c
      WHERE (program_id, customer_hash) IN (SELECT * FROM unnest($1::text[], $2::bytea[]))
      ORDER BY id FOR UPDATE`,
    [params[1], params[2]],
  );
  return rows.map((r) => ({ ...r, customer_hash: Buffer.from(r.customer_hash) }));
}

export async function insertLotsBatch(q: Queryable, lots: Omit<LotRow, 'expired'>[]) {
  if (lots.length === 0) return;
  await q.query(
    `INSERT INTO rewards.lots (id, program_id, customer_id, source, source_id, points, remaining, status, available_at, expires_at, created_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[],
                          $9::timestamptz[], $10::timestamptz[], $11::timestamptz[])`,
    [
      lots.map((l) => l.id),
      lots.map((l) => l.program_id),
      lots.map((l) => l.customer_id),
      lots.map((l) => l.source),
      lots.map((l) => l.source_id),
      lots.map((l) => l.points),
      lots.map((l) => l.remaining),
      lots.map((l) => l.status),
      lots.map((l) => l.available_at),
      lots.map((l) => l.expires_at),
      lots.map((l) => l.created_at),
    ],
  );
}

/**
 * The rewards part of a payment completion statement (PaymentHooks.succeededSetSql): a boolean
 * SQL expression, rewards.earn_in_completion() (migration 0037) over the rows of `rows` (the
 * payments just moved to succeeded) and the earns planned for them (`plans`, by payment id). True
 * when every payment's rewards work is done by it (or there is none); false when one needs the
 * long way (the caller abandons the statement with TPP01).
 */
export const earnInCompletionSql = (
  rows: string,
  param: (value: unknown) => string,
  plans: Record<string, unknown>,
  now: Date,
) =>
  `rewards.earn_in_completion(
     (SELECT coalesce(jsonb_agg(jsonb_build_object('id', r.id, 'merchant_id', r.merchant_id, 'store_id', r.store_id,
                                                   'created_at', r.created_at, 'amount', r.amount,
                                                   'payer_vpa_bidx', r.payer_vpa_bidx, 'legacy_payer', r.payer_vpa IS NOT NULL)),
                      '[]'::jsonb) FROM ${rows} r),
     ${param(JSON.stringify(plans))}::jsonb, ${param(now)}::timestamptz)`;
