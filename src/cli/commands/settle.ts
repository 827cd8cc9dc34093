import { parseArgs } from 'node:util';
import { withDb, UsageError, type Command } from '../command.ts';

// `tillpoint settle close-cycle [KEY]`: closes a settlement cycle (src/modules/settlement/README.md).
// The worker closes cycles as they end; this is for closing one by hand (after downtime, or to see
// the totals now). Without KEY: the last cycle that has ended.

const USAGE = `usage:
  tillpoint settle close-cycle [YYYY-MM-DD-C<n>] [--json]
  tillpoint settle verify`;

export const settle: Command = {
  name: 'settle',
  usage: 'settle close-cycle [YYYY-MM-DD-C<n>] [--json] | verify',
  summary:
    "Close a settlement cycle (expected totals per bank, merchants' payouts, the bank files compared); verify settlement against the ledger.",
  async run(argv) {
    if (argv[0] === 'verify' && argv.length === 1) return verify();
    if (argv[0] !== 'close-cycle') throw new UsageError(USAGE);
    let parsed: ReturnType<typeof parseArgs<{ options: { json: { type: 'boolean' } }; allowPositionals: true }>>;
    try {
      parsed = parseArgs({ args: argv.slice(1), options: { json: { type: 'boolean' } }, allowPositionals: true });
    } catch (e) {
      throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    }
    if (parsed.positionals.length > 1) throw new UsageError(USAGE);
    const { lastEndedCycle } = await import('../../modules/settlement/index.ts');
    const { isAppError } = await import('../../platform/errors.ts');
    const { settlementForCommand } = await import('../settlement.ts');
    return withDb(async (db, config) => {
      const svc = await settlementForCommand(db, config);
      const settlementConfig = config.settlement;
      const lastEnded = parsed.positionals[0] ?? lastEndedCycle(new Date(), settlementConfig.cycleCutoffs).key;
      process.stderr.write(`closing cycle ${lastEnded} …\n`);
      try {
        const out = await svc.cycles.close(lastEnded);
        if (parsed.values.json) {
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return 0;
        }
        const c = out.cycle;
        process.stdout.write(
          `cycle ${c.key} (${c.starts_at} – ${c.ends_at}] ${out.closed_now ? 'closed now' : 'was closed at ' + c.closed_at}: ${c.status}\n`,
        );
        for (const b of c.banks) {
          const diff = b.difference
            ? ` difference credit ${b.difference.credit} debit ${b.difference.debit} lines ${b.difference.lines}`
            : '';
          process.stdout.write(
            `  ${b.bank_code.padEnd(12)} expected credit ${b.expected.credit} debit ${b.expected.debit} lines ${b.expected.lines}  ${b.status}${diff}\n`,
          );
        }
        const payouts = await svc.payouts.list({ cycleKey: c.key, limit: 200 });
        process.stdout.write(`  payouts: ${payouts.data.length}${payouts.next_cursor ? '+' : ''}\n`);
        return 0;
      } catch (e) {
        if (isAppError(e)) {
          process.stderr.write(`settle close-cycle: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
    });
  },
};

/** `settle verify`: settlement's rows against the ledger (src/modules/settlement/settlement.verify.ts); exit 1 on a violation. */
async function verify(): Promise<number> {
  const { runSettlementVerify } = await import('../../modules/settlement/index.ts');
  const { createLedgerService } = await import('../../modules/ledger/index.ts');
  const report = await withDb((db) => runSettlementVerify(db, createLedgerService()));
  if (report.ok) {
    process.stdout.write(
      `settlement ok: ${report.checked.reversals} reversals, ${report.checked.payouts} payouts, ${report.checked.cycles} cycles agree with the ledger\n`,
    );
    return 0;
  }
  const v = report.violations[0];
  process.stderr.write(`settlement verify FAILED: ${v.invariant}: ${v.subject}: ${v.message}\n`);
  if (report.violations.length > 1) process.stderr.write(`(${report.violations.length - 1} more violation(s))\n`);
  return 1;
}
