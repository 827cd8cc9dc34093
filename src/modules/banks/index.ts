// Public face of the banks module: other modules import from here only.
export type {
  BankOutcome,
  BankResult,
  IntentRequest,
  CollectRequest,
  RefundRequest,
  PushCreditRequest,
  BankCallback,
  BankConnector,
  BankCallOutcome,
  BankCallFailureKind,
} from './types.ts';
export { BankCallError } from './types.ts';
export { callBank } from './bankCall.ts';
export {
  createBanksService,
  type BanksService,
  type BanksServiceDeps,
  type BankStatus,
  type BankHealthView,
  type RoutingView,
  type CheckedCallback,
  type ReplayGuard,
} from './banks.service.ts';
export { downBankCodesSql } from './banks.repo.ts';
export {
  createConnector,
  bindConnectorSecrets,
  CONNECTOR_NAMES,
  type ConnectorOptions,
  type Connector,
  type ConnectorDefinition,
  type CallbackVerdict,
} from './connectors/index.ts';
export { registerBankCallbackRoute, type CallbackHandler } from './callbacks.routes.ts';
export { RESPONSE_CODES, outcomeForCode, toBankResult, isKnownCode, type ResponseCodeInfo } from './responseCodes.ts';
// The wire formats, for the bank simulator (src/tools/bank-sim), which speaks them from the bank's side.
export * from './connectors/simbank/wire.ts';
export { NPCI_TO_PSP } from './connectors/pspbank/codes.ts';
export { sandboxKeys } from './connectors/pspbank/sandbox.ts';
export {
  PSP_PATHS,
  envelopeFields,
  envelopeToForm,
  open,
  seal,
  type PspCallback,
  type PspService,
  type PspStatusResponse,
  type PspTxnResponse,
} from './connectors/pspbank/wire.ts';
export type { BankConfig } from './banks.settings.ts';
export { bindBankSecrets } from './bankSecrets.ts';
