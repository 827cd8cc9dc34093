import type { IncomingHttpHeaders } from 'node:http';
import { checkSignature, signRequest } from '../../../../platform/signing.ts';
import type { ContractFixture, Op } from '../contract.testkit.ts';
import { SIM_PATHS } from './wire.ts';

// The simbank format as its documentation (docs/bank-simulator.md) describes it, for the contract
// suite: JSON, Tillpoint's HMAC both ways, NPCI codes as they are, the same codes in status answers.

const SECRET = 'contract-simbank-secret';
const OPS: Record<string, Op> = {
  [SIM_PATHS.intents]: 'register_intent',
  [SIM_PATHS.collects]: 'send_collect',
  [SIM_PATHS.txnStatus]: 'check_status',
  [SIM_PATHS.refunds]: 'refund',
  [SIM_PATHS.refundStatus]: 'check_refund_status',
  [SIM_PATHS.credits]: 'push_credit',
  [SIM_PATHS.creditStatus]: 'check_push_credit_status',
};

function readJson(body: Buffer): Record<string, unknown> {
  try {
    const v = JSON.parse(body.toString('utf8'));
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

export const simbankFixture: ContractFixture = {
  connector: 'simbank',
  bank: (code, url) => ({ code, connector: 'simbank', url, secret: SECRET }),
  readRequest(path, headers: IncomingHttpHeaders, body) {
    const check = checkSignature({ secrets: [SECRET], headers, rawBody: body, maxAgeSeconds: 300 });
    return { op: OPS[path] ?? 'unknown', fields: readJson(body), authentic: check.ok };
  },
  reply(req, native) {
    const ref = req.fields.txn_ref ?? req.fields.refund_ref ?? req.fields.credit_ref;
    const body =
      req.op === 'register_intent'
        ? { txn_ref: ref, bank_ref: '111122223333', status: 'registered', expires_at: req.fields.expires_at }
        : { txn_ref: ref, response_code: native, bank_ref: '111122223333' };
    return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  },
  txnCodes: [
    { native: '00', outcome: 'success' },
    { native: '01', outcome: 'pending' },
    { native: 'U30', outcome: 'failed' },
    { native: 'ZA', outcome: 'failed' },
    { native: 'BT', outcome: 'deemed' },
  ],
  statusCodes: [
    { native: '00', outcome: 'success' },
    { native: '01', outcome: 'pending' },
    { native: 'Z9', outcome: 'failed' },
    { native: 'U69', outcome: 'expired' },
    { native: 'U67', outcome: 'deemed' },
    { native: 'U48', outcome: 'unknown' },
  ],
  unknownTxnCode: 'Q7',
  unknownStatusCode: 'X9',
  pending: '01',
  refField: 'txn_ref',
  amountField: 'amount',
  credit: { refField: 'credit_ref', vpaField: 'payee_vpa', amountField: 'amount' },
  callback({ kind, ref, native, amountPaise, at, forge }) {
    const amount = (amountPaise / 100).toFixed(2);
    const raw = JSON.stringify(
      kind === 'payment'
        ? { type: 'payment', txn_ref: ref, amount, response_code: native, bank_ref: '999988887777' }
        : { type: 'refund', refund_ref: ref, original_txn_ref: 'TPORIG1', amount, response_code: native },
    );
    return {
      body: Buffer.from(raw),
      headers: { 'content-type': 'application/json', ...signRequest(forge ? 'not-the-secret' : SECRET, raw, at) },
    };
  },
  malformedCallback(at) {
    const raw = '{"type":"payment","txn_ref":';
    return { body: Buffer.from(raw), headers: { 'content-type': 'application/json', ...signRequest(SECRET, raw, at) } };
  },
};
