// The settlement module's public face: other modules and the app import only from here.
export { createSettlementService, type SettlementService, type SettlementDeps } from './settlement.service.ts';
export type { ReversalRequests } from './reversals/reversals.service.ts';
export {
  COMPENSATION_PAYEE_VPA_FIELD,
  type CompensationRetryApprovals,
} from './reversals/compensationRetry.service.ts';
export type { BankFileTotals } from './cycles/cycles.service.ts';
export type { SettlementAccounts } from './payouts/payouts.service.ts';
export { loadSettlementConfig, type SettlementConfig } from './settlement.settings.ts';
export { parseCycleKey, cycleOf, lastEndedCycle, type CycleWindow } from './cycles/cycleKeys.ts';
export { registerSettlementRoutes } from './settlement.routes.ts';
export { registerSettlementMetrics } from './settlement.metrics.ts';
export { RBI_UPI_MERCHANT, deadlineAt, delayDays } from './reversals/deadline.ts';
export { BULK_TRANSFER_FORMATS } from './payouts/formats.ts';
export { runSettlementVerify, verifySettlement, type SettlementViolation } from './settlement.verify.ts';
// Reconciliation with the banks' files (recon/), part of this module.
export * from './recon/index.ts';
// The console's view of the exception queue (ages and deadlines).
export { registerReconQueueRoutes } from './recon/queue.routes.ts';
