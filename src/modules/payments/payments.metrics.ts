import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Queryable } from '../../platform/db.ts';
import type { PaymentRow } from './payments.repo.ts';

// The payments module's own metrics, registered on the process's registry (so /metrics shows
// them). Labels are bounded: bank (two dozen partner banks), method (2), outcome (a closed set).
// The alert rules in deploy/observability/rules/ are written against these names.

/** NPCI codes that say the bank or switch, not the customer, failed the payment (technical declines). */
const TECHNICAL_DECLINE_CODES = new Set(['U28', 'U30', 'U31']);

/** The outcome label of a payment that reached a final state. */
export function completionOutcome(
  p: Pick<PaymentRow, 'status' | 'response_code'>,
): 'succeeded' | 'declined' | 'technical_decline' | 'expired' | undefined {
  if (p.status === 'succeeded') return 'succeeded';
  if (p.status === 'expired') return 'expired';
  if (p.status === 'failed')
    return TECHNICAL_DECLINE_CODES.has(String(p.response_code ?? '').toUpperCase()) ? 'technical_decline' : 'declined';
  return undefined;
}

/** Upper bounds (seconds) of the pending-backlog age bands, the gauge's `age` label. */
export const PENDING_AGE_BANDS = [60, 300, 900, 3600] as const;

function create(registry: Registry) {
  return {
    completed: new Counter({
      name: 'tillpoint_payments_completed_total',
      help: 'Payments that reached a final state, by bank, method and outcome (succeeded, declined by the customer or bank rules, technical_decline: U28/U30/U31 or bank unreachable, expired unpaid)',
      labelNames: ['bank', 'method', 'outcome'] as const,
      registers: [registry],
    }),
    createDuration: new Histogram({
      name: 'tillpoint_payment_create_duration_seconds',
      help: 'Time to create a payment, including the bank call, by method and outcome (ok or the error code)',
      labelNames: ['method', 'outcome'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
      registers: [registry],
    }),
    completionDuration: new Histogram({
      name: 'tillpoint_payment_completion_seconds',
      help: 'Time from creation to the final state, by bank, method and outcome',
      labelNames: ['bank', 'method', 'outcome'] as const,
      buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    statusChecks: new Counter({
      name: 'tillpoint_payment_status_checks_total',
      help: 'Status checks the worker asked of banks, by bank and what the bank answered (success, pending, failed, expired, deemed, unknown, reversed, or error when it did not answer)',
      labelNames: ['bank', 'outcome'] as const,
      registers: [registry],
    }),
  };
}

export type PaymentsMetrics = ReturnType<typeof create>;

// One set per registry: a second service on the same registry (tests) shares the first's.
const byRegistry = new WeakMap<Registry, PaymentsMetrics>();
export function paymentsMetrics(registry: Registry): PaymentsMetrics {
  let m = byRegistry.get(registry);
  if (!m) byRegistry.set(registry, (m = create(registry)));
  return m;
}

/** Counts a payment that just reached a final state (completed counter and completion time). */
export function recordCompletion(m: PaymentsMetrics, p: PaymentRow) {
  const outcome = completionOutcome(p);
  if (!outcome) return;
  const labels = { bank: p.bank_code, method: p.method, outcome };
  m.completed.inc(labels);
  const end = p.completed_at ?? p.updated_at;
  if (end && p.created_at)
    m.completionDuration.observe(labels, Math.max(0, (end.getTime() - p.created_at.getTime()) / 1000));
}

/**
 * The pending backlog, read from the database at scrape time: open payments (created or
 * pending) by age band, and the age of the oldest. Every replica reports the same numbers
 * (the database is shared), so rules take max() over instances.
 */
export function registerPaymentBacklogMetrics(registry: Registry, db: Queryable) {
  if (registry.getSingleMetric('tillpoint_payments_open')) return;
  let last: { bands: number[]; oldest: number | null } | undefined;
  let inflight: Promise<void> | undefined;
  const refresh = () =>
    (inflight ??= (async () => {
      try {
        const r = await db.query<Record<string, number | null>>(
          `SELECT ${PENDING_AGE_BANDS.map((s, i) => `count(*) FILTER (WHERE created_at > now() - make_interval(secs => ${s})) AS b${i}`).join(', ')},
                  count(*) AS total, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest
             FROM payments.payments WHERE status IN ('created', 'pending')`,
        );
        const row = r.rows[0];
        const cumulative = PENDING_AGE_BANDS.map((_, i) => Number(row[`b${i}`]));
        const bands = [
          ...cumulative.map((c, i) => c - (i ? cumulative[i - 1] : 0)),
          Number(row.total) - cumulative[cumulative.length - 1],
        ];
        last = { bands, oldest: row.oldest === null ? null : Number(row.oldest) };
      } catch {
        // The database did not answer: keep the last values; /readyz and the DB alerts say why.
      } finally {
        inflight = undefined;
      }
    })());
  const bandNames = [
    ...PENDING_AGE_BANDS.map((s) => `le_${s}s`),
    `gt_${PENDING_AGE_BANDS[PENDING_AGE_BANDS.length - 1]}s`,
  ];
  new Gauge({
    name: 'tillpoint_payments_open',
    help: 'Payments not yet final (created or pending), by age band since creation (le_60s, le_300s, le_900s, le_3600s, gt_3600s)',
    labelNames: ['age'] as const,
    registers: [registry],
    async collect() {
      await refresh();
      if (last) bandNames.forEach((age, i) => this.set({ age }, last!.bands[i]));
    },
  });
  new Gauge({
    name: 'tillpoint_payments_open_oldest_age_seconds',
    help: 'Age of the oldest payment not yet final (0 when there is none)',
    registers: [registry],
    async collect() {
      await refresh();
      if (last) this.set(last.oldest ?? 0);
    },
  });
}

/** Wraps the service's create so every call is timed, labelled ok or with its error code. */
export function timedCreate<A extends [unknown, { method: string }, ...unknown[]], R>(
  m: PaymentsMetrics,
  create: (...args: A) => Promise<R>,
) {
  return async (...args: A): Promise<R> => {
    const end = m.createDuration.startTimer();
    const method = args[1]?.method === 'upi_qr' || args[1]?.method === 'upi_collect' ? args[1].method : 'invalid';
    try {
      const out = await create(...args);
      end({ method, outcome: 'ok' });
      return out;
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      end({ method, outcome: typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? code : 'internal_error' });
      throw e;
    }
  };
}

/**
 * The payment and refund transition counters and the reconciliation gauge, created once per
 * process registry by src/metrics.ts and reached as `metrics.payments`, `metrics.refunds`,
 * `metrics.reconciliationPending` (the Metrics interface below).
 */
export function createPaymentCounters(registry: Registry) {
  return {
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
    reconciliationPending: new Gauge({
      name: 'tillpoint_payments_needing_reconciliation',
      help: 'Payments flagged for reconciliation (deemed or unknown at the bank)',
      registers: [registry],
    }),
  };
}

export type PaymentCounters = ReturnType<typeof createPaymentCounters>;

declare module '../../platform/metrics.ts' {
  interface Metrics extends PaymentCounters {}
}
