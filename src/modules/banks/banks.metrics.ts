import { Counter, Gauge, type Registry } from 'prom-client';

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
