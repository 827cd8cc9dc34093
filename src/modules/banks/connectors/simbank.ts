import type { BankConfig } from '../../../platform/config.ts';
import { AppError } from '../../../platform/errors.ts';
import { formatRupees, parseRupees } from '../../../platform/money.ts';
import { systemClock, type Clock } from '../../../platform/clock.ts';
import type { Metrics } from '../../../platform/metrics.ts';
import { signRequest } from '../../../platform/signing.ts';
import { toBankResult } from '../responseCodes.ts';
import type {
  BankCallback,
  BankConnector,
  BankResult,
  CollectRequest,
  IntentRequest,
  RefundRequest,
} from '../types.ts';
import {
  SIM_PATHS,
  type WireCollectRequest,
  type WireIntentRequest,
  type WireIntentResponse,
  type WireRefundRequest,
  type WireTxnResponse,
} from '../simulator/wire.ts';

// Connector for the bank simulator's wire format (simulator/wire.ts). A real bank gets a file
// like this one: its own request shapes and quirks, mapped onto BankConnector.

export interface ConnectorOptions {
  publicUrl: string;
  timeoutMs: number;
  metrics?: Pick<Metrics, 'bankCalls'>;
  clock?: Clock;
  /** For tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

type Op = 'register_intent' | 'send_collect' | 'check_status' | 'refund' | 'check_refund_status';

// The request may have reached the bank unless the connection itself was never made.
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH']);

function isTimeout(e: unknown): boolean {
  const name = (e as { name?: string } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

function causeCode(e: unknown): string | undefined {
  const c = (e as { cause?: { code?: string } } | null)?.cause;
  return typeof c?.code === 'string' ? c.code : undefined;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function createSimbankConnector(bank: BankConfig, opts: ConnectorOptions): BankConnector {
  const doFetch = opts.fetch ?? fetch;
  const clock = opts.clock ?? systemClock;
  const base = bank.url.replace(/\/$/, '');

  async function call<T>(op: Op, path: string, body: unknown): Promise<T> {
    const raw = JSON.stringify(body);
    const started = performance.now();
    let outcome = 'ok';
    try {
      let res: Response;
      let text: string;
      try {
        res = await doFetch(base + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...signRequest(bank.secret, raw, clock.now()) },
          body: raw,
          // One budget for connect, send and reading the answer: a bank that stalls mid-body
          // is as late as one that never answers.
          signal: AbortSignal.timeout(opts.timeoutMs),
        });
        text = await res.text();
      } catch (e) {
        if (isTimeout(e)) {
          outcome = 'timeout';
          // The bank may have acted on it: the caller must find out (status check), not assume.
          throw new AppError('bank_unavailable', `Bank ${bank.code} did not answer in time`, {
            bank: bank.code,
            op,
            timeout: true,
            uncertain: true,
          });
        }
        outcome = 'network_error';
        const code = causeCode(e);
        throw new AppError('bank_unavailable', `Bank ${bank.code} could not be reached`, {
          bank: bank.code,
          op,
          timeout: false,
          uncertain: !(code && NOT_SENT_CODES.has(code)),
        });
      }
      if (res.status >= 500) {
        outcome = 'http_error';
        throw new AppError('bank_unavailable', `Bank ${bank.code} answered with an error`, {
          bank: bank.code,
          op,
          timeout: false,
          uncertain: true,
          status: res.status,
        });
      }
      if (res.status === 409) {
        outcome = 'http_error';
        throw new AppError('conflict', `Bank ${bank.code} already has this reference with other details`, {
          bank: bank.code,
          op,
        });
      }
      if (res.status >= 400) {
        // Our request was refused (bad signature, bad shape): retrying will not help, and a
        // person must look — typically a secret out of step with the bank.
        outcome = 'http_error';
        throw new AppError('internal_error', `Bank ${bank.code} refused the request`, {
          bank: bank.code,
          op,
          status: res.status,
        });
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        outcome = 'bad_response';
        throw new AppError('bank_unavailable', `Bank ${bank.code} sent an unreadable answer`, {
          bank: bank.code,
          op,
          timeout: false,
          uncertain: true,
        });
      }
    } finally {
      opts.metrics?.bankCalls.observe({ bank: bank.code, op, outcome }, (performance.now() - started) / 1000);
    }
  }

  function result(op: Op, r: WireTxnResponse): BankResult {
    if (!r || typeof r.response_code !== 'string' || r.response_code === '') {
      throw new AppError('bank_unavailable', `Bank ${bank.code} sent an answer without a response code`, {
        bank: bank.code,
        op,
        timeout: false,
        uncertain: true,
      });
    }
    return toBankResult(r.response_code, { bankRef: str(r.bank_ref), payerVpa: str(r.payer_vpa), message: str(r.message) });
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

  return {
    code: bank.code,

    async registerIntent(req) {
      const r = await call<WireIntentResponse>('register_intent', SIM_PATHS.intents, intentBody(req));
      return { bankRef: str(r?.bank_ref) };
    },

    async sendCollect(req: CollectRequest) {
      const body: WireCollectRequest = { ...intentBody(req), payer_vpa: req.payerVpa };
      return result('send_collect', await call<WireTxnResponse>('send_collect', SIM_PATHS.collects, body));
    },

    async checkStatus(txnRef) {
      return result('check_status', await call<WireTxnResponse>('check_status', SIM_PATHS.txnStatus, { txn_ref: txnRef }));
    },

    async refund(req: RefundRequest) {
      const body: WireRefundRequest = {
        refund_ref: req.refundRef,
        original_txn_ref: req.originalTxnRef,
        amount: formatRupees(req.amountPaise),
        currency: 'INR',
        ...(req.note ? { note: req.note } : {}),
        callback_url: req.callbackUrl,
      };
      return result('refund', await call<WireTxnResponse>('refund', SIM_PATHS.refunds, body));
    },

    async checkRefundStatus(refundRef) {
      return result(
        'check_refund_status',
        await call<WireTxnResponse>('check_refund_status', SIM_PATHS.refundStatus, { refund_ref: refundRef }),
      );
    },

    parseCallback(body: unknown): BankCallback {
      const o = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
      const code = str(o.response_code);
      const ref = o.type === 'payment' ? str(o.txn_ref) : o.type === 'refund' ? str(o.refund_ref) : undefined;
      if (!code || !ref || !/^[A-Za-z0-9]{2,3}$/.test(code)) {
        throw new AppError('validation_failed', `Callback from bank ${bank.code} is not in the expected format`);
      }
      let amountPaise: number | undefined;
      if (o.amount !== undefined) {
        try {
          amountPaise = parseRupees(String(o.amount));
        } catch {
          throw new AppError('validation_failed', `Callback from bank ${bank.code} carries an invalid amount`);
        }
      }
      return {
        kind: o.type as 'payment' | 'refund',
        ref,
        result: { ...toBankResult(code, { bankRef: str(o.bank_ref), payerVpa: str(o.payer_vpa), message: str(o.message) }), ...(amountPaise === undefined ? {} : { amountPaise }) },
      };
    },
  };
}
