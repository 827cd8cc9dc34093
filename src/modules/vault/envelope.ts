import { createCipheriv, createDecipheriv, createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { VaultError } from './errors.ts';

// The on-disk form of an encrypted field and of a blind index. Pure functions over keys handed
// in; which key to use is the key store's business. Keys are `KeyObject`s: Node 24 takes a raw
// Buffer key through two thrown-and-caught TypeErrors per call (about 10 µs each time).
//
//   ciphertext   tp1.<purpose>.<key version>.<base64url(iv 12 | ciphertext | GCM tag 16)>
//   blind index  v<key version>.<base64url(HMAC-SHA-256(key, normalized value))>
//
// The AES-GCM associated data binds the ciphertext to its header and to where it is stored:
// JSON ["tp1", purpose, version, table, column, row id]. A value copied to another row, another
// column, or given another version in its header fails authentication.

export const CIPHERTEXT_PREFIX = 'tp1';
const PURPOSE_RE = /^[a-z][a-z0-9_]{0,39}$/;
const CT_RE = /^tp1\.([a-z][a-z0-9_]{0,39})\.([1-9]\d{0,8})\.([A-Za-z0-9_-]+)$/;
const BIDX_RE = /^v([1-9]\d{0,8})\.([A-Za-z0-9_-]{43})$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface Binding {
  table: string;
  column: string;
  rowId: string;
}

export interface ParsedCiphertext {
  purpose: string;
  version: number;
  payload: Buffer;
}

export const isPurpose = (p: string) => PURPOSE_RE.test(p);

const where = (b: Binding) => `${b.table}.${b.column} row ${b.rowId}`;

export function parseCiphertext(ciphertext: string, b: Binding): ParsedCiphertext {
  const m = typeof ciphertext === 'string' ? CT_RE.exec(ciphertext) : null;
  if (!m)
    throw new VaultError(
      'malformed_ciphertext',
      `${where(b)}: not a Tillpoint ciphertext (tp1.<purpose>.<version>.<payload>)`,
    );
  const payload = Buffer.from(m[3], 'base64url');
  if (payload.length < IV_BYTES + TAG_BYTES)
    throw new VaultError('malformed_ciphertext', `${where(b)}: ciphertext is truncated`);
  return { purpose: m[1], version: Number(m[2]), payload };
}

/** The version a stored ciphertext was written with, or undefined when it is not one of ours. */
export function ciphertextVersion(ciphertext: string | null | undefined): number | undefined {
  const m = ciphertext ? CT_RE.exec(ciphertext) : null;
  return m ? Number(m[2]) : undefined;
}

function aad(purpose: string, version: number, b: Binding): Buffer {
  return Buffer.from(JSON.stringify([CIPHERTEXT_PREFIX, purpose, version, b.table, b.column, b.rowId]), 'utf8');
}

export function sealValue(key: KeyObject, purpose: string, version: number, b: Binding, plaintext: string): string {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(purpose, version, b));
  const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return `${CIPHERTEXT_PREFIX}.${purpose}.${version}.${Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url')}`;
}

export function openValue(key: KeyObject, parsed: ParsedCiphertext, b: Binding): string {
  const { payload } = parsed;
  try {
    const d = createDecipheriv('aes-256-gcm', key, payload.subarray(0, IV_BYTES));
    d.setAAD(aad(parsed.purpose, parsed.version, b));
    d.setAuthTag(payload.subarray(payload.length - TAG_BYTES));
    return Buffer.concat([d.update(payload.subarray(IV_BYTES, payload.length - TAG_BYTES)), d.final()]).toString(
      'utf8',
    );
  } catch {
    throw new VaultError(
      'decrypt_failed',
      `${where(b)}: ciphertext failed authentication under ${parsed.purpose} key version ${parsed.version} (altered, truncated, or moved from another row)`,
    );
  }
}

export function blindIndexValue(key: KeyObject, version: number, normalized: string): string {
  return `v${version}.${createHmac('sha256', key).update(normalized, 'utf8').digest('base64url')}`;
}

export function blindIndexVersion(bidx: string | null | undefined): number | undefined {
  const m = bidx ? BIDX_RE.exec(bidx) : null;
  return m ? Number(m[1]) : undefined;
}
