import { Counter, type Registry } from 'prom-client';

// The edge module's metrics, registered on the process's registry (so /metrics shows them).
export function createEdgeMetrics(registry: Registry) {
  return {
    rateLimited: new Counter({
      name: 'tillpoint_rate_limited_total',
      help: 'Requests refused with 429 by the API, by the limit that refused them',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    rateLimitStoreErrors: new Counter({
      name: 'tillpoint_rate_limit_store_errors_total',
      help: 'Rate-limit checks the shared store (Redis) could not answer; the in-process buckets answered instead',
      registers: [registry],
    }),
    requestsRefused: new Counter({
      name: 'tillpoint_http_requests_refused_total',
      help: 'Requests refused before routing: too large, too deep, wrong content type, too slow, malformed',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    connectionsDropped: new Counter({
      name: 'tillpoint_http_connections_dropped_total',
      help: 'Connections closed at accept because the connection cap (HTTP_MAX_CONNECTIONS) was reached',
      registers: [registry],
    }),
    wafEvents: new Counter({
      name: 'tillpoint_waf_events_total',
      help: 'Security events recorded by the WAF gateway (read from its events file), by action (blocked, detected) and attack category',
      labelNames: ['action', 'category'] as const,
      registers: [registry],
    }),
  };
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
