import { Gauge, type Registry } from 'prom-client';
import type { Queryable } from '../../../platform/db.ts';
import * as repo from './recon.repo.ts';

// Read at scrape time from the shared database, so every replica reports the same figures.
// Labels are closed sets: outcome (6), exception kind (8), bank code (the configured banks).

export function registerReconMetrics(registry: Registry, db: Queryable) {
  if (registry.getSingleMetric('tillpoint_recon_lines')) return;
  let last:
    | { outcomes: { bank: string; outcome: string; n: number }[]; open: { kind: string; n: number; age: number }[] }
    | undefined;
  let inflight: Promise<void> | undefined;
  const refresh = () =>
    (inflight ??= (async () => {
      try {
        const o = await repo.linesByBankAndOutcome(db);
        const x = await repo.openExceptionsByKind(db);
        last = {
          outcomes: o.map((r) => ({ bank: r.bank, outcome: r.outcome, n: Number(r.n) })),
          open: x.map((r) => ({ kind: r.kind, n: r.n, age: Number(r.age ?? 0) })),
        };
      } catch {
        // The database did not answer: keep the last values.
      } finally {
        inflight = undefined;
      }
    })());
  new Gauge({
    name: 'tillpoint_recon_lines',
    help: "Lines of the banks' settlement files, by bank and outcome (matched, amount_mismatch, duplicate, unknown, late_success, not_final)",
    labelNames: ['bank', 'outcome'] as const,
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const r of last?.outcomes ?? []) this.set({ bank: r.bank, outcome: r.outcome }, r.n);
    },
  });
  new Gauge({
    name: 'tillpoint_recon_exceptions_open',
    help: 'Reconciliation exceptions not yet resolved (open or waiting for a second operator), by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const r of last?.open ?? []) this.set({ kind: r.kind }, r.n);
    },
  });
  new Gauge({
    name: 'tillpoint_recon_exception_oldest_age_seconds',
    help: 'Age of the oldest unresolved reconciliation exception, by kind (compare with the T+5 reversal deadline)',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const r of last?.open ?? []) this.set({ kind: r.kind }, r.age);
    },
  });
}
