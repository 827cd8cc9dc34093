import { createReadStream, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { withServices, type Command, UsageError } from '../command.ts';

// `tillpoint recon …`: reconciliation with the banks' settlement files
// (src/modules/settlement/recon/README.md). ingest streams the file from disk, so a file of
// millions of lines needs no more memory than a small one; progress goes to stderr, the report
// (JSON) to stdout.

const USAGE = ['recon ingest --bank CODE FILE [--dry-run]', 'recon status [--json]'].join('\n  ');

export const recon: Command = {
  name: 'recon',
  usage: USAGE,
  summary:
    "Reconciliation with the banks' files: ingest a settlement file and match it (--dry-run: report what would match, store nothing; a file already ingested, or a cycle already processed, changes nothing and says so; a malformed file is refused whole, exit 1, every bad line named); status shows files per bank, open exceptions and payments expected or missing.",
  async run(argv) {
    const [sub, ...rest] = argv;
    const { FileRejected } = await import('../../modules/settlement/index.ts');
    // Through the services as the API has them (command.ts withServices): a flagged payment a
    // file settles moves through the payments service with its hooks; a late success is
    // scheduled for reversal (the worker pays it back).
    const withRecon = <T>(fn: (recon: import('../../modules/settlement/index.ts').ReconService) => Promise<T>) =>
      withServices((s) => fn(s.recon));

    if (sub === 'ingest') {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { bank: { type: 'string' }, 'dry-run': { type: 'boolean', default: false } },
      });
      if (!values.bank || positionals.length !== 1) throw new UsageError(`usage: tillpoint ${USAGE.split('\n')[0]}`);
      const file = positionals[0];
      let size: number;
      try {
        size = statSync(file).size;
      } catch {
        process.stderr.write(`recon ingest: cannot read ${file}\n`);
        return 1;
      }
      const started = performance.now();
      const progress = (lines: number) => {
        const s = (performance.now() - started) / 1000;
        process.stderr.write(
          `recon ingest: ${lines.toLocaleString('en-IN')} lines read (${Math.round(lines / Math.max(s, 0.001))}/s)\n`,
        );
      };
      process.stderr.write(
        `recon ingest: ${basename(file)}, ${size.toLocaleString('en-IN')} bytes, bank ${values.bank}${values['dry-run'] ? ' (dry run)' : ''}\n`,
      );
      try {
        const report = await withRecon((recon) =>
          recon.ingest({
            bankCode: values.bank!,
            open: () => createReadStream(file),
            fileName: basename(file),
            dryRun: values['dry-run'],
            actor: { type: 'cli', id: userInfo().username },
            onProgress: progress,
          }),
        );
        process.stderr.write(
          `recon ingest: ${report.message} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
        );
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return 0;
      } catch (e) {
        if (e instanceof FileRejected) {
          process.stderr.write(`recon ingest: REFUSED, ${e.message}\n`);
          for (const p of e.problems) process.stderr.write(`  line ${p.line}: ${p.message}\n`);
          if (e.problemCount > e.problems.length)
            process.stderr.write(`  (${e.problemCount - e.problems.length} more)\n`);
          return 1;
        }
        const err = e as { code?: string; message?: string };
        if (err.code === 'validation_failed') {
          process.stderr.write(`recon ingest: ${err.message}\n`);
          return 1;
        }
        throw e;
      }
    }

    if (sub === 'status') {
      const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } } });
      const s = await withRecon((recon) => recon.status());
      if (values.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return 0;
      }
      const out: string[] = [];
      out.push('FILES');
      if (s.files.length === 0) out.push('  none yet');
      for (const f of s.files)
        out.push(`  ${f.bank_code.padEnd(12)} ${String(f.n).padStart(5)} file(s), last cycle ${f.last_cycle}`);
      out.push('OPEN EXCEPTIONS');
      if (s.exceptions.length === 0) out.push('  none');
      for (const e of s.exceptions)
        out.push(
          `  ${e.kind.padEnd(14)} ${e.status.padEnd(17)} ${String(e.count).padStart(6)}  oldest ${Math.round(e.oldest_age_seconds / 3600)} h`,
        );
      out.push(
        `PAYMENTS NOT YET IN A FILE: ${s.payments_expected} expected, ${s.payments_missing} missing (older than ${s.missing_after_hours} h)`,
      );
      process.stdout.write(`${out.join('\n')}\n`);
      return 0;
    }
    throw new UsageError(`usage: tillpoint ${USAGE}`);
  },
};
