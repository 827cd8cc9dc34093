import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isAppError } from '../../platform/errors.ts';
import { UsageError, withServices, type Command } from '../command.ts';

// `tillpoint payouts export`: writes the payouts due into one bank bulk-transfer file and marks
// them sent (src/modules/settlement/README.md, "Payouts"). Merchants' settlement accounts are
// opened through the merchants module (the vault decrypts them; each read is audited), so this
// command runs through the services as the API has them (command.ts withServices). It makes no
// bank calls.

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

    try {
      return await withServices(async (s) => {
        const tty = process.stderr.isTTY;
        const out = await s.settlement.payouts.exportDue({
          limit,
          onProgress: (done, total) => {
            const line = `reading settlement accounts: ${done}/${total}`;
            process.stderr.write(tty ? `\r${line}${done === total ? '\n' : ''}` : `${line}\n`);
          },
        });
        for (const skip of out.skipped)
          process.stderr.write(`skipped ${skip.payout_id} (${skip.merchant_id}): ${skip.reason}\n`);
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
      });
    } catch (e) {
      if (isAppError(e)) {
        process.stderr.write(`payouts export: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
  },
};
