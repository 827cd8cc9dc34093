import { parseArgs } from 'node:util';
import { withDb, type Command, UsageError } from '../command.ts';

export const banks: Command = {
  name: 'banks',
  usage: 'banks status | banks mark-down <CODE> [--reason TEXT] | banks mark-up <CODE>',
  summary: 'Show each configured bank, or route new payments around a bank (and back).',
  async run(argv) {
    const { createBanksService } = await import('../../modules/banks/index.ts');
    const { createMetrics } = await import('../../metrics.ts');
    return withDb(async (db, config) => {
      const svc = createBanksService({ db, config, metrics: createMetrics() });
      const [sub, code, ...rest] = argv;
      if (sub === 'mark-down' || sub === 'mark-up') {
        if (!code) throw new UsageError(`usage: tillpoint banks ${sub} <CODE>`);
        const { values } = parseArgs({ args: rest, options: { reason: { type: 'string' } } });
        if (sub === 'mark-down') await svc.markDown(code, values.reason ?? 'marked down by operator');
        else await svc.markUp(code);
      } else if (sub !== 'status') {
        throw new UsageError('usage: tillpoint banks status|mark-down|mark-up');
      }
      for (const s of await svc.statuses()) process.stdout.write(JSON.stringify(s) + '\n');
      return 0;
    });
  },
};
