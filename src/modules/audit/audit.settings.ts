import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { hasAwsCredentials } from '../../platform/awsCredentials.ts';
import { ConfigError, defineSettings, intOf, str, type Env } from '../../platform/settings.ts';

// The tamper-evident audit trail's settings (PCI DSS 10): the signing key, where signed heads and
// archives are exported, how long records are kept. Composed into the Config by src/config.ts.

export interface AuditConfig {
  /** AUDIT_SIGNING_KEY: 32-byte Ed25519 seed, base64; required in production, else a key file in the data dir. */
  signingKey?: string;
  /** Raw public keys (base64) of retired signing keys whose heads still verify. */
  trustedPublicKeys: string[];
  signIntervalSeconds: number;
  export: {
    target: 'local' | 's3' | 'off';
    dir: string;
    s3?: { bucket: string; region: string; endpoint?: string; prefix: string };
  };
  retentionMonths: number;
  onlineMonths: number;
}

declare module '../../platform/config.ts' {
  interface Config {
    /** The tamper-evident audit trail (PCI DSS 10). */
    audit: AuditConfig;
  }
}

const schema = Type.Object({
  AUDIT_SIGNING_KEY: Type.String({
    defaultText: 'a key file under the data dir (not in production)',
    fromFile: true,
    description: "32-byte Ed25519 seed, base64, signing the trail's heads. Required in production.",
  }),
  AUDIT_TRUSTED_PUBLIC_KEYS: Type.String({
    description: 'Comma-separated raw public keys (base64) of retired signing keys whose heads still verify.',
  }),
  AUDIT_SIGN_INTERVAL_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 10,
    description: 'The longest a record waits for a signed, exported head.',
  }),
  AUDIT_EXPORT: Type.Union([Type.Literal('local'), Type.Literal('s3'), Type.Literal('off')], {
    default: 'local',
    description: 'Where signed heads and archives go: a local directory, S3 (Object Lock), or nowhere.',
  }),
  AUDIT_EXPORT_DIR: Type.String({
    defaultText: '`<data dir>/audit-archive`',
    description: 'The local export directory.',
  }),
  AUDIT_S3_BUCKET: Type.String({ description: 'S3 bucket (`AUDIT_EXPORT=s3`; AWS credentials required).' }),
  AUDIT_S3_REGION: Type.String({ description: 'Its region (`AUDIT_EXPORT=s3`).' }),
  AUDIT_S3_ENDPOINT: Type.String({ defaultText: 'AWS', description: 'An S3-compatible endpoint URL instead of AWS.' }),
  AUDIT_S3_PREFIX: Type.String({ default: 'audit/', description: 'Key prefix in the bucket.' }),
  AUDIT_RETENTION_MONTHS: Type.Integer({
    minimum: 12,
    maximum: 120,
    default: 12,
    description: 'How long audit records are kept (PCI DSS 10.5.1: at least 12 months).',
  }),
  AUDIT_ONLINE_MONTHS: Type.Integer({
    minimum: 3,
    maximum: 120,
    default: 3,
    description: 'How much of it stays in the database, immediately available (at least 3, at most the retention).',
  }),
});

export const auditSettings = defineSettings({
  title: 'Audit trail',
  source: 'src/modules/audit/audit.settings.ts',
  schema,
  load: (env, ctx) => ({ audit: parseAudit(env, ctx.dataDir) }),
});

function parseAudit(env: Env, dataDir: string): AuditConfig {
  const target = str(env, 'AUDIT_EXPORT', 'local');
  if (!['local', 's3', 'off'].includes(target)) throw new ConfigError('AUDIT_EXPORT', 'must be local, s3 or off');
  let s3: AuditConfig['export']['s3'];
  if (target === 's3') {
    for (const k of ['AUDIT_S3_BUCKET', 'AUDIT_S3_REGION']) {
      if (!env[k]) throw new ConfigError(k, 'is required when AUDIT_EXPORT=s3');
    }
    if (!hasAwsCredentials(env)) {
      throw new ConfigError(
        'AWS_ACCESS_KEY_ID',
        'AWS credentials are required when AUDIT_EXPORT=s3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (IRSA)',
      );
    }
    const endpoint = env.AUDIT_S3_ENDPOINT || undefined;
    if (endpoint && !/^https?:\/\//.test(endpoint))
      throw new ConfigError('AUDIT_S3_ENDPOINT', 'must be an http(s) URL');
    s3 = {
      bucket: env.AUDIT_S3_BUCKET!,
      region: env.AUDIT_S3_REGION!,
      endpoint,
      prefix: str(env, 'AUDIT_S3_PREFIX', 'audit/'),
    };
  }
  const retentionMonths = intOf(schema, env, 'AUDIT_RETENTION_MONTHS');
  return {
    signingKey: env.AUDIT_SIGNING_KEY || undefined,
    trustedPublicKeys: str(env, 'AUDIT_TRUSTED_PUBLIC_KEYS', '')
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    signIntervalSeconds: intOf(schema, env, 'AUDIT_SIGN_INTERVAL_SECONDS'),
    export: {
      target: target as 'local' | 's3' | 'off',
      dir: resolve(str(env, 'AUDIT_EXPORT_DIR', resolve(dataDir, 'audit-archive'))),
      s3,
    },
    retentionMonths,
    // PCI DSS 10.5.1: at least the last three months immediately available.
    onlineMonths: intOf(schema, env, 'AUDIT_ONLINE_MONTHS', { maximum: retentionMonths }),
  };
}
