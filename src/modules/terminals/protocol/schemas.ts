import { Type, type TSchema, type Static } from '@sinclair/typebox';
import { PaymentRewardsRequest, rewardsSchemas } from '../../rewards/index.ts';
import { paymentSchemas } from '../../payments/index.ts';

// The terminal protocol, version 1: one JSON Schema per message. The same definitions validate
// what arrives at the gateway, type the SDK, and are written to docs/terminal-protocol/ (a test
// checks that the files there are what this module produces: `npm run docs:terminal-protocol`).

export const PROTOCOL_VERSION = 1;

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const PaymentId = Type.String({ minLength: 1, maxLength: 100, description: 'A payment id, pay_…' });

export const PAYMENT_STATUS_VALUES = [
  'created',
  'pending',
  'succeeded',
  'failed',
  'expired',
  'partially_refunded',
  'refunded',
] as const;
const PaymentStatus = Type.Union(PAYMENT_STATUS_VALUES.map((s) => Type.Literal(s)));

/** Client message id: unique per terminal; a redelivery with the same id gets the original response. */
export const RequestId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:-]+$' });

export const RequestEnvelope = Type.Object(
  {
    v: Type.Literal(PROTOCOL_VERSION),
    id: RequestId,
    type: Type.String({ minLength: 1, maxLength: 64 }),
    body: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { additionalProperties: false, title: 'Request envelope (terminal -> gateway, on …/req)' },
);

// ---- request bodies ----

export const PingRequest = Type.Object({}, { additionalProperties: false, title: 'ping request body' });

export const PaymentCreateRequest = Type.Object(
  {
    method: Type.Union([Type.Literal('upi_qr'), Type.Literal('upi_collect')]),
    // The schema checks the JSON type; the payments service says what is wrong with a value
    // (fractional, zero, above the limit) with the same stable codes as the HTTP API.
    amount: Type.Number({ description: 'Amount in paise (integer, > 0)' }),
    currency: Type.String({ description: 'Always "INR"' }),
    payer_vpa: Type.Optional(Type.String({ maxLength: 255, description: 'Required for upi_collect' })),
    note: Type.Optional(Type.String({ maxLength: 50 })),
    // Reward points: `amount` stays the UPI amount; redeemed points pay the rest of the basket.
    rewards: Type.Optional(PaymentRewardsRequest),
  },
  { additionalProperties: false, title: 'payment.create request body' },
);

// Reward points: the customer is named by their UPI address or mobile number, as at the till.
const CustomerFields = {
  vpa: Type.Optional(Type.String({ maxLength: 255, description: "The customer's UPI address" })),
  phone: Type.Optional(
    Type.String({ maxLength: 20, description: "The customer's mobile number (+91…); give vpa or phone" }),
  ),
};

export const RewardsBalanceRequest = Type.Object(CustomerFields, {
  additionalProperties: false,
  title: 'rewards.balance request body',
});

export const RewardsQuoteRequest = Type.Object(
  {
    amount: Type.Number({ description: 'Basket amount in paise (integer, > 0)' }),
    ...CustomerFields,
    redeem_points: Type.Optional(Type.Number({ description: 'Points the customer wants to burn on this basket' })),
  },
  { additionalProperties: false, title: 'rewards.quote request body' },
);

export const PaymentGetRequest = Type.Object(
  { payment_id: PaymentId },
  { additionalProperties: false, title: 'payment.get request body' },
);

export const PaymentRefundRequest = Type.Object(
  {
    payment_id: PaymentId,
    amount: Type.Number({ description: 'Amount in paise to refund (integer, > 0, at most what is left)' }),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 140 })),
  },
  { additionalProperties: false, title: 'payment.refund request body' },
);

export const PaymentListRecentRequest = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10 })),
    status: Type.Optional(PaymentStatus),
  },
  { additionalProperties: false, title: 'payment.list_recent request body' },
);

// ---- response bodies ----

// The same bodies the HTTP API answers with: one definition, in the payments module.
export const Payment = Type.Object(paymentSchemas.Payment.properties, {
  title: 'Payment (body of payment.create and payment.get responses)',
});
export const Refund = Type.Object(paymentSchemas.Refund.properties, {
  title: 'Refund (body of the payment.refund response)',
});

export const RewardsBalanceResponse = Type.Object(rewardsSchemas.Balance.properties, {
  title: 'rewards.balance response body',
});
export const RewardsQuoteResponse = Type.Object(rewardsSchemas.Quote.properties, {
  title: 'rewards.quote response body',
});

export const PingResponse = Type.Object(
  { pong: Type.Literal(true), terminal_id: Type.String(), server_time: Type.String({ format: 'date-time' }) },
  { title: 'ping response body' },
);

export const PaymentListRecentResponse = Type.Object(
  { data: Type.Array(Payment) },
  { title: 'payment.list_recent response body (newest first)' },
);

// ---- envelopes the gateway sends ----

export const ResponseOk = Type.Object(
  { v: Type.Literal(PROTOCOL_VERSION), id: RequestId, ok: Type.Literal(true), body: Type.Unknown() },
  { title: 'Successful response (gateway -> terminal, on …/res)' },
);

export const ErrorObject = Type.Object({
  code: Type.String({ description: 'Stable machine-readable code, the same set as the HTTP API' }),
  message: Type.String(),
  details: Type.Optional(Type.Unknown()),
});

export const ResponseError = Type.Object(
  {
    v: Type.Literal(PROTOCOL_VERSION),
    // null when the request could not be read far enough to find its id (malformed JSON, oversized).
    id: Nullable(Type.String({ maxLength: 64 })),
    ok: Type.Literal(false),
    error: ErrorObject,
  },
  { title: 'Error response (gateway -> terminal, on …/res)' },
);

export const PaymentUpdatedEvent = Type.Object(
  {
    v: Type.Literal(PROTOCOL_VERSION),
    type: Type.Literal('payment.updated'),
    /** Outbox sequence: increases with every event; lets a terminal drop duplicates and stale updates. */
    seq: Type.Integer({ minimum: 1 }),
    body: Type.Object({
      payment_id: Type.String(),
      status: PaymentStatus,
      amount: Type.Integer(),
      at: Type.String({ format: 'date-time' }),
    }),
  },
  { title: 'payment.updated event (gateway -> terminal, on …/evt)' },
);

/**
 * Presence (terminal -> gateway, on …/status, retained): "online" right after connecting, and the
 * same with "offline" as the connection's MQTT will. `since` names the connection (its start, ms
 * since the epoch, strictly increasing per terminal), so a late will of an older connection cannot
 * undo a newer "online". Checked by presence.ts's parseStatus (at most 256 bytes).
 */
export const StatusMessage = Type.Object(
  {
    v: Type.Literal(PROTOCOL_VERSION),
    status: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
    since: Type.Integer({ minimum: 0, description: "The connection's start, ms since the epoch" }),
  },
  { title: 'status message (terminal -> gateway, on …/status, retained; also the will)' },
);

/** Every request type: its body schema and the schema of a successful response's body. */
export const REQUEST_TYPES = {
  ping: { request: PingRequest, response: PingResponse },
  'payment.create': { request: PaymentCreateRequest, response: Payment },
  'payment.get': { request: PaymentGetRequest, response: Payment },
  'payment.refund': { request: PaymentRefundRequest, response: Refund },
  'payment.list_recent': { request: PaymentListRecentRequest, response: PaymentListRecentResponse },
  'rewards.balance': { request: RewardsBalanceRequest, response: RewardsBalanceResponse },
  'rewards.quote': { request: RewardsQuoteRequest, response: RewardsQuoteResponse },
} as const;

export type RequestType = keyof typeof REQUEST_TYPES;
export type RequestBody<T extends RequestType> = Static<(typeof REQUEST_TYPES)[T]['request']>;
export type ResponseBody<T extends RequestType> = Static<(typeof REQUEST_TYPES)[T]['response']>;
export type PaymentMessage = Static<typeof Payment>;
export type RefundMessage = Static<typeof Refund>;
export type PaymentUpdated = Static<typeof PaymentUpdatedEvent>;
export type ErrorResponse = Static<typeof ResponseError>;
export type OkResponse = Static<typeof ResponseOk>;

/** Every schema written to docs/terminal-protocol/, by file name. */
export function allSchemas(): Record<string, TSchema> {
  return {
    'request.schema.json': RequestEnvelope,
    'response.ok.schema.json': ResponseOk,
    'response.error.schema.json': ResponseError,
    'event.payment.updated.schema.json': PaymentUpdatedEvent,
    'status.schema.json': StatusMessage,
    ...Object.fromEntries(
      Object.entries(REQUEST_TYPES).flatMap(([type, t]) => [
        [`${type}.request.schema.json`, t.request],
        [`${type}.response.schema.json`, t.response],
      ]),
    ),
  };
}

/** A schema as standalone JSON Schema text, stable for diffing. */
export function schemaJson(name: string, s: TSchema): string {
  return (
    JSON.stringify(
      { $schema: 'https://json-schema.org/draft/2020-12/schema', $id: name, ...JSON.parse(JSON.stringify(s)) },
      null,
      2,
    ) + '\n'
  );
}
