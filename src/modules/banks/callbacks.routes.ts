import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BankCallback } from './types.ts';
import type { BanksService, ReplayGuard } from './banks.service.ts';

// POST /v1/banks/{code}/callbacks, in a scope of its own whose only body parser keeps the bytes
// as sent, whatever the content type (banks post JSON, forms or encrypted text). Nothing is
// parsed before the bank's connector has verified it (banks.service verifyCallback), so a body
// that is malformed, forged, stale or replayed is refused by the same path, and recorded in
// platform.rejected_calls, instead of being turned away by a parser first.

const BankParam = Type.Object({ code: Type.String({ pattern: '^[A-Z0-9_]{2,20}$' }) });

/** What the route needs of the banks service: the signature and freshness check. */
export type CallbackVerifier = Pick<BanksService, 'checkCallback'>;

/**
 * What to do with a verified callback (payments applies it). The handler remembers `replay`'s
 * nonce with the callback's effect (in its transaction, or its one statement) and calls
 * `replay.refuse()` when it was seen already: so a replay changes nothing, and a callback whose
 * effect failed has not used up its nonce.
 */
export type CallbackHandler = (bankCode: string, callback: BankCallback, replay: ReplayGuard) => Promise<unknown>;

/** Largest callback body read; banks' callbacks are a few kilobytes. */
const CALLBACK_BODY_LIMIT = 64 * 1024;

export function registerBankCallbackRoute(app: FastifyInstance, verifier: CallbackVerifier, handle: CallbackHandler) {
  return app.register(async (scope) => {
    const raw = new WeakMap<FastifyRequest, Buffer>();
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: CALLBACK_BODY_LIMIT }, (req, body, done) => {
      raw.set(req, body as Buffer);
      // No parsed body: the hooks that inspect bodies (control characters, card data) have
      // nothing to read, and the connector reads the bytes itself once they are verified.
      done(null, undefined);
    });
    scope.post<{ Params: Static<typeof BankParam> }>(
      '/v1/banks/:code/callbacks',
      {
        // No API key: a bank proves itself with its signature, checked before anything changes.
        // rawBody: the edge lets any content type through to this route (its parser is above).
        config: { public: true, rawBody: true },
        schema: { tags: ['banks'], summary: 'Signed callback from an acquiring bank', params: BankParam },
      },
      async (req) => {
        const c = await verifier.checkCallback(req.params.code, req.headers, raw.get(req) ?? Buffer.alloc(0), req.ip);
        return handle(req.params.code, c.callback, c.replay);
      },
    );
  });
}
