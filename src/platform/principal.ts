import { AsyncLocalStorage } from 'node:async_hooks';
import { AppError } from './errors.ts';

// Who is calling. Every /v1 route declares the permission it needs (see server.ts: a route
// without one refuses to register), and merchant-scoped callers only ever see their merchant.

export const PERMISSIONS = [
  'merchants:read',
  'merchants:write',
  'terminals:read',
  'terminals:write',
  'terminals:revoke',
  'payments:read',
  'payments:write',
  'refunds:write',
  'refunds:approve', // four eyes: another operator's refund above REFUND_APPROVAL_THRESHOLD_PAISE (people only)
  'rewards:read',
  'rewards:write',
  'operators:read',
  'operators:write',
  'operators:approve', // four eyes: another operator's MFA reset (people only)
  'api_keys:read',
  'api_keys:write',
  'audit:read',
  'compliance:read',
  'vault:tokenize',
  'vault:detokenize',
  'settlement:read',
  'settlement:write',
  'compensations:retry', // send again a compensation credit the bank refused (people only)
  'compensations:approve', // four eyes: another operator's retry to another VPA (people only)
  'recon:read',
  'recon:write',
  'recon:approve',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/**
 * Held by every signed-in operator and by nothing else: their own session, password and
 * second factor. Not grantable to an API key.
 */
export const SELF_PERMISSION = 'account:self';

/**
 * Routes with these permissions return personal or cardholder data (payer VPAs, operators'
 * details, the audit trail itself): every successful read is recorded in the audit trail
 * (PCI DSS 10.2.1.1, 10.2.1.3). A route can also opt in with `config: { audit: 'access' }`.
 */
export const DATA_ACCESS_PERMISSIONS: ReadonlySet<string> = new Set([
  'payments:read',
  'operators:read',
  'api_keys:read',
  'audit:read',
  'vault:detokenize',
]);

export interface Principal {
  /**
   * api_key: a partner or merchant system; operator: a person signed in with password and TOTP;
   * terminal: a POS terminal over MQTT, authenticated when it connected (certificate or secret),
   * always scoped to its merchant (build it with terminalPrincipal()).
   */
  kind: 'api_key' | 'operator' | 'terminal';
  /** key_…, opr_…, or trm_… for a terminal. */
  id: string;
  /** null = platform-wide (a partner key, platform staff); set = that merchant only. Never null for a terminal. */
  merchantId: string | null;
  permissions: ReadonlySet<string>;
  /** Operators only: the session this request came in on. */
  sessionId?: string;
}

export type TerminalPrincipal = Principal & { kind: 'terminal'; merchantId: string };

/** What a terminal may do: take and look up its own payments, refund them, look up reward points. */
const TERMINAL_PERMISSIONS: ReadonlySet<string> = new Set([
  'payments:read',
  'payments:write',
  'refunds:write',
  'rewards:read',
]);

/**
 * A terminal acting for its merchant. The merchant comes from the terminal's record, read when it
 * connected (a terminal never moves to another merchant); the terminal id from the connection.
 * Services scope it like a merchant key; the terminals module adds "only its own payments".
 */
export function terminalPrincipal(terminalId: string, merchantId: string): TerminalPrincipal {
  if (!merchantId) throw new Error('a terminal principal needs its merchant');
  return { kind: 'terminal', id: terminalId, merchantId, permissions: TERMINAL_PERMISSIONS };
}

function noteCrossMerchant(merchantId: string) {
  const ctx = currentRequest();
  if (ctx && !ctx.crossMerchant) ctx.crossMerchant = { merchantId };
}

/** The merchant filter to apply for this caller, or throws when it asks for another merchant's data. */
export function merchantScope(p: Principal, requested?: string): string | undefined {
  if (p.merchantId === null) {
    // A terminal is never platform-wide: one without a merchant sees nothing.
    if (p.kind !== 'terminal') return requested;
    throw new AppError('merchant_not_found', 'Merchant not found');
  }
  if (requested !== undefined && requested !== p.merchantId) {
    noteCrossMerchant(requested);
    // 404, not 403: never confirm that another merchant's resource exists.
    throw new AppError('merchant_not_found', 'Merchant not found');
  }
  return p.merchantId;
}

/**
 * True when this caller may touch a resource that belongs to `merchantId`. A false answer is
 * noted on the request, so the 404 the caller gets is recorded as a denied access.
 */
export function canAccessMerchant(p: Principal, merchantId: string): boolean {
  if (p.merchantId === merchantId || (p.merchantId === null && p.kind !== 'terminal')) return true;
  noteCrossMerchant(merchantId);
  return false;
}

// ---- the request being served: who is calling, from where ----

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

const storage = new AsyncLocalStorage<RequestContext>();

export function runWithRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

export const currentRequest = (): RequestContext | undefined => storage.getStore();
