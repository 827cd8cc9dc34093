import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../../platform/clock.ts';
import { checkSignature } from '../../platform/signing.ts';
import { createSimEngine, SimError, type OutcomeRatios, type SimLogger } from './engine.ts';
import { SIM_PATHS } from './wire.ts';
import { registerSettlementFileRoute } from './settlementFile.ts';
import { registerPspRoutes, type PspSimOptions } from './psp.ts';
import { createSimCredits, registerSimCreditRoutes } from './credits.ts';
import { registerBooksRoute, registerFaultControl } from './control.ts';
import type { SimFaults } from './faults.ts';

// The simulator as a Fastify plugin: register it with `{ prefix: '/sim' }` on the main
// server (development) or on its own server (startBankSimulator). Not wrapped in
// fastify-plugin on purpose: its JSON parser (which keeps the raw body for signature
// checks) and its error format stay inside its own encapsulation context.

export interface BankSimulatorOptions {
  /** Shared HMAC secret: verifies Tillpoint's requests and signs callbacks. */
  secret: string;
  /** How long the "customer" takes to answer a collect or approve a QR payment. Default 0. */
  latencyMs?: number;
  /** Outcome weights for collects and QR payments without an explicit outcome. */
  outcomes?: Partial<OutcomeRatios>;
  /** Random source for outcomes and codes, for reproducible runs. Default Math.random. */
  rng?: () => number;
  /** Defaults to the Fastify instance's logger. */
  logger?: SimLogger;
  /** Moves expiry and signature freshness in tests. Default: system clock. */
  clock?: Clock;
  /** Waits between callback retries (ms). Default [500, 2000, 5000, 15000]. */
  callbackRetryDelaysMs?: number[];
  /** Freshness window for Tillpoint's signed requests. Default 300 s. */
  maxAgeSeconds?: number;
  /** Also speak the pspbank format (connectors/pspbank) under `<prefix>/psp`, with these sandbox keys. */
  psp?: PspSimOptions;
  /**
   * An outage to play, per wire format, read on every request (tests and benchmarks flip it while
   * the simulator runs): `error` answers 503, `hang` never answers, `reset` drops the connection.
   * The customer's side and /health are never affected.
   */
  outage?: SimOutage;
  /** Message faults switched at run time, with GET/PUT /sim/v1/faults to switch them (faults.ts, control.ts). */
  faults?: SimFaults;
}

export type OutageMode = 'error' | 'hang' | 'reset';
export interface SimOutage {
  simbank?: OutageMode;
  pspbank?: OutageMode;
}

const NONCE_SWEEP_EVERY = 1_000;
const RAW_BODY = 'bankSimRawBody';
type RawBodyRequest = FastifyRequest & { [RAW_BODY]: string };

export const bankSimulatorPlugin: FastifyPluginAsync<BankSimulatorOptions> = async (app: FastifyInstance, opts) => {
  const engine = createSimEngine({ ...opts, logger: opts.logger ?? app.log });
  // Push credits (credits.ts): the same bank's book of credits to customers' VPAs, both formats.
  const credits = createSimCredits({ clock: opts.clock ?? systemClock, logger: opts.logger ?? app.log });
  const maxAge = opts.maxAgeSeconds ?? 300;
  const now = () => (opts.clock ? opts.clock.now() : new Date());
  app.addHook('onClose', async () => engine.close());

  // Signatures cover the body byte for byte, so keep the raw text beside the parsed JSON: on the
  // request itself (a decorator of this plugin's context), which costs less per request than the
  // WeakMap it was (bench/PROFILE.md, "Session 7").
  app.decorateRequest(RAW_BODY, '');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 64 * 1024 }, (req, body, done) => {
    (req as RawBodyRequest)[RAW_BODY] = body as string;
    try {
      done(null, (body as string).length ? JSON.parse(body as string) : {});
    } catch {
      done(new SimError(400, 'malformed_json', 'body is not valid JSON'), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof SimError)
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return reply.code(status).send({
      error: {
        code: status === 500 ? 'internal_error' : 'invalid_request',
        message: status === 500 ? 'simulator error' : err.message,
      },
    });
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ error: { code: 'route_not_found', message: 'no such simulator route' } }),
  );

  // Nonces of accepted requests, kept until their timestamps would be refused anyway (2×maxAge).
  const nonces = new Map<string, number>();
  let sinceSweep = 0;
  function verify(req: FastifyRequest) {
    const r = checkSignature({
      secrets: [opts.secret],
      headers: req.headers,
      rawBody: (req as RawBodyRequest)[RAW_BODY],
      maxAgeSeconds: maxAge,
      now: now(),
    });
    if (!r.ok) throw new SimError(401, 'invalid_signature', `request signature refused (${r.reason})`);
    const t = now().getTime();
    if (++sinceSweep >= NONCE_SWEEP_EVERY) {
      sinceSweep = 0;
      for (const [n, exp] of nonces) if (exp < t) nonces.delete(n);
    }
    if (nonces.has(r.nonce)) throw new SimError(409, 'replayed_request', 'this signed request was already received');
    nonces.set(r.nonce, t + 2 * maxAge * 1000);
  }

  type Body = Record<string, unknown>;
  const body = (req: FastifyRequest): Body => {
    const b = req.body;
    if (!b || typeof b !== 'object' || Array.isArray(b))
      throw new SimError(400, 'invalid_request', 'body must be a JSON object');
    return b as Body;
  };
  const signed = (fn: (b: Body) => unknown) => async (req: FastifyRequest, reply: FastifyReply) => {
    verify(req);
    return reply.send(await fn(body(req)));
  };

  // An outage, when one is being played: before anything is read or decided.
  const hanging = new Set<() => void>();
  app.addHook('onClose', async () => {
    for (const done of hanging) done();
  });
  // Only with an outage object to read (tests flip its fields while the simulator runs): without
  // one, no request pays for the hook.
  const outage = opts.outage;
  if (outage)
    app.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?')[0];
      if (path.endsWith(SIM_PATHS.health) || path.endsWith(SIM_PATHS.customerPayments)) return;
      const mode = req.url.includes('/psp/') ? outage.pspbank : outage.simbank;
      if (mode === 'error')
        return reply.code(503).send({ error: { code: 'unavailable', message: 'simulated outage' } });
      if (mode === 'reset') {
        req.raw.socket.destroy();
        return reply;
      }
      if (mode === 'hang') {
        // Held until the caller gives up (or the simulator closes); nothing is read or decided.
        await new Promise<void>((resolve) => {
          const done = () => {
            hanging.delete(done);
            resolve();
          };
          hanging.add(done);
          req.raw.on('close', done);
        });
        reply.hijack();
        req.raw.socket.destroy();
        return reply;
      }
    });

  // The bank's books, and the switch for its message faults (control.ts): before the routes, so
  // its hooks see their answers.
  registerBooksRoute(app, engine);
  if (opts.faults) registerFaultControl(app, engine, opts.faults);
  app.get(SIM_PATHS.health, async () => ({ status: 'ok' }));
  if (opts.psp) {
    const psp = opts.psp;
    await app.register(
      async (scope) => registerPspRoutes(scope, engine, { ...psp, now, maxAgeSeconds: maxAge, credits }),
      {
        prefix: '/psp',
      },
    );
  }
  app.post(
    SIM_PATHS.intents,
    signed((b) => engine.registerIntent(b)),
  );
  app.post(
    SIM_PATHS.collects,
    signed((b) => engine.sendCollect(b)),
  );
  app.post(
    SIM_PATHS.txnStatus,
    signed((b) => engine.status(b)),
  );
  app.post(
    SIM_PATHS.refunds,
    signed((b) => engine.refund(b)),
  );
  app.post(
    SIM_PATHS.refundStatus,
    signed((b) => engine.refundStatus(b)),
  );
  registerSimCreditRoutes(app, credits, signed);
  // The customer's side: unsigned, as it stands for a person with a UPI app, not for Tillpoint.
  app.post(SIM_PATHS.customerPayments, async (req, reply) => reply.send(await engine.customerPayment(body(req))));
  // The bank's settlement file for a cycle, with discrepancies on request (settlementFile.ts).
  registerSettlementFileRoute(app, () => engine.settlementRecords(credits.settled()));
};
