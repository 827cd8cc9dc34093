import { Type, type TSchema } from '@sinclair/typebox';
import { PageQuery } from '../../http/pagination.ts';

// Request and response schemas for the rewards API. Numbers that the service checks in detail
// (ranges, integers) are only typed here, so the service can answer with a precise message.

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const MerchantId = Type.String({ pattern: '^mer_[0-9a-f]{32}$' });
const Rounding = Type.Union([Type.Literal('down'), Type.Literal('nearest'), Type.Literal('up')], {
  description: 'How the exact number of points is rounded, once, after all multipliers',
});
const Vpa = Type.String({ maxLength: 255, description: "The customer's UPI address" });
const Phone = Type.String({ maxLength: 20, description: "The customer's Indian mobile number (+91…)" });

// The optional `rewards` field of POST /v1/payments is the payments module's request
// (payments.schemas.ts): rewards implements payments' hooks and reads it, so rewards depends on
// payments and never the reverse. Re-exported here for the rewards API's own documentation.
export { PaymentRewardsRequest, type PaymentRewardsInput } from '../payments/index.ts';

const Earn = Type.Object(
  {
    points: Type.Number({ description: 'Points earned for every per_amount_paise spent' }),
    per_amount_paise: Type.Number({ description: 'e.g. 1000: one unit of earn per ₹10' }),
    rounding: Rounding,
  },
  { additionalProperties: false },
);
const Redemption = Type.Object(
  {
    min_points: Type.Optional(Type.Number({ description: 'Fewest points a redemption may burn (default 1)' })),
    max_basket_bp: Type.Optional(
      Type.Number({
        description: 'Largest share of the basket points may pay, in basis points (default 10000 = 100%)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const Conditions = Type.Object(
  {
    mcc: Type.Optional(Type.Array(Type.String(), { description: 'Merchant category codes' })),
    store_ids: Type.Optional(Type.Array(Type.String())),
    days_of_week: Type.Optional(
      Type.Array(Type.Integer(), { description: 'ISO weekdays, 1 = Monday … 7 = Sunday (program timezone)' }),
    ),
    time_from: Type.Optional(Type.String({ description: 'HH:MM local, inclusive' })),
    time_to: Type.Optional(Type.String({ description: 'HH:MM local, exclusive; before time_from = wraps midnight' })),
    starts_at: Type.Optional(Type.String({ description: 'Campaign start (ISO 8601), inclusive' })),
    ends_at: Type.Optional(Type.String({ description: 'Campaign end (ISO 8601), exclusive' })),
  },
  { additionalProperties: false, description: 'All given conditions must hold for the rule to apply' },
);

export const CreateRule = Type.Object(
  {
    kind: Type.Union([
      Type.Literal('multiplier'),
      Type.Literal('minimum_spend'),
      Type.Literal('cap_per_transaction'),
      Type.Literal('cap_per_customer_day'),
    ]),
    multiplier_bp: Type.Optional(Type.Number({ description: 'multiplier: basis points, 20000 = 2x' })),
    amount_paise: Type.Optional(Type.Number({ description: 'minimum_spend: paise' })),
    points: Type.Optional(Type.Number({ description: 'cap_per_transaction / cap_per_customer_day: points' })),
    conditions: Type.Optional(Conditions),
    description: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const Rule = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  multiplier_bp: Type.Optional(Type.Integer()),
  amount_paise: Type.Optional(Type.Integer()),
  points: Type.Optional(Type.Integer()),
  conditions: Conditions,
  description: Nullable(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
});

export const CreateProgram = Type.Object(
  {
    merchant_id: Type.Optional(
      Type.String({
        maxLength: 100,
        description: 'Owner. Omit (platform keys only) for a coalition program run by the platform',
      }),
    ),
    name: Type.String({ minLength: 1, maxLength: 99 }),
    point_value_paise: Type.Number({ description: 'What one point is worth at the till, in paise' }),
    earn: Earn,
    pending_period_seconds: Type.Optional(
      Type.Number({ description: 'How long earned points stay pending before they can be spent (default 0)' }),
    ),
    validity_days: Type.Optional(
      Nullable(
        Type.Number({ description: 'Days a lot of points lives after it is earned; null (default) = never expires' }),
      ),
    ),
    allow_negative_balance: Type.Optional(
      Type.Boolean({ description: 'May a clawback take a balance below zero? Fixed at creation (default false)' }),
    ),
    budget_points: Type.Optional(
      Nullable(Type.Number({ description: 'Most points the program will ever grant by earning; null = no budget' })),
    ),
    timezone: Type.Optional(
      Type.String({
        maxLength: 64,
        description: 'IANA timezone for time windows and the daily cap (default Asia/Kolkata)',
      }),
    ),
    redemption: Type.Optional(Redemption),
    rules: Type.Optional(Type.Array(CreateRule, { maxItems: 50 })),
  },
  { additionalProperties: false },
);

export const UpdateProgram = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 99 })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused')])),
    point_value_paise: Type.Optional(Type.Number()),
    earn: Type.Optional(Earn),
    pending_period_seconds: Type.Optional(Type.Number()),
    validity_days: Type.Optional(Nullable(Type.Number())),
    budget_points: Type.Optional(Nullable(Type.Number())),
    timezone: Type.Optional(Type.String({ maxLength: 64 })),
    redemption: Type.Optional(Redemption),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const Program = Type.Object({
  id: Type.String(),
  owner_merchant_id: Nullable(Type.String()),
  name: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('paused')]),
  point_value_paise: Type.Integer(),
  earn: Type.Object({ points: Type.Integer(), per_amount_paise: Type.Integer(), rounding: Type.String() }),
  pending_period_seconds: Type.Integer(),
  validity_days: Nullable(Type.Integer()),
  allow_negative_balance: Type.Boolean(),
  budget_points: Nullable(Type.Integer()),
  budget_used: Type.Integer(),
  timezone: Type.String(),
  redemption: Type.Object({ min_points: Type.Integer(), max_basket_bp: Type.Integer() }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

export const ProgramListQuery = Type.Object(
  { ...PageQuery, merchant_id: Type.Optional(Type.String({ maxLength: 100 })) },
  { additionalProperties: false },
);

export const AddMember = Type.Object({ merchant_id: MerchantId }, { additionalProperties: false });
export const Member = Type.Object({
  program_id: Type.String(),
  merchant_id: Type.String(),
  mcc: Type.String(),
  joined_at: Type.String({ format: 'date-time' }),
});

/** Who: the merchant (whose program) and the customer, by vpa or phone. */
const CustomerQueryFields = {
  merchant_id: Type.Optional(
    Type.String({ maxLength: 100, description: 'Required for platform keys; a merchant key is its own merchant' }),
  ),
  vpa: Type.Optional(Vpa),
  phone: Type.Optional(Phone),
};

export const BalanceQuery = Type.Object(CustomerQueryFields, { additionalProperties: false });
export const Balance = Type.Object({
  program_id: Type.String(),
  available: Type.Integer({ description: 'Points that can be spent now (negative only where the program allows it)' }),
  pending: Type.Integer({ description: 'Points earned but still in their pending period' }),
  expiring_30d: Type.Integer({ description: 'Of the available points, those that expire within 30 days' }),
});

export const StatementQuery = Type.Object({ ...PageQuery, ...CustomerQueryFields }, { additionalProperties: false });
export const Movement = Type.Object({
  id: Type.String(),
  kind: Type.String({
    description:
      'earn, mature, redeem, release, clawback, return, expire, adjustment, shortfall or opening_balance (points imported from another system)',
  }),
  points: Type.Integer({ description: 'Change of available + pending' }),
  available_delta: Type.Integer(),
  pending_delta: Type.Integer(),
  payment_id: Nullable(Type.String()),
  reference: Nullable(Type.String()),
  detail: Nullable(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
});

export const CreateAdjustment = Type.Object(
  {
    merchant_id: Type.Optional(Type.String({ maxLength: 100 })),
    vpa: Type.Optional(Vpa),
    phone: Type.Optional(Phone),
    points: Type.Number({ description: 'Non-zero integer: credit (> 0) or debit (< 0)' }),
    reason: Type.String({ minLength: 1, maxLength: 200 }),
  },
  { additionalProperties: false },
);
export const Adjustment = Type.Object({
  id: Type.String(),
  program_id: Type.String(),
  points: Type.Integer(),
  reason: Type.String(),
  balance: Balance,
});

export const QuoteQuery = Type.Object(
  {
    terminal_id: Type.Optional(Type.String({ maxLength: 100 })),
    merchant_id: Type.Optional(Type.String({ maxLength: 100 })),
    amount: Type.Integer({ minimum: 1, description: 'Basket amount in paise' }),
    vpa: Type.Optional(Vpa),
    phone: Type.Optional(Phone),
    redeem_points: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
export const Quote = Type.Object({
  program_id: Type.String(),
  point_value_paise: Type.Integer(),
  available: Type.Integer(),
  max_redeem_points: Type.Integer({
    description: 'Most points this basket can burn (balance, program share limit, at least 1 paisa left for UPI)',
  }),
  redeem_points: Type.Integer(),
  redeem_value_paise: Type.Integer(),
  upi_amount: Type.Integer({ description: 'What the customer pays by UPI after redeem_points' }),
  earn_points: Type.Integer({ description: 'Points the UPI amount earns' }),
});

export const PaymentRewards = Type.Object({
  payment_id: Type.String(),
  program_id: Type.String(),
  earned: Nullable(
    Type.Object({
      points: Type.Integer(),
      clawed_back: Type.Integer(),
      shortfall: Type.Integer(),
      breakdown: Type.Unknown(),
    }),
  ),
  redemption: Nullable(
    Type.Object({
      id: Type.String(),
      points: Type.Integer(),
      value_paise: Type.Integer(),
      mode: Type.String(),
      status: Type.String(),
      points_returned: Type.Integer(),
    }),
  ),
});
