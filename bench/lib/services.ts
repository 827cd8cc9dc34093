import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/platform/freePort.ts';
import { asClusterOwner, findPgBinDir } from './postgres.ts';

// The outside services of a chaos run, started here so they can be broken on purpose: a
// PostgreSQL cluster that can be restarted (fast or immediate), a Redis and a Mosquitto that can
// be stopped and started again on the same port, and a proxy in front of the bank that can make
// it misbehave.

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, host, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

async function waitForPort(port: number, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!(await portOpen(port))) {
    if (Date.now() > end) throw new Error(`${what} did not open port ${port} in ${ms} ms`);
    await sleep(50);
  }
}

export interface PgCluster {
  url: string;
  port: number;
  /** pg_ctl restart: `fast` ends sessions cleanly, `immediate` is a crash (recovery from the WAL). */
  restart(mode: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server (fast) and leaves it down until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): void;
}

export async function startPgCluster(log: (s: string) => void = () => {}): Promise<PgCluster> {
  const binDir = findPgBinDir();
  if (!binDir)
    throw new Error('No PostgreSQL server binaries under /usr/lib/postgresql (apt-get install -y postgresql)');
  const dir = mkdtempSync(join(tmpdir(), 'tillpoint-chaos-pg-'));
  const run = asClusterOwner(dir);
  const data = join(dir, 'data');
  const port = await freePort();
  const check = (r: ReturnType<typeof run>, what: string) => {
    if (r.status !== 0) throw new Error(`${what} exited ${r.status}: ${(r.stderr || r.stdout || '').slice(-2000)}`);
  };
  check(
    run(join(binDir, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']),
    'initdb',
  );
  // Durable as in production (fsync, synchronous_commit on): an acknowledged payment must survive
  // an immediate restart.
  const opts = [
    `-c port=${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${dir}`,
    '-c fsync=on',
    '-c synchronous_commit=on',
    '-c max_connections=300',
  ].join(' ');
  const pgCtl = (args: string[]) => run(join(binDir, 'pg_ctl'), ['-D', data, '-l', join(dir, 'postgres.log'), ...args]);
  check(pgCtl(['-w', '-t', '60', '-o', opts, 'start']), 'pg_ctl start');
  log(`PostgreSQL on port ${port} (${dir})`);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async restart(mode) {
      check(pgCtl(['-w', '-t', '60', '-m', mode, '-o', opts, 'restart']), `pg_ctl restart -m ${mode}`);
    },
    async down() {
      check(pgCtl(['-w', '-t', '60', '-m', 'fast', 'stop']), 'pg_ctl stop');
    },
    async up() {
      check(pgCtl(['-w', '-t', '60', '-o', opts, 'start']), 'pg_ctl start');
    },
    stop() {
      pgCtl(['-m', 'immediate', '-w', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A service that can be stopped and started again on the same port. */
export interface Restartable {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function restartable(o: { name: string; port: number; url: string; cmd: string; args: string[] }): Restartable {
  let child: ChildProcess | undefined;
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  return {
    url: o.url,
    port: o.port,
    async start() {
      child = spawn(o.cmd, o.args, { stdio: 'ignore' });
      await waitForPort(o.port, 10_000, o.name);
    },
    stop,
    close: stop,
  };
}

export async function startRedis(): Promise<Restartable> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tillpoint-chaos-redis-'));
  const r = restartable({
    name: 'redis-server',
    port,
    url: `redis://127.0.0.1:${port}`,
    cmd: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
  });
  await r.start();
  return r;
}

/** Mosquitto with the configuration `tillpoint pki mosquitto-config` writes (mutual TLS, the topic ACL). */
export async function startMosquitto(o: { pkiDir: string; gateways: string[] }): Promise<Restartable> {
  const { writeMosquittoConfig } = await import('../../src/modules/terminals/mosquitto.ts');
  if (spawnSync('mosquitto', ['-h']).error)
    throw new Error('no mosquitto on this machine (apt-get install -y mosquitto)');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tillpoint-chaos-mosquitto-'));
  const { config } = writeMosquittoConfig({
    port,
    pkiDir: o.pkiDir,
    outDir: dir,
    gateways: o.gateways,
    runAs: process.getuid?.() === 0 ? 'root' : undefined,
  });
  const m = restartable({
    name: 'mosquitto',
    port,
    url: `mqtts://127.0.0.1:${port}`,
    cmd: 'mosquitto',
    args: ['-c', config],
  });
  await m.start();
  return m;
}

/**
 * A proxy in front of the bank simulator that makes the bank misbehave on demand. Each mode is a
 * way a real bank's answer goes wrong after the bank may have acted on the request:
 *   ok              pass through
 *   error_after     the bank acts, the caller gets 503 (a 5xx after committing)
 *   timeout_after   the bank acts, the caller gets no answer until it gives up (BANK_TIMEOUT_MS)
 *   reset_after     the bank acts, the connection is cut before the answer
 *   refuse          the bank is down: 503 without forwarding (nothing committed)
 * Only calls from Tillpoint to the bank go through it; the simulator's callbacks go straight back.
 */
export type BankMode = 'ok' | 'error_after' | 'timeout_after' | 'reset_after' | 'refuse';

export async function startBankProxy(upstream: string): Promise<{
  url: string;
  setMode(m: BankMode): void;
  setDelay(ms: number): void;
  counts: Record<BankMode, number>;
  close(): Promise<void>;
}> {
  const up = new URL(upstream);
  let mode: BankMode = 'ok';
  let delayMs = 0;
  const counts: Record<BankMode, number> = { ok: 0, error_after: 0, timeout_after: 0, reset_after: 0, refuse: 0 };
  const held = new Set<import('node:http').ServerResponse>();
  const server: Server = createHttpServer((req, res) => {
    const m = mode;
    counts[m]++;
    if (m === 'refuse') {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"unavailable"}}');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      if (delayMs > 0) await sleep(delayMs); // a slow bank: the call is in flight meanwhile
      const fwd = httpRequest(
        { host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers },
        (ur) => {
          const body: Buffer[] = [];
          ur.on('data', (c) => body.push(c));
          ur.on('end', () => {
            if (m === 'ok') {
              res.writeHead(ur.statusCode ?? 502, ur.headers).end(Buffer.concat(body));
            } else if (m === 'error_after') {
              res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"internal"}}');
            } else if (m === 'reset_after') {
              res.socket?.destroy();
            } else {
              held.add(res); // timeout_after: never answered; the caller's timeout ends it
              res.on('close', () => held.delete(res));
            }
          });
        },
      );
      fwd.on('error', () => res.socket?.destroy());
      fwd.end(Buffer.concat(chunks));
    });
  });
  server.keepAliveTimeout = 5000;
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${port}`,
    setMode: (m) => {
      mode = m;
    },
    setDelay: (ms) => {
      delayMs = ms;
    },
    counts,
    close: () =>
      new Promise((r) => {
        for (const res of held) res.socket?.destroy();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
