import type { Db } from './db.ts';

// Readiness: whether this process should be sent work now. Not ready while it drains (a stop has
// begun) or while something it cannot work without is gone (the database; the MQTT broker for a
// gateway on an external broker). Each probe asks afresh, so a process that lost its database
// says ready again by itself once the database is back; nothing is latched.

export interface ReadinessCheck {
  name: string;
  /** true: fine. Throwing or taking longer than the probe timeout counts as failed. */
  check(): Promise<boolean> | boolean;
}

export type ReadinessState = { ready: boolean; draining: boolean; checks: Record<string, 'ok' | 'failed'> };

export interface Readiness {
  /** From now on not ready: a stop has begun. */
  drain(): void;
  readonly draining: boolean;
  add(check: ReadinessCheck): void;
  status(): Promise<ReadinessState>;
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * The database answers. On PostgreSQL on a connection of the probe's own (Db.ping): through the
 * pool, a backlog of requests or jobs waiting for connections (after a bank outage, say) made the
 * probe wait past its limit and the process said not ready although the database was fine.
 */
export function databaseCheck(db: Pick<Db, 'query' | 'ping'>, timeoutMs = 2000): ReadinessCheck {
  return {
    name: 'database',
    check: async () => (db.ping ? db.ping(timeoutMs) : (await db.query('SELECT 1')).rows.length === 1),
  };
}

export function createReadiness(opts: { checks?: ReadinessCheck[]; timeoutMs?: number } = {}): Readiness {
  const checks = [...(opts.checks ?? [])];
  const timeoutMs = opts.timeoutMs ?? 2000;
  let draining = false;
  return {
    drain() {
      draining = true;
    },
    get draining() {
      return draining;
    },
    add(c) {
      checks.push(c);
    },
    async status() {
      const results = await Promise.all(
        checks.map(
          async (c) =>
            [
              c.name,
              (await within(
                Promise.resolve().then(() => c.check()),
                timeoutMs,
              ).catch(() => false))
                ? 'ok'
                : 'failed',
            ] as const,
        ),
      );
      const byName = Object.fromEntries(results) as Record<string, 'ok' | 'failed'>;
      return { ready: !draining && results.every(([, r]) => r === 'ok'), draining, checks: byName };
    },
  };
}
