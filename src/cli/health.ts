import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

// The probe and scrape port of every role (HEALTH_PORT): the worker and the terminal gateway
// have no HTTP API, yet Kubernetes must know they are alive and ready, and Prometheus must read
// their metrics. Plain HTTP on a port of its own that carries no payment data; the network
// policy lets only the kubelet and Prometheus reach it (deploy/k8s).
//   GET /healthz  200 while the event loop runs (liveness)
//   GET /readyz   200 when `ready()` says so (the database answers), 503 otherwise or when draining
//   GET /metrics  the role's Prometheus registry

export interface HealthServer {
  url: string;
  /** From now on /readyz answers 503 (the pod leaves the Service's endpoints before it stops). */
  drain(): void;
  close(): Promise<void>;
}

/** Ready or not, optionally with each check's result (named in the /readyz body). */
export type ReadyAnswer = boolean | { ready: boolean; draining?: boolean; checks?: Record<string, string> };

export async function startHealthServer(opts: {
  host: string;
  port: number;
  ready: () => Promise<ReadyAnswer>;
  registry: Registry;
}): Promise<HealthServer> {
  let draining = false;
  const server = createServer((req, res) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, '{"status":"method_not_allowed"}');
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return send(200, '{"status":"ok"}');
    if (path === '/readyz') {
      if (draining) return send(503, '{"status":"draining"}');
      opts.ready().then(
        (a) => {
          const r = typeof a === 'boolean' ? { ready: a } : a;
          const status = r.ready ? 'ready' : r.draining ? 'draining' : 'not_ready';
          send(r.ready ? 200 : 503, JSON.stringify(typeof a === 'boolean' ? { status } : { status, checks: r.checks }));
        },
        () => send(503, '{"status":"not_ready"}'),
      );
      return;
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (m) => send(200, m, opts.registry.contentType),
        () => send(500, '{"status":"error"}'),
      );
      return;
    }
    send(404, '{"status":"not_found"}');
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    drain: () => void (draining = true),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
