import { awsCredentials } from '../../../platform/aws.ts';
import { ConfigError, type Mode } from '../../../platform/config.ts';
import type { KeysConfig } from '../vault.settings.ts';
import type { SecretStore } from '../../../platform/secrets.ts';
import { createAwsKmsKeyManager } from './awsKms.ts';
import { createLocalKeyManager } from './local.ts';
import type { KeyManager } from './types.ts';
import { createVaultTransitKeyManager } from './vaultTransit.ts';

export * from './types.ts';
export { createLocalKeyManager, newKeyringJson, addKeyringVersion, KEYRING_FORMAT } from './local.ts';
export { createAwsKmsKeyManager } from './awsKms.ts';
export { createVaultTransitKeyManager } from './vaultTransit.ts';

/**
 * The key manager the configuration names. In production the local provider takes its keyring
 * only from a secret (KEYRING_SECRET): a keyring file beside the database would keep the
 * key-encrypting key with the data it protects (PCI DSS 3.6.1), and no key is ever made up.
 */
export async function createKeyManagerFromConfig(
  cfg: KeysConfig,
  o: { mode: Mode; secrets: SecretStore; env?: Record<string, string | undefined> },
): Promise<KeyManager> {
  switch (cfg.provider) {
    case 'local': {
      if (cfg.keyringSecret) {
        const name = cfg.keyringSecret;
        // Read straight from the source each time: a KEK version added to the secret is found at once.
        return createLocalKeyManager({
          kind: 'secret',
          name,
          load: async () => {
            const v = await o.secrets.provider.get(name);
            if (!v) throw new ConfigError('KEYRING_SECRET', `secret ${name} is not set in ${o.secrets.provider.kind}`);
            return v.current;
          },
        });
      }
      if (o.mode === 'production') {
        throw new ConfigError(
          'KEYRING_SECRET',
          'required in production with KMS_PROVIDER=local: the name of the secret holding the keyring (make one with "tillpoint keys keyring-new"); or use KMS_PROVIDER=aws-kms or vault-transit',
        );
      }
      return createLocalKeyManager({ kind: 'file', path: cfg.keyringFile, createIfMissing: true });
    }
    case 'aws-kms':
      return createAwsKmsKeyManager({ ...cfg.aws!, credentials: awsCredentials(o.env) });
    case 'vault-transit': {
      const token = await o.secrets.watch(cfg.vault!.tokenSecret, 'VAULT_TOKEN_SECRET');
      return createVaultTransitKeyManager({ ...cfg.vault!, token: () => token.current() });
    }
  }
}
