import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { withDb, type Command, UsageError } from '../command.ts';

// `tillpoint access review`: every operator account and API key with roles, permissions and
// last use, for the six-monthly access review (PCI DSS 7.2.4). The review itself is recorded.

export const access: Command = {
  name: 'access',
  usage: 'access review [--json]',
  summary:
    'List every operator account and active API key with its roles or permissions and last use (the six-monthly access review).',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'review') throw new UsageError('usage: tillpoint access review [--json]');
    const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } } });
    const { createIdentityService } = await import('../../modules/identity/index.ts');
    const { createAuditWriter, loadAuditKeys } = await import('../../modules/audit/index.ts');
    const { createLogger } = await import('../../platform/log.ts');
    const { systemClock } = await import('../../platform/clock.ts');
    const review = await withDb(async (db, config) => {
      const writer = createAuditWriter({
        keys: loadAuditKeys({ mode: config.mode, dataDir: config.dataDir, signingKey: config.audit.signingKey }),
        clock: systemClock,
      });
      const identity = createIdentityService({
        db,
        config,
        clock: systemClock,
        audit: writer,
        logger: createLogger({ level: 'warn' }),
      });
      const r = await identity.accessReview();
      await writer.record(db, {
        action: 'access.reviewed',
        actor: { type: 'cli', id: userInfo().username, merchant_id: null },
        resource: { type: 'access_review' },
        details: { operators: r.operators.length, api_keys: r.api_keys.length },
      });
      return r;
    });
    if (values.json) {
      process.stdout.write(JSON.stringify(review, null, 2) + '\n');
      return 0;
    }
    const rows: string[][] = [['ACCOUNT', 'SCOPE', 'ROLES / PERMISSIONS', 'STATUS', 'MFA', 'LAST USED', 'DAYS']];
    for (const o of review.operators) {
      rows.push([
        o.email,
        o.merchant_id ?? 'platform',
        o.roles.join(','),
        o.locked_until ? 'locked' : o.status,
        o.mfa_enrolled ? 'yes' : 'no',
        o.last_used_at ?? 'never',
        String(o.days_since_use ?? ''),
      ]);
    }
    for (const k of review.api_keys) {
      rows.push([
        `key ${k.id} (${k.name})`,
        k.merchant_id ?? 'platform',
        k.permissions.join(','),
        k.expires_at ? `expires ${k.expires_at.slice(0, 10)}` : 'active',
        '-',
        k.last_used_at ?? 'never',
        String(k.days_since_use ?? ''),
      ]);
    }
    const widths = rows[0].map((_, i) => Math.min(48, Math.max(...rows.map((r) => r[i].length))));
    for (const r of rows)
      process.stdout.write(
        r
          .map((c, i) => c.slice(0, 48).padEnd(widths[i]))
          .join('  ')
          .trimEnd() + '\n',
      );
    process.stdout.write(
      `\n${review.operators.length} operator accounts, ${review.api_keys.length} active API keys, generated ${review.generated_at}\n`,
    );
    return 0;
  },
};
