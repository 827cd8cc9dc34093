import { freePort, withFreePorts } from '../../src/platform/freePort.ts';
import { httpJson } from './http.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { createTestDb } from '../../src/platform/testing.ts';
import { createLogger } from '../../src/platform/log.ts';
import type { Clock } from '../../src/platform/clock.ts';
import { createApp } from '../../src/app.ts';
import { createWorker } from '../../src/roles/worker.ts';
import { createApiKey } from '../../src/modules/identity/index.ts';
import { PERMISSIONS } from '../../src/platform/principal.ts';

// A real Tillpoint API on a loopback port, over a test database (PGlite, or a fresh database on
// the PostgreSQL at TEST_DATABASE_URL), with the bank simulator embedded and answering at once.

export { freePort, withFreePorts };
export { apiCall, httpJson, type Res } from './http.ts';

export async function startTestApp(
  opts: { env?: Record<string, string>; simulator?: Record<string, unknown>; clock?: Clock; logLines?: string[] } = {},
) {
  const logger = opts.logLines
    ? createLogger({ level: 'info', destination: { write: (s: string) => void opts.logLines!.push(s) } })
    : createLogger({ level: 'silent' });
  const open = async (port: number | undefined) => {
    const db = await createTestDb();
    let app: Awaited<ReturnType<typeof createApp>> | undefined;
    try {
      const config = loadConfig({
        NODE_ENV: 'test',
        ...(port === undefined ? {} : { PORT: String(port) }),
        TILLPOINT_DATA_DIR: mkdtempSync(join(tmpdir(), 'tillpoint-test-')),
        STATUS_CHECK_FIRST_AFTER_SECONDS: '0',
        STATUS_CHECK_INTERVAL_SECONDS: '0',
        ...opts.env,
      });
      app = await createApp({
        role: 'api',
        config,
        db,
        logger,
        clock: opts.clock,
        simulator: { latencyMs: 0, outcomes: { approve: 1 }, callbackRetryDelaysMs: [50, 100], ...opts.simulator },
      });
      const url = (await app.start())!;
      return { db, config, app, url };
    } catch (e) {
      // Nothing of a start that failed stays behind: a retry begins with a database of its own.
      await app?.stop().catch(() => {});
      await db.close().catch(() => {});
      throw e;
    }
  };
  // The caller's PORT is the caller's to retry (startAppBehindGateway); else a fresh port when the
  // one found free was taken before the app bound it (src/platform/freePort.ts).
  const { db, config, app, url } =
    opts.env?.PORT === undefined ? await withFreePorts(1, ([port]) => open(port)) : await open(undefined);
  const worker = createWorker({ db, payments: app.services.payments, logger, intervalMs: 1000 });
  const admin = await createApiKey(db, { name: 'test admin', merchantId: null, permissions: PERMISSIONS });

  const request = <T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    httpJson<T>(url + path, method, body, { authorization: `Bearer ${admin.key}`, ...headers });

  /** A merchant with a store and a terminal, created through the API. */
  async function seedMerchant(name = 'Test Store', vpa = `shop${Math.random().toString(36).slice(2, 8)}@simbank`) {
    const m = await request('POST', '/v1/merchants', { name, vpa, mcc: '5411', acquiring_bank: 'SIMBANK' });
    if (m.status !== 201) throw new Error(`seed merchant: ${m.status} ${JSON.stringify(m.body)}`);
    const s = await request('POST', `/v1/merchants/${m.body.id}/stores`, { name: 'Main', city: 'Pune' });
    const t = await request('POST', '/v1/terminals', { store_id: s.body.id, label: 'Till 1' });
    return { merchant: m.body, store: s.body, terminal: t.body };
  }

  /** Waits until `fn` returns a truthy value (callbacks arrive asynchronously). */
  async function eventually<T>(fn: () => Promise<T>, ms = 5000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v || Date.now() > end) return v;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  return {
    app,
    db,
    url,
    config,
    worker,
    adminKey: admin.key,
    request,
    seedMerchant,
    eventually,
    async payQr(upiUri: string, payerVpa = 'ravi.kumar@okaxis', outcome?: string) {
      const r = await fetch(url + '/sim/v1/customer-payments', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ upi_uri: upiUri, payer_vpa: payerVpa, ...(outcome ? { outcome } : {}) }),
      });
      return { status: r.status, body: (await r.json()) as any };
    },
    async close() {
      await app.stop();
      await db.close();
    },
  };
}

export type TestApp = Awaited<ReturnType<typeof startTestApp>>;

/**
 * Noon in India (06:30 UTC) of today: where a test's fake clock starts when it counts days. UPI
 * dates are Indian (IST) dates, so a clock started at the real time ran into the next day when
 * a test began near midnight IST (18:30 UTC) and one of its payments fell on either side of it.
 */
export function middayIst(): Date {
  const d = new Date();
  d.setUTCHours(6, 30, 0, 0);
  return d;
}
