import { resolve } from 'node:path';
import { ConfigError, type Mode } from './config.ts';

// Settings of the key hierarchy (the vault module, src/modules/vault/README.md): which key
// manager holds the key-encrypting key, how long processes cache data keys, and the cryptoperiod
// of each key type (PCI DSS 3.6.1, 3.7.4).

export interface KeysConfig {
  provider: 'local' | 'aws-kms' | 'vault-transit';
  /** Local keyring file (development default: <data dir>/keyring.json, mode 0600). */
  keyringFile: string;
  /** Name of the secret holding the keyring JSON (required in production with the local provider). */
  keyringSecret?: string;
  aws?: { keyId: string; region: string; endpoint?: string };
  vault?: { address: string; keyName: string; mount: string; namespace?: string; tokenSecret: string };
  /** How long a process trusts its cached view of the data keys; rotation waits twice this. */
  cacheTtlMs: number;
  rewrapBatchSize: number;
  /** Days an active key version may be used before the cryptoperiod alarm fires. */
  cryptoperiodDays: { kek: number; aead: number; hmac: number };
}

type Env = Record<string, string | undefined>;

function num(env: Env, name: string, dflt: number, min: number, max: number, integer = true): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw new ConfigError(
      name,
      `must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}, got "${raw}"`,
    );
  }
  return v;
}

export function parseKeysConfig(env: Env, mode: Mode, dataDir: string): KeysConfig {
  const provider = (env.KMS_PROVIDER || 'local') as KeysConfig['provider'];
  if (!['local', 'aws-kms', 'vault-transit'].includes(provider)) {
    throw new ConfigError('KMS_PROVIDER', `must be local, aws-kms or vault-transit, got "${provider}"`);
  }
  const cfg: KeysConfig = {
    provider,
    keyringFile: resolve(env.KEYRING_FILE || resolve(dataDir, 'keyring.json')),
    keyringSecret: env.KEYRING_SECRET || undefined,
    cacheTtlMs: Math.round(num(env, 'KEY_CACHE_SECONDS', 60, 0, 3600, false) * 1000),
    rewrapBatchSize: num(env, 'KEY_REWRAP_BATCH_SIZE', 500, 1, 10_000),
    cryptoperiodDays: {
      kek: num(env, 'KEY_CRYPTOPERIOD_DAYS_KEK', 365, 1, 3650),
      aead: num(env, 'KEY_CRYPTOPERIOD_DAYS_DEK', 365, 1, 3650),
      hmac: num(env, 'KEY_CRYPTOPERIOD_DAYS_HMAC', 730, 1, 3650),
    },
  };
  if (provider === 'aws-kms') {
    const keyId = env.AWS_KMS_KEY_ID;
    const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
    if (!keyId)
      throw new ConfigError('AWS_KMS_KEY_ID', 'required with KMS_PROVIDER=aws-kms (key id, key ARN or alias)');
    if (!region) throw new ConfigError('AWS_REGION', 'required with KMS_PROVIDER=aws-kms');
    cfg.aws = { keyId, region, endpoint: env.AWS_KMS_ENDPOINT || undefined };
  }
  if (provider === 'vault-transit') {
    const address = env.VAULT_ADDR;
    if (!address) throw new ConfigError('VAULT_ADDR', 'required with KMS_PROVIDER=vault-transit');
    let u: URL;
    try {
      u = new URL(address);
    } catch {
      throw new ConfigError('VAULT_ADDR', 'is not a URL');
    }
    if (mode === 'production' && u.protocol !== 'https:')
      throw new ConfigError('VAULT_ADDR', 'must be https:// in production');
    cfg.vault = {
      address,
      keyName: env.VAULT_TRANSIT_KEY || 'tillpoint',
      mount: env.VAULT_TRANSIT_MOUNT || 'transit',
      namespace: env.VAULT_NAMESPACE || undefined,
      tokenSecret: env.VAULT_TOKEN_SECRET || 'VAULT_TOKEN',
    };
  }
  return cfg;
}
