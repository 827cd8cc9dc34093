import type { Config } from '../../platform/config.ts';
import type { BankConfig } from './banks.settings.ts';
import type { Db, Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { systemClock, type Clock } from '../../platform/clock.ts';
import type { Metrics } from '../../platform/metrics.ts';
import { pruneNonces, verifySignedRequest, type HeaderSource } from '../../platform/signing.ts';
import { createConnector } from './connectors/index.ts';
import * as repo from './banks.repo.ts';
import type { BankCallback, BankConnector } from './types.ts';

// Which bank a payment goes to, whether a bank is taking traffic, and whether a callback
// really came from the bank it claims to. Connectors are built once, at start, from config.

export interface BankStatus {
  code: string;
  status: 'up' | 'down';
  reason: string | null;
  changedAt: Date | null;
}

export interface BanksService {
  /** The connector for a configured bank; AppError('not_found') for an unknown code. */
  connector(code: string): BankConnector;
  /**
   * The merchant's acquiring bank unless it is marked down, else the first bank of
   * config.bankFallbackOrder that is up. AppError('bank_unavailable') when all are down.
   * `down`: the banks marked down, when the caller has just read them in a query of its own
   * (payments reads them with the terminal, in one round trip); otherwise they are read here.
   */
  route(acquiringBank: string, down?: ReadonlySet<string>): Promise<BankConnector>;
  markDown(code: string, reason: string): Promise<void>;
  markUp(code: string): Promise<void>;
  statuses(): Promise<BankStatus[]>;
  /**
   * Verifies a bank's signed callback (signature, freshness, nonce never seen) and parses it.
   * `rawBody` must be the body exactly as received.
   */
  verifyCallback(
    bankCode: string,
    headers: HeaderSource,
    rawBody: string | Uint8Array,
    remoteAddr?: string,
  ): Promise<BankCallback>;
  /** Forgets callback nonces old enough that their timestamps would be refused anyway. */
  pruneNonces(): Promise<number>;
}

export interface BanksServiceDeps {
  /** The database itself, not a transaction: refused callbacks are recorded even as the call fails. */
  db: Db | Queryable;
  config: Pick<Config, 'banks' | 'bankFallbackOrder' | 'publicUrl' | 'bankTimeoutMs' | 'callbacks'>;
  metrics?: Pick<Metrics, 'bankCalls' | 'callbacksRejected'>;
  clock?: Clock;
  /** Replaces the connectors built from config (tests hand in fakes). */
  connectors?: Record<string, BankConnector>;
}

export function createBanksService(deps: BanksServiceDeps): BanksService {
  const { db, config } = deps;
  const clock = deps.clock ?? systemClock;
  const banks = new Map<string, BankConfig>(config.banks.map((b) => [b.code, b]));
  const connectors = new Map<string, BankConnector>();
  for (const b of config.banks) {
    connectors.set(
      b.code,
      deps.connectors?.[b.code] ??
        createConnector(b, {
          publicUrl: config.publicUrl,
          timeoutMs: config.bankTimeoutMs,
          metrics: deps.metrics,
          clock,
        }),
    );
  }

  function bankConfig(code: string): BankConfig {
    const b = banks.get(code);
    if (!b) throw new AppError('not_found', 'Unknown bank', { bank: code });
    return b;
  }

  function connector(code: string): BankConnector {
    bankConfig(code);
    return connectors.get(code)!;
  }

  return {
    connector,

    async route(acquiringBank, known) {
      bankConfig(acquiringBank);
      // Read on every call, no cache: a bank marked down on any replica must stop getting
      // payments at once, and this is one indexed read of a table with a row per bank.
      const down = known ?? (await repo.downCodes(db));
      const order = [acquiringBank, ...config.bankFallbackOrder.filter((c) => c !== acquiringBank)];
      const pick = order.find((c) => banks.has(c) && !down.has(c));
      if (!pick) throw new AppError('bank_unavailable', 'No bank is available to take this payment', { tried: order });
      return connectors.get(pick)!;
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

    async verifyCallback(bankCode, headers, rawBody, remoteAddr) {
      const b = bankConfig(bankCode);
      await verifySignedRequest({
        scope: `bank:${b.code}`,
        // Current secret first; the previous one only while a rotation overlap is configured.
        secrets: b.previousSecret ? [b.secret, b.previousSecret] : [b.secret],
        headers,
        rawBody,
        maxAgeSeconds: config.callbacks.maxAgeSeconds,
        now: clock.now(),
        db,
        remoteAddr,
        metrics: deps.metrics,
      });
      let body: unknown;
      try {
        body = JSON.parse(typeof rawBody === 'string' ? rawBody : Buffer.from(rawBody).toString('utf8'));
      } catch {
        throw new AppError('malformed_json', 'Callback body is not valid JSON');
      }
      return connectors.get(b.code)!.parseCallback(body);
    },

    pruneNonces() {
      // ±maxAge around now is a window 2×maxAge wide; keep nonces for all of it.
      return pruneNonces(db, 2 * config.callbacks.maxAgeSeconds, clock.now());
    },
  };
}
