import { Type } from '@sinclair/typebox';
import { formatRupees, parseRupees } from '../../../../platform/money.ts';
import { checkSignature, signRequest } from '../../../../platform/signing.ts';
import { toBankResult } from '../../responseCodes.ts';
import { BankCallError, type BankCallback, type BankResult, type IntentRequest } from '../../types.ts';
import type { TransportResponse } from '../../transport.ts';
import { defineConnector, type CallbackVerdict } from '../contract.ts';
import {
  SIM_PATHS,
  type WireCollectRequest,
  type WireCreditRequest,
  type WireIntentRequest,
  type WireIntentResponse,
  type WireRefundRequest,
  type WireTxnResponse,
} from './wire.ts';
import { parseStrictJson } from '../../../../http/strictJson.ts';

// Connector for the simbank wire format (wire.ts, docs/bank-simulator.md): JSON bodies, NPCI
// response codes as they are, Tillpoint's own HMAC scheme (platform/signing.ts) both ways with
// the shared secret BANKS[].secret / secret_name. No settings of its own.

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export const simbank = defineConnector({
  name: 'simbank',
  settings: Type.Object({}, { additionalProperties: false }),
  create(ctx) {
    const { bank, clock } = ctx;
    const secrets = () => (bank.previousSecret ? [bank.secret, bank.previousSecret] : [bank.secret]);

    function json<T>(res: TransportResponse): T {
      try {
        return JSON.parse(res.body.toString('utf8')) as T;
      } catch {
        throw new BankCallError('uncertain', `Bank ${bank.code} sent an unreadable answer`, {
          bank: bank.code,
          timeout: false,
        });
      }
    }

    function post<T>(op: string, path: string, payload: unknown, idempotent: boolean): Promise<T> {
      const raw = JSON.stringify(payload);
      return ctx.transport().call(
        {
          op,
          path,
          // Signed per attempt: a retry carries a fresh nonce, or the bank would refuse it as a replay.
          build: () => ({
            headers: { 'content-type': 'application/json', ...signRequest(bank.secret, raw, clock.now()) },
            body: raw,
          }),
          idempotent,
        },
        (res) => json<T>(res),
      );
    }

    function result(op: string, r: WireTxnResponse): BankResult {
      if (!r || typeof r.response_code !== 'string' || r.response_code === '') {
        throw new BankCallError('uncertain', `Bank ${bank.code} sent an answer without a response code`, {
          bank: bank.code,
          op,
          timeout: false,
        });
      }
      return toBankResult(r.response_code, {
        bankRef: str(r.bank_ref),
        payerVpa: str(r.payer_vpa),
        message: str(r.message),
      });
    }

    const intentBody = (req: IntentRequest): WireIntentRequest => ({
      txn_ref: req.txnRef,
      amount: formatRupees(req.amountPaise),
      currency: 'INR',
      payee_vpa: req.payeeVpa,
      payee_name: req.payeeName,
      mcc: req.mcc,
      ...(req.note ? { note: req.note } : {}),
      expires_at: req.expiresAt.toISOString(),
      callback_url: req.callbackUrl,
    });

    function parse(body: unknown): BankCallback | undefined {
      const o = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
      const code = str(o.response_code);
      const ref = o.type === 'payment' ? str(o.txn_ref) : o.type === 'refund' ? str(o.refund_ref) : undefined;
      if (!code || !ref || !/^[A-Za-z0-9]{2,3}$/.test(code)) return undefined;
      let amountPaise: number | undefined;
      if (o.amount !== undefined) {
        try {
          amountPaise = parseRupees(String(o.amount));
        } catch {
          return undefined;
        }
      }
      return {
        kind: o.type as 'payment' | 'refund',
        ref,
        result: {
          ...toBankResult(code, { bankRef: str(o.bank_ref), payerVpa: str(o.payer_vpa), message: str(o.message) }),
          ...(amountPaise === undefined ? {} : { amountPaise }),
        },
      };
    }

    return {
      code: bank.code,

      // The simulator answers a repeated txn_ref / refund_ref with its first answer (409 if the
      // details differ), but a real bank of this format may not: only queries are retried.
      async registerIntent(req) {
        const r = await post<WireIntentResponse>('register_intent', SIM_PATHS.intents, intentBody(req), false);
        return { bankRef: str(r?.bank_ref) };
      },

      async sendCollect(req) {
        const body: WireCollectRequest = { ...intentBody(req), payer_vpa: req.payerVpa };
        return result('send_collect', await post<WireTxnResponse>('send_collect', SIM_PATHS.collects, body, false));
      },

      async checkStatus(txnRef) {
        return result(
          'check_status',
          await post<WireTxnResponse>('check_status', SIM_PATHS.txnStatus, { txn_ref: txnRef }, true),
        );
      },

      async refund(req) {
        const body: WireRefundRequest = {
          refund_ref: req.refundRef,
          original_txn_ref: req.originalTxnRef,
          amount: formatRupees(req.amountPaise),
          currency: 'INR',
          ...(req.note ? { note: req.note } : {}),
          callback_url: req.callbackUrl,
        };
        return result('refund', await post<WireTxnResponse>('refund', SIM_PATHS.refunds, body, false));
      },

      async checkRefundStatus(refundRef) {
        return result(
          'check_refund_status',
          await post<WireTxnResponse>('check_refund_status', SIM_PATHS.refundStatus, { refund_ref: refundRef }, true),
        );
      },

      // A push credit is never retried by the transport (the bank pays on the first one it
      // reads); an uncertain answer is followed by a status query with the same credit_ref.
      async pushCredit(req) {
        const body: WireCreditRequest = {
          credit_ref: req.creditRef,
          payee_vpa: req.payeeVpa,
          amount: formatRupees(req.amountPaise),
          currency: 'INR',
          note: req.note,
          ...(req.relatedTxnRef ? { related_txn_ref: req.relatedTxnRef } : {}),
        };
        return result('push_credit', await post<WireTxnResponse>('push_credit', SIM_PATHS.credits, body, false));
      },

      async checkPushCreditStatus(creditRef) {
        return result(
          'check_push_credit_status',
          await post<WireTxnResponse>(
            'check_push_credit_status',
            SIM_PATHS.creditStatus,
            { credit_ref: creditRef },
            true,
          ),
        );
      },

      verifyCallback(rawBody, headers): CallbackVerdict {
        const check = checkSignature({
          secrets: secrets(),
          headers,
          rawBody,
          maxAgeSeconds: ctx.callbackMaxAgeSeconds,
          now: clock.now(),
        });
        if (!check.ok) return { ok: false, reason: check.reason };
        let body: unknown;
        try {
          // Read as the API reads every body: a key twice is malformed, not last-one-wins.
          body = parseStrictJson(rawBody.toString('utf8'));
        } catch {
          return { ok: false, reason: 'malformed_body' };
        }
        const callback = parse(body);
        if (!callback) return { ok: false, reason: 'malformed_body' };
        return { ok: true, callback, replayKey: check.nonce, sentAt: new Date(check.timestamp * 1000) };
      },
    };
  },
});
