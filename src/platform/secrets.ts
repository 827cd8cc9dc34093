import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { AwsError, createAwsJsonClient, awsCredentials, type AwsCredentials } from './aws.ts';
import { Type } from '@sinclair/typebox';
import { ConfigError, defineSettings } from './settings.ts';

// Secrets (database password, bank HMAC keys, the keyring, the Vault token) come from one
// interface with three sources: environment variables, files mounted by Kubernetes, or AWS
// Secrets Manager. A secret has a current value and, during a rotation, a previous one:
// verifiers accept both, signers use only the current one. Values are re-read on an interval,
// so a rotation reaches a running process without a restart.
//
// Names are upper-case identifiers (BANK_AXIS_SECRET). Where each source looks:
//   env                  $NAME, and $NAME_PREVIOUS for the previous value
//   files                <SECRETS_DIR>/NAME and <SECRETS_DIR>/NAME_PREVIOUS (a Kubernetes Secret volume)
//   aws-secrets-manager  secret "<SECRETS_AWS_PREFIX>NAME", staging labels AWSCURRENT and AWSPREVIOUS

export interface SecretValue {
  current: string;
  previous?: string;
  /** When the current value was put in place, where the source knows (file mtime, AWS CreatedDate). */
  rotatedAt?: Date;
}

export interface SecretsProvider {
  readonly kind: SecretsConfig['provider'];
  /** undefined when the secret does not exist. */
  get(name: string): Promise<SecretValue | undefined>;
}

export interface SecretsConfig {
  provider: 'env' | 'files' | 'aws-secrets-manager';
  dir: string;
  awsPrefix: string;
  awsRegion?: string;
  awsEndpoint?: string;
  refreshSeconds: number;
  /** How long after a rotation the previous value still verifies (where the source dates rotations). */
  overlapSeconds: number;
}

type Env = Record<string, string | undefined>;
const NAME_RE = /^[A-Z][A-Z0-9_]{0,127}$/;

export function checkSecretName(setting: string, name: string): string {
  if (!NAME_RE.test(name))
    throw new ConfigError(setting, `"${name}" is not a secret name (A-Z, 0-9, _; starting with a letter)`);
  return name;
}

export function parseSecretsConfig(env: Env): SecretsConfig {
  const provider = (env.SECRETS_PROVIDER || 'env') as SecretsConfig['provider'];
  if (!['env', 'files', 'aws-secrets-manager'].includes(provider)) {
    throw new ConfigError('SECRETS_PROVIDER', `must be env, files or aws-secrets-manager, got "${provider}"`);
  }
  // Default and bounds from the schema (secretsSettings below).
  const num = (name: 'SECRETS_REFRESH_SECONDS' | 'SECRETS_OVERLAP_SECONDS') => {
    const {
      default: dflt,
      minimum: min,
      maximum: max,
    } = secretsSettings.schema.properties[name] as unknown as {
      default: number;
      minimum: number;
      maximum: number;
    };
    const raw = env[name];
    if (raw === undefined || raw === '') return dflt;
    const v = Number(raw);
    if (!/^\d+$/.test(raw) || v < min || v > max)
      throw new ConfigError(name, `must be an integer between ${min} and ${max}, got "${raw}"`);
    return v;
  };
  const awsRegion = env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
  if (provider === 'aws-secrets-manager' && !awsRegion)
    throw new ConfigError('AWS_REGION', 'required with SECRETS_PROVIDER=aws-secrets-manager');
  const awsEndpoint = env.AWS_SECRETS_MANAGER_ENDPOINT || undefined;
  if (awsEndpoint) {
    try {
      new URL(awsEndpoint);
    } catch {
      throw new ConfigError('AWS_SECRETS_MANAGER_ENDPOINT', 'is not a URL');
    }
  }
  return {
    provider,
    dir: resolve(env.SECRETS_DIR || '/var/run/secrets/tillpoint'),
    awsPrefix: env.SECRETS_AWS_PREFIX ?? 'tillpoint/',
    awsRegion,
    awsEndpoint,
    refreshSeconds: num('SECRETS_REFRESH_SECONDS'),
    overlapSeconds: num('SECRETS_OVERLAP_SECONDS'),
  };
}

/** Where secrets come from, and how often they are re-read. */
export const secretsSettings = defineSettings({
  title: 'Secrets',
  source: 'src/platform/secrets.ts',
  schema: Type.Object({
    SECRETS_PROVIDER: Type.Union([Type.Literal('env'), Type.Literal('files'), Type.Literal('aws-secrets-manager')], {
      default: 'env',
      description:
        'Where named secrets (bank keys, the database password, the keyring, the Vault token) come from: environment variables (`NAME`, `NAME_PREVIOUS`), files in `SECRETS_DIR`, or AWS Secrets Manager (`AWS_REGION` required).',
    }),
    SECRETS_DIR: Type.String({
      default: '/var/run/secrets/tillpoint',
      description: 'Directory of secret files (`SECRETS_PROVIDER=files`, a Kubernetes Secret volume).',
    }),
    SECRETS_AWS_PREFIX: Type.String({
      default: 'tillpoint/',
      description: 'Prefix of secret names in AWS Secrets Manager.',
    }),
    AWS_SECRETS_MANAGER_ENDPOINT: Type.String({
      defaultText: 'the regional endpoint',
      description: 'Secrets Manager endpoint URL (a VPC endpoint or a local emulator).',
    }),
    SECRETS_REFRESH_SECONDS: Type.Integer({
      minimum: 1,
      maximum: 86_400,
      default: 60,
      description: 'How often secrets are re-read, so a rotation reaches a running process without a restart.',
    }),
    SECRETS_OVERLAP_SECONDS: Type.Integer({
      minimum: 0,
      maximum: 30 * 86_400,
      default: 86_400,
      description: 'How long after a rotation the previous value still verifies (where the source dates rotations).',
    }),
  }),
  load: (env) => ({ secrets: parseSecretsConfig(env) }),
});

export function createEnvSecrets(env: Env = process.env): SecretsProvider {
  return {
    kind: 'env',
    async get(name) {
      const current = env[name];
      if (!current) return undefined;
      return { current, previous: env[`${name}_PREVIOUS`] || undefined };
    },
  };
}

/**
 * Kubernetes mounts each key of a Secret as a file and swaps them atomically (a symlink flip) on
 * update; reading on every refresh picks the new value up. A trailing newline is not part of it.
 */
export function createFileSecrets(dir: string): SecretsProvider {
  const read = (name: string) => {
    try {
      const p = join(dir, name);
      return { value: readFileSync(p, 'utf8').replace(/\r?\n$/, ''), mtime: statSync(p).mtime };
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw new Error(`secret file ${join(dir, name)} cannot be read (${(e as { code?: string }).code ?? 'error'})`);
    }
  };
  return {
    kind: 'files',
    async get(name) {
      const cur = read(name);
      if (!cur || cur.value === '') return undefined;
      const prev = read(`${name}_PREVIOUS`);
      return { current: cur.value, previous: prev?.value || undefined, rotatedAt: cur.mtime };
    },
  };
}

interface GetSecretValueResponse {
  ARN: string;
  Name: string;
  VersionId: string;
  SecretString?: string;
  SecretBinary?: string;
  VersionStages: string[];
  CreatedDate: number;
}

/**
 * AWS Secrets Manager: GetSecretValue for the AWSCURRENT and AWSPREVIOUS staging labels, the
 * labels Secrets Manager's own rotation moves. A secret stored as JSON with a single string
 * field (`{"password": "…"}`, as RDS rotation writes) may be read with `field`.
 */
export function createAwsSecretsManager(o: {
  region: string;
  endpoint?: string;
  prefix?: string;
  credentials?: () => AwsCredentials | Promise<AwsCredentials>;
  fetch?: typeof fetch;
}): SecretsProvider {
  const call = createAwsJsonClient({
    service: 'secretsmanager',
    targetPrefix: 'secretsmanager',
    region: o.region,
    endpoint: o.endpoint,
    credentials: o.credentials ?? awsCredentials(),
    fetch: o.fetch,
  });
  const prefix = o.prefix ?? 'tillpoint/';
  async function stage(id: string, versionStage: string): Promise<GetSecretValueResponse | undefined> {
    try {
      return await call<GetSecretValueResponse>('GetSecretValue', { SecretId: id, VersionStage: versionStage });
    } catch (e) {
      if (e instanceof AwsError && e.type === 'ResourceNotFoundException') return undefined;
      throw new Error(`secrets manager: ${e instanceof AwsError ? `${e.type} for ${id}` : 'unreachable'}`);
    }
  }
  const text = (r: GetSecretValueResponse) =>
    r.SecretString ?? (r.SecretBinary ? Buffer.from(r.SecretBinary, 'base64').toString('utf8') : '');
  return {
    kind: 'aws-secrets-manager',
    async get(name) {
      const id = prefix + name;
      const cur = await stage(id, 'AWSCURRENT');
      if (!cur || !text(cur)) return undefined;
      const prev = await stage(id, 'AWSPREVIOUS');
      return {
        current: text(cur),
        previous: prev && prev.VersionId !== cur.VersionId ? text(prev) || undefined : undefined,
        rotatedAt: new Date(cur.CreatedDate * 1000),
      };
    },
  };
}

export function createSecretsProvider(cfg: SecretsConfig, env: Env = process.env): SecretsProvider {
  switch (cfg.provider) {
    case 'env':
      return createEnvSecrets(env);
    case 'files':
      return createFileSecrets(cfg.dir);
    case 'aws-secrets-manager':
      return createAwsSecretsManager({
        region: cfg.awsRegion!,
        endpoint: cfg.awsEndpoint,
        prefix: cfg.awsPrefix,
        credentials: awsCredentials(env),
      });
  }
}

/** A secret kept fresh by the store. */
export interface RotatingSecret {
  readonly name: string;
  /** The value to sign or connect with. */
  current(): string;
  /** Values to accept: the current one first, then the previous one while the overlap lasts. */
  verifying(): string[];
  /** Called after every refresh (the value, or whether the previous one still verifies, may have changed). */
  onChange(fn: () => void): void;
}

export function createSecretStore(
  provider: SecretsProvider,
  opts: { refreshMs: number; overlapMs: number; now?: () => Date; logger?: Logger },
) {
  const now = opts.now ?? (() => new Date());
  const watched = new Map<string, { value: SecretValue; listeners: (() => void)[] }>();
  let timer: NodeJS.Timeout | undefined;

  const inOverlap = (v: SecretValue) =>
    v.previous !== undefined && (v.rotatedAt === undefined || now().getTime() - v.rotatedAt.getTime() < opts.overlapMs);

  async function refresh(): Promise<void> {
    for (const [name, w] of watched) {
      let v: SecretValue | undefined;
      try {
        v = await provider.get(name);
      } catch (e) {
        // Keep serving the value we have; a source outage must not stop payments.
        opts.logger?.warn(
          { secret: name, err: { type: (e as Error).name } },
          'secret refresh failed; keeping the current value',
        );
        continue;
      }
      if (!v) {
        opts.logger?.warn({ secret: name }, 'secret disappeared from its source; keeping the current value');
        continue;
      }
      const changed = v.current !== w.value.current || v.previous !== w.value.previous;
      w.value = v;
      if (changed) opts.logger?.info({ secret: name }, 'secret rotated');
      // Every refresh, not only on change: the end of an overlap window changes what verifies.
      for (const fn of w.listeners) fn();
    }
  }

  return {
    provider,
    /** Loads a secret now and keeps it fresh. A missing secret stops the start, naming `setting`. */
    async watch(name: string, setting: string): Promise<RotatingSecret> {
      checkSecretName(setting, name);
      let w = watched.get(name);
      if (!w) {
        let v: SecretValue | undefined;
        try {
          v = await provider.get(name);
        } catch (e) {
          throw new ConfigError(
            setting,
            `secret ${name} could not be read from ${provider.kind}: ${(e as Error).message}`,
          );
        }
        if (!v) throw new ConfigError(setting, `secret ${name} is not set in ${provider.kind}`);
        w = { value: v, listeners: [] };
        watched.set(name, w);
      }
      const entry = w;
      return {
        name,
        current: () => entry.value.current,
        verifying: () =>
          inOverlap(entry.value) ? [entry.value.current, entry.value.previous!] : [entry.value.current],
        onChange: (fn) => entry.listeners.push(fn),
      };
    },
    refresh,
    start() {
      if (timer || watched.size === 0) return;
      const tick = () => {
        timer = setTimeout(() => void refresh().finally(() => timer && tick()), opts.refreshMs);
        timer.unref();
      };
      tick();
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

export type SecretStore = ReturnType<typeof createSecretStore>;
