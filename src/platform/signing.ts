import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Queryable } from './db.ts';
import { AppError } from './errors.ts';

// THE one way Tillpoint signs and verifies an HTTP call with a shared secret (banks today,
// partners later). Everything signed or verified goes through this file so there is one
// canonical string, one header set and one replay rule to review.
//
//   signature = hex(HMAC-SHA256(secret, `${timestamp}.${nonce}.${rawBody}`))
//   X-Tillpoint-Timestamp: unix seconds
//   X-Tillpoint-Nonce:     random, >= 16 bytes, hex or base64url
//   X-Tillpoint-Signature: v1=<hex>
//
// The timestamp bounds how long a captured request stays usable; the nonce, remembered for
// that long, makes each request usable once. The raw body is signed byte for byte, so the
// verifier must be handed the body exactly as received, before any JSON parsing.

export const TIMESTAMP_HEADER = 'X-Tillpoint-Timestamp';
export const NONCE_HEADER = 'X-Tillpoint-Nonce';
export const SIGNATURE_HEADER = 'X-Tillpoint-Signature';

export type SignedHeaders = {
  'X-Tillpoint-Timestamp': string;
  'X-Tillpoint-Nonce': string;
  'X-Tillpoint-Signature': string;
};

/** Why a signed call was refused. A closed set: it is stored, counted and returned in details. */
export type RejectReason =
  | 'missing_headers'
  | 'malformed_headers'
  | 'stale_timestamp'
  | 'future_timestamp'
  | 'bad_signature'
  | 'replayed_nonce';

/** Node's IncomingHttpHeaders, a plain record, or a fetch `Headers`. Lookup is case-insensitive. */
export type HeaderSource =
  | Record<string, string | string[] | number | undefined>
  | { get(name: string): string | null };

type Body = string | Uint8Array;

const TIMESTAMP_RE = /^\d{1,12}$/;
const SIGNATURE_RE = /^v1=([0-9a-f]{64})$/;
// 16 bytes is 32 hex characters or 22 base64url characters; the upper bound keeps the
// nonce table's keys small.
const HEX_NONCE_RE = /^[0-9a-fA-F]{32,128}$/;
const B64URL_NONCE_RE = /^[A-Za-z0-9_-]{22,128}$/;

function isValidNonce(n: string): boolean {
  // A hex-looking nonce must carry 16 bytes as hex; anything else is read as base64url.
  if (/^[0-9a-fA-F]+$/.test(n)) return HEX_NONCE_RE.test(n);
  return B64URL_NONCE_RE.test(n);
}

function hmac(secret: string, timestamp: string, nonce: string, rawBody: Body): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.${nonce}.`).update(rawBody).digest();
}

export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

/** Headers to send with `rawBody`. Send the body byte-for-byte as signed. */
export function signRequest(secret: string, rawBody: Body, now: Date = new Date()): SignedHeaders {
  if (!secret) throw new Error('signRequest: empty secret');
  const timestamp = String(Math.floor(now.getTime() / 1000));
  const nonce = newNonce();
  const sig = hmac(secret, timestamp, nonce, rawBody).toString('hex');
  return {
    'X-Tillpoint-Timestamp': timestamp,
    'X-Tillpoint-Nonce': nonce,
    'X-Tillpoint-Signature': `v1=${sig}`,
  };
}

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(n: string): string | null }).get(name) ?? undefined;
  }
  const rec = headers as Record<string, string | string[] | number | undefined>;
  const lower = name.toLowerCase();
  let v = rec[lower];
  if (v === undefined) {
    for (const k of Object.keys(rec)) if (k.toLowerCase() === lower) v = rec[k];
  }
  // A repeated header is ambiguous: refuse it rather than guess which copy was signed.
  if (Array.isArray(v)) return v.length === 1 ? v[0] : '';
  return v === undefined ? undefined : String(v);
}

export interface SignatureCheckInput {
  /** Accepted secrets: the current one first, then the previous one during a rotation overlap. */
  secrets: readonly string[];
  headers: HeaderSource;
  rawBody: Body;
  maxAgeSeconds: number;
  now?: Date;
}

export type SignatureCheck =
  | { ok: true; timestamp: number; nonce: string; secretIndex: number }
  | { ok: false; reason: RejectReason };

/**
 * Everything except replay protection: headers present and well-formed, timestamp inside the
 * window, signature valid under one of `secrets`. Pure; callers remember the nonce themselves
 * (`verifySignedRequest` in the database, the bank simulator in memory).
 */
export function checkSignature(input: SignatureCheckInput): SignatureCheck {
  const secrets = input.secrets.filter((s) => typeof s === 'string' && s.length > 0);
  // A scope with no secret is a deployment mistake, not a bad request: fail loudly.
  if (secrets.length === 0) throw new Error('checkSignature: no secret configured');
  const ts = header(input.headers, TIMESTAMP_HEADER);
  const nonce = header(input.headers, NONCE_HEADER);
  const sig = header(input.headers, SIGNATURE_HEADER);
  if (ts === undefined || nonce === undefined || sig === undefined) return { ok: false, reason: 'missing_headers' };
  const m = SIGNATURE_RE.exec(sig);
  if (!TIMESTAMP_RE.test(ts) || !isValidNonce(nonce) || !m) return { ok: false, reason: 'malformed_headers' };

  const nowSec = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const t = Number(ts);
  if (t < nowSec - input.maxAgeSeconds) return { ok: false, reason: 'stale_timestamp' };
  if (t > nowSec + input.maxAgeSeconds) return { ok: false, reason: 'future_timestamp' };

  const given = Buffer.from(m[1], 'hex');
  let matched = -1;
  // Every secret is tried (no early exit), so timing says nothing about which one matched.
  secrets.forEach((secret, i) => {
    const expected = hmac(secret, ts, nonce, input.rawBody);
    if (timingSafeEqual(expected, given) && matched < 0) matched = i;
  });
  if (matched < 0) return { ok: false, reason: 'bad_signature' };
  return { ok: true, timestamp: t, nonce, secretIndex: matched };
}

export interface VerifySignedRequestInput extends SignatureCheckInput {
  /** Who the caller is, e.g. "bank:SIMBANK". Nonces are unique per scope. */
  scope: string;
  /**
   * The database itself, not a transaction: a refused call's record must survive the
   * rollback that the thrown error would cause.
   */
  db: Queryable;
  remoteAddr?: string;
  metrics?: { callbacksRejected: { inc(labels: { reason: string }): void } };
}

async function reject(input: RefusalInput, reason: RejectReason | 'malformed_body'): Promise<never> {
  input.metrics?.callbacksRejected.inc({ reason });
  try {
    await input.db.query('INSERT INTO platform.rejected_calls (scope, reason, remote_addr) VALUES ($1, $2, $3)', [
      input.scope,
      reason,
      input.remoteAddr ?? null,
    ]);
  } catch {
    // Recording is for review; failing to record must not turn a refusal into a 500.
  }
  // Messages and details name the reason only: never the secret, the signature or the body.
  if (reason === 'replayed_nonce') {
    throw new AppError('replayed_request', 'This signed request has already been received', { reason });
  }
  if (reason === 'malformed_body') {
    throw new AppError('malformed_json', 'The signed request body could not be read', { reason });
  }
  throw new AppError('invalid_signature', 'The request signature could not be verified', { reason });
}

/** Where a refused call is recorded and counted. */
export type RefusalInput = Pick<VerifySignedRequestInput, 'scope' | 'db' | 'remoteAddr' | 'metrics'>;

/**
 * For verifiers with a signature scheme of their own (bank connectors, src/modules/banks): records
 * the refusal in platform.rejected_calls, counts it, and throws the same AppError as
 * verifySignedRequest would (`malformed_body`: 400 malformed_json).
 */
export function refuseSignedRequest(input: RefusalInput, reason: RejectReason | 'malformed_body'): Promise<never> {
  return reject(input, reason);
}

/**
 * Remembers a verified call's nonce (or other single-use key) in scope; false when it was already
 * seen: a replay. Store only after the signature holds, so nobody can burn nonces for others.
 */
export async function rememberNonce(db: Queryable, scope: string, nonce: string, now: Date): Promise<boolean> {
  const ins = await db.query(
    'INSERT INTO platform.used_nonces (scope, nonce, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
    [scope, nonce, now.toISOString()],
  );
  return ins.rowCount !== 0;
}

/**
 * rememberNonce() as part of a caller's own statement, so a call's nonce commits with its effect
 * or not at all: an INSERT for a data-modifying CTE, one row per row of `from` (a CTE name),
 * RETURNING 1 when the nonce was new and nothing when it was seen already. `scope`, `nonce` and
 * `at` are SQL expressions (parameters).
 */
export function rememberNonceSql(scope: string, nonce: string, at: string, from: string): string {
  return `INSERT INTO platform.used_nonces (scope, nonce, seen_at) SELECT ${scope}::text, ${nonce}::text, ${at}::timestamptz FROM ${from}
       ON CONFLICT DO NOTHING RETURNING 1`;
}

/**
 * Verifies a signed inbound call and records its nonce, so it is accepted once only.
 * Throws AppError('invalid_signature') or AppError('replayed_request'); every refusal is
 * stored in platform.rejected_calls.
 */
export async function verifySignedRequest(
  input: VerifySignedRequestInput,
): Promise<{ timestamp: number; nonce: string; secretIndex: number }> {
  const now = input.now ?? new Date();
  const r = checkSignature({ ...input, now });
  if (!r.ok) return reject(input, r.reason);
  // The nonce is stored only after the signature holds, so nobody can burn nonces for others.
  const ins = await input.db.query(
    'INSERT INTO platform.used_nonces (scope, nonce, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
    [input.scope, r.nonce, now.toISOString()],
  );
  if (ins.rowCount === 0) return reject(input, 'replayed_nonce');
  return { timestamp: r.timestamp, nonce: r.nonce, secretIndex: r.secretIndex };
}

/**
 * Forgets nonces seen more than `olderThanSeconds` ago. A request is accepted while its
 * timestamp is within ±maxAge of now, a window 2×maxAge wide, so keep nonces for at least
 * 2×maxAgeSeconds or a replay inside the window would slip through.
 */
export async function pruneNonces(db: Queryable, olderThanSeconds: number, now: Date = new Date()): Promise<number> {
  const cutoff = new Date(now.getTime() - olderThanSeconds * 1000);
  const r = await db.query('DELETE FROM platform.used_nonces WHERE seen_at < $1', [cutoff.toISOString()]);
  return r.rowCount;
}
