import {
  createHash,
  createHmac,
  createPrivateKey,
  createSecretKey,
  createPublicKey,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, type Mode } from '../../platform/config.ts';

// Keys of the audit trail. One 32-byte secret seed gives:
//   - the Ed25519 key that signs tree heads (its public half is all an outsider needs), and
//   - the HMAC key that seals each record as it is written, so a row added or edited by plain
//     SQL is caught at once, before the worker has put it in a signed tree head.
// The seed never lives in the database: whoever can write the trail must not be able to sign it.
// Production takes it from AUDIT_SIGNING_KEY; development and tests keep one in the data dir.

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * A 32-byte secret from `value` (base64), or, outside production, from a file under the data
 * dir created on first use with mode 0600. In production a missing value stops the process.
 */
export function secretFromConfigOrFile(opts: { value?: string; setting: string; mode: Mode; file: string }): Buffer {
  if (opts.value) {
    const b = Buffer.from(opts.value, 'base64');
    if (b.length !== 32)
      throw new ConfigError(opts.setting, 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)');
    return b;
  }
  if (opts.mode === 'production')
    throw new ConfigError(opts.setting, 'is required in production (32 random bytes, base64)');
  if (existsSync(opts.file)) {
    const b = Buffer.from(readFileSync(opts.file, 'utf8').trim(), 'base64');
    if (b.length !== 32) throw new ConfigError(opts.setting, `the key file ${opts.file} does not hold 32 bytes`);
    return b;
  }
  mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
  const b = randomBytes(32);
  // 'wx': two processes starting together must not overwrite each other's key.
  try {
    writeFileSync(opts.file, b.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return secretFromConfigOrFile(opts);
    throw e;
  }
  chmodSync(opts.file, 0o600);
  return b;
}

export interface AuditKeys {
  /** Short id of the signing key: the first 16 hex digits of SHA-256 over its raw public key. */
  keyId: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
  sign(message: Uint8Array): Buffer;
  /** HMAC-SHA-256 of a record, written beside it. */
  mac(record: string): Buffer;
  /** Public keys trusted when checking heads: this one and any retired ones. keyId -> raw key. */
  trusted: Map<string, Buffer>;
}

export const keyIdOf = (rawPublicKey: Uint8Array) =>
  createHash('sha256').update(rawPublicKey).digest('hex').slice(0, 16);

export function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function verifySignature(rawPublicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return (
      rawPublicKey.length === 32 &&
      signature.length === 64 &&
      verify(null, message, publicKeyObject(rawPublicKey), signature)
    );
  } catch {
    return false;
  }
}

export function auditKeysFromSeed(seed: Buffer, retiredPublicKeys: readonly string[] = []): AuditKeys {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
  // A separate key for MACs, derived one-way, so the signing key itself is used for one thing.
  // A KeyObject: Node 24 takes a raw Buffer key through two thrown TypeErrors per HMAC.
  const macKey = createSecretKey(createHmac('sha256', seed).update('tillpoint/audit/record-mac/v1').digest());
  const trusted = new Map<string, Buffer>([[keyIdOf(publicKey), publicKey]]);
  for (const k of retiredPublicKeys) {
    const raw = Buffer.from(k, 'base64');
    if (raw.length !== 32)
      throw new ConfigError('AUDIT_TRUSTED_PUBLIC_KEYS', 'each key must be a raw 32-byte Ed25519 public key, base64');
    trusted.set(keyIdOf(raw), raw);
  }
  return {
    keyId: keyIdOf(publicKey),
    publicKey,
    sign: (message) => sign(null, message, priv),
    mac: (record) => createHmac('sha256', macKey).update(record, 'utf8').digest(),
    trusted,
  };
}

export function loadAuditKeys(opts: {
  mode: Mode;
  dataDir: string;
  signingKey?: string;
  trustedPublicKeys?: readonly string[];
}): AuditKeys {
  const seed = secretFromConfigOrFile({
    value: opts.signingKey,
    setting: 'AUDIT_SIGNING_KEY',
    mode: opts.mode,
    file: join(opts.dataDir, 'keys', 'audit-signing.key'),
  });
  return auditKeysFromSeed(seed, opts.trustedPublicKeys);
}
