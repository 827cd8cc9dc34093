import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { createWorkerMetrics, untimed } from './worker.metrics.ts';
import type { Db } from '../platform/db.ts';
import type { PaymentsService } from '../modules/payments/index.ts';
import type { RewardsService } from '../modules/rewards/index.ts';
import { pruneNonces } from '../platform/signing.ts';
import { createLease, type Lease } from '../platform/leases.ts';
import { IDEMPOTENCY_KEYS, pruneRequestLedger } from '../platform/requestLedger.ts';

// The worker role: background jobs on a fixed tick. Any number of worker replicas run side by
// side, and none does a piece of work another is doing:
//   payment status checks, expiry, refund checks  rows claimed with FOR UPDATE SKIP LOCKED, the
//       claim pushing next_check_at out as a lease (payments.repo.ts); the outcome is then a
//       compare-and-set transition, so a late second answer changes nothing
//   reward maturing and expiry  one customer at a time, locked FOR UPDATE SKIP LOCKED
//   vault re-encryption  the rewrap job row is leased per batch (vault/rewrap.ts)
//   audit sealing, signing, export, retention  one writer: the holder of the `audit.signer`
//       lease (platform/leases.ts); when it dies another worker takes over once the lease
//       expires (WORKER_LEASE_SECONDS). Sealing and signing also lock audit.state, so even a
//       holder that stalled past its lease cannot fork the tree.
//   housekeeping  idempotent deletes and updates, safe to run twice
// (The outbox relay runs in the terminal-gateway role, claiming rows with SKIP LOCKED.)
//
// Each job runs on its own: one that throws is logged and counted and the others still run.

export interface WorkerDeps {
  db: Db;
  payments: Pick<PaymentsService, 'runStatusChecks' | 'runExpiry' | 'runRefundChecks' | 'updateReconciliationGauge'>;
  /** Reward points: pending periods that ended, lots that expired. */
  rewards?: Pick<RewardsService, 'runJobs'>;
  /** Audit trail: seal new records, sign tree heads, export sealed segments, retention. */
  audit?: { runJobs(): Promise<unknown> };
  /** Operators: disable accounts unused for 90 days (PCI DSS 8.2.6). */
  identity?: { disableInactive(): Promise<number> };
  /** Four eyes: requests nobody decided in APPROVAL_EXPIRY_HOURS expire (identity/approvals). */
  approvals?: { expireStale(): Promise<number> };
  /** Vault: re-encryption after key rotations (a batch per tick), key-age metrics. */
  vault?: { runWorkerTick(): Promise<number>; updateMetrics(): Promise<void> };
  /** Settlement: reversals in deadline order, their status checks and compensation, cycle closes (src/modules/settlement). */
  settlement?: { workerJobs(): { name: string; every?: number; run(): Promise<number> }[] };
  logger: Logger;
  intervalMs: number;
  /** How long the audit signer's lease lasts without renewal: the longest takeover after its holder dies. */
  leaseSeconds?: number;
  /** Where the job metrics go (the process's registry); a private one otherwise. */
  registry?: Registry;
}

const IDEMPOTENCY_RETENTION_HOURS = 24;
const NONCE_RETENTION_SECONDS = 3600; // well past the callback max age, so a replay is always caught
export const AUDIT_SIGNER_LEASE = 'audit.signer';

interface Job {
  name: string;
  /** Runs every this many ticks (1: every tick). */
  every: number;
  /** Only the holder of this lease runs the job. */
  lease?: Lease;
  /** Returns how many things it did (logged when > 0). */
  run(): Promise<number>;
}

function leaseGauge(registry: Registry | undefined) {
  if (!registry) return undefined;
  return (
    (registry.getSingleMetric('tillpoint_worker_lease_held') as Gauge<'lease'> | undefined) ??
    new Gauge({
      name: 'tillpoint_worker_lease_held',
      help: '1 while this worker holds the lease (one writer per lease across replicas)',
      labelNames: ['lease'] as const,
      registers: [registry],
    })
  );
}

const errInfo = (e: unknown) => ({ type: (e as Error)?.name, code: (e as { code?: string })?.code });

export function createWorker({
  db,
  payments,
  rewards,
  audit,
  identity,
  approvals,
  vault,
  settlement,
  logger,
  intervalMs,
  leaseSeconds = 10,
  registry,
}: WorkerDeps) {
  // Durations and failures by task (worker.metrics.ts, the names the dashboards and alert rules use).
  const timeJob = registry ? createWorkerMetrics(registry) : untimed;
  const leaseHeld = leaseGauge(registry);
  const auditLease = createLease(AUDIT_SIGNER_LEASE, { ttlSeconds: leaseSeconds });
  const housekeepingEvery = Math.max(1, Math.round(60_000 / intervalMs));
  const jobs: Job[] = [
    // First, so a slow payment job cannot hold the trail back.
    ...(audit ? [{ name: 'audit', every: 1, lease: auditLease, run: async () => (await audit.runJobs(), 0) }] : []),
    { name: 'status_checks', every: 1, run: () => payments.runStatusChecks() },
    { name: 'expiry', every: 1, run: () => payments.runExpiry() },
    { name: 'refund_checks', every: 1, run: () => payments.runRefundChecks() },
    ...(settlement ? settlement.workerJobs().map((j) => ({ every: 1, ...j })) : []),
    ...(rewards
      ? [
          {
            name: 'rewards',
            every: 1,
            run: async () => {
              const r = await rewards.runJobs();
              return r.matured + r.expired;
            },
          },
        ]
      : []),
    ...(vault ? [{ name: 'vault_rewrap', every: 1, run: () => vault.runWorkerTick() }] : []),
    // Housekeeping, once a minute or so.
    {
      name: 'idempotency_keys_prune',
      every: housekeepingEvery,
      run: () => pruneRequestLedger(db, IDEMPOTENCY_KEYS, IDEMPOTENCY_RETENTION_HOURS),
    },
    {
      name: 'nonces_prune',
      every: housekeepingEvery,
      run: async () => (await pruneNonces(db, NONCE_RETENTION_SECONDS), 0),
    },
    {
      name: 'reconciliation_gauge',
      every: housekeepingEvery,
      run: async () => (await payments.updateReconciliationGauge(), 0),
    },
    ...(vault
      ? [{ name: 'vault_metrics', every: housekeepingEvery, run: async () => (await vault.updateMetrics(), 0) }]
      : []),
    ...(identity
      ? [{ name: 'inactive_operators', every: housekeepingEvery, run: () => identity.disableInactive() }]
      : []),
    ...(approvals ? [{ name: 'approvals_expiry', every: housekeepingEvery, run: () => approvals.expireStale() }] : []),
  ];

  let timer: NodeJS.Timeout | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let ticks = 0;
  let stopping = false;

  /** Takes or renews the lease; a database that cannot be reached means not holding it. */
  async function holds(lease: Lease): Promise<boolean> {
    const before = lease.held();
    let now = false;
    try {
      now = await lease.acquire(db);
    } catch (e) {
      logger.warn({ err: errInfo(e), lease: lease.name }, 'could not renew the lease');
    }
    if (now !== before)
      logger.info({ lease: lease.name, holder: lease.holder }, now ? 'took the lease' : 'lost the lease');
    leaseHeld?.set({ lease: lease.name }, now ? 1 : 0);
    return now;
  }

  /** The tick running now, if any (a stop waits for it). */
  let inTick: Promise<unknown> | undefined;
  /** One tick: every job due, each on its own. Returns what each job did (-1: failed, undefined: not run). */
  function runOnce(): Promise<Record<string, number | undefined>> {
    const p = runTick();
    inTick = p.catch(() => {});
    return p;
  }
  async function runTick(): Promise<Record<string, number | undefined>> {
    const n = ticks++;
    const done: Record<string, number | undefined> = {};
    for (const job of jobs) {
      if (stopping) break; // a stop hands the rest of the tick back: the next worker does it
      if (n % job.every !== 0) continue;
      // The lease is renewed on its own timer (a long tick must not lose it); taken here when not held.
      if (job.lease && !job.lease.held() && !(await holds(job.lease))) continue;
      try {
        done[job.name] = await timeJob(job.name, () => job.run()); // timed; a throw is counted
      } catch (e) {
        done[job.name] = -1;
        logger.error({ err: errInfo(e), job: job.name }, 'worker job failed; will retry next tick');
      }
    }
    const worked = Object.entries(done).filter(([, n]) => n !== undefined && n > 0);
    if (worked.length > 0) logger.info(Object.fromEntries(worked), 'worker tick');
    return done;
  }

  function schedule() {
    timer = setTimeout(() => {
      running = runOnce()
        .then(() => undefined)
        .catch((e) => logger.error({ err: errInfo(e) }, 'worker tick failed'))
        .finally(() => {
          running = undefined;
          if (timer) schedule();
        });
    }, intervalMs);
  }

  return {
    runOnce,
    auditLease,
    start() {
      stopping = false;
      if (!timer) schedule();
      // Renewed three times per lease period, whatever the jobs are doing; a holder that cannot
      // reach the database lets it run out, and another worker takes over.
      renewTimer ??= setInterval(
        () => {
          if (auditLease.held() && !stopping) void holds(auditLease);
        },
        Math.max(500, (leaseSeconds * 1000) / 3),
      );
    },
    /**
     * Stops taking new work: no new tick starts, the current one finishes the job it is in (each
     * job's claims are short transactions, and a claim left unanswered runs out on its own), and
     * the audit lease is handed back so another worker signs at once.
     */
    async stop() {
      stopping = true;
      clearTimeout(timer);
      clearInterval(renewTimer);
      timer = undefined;
      renewTimer = undefined;
      await running;
      await inTick;
      if (auditLease.held()) {
        await auditLease
          .release(db)
          .catch((e) => logger.warn({ err: errInfo(e) }, 'could not release the audit lease; it expires by itself'));
        leaseHeld?.set({ lease: auditLease.name }, 0);
      }
    },
  };
}
