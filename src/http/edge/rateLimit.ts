import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../platform/errors.ts';
import type { RateLimitConfig, RateLimitName } from './edge.settings.ts';
import type { BucketStore } from './tokenBucket.ts';
import type { EdgeMetrics } from './metrics.ts';

// Rate limits in the API: every request is counted per client IP and per API key as soon as it
// arrives (onRequest, before authentication touches the database), then per terminal once the
// body is parsed (preValidation, before idempotency claims a key or a handler runs). Routes can
// attach stricter named limits (sign-in, MFA). A refused request gets 429 `rate_limited` with
// Retry-After and never reaches the database.

/** A named limit a route attaches, with the part of the request it is counted by. */
export interface RouteRateLimit {
  limit: RateLimitName;
  /** The bucket's key (an account name, an IP…); undefined = this request is not counted. */
  key(req: FastifyRequest): string | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Extra named rate limits for this route, checked after the body is parsed. */
    rateLimits?: RouteRateLimit[];
    /** false: not counted by the per-IP / per-key / per-terminal limits (health probes). */
    rateLimit?: false;
  }
}

/** Routes probed by load balancers and Prometheus: never throttled. */
const UNLIMITED_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);
/**
 * The development bank simulator mounted in the API process stands for a bank's own servers,
 * which our limits do not govern; counting it would also count the API's calls to itself.
 */
const EMBEDDED_BANK_SIM = '/sim/';

/**
 * Sign-in: per client IP (credential stuffing across accounts) and per account (guessing one
 * password). The per-account burst is above the PCI DSS 8.3.4 lockout threshold (10 failures),
 * so the lockout acts first and the limit only slows what comes after.
 */
export function signInRateLimits(accountOf: (req: FastifyRequest) => string | undefined): RouteRateLimit[] {
  return [
    { limit: 'signin_ip', key: (req) => req.ip },
    { limit: 'signin_account', key: (req) => normalizeAccount(accountOf(req)) },
  ];
}

/** MFA code entry: per account (or session), burst above the lockout threshold like sign-in. */
export function mfaRateLimits(accountOf: (req: FastifyRequest) => string | undefined): RouteRateLimit[] {
  return [
    { limit: 'signin_ip', key: (req) => req.ip },
    { limit: 'mfa_account', key: (req) => normalizeAccount(accountOf(req)) },
  ];
}

function normalizeAccount(a: string | undefined): string | undefined {
  return typeof a === 'string' && a.length > 0 ? a.trim().toLowerCase().slice(0, 320) : undefined;
}

/** API keys are counted by a digest of the key as presented, so no raw key sits in a store. */
export function apiKeyBucketId(authorization: string | string[] | undefined): string | undefined {
  if (typeof authorization !== 'string') return undefined;
  const m = /^Bearer (\S{1,512})$/.exec(authorization);
  return m ? createHash('sha256').update(m[1]).digest('base64url').slice(0, 22) : undefined;
}

/** The terminal a request acts for: `terminal_id` in the JSON body or in the query. */
export function terminalIdOf(req: FastifyRequest): string | undefined {
  const body = req.body as Record<string, unknown> | undefined;
  const fromBody = body && typeof body === 'object' && !Array.isArray(body) ? body.terminal_id : undefined;
  const fromQuery = (req.query as Record<string, unknown> | undefined)?.terminal_id;
  const id = typeof fromBody === 'string' ? fromBody : typeof fromQuery === 'string' ? fromQuery : undefined;
  return id && id.length <= 100 ? id : undefined;
}

/** Why a request is refused: which limit, and when to come back. */
export interface Refusal {
  limit: RateLimitName;
  retryAfterSeconds: number;
}

export interface RateLimiter {
  /** Takes a token from `limit`'s bucket for `id`: undefined when allowed, else the refusal. */
  take(limit: RateLimitName, id: string): Promise<Refusal | undefined>;
}

export function createRateLimiter(deps: {
  config: RateLimitConfig;
  store: BucketStore;
  metrics: EdgeMetrics;
}): RateLimiter {
  const { config, store, metrics } = deps;
  return {
    async take(limit, id) {
      const r = await store.take(`${limit}:${id}`, config.limits[limit]);
      if (r.allowed) return undefined;
      metrics.rateLimited.inc({ limit });
      return {
        limit,
        retryAfterSeconds: Number.isFinite(r.retryAfterMs) ? Math.max(1, Math.ceil(r.retryAfterMs / 1000)) : 3600,
      };
    },
  };
}

/** 429 `rate_limited` with Retry-After, through the API's error handler. */
function refuse(reply: FastifyReply, r: Refusal): never {
  reply.header('retry-after', String(r.retryAfterSeconds));
  throw new AppError(
    'rate_limited',
    `Too many requests (${r.limit.replace('_', ' ')} limit); retry after ${r.retryAfterSeconds} s`,
    {
      limit: r.limit,
      retry_after_seconds: r.retryAfterSeconds,
    },
  );
}

/** Registers the hooks. Call before the authentication hook so per-IP limits run first. */
export function registerRateLimits(app: FastifyInstance, config: RateLimitConfig, limiter: RateLimiter) {
  app.addHook('onRoute', (route) => {
    for (const rl of route.config?.rateLimits ?? []) {
      if (!(rl.limit in config.limits))
        throw new Error(`Route ${route.method} ${route.url} attaches an unknown rate limit "${rl.limit}"`);
    }
  });
  if (!config.enabled) return;

  app.addHook('onRequest', async (req, reply) => {
    const cfg = req.routeOptions.config;
    if (
      cfg?.rateLimit === false ||
      UNLIMITED_ROUTES.has(req.routeOptions.url ?? '') ||
      req.url.startsWith(EMBEDDED_BANK_SIM)
    )
      return;
    const key = apiKeyBucketId(req.headers.authorization);
    // Both buckets at once: with Redis that is one round trip of waiting, not two.
    const [byIp, byKey] = await Promise.all([
      limiter.take('ip', req.ip),
      key ? limiter.take('api_key', key) : undefined,
    ]);
    const refusal = byIp ?? byKey;
    if (refusal) refuse(reply, refusal);
  });

  app.addHook('preValidation', async (req, reply) => {
    const cfg = req.routeOptions.config;
    if (cfg?.rateLimit !== false && req.principal) {
      const terminal = terminalIdOf(req);
      // A merchant's key counts only against its own terminals' buckets: it cannot drain
      // another merchant's terminal by naming its id.
      const refusal = terminal
        ? await limiter.take('terminal', `${req.principal.merchantId ?? '*'}:${terminal}`)
        : undefined;
      if (refusal) refuse(reply, refusal);
    }
    for (const rl of cfg?.rateLimits ?? []) {
      const id = rl.key(req);
      const refusal = id === undefined ? undefined : await limiter.take(rl.limit, id);
      if (refusal) refuse(reply, refusal);
    }
  });
}
