import { Gauge, type Registry } from 'prom-client';
import type { Queryable } from '../../platform/db.ts';
import { reversalGauges } from './reversals/reversals.repo.ts';
import { latestDifferences } from './cycles/cycles.repo.ts';
import { payoutTotals } from './payouts/payouts.repo.ts';
import { compensationGauges } from './reversals/compensation.repo.ts';

// Settlement's gauges, read from the shared database at scrape time (every replica reports the
// same values; the alert rules take max()). One query per group per scrape, shared by its gauges.

function cached<T>(load: () => Promise<T>) {
  let last: T | undefined;
  let inflight: Promise<void> | undefined;
  return async () => {
    inflight ??= load()
      .then((v) => {
        last = v;
      })
      .catch(() => {
        // The database did not answer: keep the last values; /readyz and the DB alerts say why.
      })
      .finally(() => {
        inflight = undefined;
      });
    await inflight;
    return last;
  };
}

export function registerSettlementMetrics(registry: Registry, db: Queryable) {
  if (registry.getSingleMetric('tillpoint_reversals_overdue')) return;
  const reversals = cached(() => reversalGauges(db));
  new Gauge({
    name: 'tillpoint_reversals_pending',
    help: 'Reversals not yet done (scheduled, or sent and awaiting the bank)',
    registers: [registry],
    async collect() {
      const v = await reversals();
      if (v) this.set(v.pending);
    },
  });
  new Gauge({
    name: 'tillpoint_reversals_overdue',
    help: 'Reversals not done by their RBI deadline (T+5, RBI/2019-20/67), refused ones included',
    registers: [registry],
    async collect() {
      const v = await reversals();
      if (v) this.set(v.overdue);
    },
  });
  new Gauge({
    name: 'tillpoint_reversals_failed',
    help: 'Reversals the bank refused, waiting for an operator',
    registers: [registry],
    async collect() {
      const v = await reversals();
      if (v) this.set(v.failed);
    },
  });
  const diffs = cached(() => latestDifferences(db));
  new Gauge({
    name: 'tillpoint_settlement_cycle_difference_paise',
    help: "The bank file minus what we expected, for each bank's latest checked cycle, by side (credit, debit)",
    labelNames: ['bank', 'side'] as const,
    registers: [registry],
    async collect() {
      const v = await diffs();
      this.reset();
      for (const d of v ?? []) {
        this.set({ bank: d.bank_code, side: 'credit' }, d.credit);
        this.set({ bank: d.bank_code, side: 'debit' }, d.debit);
      }
    },
  });
  const payouts = cached(() => payoutTotals(db));
  new Gauge({
    name: 'tillpoint_payouts_paise',
    help: 'Net payout amounts by status (scheduled, held, nothing_due, sent, paid, returned)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const v = await payouts();
      this.reset();
      for (const p of v ?? []) this.set({ status: p.status }, p.paise);
    },
  });
  new Gauge({
    name: 'tillpoint_payouts',
    help: 'Payouts by status',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const v = await payouts();
      this.reset();
      for (const p of v ?? []) this.set({ status: p.status }, p.n);
    },
  });
  const credits = cached(() => compensationGauges(db));
  new Gauge({
    name: 'tillpoint_compensation_credits',
    help: 'Compensation for late reversals (RBI/2019-20/67), one row per payment and day, by credit status (due, pending, paid, failed, legacy)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const v = await credits();
      this.reset();
      for (const c of v ?? []) this.set({ status: c.status }, c.n);
    },
  });
  new Gauge({
    name: 'tillpoint_compensation_credits_paise',
    help: 'Compensation amounts by credit status: due and failed are owed to customers, pending is in transit',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const v = await credits();
      this.reset();
      for (const c of v ?? []) this.set({ status: c.status }, c.paise);
    },
  });
}
