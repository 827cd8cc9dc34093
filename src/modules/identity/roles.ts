import { SELF_PERMISSION } from '../../platform/principal.ts';

// Roles grant the least privilege a job needs (PCI DSS 7.2.1-7.2.2). A permission is a string
// checked on every route; a role is a named set of them. Platform staff hold roles across all
// merchants; a merchant's own staff hold roles scoped to that merchant, and some roles exist
// for platform staff only.

export interface RoleDef {
  description: string;
  permissions: readonly string[];
  /** Extra permissions when held by a merchant's own staff (their own merchant only). */
  merchantExtra?: readonly string[];
  platformOnly?: boolean;
}

export const ROLES = {
  viewer: {
    description: 'Sees merchants, stores and terminals; no payment data.',
    permissions: ['merchants:read', 'terminals:read'],
  },
  support: {
    description: 'Helps merchants: sees payments (payer details masked), merchants, terminals and reward balances.',
    permissions: ['merchants:read', 'terminals:read', 'payments:read', 'rewards:read'],
  },
  cashier: {
    description: "Takes payments at a terminal from the console's virtual terminal, and sees them.",
    permissions: ['terminals:read', 'payments:read', 'payments:write'],
  },
  refunds: {
    description:
      "Sees payments and issues refunds; approves another operator's refund above the approval threshold (never their own).",
    permissions: ['payments:read', 'refunds:write', 'refunds:approve'],
  },
  'merchant-admin': {
    description:
      "Manages merchants, stores, terminals and reward programs; for a merchant's own staff, also that merchant's staff accounts and API keys.",
    permissions: [
      'merchants:read',
      'merchants:write',
      'terminals:read',
      'terminals:write',
      'terminals:revoke',
      'rewards:read',
      'rewards:write',
    ],
    merchantExtra: ['operators:read', 'operators:write', 'operators:approve', 'api_keys:read', 'api_keys:write'],
  },
  'security-admin': {
    description:
      "Manages operator accounts, roles and API keys; approves another administrator's MFA reset; reads key status and the compliance report. Sees no payment data.",
    permissions: [
      'operators:read',
      'operators:write',
      'operators:approve',
      'api_keys:read',
      'api_keys:write',
      'compliance:read',
    ],
    platformOnly: true,
  },
  settlement: {
    description:
      "Works settlement: cycles and bank-file differences, payouts to merchants, reversals to customers; sends again a compensation credit the bank refused, and approves another operator's retry to another VPA (never their own).",
    permissions: [
      'payments:read',
      'settlement:read',
      'settlement:write',
      'compensations:retry',
      'compensations:approve',
    ],
    platformOnly: true,
  },
  reconciliation: {
    description:
      "Works the banks' settlement files and the exception queue; approves another operator's forced match or write-off.",
    permissions: ['recon:read', 'recon:write', 'recon:approve', 'payments:read'],
    platformOnly: true,
  },
  auditor: {
    description: 'Reads the audit trail, key status and the compliance report, and nothing else.',
    permissions: ['audit:read', 'compliance:read'],
    platformOnly: true,
  },
} as const satisfies Record<string, RoleDef>;

export type Role = keyof typeof ROLES;
export const ROLE_NAMES = Object.keys(ROLES) as Role[];
export const MERCHANT_ROLES = ROLE_NAMES.filter((r) => !(ROLES[r] as RoleDef).platformOnly);

export const isRole = (r: string): r is Role => Object.hasOwn(ROLES, r);

/** The permissions of an operator with `roles`, platform-wide (merchantId null) or for one merchant. */
export function permissionsFor(roles: readonly string[], merchantId: string | null): Set<string> {
  const out = new Set<string>([SELF_PERMISSION]);
  for (const r of roles) {
    if (!isRole(r)) continue;
    const def = ROLES[r] as RoleDef;
    if (def.platformOnly && merchantId !== null) continue;
    for (const p of def.permissions) out.add(p);
    if (merchantId !== null) for (const p of def.merchantExtra ?? []) out.add(p);
  }
  return out;
}

/** Permissions an API key may carry: machine work only. Operators, roles and the audit trail are for people (8.2.2). */
export const KEY_GRANTABLE_PERMISSIONS: readonly string[] = [
  'merchants:read',
  'merchants:write',
  'terminals:read',
  'terminals:write',
  'terminals:revoke',
  'payments:read',
  'payments:write',
  'refunds:write',
  'rewards:read',
  'rewards:write',
  'settlement:read',
  'settlement:write',
  'recon:read',
  'recon:write',
];
