import { Counter, Histogram, type Registry } from 'prom-client';

// The worker's job metrics: how long each job's tick took and how often it threw. The `task`
// label is one of the worker's own fixed job names, never data (not `job`: Prometheus gives
// every scraped series a `job` label of its own).
export function createWorkerMetrics(registry: Registry) {
  const existing = registry.getSingleMetric('tillpoint_worker_job_duration_seconds');
  const duration =
    (existing as Histogram<'task'> | undefined) ??
    new Histogram({
      name: 'tillpoint_worker_job_duration_seconds',
      help: 'Duration of one run of a worker job (one tick), by task',
      labelNames: ['task'] as const,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  const failures =
    (registry.getSingleMetric('tillpoint_worker_job_failures_total') as Counter<'task'> | undefined) ??
    new Counter({
      name: 'tillpoint_worker_job_failures_total',
      help: 'Worker job runs that threw, by task (the other jobs of the tick still run; this one runs again next tick)',
      labelNames: ['task'] as const,
      registers: [registry],
    });
  /** Runs one job, timing it and counting a throw (which it passes on). */
  return async function timeJob<T>(job: string, fn: () => Promise<T>): Promise<T> {
    const end = duration.startTimer({ task: job });
    try {
      return await fn();
    } catch (e) {
      failures.inc({ task: job });
      throw e;
    } finally {
      end();
    }
  };
}

/** For a worker built without a registry: runs the job as it is. */
export const untimed = <T>(_job: string, fn: () => Promise<T>) => fn();
