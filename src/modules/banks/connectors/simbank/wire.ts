// The simbank wire format, shared by the simbank connector (client side) and the bank
// simulator (server side) so the two cannot drift apart. Documented in docs/bank-simulator.md.
//
// Amounts travel as rupee strings with two decimals ("149.00"), as UPI messages carry them;
// the connector converts to and from integer paise at the edge.

export const SIM_PATHS = {
  intents: '/v1/intents',
  collects: '/v1/collects',
  txnStatus: '/v1/transactions/status',
  refunds: '/v1/refunds',
  refundStatus: '/v1/refunds/status',
  customerPayments: '/v1/customer-payments',
  credits: '/v1/credits',
  creditStatus: '/v1/credits/status',
  health: '/health',
} as const;

export interface WireIntentRequest {
  txn_ref: string;
  amount: string;
  currency: 'INR';
  payee_vpa: string;
  payee_name: string;
  mcc: string;
  note?: string;
  expires_at: string; // ISO 8601
  callback_url: string;
}

export interface WireCollectRequest extends WireIntentRequest {
  payer_vpa: string;
}

export interface WireIntentResponse {
  txn_ref: string;
  bank_ref: string;
  status: 'registered';
  expires_at: string;
}

/** Answer to collect, status, refund and refund-status calls. */
export interface WireTxnResponse {
  txn_ref?: string;
  refund_ref?: string;
  credit_ref?: string;
  response_code: string;
  bank_ref?: string;
  payer_vpa?: string;
  message?: string;
}

export interface WireRefundRequest {
  refund_ref: string;
  original_txn_ref: string;
  amount: string;
  currency: 'INR';
  note?: string;
  callback_url: string;
}

/**
 * A push credit from the merchant's (our) account to a customer's VPA: not against a debit, so not a
 * refund. Idempotent on credit_ref (the same reference again answers the first answer; other
 * details, 409). Answered like a refund (WireTxnResponse with `credit_ref`); no callback: the
 * answer or a status query (`/v1/credits/status` with `{ credit_ref }`) tells the outcome.
 */
export interface WireCreditRequest {
  credit_ref: string;
  payee_vpa: string;
  amount: string;
  currency: 'INR';
  note: string;
  related_txn_ref?: string;
}

export type WireCallback =
  | {
      type: 'payment';
      txn_ref: string;
      amount: string;
      response_code: string;
      bank_ref?: string;
      payer_vpa?: string;
      message?: string;
    }
  | {
      type: 'refund';
      refund_ref: string;
      original_txn_ref: string;
      amount: string;
      response_code: string;
      bank_ref?: string;
      message?: string;
    };

export interface WireError {
  error: { code: string; message: string };
}
