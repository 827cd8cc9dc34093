import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContractFixture, Op } from '../contract.testkit.ts';
import { sandboxKeys } from './sandbox.ts';
import { PSP_PATHS, envelopeFields, envelopeToForm, open, seal, type PspService } from './wire.ts';

// The pspbank format as wire.ts documents it, for the contract suite: sealed envelopes both ways,
// the bank's own codes for answers and callbacks, status answers in words (SUCCESS, FAILURE:<code>,
// ...) with the query's own code, form-encoded callbacks.

const dir = mkdtempSync(join(tmpdir(), 'pspbank-contract-'));
const keys = sandboxKeys(dir);
const bankPrivate = createPrivateKey(keys.bankPrivate);
const merchantPublic = createPublicKey(keys.merchantPublic);
const stranger = createPrivateKey(
  generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
);
const MERCHANT = 'CONTRACT01';

const OPS: Record<string, [Op, PspService]> = {
  [PSP_PATHS.qrIntent]: ['register_intent', 'QrIntent'],
  [PSP_PATHS.collect]: ['send_collect', 'CollectPay'],
  [PSP_PATHS.txnStatus]: ['check_status', 'TxnStatus'],
  [PSP_PATHS.refund]: ['refund', 'Refund'],
  [PSP_PATHS.refundStatus]: ['check_refund_status', 'RefundStatus'],
  [PSP_PATHS.payToVa]: ['push_credit', 'PayToVa'],
  [PSP_PATHS.payToVaStatus]: ['check_push_credit_status', 'PayToVaStatus'],
};
const SERVICE: Record<string, PspService> = Object.fromEntries(Object.values(OPS).map(([op, s]) => [op, s]));

export const pspbankFixture: ContractFixture = {
  connector: 'pspbank',
  bank: (code, url) => ({
    code,
    connector: 'pspbank',
    url,
    secret: '',
    settings: { merchant_id: MERCHANT, sandbox_keys_dir: dir },
  }),
  readRequest(path, _headers, body) {
    const op = OPS[path]?.[0] ?? 'unknown';
    let env: unknown;
    try {
      env = JSON.parse(body.toString('utf8'));
    } catch {
      return { op, fields: {}, authentic: false };
    }
    const e = envelopeFields(env);
    const o = e && open(e, { recipient: bankPrivate, senders: [merchantPublic] });
    if (!e || !o?.ok || e.service !== OPS[path]?.[1]) return { op, fields: {}, authentic: false };
    return { op, fields: o.payload as Record<string, unknown>, authentic: true };
  },
  reply(req, native, now) {
    const base = { merchantId: req.fields.merchantId, merchantTranId: req.fields.merchantTranId };
    let payload: Record<string, unknown>;
    if (req.op === 'check_status' || req.op === 'check_refund_status' || req.op === 'check_push_credit_status') {
      const [word, code] = native.split(':');
      payload =
        word === 'NOTFOUND'
          ? { ...base, success: 'false', response: '5004' }
          : {
              ...base,
              success: 'true',
              response: '0',
              status: word,
              ...(code ? { txnResponseCode: code } : {}),
              OriginalBankRRN: '222233334444',
            };
    } else {
      payload = {
        ...base,
        success: native === '0' || native === '92' ? 'true' : 'false',
        response: native,
        BankRRN: '222233334444',
      };
    }
    const env = seal(payload, { service: SERVICE[req.op], recipient: merchantPublic, signer: bankPrivate, now });
    return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(env) };
  },
  txnCodes: [
    { native: '0', outcome: 'success' },
    { native: '92', outcome: 'pending' },
    { native: '1', outcome: 'failed' },
    { native: 'DA', outcome: 'failed' },
    { native: 'DF', outcome: 'failed' },
    { native: 'EX', outcome: 'expired' },
    { native: 'DT', outcome: 'deemed' },
  ],
  statusCodes: [
    { native: 'SUCCESS', outcome: 'success' },
    { native: 'PENDING', outcome: 'pending' },
    { native: 'FAILURE:DA', outcome: 'failed' },
    { native: 'FAILURE', outcome: 'failed' },
    { native: 'EXPIRED', outcome: 'expired' },
    { native: 'DEEMED:DT', outcome: 'deemed' },
    { native: 'FAILURE:ZZ', outcome: 'deemed' },
    { native: 'NOTFOUND', outcome: 'unknown' },
  ],
  unknownTxnCode: 'R77',
  unknownStatusCode: 'ON_HOLD',
  pending: '92',
  refField: 'merchantTranId',
  amountField: 'amount',
  credit: { refField: 'merchantTranId', vpaField: 'payeeVa', amountField: 'amount' },
  callback({ kind, ref, native, amountPaise, at, forge }) {
    const success = native === '0';
    const env = seal(
      {
        merchantId: MERCHANT,
        type: kind === 'payment' ? 'PAYMENT' : 'REFUND',
        merchantTranId: ref,
        ...(kind === 'refund' ? { originalMerchantTranId: 'TPORIG1' } : {}),
        TxnStatus: success ? 'SUCCESS' : native === '92' ? 'PENDING' : 'FAILURE',
        ResponseCode: native,
        PayerAmount: (amountPaise / 100).toFixed(2),
        BankRRN: '555566667777',
      },
      { service: 'Callback', recipient: merchantPublic, signer: forge ? stranger : bankPrivate, now: at },
    );
    return { body: Buffer.from(envelopeToForm(env)), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  },
  malformedCallback() {
    return {
      body: Buffer.from('msg=hello&requestId=1'),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    };
  },
};
