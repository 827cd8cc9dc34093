import { randomInt } from 'node:crypto';
import { systemClock, type Clock } from '../../platform/clock.ts';
import { formatRupees, parseRupees } from '../../platform/money.ts';
import { signRequest } from '../../platform/signing.ts';
import { injectTraceHeaders } from '../../platform/tracing.ts';
import { parseUpiUri } from './upiUri.ts';
import { createCallbackClient } from './callbackClient.ts';
import type {
  WireCallback,
  WireCollectRequest,
  WireIntentRequest,
  WireIntentResponse,
  WireRefundRequest,
  WireTxnResponse,
} from './wire.ts';
import { settlementRecordsOf } from './settlementFile.ts';
import type { SimFaults } from './faults.ts';

// The simulated bank: in-memory transactions, outcomes drawn from configured ratios, and
// signed callbacks delivered with retries. Kept apart from the HTTP layer (plugin.ts) so the
// bank's behaviour reads in one place.

export type SimOutcome = 'success' | 'decline' | 'pending' | 'timeout';
export interface OutcomeRatios {
  approve: number;
  decline: number;
  pending: number;
  timeout: number;
}

export const DEFAULT_OUTCOMES: OutcomeRatios = { approve: 0.85, decline: 0.1, pending: 0.03, timeout: 0.02 };
// Codes a real switch commonly answers with, for each kind of bad ending.
const DECLINE_CODES = ['ZA', 'Z9', 'ZM', 'U30'];
const DEEMED_CODES = ['U67', 'BT'];
const DEFAULT_RETRY_DELAYS_MS = [500, 2_000, 5_000, 15_000];

/**
 * How callbacks reach Tillpoint for one transaction: the wire format of the bank it was made
 * with. Default: the simbank format (JSON, HMAC-signed). The pspbank routes (psp.ts) hand in their own.
 */
export interface CallbackChannel {
  encode(payload: WireCallback): { headers: Record<string, string>; body: string };
}

export interface SimLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface SimEngineOptions {
  secret: string;
  latencyMs?: number;
  /** Weights, normalised to their sum; a missing one counts as 0 when any is given. */
  outcomes?: Partial<OutcomeRatios>;
  rng?: () => number;
  clock?: Clock;
  logger?: SimLogger;
  /** Waits between callback attempts; one attempt more than there are entries. */
  callbackRetryDelaysMs?: number[];
  callbackTimeoutMs?: number;
  /** Message faults switched on and off at run time (faults.ts): duplicates, early, stale, held callbacks. */
  faults?: SimFaults;
}

/** An error the simulator answers with: HTTP status plus `{ error: { code, message } }`. */
export class SimError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Txn {
  kind: 'intent' | 'collect';
  txnRef: string;
  amountPaise: number;
  payeeVpa: string;
  payerVpa?: string;
  expiresAt: number;
  callbackUrl: string;
  bankRef: string;
  /** awaiting: nobody has paid yet; pending: paid, bank never answers (status stays 01); final: decided. */
  state: 'awaiting' | 'pending' | 'final';
  responseCode: string;
  message?: string;
  refundedPaise: number;
  /** When the bank decided it (settlementFile.ts puts it in a cycle by this time). */
  decidedAt?: number;
  channel?: CallbackChannel;
}

interface Refund {
  refundRef: string;
  originalTxnRef: string;
  amountPaise: number;
  responseCode: string;
  bankRef?: string;
  message: string;
  decidedAt?: number;
  channel?: CallbackChannel;
}

const TXN_REF_RE = /^[A-Za-z0-9]{1,35}$/;
const REF_RE = /^[A-Za-z0-9_-]{1,64}$/;
const VPA_RE = /^[A-Za-z0-9._-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$/;
/** Payer VPAs like `sim-decline.ravi@okbank` choose the outcome of a collect or QR payment, for end-to-end tests. */
const MAGIC_VPA_RE = /^sim-(success|decline|pending|timeout)(?:[._-]|@)/;

function bad(message: string): never {
  throw new SimError(400, 'invalid_request', message);
}

function field(body: Record<string, unknown>, name: string, re?: RegExp, optional = false): string {
  const v = body[name];
  if (v === undefined || v === null || v === '') {
    if (optional) return '';
    bad(`${name} is required`);
  }
  if (typeof v !== 'string') bad(`${name} must be a string`);
  if (re && !re.test(v)) bad(`${name} is not in the expected format`);
  return v;
}

function amount(body: Record<string, unknown>, name = 'amount'): number {
  const s = field(body, name);
  let p: number;
  try {
    p = parseRupees(s);
  } catch {
    bad(`${name} must be rupees with up to two decimals, e.g. "149.00"`);
  }
  if (p <= 0) bad(`${name} must be positive`);
  if (body.currency !== undefined && body.currency !== 'INR') bad('currency must be INR');
  return p;
}

function url(body: Record<string, unknown>, name: string): string {
  const s = field(body, name);
  try {
    const u = new URL(s);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    bad(`${name} must be an http(s) URL`);
  }
  return s;
}

const newBankRef = () => String(randomInt(100_000, 999_999)) + String(randomInt(100_000, 999_999));

export function createSimEngine(opts: SimEngineOptions) {
  if (!opts.secret) throw new Error('bank simulator: secret is required');
  const clock = opts.clock ?? systemClock;
  const rng = opts.rng ?? Math.random;
  const latencyMs = opts.latencyMs ?? 0;
  const retryDelays = opts.callbackRetryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  const callbackTimeoutMs = opts.callbackTimeoutMs ?? 5_000;
  const log: SimLogger = opts.logger ?? { info() {}, warn() {} };
  const ratios = normaliseRatios(opts.outcomes);

  const txns = new Map<string, Txn>();
  const refunds = new Map<string, Refund>();
  const timers = new Set<NodeJS.Timeout>();
  const client = createCallbackClient();
  let closed = false;

  function later(ms: number, fn: () => void) {
    if (closed) return;
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  }
  // Waits inside a request handler end early on close, so no request is left hanging.
  const waiting = new Set<() => void>();
  const wait = (ms: number) =>
    ms <= 0 || closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const done = () => {
            waiting.delete(done);
            resolve();
          };
          waiting.add(done);
          later(ms, done);
        });

  function draw(): SimOutcome {
    const x = rng();
    let acc = 0;
    for (const [k, o] of [
      ['approve', 'success'],
      ['decline', 'decline'],
      ['pending', 'pending'],
      ['timeout', 'timeout'],
    ] as const) {
      acc += ratios[k];
      if (x < acc) return o;
    }
    return 'success';
  }
  const pick = (codes: string[]) => codes[Math.min(codes.length - 1, Math.floor(rng() * codes.length))];

  /** Lazily expires a transaction nobody finished in time: status turns U69. */
  function current(t: Txn): Txn {
    if (t.state !== 'final' && clock.now().getTime() >= t.expiresAt) {
      t.state = 'final';
      t.responseCode = 'U69';
      t.message = 'request expired';
    }
    return t;
  }

  function settle(t: Txn, outcome: SimOutcome) {
    t.decidedAt = clock.now().getTime();
    switch (outcome) {
      case 'success':
        t.state = 'final';
        t.responseCode = '00';
        t.message = 'success';
        break;
      case 'decline':
        t.state = 'final';
        t.responseCode = pick(DECLINE_CODES);
        t.message = 'declined';
        break;
      case 'timeout':
        t.state = 'final';
        t.responseCode = pick(DEEMED_CODES);
        t.message = 'deemed: timeout at the switch';
        break;
      case 'pending':
        // The bank never answers: no callback; status stays 01 until expiry, then U69.
        t.state = 'pending';
        break;
    }
  }

  function txnResponse(t: Txn): WireTxnResponse {
    return {
      txn_ref: t.txnRef,
      response_code: t.responseCode,
      bank_ref: t.bankRef,
      ...(t.responseCode === '00' && t.payerVpa ? { payer_vpa: t.payerVpa } : {}),
      ...(t.message ? { message: t.message } : {}),
    };
  }

  function paymentCallback(t: Txn): WireCallback {
    return {
      type: 'payment',
      txn_ref: t.txnRef,
      amount: formatRupees(t.amountPaise),
      response_code: t.responseCode,
      bank_ref: t.bankRef,
      ...(t.responseCode === '00' && t.payerVpa ? { payer_vpa: t.payerVpa } : {}),
      ...(t.message ? { message: t.message } : {}),
    };
  }

  /**
   * Sends a signed callback; resolves after the first attempt. Failed attempts (non-2xx or
   * unreachable) are retried in the background after each of `retryDelays`. Each attempt is
   * signed afresh: a new nonce, or Tillpoint would rightly refuse it as a replay.
   */
  const simbankChannel: CallbackChannel = {
    encode(payload) {
      const raw = JSON.stringify(payload);
      return {
        headers: { 'content-type': 'application/json', ...signRequest(opts.secret, raw, clock.now()) },
        body: raw,
      };
    },
  };

  function sendCallback(
    callbackUrl: string,
    payload: WireCallback,
    channel: CallbackChannel = simbankChannel,
    /** Sent as is: the faults have already decided this copy (faults.ts). */
    direct = false,
  ): Promise<{ delivered: boolean; status?: number }> {
    if (opts.faults && !direct)
      return opts.faults.deliver(payload, (p) => sendCallback(callbackUrl, p, channel, true), later);
    const ref = payload.type === 'payment' ? payload.txn_ref : payload.refund_ref;
    const attempt = async (n: number): Promise<{ delivered: boolean; status?: number }> => {
      let status: number | undefined;
      try {
        const { headers, body } = channel.encode(payload);
        // The simulated bank sends back the trace it was called in, so a demo trace runs from
        // the payment to its callback; a real bank does not (the callback's span names the payment).
        injectTraceHeaders(headers);
        status = await client.post(callbackUrl, headers, body, callbackTimeoutMs);
        if (status >= 200 && status < 300) {
          log.info({ ref, attempt: n + 1, status }, 'bank sim: callback delivered');
          return { delivered: true, status };
        }
      } catch {
        // unreachable or timed out: retried below
      }
      if (n < retryDelays.length && !closed) {
        log.warn({ ref, attempt: n + 1, status }, 'bank sim: callback failed, will retry');
        later(retryDelays[n], () => void attempt(n + 1));
      } else {
        log.warn({ ref, attempts: n + 1, status }, 'bank sim: callback failed, giving up');
      }
      return { delivered: false, status };
    };
    return attempt(0);
  }

  function intentFields(body: Record<string, unknown>) {
    const txnRef = field(body, 'txn_ref', TXN_REF_RE);
    const amountPaise = amount(body);
    const payeeVpa = field(body, 'payee_vpa', VPA_RE);
    field(body, 'payee_name');
    field(body, 'mcc', /^\d{4}$/);
    const expiresAt = Date.parse(field(body, 'expires_at'));
    if (!Number.isFinite(expiresAt)) bad('expires_at must be an ISO 8601 time');
    const callbackUrl = url(body, 'callback_url');
    return { txnRef, amountPaise, payeeVpa, expiresAt, callbackUrl };
  }

  function sameRegistration(
    t: Txn,
    f: { amountPaise: number; payeeVpa: string; payerVpa?: string },
    kind: Txn['kind'],
  ) {
    return t.kind === kind && t.amountPaise === f.amountPaise && t.payeeVpa === f.payeeVpa && t.payerVpa === f.payerVpa;
  }

  return {
    /** What the bank decided, for its settlement files (settlementFile.ts). */
    /** The records of the settlement file; `credits`: the push credits paid (credits.ts keeps that book). */
    settlementRecords: (credits: Parameters<typeof settlementRecordsOf>[4] = []) =>
      settlementRecordsOf(txns.values(), refunds.values(), (ref) => txns.get(ref), clock.now().getTime(), credits),
    registerIntent(body: Record<string, unknown>, channel?: CallbackChannel): WireIntentResponse {
      const f = intentFields(body as Partial<WireIntentRequest> as Record<string, unknown>);
      const existing = txns.get(f.txnRef);
      if (existing) {
        // A retried registration is answered as the first one was; a different one is refused.
        if (!sameRegistration(existing, f, 'intent'))
          throw new SimError(409, 'duplicate_txn_ref', 'txn_ref already used');
        return {
          txn_ref: existing.txnRef,
          bank_ref: existing.bankRef,
          status: 'registered',
          expires_at: new Date(existing.expiresAt).toISOString(),
        };
      }
      const t: Txn = {
        kind: 'intent',
        ...f,
        bankRef: newBankRef(),
        state: 'awaiting',
        responseCode: '01',
        refundedPaise: 0,
        channel,
      };
      txns.set(t.txnRef, t);
      log.info({ txn_ref: t.txnRef }, 'bank sim: intent registered');
      return {
        txn_ref: t.txnRef,
        bank_ref: t.bankRef,
        status: 'registered',
        expires_at: new Date(t.expiresAt).toISOString(),
      };
    },

    sendCollect(body: Record<string, unknown>, channel?: CallbackChannel): WireTxnResponse {
      const f = {
        ...intentFields(body as Partial<WireCollectRequest> as Record<string, unknown>),
        payerVpa: field(body, 'payer_vpa', VPA_RE),
      };
      const existing = txns.get(f.txnRef);
      if (existing) {
        if (!sameRegistration(existing, f, 'collect'))
          throw new SimError(409, 'duplicate_txn_ref', 'txn_ref already used');
        return txnResponse(current(existing));
      }
      const t: Txn = {
        kind: 'collect',
        ...f,
        bankRef: newBankRef(),
        state: 'awaiting',
        responseCode: '01',
        message: 'collect request sent',
        refundedPaise: 0,
        channel,
      };
      txns.set(t.txnRef, t);
      const magic = MAGIC_VPA_RE.exec(f.payerVpa)?.[1] as SimOutcome | undefined;
      // The payer "answers" on their phone after the configured latency.
      later(latencyMs, () => {
        if (current(t).state !== 'awaiting') return;
        settle(t, magic ?? draw());
        log.info({ txn_ref: t.txnRef, code: t.responseCode }, 'bank sim: collect decided');
        if (t.state === 'final') void sendCallback(t.callbackUrl, paymentCallback(t), t.channel);
      });
      return txnResponse(t);
    },

    status(body: Record<string, unknown>): WireTxnResponse {
      const ref = field(body, 'txn_ref', TXN_REF_RE);
      const t = txns.get(ref);
      if (!t) return { txn_ref: ref, response_code: 'U48', message: 'transaction id not present' };
      return txnResponse(current(t));
    },

    /** The customer scans the dynamic QR and pays from their UPI app. */
    async customerPayment(body: Record<string, unknown>) {
      const uri = field(body, 'upi_uri');
      const payerVpa = field(body, 'payer_vpa', VPA_RE);
      const forced = body.outcome;
      if (forced !== undefined && !['success', 'decline', 'pending', 'timeout'].includes(forced as string)) {
        bad('outcome must be success, decline, pending or timeout');
      }
      let parsed;
      try {
        parsed = parseUpiUri(uri);
      } catch (e) {
        bad(`upi_uri: ${(e as Error).message}`);
      }
      if (!parsed.tr) bad('upi_uri has no tr (transaction reference)');
      const t = txns.get(parsed.tr);
      if (t?.kind !== 'intent') throw new SimError(404, 'unknown_txn_ref', 'no intent is registered for this tr');
      current(t);
      // Expired without anyone paying: 410. Paid (whatever the result, or still pending): 409.
      if (t.responseCode === 'U69' && !t.payerVpa) throw new SimError(410, 'expired', 'this QR has expired');
      if (t.state !== 'awaiting') throw new SimError(409, 'already_paid', 'this QR has already been paid');
      if (parsed.pa !== t.payeeVpa) bad('pa does not match the registered payee');
      if (parsed.cu !== undefined && parsed.cu !== 'INR') bad('cu must be INR');
      if (parsed.amountPaise !== t.amountPaise) bad('am does not match the registered amount');

      // Claim it before waiting, so two customers cannot pay one QR.
      t.state = 'pending';
      t.payerVpa = payerVpa;
      await wait(latencyMs);
      const magic = MAGIC_VPA_RE.exec(payerVpa)?.[1] as SimOutcome | undefined;
      const outcome = (forced as SimOutcome | undefined) ?? magic ?? draw();
      settle(t, outcome);
      log.info({ txn_ref: t.txnRef, code: t.responseCode }, 'bank sim: QR paid');
      const callback =
        outcome !== 'pending' ? await sendCallback(t.callbackUrl, paymentCallback(t), t.channel) : undefined;
      return {
        ...txnResponse(t),
        outcome,
        callback: callback ? { sent: true, delivered: callback.delivered, status: callback.status } : { sent: false },
      };
    },

    refund(body: Record<string, unknown>, channel?: CallbackChannel): WireTxnResponse {
      const b = body as Partial<WireRefundRequest> as Record<string, unknown>;
      const refundRef = field(b, 'refund_ref', REF_RE);
      const originalTxnRef = field(b, 'original_txn_ref', TXN_REF_RE);
      const amountPaise = amount(b);
      const callbackUrl = url(b, 'callback_url');
      const done = refunds.get(refundRef);
      if (done) {
        // Idempotent on refund_ref: a retry learns the first answer, and never refunds twice.
        if (done.originalTxnRef !== originalTxnRef || done.amountPaise !== amountPaise) {
          throw new SimError(409, 'duplicate_refund_ref', 'refund_ref already used');
        }
        return refundResponse(done);
      }
      const t = txns.get(originalTxnRef);
      let r: Refund;
      if (!t) {
        r = {
          refundRef,
          originalTxnRef,
          amountPaise,
          responseCode: 'U48',
          message: 'original transaction id not present',
        };
      } else if (current(t).responseCode !== '00') {
        r = {
          refundRef,
          originalTxnRef,
          amountPaise,
          responseCode: 'U30',
          message: 'original transaction was not successful',
        };
      } else if (amountPaise > t.amountPaise - t.refundedPaise) {
        r = {
          refundRef,
          originalTxnRef,
          amountPaise,
          responseCode: 'U30',
          message: 'refund exceeds the refundable amount',
        };
      } else {
        t.refundedPaise += amountPaise;
        r = {
          refundRef,
          originalTxnRef,
          amountPaise,
          responseCode: '00',
          bankRef: newBankRef(),
          message: 'refunded',
          decidedAt: clock.now().getTime(),
        };
      }
      r.channel = channel;
      refunds.set(refundRef, r);
      log.info({ refund_ref: refundRef, code: r.responseCode }, 'bank sim: refund decided');
      void sendCallback(
        callbackUrl,
        {
          type: 'refund',
          refund_ref: r.refundRef,
          original_txn_ref: r.originalTxnRef,
          amount: formatRupees(r.amountPaise),
          response_code: r.responseCode,
          ...(r.bankRef ? { bank_ref: r.bankRef } : {}),
          message: r.message,
        },
        channel,
      );
      return refundResponse(r);
    },

    refundStatus(body: Record<string, unknown>): WireTxnResponse {
      const ref = field(body, 'refund_ref', REF_RE);
      const r = refunds.get(ref);
      if (!r) return { refund_ref: ref, response_code: 'U48', message: 'refund id not present' };
      return refundResponse(r);
    },

    /** Stops timers and in-flight callbacks, so a closed simulator leaves nothing running. */
    close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const done of [...waiting]) done();
      client.close();
    },
  };
}

function refundResponse(r: Refund): WireTxnResponse {
  return {
    refund_ref: r.refundRef,
    txn_ref: r.originalTxnRef,
    response_code: r.responseCode,
    ...(r.bankRef ? { bank_ref: r.bankRef } : {}),
    message: r.message,
  };
}

export function normaliseRatios(o?: Partial<OutcomeRatios>): OutcomeRatios {
  if (!o || Object.values(o).every((v) => v === undefined)) return { ...DEFAULT_OUTCOMES };
  const r = { approve: o.approve ?? 0, decline: o.decline ?? 0, pending: o.pending ?? 0, timeout: o.timeout ?? 0 };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isFinite(v) || v < 0)
      throw new Error(`bank simulator: outcome ratio "${k}" must be a non-negative number`);
  }
  const sum = r.approve + r.decline + r.pending + r.timeout;
  if (sum <= 0) throw new Error('bank simulator: outcome ratios must not all be zero');
  return { approve: r.approve / sum, decline: r.decline / sum, pending: r.pending / sum, timeout: r.timeout / sum };
}

export type SimEngine = ReturnType<typeof createSimEngine>;
