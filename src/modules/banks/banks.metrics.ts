import { Counter, Histogram, type Registry } from 'prom-client';

// The banks module's metrics: how bank calls went and which inbound signed calls were refused.
// Registered on the process's registry by src/metrics.ts; the alert rules in
// deploy/observability/rules/ are written against these names.
export function createBanksMetrics(registry: Registry) {
  return {
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
  };
}

export type BanksMetrics = ReturnType<typeof createBanksMetrics>;

declare module '../../platform/metrics.ts' {
  interface Metrics extends BanksMetrics {}
}
