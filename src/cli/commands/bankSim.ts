import { onShutdown, type Command } from '../command.ts';

export const bankSim: Command = {
  name: 'bank-sim',
  usage: 'bank-sim [--port N] [--host H] [--latency-ms N] [--approve R] [--decline R] [--pending R] [--timeout R] [--dev]',
  summary: 'Run the bank simulator as its own process (BANK_SIM_SECRET, or --dev for the development secret).',
  async run(argv) {
    const { parseBankSimArgs, startBankSimulator } = await import('../../modules/banks/index.ts');
    const sim = await startBankSimulator(parseBankSimArgs(argv));
    process.stdout.write(`bank simulator listening on ${sim.url}\n`);
    onShutdown(() => sim.close());
    return undefined;
  },
};
