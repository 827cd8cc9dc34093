import type { Logger } from 'pino';
import type { Db } from '../platform/db.ts';
import type { PaymentsService } from '../modules/payments/index.ts';
import type { RewardsService } from '../modules/rewards/index.ts';
import { pruneNonces } from '../platform/signing.ts';
import type { Registry } from 'prom-client';
import { createWorkerMetrics, untimed } from './worker.metrics.ts';

// The worker role: background jobs on a fixed tick. Every job claims its rows with
// FOR UPDATE SKIP LOCKED (or a lease), so any number of worker replicas can run side by side.

export interface WorkerDeps {
  db: Db;
  payments: Pick<PaymentsService, 'runStatusChecks' | 'runExpiry' | 'runRefundChecks' | 'updateReconciliationGauge'>;
  /** Reward points: pending periods that ended, lots that expired. */
  rewards?: Pick<RewardsService, 'runJobs'>;
  /** Audit trail: seal new records, sign tree heads, export sealed segments, retention. Never throws. */
  audit?: { runJobs(): Promise<unknown> };
  /** Operators: disable accounts unused for 90 days (PCI DSS 8.2.6). */
  identity?: { disableInactive(): Promise<number> };
  /** Vault: re-encryption after key rotations (a batch per tick), key-age metrics. */
  vault?: { runWorkerTick(): Promise<number>; updateMetrics(): Promise<void> };
  logger: Logger;
  intervalMs: number;
  /** Where job durations and failures are counted (tillpoint_worker_job_*); none in some tests. */
  registry?: Registry;
}

const IDEMPOTENCY_RETENTION_HOURS = 24;
const NONCE_RETENTION_SECONDS = 3600; // well past the callback max age, so a replay is always caught

export function createWorker({ db, payments, rewards, audit, identity, vault, logger, intervalMs, registry }: WorkerDeps) {
  const job = registry ? createWorkerMetrics(registry) : untimed;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let ticks = 0;

  async function runOnce() {
    // First, so a failing payment job cannot hold the trail back.
    await job('audit', async () => audit?.runJobs());
    const checked = await job('status_checks', () => payments.runStatusChecks());
    const expired = await job('expiry', () => payments.runExpiry());
    const refunds = await job('refund_checks', () => payments.runRefundChecks());
    const points = rewards ? await job('rewards', () => rewards.runJobs()) : { matured: 0, expired: 0 };
    const reencrypted = vault ? await job('vault_rewrap', () => vault.runWorkerTick()) : 0;
    // Housekeeping, once a minute or so.
    if (ticks++ % Math.max(1, Math.round(60_000 / intervalMs)) === 0) {
      await db.query(`DELETE FROM platform.idempotency_keys WHERE created_at < now() - make_interval(hours => $1)`, [IDEMPOTENCY_RETENTION_HOURS]);
      await pruneNonces(db, NONCE_RETENTION_SECONDS);
      await payments.updateReconciliationGauge();
      await vault?.updateMetrics();
      const disabled = (await identity?.disableInactive()) ?? 0;
      if (disabled > 0) logger.info({ disabled }, 'inactive operator accounts disabled');
    }
    if (checked + expired + refunds + points.matured + points.expired + reencrypted > 0) {
      logger.info({ checked, expired, refunds, points_matured: points.matured, points_expired: points.expired, reencrypted }, 'worker tick');
    }
  }

  function schedule() {
    timer = setTimeout(() => {
      running = runOnce()
        .catch((e) => logger.error({ err: { type: (e as Error).name, code: (e as { code?: string }).code } }, 'worker tick failed'))
        .finally(() => {
          running = undefined;
          if (timer) schedule();
        });
    }, intervalMs);
  }

  return {
    runOnce,
    start() {
      if (!timer) schedule();
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
