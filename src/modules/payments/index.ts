export {
  createPaymentsService,
  paymentView,
  refundView,
  type PaymentsService,
  type PaymentHooks,
  type CreatePaymentInput,
  type RefundApprovals,
  type ApprovedRefund,
  type PaymentView,
  type RefundView,
} from './payments.service.ts';
export { registerPaymentRoutes } from './payments.routes.ts';
export { auditPaymentHooks } from './payments.audit.ts';
export { buildUpiUri } from './upiUri.ts';
export * from './payments.state.ts';
export type { PaymentHint, PaymentRow, RefundRow } from './payments.repo.ts';
export { PAYER_VPA_FIELD, type PayerVpaCipher } from './payments.fields.ts';
export * as paymentSchemas from './payments.schemas.ts';
export { PaymentRewardsRequest, type PaymentRewardsInput } from './payments.schemas.ts';
export { registerPaymentInsightRoutes, paymentStats, paymentIdFloor, type PaymentStats } from './payments.insights.ts';
export { registerPaymentBacklogMetrics, paymentsMetrics, completionOutcome } from './payments.metrics.ts';
export {
  reconPaymentsSql,
  reconRefundsSql,
  listFlaggedPayments,
  clearReconciliationFlag,
  type FlaggedPayment,
} from './payments.recon.ts';
