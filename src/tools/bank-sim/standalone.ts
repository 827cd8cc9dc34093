import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from '../../platform/clock.ts';
import { ConfigError } from '../../platform/config.ts';
import { bankSimulatorPlugin } from './plugin.ts';
import { normaliseRatios, type OutcomeRatios } from './engine.ts';
import { createSimFaults } from './faults.ts';

// The simulator as its own process (`npx tillpoint bank-sim`), so Tillpoint can be run
// against a bank across a real network hop, as in production.

/** Matches the development default in banks/banks.settings.ts, so `--dev` works with `npm start`. */
export const DEV_SIM_SECRET = 'dev-only-simulator-secret';

export interface StartBankSimulatorOptions {
  port: number;
  host?: string;
  secret: string;
  latencyMs?: number;
  outcomes?: Partial<OutcomeRatios>;
  rng?: () => number;
  clock?: Clock;
  callbackRetryDelaysMs?: number[];
  /** A pino logger for request and simulator logs; none (silent) when omitted. */
  logger?: Logger;
  /** Serve GET/PUT /sim/v1/faults: message faults switched at run time (faults.ts). */
  faults?: boolean;
}

export interface RunningBankSimulator {
  /** Server origin, e.g. http://127.0.0.1:9090. */
  url: string;
  /** The bank's base URL for BankConfig.url / BANK_SIM_URL: `${url}/sim`. */
  bankUrl: string;
  port: number;
  close(): Promise<void>;
}

export async function startBankSimulator(opts: StartBankSimulatorOptions): Promise<RunningBankSimulator> {
  const app: FastifyInstance = opts.logger
    ? (Fastify({ loggerInstance: opts.logger }) as unknown as FastifyInstance)
    : Fastify({ logger: false });
  // Same paths as when embedded in the API server, so one BANK_SIM_URL shape serves both.
  await app.register(bankSimulatorPlugin, {
    prefix: '/sim',
    secret: opts.secret,
    latencyMs: opts.latencyMs,
    outcomes: opts.outcomes,
    rng: opts.rng,
    clock: opts.clock,
    callbackRetryDelaysMs: opts.callbackRetryDelaysMs,
    ...(opts.faults ? { faults: createSimFaults() } : {}),
  });
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ port: opts.port, host });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}`;
  return { url, bankUrl: `${url}/sim`, port, close: () => app.close() };
}

export interface BankSimArgs {
  port: number;
  host: string;
  secret: string;
  latencyMs: number;
  outcomes?: Partial<OutcomeRatios>;
  dev: boolean;
  help: boolean;
  faults?: boolean;
}

export const BANK_SIM_USAGE = `Usage: tillpoint bank-sim [options]

Runs the UPI bank simulator as its own HTTP server (API under /sim/v1/...).

  --port N          port to listen on (default 9090; 0 picks a free port)
  --host H          address to bind (default 127.0.0.1)
  --latency-ms N    delay before a collect or QR payment is decided (default 500)
  --approve R       weight of approved payments (default 0.85)
  --decline R       weight of declined payments (default 0.10)
  --pending R       weight of payments that never complete (default 0.03)
  --timeout R       weight of deemed (timed-out) payments (default 0.02)
  --dev             use the development secret if BANK_SIM_SECRET is not set
  --faults          serve GET/PUT /sim/v1/faults: duplicate, early, out-of-order callbacks and
                    status answers that contradict them, switched while it runs (for the chaos run)
  --help            show this text

Environment: BANK_SIM_SECRET (required unless --dev), the HMAC secret shared with Tillpoint.`;

/** Parses the flags after `bank-sim`. Throws ConfigError naming the bad flag. */
export function parseBankSimArgs(argv: string[], env: Record<string, string | undefined> = process.env): BankSimArgs {
  const values = new Map<string, string>();
  let dev = false;
  let help = false;
  let faults = false;
  const valued = ['port', 'host', 'latency-ms', 'approve', 'decline', 'pending', 'timeout'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dev') dev = true;
    else if (a === '--faults') faults = true;
    else if (a === '--help' || a === '-h') help = true;
    else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (!valued.includes(name)) throw new ConfigError(a, 'unknown option');
      const v = eq < 0 ? argv[++i] : a.slice(eq + 1);
      if (v === undefined || (eq < 0 && v.startsWith('--'))) throw new ConfigError(`--${name}`, 'needs a value');
      values.set(name, v);
    } else throw new ConfigError(a, 'unexpected argument');
  }
  const int = (name: string, dflt: number, max: number) => {
    const v = values.get(name);
    if (v === undefined) return dflt;
    if (!/^\d+$/.test(v) || Number(v) > max)
      throw new ConfigError(`--${name}`, `expected an integer 0..${max}, got "${v}"`);
    return Number(v);
  };
  const ratio = (name: string) => {
    const v = values.get(name);
    if (v === undefined) return undefined;
    if (!/^\d+(\.\d+)?$/.test(v)) throw new ConfigError(`--${name}`, `expected a non-negative number, got "${v}"`);
    return Number(v);
  };
  const given = {
    approve: ratio('approve'),
    decline: ratio('decline'),
    pending: ratio('pending'),
    timeout: ratio('timeout'),
  };
  const anyRatio = Object.values(given).some((v) => v !== undefined);
  if (anyRatio) {
    try {
      normaliseRatios(given);
    } catch (e) {
      throw new ConfigError(
        '--approve/--decline/--pending/--timeout',
        (e as Error).message.replace(/^bank simulator: /, ''),
      );
    }
  }
  const secret = env.BANK_SIM_SECRET || (dev ? DEV_SIM_SECRET : '');
  if (!secret && !help)
    throw new ConfigError('BANK_SIM_SECRET', 'required (or pass --dev to use the development secret)');
  return {
    port: int('port', 9090, 65535),
    host: values.get('host') ?? '127.0.0.1',
    secret,
    latencyMs: int('latency-ms', 500, 600_000),
    ...(anyRatio ? { outcomes: given } : {}),
    dev,
    help,
    ...(faults ? { faults } : {}),
  };
}
