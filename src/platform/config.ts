import { resolve } from 'node:path';

// One config schema, read once at start. A bad or missing setting stops the process with a
// message naming it. Secrets have defaults only in development mode.

export type Mode = 'development' | 'test' | 'production';

export interface BankConfig {
  /** Short code used in routing and in callback URLs, e.g. "SIMBANK". */
  code: string;
  /** Which connector file speaks to this bank. */
  connector: string;
  /** Base URL of the bank's PSP API. For the in-process simulator: `<api url>/sim`. */
  url: string;
  /** HMAC secret the bank signs callbacks with (and we sign requests with). */
  secret: string;
  /** Previous secret, still accepted during a rotation overlap; never used to sign. */
  previousSecret?: string;
  /** Merchant VPA handle this bank issues, e.g. "simbank". */
  vpaHandle?: string;
}

export interface Config {
  mode: Mode;
  host: string;
  port: number;
  publicUrl: string;
  dataDir: string;
  databaseUrl?: string;
  databasePoolSize: number;
  logLevel: string;
  /** Serve the in-process bank simulator under /sim (development only). */
  embeddedBankSim: boolean;
  banks: BankConfig[];
  /** Ordered fallback when a merchant's acquiring bank is marked down. */
  bankFallbackOrder: string[];
  payments: {
    maxAmountPaise: number;
    qrExpirySeconds: number;
    collectExpirySeconds: number;
    statusCheckFirstAfterSeconds: number;
    statusCheckIntervalSeconds: number;
    statusCheckMax: number;
    refundWindowDays: number;
    vpaPattern: RegExp;
  };
  callbacks: { maxAgeSeconds: number };
  worker: { intervalMs: number; batchSize: number };
  http: { bodyLimitBytes: number };
  bankTimeoutMs: number;
  /** Reward points. customerKey: REWARDS_CUSTOMER_KEY (HMAC key for customer ids); undefined outside production = a key file in the data dir. */
  rewards: { customerKey?: Buffer };
}

export class ConfigError extends Error {
  constructor(readonly setting: string, message: string) {
    super(`Invalid configuration: ${setting}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const v = Number(raw);
  if (v < min || v > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${v}`);
  return v;
}

function str(env: Env, name: string, dflt: string): string {
  const raw = env[name];
  return raw === undefined || raw === '' ? dflt : raw;
}

/** Default VPA syntax: common practice (letters, digits, . - _ before @, letters after); NPCI caps length at 255. */
export const DEFAULT_VPA_PATTERN = '^[A-Za-z0-9._-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$';

function parseBanks(env: Env, mode: Mode, publicUrl: string, devSecret: string): BankConfig[] {
  const raw = env.BANKS;
  if (raw === undefined || raw === '') {
    if (mode === 'production') throw new ConfigError('BANKS', 'required in production (a JSON array of bank connectors)');
    // Development and test: two simulated acquiring banks, so routing fallback has somewhere to go.
    const url = env.BANK_SIM_URL || `${publicUrl}/sim`;
    const secret = env.BANK_SIM_SECRET || devSecret;
    return [
      { code: 'SIMBANK', connector: 'simbank', url, secret, vpaHandle: 'simbank' },
      { code: 'SIMBANK2', connector: 'simbank', url, secret, vpaHandle: 'simbank2' },
    ];
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('BANKS', 'is not valid JSON');
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new ConfigError('BANKS', 'must be a non-empty JSON array');
  return parsed.map((b, i) => {
    const o = b as Record<string, unknown>;
    for (const k of ['code', 'connector', 'url', 'secret']) {
      if (typeof o[k] !== 'string' || o[k] === '') throw new ConfigError('BANKS', `entry ${i} needs a string "${k}"`);
    }
    if (!/^[A-Z0-9_]{2,20}$/.test(o.code as string)) throw new ConfigError('BANKS', `entry ${i}: code must be A-Z, 0-9, _`);
    try {
      new URL(o.url as string);
    } catch {
      throw new ConfigError('BANKS', `entry ${i}: url is not a URL`);
    }
    return {
      code: o.code as string,
      connector: o.connector as string,
      url: (o.url as string).replace(/\/$/, ''),
      secret: o.secret as string,
      previousSecret: typeof o.previous_secret === 'string' ? o.previous_secret : undefined,
      vpaHandle: typeof o.vpa_handle === 'string' ? o.vpa_handle : undefined,
    };
  });
}

/** A secret key of 32+ bytes, given as hex or base64. Required in production; elsewhere optional. */
function parseKeyBytes(env: Env, mode: Mode, name: string): Buffer | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (mode === 'production') throw new ConfigError(name, 'required in production (32 or more random bytes, hex or base64)');
    return undefined;
  }
  const v = raw.trim();
  const key = /^(?:[0-9a-fA-F]{2})+$/.test(v) ? Buffer.from(v, 'hex') : /^[A-Za-z0-9+/_-]+={0,2}$/.test(v) ? Buffer.from(v, 'base64') : undefined;
  if (!key || key.length < 32) throw new ConfigError(name, 'must be 32 or more random bytes, hex or base64');
  return key;
}

export function loadConfig(env: Env = process.env): Config {
  const modeRaw = str(env, 'NODE_ENV', 'development');
  if (!['development', 'test', 'production'].includes(modeRaw)) {
    throw new ConfigError('NODE_ENV', `must be development, test or production, got "${modeRaw}"`);
  }
  const mode = modeRaw as Mode;
  const port = int(env, 'PORT', 8080, 0, 65535);
  const host = str(env, 'HOST', mode === 'production' ? '0.0.0.0' : '127.0.0.1');
  const publicUrl = str(env, 'PUBLIC_URL', `http://127.0.0.1:${port}`).replace(/\/$/, '');
  try {
    new URL(publicUrl);
  } catch {
    throw new ConfigError('PUBLIC_URL', `is not a URL: "${publicUrl}"`);
  }
  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must start with postgres:// or postgresql://');
  }
  if (mode === 'production' && !databaseUrl) {
    throw new ConfigError('DATABASE_URL', 'required in production (PGlite is for development)');
  }
  const embeddedBankSim = mode !== 'production' && str(env, 'EMBEDDED_BANK_SIM', 'true') !== 'false';
  // The dev secret is not a secret: it only ever signs traffic between Tillpoint and its own simulator.
  const banks = parseBanks(env, mode, publicUrl, 'dev-only-simulator-secret');
  const fallback = str(env, 'BANK_FALLBACK_ORDER', banks.map((b) => b.code).join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const code of fallback) {
    if (!banks.some((b) => b.code === code)) throw new ConfigError('BANK_FALLBACK_ORDER', `unknown bank "${code}"`);
  }
  let vpaPattern: RegExp;
  try {
    vpaPattern = new RegExp(str(env, 'VPA_PATTERN', DEFAULT_VPA_PATTERN));
  } catch {
    throw new ConfigError('VPA_PATTERN', 'is not a valid regular expression');
  }
  return {
    mode,
    host,
    port,
    publicUrl,
    dataDir: resolve(str(env, 'TILLPOINT_DATA_DIR', './data')),
    databaseUrl,
    databasePoolSize: int(env, 'DATABASE_POOL_SIZE', 10, 1, 1000),
    logLevel: str(env, 'LOG_LEVEL', mode === 'test' ? 'silent' : 'info'),
    embeddedBankSim,
    banks,
    bankFallbackOrder: fallback,
    payments: {
      // ₹1,00,000: NPCI's default per-transaction limit.
      maxAmountPaise: int(env, 'PAYMENT_MAX_AMOUNT_PAISE', 10_000_000, 1),
      qrExpirySeconds: int(env, 'QR_EXPIRY_SECONDS', 300, 30, 86_400),
      collectExpirySeconds: int(env, 'COLLECT_EXPIRY_SECONDS', 480, 60, 7 * 86_400),
      statusCheckFirstAfterSeconds: int(env, 'STATUS_CHECK_FIRST_AFTER_SECONDS', 90, 0),
      statusCheckIntervalSeconds: int(env, 'STATUS_CHECK_INTERVAL_SECONDS', 600, 0),
      statusCheckMax: int(env, 'STATUS_CHECK_MAX', 3, 0, 10),
      refundWindowDays: int(env, 'REFUND_WINDOW_DAYS', 180, 1),
      vpaPattern,
    },
    callbacks: { maxAgeSeconds: int(env, 'CALLBACK_MAX_AGE_SECONDS', 300, 1, 3600) },
    worker: { intervalMs: int(env, 'WORKER_INTERVAL_MS', 1000, 10), batchSize: int(env, 'WORKER_BATCH_SIZE', 100, 1, 10_000) },
    http: { bodyLimitBytes: int(env, 'HTTP_BODY_LIMIT_BYTES', 64 * 1024, 1024) },
    bankTimeoutMs: int(env, 'BANK_TIMEOUT_MS', 15_000, 100),
    rewards: { customerKey: parseKeyBytes(env, mode, 'REWARDS_CUSTOMER_KEY') },
  };
}
