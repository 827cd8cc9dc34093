// Onboarding: bulk import of merchants, stores, terminals and reward opening balances from CSV or
// JSON-lines files, with declarative column mappings, resumable batches, rejected rows by line,
// terminal credentials in bulk and a reconciliation. README.md beside this file has the rules.
export {
  createOnboardingService,
  DEFAULT_BATCH_SIZE,
  HISTORY_PAYER_VPA_FIELD,
  legacyAccounts,
  isImportId,
  type OnboardingService,
  type OnboardingDeps,
  type ImportInput,
  type ImportReport,
  type Progress,
  type ReconciliationLine,
} from './onboarding.service.ts';
export {
  IMPORT_KINDS,
  isImportKind,
  loadMapping,
  parseMapping,
  shippedMappings,
  defaultMappingName,
  withConstants,
  MAPPINGS_DIR,
  type ImportKind,
  type Mapping,
} from './mapping.ts';
export { readRecords, FileError, type FileFormat } from './reader.ts';
export { registerOnboardingRoutes } from './onboarding.routes.ts';
export { deliverTerminalCredentials, openStoreBundle, type CredentialDelivery } from './credentials.ts';
export { formatReport, reconciliationCsv } from './report.ts';
export { writeFleet, type FleetOptions, type FleetFiles, type HistoryOptions, type HistoryCounts } from './fleet.ts';
