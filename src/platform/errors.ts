// One error type and a closed set of codes. Each code maps to exactly one HTTP status,
// in one table, so a client can rely on the code and the status agreeing everywhere.

export const ERROR_STATUS = {
  // 202: not an error, but not done either: a second operator must approve (four eyes). Nothing
  // happened yet; details.approval is the request filed (GET /v1/approvals/{id}).
  approval_required: 202,
  // 400: the request itself is wrong
  invalid_request: 400,
  malformed_json: 400,
  validation_failed: 400,
  invalid_characters: 400, // a NUL or other control character, or an unpaired surrogate, in a string
  invalid_amount: 400,
  invalid_vpa: 400,
  invalid_cursor: 400,
  unknown_message_type: 400, // terminal protocol: a request type the gateway does not know
  unsupported_media_type: 415,
  payload_too_large: 413,
  json_too_complex: 400, // edge: JSON nested too deep or an array too long
  uri_too_long: 414,
  headers_too_large: 431,
  request_timeout: 408, // edge: the client sent its request too slowly
  sensitive_data_refused: 400, // card verification code, PIN block or track data: never accepted (PCI DSS 3.3.1)
  // 401/403: who you are and what you may do
  unauthenticated: 401,
  invalid_signature: 401,
  forbidden: 403,
  request_blocked: 403, // the WAF gateway refused the request as an attack
  invalid_credentials: 401, // sign-in: wrong email, password or code (never says which)
  session_expired: 401, // an operator session past its idle or absolute limit, or ended
  csrf_token_invalid: 403,
  self_approval_forbidden: 403, // four eyes: whoever asked (or whose account it is) cannot approve it // a cookie-authenticated change without the session's CSRF token
  account_locked: 423, // too many failed sign-ins; try again later (PCI DSS 8.3.4)
  // 404: unknown ids (and other merchants' resources, which we never confirm exist)
  not_found: 404,
  merchant_not_found: 404,
  store_not_found: 404,
  terminal_not_found: 404,
  payment_not_found: 404,
  compensation_not_found: 404, // settlement: no compensation row for that payment and day (or no such retry)
  program_not_found: 404, // rewards: no such program, or the merchant is in none
  token_not_found: 404, // vault: no such token, or another merchant's
  route_not_found: 404,
  // 409: the request conflicts with current state
  conflict: 409,
  idempotency_key_reused: 409,
  idempotency_in_progress: 409,
  invalid_state_transition: 409,
  payment_not_refundable: 409,
  compensation_not_retryable: 409, // settlement: the credit is paid, or being sent, not refused
  refund_exceeds_payment: 409,
  terminal_inactive: 409,
  merchant_inactive: 409,
  replayed_request: 409,
  insufficient_funds: 409,
  approval_not_pending: 409, // the request was decided already, or expired
  insufficient_points: 409, // rewards: the customer's available points do not cover the redemption or debit
  // 422: understood but refused by business rules
  amount_above_limit: 422,
  password_rejected: 422, // too short, too common, or one of the last four
  redemption_not_allowed: 422, // rewards: no active program, below the minimum or above the basket share
  file_rejected: 422, // recon: a bank file with malformed lines (each named by line number); nothing of it was stored
  // 429
  rate_limited: 429,
  // 5xx
  bank_unavailable: 503,
  internal_error: 500,
  service_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

/** PostgreSQL SQLSTATEs that a caller may retry (serialization failure, deadlock). */
export const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);

/** Maps driver errors to AppErrors in one place; anything unknown becomes a 500 that leaks nothing. */
/**
 * The database cannot be reached or is not accepting work for now (restart, crash recovery,
 * failover, connection limit): the request did nothing and may be sent again, so 503, not 500.
 * SQLSTATE class 08 (connection exception), 57P01-57P03 (admin/crash shutdown, starting up),
 * 53300 (too many connections); and the socket errors of a server that is gone.
 */
export function isDatabaseUnavailable(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code;
  if (typeof code === 'string') {
    return (
      code.startsWith('08') ||
      code === '57P01' ||
      code === '57P02' ||
      code === '57P03' ||
      code === '53300' ||
      code === 'ECONNREFUSED' ||
      code === 'ECONNRESET'
    );
  }
  // node-postgres' own errors when the server goes away carry no code.
  const msg = (e as Error | null)?.message;
  return (
    typeof msg === 'string' &&
    /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/.test(
      msg,
    )
  );
}

export function fromDatabaseError(e: unknown): AppError | undefined {
  if (isDatabaseUnavailable(e))
    return new AppError('service_unavailable', 'The service is briefly unavailable; send the request again');
  const code = (e as { code?: string } | null)?.code;
  if (typeof code !== 'string') return undefined;
  switch (code) {
    // A deadlock or serialization failure that outlived the transaction's own retries: nothing
    // was written, and sending the request again is the cure.
    case '40001':
    case '40P01':
      return new AppError('service_unavailable', 'The request collided with another; send it again');
    case '23505':
      return new AppError('conflict', 'A resource with these values already exists');
    case '23503':
      return new AppError('not_found', 'A referenced resource does not exist');
    case '22021': // character_not_in_repertoire: a NUL in text
    case '22P05': // untranslatable_character: a NUL (\u0000) in jsonb
      return new AppError('invalid_characters', 'A value contains a character that cannot be stored');
    case '22P02':
    case '22003':
      return new AppError('validation_failed', 'A value is out of range or of the wrong type');
    default:
      return undefined;
  }
}
