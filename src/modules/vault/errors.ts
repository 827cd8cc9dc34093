// Failures of field encryption. They are loud on purpose: a value that does not decrypt was
// tampered with, truncated, moved from another row, or encrypted under a retired key, and
// carrying on would hand out wrong data or hide an attack.
//
// Messages name the field, the row and the key version. They never carry key material,
// plaintext or ciphertext bytes (vault.test.ts checks that for every failure).

export type VaultErrorCode =
  | 'malformed_ciphertext'
  | 'wrong_purpose'
  | 'decrypt_failed'
  | 'unknown_key_version'
  | 'key_retired'
  | 'kms_unavailable'
  | 'invalid_field';

export class VaultError extends Error {
  constructor(
    readonly code: VaultErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

export const isVaultError = (e: unknown): e is VaultError => e instanceof VaultError;
