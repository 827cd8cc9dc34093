import { AwsError, createAwsJsonClient, type AwsCredentials } from '../../../platform/aws.ts';
import { KmsError, type KekInfo, type KeyContext, type KeyManager } from './types.ts';

// AWS KMS as the key-encrypting key: GenerateDataKey, Decrypt and ReEncrypt over AWS's JSON 1.1
// protocol, SigV4-signed (platform/aws.ts). Every call carries the data key's context as the KMS
// encryption context, so CloudTrail shows which purpose and version a call was for, and a wrapped
// key replayed under another context is refused by KMS itself.
//
// Wrapped form: "aws1:<CiphertextBlob, base64>".

export interface AwsKmsOptions {
  /** Key id, key ARN, alias name ("alias/tillpoint") or alias ARN. */
  keyId: string;
  region: string;
  endpoint?: string;
  credentials: () => AwsCredentials | Promise<AwsCredentials>;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface GenerateDataKeyResponse {
  CiphertextBlob: string;
  Plaintext: string;
  KeyId: string;
  KeyMaterialId?: string;
}
interface DecryptResponse {
  Plaintext: string;
  KeyId: string;
}
interface ReEncryptResponse {
  CiphertextBlob: string;
  KeyId: string;
  SourceKeyId: string;
}
interface DescribeKeyResponse {
  KeyMetadata: { Arn: string; KeyId: string; CreationDate: number; KeyState: string; Enabled: boolean };
}
interface ListKeyRotationsResponse {
  Rotations?: { KeyId: string; RotationDate: number; RotationType: string }[];
  NextMarker?: string;
  Truncated?: boolean;
}

const PREFIX = 'aws1:';
// Errors worth retrying: throttling and KMS-side trouble. Everything else is a refusal.
const RETRYABLE = new Set([
  'ThrottlingException',
  'KMSInternalException',
  'DependencyTimeoutException',
  'Timeout',
  'NetworkError',
  'UnreadableResponse',
]);

export function createAwsKmsKeyManager(o: AwsKmsOptions): KeyManager {
  const call = createAwsJsonClient({
    service: 'kms',
    targetPrefix: 'TrentService',
    region: o.region,
    endpoint: o.endpoint,
    credentials: o.credentials,
    timeoutMs: o.timeoutMs,
    fetch: o.fetch,
  });
  async function kms<T>(operation: string, body: unknown): Promise<T> {
    try {
      return await call<T>(operation, body);
    } catch (e) {
      if (e instanceof AwsError) throw new KmsError('aws-kms', operation, e.type, RETRYABLE.has(e.type));
      throw new KmsError('aws-kms', operation, (e as Error).message, false);
    }
  }
  const blob = (wrapped: string) => {
    if (!wrapped.startsWith(PREFIX) || wrapped.length <= PREFIX.length)
      throw new KmsError('aws-kms', 'Decrypt', 'not an AWS KMS wrapped key', false);
    return wrapped.slice(PREFIX.length);
  };
  const ref = (r: { KeyId: string; KeyMaterialId?: string }) =>
    `aws-kms:${r.KeyId}${r.KeyMaterialId ? `#${r.KeyMaterialId.slice(0, 16)}` : ''}`;

  return {
    provider: 'aws-kms',
    async generateDataKey(context) {
      const r = await kms<GenerateDataKeyResponse>('GenerateDataKey', {
        KeyId: o.keyId,
        KeySpec: 'AES_256',
        EncryptionContext: context,
      });
      const plaintext = Buffer.from(r.Plaintext ?? '', 'base64');
      if (plaintext.length !== 32 || !r.CiphertextBlob)
        throw new KmsError('aws-kms', 'GenerateDataKey', 'unexpected response', false);
      return { plaintext, wrapped: PREFIX + r.CiphertextBlob, kekRef: ref(r) };
    },
    async unwrap(wrapped: string, context: KeyContext) {
      // KeyId pins the key: a blob made under any other KMS key is refused, not decrypted.
      const r = await kms<DecryptResponse>('Decrypt', {
        CiphertextBlob: blob(wrapped),
        EncryptionContext: context,
        KeyId: o.keyId,
      });
      const plaintext = Buffer.from(r.Plaintext ?? '', 'base64');
      if (plaintext.length !== 32) throw new KmsError('aws-kms', 'Decrypt', 'unexpected response', false);
      return plaintext;
    },
    async rewrap(wrapped, context) {
      // Decrypted and encrypted again inside KMS: the data key never comes out.
      const r = await kms<ReEncryptResponse>('ReEncrypt', {
        CiphertextBlob: blob(wrapped),
        SourceEncryptionContext: context,
        DestinationKeyId: o.keyId,
        DestinationEncryptionContext: context,
      });
      if (!r.CiphertextBlob) throw new KmsError('aws-kms', 'ReEncrypt', 'unexpected response', false);
      return { wrapped: PREFIX + r.CiphertextBlob, kekRef: ref(r) };
    },
    async rotate() {
      // New key material for the same KMS key; KMS keeps the old material for decryption.
      await kms('RotateKeyOnDemand', { KeyId: o.keyId });
      return this.describe();
    },
    async retireOldVersions() {
      // KMS never deletes earlier material of a key (by design); nothing to do here. To retire a
      // whole KMS key, point AWS_KMS_KEY_ID at a new key, rewrap, then disable the old key in AWS.
      return 0;
    },
    async describe(): Promise<KekInfo> {
      const d = await kms<DescribeKeyResponse>('DescribeKey', { KeyId: o.keyId });
      let latest = new Date(d.KeyMetadata.CreationDate * 1000);
      try {
        const rot = await kms<ListKeyRotationsResponse>('ListKeyRotations', { KeyId: d.KeyMetadata.KeyId });
        for (const r of rot.Rotations ?? [])
          if (r.RotationDate * 1000 > latest.getTime()) latest = new Date(r.RotationDate * 1000);
      } catch {
        // Older key policies may not allow kms:ListKeyRotations: the key's creation date stands in.
      }
      return { provider: 'aws-kms', kekRef: `aws-kms:${d.KeyMetadata.Arn}`, createdAt: latest };
    },
  };
}
