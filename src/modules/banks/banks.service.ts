import { hostname } from 'node:os';
import type { Config } from '../../platform/config.ts';
import type { BankConfig, BankRoutingConfig } from './banks.settings.ts';
import type { Db, Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { systemClock, type Clock } from '../../platform/clock.ts';
import type { Metrics } from '../../platform/metrics.ts';
import { pruneNonces, refuseSignedRequest, rememberNonce, type HeaderSource } from '../../platform/signing.ts';
import { createConnector } from './connectors/index.ts';
import type { Connector } from './connectors/contract.ts';
import { createBankMetrics, type BankMetrics } from './banks.metrics.ts';
import { createHealthTracker, type BreakerState, type CallClass, type HealthStats, type Transition } from './health.ts';
import * as repo from './banks.repo.ts';
import { BankCallError, type BankCallback, type BankConnector, type BankResult } from './types.ts';

// Which bank a payment goes to, whether a bank is taking traffic, and whether a callback
// really came from the bank it claims to. Connectors are built once, at start, from config.

export interface BankStatus {
  code: string;
  status: 'up' | 'down';
  reason: string | null;
  changedAt: Date | null;
}

/** One process's view of one bank (banks.bank_health), for `banks status`. */
export type BankHealthView = repo.BankHealthRow & { stale: boolean };

export interface RoutingView {
  rule: BankRoutingConfig['rule'];
  breaker: boolean;
  /** What the rule does, in words, with its parameters. */
  description: string;
  /** In this process: each bank's breaker, window, score and share of new payments for a merchant of `for`. */
  banks: { code: string; breaker: BreakerState; stats: HealthStats; score: number; weight: number }[];
}

/** Anything that records audit events (the audit module's writer); optional, so tests may leave it out. */
export interface AuditSink {
  record(
    q: Queryable,
    input: {
      action: string;
      outcome?: 'success' | 'failure';
      actor?: { type: 'system'; id: string; merchant_id: null };
      resource?: { type: string; id?: string | null };
      details?: Record<string, string | number | boolean | null>;
    },
  ): Promise<string>;
}

export interface BanksService {
  /** The connector for a configured bank; AppError('not_found') for an unknown code. */
  connector(code: string): BankConnector;
  /**
   * The bank a new payment of a merchant whose acquiring bank is `acquiringBank` goes to: among
   * that bank and config.bankFallbackOrder, leaving out banks marked down (always) and banks whose
   * breaker is open (while another can take it), ordered by the routing rule.
   * AppError('bank_unavailable') when every one is marked down.
   * `down`: the banks marked down, when the caller has just read them in a query of its own
   * (payments reads them with the terminal, in one round trip); otherwise they are read here.
   */
  route(acquiringBank: string, down?: ReadonlySet<string>): Promise<BankConnector>;
  markDown(code: string, reason: string): Promise<void>;
  markUp(code: string): Promise<void>;
  statuses(): Promise<BankStatus[]>;
  /** The routing rule and this process's view of each bank (for a merchant of `acquiringBank`). */
  routing(acquiringBank?: string): RoutingView;
  /** Every process's last written view of each bank. */
  health(): Promise<BankHealthView[]>;
  /** Writes this process's view to banks.bank_health now (it is also written by itself, throttled). */
  flushHealth(): Promise<void>;
  /**
   * Verifies a bank's callback with that bank's connector (signature and format, over the raw
   * body), then freshness and single use for every bank alike, and reads it. Every refusal is
   * recorded in platform.rejected_calls. `rawBody` must be the body exactly as received.
   */
  verifyCallback(
    bankCode: string,
    headers: HeaderSource,
    rawBody: string | Uint8Array,
    remoteAddr?: string,
  ): Promise<BankCallback>;
  /**
   * verifyCallback() without remembering the nonce: the caller remembers it (`replay`) in the
   * transaction or statement of the callback's effect, so it commits with that effect or not at
   * all, and calls `replay.refuse()` when it was seen already (payments: bench/PROFILE.md).
   */
  checkCallback(
    bankCode: string,
    headers: HeaderSource,
    rawBody: string | Uint8Array,
    remoteAddr?: string,
  ): Promise<CheckedCallback>;
  /** Forgets callback nonces old enough that their timestamps would be refused anyway. */
  pruneNonces(): Promise<number>;
}

/** A callback whose signature and freshness hold, and the single-use key its handler must remember. */
export interface CheckedCallback {
  callback: BankCallback;
  replay: ReplayGuard;
}

/** A verified call's nonce, to be remembered (platform/signing rememberNonce or rememberNonceSql) with its effect. */
export interface ReplayGuard {
  scope: string;
  nonce: string;
  at: Date;
  /** Records the refusal (platform.rejected_calls, metrics) and throws AppError('replayed_request'). */
  refuse(): Promise<never>;
}

export interface BanksServiceDeps {
  /** The database itself, not a transaction: refused callbacks are recorded even as the call fails. */
  db: Db | Queryable;
  config: Pick<Config, 'banks' | 'bankFallbackOrder' | 'publicUrl' | 'bankTimeoutMs' | 'callbacks'> &
    Partial<Pick<Config, 'bankRouting' | 'mode'>>;
  metrics?: Pick<Metrics, 'bankCalls' | 'callbacksRejected'> & Partial<Pick<Metrics, 'registry'>>;
  clock?: Clock;
  /** Replaces the connectors built from config (tests hand in fakes and scripted banks). */
  connectors?: Record<string, Connector | BankConnector>;
  /** Breaker transitions are audit events (PCI DSS 10: changes to how payments are processed). */
  audit?: AuditSink;
  /** Random source for success-rate routing; default Math.random. */
  rng?: () => number;
  logger?: { warn(obj: object, msg?: string): void; info(obj: object, msg?: string): void };
}

const DEFAULT_ROUTING: BankRoutingConfig = {
  rule: 'priority',
  exploration: 0.1,
  breaker: true,
  windowSeconds: 60,
  tripWindowSeconds: 10,
  minCalls: 20,
  failureRateToOpen: 0.5,
  consecutiveToOpen: 10,
  openSeconds: 30,
  probeEvery: 10,
  probesToClose: 5,
};

/** How often (at most) a process writes its health view while it has traffic. */
const HEALTH_FLUSH_MS = 5_000;
/** A view older than this is shown as stale (its process stopped, or has no traffic). */
const HEALTH_STALE_MS = 5 * 60_000;

const TECHNICAL_CODES = new Set(['U28', 'U30', 'U31']);

/** How a call's ending counts for the bank's health (health.ts). */
export function classifyResult(r: BankResult): CallClass {
  // The codes payments also counts as technical declines (payments.metrics.ts): the bank or the
  // switch failed, not the customer.
  if (TECHNICAL_CODES.has(r.responseCode)) return 'technical';
  switch (r.outcome) {
    case 'failed':
    case 'expired':
      return 'declined';
    case 'deemed':
      // The switch or the bank timed out on it: the bank side is not answering in time.
      return 'technical';
    case 'unknown':
      return 'ok';
    default:
      return 'ok';
  }
}

export function classifyError(e: unknown): CallClass {
  // A 409 (this reference with other details) is about our request, not the bank's health.
  if (e instanceof BankCallError && e.delivery === 'rejected' && e.code === 'conflict') return 'declined';
  return 'technical';
}

export function createBanksService(deps: BanksServiceDeps): BanksService {
  const { db, config } = deps;
  const clock = deps.clock ?? systemClock;
  const routingConfig = config.bankRouting ?? DEFAULT_ROUTING;
  const rng = deps.rng ?? Math.random;
  const instance = `${hostname()}:${process.pid}`;
  const bankMetrics: BankMetrics | undefined = deps.metrics?.registry
    ? createBankMetrics(deps.metrics.registry)
    : undefined;
  const banks = new Map<string, BankConfig>(config.banks.map((b) => [b.code, b]));

  let lastFlush = 0;
  let flushing: Promise<void> | undefined;
  const health = createHealthTracker({
    clock,
    settings: routingConfig,
    onTransition: (t) => void onTransition(t),
  });

  const connectors = new Map<string, Connector | BankConnector>();
  for (const b of config.banks) {
    const c =
      deps.connectors?.[b.code] ??
      createConnector(b, {
        publicUrl: config.publicUrl,
        timeoutMs: config.bankTimeoutMs,
        metrics: deps.metrics,
        clock,
        callbackMaxAgeSeconds: config.callbacks.maxAgeSeconds,
        production: config.mode === 'production',
      });
    connectors.set(b.code, measured(b.code, c));
  }

  /** The connector with every operation's ending counted towards the bank's health. */
  function measured<C extends BankConnector>(code: string, c: C): C {
    const wrap =
      <A extends unknown[], R>(fn: (...a: A) => Promise<R>, classify: (r: R) => CallClass) =>
      async (...a: A): Promise<R> => {
        const started = performance.now();
        try {
          const r = await fn(...a);
          note(code, classify(r), performance.now() - started);
          return r;
        } catch (e) {
          note(code, classifyError(e), performance.now() - started);
          throw e;
        }
      };
    return {
      ...c,
      code: c.code,
      registerIntent: wrap(c.registerIntent.bind(c), () => 'ok'),
      sendCollect: wrap(c.sendCollect.bind(c), classifyResult),
      checkStatus: wrap(c.checkStatus.bind(c), classifyResult),
      refund: wrap(c.refund.bind(c), classifyResult),
      checkRefundStatus: wrap(c.checkRefundStatus.bind(c), classifyResult),
      ...(c.pushCredit ? { pushCredit: wrap(c.pushCredit.bind(c), classifyResult) } : {}),
      ...(c.checkPushCreditStatus
        ? { checkPushCreditStatus: wrap(c.checkPushCreditStatus.bind(c), classifyResult) }
        : {}),
    };
  }

  function note(code: string, cls: CallClass, ms: number) {
    health.record(code, cls, ms);
    bankMetrics?.calls.inc({ bank: code, class: cls });
    // Off the payment's path: written after the call, never awaited by it, at most every 5 s.
    if (clock.now().getTime() - lastFlush >= HEALTH_FLUSH_MS) void flush();
  }

  async function onTransition(t: Transition) {
    bankMetrics?.transitions.inc({ bank: t.bank, from: t.from, to: t.to });
    bankMetrics?.state.set({ bank: t.bank }, t.to === 'closed' ? 0 : t.to === 'half_open' ? 1 : 2);
    deps.logger?.warn(
      { bank: t.bank, from: t.from, to: t.to, success_rate: t.stats.successRate },
      'bank circuit breaker changed state',
    );
    try {
      await deps.audit?.record(db, {
        action:
          t.to === 'open'
            ? 'bank.breaker_opened'
            : t.to === 'closed'
              ? 'bank.breaker_closed'
              : 'bank.breaker_half_opened',
        // The system decided, not the caller whose payment happened to tip the window.
        actor: { type: 'system', id: 'banks', merchant_id: null },
        resource: { type: 'bank', id: t.bank },
        details: {
          from: t.from,
          to: t.to,
          instance,
          calls: t.stats.calls,
          ok: t.stats.ok,
          technical: t.stats.technical,
          declined: t.stats.declined,
        },
      });
    } catch (e) {
      // The payment that tripped it must not fail because the trail could not be written now.
      deps.logger?.warn({ bank: t.bank, err: { type: (e as Error).name } }, 'breaker transition not audited');
    }
    await flush();
  }

  function bankConfig(code: string): BankConfig {
    const b = banks.get(code);
    if (!b) throw new AppError('not_found', 'Unknown bank', { bank: code });
    return b;
  }

  function candidates(acquiringBank: string): string[] {
    return [acquiringBank, ...config.bankFallbackOrder.filter((c) => c !== acquiringBank)].filter((c) => banks.has(c));
  }

  /** Each candidate's share of new payments under the rule, breakers aside. */
  function weights(order: string[]): Map<string, number> {
    const w = new Map<string, number>();
    if (order.length === 0) return w;
    if (routingConfig.rule === 'priority') {
      order.forEach((c, i) => w.set(c, i === 0 ? 1 : 0));
      return w;
    }
    // Success-rate routing (as Hyperswitch does it): the bank with the best smoothed success rate
    // gets the traffic, except an exploration share spread evenly, so every bank keeps being measured
    // and one that recovers can win its traffic back.
    const best = order.reduce((a, c) => (health.score(c) > health.score(a) ? c : a), order[0]);
    const even = routingConfig.exploration / order.length;
    for (const c of order) w.set(c, even + (c === best ? 1 - routingConfig.exploration : 0));
    return w;
  }

  function ordered(order: string[]): string[] {
    if (routingConfig.rule === 'priority' || order.length < 2) return order;
    const w = weights(order);
    let x = rng();
    let first = order[order.length - 1];
    for (const c of order) {
      x -= w.get(c) ?? 0;
      if (x < 0) {
        first = c;
        break;
      }
    }
    return [first, ...order.filter((c) => c !== first).sort((a, b) => health.score(b) - health.score(a))];
  }

  function flush(): Promise<void> {
    lastFlush = clock.now().getTime();
    flushing ??= (async () => {
      try {
        const at = clock.now().toISOString();
        const w = weights(candidates(config.banks[0]?.code ?? ''));
        await repo.saveHealth(
          db,
          config.banks.map((b) => {
            const s = health.stats(b.code);
            return {
              code: b.code,
              instance,
              breaker: health.state(b.code),
              calls: s.calls,
              ok: s.ok,
              declined: s.declined,
              technical: s.technical,
              success_rate: s.successRate === null ? null : Math.round(s.successRate * 10_000) / 10_000,
              p95_ms: s.p95Ms,
              rule: routingConfig.rule,
              weight: w.has(b.code) ? Math.round(w.get(b.code)! * 10_000) / 10_000 : null,
              updated_at: at,
            };
          }),
        );
      } catch (e) {
        // A view for operators; losing one write (a closing database, a busy pool) loses nothing else.
        deps.logger?.warn({ err: { type: (e as Error).name } }, 'bank health view not written');
      } finally {
        flushing = undefined;
      }
    })();
    return flushing;
  }

  async function refuse(b: BankConfig, reason: Parameters<typeof refuseSignedRequest>[1], remoteAddr?: string) {
    return refuseSignedRequest({ scope: `bank:${b.code}`, db, remoteAddr, metrics: deps.metrics }, reason);
  }

  const service: BanksService = {
    connector(code) {
      bankConfig(code);
      return connectors.get(code)!;
    },

    async route(acquiringBank, known) {
      bankConfig(acquiringBank);
      // Marked down: read on every call, no cache, so a bank marked down on any replica stops
      // getting payments at once (payments reads it with the terminal, in the same round trip).
      const down = known ?? (await repo.downCodes(db));
      const up = candidates(acquiringBank).filter((c) => !down.has(c));
      if (up.length === 0)
        throw new AppError('bank_unavailable', 'No bank is available to take this payment', {
          tried: candidates(acquiringBank),
        });
      const order = ordered(up);
      if (!routingConfig.breaker) return connectors.get(order[0])!;
      // The first bank whose breaker lets it through (a half-open one now and then, as a probe).
      const pick = order.find((c) => health.admit(c));
      if (pick) return connectors.get(pick)!;
      // Every breaker is open: still try the least bad bank rather than refuse every payment. The
      // breaker moves traffic to where it can go; it must not by itself make "no bank at all".
      const least = [...order].sort((a, b) => health.score(b) - health.score(a))[0];
      return connectors.get(least)!;
    },

    async markDown(code, reason) {
      bankConfig(code);
      await repo.setStatus(db, code, 'down', reason.slice(0, 500), clock.now());
    },

    async markUp(code) {
      bankConfig(code);
      await repo.setStatus(db, code, 'up', null, clock.now());
    },

    async statuses() {
      const rows = new Map((await repo.listStatuses(db)).map((r) => [r.code, r]));
      return config.banks.map((b) => {
        const r = rows.get(b.code);
        return {
          code: b.code,
          status: r?.status ?? 'up',
          reason: r?.reason ?? null,
          changedAt: r ? new Date(r.changed_at) : null,
        };
      });
    },

    routing(acquiringBank) {
      const order = candidates(acquiringBank ?? config.banks[0]?.code ?? '');
      const w = weights(order);
      const r = routingConfig;
      const description =
        r.rule === 'priority'
          ? `priority: the merchant's acquiring bank, then ${config.bankFallbackOrder.join(' > ')}`
          : `success_rate: ${Math.round((1 - r.exploration) * 100)}% to the bank with the best success rate ` +
            `((ok+1)/(ok+technical+2) over ${r.windowSeconds}s), ${Math.round(r.exploration * 100)}% spread evenly`;
      const breaker = r.breaker
        ? `; breaker opens at >= ${Math.round(r.failureRateToOpen * 100)}% technical failures over >= ${r.minCalls} calls ` +
          `in ${r.tripWindowSeconds}s or ${r.consecutiveToOpen} in a row, probes 1 in ${r.probeEvery} after ${r.openSeconds}s, ` +
          `closes after ${r.probesToClose} ok`
        : '; breaker off';
      return {
        rule: r.rule,
        breaker: r.breaker,
        description: description + breaker + '; banks marked down are never used',
        banks: config.banks.map((b) => ({
          code: b.code,
          breaker: health.state(b.code),
          stats: health.stats(b.code),
          score: Math.round(health.score(b.code) * 10_000) / 10_000,
          weight: Math.round((w.get(b.code) ?? 0) * 10_000) / 10_000,
        })),
      };
    },

    async health() {
      const now = clock.now().getTime();
      return (await repo.listHealth(db)).map((r) => ({
        ...r,
        stale: now - new Date(r.updated_at).getTime() > HEALTH_STALE_MS,
      }));
    },

    flushHealth: () => flush(),

    async verifyCallback(bankCode, headers, rawBody, remoteAddr) {
      const { callback, replay } = await service.checkCallback(bankCode, headers, rawBody, remoteAddr);
      if (!(await rememberNonce(db, replay.scope, replay.nonce, replay.at))) return replay.refuse();
      return callback;
    },

    async checkCallback(bankCode, headers, rawBody, remoteAddr) {
      const b = bankConfig(bankCode);
      const c = connectors.get(b.code) as Connector;
      const raw = Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(rawBody);
      if (typeof c.verifyCallback !== 'function')
        throw new AppError('internal_error', `Bank ${b.code}: its connector cannot verify callbacks`);
      let verdict: ReturnType<Connector['verifyCallback']>;
      try {
        verdict = c.verifyCallback(raw, headers);
      } catch {
        // The contract says a connector never throws here; if one does, the call is still refused, and recorded.
        verdict = { ok: false, reason: 'malformed_body' };
      }
      if (!verdict.ok) return refuse(b, verdict.reason, remoteAddr);
      // Freshness and single use, the same for every bank whatever its signature scheme.
      const now = clock.now();
      const age = (now.getTime() - verdict.sentAt.getTime()) / 1000;
      if (age > config.callbacks.maxAgeSeconds) return refuse(b, 'stale_timestamp', remoteAddr);
      if (age < -config.callbacks.maxAgeSeconds) return refuse(b, 'future_timestamp', remoteAddr);
      return {
        callback: verdict.callback,
        replay: {
          scope: `bank:${b.code}`,
          nonce: verdict.replayKey.slice(0, 128),
          at: now,
          refuse: () => refuse(b, 'replayed_nonce', remoteAddr),
        },
      };
    },

    pruneNonces() {
      // ±maxAge around now is a window 2×maxAge wide; keep nonces for all of it.
      return pruneNonces(db, 2 * config.callbacks.maxAgeSeconds, clock.now());
    },
  };
  return service;
}
