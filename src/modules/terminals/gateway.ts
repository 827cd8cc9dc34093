import { existsSync, readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Db } from '../../platform/db.ts';
import { ConfigError, type Config } from '../../platform/config.ts';
import { systemClock, type Clock } from '../../platform/clock.ts';
import type { Metrics } from '../../platform/metrics.ts';
import { createAuditWriter, loadAuditKeys, type AuditWriter } from '../audit/index.ts';
import {
  createRequestHandler,
  errorResponse,
  peekRequestId,
  type HandlerOutcome,
  type PaymentsForTerminals,
  type RewardsForTerminals,
} from './protocol/handlers.ts';
import { createOutboxRelay } from './outboxRelay.ts';
import { createViolationRecorder } from './violations.ts';
import { credentialsRevokedSince, inactiveTerminals, pruneRequests } from './terminals.repo.ts';
import { createPresenceWriter, parseStatus } from './presence.ts';
import { resetEmbeddedPresence } from './presence.repo.ts';
import { responseTopic } from './topics.ts';
import { pkiFiles } from './certs.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker/embedded.ts';
import { connectExternalBroker } from './broker/external.ts';
import type { RequestSink, Transport } from './broker/transport.ts';
import { SpanKind, tracingEnabled, withSpan } from '../../platform/tracing.ts';

// The terminal gateway: a broker (embedded Aedes, or a client of an external broker), the
// request handler that turns terminal messages into payments-service calls, and the outbox
// relay that pushes payment.updated events. Runs in the `terminal-gateway` and `all` roles.

export interface GatewayDeps {
  db: Db;
  /** `dataDir` and `audit` locate the audit trail's key when no `audit` writer is given. */
  config: Pick<Config, 'mode' | 'mqtt' | 'dataDir' | 'audit'>;
  logger: Logger;
  /**
   * The audit trail (terminal reads of payments and reward points are recorded as data.read).
   * Default: a writer of its own with the process's audit key (AUDIT_SIGNING_KEY, or the key file
   * under the data directory), as the audit service has.
   */
  audit?: Pick<AuditWriter, 'record'>;
  payments: PaymentsForTerminals;
  /** Reward points for rewards.balance and rewards.quote (optional). */
  rewards?: RewardsForTerminals;
  metrics?: Pick<Metrics, 'registry'>;
  clock?: Clock;
  /** How often live sessions are checked against revoked credentials and disabled terminals (embedded broker). */
  revocationSweepMs?: number;
  /** How often presence changes are written (one statement each time). Default 1000 ms. */
  presenceFlushMs?: number;
  /** A terminal's last_seen is written at most this often for its requests. Default 60 s. */
  presenceLastSeenEveryMs?: number;
}

/** Requests one connection may have in flight; more are refused with rate_limited. */
const MAX_IN_FLIGHT_PER_CONNECTION = 32;
/**
 * Admission control. At most this many requests run at once (each holds database connections and
 * may wait on a bank); the rest wait in arrival order, up to MAX_QUEUED, and beyond that are
 * refused with rate_limited (the SDK retries). Without it an overload slows every request alike
 * until all of them time out; with it the early ones finish in time and the excess is told so.
 */
const MAX_CONCURRENT_REQUESTS = 64;
const MAX_QUEUED_REQUESTS = 2000;
/** A request that waited this long for a slot is answered rate_limited instead of run late. */
const MAX_QUEUE_WAIT_MS = 1000;
const HOUSEKEEPING_MS = 10 * 60_000;

function gatewayMetrics(registry: Registry) {
  return {
    requests: new Counter({
      name: 'tillpoint_terminal_requests_total',
      help: 'Terminal requests by type and outcome (ok or error code)',
      labelNames: ['type', 'outcome'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'tillpoint_terminal_request_duration_seconds',
      help: 'Time from a request reaching the gateway to its response being handed to the broker',
      labelNames: ['type'] as const,
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    violations: new Counter({
      name: 'tillpoint_terminal_violations_total',
      help: 'Refused connects, publishes, subscriptions and bad messages, by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    events: new Counter({
      name: 'tillpoint_terminal_events_published_total',
      help: 'Outbox events published to terminals',
      registers: [registry],
    }),
    connections: new Gauge({
      name: 'tillpoint_terminal_connections',
      help: 'Terminals connected to the embedded broker',
      registers: [registry],
    }),
    presenceRows: new Counter({
      name: 'tillpoint_terminal_presence_rows_written_total',
      help: 'Terminals whose presence (status, last_seen) was written, one statement per batch',
      registers: [registry],
    }),
    presenceBatches: new Counter({
      name: 'tillpoint_terminal_presence_batches_total',
      help: 'Presence batches written (statements)',
      registers: [registry],
    }),
  };
}

export function createTerminalGateway(deps: GatewayDeps) {
  const { db, config, logger } = deps;
  const mq = config.mqtt;
  const clock = deps.clock ?? systemClock;
  const metrics = gatewayMetrics(deps.metrics?.registry ?? new Registry());
  const recorder = createViolationRecorder({ db, logger, onRecord: (kind) => metrics.violations.inc({ kind }) });
  const presence = createPresenceWriter({
    db,
    logger,
    source: mq.url ? 'external' : 'embedded',
    flushMs: deps.presenceFlushMs,
    lastSeenEveryMs: deps.presenceLastSeenEveryMs,
    onFlush: (rows) => {
      metrics.presenceRows.inc(rows);
      metrics.presenceBatches.inc();
    },
  });
  // Built on first use: in a Tillpoint process the audit service has already loaded (and checked)
  // the same key at start.
  let ownAudit: AuditWriter | undefined;
  const audit: Pick<AuditWriter, 'record'> = deps.audit ?? {
    record(q, input) {
      ownAudit ??= createAuditWriter({
        keys: loadAuditKeys({
          mode: config.mode,
          dataDir: config.dataDir,
          signingKey: config.audit.signingKey,
          trustedPublicKeys: config.audit.trustedPublicKeys,
        }),
        clock,
      });
      return ownAudit.record(q, input);
    },
  };
  const handler = createRequestHandler({
    db,
    payments: deps.payments,
    rewards: deps.rewards,
    audit,
    logger,
    maxPayloadBytes: mq.maxPayloadBytes,
  });
  const pending = new Set<Promise<void>>();
  let handled = 0;
  let running = 0;
  const waiting: { run(ok: boolean): void; since: number }[] = [];
  /** Resolves true when the request may run, false when it waited too long; undefined when the queue is full. */
  function admit(): Promise<boolean> | undefined {
    if (running < MAX_CONCURRENT_REQUESTS) {
      running++;
      return Promise.resolve(true);
    }
    if (waiting.length >= MAX_QUEUED_REQUESTS) return undefined;
    return new Promise((run) => waiting.push({ run, since: performance.now() }));
  }
  function release() {
    const now = performance.now();
    for (let next = waiting.shift(); next; next = waiting.shift()) {
      if (now - next.since <= MAX_QUEUE_WAIT_MS) return next.run(true); // the slot passes straight on
      next.run(false);
    }
    running--;
  }
  let transport: Transport | undefined;
  let embedded: EmbeddedBroker | undefined;
  const timers: NodeJS.Timeout[] = [];

  const publish = (topic: string, payload: string) => {
    if (!transport) return Promise.reject(new Error('the terminal gateway is not running'));
    return transport.publish(topic, payload);
  };

  const relay = createOutboxRelay({
    db,
    logger,
    publish,
    batchSize: mq.outboxBatchSize,
    pollMs: mq.outboxPollMs,
    onPublished: (n) => metrics.events.inc(n),
  });

  /**
   * A terminal request's span (tracing on only): its request id is how a trace is found from the
   * terminal's side (MQTT has no W3C headers), and the payment, bank call and ledger work it
   * causes are its children.
   */
  function traced(terminalId: string, payload: Buffer, run: () => Promise<HandlerOutcome>): Promise<HandlerOutcome> {
    if (!tracingEnabled()) return run();
    const attributes = {
      'messaging.system': 'mqtt',
      'tillpoint.terminal_id': terminalId,
      'tillpoint.request_id': peekRequestId(payload) ?? '',
    };
    return withSpan(
      'terminal request',
      attributes,
      async (span) => {
        const out = await run();
        span.updateName(`terminal ${out.type ?? 'unknown'}`);
        span.setAttribute('tillpoint.outcome', out.outcome);
        return out;
      },
      { kind: SpanKind.SERVER },
    );
  }

  const onRequest: RequestSink = (terminalId, payload, ctx) => {
    // Heard from: last_seen, written at most once a minute per terminal (presence.ts).
    presence.seen(terminalId);
    if (ctx.inFlight && ctx.inFlight.count >= MAX_IN_FLIGHT_PER_CONNECTION) {
      recorder.record({
        kind: 'too_many_in_flight',
        terminalId,
        detail: `more than ${MAX_IN_FLIGHT_PER_CONNECTION} requests in flight`,
      });
      metrics.requests.inc({ type: 'unknown', outcome: 'rate_limited' });
      publish(
        responseTopic(terminalId),
        errorResponse(
          peekRequestId(payload),
          'rate_limited',
          `At most ${MAX_IN_FLIGHT_PER_CONNECTION} requests may be in flight per connection`,
        ),
      ).catch(() => {});
      return;
    }
    const admitted = admit();
    if (!admitted) {
      // Shed load rather than queue without bound.
      metrics.requests.inc({ type: 'unknown', outcome: 'rate_limited' });
      publish(
        responseTopic(terminalId),
        errorResponse(peekRequestId(payload), 'rate_limited', 'The gateway is busy; send the request again shortly'),
      ).catch(() => {});
      return;
    }
    if (ctx.inFlight) ctx.inFlight.count++;
    handled++;
    const end = metrics.duration.startTimer();
    const busy = (): HandlerOutcome => ({
      outcome: 'rate_limited',
      response: errorResponse(
        peekRequestId(payload),
        'rate_limited',
        'The gateway is busy; send the request again shortly',
      ),
    });
    let ran = false;
    const work = admitted
      .then((ok) => ((ran = ok) ? traced(terminalId, payload, () => handler.handle(terminalId, payload, ctx)) : busy()))
      .then(async (out) => {
        const type = out.type ?? 'unknown';
        metrics.requests.inc({ type, outcome: out.outcome });
        if (out.violation) {
          recorder.record({ kind: out.violation.kind, terminalId, detail: out.violation.detail });
          ctx.strike?.();
        }
        if (out.response) await publish(responseTopic(terminalId), out.response);
        end({ type });
      })
      .catch((e: Error & { code?: string }) => {
        // The handler answers every request itself; reaching here means the database or the
        // broker failed. The terminal times out and retries with the same id.
        logger.error(
          { err: { type: e.name, code: e.code, message: e.message.slice(0, 200) }, terminal_id: terminalId },
          'terminal request not answered',
        );
      })
      .finally(() => {
        if (ran) release();
        if (ctx.inFlight) ctx.inFlight.count--;
        pending.delete(work);
      });
    pending.add(work);
  };

  function tlsMaterial(): { key: Buffer; cert: Buffer; ca: Buffer } {
    const missing = (
      [
        ['MQTTS_CERT_FILE', mq.tlsCertFile],
        ['MQTTS_KEY_FILE', mq.tlsKeyFile],
        ['TERMINAL_CA_FILE', mq.caFile],
      ] as const
    ).find(([, f]) => !existsSync(f));
    if (missing)
      throw new ConfigError(
        missing[0],
        `${missing[1]} does not exist (create the terminal CA with "tillpoint pki init", or set MQTTS_PORT=off)`,
      );
    return { key: readFileSync(mq.tlsKeyFile), cert: readFileSync(mq.tlsCertFile), ca: readFileSync(mq.caFile) };
  }

  async function startEmbedded(): Promise<EmbeddedBroker> {
    let tlsOpts: { port: number; key: Buffer; cert: Buffer; ca: Buffer } | undefined;
    if (mq.tlsPort !== undefined) {
      const f = pkiFiles(mq.pkiDir);
      const usesPkiDir = mq.tlsCertFile === f.serverCert && mq.tlsKeyFile === f.serverKey && mq.caFile === f.caCert;
      if (
        config.mode !== 'production' &&
        usesPkiDir &&
        !(existsSync(f.caCert) && existsSync(f.serverCert) && existsSync(f.serverKey))
      ) {
        // Development convenience: a fresh checkout gets its own terminal CA on first start.
        const { initPki } = await import('./pki.ts');
        await initPki(mq.pkiDir);
        logger.info({ dir: mq.pkiDir }, 'created a development terminal CA');
      }
      tlsOpts = { port: mq.tlsPort, ...tlsMaterial() };
    }
    return startEmbeddedBroker({
      db,
      clock,
      logger,
      host: mq.host,
      port: config.mode === 'production' ? undefined : mq.port,
      tls: tlsOpts,
      // Requests above the payload limit still get an error response; frames far above it are
      // cut off at the header, before their bytes are buffered.
      maxFrameBytes: 4 * mq.maxPayloadBytes + 1024,
      onRequest,
      record: (v) => recorder.record(v),
      onPresence: (terminalId, online, sinceMs) => presence.status(terminalId, online, sinceMs),
      onStatusMessage: (terminalId) => presence.seen(terminalId),
    });
  }

  /** External broker: a terminal's status message or will, from the shared subscription. */
  function onStatus(terminalId: string, payload: Buffer) {
    const s = parseStatus(payload);
    if (!s) {
      recorder.record({ kind: 'malformed', terminalId, detail: 'status message is not {"v":1,"status":…,"since":…}' });
      return;
    }
    presence.status(terminalId, s.online, s.since);
  }

  async function sweepRevoked(since: Date): Promise<Date> {
    if (!embedded) return since;
    const r = await credentialsRevokedSince(db, new Date(since.getTime() - 2000));
    if (r.fingerprints.length + r.secretIds.length > 0) {
      const n = embedded.dropRevoked(new Set(r.fingerprints), new Set(r.secretIds));
      if (n > 0) logger.info({ closed: n }, 'closed sessions whose credential was revoked');
    }
    // A terminal disabled since it connected (PATCH /v1/terminals/:id, on any replica) loses its
    // session too: it would be refused at connect, so it may not keep talking on an open one.
    const disabled = await inactiveTerminals(db, embedded.liveTerminals());
    if (disabled.length > 0) {
      const n = embedded.dropTerminals(new Set(disabled));
      if (n > 0) logger.info({ closed: n }, 'closed sessions of disabled terminals');
    }
    return r.now;
  }

  return {
    relay,
    recorder,
    presence,
    /** Starts the broker (or connects to the external one), then the relay. Returns where terminals connect. */
    async start(): Promise<string[]> {
      if (mq.url) {
        transport = await connectExternalBroker({
          url: mq.url,
          shareGroup: mq.shareGroup,
          clientCertFile: mq.clientCertFile,
          clientKeyFile: mq.clientKeyFile,
          caFile: mq.brokerCaFile,
          logger,
          onRequest,
          onStatus,
          record: (v) => recorder.record(v),
        });
      } else {
        // A new embedded broker has no connections yet: what an earlier one recorded online is not.
        const reset = await resetEmbeddedPresence(db);
        if (reset > 0)
          logger.info({ terminals: reset }, 'marked terminals offline that an earlier embedded broker had online');
        embedded = await startEmbedded();
        transport = embedded;
        let since = (await db.query<{ now: Date }>('SELECT now() AS now')).rows[0].now;
        const sweep = () =>
          setTimeout(async () => {
            try {
              since = await sweepRevoked(since);
            } catch (e) {
              logger.warn({ err: { type: (e as Error).name } }, 'revocation sweep failed');
            }
            metrics.connections.set(embedded?.connectedCount() ?? 0);
            if (transport) timers[0] = sweep();
          }, deps.revocationSweepMs ?? 5000);
        timers[0] = sweep();
      }
      timers[1] = setInterval(() => {
        pruneRequests(db, mq.requestRetentionHours).catch((e) =>
          logger.warn({ err: { type: (e as Error).name } }, 'pruning terminal request ids failed'),
        );
      }, HOUSEKEEPING_MS);
      timers[1].unref();
      relay.start();
      return transport.urls();
    },
    urls: () => transport?.urls() ?? [],
    ports: () => embedded?.ports() ?? {},
    connectedCount: () => transport?.connectedCount(),
    /** Requests this gateway took (with replicas on an external broker, each takes its share). */
    handledCount: () => handled,
    /** Runs one revocation sweep now (tests; the gateway runs it every few seconds). */
    sweepRevokedNow: () => sweepRevoked(new Date(0)),
    /** Whether the broker is reachable (readiness); false before start and after stop. */
    brokerConnected: () => transport?.connected() ?? false,
    /** Requests being handled now. */
    inFlight: () => pending.size,
    /**
     * Stops: takes no new requests (on an external broker the shared subscription is left first,
     * so the other replicas get them), lets those being handled answer (up to `drainMs`), stops
     * the relay (a batch not marked published is sent again by another replica), closes.
     */
    async stop(opts: { drainMs?: number } = {}) {
      for (const t of timers) clearTimeout(t);
      await Promise.race([transport?.stopConsuming?.(), new Promise((r) => setTimeout(r, 2000).unref())]).catch(
        () => {},
      );
      await relay.stop();
      const t = transport;
      // Let requests already being handled finish and answer before the broker goes away.
      await Promise.race([
        Promise.allSettled([...pending]),
        new Promise((r) => setTimeout(r, opts.drainMs ?? 5000).unref()),
      ]);
      transport = undefined;
      embedded = undefined;
      await t?.close();
      // After the broker: its last disconnects are written too.
      await Promise.all([recorder.close(), presence.close()]);
    },
  };
}

export type TerminalGateway = ReturnType<typeof createTerminalGateway>;
