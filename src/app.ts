import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { loadConfig, type Config } from './config.ts';
import { openDb, type Db } from './platform/db.ts';
import { migrate } from './platform/migrate.ts';
import { createLogger } from './platform/log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { registerPlatformMetrics, type CertificateFile } from './platform/platform.metrics.ts';
import { registerAuditMetrics } from './modules/audit/index.ts';
import { registerPaymentBacklogMetrics } from './modules/payments/index.ts';
import { systemClock, type Clock } from './platform/clock.ts';
import { registerReconQueueRoutes } from './modules/settlement/index.ts';
import { buildServer } from './http/server.ts';
import { createReadiness, databaseCheck } from './platform/readiness.ts';
import {
  createApiKeyAuthenticator,
  createApiKeysService,
  createAuthenticator,
  createIdentityService,
  registerIdentityRoutes,
  createApprovalsService,
  registerApprovalRoutes,
} from './modules/identity/index.ts';
import { createAuditService, registerAuditHooks, registerAuditRoutes, SYSTEM_ACTOR } from './modules/audit/index.ts';
import { createLedgerService } from './modules/ledger/index.ts';
import { bindBankSecrets, bindConnectorSecrets, createBanksService } from './modules/banks/index.ts';
// A tool, mounted under /sim in development only.
import { bankSimulatorPlugin } from './tools/bank-sim/index.ts';
import { createMerchantsService, registerMerchantRoutes } from './modules/merchants/index.ts';
import {
  createPaymentsService,
  auditPaymentHooks,
  registerPaymentInsightRoutes,
  registerPaymentRoutes,
  type PaymentHooks,
} from './modules/payments/index.ts';
import { registerConsole } from './http/console.ts';
import { generateComplianceReport, registerComplianceRoutes } from './modules/compliance/index.ts';
import { loadGateway, registerTerminalRoutes } from './modules/terminals/index.ts';
import { createRewardsService, registerRewardsRoutes, loadCustomerKey } from './modules/rewards/index.ts';
import {
  createSecretStore,
  createSecretsProvider,
  type SecretStore,
  type SecretsProvider,
} from './platform/secrets.ts';
import { databaseUrlVerifiesTls, loadApiTls } from './platform/tls.ts';
import {
  createKeyManagerFromConfig,
  createVault,
  detokenizeAuditHook,
  registerSensitiveDataGuard,
  registerVaultRoutes,
  type KeyManager,
} from './modules/vault/index.ts';
import { PAYER_VPA_FIELD } from './modules/payments/index.ts';
import { MERCHANT_ENCRYPTED_FIELDS } from './modules/merchants/index.ts';
import {
  COMPENSATION_PAYEE_VPA_FIELD,
  createSettlementService,
  registerSettlementMetrics,
  registerSettlementRoutes,
} from './modules/settlement/index.ts';
import {
  createBankFileTotals,
  createReconService,
  registerReconMetrics,
  registerReconRoutes,
} from './modules/settlement/index.ts';
import {
  createOnboardingService,
  HISTORY_PAYER_VPA_FIELD,
  registerOnboardingRoutes,
} from './modules/onboarding/index.ts';

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
  /** Where secrets come from; default: SECRETS_PROVIDER (environment, mounted files, AWS Secrets Manager). */
  secrets?: SecretsProvider;
  /** The key manager holding the key-encrypting key; default: KMS_PROVIDER. */
  kms?: KeyManager;
}

/** Every column other modules encrypt through the vault; the worker re-encrypts them after a key rotation. */
export const ENCRYPTED_FIELDS = [
  PAYER_VPA_FIELD,
  ...MERCHANT_ENCRYPTED_FIELDS,
  HISTORY_PAYER_VPA_FIELD,
  COMPENSATION_PAYEE_VPA_FIELD,
];

export async function createApp(opts: AppOptions = {}) {
  const role = opts.role ?? 'all';
  const config = opts.config ?? loadConfig();
  const logger = opts.logger ?? createLogger({ level: config.logLevel });
  const clock = opts.clock ?? systemClock;
  const metrics: Metrics = createMetrics();
  const ownsDb = !opts.db;
  // Secrets (bank HMAC keys, the database password, the keyring) are read now and kept fresh, so
  // a rotation reaches this process without a restart. A missing one stops the start, named.
  const secrets = createSecretStore(opts.secrets ?? createSecretsProvider(config.secrets), {
    refreshMs: config.secrets.refreshSeconds * 1000,
    overlapMs: config.secrets.overlapSeconds * 1000,
    logger,
  });
  await bindBankSecrets(config.banks, secrets);
  // Secrets that bank connectors' settings name (`*_secret`: signing keys, client keys).
  await bindConnectorSecrets(config.banks, secrets);
  const dbPassword =
    !opts.db && config.databasePasswordSecret
      ? await secrets.watch(config.databasePasswordSecret, 'DATABASE_PASSWORD_SECRET')
      : undefined;
  if (config.mode === 'production' && config.databaseUrl && !databaseUrlVerifiesTls(config.databaseUrl)) {
    logger.warn('DATABASE_URL does not ask for sslmode=verify-full: the connection to PostgreSQL is not verified TLS');
  }
  const db =
    opts.db ??
    (await openDb({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
      password: dbPassword && (() => dbPassword.current()),
      // Embedded: this process owns the data directory; `tillpoint` commands work through it (src/platform/embedded.ts).
      embedded: 'serve',
      create: true,
      command: `serve --role ${role}`,
    }));
  await migrate(db);
  return assembleApp({ role, config, logger, clock, metrics, ownsDb, secrets, db, opts });
}

/** What the services are built from: the database, settings, logger, clock, metrics and secret store. */
export interface ServiceDeps {
  db: Db;
  config: Config;
  logger: Logger;
  clock: Clock;
  metrics: Metrics;
  secrets: SecretStore;
  opts: Pick<AppOptions, 'kms'>;
}

/**
 * The modules' services wired to each other, with no HTTP, worker or gateway: what `createApp` runs
 * in every role, and what a command that must act exactly as the API does builds for itself
 * (`tillpoint recon ingest` settles flagged payments through this payments service, with its
 * hooks). One wiring, so the two cannot drift apart.
 */
export async function createServices({ db, config, logger, clock, metrics, secrets, opts }: ServiceDeps) {
  // The audit trail first: every module below records into it (PCI DSS 10).
  const audit = createAuditService({ db, config, clock, logger });
  // Four eyes (identity/approvals): MFA resets over the API, and refunds above the threshold (below).
  const approvals = createApprovalsService({ db, clock, audit: audit.writer, config });
  const identity = createIdentityService({ db, config, clock, audit: audit.writer, logger, approvals });
  // Field encryption, tokens and key rotation (src/modules/vault). Data keys exist before serving.
  const vault = createVault({
    db,
    clock,
    logger,
    registry: metrics.registry,
    config: config.keys,
    fields: ENCRYPTED_FIELDS,
    vpaPattern: config.payments.vpaPattern,
    kms: opts.kms ?? (await createKeyManagerFromConfig(config.keys, { mode: config.mode, secrets })),
    audit: detokenizeAuditHook(audit.writer),
  });
  await vault.init();
  const ledger = createLedgerService();
  const banks = createBanksService({ db, config, metrics, clock, audit: audit.writer, logger });
  const merchants = createMerchantsService({
    db,
    bankCodes: config.banks.map((b) => b.code),
    vpaPattern: config.payments.vpaPattern,
    audit: audit.writer,
    fields: vault.cipher,
  });
  // Modules that react to payment events (rewards, audit, …) add their hooks here.
  const paymentHooks: PaymentHooks[] = [auditPaymentHooks(audit.writer)];
  const payments = createPaymentsService({
    db,
    ledger,
    banks,
    config,
    metrics,
    clock,
    logger,
    hooks: paymentHooks,
    payerVpa: vault.cipher,
    refundApprovals: {
      file: (by, r) =>
        approvals.file(by, {
          kind: 'refund',
          subject_type: 'payment',
          subject_id: r.payment_id,
          merchant_id: r.merchant_id,
          payload: { amount: r.amount, reason: r.reason },
        }),
    },
  });
  // An approved refund runs the refund path again as the approver, its claim in the reservation's
  // transaction; a payment refunded meanwhile (or no longer refundable) closes the request as failed.
  approvals.registerExecutor('refund', {
    execute: async (a, approver, claim) => {
      const { amount, reason } = a.payload as { amount: number; reason: string | null };
      const r = await payments.refund(
        approver,
        a.subject_id,
        { amount, reason: reason ?? undefined },
        {
          approvalId: a.id,
          claim,
        },
      );
      return { refund_id: r.id, payment_id: r.payment_id, amount: r.amount, refund_status: r.status };
    },
    finalRefusals: ['payment_not_refundable', 'refund_exceeds_payment', 'payment_not_found', 'not_found'],
  });
  const rewards = createRewardsService({
    db,
    ledger,
    clock,
    logger,
    merchants,
    vpaPattern: config.payments.vpaPattern,
    batchSize: config.worker.batchSize,
    customerKey: loadCustomerKey(config.rewards.customerKey, config.dataDir, config.mode),
  });
  paymentHooks.push(rewards.hooks);
  // Settlement: reversals on the RBI clock, cycles, payouts (src/modules/settlement). recon's
  // BankFileTotals is given with settlement.setBankFileTotals(); recon calls settlement.requests.
  const settlement = createSettlementService({
    db,
    ledger,
    banks,
    clock,
    logger,
    config: config.settlement,
    bankCodes: config.banks.map((b) => b.code),
    publicUrl: config.publicUrl,
    accounts: merchants,
    // Compensation for late reversals is paid to the customer's VPA (decrypted here), audited.
    payerVpa: vault.cipher,
    audit: audit.writer,
    // An operator's retry of a refused compensation credit: to another VPA, or above the refunds'
    // threshold, a second operator approves it (the approvals facility, as refunds do).
    retries: {
      vpaPattern: config.payments.vpaPattern,
      approvalThresholdPaise: config.payments.refundApprovalThresholdPaise,
      approvals: {
        file: (by, r, tx) =>
          approvals.file(
            by,
            {
              kind: 'compensation_retry',
              subject_type: 'compensation_retry',
              subject_id: r.retry_id,
              merchant_id: null,
              payload: {
                payment_id: r.payment_id,
                day: r.day,
                amount: r.amount,
                payee_vpa: r.payee_vpa,
                reason: r.reason,
              },
            },
            tx,
          ),
      },
    },
  });
  approvals.registerExecutor('compensation_retry', {
    execute: async (a, approver, claim) => {
      const out = await settlement.retries.carryOut(a.subject_id, approver, claim);
      return { retry_id: out.retry.id, credit_ref: out.retry.credit_ref, compensation_status: out.compensation.status };
    },
    finalRefusals: ['compensation_not_retryable', 'compensation_not_found'],
  });
  // Reconciliation with the banks' files (settlement/recon). Its reversal port is settlement's reversals.
  const recon = createReconService({
    db,
    clock,
    audit: audit.writer,
    reversals: settlement.requests,
    // A payment flagged deemed or unknown at the bank that a file settles moves through payments.
    payments,
  });
  settlement.setBankFileTotals(createBankFileTotals(db));
  return { audit, approvals, identity, vault, ledger, banks, merchants, payments, rewards, settlement, recon };
}

async function assembleApp({
  role,
  ownsDb,
  opts,
  ...deps
}: ServiceDeps & { role: Role; ownsDb: boolean; opts: AppOptions }) {
  const { config, logger, clock, metrics, secrets, db } = deps;
  const services = await createServices({ ...deps, opts });
  const { audit, approvals, identity, vault, ledger, banks, merchants, payments, rewards, settlement, recon } =
    services;

  // Read at scrape time from the shared database: backlog, outbox lag, audit signer, pool, certificates.
  const certificates: CertificateFile[] = [{ name: 'terminal_ca', file: config.mqtt.caFile }];
  if (role === 'terminal-gateway' || role === 'all')
    certificates.push({ name: 'mqtt_server', file: config.mqtt.tlsCertFile });
  registerPlatformMetrics(metrics.registry, { db, certificates });
  registerAuditMetrics(metrics.registry, db);
  registerPaymentBacklogMetrics(metrics.registry, db);
  registerSettlementMetrics(metrics.registry, db);
  registerReconMetrics(metrics.registry, db);

  // Not ready while stopping, or without the database (and, for a gateway, its broker).
  const readiness = createReadiness({ checks: [databaseCheck(db)] });
  let http: FastifyInstance | undefined;
  if (role === 'api' || role === 'all') {
    const apiKeyAuth = createApiKeyAuthenticator(db, () => clock.now());
    const front = createAuthenticator(apiKeyAuth, identity);
    const tls = await loadApiTls(config.tls, { dataDir: config.dataDir });
    if (tls) certificates.push({ name: 'api_tls', pem: tls.certificatePem });
    if (tls?.warning) {
      logger.warn(tls.warning);
      process.stderr.write(`WARNING: ${tls.warning}\n`);
    }
    http = await buildServer({
      config,
      logger,
      metrics,
      db,
      authenticate: front.bearer,
      authenticateCookie: front.cookie,
      https: tls?.options,
      readiness,
    });
    // Card verification codes, PIN blocks and track data are refused before any route sees them (PCI DSS 3.3.1).
    registerSensitiveDataGuard(http, vault.onSensitiveDataRefused);
    registerAuditHooks(http, { db, audit: audit.writer, logger });
    const apiKeys = createApiKeysService({ db, clock, audit: audit.writer, onRevoke: apiKeyAuth.invalidate });
    registerIdentityRoutes(http, identity, apiKeys, { sessionAbsoluteHours: config.identity.sessionAbsoluteHours });
    registerApprovalRoutes(http, approvals);
    registerAuditRoutes(http, audit);
    registerMerchantRoutes(http, merchants);
    registerPaymentRoutes(http, payments, banks);
    registerPaymentInsightRoutes(http, { db, clock, payments });
    // The operator console (console/, built into console/dist by `npm start`).
    registerConsole(http, { distDir: fileURLToPath(new URL('../console/dist', import.meta.url)) });
    registerTerminalRoutes(http, { db, config, audit: audit.writer });
    registerRewardsRoutes(http, rewards);
    registerVaultRoutes(http, vault.tokens);
    registerComplianceRoutes(http, {
      keys: vault,
      report: () =>
        generateComplianceReport(
          {
            config,
            db,
            clock,
            identity,
            vault,
            audit,
            keysFromDataDir: config.audit.signingKey ? [] : ['AUDIT_SIGNING_KEY (a key file under the data dir)'],
          },
          audit.keys,
          config.publicUrl,
        ),
    });
    registerSettlementRoutes(http, settlement, banks);
    registerReconRoutes(http, recon);
    // The console's view of the queue: ages and deadlines (settlement/recon/queue.routes.ts).
    registerReconQueueRoutes(http, { db, recon, clock, tatDays: config.settlement.rbi.tatDays });
    // Bulk onboarding (src/modules/onboarding): uploads run as jobs in this process.
    const onboarding = createOnboardingService({
      db,
      ledger,
      fields: vault.cipher,
      vpaPattern: config.payments.vpaPattern,
      bankCodes: config.banks.map((b) => b.code),
      customerKey: loadCustomerKey(config.rewards.customerKey, config.dataDir, config.mode),
      audit: audit.writer,
      clock,
    });
    registerOnboardingRoutes(http, onboarding, {
      onError: (_id, e) =>
        logger.error({ err: { type: (e as Error)?.name, code: (e as { code?: string })?.code } }, 'import job stopped'),
    });
    if (config.embeddedBankSim) {
      const sim = config.banks.find((b) => b.connector === 'simbank');
      // A simulated bank of the pspbank format (BANK_SIM2_FORMAT) is served under /sim/psp.
      const psp = config.banks.find(
        (b) => b.connector === 'pspbank' && typeof b.settings?.sandbox_keys_dir === 'string',
      );
      if (sim)
        await http.register(bankSimulatorPlugin, {
          prefix: '/sim',
          secret: sim.secret,
          logger,
          ...(psp ? { psp: { keysDir: psp.settings!.sandbox_keys_dir as string } } : {}),
          ...opts.simulator,
        });
    }
  }
  // Role-specific code loads only in the roles that run it: the api process never loads the job
  // loop, nor the MQTT broker/client and the terminal protocol's validators (bench/PROFILE.md, memory).
  const worker =
    role === 'worker' || role === 'all'
      ? (await import('./roles/worker.ts')).createWorker({
          db,
          payments,
          rewards,
          audit,
          identity,
          approvals,
          vault,
          settlement,
          logger,
          intervalMs: config.worker.intervalMs,
          leaseSeconds: config.worker.leaseSeconds,
          registry: metrics.registry,
        })
      : undefined;
  const gateway =
    role === 'terminal-gateway' || role === 'all'
      ? (await loadGateway()).createTerminalGateway({
          db,
          config,
          logger,
          metrics,
          clock,
          payments,
          rewards,
          audit: audit.writer,
        })
      : undefined;
  if (gateway) readiness.add({ name: 'mqtt_broker', check: () => gateway.brokerConnected() });
  let stopping: Promise<void> | undefined;

  return {
    role,
    config,
    logger,
    metrics,
    db,
    http,
    worker,
    gateway,
    /** What /readyz answers (on the API and on HEALTH_PORT): draining, the database, the broker. */
    readiness,
    services: { ledger, banks, merchants, payments, rewards, audit, identity, approvals, vault, settlement, recon },
    /** Starts listening (api) and the job loop (worker). Returns the URL the API listens on. */
    async start(): Promise<string | undefined> {
      let url: string | undefined;
      if (http) {
        url = await http.listen({ port: config.port, host: config.host });
      }
      // Start and stop of the service, and of audit sealing and export (the worker), are recorded (10.2.1.6).
      await audit.record(db, {
        action: 'service.started',
        actor: SYSTEM_ACTOR(role),
        resource: { type: 'service', id: role },
        details: { audit_export: worker ? config.audit.export.target : 'off', pid: process.pid },
      });
      worker?.start();
      await gateway?.start();
      secrets.start();
      return url;
    },
    /**
     * The graceful stop (SIGTERM): /readyz turns 503 at once and, after SHUTDOWN_DELAY_SECONDS (time
     * for load balancers to notice), every part stops taking work together: the API stops accepting
     * connections and finishes the requests it has, the gateway leaves the broker's shared
     * subscription and answers the requests it holds, the worker finishes the job it is in and hands
     * back its lease. Then the connections close. The caller bounds the whole (SHUTDOWN_TIMEOUT_SECONDS).
     */
    stop() {
      stopping ??= (async () => {
        readiness.drain();
        const { shutdownDelaySeconds, shutdownTimeoutSeconds } = config.lifecycle;
        if (shutdownDelaySeconds > 0) await new Promise((r) => setTimeout(r, shutdownDelaySeconds * 1000));
        secrets.stop();
        const drainMs = Math.max(1000, (shutdownTimeoutSeconds - shutdownDelaySeconds - 2) * 1000);
        const timed = async (part: string, p: Promise<unknown> | undefined) => {
          if (!p) return;
          const t0 = performance.now();
          try {
            await p;
            logger.info({ part, ms: Math.round(performance.now() - t0) }, 'stopped taking work');
          } catch (e) {
            logger.warn({ part, err: { type: (e as Error)?.name } }, 'a part did not stop cleanly');
          }
        };
        await Promise.all([
          timed('http', http && closeHttp(http)),
          timed('terminal-gateway', gateway?.stop({ drainMs })),
          timed('worker', worker?.stop()),
        ]);
        await audit
          .record(db, {
            action: 'service.stopped',
            actor: SYSTEM_ACTOR(role),
            resource: { type: 'service', id: role },
            details: { pid: process.pid },
          })
          .catch(() => {});
        vault.close();
        if (ownsDb) await db.close();
      })();
      return stopping;
    },
  };
}

/**
 * Closes the HTTP server gracefully: no new connections, requests in flight finish. A keep-alive
 * connection that was busy when the close began becomes idle after its answer; it is closed then
 * (Node closes only the connections idle at the moment of close()), so clients are not left
 * holding a connection to a stopping process.
 */
async function closeHttp(http: FastifyInstance) {
  const sweep = setInterval(() => http.server.closeIdleConnections?.(), 100);
  try {
    await http.close();
  } finally {
    clearInterval(sweep);
  }
}

export type TillpointApp = Awaited<ReturnType<typeof createApp>>;
