import { Type, type Static } from '@sinclair/typebox';
import { PageQuery } from '../../http/pagination.ts';
import { PAYMENT_STATUSES } from './payments.state.ts';

const Nullable = <T extends import('@sinclair/typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);

/**
 * The optional `rewards` field of POST /v1/payments (and of the terminals' payment.create), read
 * by the rewards module's hooks: defined here, with the request it is part of, so that payments
 * does not depend on rewards. `amount` stays the UPI amount the customer pays; points redeemed
 * pay the rest of the basket: basket = amount + redeem_points × point value.
 */
export const PaymentRewardsRequest = Type.Object(
  {
    vpa: Type.Optional(Type.String({ maxLength: 255, description: "The customer's UPI address" })),
    phone: Type.Optional(Type.String({ maxLength: 20, description: "The customer's Indian mobile number (+91…)" })),
    redeem_points: Type.Optional(
      Type.Number({ description: 'Points to burn on this payment (integer ≥ the program minimum)' }),
    ),
    mode: Type.Optional(
      Type.Union([Type.Literal('split_tender'), Type.Literal('discount')], {
        description:
          'split_tender (default): the points pay part of the basket and the program owes the merchant their value; ' +
          'discount: the merchant takes the value off the price',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Reward points on this payment. Names the customer (vpa or phone; default: payer_vpa) so the payment earns to them, and ' +
      'optionally redeems points: they are reserved now and spent when the payment succeeds, or released when it fails or expires. ' +
      '`amount` is what the customer pays by UPI after the points; the basket is amount + redeem_points × point_value_paise.',
  },
);
export type PaymentRewardsInput = Static<typeof PaymentRewardsRequest>;

export const CreatePayment = Type.Object(
  {
    terminal_id: Type.String({ maxLength: 100 }),
    // Integer paise. The schema only checks the JSON type; the service says exactly what is wrong
    // (fractional, zero, negative, above the limit) with a stable error code.
    amount: Type.Number({ description: 'Amount in paise (integer, > 0)' }),
    currency: Type.String({ description: 'Always "INR"' }),
    method: Type.Union([Type.Literal('upi_qr'), Type.Literal('upi_collect')]),
    payer_vpa: Type.Optional(Type.String({ maxLength: 255, description: 'Required for upi_collect' })),
    note: Type.Optional(Type.String({ maxLength: 50 })),
    // Reward points: `amount` stays the UPI amount; redeemed points pay the rest of the basket.
    rewards: Type.Optional(PaymentRewardsRequest),
  },
  { additionalProperties: false },
);

export const Payment = Type.Object({
  id: Type.String(),
  terminal_id: Type.String(),
  store_id: Type.String(),
  merchant_id: Type.String(),
  method: Type.String(),
  amount: Type.Integer(),
  currency: Type.String(),
  status: Type.Union(PAYMENT_STATUSES.map((s) => Type.Literal(s))),
  payer_vpa: Nullable(Type.String({ description: 'Masked' })),
  note: Nullable(Type.String()),
  upi_uri: Nullable(Type.String({ description: 'For upi_qr: the string to render as a QR code' })),
  txn_ref: Type.String(),
  bank: Type.Object({ code: Type.String(), ref: Nullable(Type.String()), response_code: Nullable(Type.String()) }),
  refunded_amount: Type.Integer(),
  refundable_amount: Type.Integer(),
  needs_reconciliation: Type.Boolean(),
  expires_at: Type.String({ format: 'date-time' }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  completed_at: Nullable(Type.String({ format: 'date-time' })),
});

export const PaymentListQuery = Type.Object(
  {
    ...PageQuery,
    merchant_id: Type.Optional(Type.String({ maxLength: 100 })),
    terminal_id: Type.Optional(Type.String({ maxLength: 100 })),
    store_id: Type.Optional(Type.String({ maxLength: 100 })),
    status: Type.Optional(Type.Union(PAYMENT_STATUSES.map((s) => Type.Literal(s)))),
    created_from: Type.Optional(Type.String({ format: 'date-time' })),
    created_to: Type.Optional(Type.String({ format: 'date-time' })),
    payer_vpa: Type.Optional(
      Type.String({ maxLength: 255, description: "Payments by this payer (matched through the VPA's blind index)" }),
    ),
    needs_reconciliation: Type.Optional(
      Type.Boolean({
        description:
          'Only payments flagged for reconciliation (deemed, unknown at the bank, success after close, or a refund of theirs flagged)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const CreateRefund = Type.Object(
  {
    amount: Type.Number({ description: 'Amount in paise to refund (integer, > 0, at most what is left)' }),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 140 })),
  },
  { additionalProperties: false },
);

export const Refund = Type.Object({
  id: Type.String(),
  payment_id: Type.String(),
  amount: Type.Integer(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('succeeded'), Type.Literal('failed')]),
  reason: Nullable(Type.String()),
  bank: Type.Object({ ref: Nullable(Type.String()), response_code: Nullable(Type.String()) }),
  needs_reconciliation: Type.Boolean({
    description: "The bank's answers left this refund for reconciliation (its amount stays reserved)",
  }),
  created_at: Type.String({ format: 'date-time' }),
  completed_at: Nullable(Type.String({ format: 'date-time' })),
});
