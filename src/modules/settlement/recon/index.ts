// Public face of reconciliation with the banks' files (README.md beside this file).
import type { Db } from '../../../platform/db.ts';
import type { BankFileTotals } from './types.ts';
import * as repo from './recon.repo.ts';

export {
  createReconService,
  type ReconService,
  type ReconDeps,
  type IngestReport,
  type ExceptionRow,
} from './recon.service.ts';
export { registerReconRoutes } from './recon.routes.ts';
export { registerReconMetrics } from './recon.metrics.ts';
export { loadMappings, validateMapping, createParser, cycleKeyFrom, MappingError, type Mapping } from './mapping.ts';
export { loadRules, validateRules, type RuleSet, type Rule } from './rules.ts';
export { FileRejected } from './ingest.ts';
export * from './types.ts';

/** What the bank's file for a cycle said in total, for settlement's cycle close (null: no matched file yet). */
export function createBankFileTotals(db: Db): BankFileTotals {
  return {
    async forCycle(bankCode, cycleKey) {
      const f = await repo.matchedFileForCycle(db, bankCode, cycleKey);
      return f ? { fileId: f.id, creditPaise: f.credit_paise, debitPaise: f.debit_paise, lines: f.lines } : null;
    },
  };
}
