import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';

// Sandbox keys for pspbank against the bank simulator (development and tests only; the
// connector refuses `sandbox_keys_dir` in production). A real bank and merchant exchange public
// keys at onboarding; here both sides are ours, so one directory holds both pairs, made once.

export interface SandboxKeys {
  merchantPrivate: string;
  merchantPublic: string;
  bankPrivate: string;
  bankPublic: string;
}

const FILES = {
  merchantPrivate: 'merchant.key.pem',
  merchantPublic: 'merchant.pub.pem',
  bankPrivate: 'bank.key.pem',
  bankPublic: 'bank.pub.pem',
} as const;

function pair() {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** The sandbox keys in `dir`, created (0600 private keys) when missing. */
export function sandboxKeys(dir: string): SandboxKeys {
  const path = (f: string) => join(dir, f);
  if (!Object.values(FILES).every((f) => existsSync(path(f)))) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const m = pair();
    const b = pair();
    writeFileSync(path(FILES.merchantPrivate), m.privateKey, { mode: 0o600 });
    writeFileSync(path(FILES.merchantPublic), m.publicKey);
    writeFileSync(path(FILES.bankPrivate), b.privateKey, { mode: 0o600 });
    writeFileSync(path(FILES.bankPublic), b.publicKey);
  }
  return {
    merchantPrivate: readFileSync(path(FILES.merchantPrivate), 'utf8'),
    merchantPublic: readFileSync(path(FILES.merchantPublic), 'utf8'),
    bankPrivate: readFileSync(path(FILES.bankPrivate), 'utf8'),
    bankPublic: readFileSync(path(FILES.bankPublic), 'utf8'),
  };
}
