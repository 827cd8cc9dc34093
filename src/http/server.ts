import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyError } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import { AppError, fromDatabaseError, type ErrorCode } from '../platform/errors.ts';
import { errorReply } from '../platform/errorReply.ts';
import { newId } from '../platform/ids.ts';
import type { Config } from '../platform/config.ts';
import type { Db } from '../platform/db.ts';
import type { Metrics } from '../platform/metrics.ts';
import { createReadiness, databaseCheck, type Readiness } from '../platform/readiness.ts';
import { validatorCompiler, describeValidation, serializerOptions } from './validation.ts';
import { findForbiddenCharacter, parseStrictJson } from './strictJson.ts';
import type { Principal } from '../platform/principal.ts';
import { registerIdempotency } from './idempotency.ts';
import { runWithRequestContext } from '../platform/principal.ts';
import { createEdgeProtection } from './edge/index.ts';
import { registerTracing } from './tracing.ts';
import { createAdmission, registerAdmission } from './admission.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    rawBody?: string;
  }
  interface FastifyInstance {
    /** Every /v1 route with the permission it demands (or public). */
    routeTable: RouteInfo[];
  }
  interface FastifyContextConfig {
    /** Permission a caller needs. Every /v1 route must declare one, or be `public`. */
    permission?: string;
    /** Reachable without an API key (health, docs, signed bank callbacks that verify themselves). */
    public?: boolean;
    /** 'access': every successful call is recorded in the audit trail as an access to personal data. */
    audit?: 'access';
    /** The route reads its body as raw bytes, any content type, with a parser of its own (bank callbacks). */
    rawBody?: boolean;
  }
}

export interface RouteInfo {
  method: string;
  url: string;
  permission?: string;
  public: boolean;
  /** The route's request schemas (JSON Schema), so a test can fill every field it declares. */
  schema?: { body?: unknown; querystring?: unknown; params?: unknown };
}

export interface HttpDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  db: Db;
  authenticate(token: string, remoteAddr: string): Promise<Principal | null>;
  /** HTTPS: certificate, key and the hardened TLS settings (platform/tls.ts); plain HTTP when absent. */
  https?: import('node:https').ServerOptions;
  /** Operator sessions from the Cookie header (null when it holds none); checks CSRF on changes. */
  authenticateCookie?(
    cookieHeader: string,
    req: { ip: string; changesState: boolean; csrfToken?: string },
  ): Promise<Principal | null>;
  /** What /readyz answers from (draining, database, broker); default: the database alone. */
  readiness?: Readiness;
}

const REQUEST_ID_RE = /^[A-Za-z0-9_.-]{8,64}$/;

export function errorBody(code: ErrorCode, message: string, requestId: string, details?: unknown) {
  return { error: { code, message, request_id: requestId, ...(details === undefined ? {} : { details }) } };
}

/**
 * Fastify's own errors (schema validation, body parsing, malformed requests) as AppErrors; the
 * rest of the mapping is the one every transport shares (platform/errorReply.ts).
 */
function fastifyError(err: unknown): AppError | undefined {
  const fe = err as FastifyError & { validation?: import('ajv').ErrorObject[]; validationContext?: string };
  if (fe.validation) {
    return new AppError(
      'validation_failed',
      'The request does not match the schema',
      describeValidation(fe.validation, fe.validationContext ?? 'body'),
    );
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large', 'The request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', 'Send application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('malformed_json', 'The body is empty');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return new AppError('invalid_request', 'The request is malformed');
  }
  // Any other client error Fastify raises (a database error never carries a status).
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 && !fromDatabaseError(err)) {
    return new AppError('invalid_request', 'The request is malformed');
  }
  return undefined;
}

export async function buildServer(deps: HttpDeps): Promise<FastifyInstance> {
  const { config, logger, metrics } = deps;
  // Timeouts, header size, connection cap, trusted proxies, limits: src/http/edge.
  const edge = createEdgeProtection({ config, logger, metrics });
  const app = Fastify({
    loggerInstance: logger as unknown as import('fastify').FastifyBaseLogger,
    // Our own onResponse hook writes one line per request, with no bodies and no headers.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.http.bodyLimitBytes,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : newId('request');
    },
    ...edge.serverOptions,
    // With TLS, Node takes the HTTP server options (header size, timeouts) from the TLS options.
    ...(deps.https ? { https: { ...(edge.serverOptions.http as object | undefined), ...deps.https } } : {}),
    ajv: { customOptions: { coerceTypes: false } },
    routerOptions: { maxParamLength: 200 },
    ...serializerOptions(),
  });
  app.setValidatorCompiler(validatorCompiler);
  // Server spans for every route registered after this point (off unless tracing is configured).
  await registerTracing(app);

  // JSON with the raw text kept: signed inbound calls are verified over the exact bytes sent.
  // strictJson refuses __proto__ / constructor pollution and duplicate keys.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    req.rawBody = body as string;
    if ((body as string).length === 0) return done(new AppError('malformed_json', 'The body is empty'), undefined);
    const tooComplex = edge.jsonProblem(body as string);
    if (tooComplex) return done(tooComplex, undefined);
    try {
      done(null, parseStrictJson(body as string));
    } catch (e) {
      done(e as AppError, undefined);
    }
  });

  // Admission first: at most HTTP_MAX_IN_FLIGHT requests at work, the rest wait a bounded time, and
  // a stop refuses the waiting ones (nothing of them ran) instead of waiting for them (admission.ts).
  registerAdmission(
    app,
    createAdmission({
      maxInFlight: config.http.maxInFlight,
      maxQueue: config.http.queueMax,
      queueTimeoutMs: config.http.queueTimeoutMs,
      registry: metrics.registry,
    }),
  );
  // Security headers, CORS, content types and rate limits: before authentication, so a flood
  // is refused before it reaches the database.
  await edge.register(app);
  // Control characters (NUL above all, which PostgreSQL cannot store) in any string of the
  // body, the query or the path: one check for every route, before its schema and handler.
  app.addHook('preValidation', (req, _reply, done) => {
    for (const [part, value] of [
      ['body', req.body],
      ['query', req.query],
      ['params', req.params],
    ] as const) {
      const field = findForbiddenCharacter(value, part);
      if (field)
        return done(
          new AppError('invalid_characters', 'A value contains a control character', [
            { field, problem: 'contains a control character (NUL, C0 control, DEL) or an unpaired surrogate' },
          ]),
        );
    }
    done();
  });

  // Deny by default: a /v1 route that declares neither a permission nor `public` cannot exist.
  // Every /v1 route is listed with what it demands, so a test can walk all of them.
  const routeTable: RouteInfo[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/v1/') && !route.config?.permission && !route.config?.public) {
      throw new Error(`Route ${route.method} ${route.url} declares no permission`);
    }
    if (route.url.startsWith('/v1/')) {
      for (const method of [route.method].flat()) {
        if (method !== 'HEAD')
          routeTable.push({
            method,
            url: route.url,
            permission: route.config?.permission,
            public: route.config?.public === true,
            schema: { body: route.schema?.body, querystring: route.schema?.querystring, params: route.schema?.params },
          });
      }
    }
  });

  // Who is calling: an API key or operator session token as a Bearer token, or (for the
  // console) a session cookie, which must bring its CSRF token on anything that changes state.
  async function authenticateRequest(req: FastifyRequest): Promise<Principal> {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = typeof auth === 'string' ? /^Bearer ([A-Za-z0-9_-]{10,200})$/.exec(auth) : null;
      if (!m) throw new AppError('unauthenticated', 'Send an API key as "Authorization: Bearer <key>"');
      const principal = await deps.authenticate(m[1], req.ip);
      if (!principal) throw new AppError('unauthenticated', 'The API key is not valid');
      return principal;
    }
    const cookie = req.headers.cookie;
    if (deps.authenticateCookie && typeof cookie === 'string') {
      const csrf = req.headers['x-csrf-token'];
      const principal = await deps.authenticateCookie(cookie, {
        ip: req.ip,
        changesState: !['GET', 'HEAD', 'OPTIONS'].includes(req.method),
        csrfToken: typeof csrf === 'string' ? csrf : undefined,
      });
      if (principal) return principal;
    }
    throw new AppError('unauthenticated', 'Send an API key as "Authorization: Bearer <key>", or sign in');
  }

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    req.ctx = {
      requestId: req.id,
      ip: req.ip,
      method: req.method,
      route: req.routeOptions.url ?? 'unmatched',
      auditIds: [],
    };
    const cfg = req.routeOptions.config;
    if (!cfg?.permission) return;
    const principal = await authenticateRequest(req);
    req.ctx.principal = principal;
    if (!principal.permissions.has(cfg.permission)) {
      throw new AppError(
        'forbidden',
        `This ${principal.kind === 'operator' ? 'account' : principal.kind === 'terminal' ? 'terminal' : 'key'} lacks the "${cfg.permission}" permission`,
      );
    }
    req.principal = principal;
  });
  // Services deep inside a request can ask who is calling and from where (the audit trail does).
  app.addHook('preHandler', (req, _reply, done) => runWithRequestContext(req.ctx, done));

  registerIdempotency(app, deps.db);

  app.setErrorHandler((thrown, req, reply) => {
    const e = errorReply(thrown, {
      log: req.log,
      msg: 'unhandled error',
      context: { request_id: req.id },
      translate: fastifyError,
    });
    reply.status(e.status).send(errorBody(e.code, e.message, req.id, e.details));
  });

  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send(errorBody('route_not_found', `No route ${req.method} ${req.url.split('?')[0]}`, req.id));
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: req.method, route }, seconds);
    req.log.info(
      {
        request_id: req.id,
        method: req.method,
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        principal: req.principal?.id,
      },
      'request',
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tillpoint API',
        version: '1',
        description: 'UPI payments and rewards for point-of-sale fleets. Amounts are integer paise.',
      },
      servers: [{ url: config.publicUrl }],
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  const readiness = deps.readiness ?? createReadiness({ checks: [databaseCheck(deps.db)] });
  app.get('/readyz', { config: { public: true }, schema: { hide: true } }, async (_req, reply) => {
    const r = await readiness.status();
    if (r.ready) return { status: 'ready', checks: r.checks };
    return reply.status(503).send({ status: r.draining ? 'draining' : 'not_ready', checks: r.checks });
  });
  app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  return app;
}

export type { FastifyInstance, FastifyRequest };
