import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// TOTP, RFC 6238 (over HOTP, RFC 4226) with node:crypto. Operators' authenticator apps use the
// defaults (SHA-1, 6 digits, 30-second steps); the others are here for the RFC's test vectors.

export type TotpAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface TotpOptions {
  algorithm?: TotpAlgorithm;
  digits?: number;
  periodSeconds?: number;
}

const DEFAULTS = { algorithm: 'sha1' as TotpAlgorithm, digits: 6, periodSeconds: 30 };

/** HOTP (RFC 4226 5.3): dynamic truncation of HMAC(K, counter). */
export function hotp(secret: Uint8Array, counter: number, digits = 6, algorithm: TotpAlgorithm = 'sha1'): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, secret).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(bin % 10 ** digits).padStart(digits, '0');
}

export const timeStep = (at: Date, periodSeconds = DEFAULTS.periodSeconds) =>
  Math.floor(at.getTime() / 1000 / periodSeconds);

export function totp(secret: Uint8Array, at: Date, opts: TotpOptions = {}): string {
  const o = { ...DEFAULTS, ...opts };
  return hotp(secret, timeStep(at, o.periodSeconds), o.digits, o.algorithm);
}

/**
 * The time step a code belongs to, looking one step either side of now (clock drift, a code
 * typed as it rolled over), or undefined. The caller refuses a step it has already accepted,
 * so a code works once (PCI DSS 8.5.1: resists replay).
 */
export function matchTotp(
  secret: Uint8Array,
  code: string,
  at: Date,
  opts: TotpOptions & { window?: number } = {},
): number | undefined {
  const o = { ...DEFAULTS, ...opts };
  if (!new RegExp(`^\\d{${o.digits}}$`).test(code)) return undefined;
  const now = timeStep(at, o.periodSeconds);
  let found: number | undefined;
  // Every candidate is compared, in constant time, so timing does not tell which step matched.
  for (let d = -(opts.window ?? 1); d <= (opts.window ?? 1); d++) {
    const expected = Buffer.from(hotp(secret, now + d, o.digits, o.algorithm));
    if (timingSafeEqual(expected, Buffer.from(code)) && found === undefined) found = now + d;
  }
  return found;
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32, no padding (what otpauth:// URIs carry). */
export function base32Encode(data: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

export function base32Decode(text: string): Buffer {
  const clean = text.toUpperCase().replace(/=+$/, '').replace(/\s/g, '');
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const c of clean) {
    const v = B32.indexOf(c);
    if (v < 0) throw new Error('not base32');
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** 160 random bits, the size RFC 4226 recommends for SHA-1. */
export const newTotpSecret = () => randomBytes(20);

/** The enrollment URI authenticator apps read (Key Uri Format). */
export function otpauthUri(secret: Uint8Array, account: string, issuer = 'Tillpoint'): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  return `otpauth://totp/${label}?secret=${base32Encode(secret)}&issuer=${encodeURIComponent(issuer)}&algorithm=SHA1&digits=6&period=30`;
}
