import { withDb, type Command, UsageError } from '../command.ts';

export const ledger: Command = {
  name: 'ledger',
  usage: 'ledger verify',
  summary: 'Check every ledger invariant (money and points); exits 1 naming the first violation.',
  async run(argv) {
    if (argv[0] !== 'verify') throw new UsageError('usage: tillpoint ledger verify');
    const { runLedgerVerify, formatViolation } = await import('../../modules/ledger/index.ts');
    const report = await withDb((db) => runLedgerVerify(db));
    if (report.ok) {
      process.stdout.write(
        `ledger ok: ${report.checked.entries} entries, ${report.checked.accounts} accounts, every invariant holds\n`,
      );
      return 0;
    }
    process.stderr.write(`ledger verify FAILED: ${formatViolation(report.violations[0])}\n`);
    if (report.violations.length > 1) process.stderr.write(`(${report.violations.length - 1} more violation(s))\n`);
    return 1;
  },
};
