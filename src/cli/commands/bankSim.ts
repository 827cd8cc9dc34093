import { onShutdown, type Command } from '../command.ts';

export const bankSim: Command = {
  name: 'bank-sim',
  usage:
    'bank-sim [--port N] [--host H] [--latency-ms N] [--approve R] [--decline R] [--pending R] [--timeout R] [--dev] [--faults]',
  summary: 'Run the bank simulator as its own process (BANK_SIM_SECRET, or --dev for the development secret).',
  async run(argv) {
    const { parseBankSimArgs, startBankSimulator, BANK_SIM_USAGE } = await import('../../tools/bank-sim/index.ts');
    const args = parseBankSimArgs(argv);
    if (args.help) {
      process.stdout.write(BANK_SIM_USAGE + '\n');
      return 0;
    }
    const { createLogger } = await import('../../platform/log.ts');
    const sim = await startBankSimulator({ ...args, logger: createLogger({ level: process.env.LOG_LEVEL ?? 'info' }) });
    process.stdout.write(`bank simulator listening on ${sim.url}; set BANK_SIM_URL=${sim.bankUrl}\n`);
    onShutdown(() => sim.close());
    return undefined;
  },
};
