import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { isId } from '../../platform/ids.ts';
import { canAccessMerchant, merchantScope, type Principal } from '../../platform/principal.ts';
import { page } from '../../http/pagination.ts';
import type { AuditWriter } from '../audit/index.ts';
import { createApiKey, parseCidr } from './apiKeys.ts';
import { KEY_GRANTABLE_PERMISSIONS } from './roles.ts';

// Managing API keys over the API: create (the key is shown once), list, revoke, rotate with an
// overlap. Every change is recorded in the audit trail in its own transaction.

export interface ApiKeyRow {
  id: string;
  name: string;
  key_prefix: string;
  merchant_id: string | null;
  permissions: string[];
  ip_allowlist: string[];
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
  created_by: string | null;
  rotated_from: string | null;
}

const MAX_EXPIRY_DAYS = 730;
const DEFAULT_EXPIRY_DAYS = 365;
const MAX_OVERLAP_HOURS = 7 * 24;
const COLS = `id, name, key_prefix, merchant_id, permissions, ip_allowlist::text[] AS ip_allowlist, expires_at, revoked_at, last_used_at, created_at, created_by, rotated_from`;

export function apiKeyView(k: ApiKeyRow, now: Date) {
  const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
  const status = k.revoked_at ? 'revoked' : k.expires_at && new Date(k.expires_at) <= now ? 'expired' : 'active';
  return {
    id: k.id,
    name: k.name,
    prefix: k.key_prefix,
    merchant_id: k.merchant_id,
    permissions: k.permissions,
    ip_allowlist: k.ip_allowlist.map((c) =>
      c.endsWith('/32') || c.endsWith('/128') ? c.replace(/\/(32|128)$/, '') : c,
    ),
    status,
    expires_at: iso(k.expires_at),
    revoked_at: iso(k.revoked_at),
    last_used_at: iso(k.last_used_at),
    created_at: iso(k.created_at)!,
    created_by: k.created_by,
    rotated_from: k.rotated_from,
  };
}

export interface CreateKeyInput {
  name: string;
  merchant_id?: string | null;
  permissions: string[];
  expires_in_days?: number;
  ip_allowlist?: string[];
}

export function createApiKeysService(deps: { db: Db; clock: Clock; audit: AuditWriter; onRevoke?: () => void }) {
  const { db, clock, audit } = deps;

  function checkInput(p: Principal, input: CreateKeyInput) {
    for (const perm of input.permissions) {
      if (!KEY_GRANTABLE_PERMISSIONS.includes(perm)) {
        throw new AppError('validation_failed', `An API key cannot carry "${perm}"`, [
          { field: 'body.permissions', problem: `must be among ${KEY_GRANTABLE_PERMISSIONS.join(', ')}` },
        ]);
      }
    }
    if (input.permissions.length === 0)
      throw new AppError('validation_failed', 'A key needs at least one permission', [
        { field: 'body.permissions', problem: 'must not be empty' },
      ]);
    for (const c of input.ip_allowlist ?? []) {
      if (!parseCidr(c))
        throw new AppError('validation_failed', `"${c}" is not an IP address or CIDR block`, [
          { field: 'body.ip_allowlist', problem: 'must be IPv4/IPv6 addresses or CIDR blocks' },
        ]);
    }
    // A merchant's own admins make keys for their merchant only.
    return merchantScope(p, input.merchant_id ?? undefined) ?? null;
  }

  async function visible(q: Queryable, p: Principal, id: string, lock = false): Promise<ApiKeyRow> {
    const k = isId('apiKey', id)
      ? (
          await q.query<ApiKeyRow>(`SELECT ${COLS} FROM identity.api_keys WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [
            id,
          ])
        ).rows[0]
      : undefined;
    if (
      !k ||
      (k.merchant_id === null
        ? p.merchantId !== null && !canAccessMerchant(p, 'platform')
        : !canAccessMerchant(p, k.merchant_id))
    ) {
      throw new AppError('not_found', 'API key not found');
    }
    return k;
  }

  const res = (k: { id: string; merchant_id: string | null }) => ({
    type: 'api_key',
    id: k.id,
    merchant_id: k.merchant_id,
  });

  async function insert(
    tx: Queryable,
    p: Principal,
    input: CreateKeyInput,
    merchantId: string | null,
    rotatedFrom: string | null,
  ) {
    if (merchantId !== null) {
      const m = await tx.query(`SELECT 1 FROM merchants.merchants WHERE id = $1`, [merchantId]);
      if (!m.rows[0]) throw new AppError('merchant_not_found', 'Merchant not found');
    }
    const now = clock.now();
    const days = input.expires_in_days ?? DEFAULT_EXPIRY_DAYS;
    const k = await createApiKey(tx, {
      name: input.name,
      merchantId,
      permissions: [...new Set(input.permissions)],
      expiresAt: new Date(now.getTime() + days * 86_400_000),
      ipAllowlist: input.ip_allowlist ?? [],
      createdBy: p.id,
      rotatedFrom,
    });
    const row = (await tx.query<ApiKeyRow>(`SELECT ${COLS} FROM identity.api_keys WHERE id = $1`, [k.id])).rows[0];
    return { key: k.key, view: apiKeyView(row, now) };
  }

  return {
    MAX_EXPIRY_DAYS,
    MAX_OVERLAP_HOURS,
    async create(p: Principal, input: CreateKeyInput) {
      const merchantId = checkInput(p, input);
      return db.tx(async (tx) => {
        const r = await insert(tx, p, input, merchantId, null);
        await audit.record(tx, {
          action: 'api_key.created',
          resource: res(r.view),
          details: {
            permissions: r.view.permissions,
            expires_at: r.view.expires_at,
            ip_allowlist: r.view.ip_allowlist,
          },
        });
        return { ...r.view, key: r.key };
      });
    },

    async list(p: Principal, q: { limit: number; before?: string; merchant_id?: string }) {
      const merchantId = merchantScope(p, q.merchant_id);
      const rows = (
        await db.query<ApiKeyRow>(
          `SELECT ${COLS} FROM identity.api_keys WHERE ($1::text IS NULL OR merchant_id = $1) AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`,
          [merchantId ?? null, q.before ?? null, q.limit + 1],
        )
      ).rows;
      const now = clock.now();
      return page(
        rows.map((r) => apiKeyView(r, now)),
        q.limit,
      );
    },

    async get(p: Principal, id: string) {
      return apiKeyView(await visible(db, p, id), clock.now());
    },

    async revoke(p: Principal, id: string, reason?: string) {
      const out = await db.tx(async (tx) => {
        const k = await visible(tx, p, id, true);
        if (k.revoked_at) return apiKeyView(k, clock.now());
        const now = clock.now();
        await tx.query(
          `UPDATE identity.api_keys SET revoked_at = $2, revoked_by = $3, revoked_reason = $4 WHERE id = $1`,
          [id, now, p.id, reason ?? null],
        );
        await audit.record(tx, { action: 'api_key.revoked', resource: res(k), details: { reason: reason ?? null } });
        return apiKeyView(
          (await tx.query<ApiKeyRow>(`SELECT ${COLS} FROM identity.api_keys WHERE id = $1`, [id])).rows[0],
          now,
        );
      });
      deps.onRevoke?.();
      return out;
    },

    /**
     * A new key with the same scope; the old one keeps working for `overlap_hours` (default 24)
     * so the partner can switch without downtime, then expires.
     */
    async rotate(p: Principal, id: string, input: { overlap_hours?: number; expires_in_days?: number }) {
      const overlap = input.overlap_hours ?? 24;
      const out = await db.tx(async (tx) => {
        const old = await visible(tx, p, id, true);
        const now = clock.now();
        if (old.revoked_at || (old.expires_at && new Date(old.expires_at) <= now))
          throw new AppError('conflict', 'Only an active key can be rotated');
        const r = await insert(
          tx,
          p,
          {
            name: old.name,
            merchant_id: old.merchant_id,
            permissions: old.permissions,
            ip_allowlist: old.ip_allowlist,
            expires_in_days: input.expires_in_days,
          },
          old.merchant_id,
          old.id,
        );
        const until = new Date(now.getTime() + overlap * 3_600_000);
        await tx.query(`UPDATE identity.api_keys SET expires_at = least(coalesce(expires_at, $2), $2) WHERE id = $1`, [
          old.id,
          until,
        ]);
        await audit.record(tx, {
          action: 'api_key.rotated',
          resource: res(old),
          details: { new_key_id: r.view.id, old_key_expires_at: until.toISOString(), overlap_hours: overlap },
        });
        return { ...r.view, key: r.key, previous_key_expires_at: until.toISOString() };
      });
      deps.onRevoke?.();
      return out;
    },
  };
}

export type ApiKeysService = ReturnType<typeof createApiKeysService>;
