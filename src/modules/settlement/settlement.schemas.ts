import { Type } from '@sinclair/typebox';
import { PageQuery } from '../../http/pagination.ts';

const Nullable = <T extends import('@sinclair/typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Totals = Type.Object({ credit: Type.Integer(), debit: Type.Integer(), lines: Type.Integer() });

export const CycleKeyParam = Type.Object({
  key: Type.String({ maxLength: 20, pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}-C[0-9]{1,2}$' }),
});
export const IdParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
export const MerchantParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
export const BankParam = Type.Object({ code: Type.String({ pattern: '^[A-Z0-9_]{2,20}$' }) });

export const CycleBank = Type.Object({
  bank_code: Type.String(),
  status: Type.Union([Type.Literal('awaiting_file'), Type.Literal('matched'), Type.Literal('difference')]),
  expected: Totals,
  file: Nullable(
    Type.Object({ id: Type.String(), credit: Type.Integer(), debit: Type.Integer(), lines: Type.Integer() }),
  ),
  difference: Nullable(Totals),
  checked_at: Type.String(),
});

export const Cycle = Type.Object({
  key: Type.String({ description: 'YYYY-MM-DD-C<n>, in IST' }),
  starts_at: Type.String(),
  settles_from: Nullable(
    Type.String({
      description: "The installation's first cycle: its payouts take everything before it, from here",
    }),
  ),
  ends_at: Type.String({ description: 'The cut-off (inclusive)' }),
  closed_at: Type.String(),
  status: Type.Union([Type.Literal('awaiting_file'), Type.Literal('matched'), Type.Literal('difference')]),
  banks: Type.Array(CycleBank),
});

export const CloseCycleResult = Type.Object({ closed_now: Type.Boolean(), cycle: Cycle });

export const CycleException = Type.Object({
  id: Type.String(),
  cycle_key: Type.String(),
  bank_code: Type.String(),
  file_id: Type.String(),
  difference: Totals,
  status: Type.Union([Type.Literal('open'), Type.Literal('resolved')]),
  resolution: Nullable(Type.String()),
  created_at: Type.String(),
  resolved_at: Nullable(Type.String()),
});

export const CycleExceptionQuery = Type.Object(
  {
    ...PageQuery,
    status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('resolved')])),
    cycle_key: Type.Optional(CycleKeyParam.properties.key),
    bank_code: Type.Optional(BankParam.properties.code),
  },
  { additionalProperties: false },
);

export const Resolve = Type.Object(
  { resolution: Type.String({ minLength: 1, maxLength: 500 }) },
  { additionalProperties: false },
);

const PayoutStatus = Type.Union(
  ['scheduled', 'held', 'nothing_due', 'sent', 'paid', 'returned'].map((s) => Type.Literal(s)),
);

export const Payout = Type.Object({
  id: Type.String(),
  merchant_id: Type.String(),
  cycle_key: Type.String(),
  bank_code: Type.String(),
  payments: Type.Integer({ description: 'paise' }),
  payments_count: Type.Integer(),
  refunds: Type.Integer(),
  reversals: Type.Integer(),
  fees: Type.Integer(),
  carried: Type.Integer({ description: 'Brought forward from earlier payouts (held, short or returned)' }),
  held: Type.Integer({ description: 'Kept back for a disputed amount' }),
  net: Type.Integer(),
  status: PayoutStatus,
  due_at: Type.String(),
  batch_id: Nullable(Type.String()),
  bank_ref: Nullable(Type.String()),
  return_reason: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
});

export const PayoutQuery = Type.Object(
  {
    ...PageQuery,
    merchant_id: Type.Optional(Type.String({ maxLength: 100 })),
    cycle_key: Type.Optional(CycleKeyParam.properties.key),
    status: Type.Optional(PayoutStatus),
  },
  { additionalProperties: false },
);

export const MarkPaid = Type.Object(
  { bank_ref: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
export const MarkReturned = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);

export const ExportResult = Type.Object({
  batch: Nullable(
    Type.Object({
      id: Type.String(),
      file_name: Type.String(),
      payouts: Type.Integer(),
      total: Type.Integer(),
      sha256: Type.String(),
      format: Type.String(),
    }),
  ),
  skipped: Type.Array(Type.Object({ payout_id: Type.String(), merchant_id: Type.String(), reason: Type.String() })),
});

export const Terms = Type.Object({
  merchant_id: Type.String(),
  schedule: Type.Union([Type.Literal('T+0'), Type.Literal('T+1')]),
  fee_bps: Type.Integer(),
  fee_fixed_paise: Type.Integer(),
  under_review: Type.Boolean(),
  review_reason: Nullable(Type.String()),
  disputed_hold: Type.Integer(),
  updated_at: Nullable(Type.String()),
});

export const TermsPatch = Type.Object(
  {
    schedule: Type.Optional(Type.Union([Type.Literal('T+0'), Type.Literal('T+1')])),
    fee_bps: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    fee_fixed_paise: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    under_review: Type.Optional(Type.Boolean()),
    review_reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    disputed_hold: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000_000 })),
  },
  { additionalProperties: false },
);

const ReversalStatus = Type.Union(['scheduled', 'pending', 'succeeded', 'failed'].map((s) => Type.Literal(s)));

export const Reversal = Type.Object({
  id: Type.String(),
  payment_id: Type.String(),
  merchant_id: Type.String(),
  bank_code: Type.String(),
  reason: Type.String(),
  source_ref: Type.String(),
  amount: Type.Integer(),
  debited_amount: Type.Integer(),
  charge_merchant: Type.Boolean(),
  status: ReversalStatus,
  transaction_date: Type.String({ description: 'T, the IST day of the debit' }),
  deadline_at: Type.String({ description: 'End of T+5 (RBI/2019-20/67)' }),
  overdue: Type.Boolean(),
  attempts: Type.Integer(),
  status_checks: Type.Integer(),
  bank: Type.Object({ ref: Nullable(Type.String()), response_code: Nullable(Type.String()) }),
  compensation_days: Type.Integer(),
  created_at: Type.String(),
  completed_at: Nullable(Type.String()),
});

/** A compensation row (one payment, one day of delay) and its push credit. */
export const Compensation = Type.Object(
  {
    payment_id: Type.String(),
    day: Type.Integer({ description: 'day of delay past the deadline' }),
    reversal_id: Type.String(),
    bank_code: Type.String(),
    amount: Type.Integer(),
    for_date: Type.String({ description: 'the IST day of delay it pays for' }),
    status: Type.Union(
      ['legacy', 'due', 'pending', 'paid', 'failed'].map((s) => Type.Literal(s)),
      {
        description: 'the push credit to the customer: due, pending (sent, outcome unknown), paid, failed',
      },
    ),
    credit_ref: Nullable(Type.String()),
    attempts: Type.Integer(),
    status_checks: Type.Integer(),
    bank: Type.Object({ ref: Nullable(Type.String()), response_code: Nullable(Type.String()) }),
    last_error: Nullable(Type.String()),
    posted_at: Type.String(),
    paid_at: Nullable(Type.String()),
    retry_id: Nullable(
      Type.String({ description: 'the operator retry its current credit comes from (after a refusal)' }),
    ),
  },
  { description: 'The payment’s compensation (RBI/2019-20/67), paid to the customer’s VPA' },
);

export const ReversalDetail = Type.Intersect([
  Reversal,
  Type.Object({
    events: Type.Array(
      Type.Object({
        from_status: Nullable(Type.String()),
        to_status: Type.String(),
        response_code: Nullable(Type.String()),
        detail: Nullable(Type.String()),
        at: Type.String(),
      }),
    ),
    compensations: Type.Array(Compensation),
  }),
]);

export const ReversalQuery = Type.Object(
  {
    ...PageQuery,
    status: Type.Optional(ReversalStatus),
    payment_id: Type.Optional(Type.String({ maxLength: 100 })),
    merchant_id: Type.Optional(Type.String({ maxLength: 100 })),
    overdue: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const CreateReversal = Type.Object(
  {
    payment_id: Type.String({ maxLength: 100 }),
    amount: Type.Number({ description: 'Paise (integer, > 0), at most what the customer was debited' }),
    reason: Type.Union([
      Type.Literal('late_success'),
      Type.Literal('amount_mismatch'),
      Type.Literal('duplicate_debit'),
      Type.Literal('operator'),
    ]),
  },
  { additionalProperties: false },
);

export const CreateReversalResult = Type.Object({ reversal: Reversal, created: Type.Boolean() });

export const PageQueryOnly = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const CompensationParams = Type.Object({
  payment_id: Type.String({ maxLength: 100 }),
  day: Type.Integer({ minimum: 1, maximum: 100_000 }),
});

export const RetryCompensation = Type.Object(
  {
    reason: Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'Why it is sent again (the audit trail keeps it)',
    }),
    payee_vpa: Type.Optional(
      Type.String({
        maxLength: 255,
        description:
          "Another VPA to credit instead of the payer's (a closed account): needs a second operator's approval (compensations:approve)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const CompensationRetry = Type.Object({
  id: Type.String(),
  payment_id: Type.String(),
  day: Type.Integer(),
  failed_credit_ref: Type.String({ description: 'the reference the bank refused' }),
  credit_ref: Nullable(Type.String({ description: 'the new reference, once carried out' })),
  payee_vpa: Nullable(Type.String({ description: "another VPA, masked; null: the payer's" })),
  reason: Type.String(),
  requested_by: Type.String(),
  requested_at: Type.String(),
  approval_id: Nullable(Type.String()),
  carried_out_at: Nullable(Type.String()),
});

export const RetryCompensationResult = Type.Object({ compensation: Compensation, retry: CompensationRetry });
