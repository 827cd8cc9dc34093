import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../platform/log.ts';
import { loadConfig } from '../../config.ts';
import type { Db } from '../../platform/db.ts';
import type { AuditWriter } from '../audit/index.ts';
import { createTerminalGateway } from './gateway.ts';
import type { PaymentsForTerminals, RewardsForTerminals } from './protocol/handlers.ts';

// Test helpers: a terminal gateway on free ports with a throwaway terminal CA, over whatever
// database and payments service the test already runs (usually the harness's real API).

export async function startTestGateway(o: {
  db: Db;
  payments: PaymentsForTerminals;
  rewards?: RewardsForTerminals;
  /** The app's audit writer, so the records the gateway writes verify with the app's key. */
  audit?: Pick<AuditWriter, 'record'>;
  env?: Record<string, string>;
  pkiDir?: string;
  revocationSweepMs?: number;
  /** Presence batches (default here 50 ms, so tests see changes quickly) and the last_seen interval. */
  presenceFlushMs?: number;
  presenceLastSeenEveryMs?: number;
}) {
  const pkiDir = o.pkiDir ?? mkdtempSync(join(tmpdir(), 'tillpoint-pki-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    // Without o.audit, the gateway's own audit key goes here, not into ./data.
    TILLPOINT_DATA_DIR: mkdtempSync(join(tmpdir(), 'tillpoint-gw-data-')),
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
    rewards: o.rewards,
    audit: o.audit,
    revocationSweepMs: o.revocationSweepMs ?? 100,
    presenceFlushMs: o.presenceFlushMs ?? 50,
    presenceLastSeenEveryMs: o.presenceLastSeenEveryMs,
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

export interface TestMosquitto {
  url: string;
  pkiDir: string;
  /** Stops it, if this process started it. */
  stop(): Promise<void>;
}

/**
 * A private Mosquitto for one external-broker test file, configured as `pki mosquitto-config`
 * configures it (gateway certificates tillpoint-gateway and tillpoint-gateway-2). Private because
 * a broker shared between test files is shared between their gateways too: each file's gateway
 * subscribes in its own share group, so every gateway gets every request, and one whose database
 * has never heard of the terminal answers terminal_not_found first. TILLPOINT_REQUIRE_MOSQUITTO=1
 * (CI) makes a missing binary an error; elsewhere it is a reason to skip.
 */
export async function mosquittoForTests(): Promise<TestMosquitto | { skip: string }> {
  const { spawn, spawnSync } = await import('node:child_process');
  const bin = process.env.MOSQUITTO_BIN ?? 'mosquitto';
  const found = spawnSync(bin, ['-h'], { encoding: 'utf8' });
  if (found.error) {
    const reason = `no Mosquitto (${bin}) on this machine; install Debian's mosquitto package to run the external-broker tests`;
    if (process.env.TILLPOINT_REQUIRE_MOSQUITTO === '1')
      throw new Error(`${reason} (TILLPOINT_REQUIRE_MOSQUITTO=1: CI must run them)`);
    return { skip: reason };
  }
  const { initPki } = await import('./pki.ts');
  const { issueGatewayCertificate } = await import('./enrollment.ts');
  const { writeMosquittoConfig } = await import('./mosquitto.ts');
  const { createServer } = await import('node:net');
  const dir = mkdtempSync(join(tmpdir(), 'tillpoint-mosquitto-'));
  const pkiDir = join(dir, 'pki');
  await initPki(pkiDir, { hostnames: ['localhost', '127.0.0.1'] });
  await issueGatewayCertificate(pkiDir);
  await issueGatewayCertificate(pkiDir, 30, 'tillpoint-gateway-2');
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const { config } = writeMosquittoConfig({
    port,
    pkiDir,
    outDir: dir,
    gateways: ['tillpoint-gateway', 'tillpoint-gateway-2'],
    runAs: process.getuid?.() === 0 ? 'root' : undefined,
  });
  const child = spawn(bin, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  // Ready when the port accepts connections.
  const { connect } = await import('node:net');
  const ready = await until(
    () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) return resolve(true);
        const c = connect(port, '127.0.0.1', () => {
          c.destroy();
          resolve(true);
        });
        c.on('error', () => resolve(false));
      }),
    5000,
    50,
  );
  if (!ready || child.exitCode !== null) throw new Error(`Mosquitto did not start: ${stderr}`);
  return {
    url: `mqtts://127.0.0.1:${port}`,
    pkiDir,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
