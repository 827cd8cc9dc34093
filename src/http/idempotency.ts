import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import { sleep } from '../platform/clock.ts';

// Idempotency-Key on POST. The first request with a key claims it (one INSERT that only one
// concurrent request can win); its response is stored; later requests with the same key and
// the same body get that stored response, with another body a 409. Concurrent duplicates wait
// for the first to finish instead of doing the work again. A 5xx releases the key so a retry
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

interface Row {
  request_hash: string;
  state: 'in_progress' | 'completed';
  response_status: number | null;
  response_body: string | null;
  claimable: boolean;
}

function requestHash(req: FastifyRequest): string {
  return createHash('sha256')
    .update(`${req.method} ${req.url}\n`)
    .update(req.rawBody ?? '')
    .digest('hex');
}

export function registerIdempotency(app: FastifyInstance, db: Db) {
  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'POST') return;
    const key = req.headers['idempotency-key'];
    if (key === undefined || !req.principal) return;
    if (typeof key !== 'string' || !KEY_RE.test(key)) {
      throw new AppError('invalid_request', 'Idempotency-Key must be 1-255 printable ASCII characters');
    }
    const scope = req.principal.id;
    const hash = requestHash(req);
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const claimed = await db.query(
        `INSERT INTO platform.idempotency_keys (scope, key, request_hash, state, locked_until)
         VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $4))
         ON CONFLICT (scope, key) DO NOTHING RETURNING key`,
        [scope, key, hash, CLAIM_SECONDS],
      );
      if (claimed.rowCount === 1) {
        req.idempotency = { scope, key };
        return;
      }
      const { rows } = await db.query<Row>(
        `SELECT request_hash, state, response_status, response_body, locked_until < now() AS claimable
           FROM platform.idempotency_keys WHERE scope = $1 AND key = $2`,
        [scope, key],
      );
      const row = rows[0];
      if (!row) continue; // released by a failed holder between our two statements: try to claim again
      if (row.request_hash !== hash) {
        throw new AppError('idempotency_key_reused', 'This Idempotency-Key was used with a different request');
      }
      if (row.state === 'completed') {
        reply.header('idempotent-replayed', 'true');
        reply.header('content-type', 'application/json; charset=utf-8');
        return reply.status(row.response_status ?? 200).send(row.response_body ?? '');
      }
      if (row.claimable) {
        const taken = await db.query(
          `UPDATE platform.idempotency_keys SET locked_until = now() + make_interval(secs => $3)
            WHERE scope = $1 AND key = $2 AND state = 'in_progress' AND locked_until < now() RETURNING key`,
          [scope, key, CLAIM_SECONDS],
        );
        if (taken.rowCount === 1) {
          req.idempotency = { scope, key };
          return;
        }
      }
      if (Date.now() > deadline) {
        throw new AppError(
          'idempotency_in_progress',
          'A request with this Idempotency-Key is still being processed; retry shortly',
        );
      }
      await sleep(25);
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const idem = req.idempotency;
    if (!idem) return payload;
    req.idempotency = undefined;
    if (reply.statusCode >= 500 && !idem.keep5xx) {
      await db.query('DELETE FROM platform.idempotency_keys WHERE scope = $1 AND key = $2', [idem.scope, idem.key]);
    } else {
      await db.query(
        `UPDATE platform.idempotency_keys SET state = 'completed', response_status = $3, response_body = $4
          WHERE scope = $1 AND key = $2`,
        [idem.scope, idem.key, reply.statusCode, typeof payload === 'string' ? payload : JSON.stringify(payload)],
      );
    }
    return payload;
  });
}
