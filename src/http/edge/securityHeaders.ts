import type { FastifyInstance } from 'fastify';
import { AppError } from '../../platform/errors.ts';
import type { EdgeMetrics } from './metrics.ts';

// Response headers that make browsers treat the API safely, CORS (closed unless origins are
// listed), and the content types the API accepts.

/** For JSON and everything that is not a page: nothing may load, nothing may frame it. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * For HTML pages the API serves (the /docs page now, the operator console later): scripts,
 * styles and calls only from our own origin, no inline script, no plugins, never framed.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; script-src-attr 'none'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

export interface SecurityHeaderOptions {
  /** Strict-Transport-Security max-age; 0 leaves the header out. */
  hstsMaxAgeSeconds: number;
  /** Origins allowed to call the API from a browser; empty = CORS closed. */
  corsAllowedOrigins: string[];
}

const CORS_METHODS = 'GET, POST, PUT, PATCH, DELETE';
const CORS_HEADERS = 'authorization, content-type, idempotency-key, x-request-id';
const CORS_EXPOSE = 'x-request-id, retry-after, idempotent-replayed';

export function registerSecurityHeaders(app: FastifyInstance, opts: SecurityHeaderOptions) {
  const hsts = opts.hstsMaxAgeSeconds > 0 ? `max-age=${opts.hstsMaxAgeSeconds}; includeSubDomains` : undefined;
  const allowed = new Set(opts.corsAllowedOrigins);

  // CORS first, so a preflight is answered (or left unanswered) before anything else runs.
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (typeof origin !== 'string' || !allowed.has(origin)) return; // closed: no CORS headers at all
    reply.header('access-control-allow-origin', origin);
    reply.header('vary', 'Origin');
    reply.header('access-control-expose-headers', CORS_EXPOSE);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      reply.header('access-control-allow-methods', CORS_METHODS);
      reply.header('access-control-allow-headers', CORS_HEADERS);
      reply.header('access-control-max-age', '600');
      return reply.code(204).send();
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cross-origin-opener-policy', 'same-origin');
    if (hsts) reply.header('strict-transport-security', hsts);
    if (!reply.hasHeader('content-security-policy')) {
      const type = String(reply.getHeader('content-type') ?? '');
      reply.header('content-security-policy', type.startsWith('text/html') ? CONSOLE_CSP : API_CSP);
    }
    // API answers carry merchant and payment data: no shared cache may keep them.
    if (req.url.startsWith('/v1/') && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    // Answers sent before the authentication hook ran (429s, 415s) still carry the request id.
    if (!reply.hasHeader('x-request-id')) reply.header('x-request-id', req.id);
    return payload;
  });
}

/**
 * Strict content types: a request with a body must send `application/json`, with no charset or
 * utf-8. Anything else is refused with 415 before it is read (no text/plain, no form posts, no
 * UTF-16 or UTF-7 that a WAF would read differently from the API).
 */
export function registerContentTypePolicy(app: FastifyInstance, metrics: EdgeMetrics) {
  // Fastify accepts text/plain out of the box; the API never does.
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', async (req) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
    const length = req.headers['content-length'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (!hasBody) return;
    // A route that reads its body as raw bytes (signed bank callbacks: forms, encrypted text)
    // declares it, and verifies the bytes itself; its own parser is scoped to it.
    if (req.routeOptions.config?.rawBody === true) return;
    if (!isJsonContentType(req.headers['content-type'])) {
      metrics.requestsRefused.inc({ reason: 'content_type' });
      throw new AppError('unsupported_media_type', 'Send the body as application/json (UTF-8)');
    }
  });
}

export function isJsonContentType(value: string | undefined): boolean {
  if (typeof value !== 'string') return false;
  const [type, ...params] = value.split(';').map((s) => s.trim().toLowerCase());
  if (type !== 'application/json') return false;
  for (const p of params) {
    if (p === '') continue;
    const [k, v] = p.split('=').map((s) => s.trim());
    if (k !== 'charset' || (v !== 'utf-8' && v !== '"utf-8"')) return false;
  }
  return true;
}
