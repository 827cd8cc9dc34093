import { Counter, Gauge, type Registry } from 'prom-client';

// The admission gate's metrics (admission.ts). Registered once per registry: tests build several
// servers on one.
export function admissionMetrics(registry: Registry) {
  const existing = registry.getSingleMetric('tillpoint_http_in_flight') as Gauge | undefined;
  if (existing)
    return {
      inFlight: existing,
      queued: registry.getSingleMetric('tillpoint_http_queued') as Gauge,
      shed: registry.getSingleMetric('tillpoint_http_requests_shed_total') as Counter<'reason'>,
    };
  return {
    inFlight: new Gauge({
      name: 'tillpoint_http_in_flight',
      help: 'Requests the API is working on (at most HTTP_MAX_IN_FLIGHT)',
      registers: [registry],
    }),
    queued: new Gauge({
      name: 'tillpoint_http_queued',
      help: 'Requests waiting to be admitted (at most HTTP_QUEUE_MAX)',
      registers: [registry],
    }),
    shed: new Counter({
      name: 'tillpoint_http_requests_shed_total',
      help: 'Requests refused before any work began: queue full, waited past HTTP_QUEUE_TIMEOUT_MS, the replica was stopping (503), or the client went away while waiting (dropped)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}
