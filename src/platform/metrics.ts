import { Registry, Counter, Histogram, Gauge, collectDefaultMetrics } from 'prom-client';

// Prometheus metrics. One registry per process role instance (tests create their own).
export function createMetrics() {
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
    payments: new Counter({
      name: 'tillpoint_payments_total',
      help: 'Payment state transitions by method and resulting status',
      labelNames: ['method', 'status'] as const,
      registers: [registry],
    }),
    refunds: new Counter({
      name: 'tillpoint_refunds_total',
      help: 'Refunds by resulting status',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    bankCalls: new Histogram({
      name: 'tillpoint_bank_call_duration_seconds',
      help: 'Latency of calls to banks by bank, operation and outcome',
      labelNames: ['bank', 'op', 'outcome'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
      registers: [registry],
    }),
    callbacksRejected: new Counter({
      name: 'tillpoint_callbacks_rejected_total',
      help: 'Inbound signed calls refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    reconciliationPending: new Gauge({
      name: 'tillpoint_payments_needing_reconciliation',
      help: 'Payments flagged for reconciliation (deemed or unknown at the bank)',
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
