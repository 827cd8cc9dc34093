import { createHash, randomBytes } from 'node:crypto';
import type { Db, Queryable } from '../../platform/db.ts';
import { newId } from '../../platform/ids.ts';
import type { Principal } from '../../http/principal.ts';

// Partner and merchant API keys: shown once at creation, stored only as a digest.

const digest = (key: string) => createHash('sha256').update(key).digest();

export interface CreatedApiKey {
  id: string;
  /** The key itself. Returned once; only its digest is kept. */
  key: string;
  merchantId: string | null;
  permissions: string[];
}

export async function createApiKey(
  q: Queryable,
  opts: { name: string; merchantId: string | null; permissions: readonly string[]; expiresAt?: Date | null },
): Promise<CreatedApiKey> {
  const key = `tp_${randomBytes(32).toString('base64url')}`;
  const id = newId('apiKey');
  await q.query(
    `INSERT INTO identity.api_keys (id, name, key_hash, key_prefix, merchant_id, permissions, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [id, opts.name, digest(key), key.slice(0, 10), opts.merchantId, [...opts.permissions], opts.expiresAt ?? null],
  );
  return { id, key, merchantId: opts.merchantId, permissions: [...opts.permissions] };
}

const CACHE_TTL_MS = 5_000;

/**
 * Looks a presented key up by digest. A short in-process cache keeps this off the database on
 * every request; revocation takes effect within CACHE_TTL_MS.
 */
export function createApiKeyAuthenticator(db: Db, now: () => Date = () => new Date()) {
  const cache = new Map<string, { principal: Principal | null; until: number }>();
  return async function authenticate(key: string): Promise<Principal | null> {
    const d = digest(key);
    const ck = d.toString('base64');
    const hit = cache.get(ck);
    if (hit && hit.until > Date.now()) return hit.principal;
    const { rows } = await db.query<{ id: string; merchant_id: string | null; permissions: string[] }>(
      `UPDATE identity.api_keys SET last_used_at = now()
        WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
        RETURNING id, merchant_id, permissions`,
      [d, now()],
    );
    const r = rows[0];
    const principal: Principal | null = r
      ? { kind: 'api_key', id: r.id, merchantId: r.merchant_id, permissions: new Set(r.permissions) }
      : null;
    if (cache.size > 10_000) cache.clear();
    cache.set(ck, { principal, until: Date.now() + CACHE_TTL_MS });
    return principal;
  };
}
