import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import type { Db } from './db.ts';

// Metrics of what the platform layer owns: the database pool, the transactional outbox
// (platform.outbox) and the certificates this process serves or trusts. Read at scrape time.

export interface CertificateFile {
  /** Stable, low-cardinality name: api_tls, terminal_ca, mqtt_server, … */
  name: string;
  /** Read at each scrape, so a renewed file is seen without a restart. */
  file?: string;
  /** A certificate held in memory (the API's, loaded at start). */
  pem?: string;
}

export function registerPlatformMetrics(registry: Registry, deps: { db: Db; certificates?: CertificateFile[] }) {
  if (registry.getSingleMetric('tillpoint_outbox_unpublished')) return;
  const { db } = deps;

  if (db.poolStats) {
    const stats = db.poolStats.bind(db);
    new Gauge({
      name: 'tillpoint_db_pool_connections',
      help: 'Database pool connections by state (busy, idle) and the pool size (max)',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const s = stats();
        this.set({ state: 'busy' }, s.total - s.idle);
        this.set({ state: 'idle' }, s.idle);
        this.set({ state: 'max' }, s.max);
      },
    });
    new Gauge({
      name: 'tillpoint_db_pool_waiting_requests',
      help: 'Queries and transactions waiting for a free pool connection',
      registers: [registry],
      collect() {
        this.set(stats().waiting);
      },
    });
  }

  let outbox: { count: number; oldest: number } | undefined;
  let inflight: Promise<void> | undefined;
  const refresh = () =>
    (inflight ??= db
      .query<{ n: number; oldest: number | null }>(
        `SELECT count(*)::int AS n, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest FROM platform.outbox WHERE published_at IS NULL`,
      )
      .then((r) => {
        outbox = { count: Number(r.rows[0].n), oldest: Number(r.rows[0].oldest ?? 0) };
      })
      .catch(() => {}) // database unavailable: keep the last values
      .finally(() => {
        inflight = undefined;
      }));
  new Gauge({
    name: 'tillpoint_outbox_unpublished',
    help: 'Outbox events committed but not yet published to terminals',
    registers: [registry],
    async collect() {
      await refresh();
      if (outbox) this.set(outbox.count);
    },
  });
  new Gauge({
    name: 'tillpoint_outbox_lag_seconds',
    help: 'Age of the oldest unpublished outbox event (0 when none is waiting)',
    registers: [registry],
    async collect() {
      await refresh();
      if (outbox) this.set(outbox.oldest);
    },
  });

  const certs = deps.certificates ?? [];
  new Gauge({
    name: 'tillpoint_certificate_expiry_timestamp_seconds',
    help: 'When each certificate this process serves or trusts stops being valid (Unix time), read from its file at scrape time',
    labelNames: ['certificate'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of certs) {
        const notAfter = certificateNotAfter(c);
        if (notAfter) this.set({ certificate: c.name }, Math.floor(notAfter.getTime() / 1000));
      }
    },
  });
}

/** The first certificate's notAfter, or undefined when the file is absent or unreadable. */
export function certificateNotAfter(c: Omit<CertificateFile, 'name'>): Date | undefined {
  try {
    return new Date(new X509Certificate(c.pem ?? readFileSync(c.file!)).validTo);
  } catch {
    return undefined;
  }
}
