import { AppError, type ErrorCode } from '../../platform/errors.ts';

// The bank side, as the payments module sees it. One connector per bank (in connectors/),
// each keeping that bank's wire format and quirks to itself.

/** What a bank said about a transaction, mapped from its NPCI response code. */
export type BankOutcome =
  | 'success' // 00
  | 'pending' // 01: ask again later
  | 'failed' // ZA, ZM, Z9, U30, ...
  | 'expired' // U69: collect request expired
  | 'deemed' // U67/U68/BT/UT/RB/RR: outcome unknown to the switch; reconcile
  | 'unknown' // U48: bank has no such transaction; reconcile
  | 'reversed'; // 21/32

export interface BankResult {
  outcome: BankOutcome;
  /** NPCI response code as the bank gave it, e.g. "00", "ZA", "U69". */
  responseCode: string;
  /** The bank's / switch's reference (RRN / UPI txn id), when it has one. */
  bankRef?: string;
  /** Payer VPA as reported by the bank (for QR payments we learn it only here). */
  payerVpa?: string;
  /** Amount the bank says moved, in paise, when its message carries one (callbacks do). */
  amountPaise?: number;
  message?: string;
}

export interface IntentRequest {
  txnRef: string;
  amountPaise: number;
  payeeVpa: string;
  payeeName: string;
  mcc: string;
  note?: string;
  expiresAt: Date;
  /** Where the bank should send the signed callback. */
  callbackUrl: string;
}

export interface CollectRequest extends IntentRequest {
  payerVpa: string;
}

export interface RefundRequest {
  refundRef: string;
  originalTxnRef: string;
  amountPaise: number;
  note?: string;
  callbackUrl: string;
}

/**
 * A push credit: money from our account at the bank to a customer's VPA, not tied to a debit of
 * theirs (a refund is; it cannot exceed the original). Used to pay the RBI's compensation for a
 * late reversal (settlement). `creditRef` is ours and unique per credit: the bank is idempotent on
 * it, so a credit sent twice pays once.
 */
export interface PushCreditRequest {
  creditRef: string;
  payeeVpa: string;
  amountPaise: number;
  /** What it is for, shown to the customer by their bank. */
  note: string;
  /** The payment it relates to, when there is one (for the bank's records). */
  relatedTxnRef?: string;
}

export interface BankCallback {
  kind: 'payment' | 'refund';
  /** Our reference: the payment's txnRef, or the refund's refundRef. */
  ref: string;
  result: BankResult;
}

/**
 * One bank's wire format. Every method either answers (a readable answer, whatever it says) or
 * throws a BankCallError saying how far the request got; callers go through callBank() to get
 * a BankCallOutcome instead of reading error details.
 */
export interface BankConnector {
  readonly code: string;
  /** Registers a dynamic-QR intent so the bank can match the incoming payment to `txnRef`. */
  registerIntent(req: IntentRequest): Promise<{ bankRef?: string }>;
  /** Sends a collect request to the payer's VPA. Usually answers `pending`. */
  sendCollect(req: CollectRequest): Promise<BankResult>;
  /** ReqChkTxn: the current state of a payment at the bank. */
  checkStatus(txnRef: string): Promise<BankResult>;
  /** Refund against an original transaction (needs its txnRef). */
  refund(req: RefundRequest): Promise<BankResult>;
  checkRefundStatus(refundRef: string): Promise<BankResult>;
  /**
   * A push credit to a customer's VPA (PushCreditRequest). Never retried by the transport: after an
   * uncertain answer, `checkPushCreditStatus` finds out. Every connector implements it
   * (connectors/contract.ts); optional here only so test fakes that never pay compensation need not.
   */
  pushCredit?(req: PushCreditRequest): Promise<BankResult>;
  checkPushCreditStatus?(creditRef: string): Promise<BankResult>;
  /**
   * @deprecated Callbacks are verified and read by the connector's own `verifyCallback(rawBody,
   * headers)` (connectors/contract.ts) and nothing calls this. Optional only so that test fakes
   * written before the contract still type-check; remove with them.
   */
  parseCallback?(body: unknown): BankCallback;
}

/**
 * How far a call to a bank got, as far as the money is concerned. Payments decide on this and
 * nothing else: only a call that was never sent, or that the bank refused outright, may close
 * a payment or release a refund's reserved amount; an uncertain one stays pending and is asked
 * about again (status check), because the bank may have acted on it.
 */
export type BankCallOutcome<T> =
  | { kind: 'ok'; value: T }
  /** The connection was never made (refused, no route, name not found): the bank cannot have acted. */
  | { kind: 'not_sent'; error: AppError }
  /** The bank answered and refused this request as such (4xx: bad signature, bad shape, conflict): it did not act on it. */
  | { kind: 'rejected'; error: AppError }
  /** The bank may have acted: timeout, 5xx, connection reset after sending, an answer we cannot read. */
  | { kind: 'uncertain'; error: AppError };

export type BankCallFailureKind = Exclude<BankCallOutcome<unknown>['kind'], 'ok'>;

/**
 * What a connector throws when a call did not give a readable answer: an AppError
 * (`bank_unavailable` unless said otherwise) that says how far the request got.
 */
export class BankCallError extends AppError {
  readonly delivery: BankCallFailureKind;
  constructor(
    delivery: BankCallFailureKind,
    message: string,
    details: Record<string, unknown>,
    code: ErrorCode = 'bank_unavailable',
  ) {
    super(code, message, { ...details, delivery });
    this.name = 'BankCallError';
    this.delivery = delivery;
  }
}
