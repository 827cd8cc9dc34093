import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

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

// ---- health and the circuit breaker (health.ts, banks.service.ts) ----

// The banks module's own metrics: calls by how they count for the bank's health, and the
// circuit breaker's state and transitions. Labels are bounded (two dozen banks, closed sets).

function create(registry: Registry) {
  return {
    calls: new Counter({
      name: 'tillpoint_bank_health_calls_total',
      help: "Calls to banks by how they count for the bank's health: ok, declined (the customer's doing), technical",
      labelNames: ['bank', 'class'] as const,
      registers: [registry],
    }),
    transitions: new Counter({
      name: 'tillpoint_bank_breaker_transitions_total',
      help: 'Circuit breaker state changes, by bank',
      labelNames: ['bank', 'from', 'to'] as const,
      registers: [registry],
    }),
    state: new Gauge({
      name: 'tillpoint_bank_breaker_state',
      help: 'Circuit breaker state in this process: 0 closed, 1 half-open, 2 open',
      labelNames: ['bank'] as const,
      registers: [registry],
    }),
  };
}

export type BankMetrics = ReturnType<typeof create>;

const made = new WeakMap<Registry, BankMetrics>();

/** One set per registry (a registry refuses a metric registered twice). */
export function createBankMetrics(registry: Registry): BankMetrics {
  let m = made.get(registry);
  if (!m) made.set(registry, (m = create(registry)));
  return m;
}
