// The simbank wire format lives with its connector (banks/connectors/simbank/wire.ts); the
// simulator speaks it from there, through the banks module's public face, so the two cannot drift apart.
export {
  SIM_PATHS,
  type WireIntentRequest,
  type WireCollectRequest,
  type WireIntentResponse,
  type WireTxnResponse,
  type WireRefundRequest,
  type WireCreditRequest,
  type WireCallback,
  type WireError,
} from '../../modules/banks/index.ts';
