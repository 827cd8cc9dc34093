import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { ConfigError } from '../../../../platform/config.ts';
import { formatRupees, parseRupees } from '../../../../platform/money.ts';
import { BankCallError, type BankCallback, type BankResult, type IntentRequest } from '../../types.ts';
import { pem, type TransportResponse } from '../../transport.ts';
import { defineConnector, type CallbackVerdict } from '../contract.ts';
import { pspResult, pspStatusResult } from './codes.ts';
import { sandboxKeys } from './sandbox.ts';
import {
  PSP_PATHS,
  envelopeFields,
  envelopeFromForm,
  open,
  seal,
  type PspCallback,
  type PspPayToVaRequest,
  type PspService,
  type PspStatusResponse,
  type PspTxnRequest,
  type PspTxnResponse,
} from './wire.ts';

// Connector for the pspbank wire format (wire.ts): bodies encrypted to the other side's RSA key
// (AES-256-GCM session key wrapped with RSA-OAEP), signed with the sender's RSA key, the bank's
// own response codes (codes.ts), a status API that answers in other terms than the callback, and
// form-encoded callbacks. The shared HMAC secret (BANKS[].secret) is not used by this format.

const SecretName = Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,127}$' });

export const PspSettings = Type.Object(
  {
    /** The merchant id the bank assigned at onboarding; in every message, checked on every answer. */
    merchant_id: Type.String({ pattern: '^[A-Za-z0-9]{4,32}$' }),
    /** Our RSA private key (PEM) as a secret: signs requests, opens answers and callbacks. */
    merchant_private_key_secret: Type.Optional(SecretName),
    /** …or as a file (a mounted Kubernetes Secret). */
    merchant_private_key_file: Type.Optional(Type.String({ minLength: 1 })),
    /** The bank's RSA public key: PEM text or a file path. Public, so it may sit in config. */
    bank_public_key: Type.Optional(Type.String({ minLength: 1 })),
    /** The bank's previous public key, still accepted while the bank rotates. */
    bank_public_key_previous: Type.Optional(Type.String({ minLength: 1 })),
    /** Development and tests only: both key pairs made in this directory for the simulator. */
    sandbox_keys_dir: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const TRAN_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export const pspbank = defineConnector({
  name: 'pspbank',
  settings: PspSettings,
  create(ctx) {
    const { bank, settings: s, clock } = ctx;
    const setting = (k: string) => `BANKS[${bank.code}].settings.${k}`;

    // Key material, checked now so a bad key stops the start rather than the first payment.
    let sandbox: ReturnType<typeof sandboxKeys> | undefined;
    if (s.sandbox_keys_dir) {
      if (ctx.production) throw new ConfigError(setting('sandbox_keys_dir'), 'is for development and tests only');
      sandbox = sandboxKeys(s.sandbox_keys_dir);
    } else {
      if (!s.bank_public_key) throw new ConfigError(setting('bank_public_key'), 'is required');
      if (!s.merchant_private_key_secret === !s.merchant_private_key_file)
        throw new ConfigError(setting('merchant_private_key_secret'), 'give either it or merchant_private_key_file');
    }
    const readKey = (what: string, f: () => KeyObject): KeyObject => {
      try {
        return f();
      } catch (e) {
        throw new ConfigError(setting(what), `is not a usable RSA key (${(e as Error).message})`);
      }
    };
    const bankKeys: KeyObject[] = [
      readKey('bank_public_key', () => createPublicKey(sandbox?.bankPublic ?? pem(s.bank_public_key)!)),
      ...(s.bank_public_key_previous
        ? [readKey('bank_public_key_previous', () => createPublicKey(pem(s.bank_public_key_previous)!))]
        : []),
    ];
    const fileKey = sandbox
      ? readKey('sandbox_keys_dir', () => createPrivateKey(sandbox.merchantPrivate))
      : s.merchant_private_key_file
        ? readKey('merchant_private_key_file', () => createPrivateKey(readFileSync(s.merchant_private_key_file!)))
        : undefined;
    // A key held as a secret is read at use (it may rotate); parsed once per value.
    let cached: { pem: string; key: KeyObject } | undefined;
    const merchantKey = (): KeyObject => {
      if (fileKey) return fileKey;
      const value = ctx.secret(s.merchant_private_key_secret!).current;
      if (cached?.pem !== value) cached = { pem: value, key: createPrivateKey(value) };
      return cached.key;
    };

    const unreadable = (op: string, why: string) =>
      new BankCallError('uncertain', `Bank ${bank.code} sent an answer we cannot read (${why})`, {
        bank: bank.code,
        op,
        timeout: false,
      });

    /** Seals `payload`, sends it, opens the answer and checks it answers this request. */
    function exchange<T extends { merchantId?: unknown; merchantTranId?: unknown; response?: unknown }>(
      op: string,
      service: PspService,
      path: string,
      payload: { merchantTranId: string },
      idempotent: boolean,
    ): Promise<T> {
      return ctx.transport().call(
        {
          op,
          path,
          // Sealed per attempt: a fresh requestId, timestamp and session key.
          build: () => ({
            headers: { 'content-type': 'application/json', 'x-merchant-id': s.merchant_id },
            body: JSON.stringify(
              seal(payload, { service, recipient: bankKeys[0], signer: merchantKey(), now: clock.now() }),
            ),
          }),
          idempotent,
        },
        (res: TransportResponse) => {
          let env: unknown;
          try {
            env = JSON.parse(res.body.toString('utf8'));
          } catch {
            throw unreadable(op, 'not JSON');
          }
          const e = envelopeFields(env);
          if (!e || e.service !== service) throw unreadable(op, 'not an envelope for this service');
          const o = open(e, { recipient: merchantKey(), senders: bankKeys });
          // An answer we cannot authenticate is no answer: the bank may have acted; ask again later.
          if (!o.ok) throw unreadable(op, o.reason);
          const p = o.payload as T;
          if (!p || typeof p !== 'object' || typeof p.response !== 'string' || p.response === '')
            throw unreadable(op, 'no response code');
          if (p.merchantId !== s.merchant_id || p.merchantTranId !== payload.merchantTranId)
            throw unreadable(op, 'answers another transaction');
          return p;
        },
      );
    }

    const extra = (p: { BankRRN?: string; OriginalBankRRN?: string; payerVa?: string; message?: string }) => ({
      bankRef: str(p.BankRRN) ?? str(p.OriginalBankRRN),
      payerVpa: str(p.payerVa),
      message: str(p.message),
    });

    const txnBody = (req: IntentRequest): PspTxnRequest => ({
      merchantId: s.merchant_id,
      merchantTranId: req.txnRef,
      amount: formatRupees(req.amountPaise),
      payeeVa: req.payeeVpa,
      payeeName: req.payeeName,
      mcc: req.mcc,
      ...(req.note ? { note: req.note } : {}),
      // Rounded up: the bank must not expire the request before we do.
      validityMinutes: Math.max(1, Math.ceil((req.expiresAt.getTime() - clock.now().getTime()) / 60_000)),
      callbackUrl: req.callbackUrl,
    });

    function readCallback(p: unknown): BankCallback | undefined {
      if (!p || typeof p !== 'object' || Array.isArray(p)) return undefined;
      const c = p as Partial<PspCallback>;
      if (c.merchantId !== s.merchant_id) return undefined;
      const ref = str(c.merchantTranId);
      const code = str(c.ResponseCode);
      if (!ref || !TRAN_ID_RE.test(ref) || !code || (c.type !== 'PAYMENT' && c.type !== 'REFUND')) return undefined;
      let amountPaise: number;
      try {
        amountPaise = parseRupees(String(c.PayerAmount));
      } catch {
        return undefined;
      }
      let result: BankResult = pspResult(code, {
        bankRef: str(c.BankRRN),
        payerVpa: str(c.PayerVA),
        message: str(c.message),
      });
      // The status word and the code must agree; when they do not, nobody knows: reconcile.
      const says = c.TxnStatus === 'SUCCESS' ? 'success' : c.TxnStatus === 'PENDING' ? 'pending' : 'failed';
      const means =
        result.outcome === 'success' || result.outcome === 'pending'
          ? result.outcome
          : result.outcome === 'deemed' || result.outcome === 'unknown'
            ? says
            : 'failed';
      if (says !== means) result = { ...result, outcome: 'deemed', message: 'callback status and code disagree' };
      return { kind: c.type === 'PAYMENT' ? 'payment' : 'refund', ref, result: { ...result, amountPaise } };
    }

    return {
      code: bank.code,

      async registerIntent(req) {
        const p = await exchange<PspTxnResponse>(
          'register_intent',
          'QrIntent',
          PSP_PATHS.qrIntent,
          txnBody(req),
          false,
        );
        const r = pspResult(p.response, extra(p));
        // The bank refused the intent outright (a known failure code): nothing can be paid on it.
        if (r.outcome === 'failed' || r.outcome === 'expired')
          throw new BankCallError('rejected', `Bank ${bank.code} refused the intent (${p.response})`, {
            bank: bank.code,
            op: 'register_intent',
            response_code: r.responseCode,
          });
        if (r.outcome !== 'pending' && r.outcome !== 'success') throw unreadable('register_intent', 'unknown code');
        return { bankRef: str(p.BankRRN) };
      },

      async sendCollect(req) {
        const body = { ...txnBody(req), payerVa: req.payerVpa };
        const p = await exchange<PspTxnResponse>('send_collect', 'CollectPay', PSP_PATHS.collect, body, false);
        return pspResult(p.response, extra(p));
      },

      async checkStatus(txnRef) {
        const p = await exchange<PspStatusResponse>(
          'check_status',
          'TxnStatus',
          PSP_PATHS.txnStatus,
          { merchantId: s.merchant_id, merchantTranId: txnRef } as { merchantTranId: string },
          true,
        );
        return pspStatusResult(p, extra(p));
      },

      async refund(req) {
        const body = {
          merchantId: s.merchant_id,
          merchantTranId: req.refundRef,
          originalMerchantTranId: req.originalTxnRef,
          refundAmount: formatRupees(req.amountPaise),
          ...(req.note ? { note: req.note } : {}),
          callbackUrl: req.callbackUrl,
        };
        const p = await exchange<PspTxnResponse>('refund', 'Refund', PSP_PATHS.refund, body, false);
        return pspResult(p.response, extra(p));
      },

      async checkRefundStatus(refundRef) {
        const p = await exchange<PspStatusResponse>(
          'check_refund_status',
          'RefundStatus',
          PSP_PATHS.refundStatus,
          { merchantId: s.merchant_id, merchantTranId: refundRef } as { merchantTranId: string },
          true,
        );
        return pspStatusResult(p, extra(p));
      },

      // PayToVa: never retried by the transport; after an uncertain answer PayToVaStatus finds out.
      async pushCredit(req) {
        const body: PspPayToVaRequest = {
          merchantId: s.merchant_id,
          merchantTranId: req.creditRef,
          payeeVa: req.payeeVpa,
          amount: formatRupees(req.amountPaise),
          remarks: req.note,
          ...(req.relatedTxnRef ? { relatedMerchantTranId: req.relatedTxnRef } : {}),
        };
        const p = await exchange<PspTxnResponse>('push_credit', 'PayToVa', PSP_PATHS.payToVa, body, false);
        return pspResult(p.response, extra(p));
      },

      async checkPushCreditStatus(creditRef) {
        const p = await exchange<PspStatusResponse>(
          'check_push_credit_status',
          'PayToVaStatus',
          PSP_PATHS.payToVaStatus,
          { merchantId: s.merchant_id, merchantTranId: creditRef } as { merchantTranId: string },
          true,
        );
        return pspStatusResult(p, extra(p));
      },

      verifyCallback(rawBody): CallbackVerdict {
        // Form-encoded; the envelope's fields as form fields. Anything else is unreadable.
        if (rawBody.length > 256 * 1024) return { ok: false, reason: 'malformed_body' };
        const e = envelopeFromForm(rawBody.toString('utf8'));
        if (e?.service !== 'Callback') return { ok: false, reason: 'malformed_body' };
        const o = open(e, { recipient: merchantKey(), senders: bankKeys });
        if (!o.ok) return { ok: false, reason: o.reason };
        const callback = readCallback(o.payload);
        if (!callback) return { ok: false, reason: 'malformed_body' };
        return { ok: true, callback, replayKey: o.requestId, sentAt: o.sentAt };
      },
    };
  },
});
