import type { Config } from '../platform/config.ts';
import type { Db } from '../platform/db.ts';

/**
 * The settlement service as a command uses it: it closes cycles and schedules reversals but calls
 * no bank (the worker does), so the bank connector it is given refuses; the cycles compare with
 * the banks' files through recon's totals.
 */
export async function settlementForCommand(db: Db, config: Config) {
  const { createSettlementService, createBankFileTotals } = await import('../modules/settlement/index.ts');
  const { createLedgerService } = await import('../modules/ledger/index.ts');
  const { createLogger } = await import('../platform/log.ts');
  const { systemClock } = await import('../platform/clock.ts');
  return createSettlementService({
    db,
    ledger: createLedgerService(),
    banks: {
      connector: () => {
        throw new Error('a command makes no bank calls: the worker does');
      },
    },
    clock: systemClock,
    logger: createLogger({ level: process.env.LOG_LEVEL ?? 'warn' }),
    config: config.settlement,
    bankCodes: config.banks.map((b) => b.code),
    publicUrl: config.publicUrl,
    accounts: { getSettlementAccount: async () => null },
    files: createBankFileTotals(db),
  });
}
