import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { systemClock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import { UsageError, withServerDb, type Command } from '../command.ts';

// `tillpoint payouts export`: writes the payouts due into one bank bulk-transfer file and marks
// them sent (src/modules/settlement/README.md, "Payouts"). Merchants' settlement accounts are
// opened through the merchants module (the vault decrypts them; each read is audited), so this
// command sets up the vault and the audit trail as `keys` does.

const USAGE = 'usage: tillpoint payouts export [--out DIR] [--limit N]';

export const payouts: Command = {
  name: 'payouts',
  usage: 'payouts export [--out DIR] [--limit N]',
  summary: 'Write the due payouts into a bank bulk-transfer file (CSV) and mark them sent, with progress.',
  async run(argv) {
    if (argv[0] !== 'export') throw new UsageError(USAGE);
    let values: { out?: string; limit?: string };
    try {
      ({ values } = parseArgs({
        args: argv.slice(1),
        options: { out: { type: 'string' }, limit: { type: 'string' } },
      }));
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    }
    const limit = values.limit === undefined ? 1000 : Number(values.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000)
      throw new UsageError(`--limit must be 1-100000\n${USAGE}`);
    const outDir = resolve(values.out ?? '.');

    return withServerDb(async ({ config, logger, secrets, db }) => {
      try {
        const { createVault, createKeyManagerFromConfig } = await import('../../modules/vault/index.ts');
        const { createAuditService } = await import('../../modules/audit/index.ts');
        const { createMerchantsService } = await import('../../modules/merchants/index.ts');
        const { createLedgerService } = await import('../../modules/ledger/index.ts');
        const { createSettlementService } = await import('../../modules/settlement/index.ts');
        const { ENCRYPTED_FIELDS } = await import('../../app.ts');
        const vault = createVault({
          db,
          clock: systemClock,
          logger,
          config: config.keys,
          fields: ENCRYPTED_FIELDS,
          vpaPattern: config.payments.vpaPattern,
          kms: await createKeyManagerFromConfig(config.keys, { mode: config.mode, secrets }),
        });
        try {
          await vault.init();
          const audit = createAuditService({ db, config, clock: systemClock, logger });
          const merchants = createMerchantsService({
            db,
            bankCodes: config.banks.map((b) => b.code),
            vpaPattern: config.payments.vpaPattern,
            audit: audit.writer,
            fields: vault.cipher,
          });
          const svc = createSettlementService({
            db,
            ledger: createLedgerService(),
            banks: {
              connector: () => {
                throw new Error('payouts export makes no bank calls');
              },
            },
            clock: systemClock,
            logger,
            config: config.settlement,
            bankCodes: config.banks.map((b) => b.code),
            publicUrl: config.publicUrl,
            accounts: merchants,
          });
          const tty = process.stderr.isTTY;
          const out = await svc.payouts.exportDue({
            limit,
            onProgress: (done, total) => {
              const line = `reading settlement accounts: ${done}/${total}`;
              process.stderr.write(tty ? `\r${line}${done === total ? '\n' : ''}` : `${line}\n`);
            },
          });
          for (const s of out.skipped) process.stderr.write(`skipped ${s.payout_id} (${s.merchant_id}): ${s.reason}\n`);
          if (!out.batch || out.content === null) {
            process.stdout.write('no payouts due\n');
            return 0;
          }
          mkdirSync(outDir, { recursive: true });
          const file = join(outDir, out.batch.file_name);
          // 0600: the file holds merchants' account numbers.
          writeFileSync(file, out.content, { mode: 0o600 });
          process.stdout.write(
            `batch ${out.batch.id}: ${out.batch.payouts} payout(s), ${out.batch.total} paise, format ${out.batch.format}\n` +
              `wrote ${file} (sha256 ${out.batch.sha256})\n`,
          );
          return 0;
        } finally {
          vault.close();
        }
      } catch (e) {
        if (isAppError(e)) {
          process.stderr.write(`payouts export: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
    });
  },
};
