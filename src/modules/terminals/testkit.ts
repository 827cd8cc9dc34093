import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../platform/log.ts';
import { loadConfig } from '../../platform/config.ts';
import type { Db } from '../../platform/db.ts';
import { createTerminalGateway } from './gateway.ts';
import type { PaymentsForTerminals } from './protocol/handlers.ts';

// Test helpers: a terminal gateway on free ports with a throwaway terminal CA, over whatever
// database and payments service the test already runs (usually the harness's real API).

export async function startTestGateway(o: { db: Db; payments: PaymentsForTerminals; env?: Record<string, string>; pkiDir?: string; revocationSweepMs?: number }) {
  const pkiDir = o.pkiDir ?? mkdtempSync(join(tmpdir(), 'tillpoint-pki-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    MQTT_PORT: '0',
    MQTTS_PORT: '0',
    TERMINAL_PKI_DIR: pkiDir,
    TERMINAL_OUTBOX_POLL_MS: '20',
    ...o.env,
  });
  const gateway = createTerminalGateway({
    db: o.db,
    config,
    logger: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    payments: o.payments,
    revocationSweepMs: o.revocationSweepMs ?? 100,
  });
  await gateway.start();
  const ports = gateway.ports();
  return {
    gateway,
    config,
    pkiDir,
    plainUrl: ports.plain !== undefined ? `mqtt://127.0.0.1:${ports.plain}` : undefined,
    tlsUrl: ports.tls !== undefined ? `mqtts://127.0.0.1:${ports.tls}` : undefined,
    stop: () => gateway.stop(),
  };
}

/** Waits until `fn` returns something truthy, or gives up after `ms` and returns the last value. */
export async function until<T>(fn: () => T | Promise<T>, ms = 5000, stepMs = 20): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
