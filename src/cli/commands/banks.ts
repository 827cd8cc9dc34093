import { parseArgs } from 'node:util';
import { withDb, type Command, UsageError } from '../command.ts';

export const banks: Command = {
  name: 'banks',
  usage: 'banks status [--json] | banks mark-down <CODE> [--reason TEXT] | banks mark-up <CODE>',
  summary:
    'Show each configured bank (marked up/down, breaker and health per process, routing rule and weights), or route new payments around a bank (and back).',
  async run(argv) {
    const { createBanksService } = await import('../../modules/banks/index.ts');
    const { createMetrics } = await import('../../metrics.ts');
    return withDb(async (db, config) => {
      const svc = createBanksService({ db, config, metrics: createMetrics() });
      const [sub, code, ...rest] = argv;
      let json = false;
      if (sub === 'mark-down' || sub === 'mark-up') {
        if (!code) throw new UsageError(`usage: tillpoint banks ${sub} <CODE>`);
        const { values } = parseArgs({ args: rest, options: { reason: { type: 'string' } } });
        if (sub === 'mark-down') await svc.markDown(code, values.reason ?? 'marked down by operator');
        else await svc.markUp(code);
      } else if (sub === 'status') {
        json = parseArgs({ args: argv.slice(1), options: { json: { type: 'boolean' } } }).values.json === true;
      } else {
        throw new UsageError('usage: tillpoint banks status|mark-down|mark-up');
      }
      // One JSON line per bank (as before), with what every process last measured of it. The
      // breakers live in each serving process's memory; this command reads what they wrote.
      const routing = svc.routing();
      const views = await svc.health();
      const statuses = await svc.statuses();
      for (const s of statuses) {
        const health = views
          .filter((v) => v.code === s.code)
          .map((v) => ({
            instance: v.instance,
            breaker: v.breaker,
            calls: v.calls,
            ok: v.ok,
            declined: v.declined,
            technical: v.technical,
            success_rate: v.success_rate,
            p95_ms: v.p95_ms,
            weight: v.weight,
            updated_at: new Date(v.updated_at).toISOString(),
            stale: v.stale,
          }));
        const connector = config.banks.find((b) => b.code === s.code)?.connector;
        process.stdout.write(`${JSON.stringify({ ...s, connector, health })}\n`);
      }
      // The rule in force and each bank's share of a new payment under it (for a merchant of the first bank).
      const rule = {
        routing: routing.rule,
        rule: routing.description,
        weights: Object.fromEntries(routing.banks.map((b) => [b.code, b.weight])),
      };
      process.stdout.write(`${JSON.stringify(rule)}\n`);
      if (!json && process.stderr.isTTY)
        process.stderr.write('(breaker state and windows are per serving process; see "health" on each line)\n');
      return 0;
    });
  },
};
