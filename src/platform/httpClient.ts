import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

// The HTTP client for calls a payment waits on (the bank connectors): node:http(s) over
// keep-alive agents, the answer handed back as status, headers and the whole body, one timer per
// call for its budget. What it replaced dressed node:http up as fetch (a WHATWG Response and
// Headers built from each answer, an AbortSignal.timeout per call): 192–250 µs of CPU per call
// against 89–104 µs for this (client side, a bank-sized POST to a local server, 20,000 calls;
// bench/PROFILE.md "Session 10: the bank call's HTTP client"). undici's request() was 70–121 µs
// there but kept ~25 MB more resident (its WebAssembly HTTP parser), against the api's 300 MB
// budget per pod.

export interface HttpClientOptions {
  /** PEM of the only CA the server's certificate may chain to (pins it); https:// only then. */
  ca?: string | Buffer;
  /** Client certificate and key (PEM) for servers that ask for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Lowest TLS version accepted; default TLS 1.2. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Connections kept per host; default unlimited (Node's). */
  maxSockets?: number;
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body, read before the answer is handed back. */
  body: Buffer;
}

export interface HttpClient {
  /**
   * Sends one request and reads the whole answer, all within `timeoutMs`. Fails with an error
   * named TimeoutError when the time is up (a server that stalls mid-body is as late as one that
   * never answers), otherwise with a TypeError whose `cause` is the socket or TLS error (its
   * `code`: ECONNREFUSED, ERR_TLS_CERT_ALTNAME_INVALID, …), the shape the global fetch has, so
   * callers tell "never sent" from "may have arrived".
   */
  request(
    url: string,
    init: { method: string; headers?: Record<string, string>; body?: string; timeoutMs: number },
  ): Promise<HttpAnswer>;
  /** Ends the kept connections (and any call in flight). */
  close(): void;
}

const failed = (cause: unknown) => new TypeError('fetch failed', { cause });
const badProtocol = (message: string) => failed(Object.assign(new Error(message), { code: 'ERR_INVALID_PROTOCOL' }));

export function createHttpClient(o: HttpClientOptions = {}): HttpClient {
  const httpsAgent = new HttpsAgent({
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}),
    ...(o.maxSockets ? { maxSockets: o.maxSockets } : {}),
    minVersion: o.minVersion ?? 'TLSv1.2',
    keepAlive: true,
    rejectUnauthorized: true,
  });
  const httpAgent = new HttpAgent({ keepAlive: true, ...(o.maxSockets ? { maxSockets: o.maxSockets } : {}) });

  return {
    request(url, init) {
      return new Promise<HttpAnswer>((resolve, reject) => {
        const https = url.startsWith('https:');
        if (!https && !url.startsWith('http:')) return reject(badProtocol(`unsupported protocol in ${url}`));
        // A pinned CA means the server must prove who it is: plain http would skip the check.
        if (o.ca && !https) return reject(badProtocol('a pinned CA needs an https:// URL'));
        let req: ClientRequest;
        let res: IncomingMessage | undefined;
        let timer: NodeJS.Timeout | undefined;
        let timedOut = false;
        const fail = (e: unknown) => {
          if (timer === undefined) return;
          clearTimeout(timer);
          timer = undefined;
          reject(
            timedOut
              ? Object.assign(new Error(`no complete answer within ${init.timeoutMs} ms`), { name: 'TimeoutError' })
              : failed(e),
          );
        };
        const answered = (r: IncomingMessage) => {
          res = r;
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('error', fail);
          r.on('end', () => {
            if (timer === undefined) return;
            clearTimeout(timer);
            timer = undefined;
            resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) });
          });
        };
        try {
          req = (https ? httpsRequest : httpRequest)(
            url,
            { method: init.method, headers: init.headers, agent: https ? httpsAgent : httpAgent },
            answered,
          );
        } catch (e) {
          return reject(failed(e));
        }
        timer = setTimeout(() => {
          timedOut = true;
          req.destroy();
        }, init.timeoutMs);
        req.on('error', fail);
        // A connection cut after the answer began can end it without an error event; a complete
        // answer's 'end' is still to come.
        req.on('close', () => {
          if (!res?.complete) fail(new Error('the connection closed before the answer was complete'));
        });
        req.end(init.body);
      });
    },
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
