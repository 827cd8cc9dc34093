// The bank simulator: a PSP bank that speaks the simbank wire format (docs/bank-simulator.md).
export { bankSimulatorPlugin, type BankSimulatorOptions, type SimOutage, type OutageMode } from './plugin.ts';
export {
  startBankSimulator,
  parseBankSimArgs,
  BANK_SIM_USAGE,
  DEV_SIM_SECRET,
  type StartBankSimulatorOptions,
  type RunningBankSimulator,
  type BankSimArgs,
} from './standalone.ts';
export { DEFAULT_OUTCOMES, type OutcomeRatios, type SimOutcome } from './engine.ts';
export { parseUpiUri, type ParsedUpiUri } from './upiUri.ts';
export { SIM_PATHS } from './wire.ts';
export {
  writeSettlementFile,
  type SettlementRecord,
  type SettlementFile,
  type Discrepancies,
} from './settlementFile.ts';
