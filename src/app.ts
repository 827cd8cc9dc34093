import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { loadConfig, type Config } from './platform/config.ts';
import { openDb, type Db } from './platform/db.ts';
import { migrate } from './platform/migrate.ts';
import { createLogger } from './platform/log.ts';
import { createMetrics, type Metrics } from './platform/metrics.ts';
import { systemClock, type Clock } from './platform/clock.ts';
import { buildServer } from './http/server.ts';
import { createApiKeyAuthenticator, createApiKeysService, createAuthenticator, createIdentityService, registerIdentityRoutes } from './modules/identity/index.ts';
import { auditPaymentHooks, createAuditService, registerAuditHooks, registerAuditRoutes, SYSTEM_ACTOR } from './modules/audit/index.ts';
import { createLedgerService } from './modules/ledger/index.ts';
import { createBanksService, bankSimulatorPlugin } from './modules/banks/index.ts';
import { createMerchantsService, registerMerchantRoutes } from './modules/merchants/index.ts';
import { createPaymentsService, registerPaymentRoutes, type PaymentHooks } from './modules/payments/index.ts';
import { createWorker } from './roles/worker.ts';
import { createTerminalGateway, registerTerminalRoutes } from './modules/terminals/index.ts';
import { createRewardsService, registerRewardsRoutes, loadCustomerKey } from './modules/rewards/index.ts';

// Wires modules into a running role. One build; the role decides what runs:
//   api     HTTP API (and, in development, the bank simulator under /sim)
//   worker  background jobs
//   terminal-gateway  the MQTT broker terminals connect to (or a client of MQTT_URL) and the outbox relay
//   all     all of them, in one process (the default for `npm start`)

export type Role = 'api' | 'worker' | 'terminal-gateway' | 'all';

export interface AppOptions {
  role?: Role;
  config?: Config;
  logger?: Logger;
  clock?: Clock;
  /** An already-open database (tests); otherwise opened from config and closed on stop. */
  db?: Db;
  /** Options for the embedded bank simulator (tests set deterministic outcomes). */
  simulator?: Record<string, unknown>;
}

export async function createApp(opts: AppOptions = {}) {
  const role = opts.role ?? 'all';
  const config = opts.config ?? loadConfig();
  const logger = opts.logger ?? createLogger({ level: config.logLevel });
  const clock = opts.clock ?? systemClock;
  const metrics: Metrics = createMetrics();
  const ownsDb = !opts.db;
  const db = opts.db ?? (await openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolSize }));
  await migrate(db);

  // The audit trail first: every module below records into it (PCI DSS 10).
  const audit = createAuditService({ db, config, clock, logger });
  const identity = createIdentityService({ db, config, clock, audit: audit.writer, logger });
  const ledger = createLedgerService();
  const banks = createBanksService({ db, config, metrics, clock });
  const merchants = createMerchantsService({ db, bankCodes: config.banks.map((b) => b.code), vpaPattern: config.payments.vpaPattern, audit: audit.writer });
  // Modules that react to payment events (rewards, audit, …) add their hooks here.
  const paymentHooks: PaymentHooks[] = [auditPaymentHooks(audit.writer)];
  const payments = createPaymentsService({ db, ledger, banks, config, metrics, clock, logger, hooks: paymentHooks });
  const rewards = createRewardsService({
    db, ledger, clock, logger, merchants, vpaPattern: config.payments.vpaPattern, batchSize: config.worker.batchSize,
    customerKey: loadCustomerKey(config.rewards.customerKey, config.dataDir),
  });
  paymentHooks.push(rewards.hooks);

  let http: FastifyInstance | undefined;
  if (role === 'api' || role === 'all') {
    const apiKeyAuth = createApiKeyAuthenticator(db, () => clock.now());
    const front = createAuthenticator(apiKeyAuth, identity);
    http = await buildServer({ config, logger, metrics, db, authenticate: front.bearer, authenticateCookie: front.cookie });
    registerAuditHooks(http, { db, audit: audit.writer, logger });
    const apiKeys = createApiKeysService({ db, clock, audit: audit.writer, onRevoke: apiKeyAuth.invalidate });
    registerIdentityRoutes(http, identity, apiKeys, { sessionAbsoluteHours: config.identity.sessionAbsoluteHours });
    registerAuditRoutes(http, audit);
    registerMerchantRoutes(http, merchants);
    registerPaymentRoutes(http, payments, banks);
    registerTerminalRoutes(http, { db, config });
    registerRewardsRoutes(http, rewards);
    if (config.embeddedBankSim) {
      const sim = config.banks.find((b) => b.connector === 'simbank');
      if (sim) await http.register(bankSimulatorPlugin, { prefix: '/sim', secret: sim.secret, logger, ...opts.simulator });
    }
  }
  const worker = role === 'worker' || role === 'all' ? createWorker({ db, payments, rewards, audit, identity, logger, intervalMs: config.worker.intervalMs }) : undefined;
  const gateway = role === 'terminal-gateway' || role === 'all' ? createTerminalGateway({ db, config, logger, metrics, clock, payments }) : undefined;

  return {
    role,
    config,
    logger,
    db,
    http,
    worker,
    gateway,
    services: { ledger, banks, merchants, payments, rewards, audit, identity },
    /** Starts listening (api) and the job loop (worker). Returns the URL the API listens on. */
    async start(): Promise<string | undefined> {
      let url: string | undefined;
      if (http) {
        url = await http.listen({ port: config.port, host: config.host });
      }
      // Start and stop of the service, and of audit sealing and export (the worker), are recorded (10.2.1.6).
      await audit.record(db, { action: 'service.started', actor: SYSTEM_ACTOR(role), resource: { type: 'service', id: role }, details: { audit_export: worker ? config.audit.export.target : 'off', pid: process.pid } });
      worker?.start();
      await gateway?.start();
      return url;
    },
    async stop() {
      await gateway?.stop();
      await worker?.stop();
      await audit.record(db, { action: 'service.stopped', actor: SYSTEM_ACTOR(role), resource: { type: 'service', id: role }, details: { pid: process.pid } }).catch(() => {});
      await http?.close();
      if (ownsDb) await db.close();
    },
  };
}

export type TillpointApp = Awaited<ReturnType<typeof createApp>>;
