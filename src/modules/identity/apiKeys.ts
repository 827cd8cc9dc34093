import { createHash, randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { Db, Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import type { Principal } from '../../platform/principal.ts';

// Partner and merchant API keys: shown once at creation, stored only as a digest.

const digest = (key: string) => createHash('sha256').update(key).digest();

export interface CreatedApiKey {
  id: string;
  /** The key itself. Returned once; only its digest is kept. */
  key: string;
  merchantId: string | null;
  permissions: string[];
}

/** "10.0.0.0/8", "2001:db8::/32", or a single address (a /32 or /128). */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address, bits, ...rest] = text.trim().split('/');
  const v = isIP(address);
  if (v === 0 || rest.length > 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

export function allowlistOf(cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (p) list.addSubnet(p.address, p.prefix, p.family);
  }
  return list;
}

/** True when `ip` is inside `list` (an IPv4 address seen as ::ffff:a.b.c.d counts as IPv4). */
export function ipAllowed(list: BlockList | null, ip: string): boolean {
  if (!list) return true;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  const addr = v4 ?? ip;
  const fam = isIP(addr);
  if (fam === 0) return false;
  return list.check(addr, fam === 4 ? 'ipv4' : 'ipv6');
}

export async function createApiKey(
  q: Queryable,
  opts: {
    name: string;
    merchantId: string | null;
    permissions: readonly string[];
    expiresAt?: Date | null;
    ipAllowlist?: readonly string[];
    createdBy?: string | null;
    rotatedFrom?: string | null;
  },
): Promise<CreatedApiKey> {
  const key = `tp_${randomBytes(32).toString('base64url')}`;
  const id = newId('apiKey');
  await q.query(
    `INSERT INTO identity.api_keys (id, name, key_hash, key_prefix, merchant_id, permissions, expires_at, ip_allowlist, created_by, rotated_from)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::cidr[], $9, $10)`,
    [
      id,
      opts.name,
      digest(key),
      key.slice(0, 10),
      opts.merchantId,
      [...opts.permissions],
      opts.expiresAt ?? null,
      [...(opts.ipAllowlist ?? [])],
      opts.createdBy ?? null,
      opts.rotatedFrom ?? null,
    ],
  );
  return { id, key, merchantId: opts.merchantId, permissions: [...opts.permissions] };
}

const CACHE_TTL_MS = 5_000;
/** A cached key used this close to its expiry is looked up again in the background. */
const REFRESH_AHEAD_MS = 1_000;

export interface ApiKeyAuthenticator {
  (key: string, remoteAddr?: string): Promise<Principal | null>;
  /** Forgets cached keys, so a revocation in this process takes effect at once. */
  invalidate(): void;
}

interface CachedKey {
  principal: Principal | null;
  allow: BlockList | null;
  expiresAt: number;
  /** Used until then; looked up again after. */
  until: number;
}

/**
 * Looks a presented key up by digest. A short in-process cache keeps this off the database on
 * every request; revocation takes effect within CACHE_TTL_MS on other replicas (at once here).
 * A key with an IP allowlist is refused from any other address.
 *
 * A key has at most one look-up in flight: every request a partner sends carries the same key,
 * and when its entry expired under load each of them used to run its own look-up, an UPDATE of
 * the same row, one after the other behind its lock, each waiting for its commit, while the
 * requests queued behind them (a burst of slow requests every CACHE_TTL_MS, bench/PROFILE.md
 * "Session 13"). A key in use is looked up again in the background in the last REFRESH_AHEAD_MS
 * of its entry, so a busy key's requests do not wait for it at all; an entry is never used past
 * its `until`.
 */
export function createApiKeyAuthenticator(db: Db, now: () => Date = () => new Date()): ApiKeyAuthenticator {
  const cache = new Map<string, CachedKey>();
  const lookups = new Map<string, Promise<CachedKey>>();
  let generation = 0; // invalidate() bumps it: a look-up begun before does not refill the cache

  const lookUp = (d: Buffer, ck: string): Promise<CachedKey> => {
    const running = lookups.get(ck);
    if (running) return running;
    const startedIn = generation;
    const lookup = (async () => {
      const at = now();
      const { rows } = await db.query<{
        id: string;
        merchant_id: string | null;
        permissions: string[];
        ip_allowlist: string[];
        expires_at: Date | null;
      }>(
        `UPDATE identity.api_keys SET last_used_at = $2
          WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
          RETURNING id, merchant_id, permissions, ip_allowlist::text[] AS ip_allowlist, expires_at`,
        [d, at],
      );
      const r = rows[0];
      const entry: CachedKey = {
        principal: r
          ? { kind: 'api_key', id: r.id, merchantId: r.merchant_id, permissions: new Set(r.permissions) }
          : null,
        allow: r ? allowlistOf(r.ip_allowlist) : null,
        expiresAt: r?.expires_at ? new Date(r.expires_at).getTime() : Infinity,
        // From when the look-up began: what it read is no newer than that.
        until: at.getTime() + CACHE_TTL_MS,
      };
      if (generation === startedIn) {
        if (cache.size > 10_000) cache.clear();
        cache.set(ck, entry);
      }
      return entry;
    })();
    lookups.set(ck, lookup);
    const settled = () => {
      if (lookups.get(ck) === lookup) lookups.delete(ck);
    };
    lookup.then(settled, settled);
    return lookup;
  };

  const authenticate = async function authenticate(key: string, remoteAddr?: string): Promise<Principal | null> {
    const d = digest(key);
    const ck = d.toString('base64');
    const at = now().getTime();
    let hit = cache.get(ck);
    if (!hit || hit.until <= at) hit = await lookUp(d, ck);
    else if (hit.until - at <= REFRESH_AHEAD_MS) lookUp(d, ck).catch(() => {}); // the next request retries
    // Expiry is exact even for a cached key (a rotation's overlap ends on time).
    if (hit.expiresAt <= now().getTime()) return null;
    if (hit.principal && remoteAddr !== undefined && !ipAllowed(hit.allow, remoteAddr)) {
      throw new AppError('unauthenticated', 'This API key may not be used from this address');
    }
    return hit.principal;
  } as ApiKeyAuthenticator;
  authenticate.invalidate = () => {
    generation++;
    cache.clear();
    lookups.clear();
  };
  return authenticate;
}
