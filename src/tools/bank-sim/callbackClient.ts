import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

// How the simulated bank POSTs its callbacks to Tillpoint: node:http(s) over keep-alive agents.
// It was the global fetch, which under `npm run bench:payments` was about 45 % of the simulator's
// CPU (its web streams, Headers/Response objects and two AbortSignals per call; bench/PROFILE.md,
// "Session 7"). What goes on the wire is the same request: method, path, the channel's headers
// (content type, signature, trace) and the body byte for byte; an attempt still fails on a
// non-2xx answer, a connection error or after `timeoutMs` in all, and `close()` still ends every
// callback in flight. Node's agent closes an idle connection before the server's announced
// keep-alive timeout (`Keep-Alive: timeout=N`), so a reused connection is not one the server is
// closing. Redirects are not followed (fetch followed them): Tillpoint's callback route answers
// none, and a bank does not chase one with a signed payment message.

export interface CallbackClient {
  /** POSTs `body`; resolves with the answer's status once its body has been read, rejects on failure. */
  post(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<number>;
  /** Ends every request in flight (they reject) and the kept connections. */
  close(): void;
}

/** Request options per callback URL: parsed once (a simulator calls back to a handful of URLs). */
interface Target {
  https: boolean;
  options: RequestOptions;
}
const MAX_TARGETS = 1_000;

export function createCallbackClient(): CallbackClient {
  const httpAgent = new HttpAgent({ keepAlive: true });
  // Certificates are checked against the system's CAs, as fetch checked them.
  const httpsAgent = new HttpsAgent({ keepAlive: true, minVersion: 'TLSv1.2', rejectUnauthorized: true });
  const targets = new Map<string, Target>();
  const open = new Set<ClientRequest>();
  let closed = false;

  function target(url: string): Target {
    let t = targets.get(url);
    if (t) return t;
    const u = new URL(url);
    const https = u.protocol === 'https:';
    if (!https && u.protocol !== 'http:') throw new Error(`unsupported protocol ${u.protocol}`);
    t = {
      https,
      options: {
        method: 'POST',
        protocol: u.protocol,
        hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
        port: u.port || (https ? 443 : 80),
        path: u.pathname + u.search,
        agent: https ? httpsAgent : httpAgent,
        ...(u.username || u.password
          ? { auth: `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` }
          : {}),
      },
    };
    if (targets.size >= MAX_TARGETS) targets.clear();
    targets.set(url, t);
    return t;
  }

  return {
    post(url, headers, body, timeoutMs) {
      return new Promise<number>((resolve, reject) => {
        if (closed) return reject(new Error('callback client closed'));
        let t: Target;
        try {
          t = target(url);
        } catch (e) {
          return reject(e);
        }
        let timer: NodeJS.Timeout | undefined;
        const settle = (err: Error | undefined, status?: number) => {
          if (timer === undefined) return;
          clearTimeout(timer);
          timer = undefined;
          open.delete(req);
          if (err) reject(err);
          else resolve(status!);
        };
        const req = (t.https ? httpsRequest : httpRequest)(
          { ...t.options, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
          (res) => {
            // The answer's body is read to its end (and dropped) so the connection can be reused.
            // Its status counts once it is here, even if the body is then cut off (as with fetch,
            // whose body read's failure was ignored).
            const status = res.statusCode ?? 0;
            res.on('end', () => settle(undefined, status));
            res.on('error', () => settle(undefined, status));
            res.on('close', () => settle(undefined, status));
            res.resume();
          },
        );
        timer = setTimeout(() => req.destroy(new Error(`callback timed out after ${timeoutMs} ms`)), timeoutMs);
        open.add(req);
        req.on('error', (e) => settle(e));
        req.end(body);
      });
    },
    close() {
      closed = true;
      for (const req of open) req.destroy(new Error('callback client closed'));
      open.clear();
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
