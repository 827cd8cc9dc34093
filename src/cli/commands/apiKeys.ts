import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../platform/config.ts';
import { withDb, type Command, UsageError } from '../command.ts';

export const apiKeys: Command = {
  name: 'api-keys',
  usage: 'api-keys create --name NAME [--merchant mer_…] [--permissions a,b] [--expires-days N]',
  summary: 'Issue a partner (no --merchant) or merchant API key; the key is printed once.',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'create') throw new UsageError(`usage: tillpoint ${this.usage}`);
    const { values } = parseArgs({
      args: rest,
      options: {
        name: { type: 'string' },
        merchant: { type: 'string' },
        permissions: { type: 'string' },
        'expires-days': { type: 'string' },
      },
    });
    if (!values.name) throw new ConfigError('--name', 'is required');
    const { PERMISSIONS } = await import('../../platform/principal.ts');
    // Without --permissions a key gets every permission but detokenizing, which must be asked for by name.
    const perms = values.permissions
      ? values.permissions.split(',').map((s) => s.trim())
      : PERMISSIONS.filter((p) => p !== 'vault:detokenize');
    for (const p of perms)
      if (!(PERMISSIONS as readonly string[]).includes(p))
        throw new ConfigError('--permissions', `unknown permission "${p}"`);
    const days = values['expires-days'] === undefined ? undefined : Number(values['expires-days']);
    if (days !== undefined && !(Number.isInteger(days) && days > 0))
      throw new ConfigError('--expires-days', 'must be a positive integer');
    const { createApiKey } = await import('../../modules/identity/index.ts');
    const { createAuditWriter, loadAuditKeys } = await import('../../modules/audit/index.ts');
    const { systemClock } = await import('../../platform/clock.ts');
    return withDb(async (db, config) => {
      if (values.merchant) {
        const m = await db.query(`SELECT 1 FROM merchants.merchants WHERE id = $1`, [values.merchant]);
        if (!m.rows[0]) throw new ConfigError('--merchant', `no merchant ${values.merchant}`);
      }
      const writer = createAuditWriter({
        keys: loadAuditKeys({ mode: config.mode, dataDir: config.dataDir, signingKey: config.audit.signingKey }),
        clock: systemClock,
      });
      const expiresAt = days ? new Date(Date.now() + days * 86_400_000) : null;
      // The key and its audit record (PCI DSS 10.2.1.5) commit together, as over the API.
      const k = await db.tx(async (tx) => {
        const created = await createApiKey(tx, {
          name: values.name!,
          merchantId: values.merchant ?? null,
          permissions: perms,
          expiresAt,
        });
        await writer.record(tx, {
          action: 'api_key.created',
          actor: { type: 'cli', id: userInfo().username, merchant_id: null },
          resource: { type: 'api_key', id: created.id, merchant_id: created.merchantId },
          details: { permissions: created.permissions, expires_at: expiresAt?.toISOString() ?? null, ip_allowlist: [] },
        });
        return created;
      });
      process.stdout.write(
        JSON.stringify({ id: k.id, api_key: k.key, merchant_id: k.merchantId, permissions: k.permissions }) + '\n',
      );
      process.stderr.write('Store this key now: it is not shown again.\n');
      return 0;
    });
  },
};
