import { AppError, ERROR_STATUS, fromDatabaseError, isAppError, type ErrorCode } from './errors.ts';

// From anything thrown to what the caller is told, once for every transport: the HTTP API
// (http/server.ts renders it as `{ error: { code, message, request_id, details } }` with the
// status) and the terminal protocol (terminals/protocol/handlers.ts renders it as
// `{ v, id, ok: false, error: { code, message, details } }`). An AppError says it itself; a
// database error is mapped by its SQLSTATE (errors.ts); anything else is internal_error, which
// tells the caller nothing and is logged here, with only the error's type, code and the top
// frames of its stack (driver messages can carry values from the query: PII, secrets; the stack's
// first line, which repeats the message, was logged until this mapping was shared).

export interface ErrorReply {
  code: ErrorCode;
  /** The HTTP status of the code (ERROR_STATUS): the API's status; the protocol sends only the code. */
  status: number;
  message: string;
  details?: unknown;
}

export const INTERNAL_ERROR_MESSAGE = 'Something went wrong on our side; it has been logged';

export interface ErrorLogger {
  error(obj: object, msg: string): void;
}

/**
 * The fields an internal error is logged with: never its message, so the stack's frames only
 * (its first line repeats the message).
 */
export function errorLogFields(e: unknown) {
  const x = e as (Error & { code?: unknown }) | null | undefined;
  const frames = x?.stack
    ?.split('\n')
    .filter((l) => /^\s+at /.test(l))
    .slice(0, 5)
    .join('\n');
  return { type: x?.name, code: x?.code, stack: frames };
}

/** Anything thrown as an AppError. `translate` maps a transport's own errors (Fastify's) first. */
export function toAppError(e: unknown, translate?: (e: unknown) => AppError | undefined): AppError {
  if (isAppError(e)) return e;
  return translate?.(e) ?? fromDatabaseError(e) ?? new AppError('internal_error', INTERNAL_ERROR_MESSAGE);
}

/** What to answer for `e`; an internal error is logged (`msg`, with `context`: request id, type). */
export function errorReply(
  e: unknown,
  opts: {
    log: ErrorLogger;
    msg: string;
    context?: Record<string, unknown>;
    translate?: (e: unknown) => AppError | undefined;
  },
): ErrorReply {
  const err = toAppError(e, opts.translate);
  if (err.code === 'internal_error') {
    opts.log.error({ err: errorLogFields(e), ...opts.context }, opts.msg);
  }
  return {
    code: err.code,
    status: ERROR_STATUS[err.code],
    message: err.message,
    ...(err.details === undefined ? {} : { details: err.details }),
  };
}
