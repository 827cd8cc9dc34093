import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  NPCI_TO_PSP,
  sandboxKeys,
  PSP_PATHS,
  envelopeFields,
  envelopeToForm,
  open,
  seal,
  type PspCallback,
  type PspService,
  type PspStatusResponse,
  type PspTxnResponse,
} from '../../modules/banks/index.ts';
import { SimError, type CallbackChannel, type SimEngine } from './engine.ts';
import type { WireTxnResponse } from './wire.ts';
import type { SimCredits } from './credits.ts';

// The simulator speaking the pspbank format (connectors/pspbank/wire.ts) over the same simulated
// bank as the simbank routes: same transactions, same outcomes, same customer. Only the wire
// differs: sealed envelopes both ways, the bank's own codes, a status answer in other terms than
// the callback, and form-encoded callbacks.

export interface PspSimOptions {
  /** Sandbox keys shared with the connector (connectors/pspbank/sandbox.ts). */
  keysDir: string;
}

const DEEMED = new Set(['U67', 'U68', 'BT', 'UT', 'RB', 'RR']);
const pspCode = (npci: string) => NPCI_TO_PSP[npci] ?? npci;

export function registerPspRoutes(
  app: FastifyInstance,
  engine: SimEngine,
  o: PspSimOptions & { now: () => Date; maxAgeSeconds: number; credits?: SimCredits },
) {
  const keys = sandboxKeys(o.keysDir);
  const bankKey: KeyObject = createPrivateKey(keys.bankPrivate);
  const merchantKey: KeyObject = createPublicKey(keys.merchantPublic);
  const seen = new Map<string, number>();

  const sealFor = (service: PspService, payload: unknown) =>
    seal(payload, { service, recipient: merchantKey, signer: bankKey, now: o.now() });

  function channel(merchantId: string): CallbackChannel {
    return {
      encode(p) {
        const success = p.response_code === '00';
        const payload: PspCallback = {
          merchantId,
          type: p.type === 'payment' ? 'PAYMENT' : 'REFUND',
          merchantTranId: p.type === 'payment' ? p.txn_ref : p.refund_ref,
          ...(p.type === 'refund' ? { originalMerchantTranId: p.original_txn_ref } : {}),
          TxnStatus: success ? 'SUCCESS' : DEEMED.has(p.response_code) ? 'PENDING' : 'FAILURE',
          ResponseCode: pspCode(p.response_code),
          ...(p.type === 'payment' && p.payer_vpa ? { PayerVA: p.payer_vpa } : {}),
          PayerAmount: p.amount,
          ...(p.bank_ref ? { BankRRN: p.bank_ref } : {}),
          ...(p.message ? { message: p.message } : {}),
        };
        return {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: envelopeToForm(sealFor('Callback', payload)),
        };
      },
    };
  }

  /** Opens a request: the merchant's signature, freshness and single use, then the payload. */
  function read(req: FastifyRequest, service: PspService): Record<string, unknown> {
    const e = envelopeFields(req.body);
    if (!e || e.service !== service) throw new SimError(400, 'invalid_request', `body is not a ${service} envelope`);
    const r = open(e, { recipient: bankKey, senders: [merchantKey] });
    if (!r.ok) throw new SimError(r.reason === 'bad_signature' ? 401 : 400, r.reason, 'envelope refused');
    const now = o.now().getTime();
    if (Math.abs(now - r.sentAt.getTime()) > o.maxAgeSeconds * 1000)
      throw new SimError(401, 'stale_timestamp', 'request is too old');
    if (seen.size > 10_000) for (const [k, exp] of seen) if (exp < now) seen.delete(k);
    if (seen.has(r.requestId)) throw new SimError(409, 'replayed_request', 'requestId already received');
    seen.set(r.requestId, now + 2 * o.maxAgeSeconds * 1000);
    if (!r.payload || typeof r.payload !== 'object')
      throw new SimError(400, 'invalid_request', 'payload is not an object');
    return r.payload as Record<string, unknown>;
  }

  const txnAnswer = (merchantId: unknown, r: WireTxnResponse, ref: string): PspTxnResponse => {
    const code = pspCode(r.response_code);
    return {
      success: r.response_code === '00' || r.response_code === '01' ? 'true' : 'false',
      response: code,
      ...(r.message ? { message: r.message } : {}),
      merchantId: String(merchantId),
      merchantTranId: ref,
      ...(r.bank_ref ? { BankRRN: r.bank_ref } : {}),
      ...(r.payer_vpa ? { payerVa: r.payer_vpa } : {}),
    };
  };

  const statusAnswer = (merchantId: unknown, r: WireTxnResponse, ref: string): PspStatusResponse => {
    const base = { merchantId: String(merchantId), merchantTranId: ref };
    if (r.response_code === 'U48')
      return { ...base, success: 'false', response: '5004', message: 'no such transaction' };
    const c = r.response_code;
    const status =
      c === '00' ? 'SUCCESS' : c === '01' ? 'PENDING' : c === 'U69' ? 'EXPIRED' : DEEMED.has(c) ? 'DEEMED' : 'FAILURE';
    return {
      ...base,
      success: 'true',
      response: '0',
      status,
      ...(status === 'FAILURE' || status === 'DEEMED' ? { txnResponseCode: pspCode(c) } : {}),
      ...(r.bank_ref ? { OriginalBankRRN: r.bank_ref } : {}),
      ...(r.payer_vpa ? { payerVa: r.payer_vpa } : {}),
    };
  };

  const txnBody = (p: Record<string, unknown>) => {
    const minutes = Number(p.validityMinutes);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 7 * 24 * 60)
      throw new SimError(400, 'invalid_request', 'validityMinutes must be a whole number of minutes');
    return {
      txn_ref: p.merchantTranId,
      amount: p.amount,
      currency: 'INR',
      payee_vpa: p.payeeVa,
      payee_name: p.payeeName,
      mcc: p.mcc,
      ...(p.note ? { note: p.note } : {}),
      expires_at: new Date(o.now().getTime() + minutes * 60_000).toISOString(),
      callback_url: p.callbackUrl,
    };
  };

  const reply = (service: PspService, payload: unknown) => sealFor(service, payload);

  app.post(PSP_PATHS.qrIntent, async (req) => {
    const p = read(req, 'QrIntent');
    const r = engine.registerIntent(txnBody(p), channel(String(p.merchantId)));
    return reply('QrIntent', {
      success: 'true',
      response: '92',
      message: 'QR intent registered',
      merchantId: String(p.merchantId),
      merchantTranId: r.txn_ref,
      BankRRN: r.bank_ref,
    } satisfies PspTxnResponse);
  });
  app.post(PSP_PATHS.collect, async (req) => {
    const p = read(req, 'CollectPay');
    const r = engine.sendCollect({ ...txnBody(p), payer_vpa: p.payerVa }, channel(String(p.merchantId)));
    return reply('CollectPay', txnAnswer(p.merchantId, r, String(p.merchantTranId)));
  });
  app.post(PSP_PATHS.txnStatus, async (req) => {
    const p = read(req, 'TxnStatus');
    const r = engine.status({ txn_ref: p.merchantTranId });
    return reply('TxnStatus', statusAnswer(p.merchantId, r, String(p.merchantTranId)));
  });
  app.post(PSP_PATHS.refund, async (req) => {
    const p = read(req, 'Refund');
    const r = engine.refund(
      {
        refund_ref: p.merchantTranId,
        original_txn_ref: p.originalMerchantTranId,
        amount: p.refundAmount,
        currency: 'INR',
        ...(p.note ? { note: p.note } : {}),
        callback_url: p.callbackUrl,
      },
      channel(String(p.merchantId)),
    );
    return reply('Refund', txnAnswer(p.merchantId, r, String(p.merchantTranId)));
  });
  app.post(PSP_PATHS.refundStatus, async (req) => {
    const p = read(req, 'RefundStatus');
    const r = engine.refundStatus({ refund_ref: p.merchantTranId });
    return reply('RefundStatus', statusAnswer(p.merchantId, r, String(p.merchantTranId)));
  });
  // PayToVa (push credits, credits.ts): answered like a Refund, its status like a RefundStatus.
  const credits = o.credits;
  if (credits) {
    app.post(PSP_PATHS.payToVa, async (req) => {
      const p = read(req, 'PayToVa');
      const r = credits.credit({
        credit_ref: p.merchantTranId,
        payee_vpa: p.payeeVa,
        amount: p.amount,
        currency: 'INR',
        note: p.remarks,
      });
      return reply('PayToVa', txnAnswer(p.merchantId, r, String(p.merchantTranId)));
    });
    app.post(PSP_PATHS.payToVaStatus, async (req) => {
      const p = read(req, 'PayToVaStatus');
      const r = credits.status({ credit_ref: p.merchantTranId });
      return reply('PayToVaStatus', statusAnswer(p.merchantId, r, String(p.merchantTranId)));
    });
  }
}
