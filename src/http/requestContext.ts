import { AsyncLocalStorage } from 'node:async_hooks';
import type { Principal } from './principal.ts';

// What a service deep inside a request may need to know about that request without every
// function passing it along: who is calling and from where (the audit trail records both),
// and whether the request touched another merchant's data (a denial the trail records).
// Set by server.ts around each route handler; absent in the worker and the CLI.

export interface RequestContext {
  requestId: string;
  ip: string;
  method: string;
  /** Route pattern, e.g. "/v1/payments/:id". */
  route: string;
  principal?: Principal;
  /** Set when the caller asked for a resource of a merchant it may not see (answered 404). */
  crossMerchant?: { merchantId: string };
  /** Ids of audit records written for this request (they may yet roll back with their transaction). */
  auditIds: string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the first onRequest hook of server.ts, before authentication. */
    ctx: RequestContext;
  }
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runWithRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

export const currentRequest = (): RequestContext | undefined => storage.getStore();
