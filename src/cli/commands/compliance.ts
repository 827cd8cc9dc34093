import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../../config.ts';
import { openDb, type Db } from '../../platform/db.ts';
import { migrate } from '../../platform/migrate.ts';
import { createLogger } from '../../platform/log.ts';
import { systemClock, type Clock } from '../../platform/clock.ts';
import { createSecretStore, createSecretsProvider } from '../../platform/secrets.ts';
import type { Command } from '../command.ts';

// `tillpoint compliance report | verify`: the PCI DSS v4.0.1 evidence report of
// src/modules/compliance, checked against this installation's configuration and database,
// signed with the audit signing key. Exit 1 when an automated check failed or could not run.

const USAGE = `usage:
  tillpoint compliance report [--format json|html] [--out DIR] [--npm-audit] [--aws] [--tls-at-gateway]
  tillpoint compliance verify FILE [--public-key BASE64]`;

/** Gathers, builds and signs the report for the installation `config` describes. */
export async function complianceReport(o: {
  config: Config;
  db: Db;
  clock?: Clock;
  npmAudit?: boolean;
  tlsAtGateway?: boolean;
  /** Read AWS Config, CloudTrail, S3 Object Lock and Inspector (AWS_REGION and credentials). */
  aws?: boolean;
  env?: Record<string, string | undefined>;
}) {
  const { config, db } = o;
  const clock = o.clock ?? systemClock;
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'warn' });
  const { createAuditService, createAuditWriter, loadAuditKeys } = await import('../../modules/audit/index.ts');
  const { createIdentityService } = await import('../../modules/identity/index.ts');
  const { generateComplianceReport } = await import('../../modules/compliance/index.ts');
  const keys = loadAuditKeys({
    mode: config.mode,
    dataDir: config.dataDir,
    signingKey: config.audit.signingKey,
    trustedPublicKeys: config.audit.trustedPublicKeys,
  });
  const audit = createAuditService({ db, config, clock, logger, keys });
  const identity = createIdentityService({ db, config, clock, audit: createAuditWriter({ keys, clock }), logger });
  // The vault's key status needs the key manager (KMS); if it cannot be reached the row says so.
  let vault: import('../../modules/compliance/index.ts').FactSources['vault'];
  let closeVault = () => {};
  try {
    const { createVault, createKeyManagerFromConfig } = await import('../../modules/vault/index.ts');
    const { ENCRYPTED_FIELDS } = await import('../../app.ts');
    const secrets = createSecretStore(createSecretsProvider(config.secrets), {
      refreshMs: 60_000,
      overlapMs: config.secrets.overlapSeconds * 1000,
      logger,
    });
    const v = createVault({
      db,
      clock,
      logger,
      config: config.keys,
      fields: ENCRYPTED_FIELDS,
      vpaPattern: config.payments.vpaPattern,
      kms: await createKeyManagerFromConfig(config.keys, { mode: config.mode, secrets }),
    });
    vault = v;
    closeVault = () => v.close();
  } catch (e) {
    vault = { error: (e as Error).message };
  }
  try {
    return await generateComplianceReport(
      {
        config,
        db,
        clock,
        identity,
        vault,
        audit,
        npmAudit: o.npmAudit,
        tlsAtGateway: o.tlsAtGateway,
        keysFromDataDir: config.audit.signingKey ? [] : ['AUDIT_SIGNING_KEY (a key file under the data dir)'],
        aws: o.aws ? await readAws(config, o.env ?? process.env) : undefined,
      },
      keys,
      config.publicUrl,
    );
  } finally {
    closeVault();
  }
}

/** The AWS evidence, or why it could not be read (no region, no credentials). */
async function readAws(config: Config, env: Record<string, string | undefined>) {
  const { awsCredentials, hasAwsCredentials } = await import('../../platform/aws.ts');
  const { gatherAwsEvidence } = await import('../../modules/compliance/index.ts');
  const s3 = config.audit.export.target === 's3' ? config.audit.export.s3 : undefined;
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? s3?.region;
  if (!region) return { configured: false as const, reason: '--aws was given but AWS_REGION is not set' };
  if (!hasAwsCredentials(env))
    return {
      configured: false as const,
      reason: '--aws was given but no AWS credentials (keys or web identity) are set',
    };
  return gatherAwsEvidence({ region, credentials: awsCredentials(env), auditBucket: s3?.bucket, env });
}

export const compliance: Command = {
  name: 'compliance',
  usage:
    'compliance report [--format json|html] [--out DIR] [--npm-audit] [--aws] [--tls-at-gateway] | verify FILE [--public-key B64]',
  summary:
    'PCI DSS v4.0.1 evidence report: automated checks against this installation, signed with the audit key; verify a report file.',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'report') {
      const { values } = parseArgs({
        args: rest,
        options: {
          format: { type: 'string', default: 'json' },
          out: { type: 'string' },
          'npm-audit': { type: 'boolean', default: false },
          aws: { type: 'boolean', default: false },
          'tls-at-gateway': { type: 'boolean', default: false },
        },
      });
      if (values.format !== 'json' && values.format !== 'html')
        throw new ConfigError('--format', `must be json or html\n${USAGE}`);
      const config = loadConfig();
      const db = await openDb({
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        poolSize: 2,
        command: 'compliance report',
      });
      let signed;
      try {
        await migrate(db);
        signed = await complianceReport({
          config,
          db,
          npmAudit: values['npm-audit'],
          aws: values.aws,
          tlsAtGateway: values['tls-at-gateway'],
        });
      } finally {
        await db.close();
      }
      const { renderHtml } = await import('../../modules/compliance/index.ts');
      const text = values.format === 'html' ? renderHtml(signed) : JSON.stringify(signed, null, 2) + '\n';
      if (values.out) {
        const dir = resolve(values.out);
        mkdirSync(dir, { recursive: true });
        const file = join(
          dir,
          `tillpoint-pci-dss-${signed.report.generated_at.replace(/[:.]/g, '-')}.${values.format}`,
        );
        writeFileSync(file, text);
        const s = signed.report.summary;
        process.stderr.write(
          `${file}\n${s.passed} passed, ${s.failed} failed, ${s.errors} errors, ${s.manual} manual, ${s.not_configured} not configured, ${s.not_applicable} not applicable\n`,
        );
      } else {
        process.stdout.write(text);
      }
      return signed.report.summary.ok ? 0 : 1;
    }
    if (sub === 'verify') {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { 'public-key': { type: 'string' } },
      });
      if (positionals.length !== 1) throw new ConfigError('compliance verify', USAGE);
      const { verifyReportText } = await import('../../modules/compliance/index.ts');
      const r = verifyReportText(readFileSync(positionals[0], 'utf8'), values['public-key']);
      if (!r.ok) {
        process.stderr.write(`report NOT valid:\n${r.problems.map((p) => `  - ${p}`).join('\n')}\n`);
        return 1;
      }
      const s = r.signed!;
      process.stdout.write(
        `report ok: signed by ${s.signature.key_id} (public key ${s.signature.public_key}), generated ${s.report.generated_at}; ` +
          `${s.report.summary.passed} passed, ${s.report.summary.failed} failed${values['public-key'] ? '' : '; compare the public key with the one the installation publishes (tillpoint audit head)'}\n`,
      );
      return 0;
    }
    throw new ConfigError('compliance', USAGE);
  },
};
