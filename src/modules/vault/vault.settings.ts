import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { ConfigError, defineSettings, type Mode } from '../../platform/settings.ts';

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

const schema = Type.Object({
  KMS_PROVIDER: Type.Union([Type.Literal('local'), Type.Literal('aws-kms'), Type.Literal('vault-transit')], {
    default: 'local',
    description:
      'Where the key-encrypting key lives: `local` (a keyring file, or `KEYRING_SECRET` in production), `aws-kms`, or `vault-transit` (HashiCorp Vault).',
  }),
  KEYRING_FILE: Type.String({
    defaultText: '`<data dir>/keyring.json`',
    description: 'The local keyring file (mode 0600), development.',
  }),
  KEYRING_SECRET: Type.String({
    description: 'Name of the secret holding the keyring JSON (required in production with the local provider).',
  }),
  KEY_CACHE_SECONDS: Type.Number({
    minimum: 0,
    maximum: 3600,
    default: 60,
    description: 'How long a process trusts its cached data keys; a rotation waits twice this.',
  }),
  KEY_REWRAP_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 500,
    description: 'Rows re-encrypted per batch after a rotation.',
  }),
  KEY_CRYPTOPERIOD_DAYS_KEK: Type.Integer({
    minimum: 1,
    maximum: 3650,
    default: 365,
    description: 'Age of the key-encrypting key at which the cryptoperiod alarm fires (PCI DSS 3.6.1, 3.7.4).',
  }),
  KEY_CRYPTOPERIOD_DAYS_DEK: Type.Integer({
    minimum: 1,
    maximum: 3650,
    default: 365,
    description: 'The same for the field-encryption data keys.',
  }),
  KEY_CRYPTOPERIOD_DAYS_HMAC: Type.Integer({
    minimum: 1,
    maximum: 3650,
    default: 730,
    description: 'The same for the token HMAC keys.',
  }),
  AWS_KMS_KEY_ID: Type.String({
    description: 'Key id, key ARN or alias of the KMS key (`KMS_PROVIDER=aws-kms`; `AWS_REGION` required).',
  }),
  AWS_KMS_ENDPOINT: Type.String({ defaultText: 'the regional endpoint', description: 'KMS endpoint URL.' }),
  VAULT_ADDR: Type.String({ description: 'Vault address (`KMS_PROVIDER=vault-transit`; https:// in production).' }),
  VAULT_TRANSIT_KEY: Type.String({ default: 'tillpoint', description: 'Name of the transit key.' }),
  VAULT_TRANSIT_MOUNT: Type.String({ default: 'transit', description: 'Mount path of the transit engine.' }),
  VAULT_NAMESPACE: Type.String({ description: 'Vault Enterprise namespace.' }),
  VAULT_TOKEN_SECRET: Type.String({
    default: 'VAULT_TOKEN',
    description: 'Name of the secret holding the Vault token (see `SECRETS_PROVIDER`).',
  }),
});

/** A number setting; its default, bounds and whether it must be an integer come from the schema. */
function num(env: Env, name: keyof typeof schema.properties): number {
  const s = schema.properties[name] as unknown as { default: number; minimum: number; maximum: number; type: string };
  const [min, max, integer] = [s.minimum, s.maximum, s.type === 'integer'];
  const raw = env[name];
  if (raw === undefined || raw === '') return s.default;
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
    cacheTtlMs: Math.round(num(env, 'KEY_CACHE_SECONDS') * 1000),
    rewrapBatchSize: num(env, 'KEY_REWRAP_BATCH_SIZE'),
    cryptoperiodDays: {
      kek: num(env, 'KEY_CRYPTOPERIOD_DAYS_KEK'),
      aead: num(env, 'KEY_CRYPTOPERIOD_DAYS_DEK'),
      hmac: num(env, 'KEY_CRYPTOPERIOD_DAYS_HMAC'),
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

/** The vault's settings: KMS_PROVIDER and its key manager, data-key cache, cryptoperiods. */
export const vaultSettings = defineSettings({
  title: 'Vault (keys)',
  source: 'src/modules/vault/vault.settings.ts',
  schema,
  load: (env, ctx) => ({ keys: parseKeysConfig(env, ctx.mode, ctx.dataDir) }),
});

declare module '../../platform/config.ts' {
  interface Config {
    /** Key hierarchy for field encryption and tokens (src/modules/vault). */
    keys: KeysConfig;
  }
}
