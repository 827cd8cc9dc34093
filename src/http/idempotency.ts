import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import { createRequestLedger, IDEMPOTENCY_KEYS } from '../platform/requestLedger.ts';

// Idempotency-Key on POST, through the request ledger (platform/requestLedger.ts, scope: the
// principal). The first request with a key claims it (one INSERT that only one concurrent
// request can win); its response is stored; later requests with the same key and the same body
// get that stored response, with another body a 409. Concurrent duplicates wait for the first to
// finish instead of doing the work again. A 5xx releases the key so a retry
// can run, unless the handler says its outcome is recorded (keepIdempotentAnswer: a payment
// written as failed because its bank could not take it): that 5xx is stored and replayed like
// any other answer. A crashed holder's claim lapses after CLAIM_SECONDS.

const KEY_RE = /^[\x21-\x7e]{1,255}$/;
const CLAIM_SECONDS = 60;
const WAIT_MS = 15_000;

declare module 'fastify' {
  interface FastifyRequest {
    idempotency?: { scope: string; key: string; keep5xx?: boolean };
  }
}

/**
 * Says that this request's outcome is recorded, so its answer (even a 5xx) is final: a retry
 * with the same Idempotency-Key replays it instead of running again. No-op without a key.
 */
export function keepIdempotentAnswer(req: FastifyRequest) {
  if (req.idempotency) req.idempotency.keep5xx = true;
}

function requestHash(req: FastifyRequest): string {
  return createHash('sha256')
    .update(`${req.method} ${req.url}\n`)
    .update(req.rawBody ?? '')
    .digest('hex');
}

export function registerIdempotency(app: FastifyInstance, db: Db) {
  const ledger = createRequestLedger(db, IDEMPOTENCY_KEYS, { claimSeconds: CLAIM_SECONDS });

  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'POST') return;
    const key = req.headers['idempotency-key'];
    if (key === undefined || !req.principal) return;
    if (typeof key !== 'string' || !KEY_RE.test(key)) {
      throw new AppError('invalid_request', 'Idempotency-Key must be 1-255 printable ASCII characters');
    }
    const scope = req.principal.id;
    const begun = await ledger.begin({ scope, key, hash: requestHash(req) }, { waitMs: WAIT_MS });
    switch (begun.outcome) {
      case 'claimed':
        req.idempotency = { scope, key };
        return;
      case 'conflict':
        throw new AppError('idempotency_key_reused', 'This Idempotency-Key was used with a different request');
      case 'in_progress':
        throw new AppError(
          'idempotency_in_progress',
          'A request with this Idempotency-Key is still being processed; retry shortly',
        );
      case 'replay':
        reply.header('idempotent-replayed', 'true');
        reply.header('content-type', 'application/json; charset=utf-8');
        return reply.status(begun.status ?? 200).send(begun.response ?? '');
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const idem = req.idempotency;
    if (!idem) return payload;
    req.idempotency = undefined;
    if (reply.statusCode >= 500 && !idem.keep5xx) {
      await ledger.release(idem.scope, idem.key);
    } else {
      await ledger.complete({
        scope: idem.scope,
        key: idem.key,
        status: reply.statusCode,
        response: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
    }
    return payload;
  });
}
