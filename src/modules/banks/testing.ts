import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// Test helper: a small HTTP server standing in for Tillpoint's callback endpoint. Each POST
// is handed to `verify` with its raw body; results queue up for `next()`, so a test awaits
// the callback itself instead of sleeping and hoping.

export interface ReceivedCall<T> {
  path: string;
  raw: string;
  result?: T;
  error?: unknown;
}

export interface CallbackReceiver<T> {
  /** Base URL; callbacks may be posted to any path under it (e.g. `${url}/SIMBANK`). */
  url: string;
  /** The next call (verified or refused), in arrival order. Rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<ReceivedCall<T>>;
  /** Every call so far. */
  calls: ReceivedCall<T>[];
  close(): Promise<void>;
}

export async function startCallbackReceiver<T>(
  verify: (path: string, headers: IncomingHttpHeaders, raw: string, remoteAddr?: string) => Promise<T>,
  opts: { failFirst?: number } = {},
): Promise<CallbackReceiver<T>> {
  const calls: ReceivedCall<T>[] = [];
  const queue: ReceivedCall<T>[] = [];
  const waiters: ((c: ReceivedCall<T>) => void)[] = [];
  let toFail = opts.failFirst ?? 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const call: ReceivedCall<T> = { path: req.url ?? '/', raw };
      try {
        call.result = await verify(call.path, req.headers, raw, req.socket.remoteAddress);
      } catch (e) {
        call.error = e;
      }
      const fail = toFail > 0;
      if (fail) toFail--;
      res.statusCode = call.error ? 401 : fail ? 500 : 204;
      res.end();
      calls.push(call);
      const w = waiters.shift();
      if (w) w(call);
      else queue.push(call);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    next(timeoutMs = 5_000) {
      const c = queue.shift();
      if (c) return Promise.resolve(c);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          const i = waiters.indexOf(done);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`no callback within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (call: ReceivedCall<T>) => {
          clearTimeout(t);
          resolve(call);
        };
        waiters.push(done);
      });
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
