import type { FastifyInstance } from 'fastify';
import { AppError } from '../../platform/errors.ts';

// PCI DSS 3.3.1: sensitive authentication data (the card verification code, a PIN or PIN block,
// full track data) is never stored after authorization, even encrypted. Tillpoint never needs
// it, so it refuses it at the door: any request that carries it is answered 400
// `sensitive_data_refused` before validation, idempotency or a handler sees it, and the answer
// names only where it was found, never what.

// Field names (lower case, letters and digits only) that only ever hold SAD.
const SAD_FIELD_NAMES = new Set([
  'cvv',
  'cvv2',
  'cvc',
  'cvc2',
  'cav2',
  'cid2',
  'cvn',
  'cvd',
  'icvv',
  'csc',
  'securitycode',
  'cardsecuritycode',
  'cardverificationvalue',
  'cardverificationcode',
  'cardcode',
  'pin',
  'pinblock',
  'encryptedpin',
  'pinblk',
  'epb',
  'pindata',
  'upipin',
  'mpin',
  'track',
  'track1',
  'track2',
  'track3',
  'trackdata',
  'track1data',
  'track2data',
  'track2equivalent',
  'track2equivalentdata',
  'magstripe',
  'magstripedata',
  'magneticstripe',
  'magneticstripedata',
  'swipedata',
]);

// Track 1 (IATA, format B): %B<PAN>^<NAME>^<YYMM><service code>…   Track 2 (ABA): ;<PAN>=<YYMM><service code>…
// The PAN must stand on its own (not inside a longer alphanumeric run such as a hex transaction
// reference, where "…123456789012D1234567…" occurs by chance) and pass the Luhn check.
const TRACK1_RE = /(?<![0-9A-Za-z])%?B(\d{12,19})\^[^^]{0,26}\^\d{7}/g;
const TRACK2_RE = /(?<![0-9A-Za-z])(\d{12,19})[=D]\d{7}/g;

function luhnValid(pan: string): boolean {
  let sum = 0;
  for (let i = 0; i < pan.length; i++) {
    let d = pan.charCodeAt(pan.length - 1 - i) - 48;
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

const looksLikeTrackData = (s: string) =>
  [TRACK1_RE, TRACK2_RE].some((re) => [...s.matchAll(re)].some((m) => luhnValid(m[1])));

const MAX_DEPTH = 32;

const normalizeName = (k: string) => k.toLowerCase().replace(/[^a-z0-9]/g, '');

/** Where in `value` sensitive authentication data sits (a path like "card.cvv"), or undefined. */
export function findSensitiveAuthData(value: unknown, path = '', depth = 0): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (typeof value === 'string') return looksLikeTrackData(value) ? path || '(value)' : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findSensitiveAuthData(value[i], `${path}[${i}]`, depth + 1);
      if (hit) return hit;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      // A SAD-named field is refused even when empty or null: the client is built to send it.
      if (SAD_FIELD_NAMES.has(normalizeName(k))) return p;
      const hit = findSensitiveAuthData(v, p, depth + 1);
      if (hit) return hit;
    }
  }
  return undefined;
}

export function sensitiveDataError(where: string): AppError {
  return new AppError(
    'sensitive_data_refused',
    'Sensitive authentication data (card verification code, PIN or PIN block, track data) is never accepted; remove it and send the request again',
    [{ field: where, problem: 'sensitive authentication data is refused (PCI DSS 3.3.1)' }],
  );
}

/** Throws AppError('sensitive_data_refused') when `value` carries SAD. For non-HTTP inputs (terminal messages). */
export function assertNoSensitiveAuthData(value: unknown, label = 'message'): void {
  const where = findSensitiveAuthData(value);
  if (where) throw sensitiveDataError(`${label}.${where}`);
}

/**
 * Registers the check on every route: body and query string. Register it before the routes.
 * The raw body of a refused request is dropped from the request object at once.
 */
export function registerSensitiveDataGuard(app: FastifyInstance, onRefused?: () => void) {
  app.addHook('preValidation', async (req) => {
    const inBody = findSensitiveAuthData(req.body, 'body');
    const where = inBody ?? findSensitiveAuthData(req.query, 'query');
    if (!where) return;
    onRefused?.();
    (req as { rawBody?: string }).rawBody = undefined;
    (req as { body?: unknown }).body = undefined;
    throw sensitiveDataError(where);
  });
}
