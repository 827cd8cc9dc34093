import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { MappingError } from './mapping.ts';

// Matching rules, kept as data (rules.json). Each rule is a strategy and a list of conditions
// that must all hold between a bank line (l) and one of our items (o). Rules run in order; a
// line or item matched by one rule is not offered to the next. Fields are from closed lists,
// so a rule compiles to SQL without any text of the rule itself in the statement.

export const LINE_FIELDS = { txn_ref: 'l.txn_ref', bank_ref: 'l.bank_ref', reference: 'l.reference' } as const;
export const OUR_FIELDS = {
  txn_ref: 'o.txn_ref',
  bank_ref: 'o.bank_ref',
  id: 'o.id',
  merchant_id: 'o.merchant_id',
} as const;
const LineField = Type.Union(Object.keys(LINE_FIELDS).map((k) => Type.Literal(k)));
const OurField = Type.Union(Object.keys(OUR_FIELDS).map((k) => Type.Literal(k)));

const Condition = Type.Union([
  Type.Object(
    { field_equals: Type.Object({ line: LineField, ours: OurField }, { additionalProperties: false }) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      amount_within: Type.Object(
        {
          paise: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
          bps: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      time_within: Type.Object(
        { seconds: Type.Integer({ minimum: 0, maximum: 30 * 86_400 }) },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      reference_contains: Type.Object({ line: LineField, ours: OurField }, { additionalProperties: false }),
    },
    { additionalProperties: false },
  ),
]);
export type Condition = Static<typeof Condition>;

const Rule = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9_]{1,40}$' }),
    /** one_to_one: a line and an item; many_to_one: several lines (same line key) for one item; one_to_many: one line for several items. */
    strategy: Type.Union([Type.Literal('one_to_one'), Type.Literal('many_to_one'), Type.Literal('one_to_many')]),
    applies_to: Type.Array(
      Type.Union([Type.Literal('payment'), Type.Literal('refund'), Type.Literal('compensation')]),
      {
        minItems: 1,
        uniqueItems: true,
      },
    ),
    when: Type.Array(Condition, { minItems: 1, maxItems: 8 }),
    /** many_to_one: lines are grouped by this field; one_to_many: our items by this one. */
    group_by: Type.Optional(Type.Union([LineField, OurField])),
  },
  { additionalProperties: false },
);
export type Rule = Static<typeof Rule>;

export const RulesSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{1,63}$' }),
    /** An item of ours with no line this many hours after it completed is missing, not merely expected. */
    missing_after_hours: Type.Integer({ minimum: 1, maximum: 24 * 30 }),
    rules: Type.Array(Rule, { minItems: 1, maxItems: 20 }),
  },
  { additionalProperties: false },
);
export type RuleSet = Static<typeof RulesSchema>;

export function validateRules(raw: unknown, source = 'rules'): RuleSet {
  if (!Value.Check(RulesSchema, raw)) {
    const e = [...Value.Errors(RulesSchema, raw)][0];
    throw new MappingError(`${source}: ${e?.path || '/'} ${e?.message ?? 'is invalid'}`);
  }
  const rs = raw as RuleSet;
  const names = new Set<string>();
  for (const r of rs.rules) {
    if (names.has(r.name)) throw new MappingError(`${source}: rule "${r.name}" twice`);
    names.add(r.name);
    if (r.strategy !== 'one_to_one' && !r.group_by)
      throw new MappingError(`${source}: rule "${r.name}" (${r.strategy}) needs group_by`);
    if (r.strategy === 'many_to_one' && r.group_by && !(r.group_by in LINE_FIELDS))
      throw new MappingError(`${source}: rule "${r.name}": many_to_one groups lines, by a line field`);
    if (r.strategy === 'one_to_many' && r.group_by && !(r.group_by in OUR_FIELDS))
      throw new MappingError(`${source}: rule "${r.name}": one_to_many groups our items, by one of our fields`);
    for (const c of r.when)
      if ('amount_within' in c && c.amount_within.paise === undefined && c.amount_within.bps === undefined)
        throw new MappingError(`${source}: rule "${r.name}": amount_within needs paise or bps`);
  }
  return rs;
}

export const RULES_FILE = join(dirname(fileURLToPath(import.meta.url)), 'rules.json');
export function loadRules(file = RULES_FILE): RuleSet {
  return validateRules(JSON.parse(readFileSync(file, 'utf8')), file.split('/').pop());
}

/**
 * The SQL condition for `c`, with the line's amount and time as `lineAmount`/`lineAt` (a sum and
 * a bound for grouped strategies) and ours as `ourAmount`/`ourAt`. Integer arithmetic only:
 * a tolerance in basis points is floor(amount × bps / 10000) paise.
 */
export function conditionSql(
  c: Condition,
  sides: { lineAmount: string; ourAmount: string; lineAt: string; ourAt: string; line?: string; ours?: string } = {
    lineAmount: 'l.amount_paise',
    ourAmount: 'o.amount',
    lineAt: 'l.txn_at',
    ourAt: 'o.at',
  },
): string {
  const lf = (f: keyof typeof LINE_FIELDS) => (sides.line ? `${sides.line}.${f}` : LINE_FIELDS[f]);
  const of = (f: keyof typeof OUR_FIELDS) => (sides.ours ? `${sides.ours}.${f}` : OUR_FIELDS[f]);
  if ('field_equals' in c) return `${lf(c.field_equals.line as never)} = ${of(c.field_equals.ours as never)}`;
  if ('reference_contains' in c)
    return `strpos(${lf(c.reference_contains.line as never)}, ${of(c.reference_contains.ours as never)}) > 0`;
  if ('time_within' in c)
    return `${sides.lineAt} IS NOT NULL AND abs(extract(epoch FROM (${sides.lineAt} - ${sides.ourAt}))) <= ${c.time_within.seconds}`;
  const paise = c.amount_within.paise ?? 0;
  const bps = c.amount_within.bps ?? 0;
  return `abs(${sides.lineAmount} - ${sides.ourAmount}) <= greatest(${paise}::bigint, (${sides.ourAmount} * ${bps}) / 10000)`;
}
