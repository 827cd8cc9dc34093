import { readFileSync } from 'node:fs';
import type { Metrics } from '../../platform/metrics.ts';
import type { ErrorCode } from '../../platform/errors.ts';
import { createHttpClient, type HttpAnswer } from '../../platform/httpClient.ts';
import { BankCallError, type BankCallFailureKind } from './types.ts';
import { SpanKind, injectTraceHeaders, tracingEnabled, withSpan, type Span } from '../../platform/tracing.ts';

// The one HTTP transport every connector sends through: keep-alive agents, one time budget per
// attempt, mutual TLS and a pinned CA when the bank asks for them, retries only for operations
// the connector declares idempotent, and the typed outcome (types.ts BankCallError: not_sent /
// rejected / uncertain). A connector builds bodies and reads answers; it never opens a socket.

export interface TransportTls {
  /** PEM of the CA the bank's certificate must chain to (pins it); default: the system's CAs. */
  ca?: string | Buffer;
  /** Client certificate and key (PEM) for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface TransportOptions {
  /** Bank code, for errors and metrics. */
  bank: string;
  /** Base URL of the bank's API; request paths are appended to it. */
  baseUrl: string;
  /** Budget for one attempt: connect, send and read the whole answer. */
  timeoutMs: number;
  tls?: TransportTls;
  /**
   * Attempts after the first, for idempotent operations only. Default 0: UPI limits how often a
   * transaction's status may be asked (the worker's cadence, at most statusCheckMax), so a retry
   * is for a bank whose API documents that it allows one (BANKS[].settings.retries).
   */
  retries?: number;
  /** Wait before a retry (ms). Default 100. */
  retryDelayMs?: number;
  maxSockets?: number;
  metrics?: Pick<Metrics, 'bankCalls'>;
}

export interface TransportRequest {
  /** Operation name for metrics and errors, e.g. "check_status". */
  op: string;
  path: string;
  /** Headers and body, built afresh for each attempt (a new nonce and timestamp, a new session key). */
  build: () => { headers: Record<string, string>; body: string };
  /**
   * The bank treats a repeat of this request as the same request (a status query; a refund keyed
   * by its own reference, if the bank documents that). Only these are retried: retrying anything
   * else after an uncertain failure could make the bank act twice.
   */
  idempotent: boolean;
}

/** A 2xx answer, read whole. */
export type TransportResponse = HttpAnswer;

export interface BankTransport {
  /**
   * Sends `req` and hands a 2xx answer to `read`. Throws BankCallError for everything else:
   * not_sent (connection never made), rejected (4xx), uncertain (timeout, 5xx, reset, or `read`
   * threw because the answer could not be understood).
   */
  call<T>(req: TransportRequest, read: (res: TransportResponse) => T): Promise<T>;
}

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

/** Reads a PEM given inline or as a file path (the settings allow either for public material). */
export function pem(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return value.includes('-----BEGIN') ? value : readFileSync(value, 'utf8');
}

export function createTransport(o: TransportOptions): BankTransport {
  const base = o.baseUrl.replace(/\/$/, '');
  const retries = o.retries ?? 0;
  const delay = o.retryDelayMs ?? 100;
  const http = createHttpClient({
    ...(o.tls?.ca ? { ca: o.tls.ca } : {}),
    ...(o.tls?.cert && o.tls.key ? { cert: o.tls.cert, key: o.tls.key } : {}),
    ...(o.maxSockets ? { maxSockets: o.maxSockets } : {}),
  });

  /** One attempt, as a client span of the payment's trace while tracing is on. */
  function attempt<T>(req: TransportRequest, read: (res: TransportResponse) => T): Promise<T> {
    if (!tracingEnabled()) return attemptOnce(req, read);
    return withSpan(
      `bank ${req.op}`,
      { 'tillpoint.bank': o.bank, 'tillpoint.bank_op': req.op },
      (span) => attemptOnce(req, read, span),
      { kind: SpanKind.CLIENT },
    );
  }

  async function attemptOnce<T>(req: TransportRequest, read: (res: TransportResponse) => T, span?: Span): Promise<T> {
    const started = performance.now();
    let outcome = 'ok';
    const fail = (
      delivery: BankCallFailureKind,
      message: string,
      extra: Record<string, unknown> = {},
      code?: ErrorCode,
    ) => new BankCallError(delivery, `Bank ${o.bank} ${message}`, { bank: o.bank, op: req.op, ...extra }, code);
    try {
      let res: HttpAnswer;
      try {
        const { headers, body: payload } = req.build();
        // The trace goes with the call (W3C traceparent; nothing while tracing is off). Not signed,
        // so it cannot change what the bank verifies.
        injectTraceHeaders(headers);
        res = await http.request(base + req.path, {
          method: 'POST',
          headers,
          body: payload,
          // One budget for connect, send and reading the answer: a bank that stalls mid-body
          // is as late as one that never answers.
          timeoutMs: o.timeoutMs,
        });
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
        // person must look — typically a key out of step with the bank.
        outcome = 'http_error';
        throw fail('rejected', 'refused the request', { status: res.status }, 'internal_error');
      }
      try {
        return read(res);
      } catch (e) {
        outcome = 'bad_response';
        if (e instanceof BankCallError) throw e;
        throw fail('uncertain', 'sent an unreadable answer', { timeout: false });
      }
    } finally {
      span?.setAttribute('tillpoint.outcome', outcome);
      o.metrics?.bankCalls.observe({ bank: o.bank, op: req.op, outcome }, (performance.now() - started) / 1000);
    }
  }

  return {
    async call(req, read) {
      for (let n = 0; ; n++) {
        try {
          return await attempt(req, read);
        } catch (e) {
          const retryable = req.idempotent && e instanceof BankCallError && e.delivery !== 'rejected' && n < retries;
          if (!retryable) throw e;
          await new Promise((r) => setTimeout(r, delay * (n + 1)));
        }
      }
    },
  };
}
