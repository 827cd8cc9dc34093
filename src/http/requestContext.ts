import type { RequestContext } from '../platform/principal.ts';

// The request context itself (who is calling, from where) is transport-neutral and lives in
// src/platform/principal.ts; here it is only attached to Fastify's request.
declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the first onRequest hook of server.ts, before authentication. */
    ctx: RequestContext;
  }
}

export type { RequestContext };
