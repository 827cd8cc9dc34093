import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'undici';

// The HTTP client for calls a payment waits on (the bank connectors): undici's `request()` over
// a keep-alive Agent, the answer handed back as status, headers and the whole body. What it
// replaced, node:http with a WHATWG Response and Headers built from each answer and an
// AbortSignal.timeout per call (to look like fetch), cost 237–250 µs of CPU per call against
// 84–121 µs for this (client side, a bank-sized POST to a local server, 20,000 calls, 8 at a
// time; bench/PROFILE.md "Session 10: the bank call's HTTP client").

export interface HttpClientOptions {
  /** PEM of the only CA the server's certificate may chain to (pins it); https:// only then. */
  ca?: string | Buffer;
  /** Client certificate and key (PEM) for servers that ask for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Lowest TLS version accepted; default TLS 1.2. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Connections kept per origin; default unlimited. */
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
   * Sends one request and reads the whole answer. Fails with the `signal`'s reason when it
   * aborts (a TimeoutError for AbortSignal.timeout), otherwise with a TypeError whose `cause`
   * is the socket or TLS error (its `code`: ECONNREFUSED, ERR_TLS_CERT_ALTNAME_INVALID, …), the
   * same shape as the global fetch, so callers tell "never sent" from "may have arrived".
   */
  request(
    url: string,
    init: { method: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal },
  ): Promise<HttpAnswer>;
  close(): Promise<void>;
}

export function createHttpClient(o: HttpClientOptions = {}): HttpClient {
  const agent = new Agent({
    ...(o.maxSockets ? { connections: o.maxSockets } : {}),
    connect: {
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}),
      minVersion: o.minVersion ?? 'TLSv1.2',
      rejectUnauthorized: true,
    },
  });
  const refused = (message: string) =>
    new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code: 'ERR_INVALID_PROTOCOL' }) });
  return {
    async request(url, init) {
      const { protocol } = new URL(url);
      if (protocol !== 'https:' && protocol !== 'http:') throw refused(`unsupported protocol ${protocol}`);
      // A pinned CA means the server must prove who it is: plain http would skip the check.
      if (o.ca && protocol !== 'https:') throw refused('a pinned CA needs an https:// URL');
      try {
        const res = await request(url, {
          dispatcher: agent,
          method: init.method as 'GET',
          headers: init.headers,
          body: init.body,
          signal: init.signal,
        });
        const body = Buffer.from(await res.body.arrayBuffer());
        return { status: res.statusCode, headers: res.headers, body };
      } catch (e) {
        if (init.signal?.aborted) throw init.signal.reason;
        throw new TypeError('fetch failed', { cause: e });
      }
    },
    close: () => agent.close(),
  };
}
