import { AppError } from '../../platform/errors.ts';

// Earn rules are data, not code: each rule is a kind, one integer value and optional conditions,
// checked here when written and evaluated by computeEarn() when a payment succeeds (and by a
// quote). Everything is integer arithmetic: the exact number of points is a fraction that is
// rounded once, with the program's rounding mode, after all multipliers.

export const ROUNDING_MODES = ['down', 'nearest', 'up'] as const;
export type Rounding = (typeof ROUNDING_MODES)[number];

export const RULE_KINDS = ['multiplier', 'minimum_spend', 'cap_per_transaction', 'cap_per_customer_day'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

/** All given conditions must hold for a rule to apply; no conditions = always. */
export interface RuleConditions {
  /** Merchant category codes (ISO 18245). */
  mcc?: string[];
  store_ids?: string[];
  /** ISO weekdays in the program's timezone: 1 = Monday … 7 = Sunday. */
  days_of_week?: number[];
  /** Local time window "HH:MM", from inclusive, to exclusive; wraps midnight when from > to. */
  time_from?: string;
  time_to?: string;
  /** Campaign dates: starts_at inclusive, ends_at exclusive (ISO 8601 instants). */
  starts_at?: string;
  ends_at?: string;
}

export interface EarnRule {
  id: string;
  kind: RuleKind;
  /** multiplier: basis points (20000 = 2x); minimum_spend: paise; caps: points. */
  value: number;
  conditions: RuleConditions;
}

export interface EarnRate {
  earn_points: number;
  earn_per_paise: number;
  rounding: Rounding;
}

export interface EarnContext {
  /** The UPI amount paid, in paise. */
  amount: number;
  mcc: string | null;
  storeId: string | null;
  at: Date;
  timezone: string;
  /** Points this customer already earned today (program timezone), for cap_per_customer_day. */
  earnedToday: number;
  /** Points left in the program's budget; null = no budget. */
  budgetLeft: number | null;
}

export interface EarnBreakdown {
  rate: { earn_points: number; earn_per_paise: number; rounding: Rounding };
  multipliers: { rule_id: string; multiplier_bp: number }[];
  minimum_spend?: { rule_id: string; amount_paise: number };
  /** Points after rounding, before any cap or the budget. */
  uncapped: number;
  caps: { by: string; limit: number }[];
  /** The smallest matching cap_per_customer_day (points a day), if any. */
  day_cap: number | null;
  points: number;
}

export const MAX_RULES_PER_PROGRAM = 50;
/** A bound far above any real earn, so a runaway stack of multipliers cannot overflow. */
export const MAX_POINTS_PER_EARN = 1_000_000_000_000;
const BP = 10_000n;

// ---- local time in the program's timezone ----

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

export interface LocalTime {
  /** "YYYY-MM-DD" */
  day: string;
  weekday: number;
  /** Minutes since local midnight. */
  minute: number;
}

// Intl's formatToParts is slow (tens of microseconds) and runs on every earn, so the zone's UTC
// offset is remembered per zone and UTC minute: offsets only change on a minute boundary, and
// payments come many to a minute.
const offsets = new Map<string, { minute: number; offsetMs: number }>();

function offsetMs(at: Date, tz: string): number {
  const minute = Math.floor(at.getTime() / 60_000);
  const hit = offsets.get(tz);
  if (hit && hit.minute === minute) return hit.offsetMs;
  const parts: Record<string, string> = {};
  for (const p of formatter(tz).formatToParts(at)) parts[p.type] = p.value;
  const asUtc = Date.UTC(
    Number(parts.year),
    Number(parts.month) - 1,
    Number(parts.day),
    Number(parts.hour),
    Number(parts.minute),
  );
  const offset = asUtc - minute * 60_000;
  if (offsets.size > 1000) offsets.clear();
  offsets.set(tz, { minute, offsetMs: offset });
  return offset;
}

export function localTime(at: Date, tz: string): LocalTime {
  const local = new Date(at.getTime() + offsetMs(at, tz));
  const dow = local.getUTCDay();
  return {
    day: local.toISOString().slice(0, 10),
    weekday: dow === 0 ? 7 : dow,
    minute: local.getUTCHours() * 60 + local.getUTCMinutes(),
  };
}

export function isValidTimezone(tz: unknown): tz is string {
  if (typeof tz !== 'string' || tz.length === 0 || tz.length > 64) return false;
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

const hhmm = (s: string) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));

export function conditionsHold(
  c: RuleConditions,
  ctx: Pick<EarnContext, 'mcc' | 'storeId' | 'at' | 'timezone'>,
  local?: LocalTime,
): boolean {
  if (c.mcc && (ctx.mcc === null || !c.mcc.includes(ctx.mcc))) return false;
  if (c.store_ids && (ctx.storeId === null || !c.store_ids.includes(ctx.storeId))) return false;
  if (c.starts_at && ctx.at.getTime() < Date.parse(c.starts_at)) return false;
  if (c.ends_at && ctx.at.getTime() >= Date.parse(c.ends_at)) return false;
  if (c.days_of_week || c.time_from) {
    const lt = local ?? localTime(ctx.at, ctx.timezone);
    if (c.days_of_week && !c.days_of_week.includes(lt.weekday)) return false;
    if (c.time_from && c.time_to) {
      const from = hhmm(c.time_from);
      const to = hhmm(c.time_to);
      const inside = from < to ? lt.minute >= from && lt.minute < to : lt.minute >= from || lt.minute < to;
      if (!inside) return false;
    }
  }
  return true;
}

/** amount × points / per × Π(multipliers), rounded once. Exact: BigInt throughout. */
export function roundPoints(num: bigint, den: bigint, mode: Rounding): bigint {
  switch (mode) {
    case 'down':
      return num / den;
    case 'up':
      return (num + den - 1n) / den;
    case 'nearest':
      return (2n * num + den) / (2n * den); // half up
  }
}

/**
 * The points a payment earns. Order: minimum spend (below it: 0), base rate × every matching
 * multiplier (they stack by multiplying), one rounding, then the smallest matching
 * per-transaction cap, the per-customer daily cap, and what is left of the program budget.
 */
export function computeEarn(rate: EarnRate, rules: readonly EarnRule[], ctx: EarnContext): EarnBreakdown {
  const needsLocal = rules.some((r) => r.conditions.days_of_week || r.conditions.time_from);
  const local = needsLocal ? localTime(ctx.at, ctx.timezone) : undefined;
  const applying = rules.filter((r) => conditionsHold(r.conditions, ctx, local));
  const out: EarnBreakdown = {
    rate: { earn_points: rate.earn_points, earn_per_paise: rate.earn_per_paise, rounding: rate.rounding },
    multipliers: [],
    uncapped: 0,
    caps: [],
    day_cap: null,
    points: 0,
  };
  // The highest matching minimum spend is the one that counts.
  for (const r of applying) {
    if (r.kind === 'minimum_spend' && (!out.minimum_spend || r.value > out.minimum_spend.amount_paise)) {
      out.minimum_spend = { rule_id: r.id, amount_paise: r.value };
    }
  }
  if (out.minimum_spend && ctx.amount < out.minimum_spend.amount_paise) return out;

  let num = BigInt(ctx.amount) * BigInt(rate.earn_points);
  let den = BigInt(rate.earn_per_paise);
  for (const r of applying) {
    if (r.kind !== 'multiplier') continue;
    out.multipliers.push({ rule_id: r.id, multiplier_bp: r.value });
    num *= BigInt(r.value);
    den *= BP;
  }
  let points = roundPoints(num, den, rate.rounding);
  if (points > BigInt(MAX_POINTS_PER_EARN)) points = BigInt(MAX_POINTS_PER_EARN);
  out.uncapped = Number(points);

  let p = out.uncapped;
  const cap = (by: string, limit: number) => {
    out.caps.push({ by, limit });
    if (p > limit) p = limit;
  };
  let perTxn: EarnRule | undefined;
  let perDay: EarnRule | undefined;
  for (const r of applying) {
    if (r.kind === 'cap_per_transaction' && (!perTxn || r.value < perTxn.value)) perTxn = r;
    if (r.kind === 'cap_per_customer_day' && (!perDay || r.value < perDay.value)) perDay = r;
  }
  if (perTxn) cap(perTxn.id, perTxn.value);
  if (perDay) {
    out.day_cap = perDay.value;
    cap(perDay.id, Math.max(0, perDay.value - ctx.earnedToday));
  }
  if (ctx.budgetLeft !== null) cap('budget', Math.max(0, ctx.budgetLeft));
  out.points = p;
  return out;
}

// ---- validation of rules as they are written ----

/** A rule as the API takes it; the one numeric field depends on the kind. */
export interface RuleInput {
  kind: string;
  multiplier_bp?: number;
  amount_paise?: number;
  points?: number;
  conditions?: Record<string, unknown>;
  description?: string;
}

export interface NormalizedRule {
  kind: RuleKind;
  value: number;
  conditions: RuleConditions;
  description: string | null;
}

const VALUE_FIELD: Record<RuleKind, 'multiplier_bp' | 'amount_paise' | 'points'> = {
  multiplier: 'multiplier_bp',
  minimum_spend: 'amount_paise',
  cap_per_transaction: 'points',
  cap_per_customer_day: 'points',
};
const VALUE_RANGE: Record<RuleKind, [number, number]> = {
  multiplier: [1, 1_000_000], // up to 100x
  minimum_spend: [1, 1_000_000_000],
  cap_per_transaction: [0, MAX_POINTS_PER_EARN],
  cap_per_customer_day: [0, MAX_POINTS_PER_EARN],
};

const bad = (field: string, problem: string) =>
  new AppError('validation_failed', `${field} ${problem}`, [{ field, problem }]);

function stringList(v: unknown, field: string, re: RegExp, max: number): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > max) throw bad(field, `must be a list of 1-${max} values`);
  for (const x of v) if (typeof x !== 'string' || !re.test(x)) throw bad(field, `has an invalid value`);
  return [...new Set(v as string[])];
}

export function normalizeConditions(raw: unknown, field = 'body.conditions'): RuleConditions {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad(field, 'must be an object');
  const c = raw as Record<string, unknown>;
  const known = new Set(['mcc', 'store_ids', 'days_of_week', 'time_from', 'time_to', 'starts_at', 'ends_at']);
  for (const k of Object.keys(c)) if (!known.has(k)) throw bad(`${field}.${k}`, 'is not a known condition');
  const out: RuleConditions = {};
  if (c.mcc !== undefined) out.mcc = stringList(c.mcc, `${field}.mcc`, /^[0-9]{4}$/, 100);
  if (c.store_ids !== undefined)
    out.store_ids = stringList(c.store_ids, `${field}.store_ids`, /^sto_[0-9a-f]{32}$/, 500);
  if (c.days_of_week !== undefined) {
    const d = c.days_of_week;
    if (!Array.isArray(d) || d.length === 0 || d.length > 7 || d.some((x) => !Number.isInteger(x) || x < 1 || x > 7)) {
      throw bad(`${field}.days_of_week`, 'must list ISO weekdays 1 (Monday) to 7 (Sunday)');
    }
    out.days_of_week = [...new Set(d as number[])].sort();
  }
  if ((c.time_from === undefined) !== (c.time_to === undefined))
    throw bad(`${field}.time_from`, 'and time_to go together');
  if (c.time_from !== undefined) {
    const re = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
    if (typeof c.time_from !== 'string' || !re.test(c.time_from))
      throw bad(`${field}.time_from`, 'must be HH:MM (24 h)');
    if (typeof c.time_to !== 'string' || !re.test(c.time_to)) throw bad(`${field}.time_to`, 'must be HH:MM (24 h)');
    if (c.time_from === c.time_to) throw bad(`${field}.time_to`, 'must differ from time_from');
    out.time_from = c.time_from;
    out.time_to = c.time_to;
  }
  for (const k of ['starts_at', 'ends_at'] as const) {
    if (c[k] === undefined) continue;
    const v = c[k];
    if (typeof v !== 'string' || v.length > 40 || !/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(Date.parse(v))) {
      throw bad(`${field}.${k}`, 'must be an ISO 8601 date-time');
    }
    out[k] = new Date(v).toISOString();
  }
  if (out.starts_at && out.ends_at && Date.parse(out.starts_at) >= Date.parse(out.ends_at)) {
    throw bad(`${field}.ends_at`, 'must be after starts_at');
  }
  return out;
}

export function normalizeRule(input: RuleInput): NormalizedRule {
  if (!(RULE_KINDS as readonly string[]).includes(input.kind))
    throw bad('body.kind', `must be one of ${RULE_KINDS.join(', ')}`);
  const kind = input.kind as RuleKind;
  const field = VALUE_FIELD[kind];
  for (const f of ['multiplier_bp', 'amount_paise', 'points'] as const) {
    if (f !== field && input[f] !== undefined)
      throw bad(`body.${f}`, `is not used by a ${kind} rule (it takes ${field})`);
  }
  const v = input[field];
  const [min, max] = VALUE_RANGE[kind];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw bad(`body.${field}`, `must be an integer from ${min} to ${max}`);
  }
  if (input.description !== undefined && (typeof input.description !== 'string' || input.description.length > 200)) {
    throw bad('body.description', 'must be at most 200 characters');
  }
  return { kind, value: v, conditions: normalizeConditions(input.conditions), description: input.description ?? null };
}

/** The API view of a stored rule: the value under the name its kind uses. */
export function ruleView(r: EarnRule & { description: string | null; created_at: Date }) {
  return {
    id: r.id,
    kind: r.kind,
    [VALUE_FIELD[r.kind]]: r.value,
    conditions: r.conditions,
    description: r.description,
    created_at: r.created_at.toISOString(),
  } as {
    id: string;
    kind: RuleKind;
    multiplier_bp?: number;
    amount_paise?: number;
    points?: number;
    conditions: RuleConditions;
    description: string | null;
    created_at: string;
  };
}
