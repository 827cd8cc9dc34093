import { AppError } from '../platform/errors.ts';

// Who is calling. Every /v1 route declares the permission it needs (see server.ts: a route
// without one refuses to register), and merchant-scoped callers only ever see their merchant.

export const PERMISSIONS = [
  'merchants:read',
  'merchants:write',
  'terminals:read',
  'terminals:write',
  'payments:read',
  'payments:write',
  'refunds:write',
  'rewards:read',
  'rewards:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export interface Principal {
  kind: 'api_key';
  id: string;
  /** null = a platform/partner key that may act for any merchant. */
  merchantId: string | null;
  permissions: ReadonlySet<string>;
}

/** The merchant filter to apply for this caller, or throws when it asks for another merchant's data. */
export function merchantScope(p: Principal, requested?: string): string | undefined {
  if (p.merchantId === null) return requested;
  if (requested !== undefined && requested !== p.merchantId) {
    // 404, not 403: never confirm that another merchant's resource exists.
    throw new AppError('merchant_not_found', 'Merchant not found');
  }
  return p.merchantId;
}

/** True when this caller may touch a resource that belongs to `merchantId`. */
export const canAccessMerchant = (p: Principal, merchantId: string) => p.merchantId === null || p.merchantId === merchantId;
