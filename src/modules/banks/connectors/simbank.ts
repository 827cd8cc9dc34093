import type { BankConfig } from '../banks.settings.ts';
import { AppError, type ErrorCode } from '../../../platform/errors.ts';
import { formatRupees, parseRupees } from '../../../platform/money.ts';
import { systemClock, type Clock } from '../../../platform/clock.ts';
import type { Metrics } from '../../../platform/metrics.ts';
import { signRequest } from '../../../platform/signing.ts';
import { toBankResult } from '../responseCodes.ts';
import { BankCallError } from '../types.ts';
import type {
  BankCallFailureKind,
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
    const fail = (
      delivery: BankCallFailureKind,
      message: string,
      extra: Record<string, unknown> = {},
      code?: ErrorCode,
    ) => new BankCallError(delivery, `Bank ${bank.code} ${message}`, { bank: bank.code, op, ...extra }, code);
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
          throw fail('uncertain', 'did not answer in time', { timeout: true });
        }
        outcome = 'network_error';
        // Refused or unroutable: never sent. Anything else (a reset or a hang-up after the
        // request was written, a TLS failure mid-way) may have reached the bank.
        const code = causeCode(e);
        throw fail(code && NOT_SENT_CODES.has(code) ? 'not_sent' : 'uncertain', 'could not be reached', {
          timeout: false,
          ...(code ? { cause: code } : {}),
        });
      }
      if (res.status >= 500) {
        // A 5xx says nothing about whether the bank acted before it failed (a gateway's 502
        // after the core committed is the classic case).
        outcome = 'http_error';
        throw fail('uncertain', 'answered with an error', { timeout: false, status: res.status });
      }
      if (res.status === 409) {
        outcome = 'http_error';
        throw fail('rejected', 'already has this reference with other details', { status: 409 }, 'conflict');
      }
      if (res.status >= 400) {
        // Our request was refused (bad signature, bad shape): retrying will not help, and a
        // person must look — typically a secret out of step with the bank.
        outcome = 'http_error';
        throw fail('rejected', 'refused the request', { status: res.status }, 'internal_error');
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        outcome = 'bad_response';
        throw fail('uncertain', 'sent an unreadable answer', { timeout: false });
      }
    } finally {
      opts.metrics?.bankCalls.observe({ bank: bank.code, op, outcome }, (performance.now() - started) / 1000);
    }
  }

  function result(op: Op, r: WireTxnResponse): BankResult {
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
      return result(
        'check_status',
        await call<WireTxnResponse>('check_status', SIM_PATHS.txnStatus, { txn_ref: txnRef }),
      );
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
        result: {
          ...toBankResult(code, { bankRef: str(o.bank_ref), payerVpa: str(o.payer_vpa), message: str(o.message) }),
          ...(amountPaise === undefined ? {} : { amountPaise }),
        },
      };
    },
  };
}
