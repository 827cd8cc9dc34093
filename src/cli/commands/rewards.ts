import { withDb, type Command, UsageError } from '../command.ts';

export const rewards: Command = {
  name: 'rewards',
  usage: 'rewards verify',
  summary:
    "Check that every customer's lots, reservations and statement agree with the PTS ledger; exits 1 naming the first mismatch.",
  async run(argv) {
    if (argv[0] !== 'verify') throw new UsageError('usage: tillpoint rewards verify');
    const { runRewardsVerify } = await import('../../modules/rewards/index.ts');
    const report = await withDb((db) => runRewardsVerify(db));
    if (report.ok) {
      process.stdout.write(
        `rewards ok: ${report.checked.customers} customers, ${report.checked.lots} lots agree with the points ledger\n`,
      );
      return 0;
    }
    const v = report.violations[0];
    process.stderr.write(`rewards verify FAILED: ${v.invariant}: ${v.subject}: ${v.message}\n`);
    if (report.violations.length > 1) process.stderr.write(`(${report.violations.length - 1} more violation(s))\n`);
    return 1;
  },
};
