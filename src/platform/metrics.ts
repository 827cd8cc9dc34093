import { Registry, Counter, Histogram, collectDefaultMetrics } from 'prom-client';

// Prometheus metrics. One registry per process role instance (tests create their own). Platform
// creates the registry and the HTTP metrics; each module creates its own on that registry (its
// *.metrics.ts) and adds them to the Metrics interface below, and src/metrics.ts composes them.
export function createPlatformMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequests: new Counter({
      name: 'tillpoint_http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'tillpoint_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['method', 'route'] as const,
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}

export type PlatformMetrics = ReturnType<typeof createPlatformMetrics>;

/**
 * The process's metrics: the platform's, and the ones each module adds from its *.metrics.ts
 * (declaration merging, like Config), so code that takes Metrics sees them all while platform
 * names none. Created by createMetrics in src/metrics.ts.
 */
export interface Metrics extends PlatformMetrics {}
