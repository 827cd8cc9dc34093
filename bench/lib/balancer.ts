import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { freePort } from '../../src/platform/freePort.ts';

// A round-robin HTTP load balancer for the chaos run, doing what a Kubernetes Service behind an
// ingress (or nginx with proxy_next_upstream) does for the API replicas: a request whose
// connection to a replica fails before anything was sent, or that a stopping replica refuses
// unprocessed (503 while it closes), goes to the next replica. A request already sent to a replica
// that then dies is answered 502: only the client can retry it (with its Idempotency-Key).

export interface Balancer {
  url: string;
  setBackends(urls: string[]): void;
  stats: { forwarded: number; retried: number; failed: number };
  close(): Promise<void>;
}

function forward(
  target: URL,
  req: IncomingMessage,
  body: Buffer,
  signal: AbortSignal,
): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer } | { error: 'connect' | 'reset' }> {
  return new Promise((resolve) => {
    let sent = false;
    const r = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host, connection: 'keep-alive' },
        timeout: 60_000,
        // The client gave up: so does the request to the replica (nginx's default,
        // proxy_ignore_client_abort off), which then drops it if it had not begun.
        signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', () => resolve({ error: 'reset' }));
      },
    );
    r.on('socket', (s) => {
      if (s.connecting) s.once('connect', () => (sent = true));
      else sent = true;
    });
    // A kept-alive connection the replica had already closed: the request never reached it.
    r.on('error', (e: Error & { code?: string }) =>
      resolve({ error: !sent || (r.reusedSocket && e.code === 'ECONNRESET') ? 'connect' : 'reset' }),
    );
    r.on('timeout', () => r.destroy());
    r.end(body);
  });
}

/**
 * A 503 the replica answered before doing anything: Fastify's answer while it closes
 * (return503OnClosing), or the api's admission gate refusing a request it never started
 * (src/http/admission.ts: `X-Tillpoint-Not-Processed`, while stopping or when its queue is full).
 */
const closingRefusal = (status: number, headers: IncomingMessage['headers'], body: Buffer) =>
  status === 503 &&
  (headers['x-tillpoint-not-processed'] === '1' || !body.toString('utf8').includes('"error":{"code"'));

export async function startBalancer(backends: string[]): Promise<Balancer> {
  let targets = backends.map((u) => new URL(u));
  let next = 0;
  const stats = { forwarded: 0, retried: 0, failed: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const order = targets.map((_, i) => targets[(next + i) % targets.length]);
      next = (next + 1) % Math.max(1, targets.length);
      // Two passes over the replicas, a moment apart: a rolling restart may have none listening for an instant.
      for (let pass = 0; pass < 2; pass++) {
        for (const t of order) {
          if (gone.signal.aborted) return;
          const out = await forward(t, req, body, gone.signal);
          if (gone.signal.aborted) return; // nobody to answer
          if ('error' in out) {
            if (out.error === 'reset') {
              stats.failed++;
              res
                .writeHead(502, { 'content-type': 'application/json' })
                .end('{"balancer":"replica died with the request in flight"}');
              return;
            }
            stats.retried++;
            continue;
          }
          if (closingRefusal(out.status, out.headers, out.body)) {
            stats.retried++;
            continue;
          }
          stats.forwarded++;
          const h = { ...out.headers };
          delete h.connection;
          delete h['transfer-encoding'];
          res.writeHead(out.status, h).end(out.body);
          return;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      stats.failed++;
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"balancer":"no replica answered"}');
    });
  });
  server.keepAliveTimeout = 30_000;
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${port}`,
    setBackends(urls) {
      targets = urls.map((u) => new URL(u));
    },
    stats,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
