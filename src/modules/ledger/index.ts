// The ledger's public face: other modules import only from here.
export { createLedgerService } from './ledger.service.ts';
export { formatViolation, runLedgerVerify, type LedgerVerifyReport } from './ledger.verify.ts';
export type {
  AccountSpec,
  AccountType,
  EntryInput,
  EntryLine,
  LedgerService,
  LedgerViolation,
  PostedEntry,
} from './types.ts';
export { newJournalId, postEntriesSql, postEntrySql, type AccountSql } from './ledger.repo.ts';
export { entriesByReference, type EntryView } from './ledger.read.ts';
