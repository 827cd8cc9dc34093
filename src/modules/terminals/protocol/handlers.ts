import { createHash } from 'node:crypto';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { Static } from '@sinclair/typebox';
import addFormats from 'ajv-formats';
import type { Logger } from 'pino';
import type { Db } from '../../../platform/db.ts';
import { AppError, type ErrorCode } from '../../../platform/errors.ts';
import { errorReply } from '../../../platform/errorReply.ts';
import { terminalPrincipal, type TerminalPrincipal } from '../../../platform/principal.ts';
import { describeValidation } from '../../../http/validation.ts';
import { parseStrictJson } from '../../../http/strictJson.ts';
import type { PaymentsService } from '../../payments/index.ts';
import type { RewardsService } from '../../rewards/index.ts';
import { getTerminalContext } from '../../merchants/index.ts';
import { actorOf, recordDataRead, type AuditWriter } from '../../audit/index.ts';
import { terminalStatuses, type ViolationKind } from '../terminals.repo.ts';
import { createBatcher } from '../../../platform/batcher.ts';
import { createTerminalRequestLedger } from '../requestIds.ts';
import type { RequestLedger } from '../../../platform/requestLedger.ts';
import { PROTOCOL_VERSION, REQUEST_TYPES, RequestEnvelope, type RequestBody, type RequestType } from './schemas.ts';

// One terminal request in, one response out. The order of checks is the order of cost: size,
// JSON, envelope, type, body schema, then the database. Nothing is written before a request has
// passed all of them, and a request either completes in the payments service or writes nothing
// of its own: a malformed message can never leave a partial write behind.
//
// Who is asking: the terminal the connection authenticated as (never a field of the message),
// acting for its merchant, which the broker read from the terminal's record at connect (a
// terminal never moves to another merchant). That it is still active is checked on every
// request: by payments.create itself for a payment (it reads the terminal anyway), and here, at
// the same time as the read, for everything else.

export type PaymentsForTerminals = Pick<PaymentsService, 'create' | 'get' | 'list' | 'refund'>;
export type RewardsForTerminals = Pick<RewardsService, 'balance' | 'quote'>;

export interface HandlerDeps {
  db: Db;
  payments: PaymentsForTerminals;
  /** Reward points (rewards.balance, rewards.quote); without it those types answer service_unavailable. */
  rewards?: RewardsForTerminals;
  /** Reads of payments and reward points are recorded here (data.read), before the answer leaves. */
  audit: Pick<AuditWriter, 'record'>;
  logger: Logger;
  maxPayloadBytes: number;
  /** Claims and responses of request ids (the request ledger); default: batched writes on `db`. */
  requestIds?: RequestLedger;
}

/** What the broker knows about the connection a request came in on. */
export interface TerminalConnection {
  /** The terminal's merchant, read when it connected; absent on an external broker (looked up once, then kept). */
  merchantId?: string;
  /** The terminal's address, for the audit trail. */
  remoteAddr?: string | null;
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
/**
 * Reads of personal data, recorded in the audit trail as the API's GETs of the same data are
 * (src/modules/audit/http.ts): resource type and permission of the matching route.
 */
const DATA_READS: Partial<Record<RequestType, { resource: string; permission: string }>> = {
  'payment.get': { resource: 'payments', permission: 'payments:read' },
  'payment.list_recent': { resource: 'payments', permission: 'payments:read' },
  'rewards.balance': { resource: 'rewards', permission: 'rewards:read' },
  'rewards.quote': { resource: 'rewards', permission: 'rewards:read' },
};
/** Terminal -> merchant for requests whose connection did not bring it (external broker). */
const MAX_CACHED_MERCHANTS = 100_000;
/** Terminals whose status one statement reads at most (by primary key). */
const MAX_STATUS_BATCH = 500;

const ajv = new Ajv.default({
  coerceTypes: false,
  useDefaults: true,
  removeAdditional: false,
  allErrors: false,
  strict: false,
});
addFormats.default(ajv);
const validateEnvelope = ajv.compile<Static<typeof RequestEnvelope>>(RequestEnvelope);
/** Each type's validator guards that type's static body (compiled from the same TypeBox schema). */
const bodyValidators = Object.fromEntries(
  Object.entries(REQUEST_TYPES).map(([t, s]) => [t, ajv.compile(s.request)]),
) as { [T in RequestType]: ValidateFunction<RequestBody<T>> };

/** A request whose body its type's schema accepted: the body has that schema's static type. */
type TerminalRequest = { [T in RequestType]: { type: T; body: RequestBody<T> } }[RequestType];

/** The typed request, or why its body does not match its type's schema. */
function checkRequest(type: RequestType, body: unknown): { request: TerminalRequest } | { errors: ErrorObject[] } {
  const validate: ValidateFunction<RequestBody<RequestType>> = bodyValidators[type];
  if (!validate(body)) return { errors: validate.errors ?? [] };
  // TypeScript cannot tie `type` to the body's type through the union; the validator just did.
  return { request: { type, body } as TerminalRequest };
}

/** For a request too big to parse: its id, if it leads the message as the SDK writes it. */
const LEADING_ID_RE = /^\s*\{\s*(?:"v"\s*:\s*\d+\s*,\s*)?"id"\s*:\s*"([A-Za-z0-9._:-]{1,64})"/;

/** The request id of a message the gateway will not parse (too big, too many in flight), or null. */
export const peekRequestId = (payload: Buffer): string | null =>
  LEADING_ID_RE.exec(payload.subarray(0, 256).toString('latin1'))?.[1] ?? null;

export function okResponse(id: string, body: unknown): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, id, ok: true, body });
}

export function errorResponse(id: string | null, code: ErrorCode, message: string, details?: unknown): string {
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    id,
    ok: false,
    error: { code, message, ...(details === undefined ? {} : { details }) },
  });
}

const isRequestType = (t: string): t is RequestType => Object.hasOwn(REQUEST_TYPES, t);

export function createRequestHandler(deps: HandlerDeps) {
  const { db, payments, audit, logger, maxPayloadBytes } = deps;
  const requestIds = deps.requestIds ?? createTerminalRequestLedger(db, CLAIM_SECONDS);
  const merchants = new Map<string, string>();
  // Every request but payment.create checks that its terminal is still active (payments.create
  // reads the terminal itself). The checks of requests that arrive while one read runs share the
  // next: one statement for many terminals instead of one each. Each read starts after the
  // requests it answers arrived, so a terminal disabled before its request is refused as before.
  const statuses = createBatcher((ids: readonly string[]) => terminalStatuses(db, ids), {
    maxBatch: MAX_STATUS_BATCH,
  });

  /** The terminal acting for its merchant; only on its own payments (checked per request below). */
  async function principalFor(terminalId: string, conn: TerminalConnection): Promise<TerminalPrincipal> {
    let merchantId = conn.merchantId ?? merchants.get(terminalId);
    if (merchantId === undefined) {
      const ctx = await getTerminalContext(db, terminalId);
      if (!ctx) throw new AppError('terminal_not_found', 'Terminal not found');
      merchantId = ctx.merchant_id;
      if (merchants.size >= MAX_CACHED_MERCHANTS) merchants.clear();
      merchants.set(terminalId, merchantId);
    }
    return terminalPrincipal(terminalId, merchantId);
  }

  /** Throws unless the terminal is (still) active: a disabled terminal is refused on every request. */
  async function assertActive(terminalId: string): Promise<void> {
    const status = await statuses.submit(terminalId);
    if (status === undefined) throw new AppError('terminal_not_found', 'Terminal not found');
    if (status !== 'active') throw new AppError('terminal_inactive', 'The terminal is disabled');
  }

  /** `read`, run at the same time as the status check; a disabled terminal gets terminal_inactive, never the data. */
  async function whileActive<T>(terminalId: string, read: () => Promise<T>): Promise<T> {
    const [active, value] = await Promise.allSettled([assertActive(terminalId), (async () => read())()]);
    if (active.status === 'rejected') throw active.reason;
    if (value.status === 'rejected') throw value.reason;
    return value.value;
  }

  /** A payment this terminal took; anything else is "not found", never "forbidden". */
  async function ownPayment(principal: TerminalPrincipal, terminalId: string, paymentId: string) {
    const p = await payments.get(principal, paymentId);
    if (p.terminal_id !== terminalId) throw new AppError('payment_not_found', 'Payment not found');
    return p;
  }

  function rewardsService(): RewardsForTerminals {
    if (!deps.rewards) throw new AppError('service_unavailable', 'Reward points are not available on this gateway');
    return deps.rewards;
  }

  async function dispatch(principal: TerminalPrincipal, requestId: string, req: TerminalRequest): Promise<unknown> {
    const terminalId = principal.id;
    switch (req.type) {
      case 'ping':
        await assertActive(terminalId);
        return { pong: true, terminal_id: terminalId, server_time: new Date().toISOString() };
      case 'payment.create':
        // payments.create reads the terminal (its merchant, status, store) and refuses an inactive
        // terminal or merchant, and a terminal of another merchant than the principal's. The
        // request id goes on the payment too: if this process dies after the payment is written
        // and before the response is stored, the retry that takes over the lapsed claim gets the
        // same payment back instead of a second one ("mqtt:" keeps it apart from HTTP keys).
        return payments.create(principal, { ...req.body, terminal_id: terminalId }, { clientRef: `mqtt:${requestId}` });
      case 'payment.get':
        return whileActive(terminalId, () => ownPayment(principal, terminalId, req.body.payment_id));
      case 'payment.refund': {
        const { payment_id, amount, reason } = req.body;
        await whileActive(terminalId, () => ownPayment(principal, terminalId, payment_id));
        return payments.refund(principal, payment_id, { amount, reason });
      }
      case 'payment.list_recent': {
        const { status, limit = 10 } = req.body;
        const page = await whileActive(terminalId, () => payments.list(principal, { terminalId, status, limit }));
        return { data: page.data };
      }
      case 'rewards.balance': {
        // The program of the terminal's merchant (or the coalition it belongs to).
        const rewards = rewardsService();
        const { vpa, phone } = req.body;
        return whileActive(terminalId, () =>
          rewards.balance(principal, { merchant_id: principal.merchantId, vpa, phone }),
        );
      }
      case 'rewards.quote': {
        const rewards = rewardsService();
        const { amount, vpa, phone, redeem_points } = req.body;
        return whileActive(terminalId, () =>
          rewards.quote(principal, { terminal_id: terminalId, amount, vpa, phone, redeem_points }),
        );
      }
    }
  }

  /**
   * A read of personal data goes into the audit trail before its answer leaves, as the API's GETs
   * do (PCI DSS 10.2.1.1): if the record cannot be written, the terminal gets an error instead.
   */
  async function recordRead(
    principal: TerminalPrincipal,
    conn: TerminalConnection,
    requestId: string,
    req: TerminalRequest,
    result: unknown,
  ) {
    const read = DATA_READS[req.type];
    const body: Record<string, unknown> = req.body;
    const type = req.type;
    if (!read) return;
    await recordDataRead(audit, db, {
      actor: actorOf(principal),
      resource: {
        type: read.resource,
        id: typeof body.payment_id === 'string' ? body.payment_id : null,
        merchant_id: null,
      },
      origin: {
        ip: conn.remoteAddr ?? null,
        request_id: requestId,
        terminal_id: principal.id,
        method: 'MQTT',
        route: type,
      },
      permission: read.permission,
      result,
      query: Object.keys(body).filter((k) => k !== 'payment_id'),
    });
  }

  /** The shared mapping (platform/errorReply.ts, as the HTTP API's), as a protocol error response. */
  function toError(id: string, e: unknown, type: string): { code: ErrorCode; response: string } {
    const r = errorReply(e, { log: logger, msg: 'terminal request failed', context: { request_type: type } });
    return { code: r.code, response: errorResponse(id, r.code, r.message, r.details) };
  }

  return {
    async handle(terminalId: string, payload: Buffer, conn: TerminalConnection = {}): Promise<HandlerOutcome> {
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
        // The same reading as the HTTP API: duplicate keys are refused, not last-one-wins.
        msg = parseStrictJson(payload.toString('utf8'));
      } catch (e) {
        const dup = (e as AppError).details as { duplicate_key?: string } | undefined;
        return dup?.duplicate_key
          ? {
              outcome: 'malformed_json',
              response: errorResponse(peekRequestId(payload), 'malformed_json', (e as AppError).message, dup),
              violation: { kind: 'malformed', detail: 'duplicate key' },
            }
          : {
              outcome: 'malformed_json',
              response: errorResponse(null, 'malformed_json', 'The request is not valid JSON'),
              violation: { kind: 'malformed', detail: 'invalid JSON' },
            };
      }
      if (!validateEnvelope(msg)) {
        const m = msg as { id?: unknown } | null;
        const id =
          m && typeof m === 'object' && typeof m.id === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(m.id) ? m.id : null;
        return {
          outcome: 'validation_failed',
          response: errorResponse(
            id,
            'validation_failed',
            `The request is not a protocol v${PROTOCOL_VERSION} request`,
            describeValidation(validateEnvelope.errors ?? [], 'request'),
          ),
          violation: { kind: 'schema', detail: 'envelope' },
        };
      }
      const { id, type } = msg;
      if (!isRequestType(type)) {
        return {
          outcome: 'unknown_message_type',
          response: errorResponse(id, 'unknown_message_type', `Unknown request type "${type.slice(0, 64)}"`, {
            known: Object.keys(REQUEST_TYPES),
          }),
          violation: { kind: 'unknown_type', detail: type.slice(0, 64) },
        };
      }
      const checked = checkRequest(type, msg.body ?? {});
      if ('errors' in checked) {
        return {
          type,
          outcome: 'validation_failed',
          response: errorResponse(
            id,
            'validation_failed',
            'The request body does not match the schema',
            describeValidation(checked.errors, 'body'),
          ),
          violation: { kind: 'schema', detail: type },
        };
      }

      let principal: TerminalPrincipal;
      try {
        principal = await principalFor(terminalId, conn);
      } catch (e) {
        const { code, response } = toError(id, e, type);
        return { type, outcome: code, response };
      }

      if (!MUTATING.has(type)) {
        try {
          const result = await dispatch(principal, id, checked.request);
          await recordRead(principal, conn, id, checked.request, result);
          return { type, outcome: 'ok', response: okResponse(id, result) };
        } catch (e) {
          const { code, response } = toError(id, e, type);
          return { type, outcome: code, response };
        }
      }

      // State-changing: claim the id first, in the request ledger (scope: this terminal). The hash
      // binds the id to this exact request. No waiting for a duplicate still in progress: its
      // response (same id) is on its way, and answering twice would only race it.
      const hash = createHash('sha256').update(`${type}\n`).update(JSON.stringify(checked.request.body)).digest('hex');
      const begun = await requestIds.begin({ scope: terminalId, key: id, hash, label: type });
      switch (begun.outcome) {
        case 'conflict':
          return {
            type,
            outcome: 'idempotency_key_reused',
            replayed: true,
            response: errorResponse(
              id,
              'idempotency_key_reused',
              'This request id was already used for a different request',
            ),
            violation: { kind: 'request_id_reused', detail: type },
          };
        case 'replay':
          return { type, outcome: 'replayed', replayed: true, response: begun.response ?? undefined };
        case 'in_progress':
          return { type, outcome: 'in_progress', replayed: true };
        case 'claimed':
          break;
      }
      let response: string;
      let outcome = 'ok';
      try {
        response = okResponse(id, await dispatch(principal, id, checked.request));
      } catch (e) {
        const err = toError(id, e, type);
        response = err.response;
        outcome = err.code;
        if (RETRYABLE.has(err.code)) {
          await requestIds.release(terminalId, id).catch(() => {});
          return { type, outcome, response };
        }
      }
      try {
        await requestIds.complete({ scope: terminalId, key: id, response });
      } catch (e) {
        // The work is done: answer anyway. Until the claim lapses a redelivery gets no answer of
        // its own; after that it would run again, so this is logged loudly.
        logger.error(
          {
            err: { type: (e as Error).name, code: (e as { code?: string }).code },
            terminal_id: terminalId,
            request_type: type,
          },
          'could not store a terminal response',
        );
      }
      return { type, outcome, response };
    },
  };
}
