import { createHash } from 'node:crypto';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import sjson from 'secure-json-parse';
import type { Logger } from 'pino';
import type { Db } from '../../../platform/db.ts';
import { AppError, fromDatabaseError, isAppError, type ErrorCode } from '../../../platform/errors.ts';
import type { Principal } from '../../../http/principal.ts';
import { describeValidation } from '../../../http/validation.ts';
import type { PaymentsService } from '../../payments/index.ts';
import type { RewardsService } from '../../rewards/index.ts';
import { getTerminalContext } from '../../merchants/index.ts';
import * as repo from '../terminals.repo.ts';
import type { ViolationKind } from '../terminals.repo.ts';
import { PROTOCOL_VERSION, REQUEST_TYPES, RequestEnvelope, type RequestType } from './schemas.ts';

// One terminal request in, one response out. The order of checks is the order of cost: size,
// JSON, envelope, type, body schema, then the database. Nothing is written before a request has
// passed all of them, and a request either completes in the payments service or writes nothing
// of its own: a malformed message can never leave a partial write behind.

export type PaymentsForTerminals = Pick<PaymentsService, 'create' | 'get' | 'list' | 'refund'>;
export type RewardsForTerminals = Pick<RewardsService, 'balance' | 'quote'>;

export interface HandlerDeps {
  db: Db;
  payments: PaymentsForTerminals;
  /** Reward points (rewards.balance, rewards.quote); without it those types answer service_unavailable. */
  rewards?: RewardsForTerminals;
  logger: Logger;
  maxPayloadBytes: number;
}

export interface HandlerOutcome {
  /** JSON to publish on the terminal's /res topic; undefined = send nothing (a duplicate still in progress). */
  response?: string;
  type?: string;
  /** ok, or the error code sent. */
  outcome: string;
  violation?: { kind: ViolationKind; detail: string };
  /** The same request id was seen before. */
  replayed?: boolean;
}

/** Requests that change state: their ids are stored, so a redelivery returns the first response. */
const MUTATING = new Set<RequestType>(['payment.create', 'payment.refund']);
/** A crashed holder's claim on a request id lapses after this; a retry may then run it. */
const CLAIM_SECONDS = 60;
/** Failures worth retrying with the same id: the claim is released instead of the error being stored. */
const RETRYABLE = new Set<ErrorCode>(['bank_unavailable', 'service_unavailable', 'internal_error']);
const TERMINAL_PERMISSIONS = new Set(['payments:read', 'payments:write', 'refunds:write']);

const ajv = new Ajv.default({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false, strict: false });
addFormats.default(ajv);
const validateEnvelope = ajv.compile(RequestEnvelope);
const bodyValidators = Object.fromEntries(Object.entries(REQUEST_TYPES).map(([t, s]) => [t, ajv.compile(s.request)])) as Record<RequestType, ValidateFunction>;

/** For a request too big to parse: its id, if it leads the message as the SDK writes it. */
const LEADING_ID_RE = /^\s*\{\s*(?:"v"\s*:\s*\d+\s*,\s*)?"id"\s*:\s*"([A-Za-z0-9._:-]{1,64})"/;

/** The request id of a message the gateway will not parse (too big, too many in flight), or null. */
export const peekRequestId = (payload: Buffer): string | null => LEADING_ID_RE.exec(payload.subarray(0, 256).toString('latin1'))?.[1] ?? null;

export function okResponse(id: string, body: unknown): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, id, ok: true, body });
}

export function errorResponse(id: string | null, code: ErrorCode, message: string, details?: unknown): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, id, ok: false, error: { code, message, ...(details === undefined ? {} : { details }) } });
}

const isRequestType = (t: string): t is RequestType => Object.prototype.hasOwnProperty.call(REQUEST_TYPES, t);

export function createRequestHandler(deps: HandlerDeps) {
  const { db, payments, logger, maxPayloadBytes } = deps;

  async function principalFor(terminalId: string): Promise<Principal> {
    const ctx = await getTerminalContext(db, terminalId);
    if (!ctx) throw new AppError('terminal_not_found', 'Terminal not found');
    if (ctx.terminal_status !== 'active') throw new AppError('terminal_inactive', 'The terminal is disabled');
    // The terminal acts for its merchant, and (checked per request below) only on its own payments.
    return { kind: 'api_key', id: terminalId, merchantId: ctx.merchant_id, permissions: TERMINAL_PERMISSIONS };
  }

  /** A payment this terminal took; anything else is "not found", never "forbidden". */
  async function ownPayment(principal: Principal, terminalId: string, paymentId: string) {
    const p = await payments.get(principal, paymentId);
    if (p.terminal_id !== terminalId) throw new AppError('payment_not_found', 'Payment not found');
    return p;
  }

  function rewardsService(): RewardsForTerminals {
    if (!deps.rewards) throw new AppError('service_unavailable', 'Reward points are not available on this gateway');
    return deps.rewards;
  }

  async function dispatch(terminalId: string, type: RequestType, body: Record<string, unknown>): Promise<unknown> {
    const principal = await principalFor(terminalId);
    switch (type) {
      case 'ping':
        return { pong: true, terminal_id: terminalId, server_time: new Date().toISOString() };
      case 'payment.create':
        return payments.create(principal, { ...(body as { method: 'upi_qr' | 'upi_collect'; amount: number; currency: string }), terminal_id: terminalId });
      case 'payment.get':
        return ownPayment(principal, terminalId, body.payment_id as string);
      case 'payment.refund': {
        await ownPayment(principal, terminalId, body.payment_id as string);
        return payments.refund(principal, body.payment_id as string, { amount: body.amount as number, reason: body.reason as string | undefined });
      }
      case 'payment.list_recent': {
        const page = await payments.list(principal, { terminalId, status: body.status as string | undefined, limit: (body.limit as number) ?? 10 });
        return { data: page.data };
      }
      case 'rewards.balance':
        // The program of the terminal's merchant (or the coalition it belongs to).
        return rewardsService().balance(principal, { merchant_id: principal.merchantId!, vpa: body.vpa as string | undefined, phone: body.phone as string | undefined });
      case 'rewards.quote':
        return rewardsService().quote(principal, {
          terminal_id: terminalId, amount: body.amount as number, vpa: body.vpa as string | undefined, phone: body.phone as string | undefined,
          redeem_points: body.redeem_points as number | undefined,
        });
    }
  }

  function toError(id: string, e: unknown, type: string): { code: ErrorCode; response: string } {
    let err: AppError;
    if (isAppError(e)) err = e;
    else {
      err = fromDatabaseError(e) ?? new AppError('internal_error', 'Something went wrong on our side; it has been logged');
      if (err.code === 'internal_error') {
        const x = e as Error & { code?: string };
        logger.error({ err: { type: x?.name, code: x?.code, stack: x?.stack?.split('\n').slice(0, 6).join('\n') }, request_type: type }, 'terminal request failed');
      }
    }
    return { code: err.code, response: errorResponse(id, err.code, err.message, err.details) };
  }

  return {
    async handle(terminalId: string, payload: Buffer): Promise<HandlerOutcome> {
      if (payload.length > maxPayloadBytes) {
        const id = peekRequestId(payload);
        return {
          outcome: 'payload_too_large',
          response: errorResponse(id, 'payload_too_large', `A request may be at most ${maxPayloadBytes} bytes`),
          violation: { kind: 'oversized', detail: `${payload.length} bytes` },
        };
      }
      let msg: unknown;
      try {
        msg = sjson.parse(payload.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' });
      } catch {
        return { outcome: 'malformed_json', response: errorResponse(null, 'malformed_json', 'The request is not valid JSON'), violation: { kind: 'malformed', detail: 'invalid JSON' } };
      }
      if (!validateEnvelope(msg)) {
        const m = msg as { id?: unknown } | null;
        const id = m && typeof m === 'object' && typeof m.id === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(m.id) ? m.id : null;
        return {
          outcome: 'validation_failed',
          response: errorResponse(id, 'validation_failed', `The request is not a protocol v${PROTOCOL_VERSION} request`, describeValidation(validateEnvelope.errors ?? [], 'request')),
          violation: { kind: 'schema', detail: 'envelope' },
        };
      }
      const { id, type } = msg as { id: string; type: string };
      if (!isRequestType(type)) {
        return {
          outcome: 'unknown_message_type',
          response: errorResponse(id, 'unknown_message_type', `Unknown request type "${type.slice(0, 64)}"`, { known: Object.keys(REQUEST_TYPES) }),
          violation: { kind: 'unknown_type', detail: type.slice(0, 64) },
        };
      }
      const body = ((msg as { body?: Record<string, unknown> }).body ?? {}) as Record<string, unknown>;
      const validateBody = bodyValidators[type];
      if (!validateBody(body)) {
        return {
          type,
          outcome: 'validation_failed',
          response: errorResponse(id, 'validation_failed', 'The request body does not match the schema', describeValidation(validateBody.errors ?? [], 'body')),
          violation: { kind: 'schema', detail: type },
        };
      }

      if (!MUTATING.has(type)) {
        try {
          return { type, outcome: 'ok', response: okResponse(id, await dispatch(terminalId, type, body)) };
        } catch (e) {
          const { code, response } = toError(id, e, type);
          return { type, outcome: code, response };
        }
      }

      // State-changing: claim the id first. The hash binds the id to this exact request.
      const hash = createHash('sha256').update(`${type}\n`).update(JSON.stringify(body)).digest('hex');
      let claimed = await repo.claimRequest(db, terminalId, id, type, hash, CLAIM_SECONDS);
      if (!claimed) {
        const prior = await repo.getRequest(db, terminalId, id);
        if (!prior) claimed = await repo.claimRequest(db, terminalId, id, type, hash, CLAIM_SECONDS); // released in between
        else if (prior.request_hash !== hash) {
          return {
            type,
            outcome: 'idempotency_key_reused',
            replayed: true,
            response: errorResponse(id, 'idempotency_key_reused', 'This request id was already used for a different request'),
            violation: { kind: 'request_id_reused', detail: type },
          };
        } else if (prior.state === 'completed') {
          return { type, outcome: 'replayed', replayed: true, response: prior.response ?? undefined };
        } else if (prior.claimable) {
          claimed = await repo.takeOverRequest(db, terminalId, id, CLAIM_SECONDS);
        }
        // Still in progress elsewhere: its response (same id) is on its way; answering twice would
        // only race it.
        if (!claimed) return { type, outcome: 'in_progress', replayed: true };
      }
      let response: string;
      let outcome = 'ok';
      try {
        response = okResponse(id, await dispatch(terminalId, type, body));
      } catch (e) {
        const err = toError(id, e, type);
        response = err.response;
        outcome = err.code;
        if (RETRYABLE.has(err.code)) {
          await repo.releaseRequest(db, terminalId, id).catch(() => {});
          return { type, outcome, response };
        }
      }
      try {
        await repo.completeRequest(db, terminalId, id, response);
      } catch (e) {
        // The work is done: answer anyway. Until the claim lapses a redelivery gets no answer of
        // its own; after that it would run again, so this is logged loudly.
        logger.error({ err: { type: (e as Error).name, code: (e as { code?: string }).code }, terminal_id: terminalId, request_type: type }, 'could not store a terminal response');
      }
      return { type, outcome, response };
    },
  };
}
