// The key-encrypting-key (KEK) side of envelope encryption. A KeyManager makes and unwraps data
// keys; it never sees a field value. Three implementations: a local keyring file (the embedded
// default), AWS KMS, and HashiCorp Vault's transit engine.

/**
 * What a wrapped data key is bound to. Sent as the KMS encryption context (AWS), the derivation
 * context (Vault transit) or the AES-GCM associated data (local keyring): a wrapped key copied
 * to another purpose or version does not unwrap.
 */
export type KeyContext = Readonly<Record<string, string>>;

export interface WrappedDataKey {
  /** The 32-byte key, to use in memory only. */
  plaintext: Buffer;
  /** What gets stored. Opaque; its format belongs to the provider. */
  wrapped: string;
  /** Which KEK (and version, where the provider exposes one) wrapped it. */
  kekRef: string;
}

export interface KekInfo {
  provider: KeyManager['provider'];
  kekRef: string;
  /** When the current KEK version was created, if the provider says. */
  createdAt: Date | null;
  /** Versions that can still unwrap, where the provider exposes versions. */
  versions?: { version: number; createdAt: Date | null; usable: boolean }[];
}

export interface KeyManager {
  readonly provider: 'local' | 'aws-kms' | 'vault-transit';
  /** A fresh AES-256 data key, returned in plaintext and wrapped under the current KEK version. */
  generateDataKey(context: KeyContext): Promise<WrappedDataKey>;
  unwrap(wrapped: string, context: KeyContext): Promise<Buffer>;
  /** Re-wraps a data key under the current KEK version; where the KMS can, without the plaintext leaving it. */
  rewrap(wrapped: string, context: KeyContext): Promise<{ wrapped: string; kekRef: string }>;
  /** Makes a new KEK version current. Providers that rotate by themselves say so with an error. */
  rotate(): Promise<KekInfo>;
  /** Stops every KEK version but the current one from unwrapping. Call only after every data key was rewrapped. */
  retireOldVersions(): Promise<number>;
  describe(): Promise<KekInfo>;
}

/** KMS failures. Messages name the operation and the provider's error type, never key material. */
export class KmsError extends Error {
  constructor(
    readonly provider: string,
    readonly operation: string,
    readonly reason: string,
    readonly retryable: boolean,
  ) {
    super(`${provider} ${operation} failed: ${reason}`);
    this.name = 'KmsError';
  }
}

/** Canonical text of a context, for providers that take bytes (sorted keys, length-prefixed). */
export function contextBytes(context: KeyContext): Buffer {
  return Buffer.from(
    JSON.stringify(
      Object.keys(context)
        .sort()
        .map((k) => [k, context[k]]),
    ),
    'utf8',
  );
}
