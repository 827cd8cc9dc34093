import { createPlatformMetrics, type Metrics } from './platform/metrics.ts';
import { createBanksMetrics } from './modules/banks/banks.metrics.ts';
import { createPaymentCounters } from './modules/payments/payments.metrics.ts';

// The process's metrics, composed in one place: the platform's registry and HTTP metrics, and the
// ones modules keep on the Metrics object. (Modules with metrics of their own registry, created
// on demand, register them themselves: payments.metrics.ts, audit.metrics.ts, vault, edge.)
// A module that keeps metrics here creates them in its *.metrics.ts from a registry, adds them to
// the Metrics interface there (`declare module '../../platform/metrics.ts'`), and is spread in below.

export type { Metrics } from './platform/metrics.ts';

export function createMetrics(): Metrics {
  const platform = createPlatformMetrics();
  return {
    ...platform,
    ...createBanksMetrics(platform.registry),
    ...createPaymentCounters(platform.registry),
  };
}
