import { createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppError } from '../../platform/errors.ts';
import { ConfigError, type Mode } from '../../platform/config.ts';

// Customers are known to the rewards tables only by a keyed hash of how the till or the bank
// identified them: HMAC-SHA-256(key, "vpa:<lower-cased vpa>") or (key, "phone:+91<10 digits>").
// The key comes from configuration (REWARDS_CUSTOMER_KEY); without it, a hash cannot be linked
// back to a VPA or phone even by someone holding a list of candidates.

/** How a request names a customer: a UPI address or an Indian mobile number (one of them). */
export interface CustomerIdentity {
  vpa?: string;
  phone?: string;
}

const PHONE_RE = /^(?:\+?91|0)?([6-9][0-9]{9})$/;

/** "+91 98765-43210", "09876543210", "9876543210" -> "+919876543210"; anything else is refused. */
export function normalizePhone(raw: string): string {
  const m = PHONE_RE.exec(raw.replace(/[\s-]/g, ''));
  if (!m)
    throw new AppError('validation_failed', 'phone must be an Indian mobile number', [
      { field: 'phone', problem: 'must be a 10-digit Indian mobile number, optionally with +91' },
    ]);
  return `+91${m[1]}`;
}

/** The canonical text that is hashed. Exactly one of vpa and phone must be given. */
export function canonicalCustomer(id: CustomerIdentity, vpaPattern: RegExp): string {
  const hasVpa = typeof id.vpa === 'string' && id.vpa !== '';
  const hasPhone = typeof id.phone === 'string' && id.phone !== '';
  if (hasVpa === hasPhone) {
    throw new AppError('validation_failed', 'Name the customer by exactly one of vpa or phone', [
      { field: 'vpa', problem: 'give exactly one of vpa or phone' },
    ]);
  }
  if (hasVpa) {
    if (id.vpa!.length > 255 || !vpaPattern.test(id.vpa!))
      throw new AppError('invalid_vpa', 'vpa is not a valid UPI address');
    return `vpa:${id.vpa!.toLowerCase()}`;
  }
  return `phone:${normalizePhone(id.phone!)}`;
}

export type CustomerHasher = (canonical: string) => Buffer;

export function createCustomerHasher(key: Buffer): CustomerHasher {
  if (key.length < 32) throw new Error('the rewards customer key must be at least 32 bytes');
  // A KeyObject: Node 24 takes a raw Buffer key through two thrown TypeErrors per HMAC.
  const hmacKey = createSecretKey(key);
  return (canonical) => createHmac('sha256', hmacKey).update(canonical, 'utf8').digest();
}

/**
 * The HMAC key: REWARDS_CUSTOMER_KEY when set, and required in production (the process does not
 * start without it); otherwise a random key kept in <data dir>/rewards-customer.key (mode 0600),
 * created on first use, so a development install never shares a key with another.
 */
export function loadCustomerKey(configured: Buffer | undefined, dataDir: string, mode: Mode): Buffer {
  if (configured) return configured;
  if (mode === 'production') {
    throw new ConfigError('REWARDS_CUSTOMER_KEY', 'required in production (32 or more random bytes, hex or base64)');
  }
  const file = join(dataDir, 'rewards-customer.key');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    try {
      writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e; // another process made it first
    }
  }
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length < 32) throw new Error(`${file} does not hold a 32-byte key`);
  return key;
}
