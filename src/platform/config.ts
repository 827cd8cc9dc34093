import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isIP } from 'node:net';
import { hasAwsCredentials } from './awsCredentials.ts';
import { parseKeysConfig, type KeysConfig } from './keysConfig.ts';
import { parseSecretsConfig, type SecretsConfig } from './secrets.ts';
import { parseTlsConfig, tlsScheme, type TlsConfig } from './tls.ts';

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
  /** Name of the secret (secrets provider) holding `secret`; kept fresh, rotates without restart. */
  secretName?: string;
  /** PEM file of the CA this bank's TLS certificate must chain to (pins it; default: system CAs). */
  caFile?: string;
  /** Merchant VPA handle this bank issues, e.g. "simbank". */
  vpaHandle?: string;
  // --- banks: per-connector settings (issue 14) -------------------------------------------
  /**
   * BANKS[].settings as given: the connector's own settings (merchant and channel ids, key files,
   * secret names, client certificate). Validated at start against the connector's schema by the
   * banks module (src/modules/banks/connectors/registry.ts), not here.
   */
  settings?: Record<string, unknown>;
  // -----------------------------------------------------------------------------------------
}

export interface Config {
  mode: Mode;
  host: string;
  port: number;
  /** HEALTH_PORT: plain-HTTP /healthz, /readyz and /metrics for probes and scrapes (src/cli/health.ts). undefined = off. */
  healthPort?: number;
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
  worker: { intervalMs: number; batchSize: number; leaseSeconds: number };
  /** Graceful stop on SIGTERM (src/app.ts stop(), src/cli/command.ts onShutdown()). */
  lifecycle: {
    /** The longest a stop (SIGTERM) may take before the process exits anyway; keep it under the orchestrator's grace period. */
    shutdownTimeoutSeconds: number;
    /** How long /readyz says not ready before the process stops taking work, so load balancers stop sending first. */
    shutdownDelaySeconds: number;
  };
  http: HttpConfig;
  /** Redis for state shared by replicas (rate limits). undefined = in-process. */
  redisUrl?: string;
  rateLimits: RateLimitConfig;
  /** The WAF gateway's security events (JSON lines) the API counts in its metrics; undefined = off. */
  securityEventsFile?: string;
  bankTimeoutMs: number;
  // --- banks: routing on health (issue 14) ---
  /** Health-based routing and the per-bank circuit breaker (src/modules/banks/README.md). */
  bankRouting: BankRoutingConfig;
  /** Terminal gateway: embedded MQTT broker or an external one, device PKI, outbox relay. */
  mqtt: MqttConfig;
  /** Reward points. customerKey: REWARDS_CUSTOMER_KEY (HMAC key for customer ids); required in production (checked at start), else a key file in the data dir. */
  rewards: { customerKey?: Buffer };
  /** Operators, sessions, MFA and API keys (PCI DSS 7, 8). */
  identity: IdentityConfig;
  /** The tamper-evident audit trail (PCI DSS 10). */
  audit: AuditConfig;
  /** Key hierarchy for field encryption and tokens (src/modules/vault). */
  keys: KeysConfig;
  /** Where secrets come from (env, Kubernetes-mounted files, AWS Secrets Manager). */
  secrets: SecretsConfig;
  /** DATABASE_PASSWORD_SECRET: the database password comes from this secret instead of DATABASE_URL. */
  databasePasswordSecret?: string;
  /** HTTPS on the API. */
  tls: TlsConfig;
}

export interface IdentityConfig {
  sessionIdleMinutes: number;
  sessionAbsoluteHours: number;
  lockoutThreshold: number;
  lockoutMinutes: number;
  inactiveDays: number;
  /** argon2id cost. */
  passwordHash: { memoryKib: number; timeCost: number };
  /** MFA_ENCRYPTION_KEY: 32 bytes base64 sealing TOTP secrets; required in production, else a key file in the data dir. */
  mfaKey?: string;
}

export interface AuditConfig {
  /** AUDIT_SIGNING_KEY: 32-byte Ed25519 seed, base64; required in production, else a key file in the data dir. */
  signingKey?: string;
  /** Raw public keys (base64) of retired signing keys whose heads still verify. */
  trustedPublicKeys: string[];
  signIntervalSeconds: number;
  export: {
    target: 'local' | 's3' | 'off';
    dir: string;
    s3?: { bucket: string; region: string; endpoint?: string; prefix: string };
  };
  retentionMonths: number;
  onlineMonths: number;
}

export interface MqttConfig {
  /** Embedded broker, plain MQTT with per-terminal secrets (development only). undefined = off; 0 = any free port. */
  port?: number;
  /** Embedded broker, MQTT over TLS with client certificates (mutual TLS). undefined = off; 0 = any free port. */
  tlsPort?: number;
  host: string;
  /** External broker (Mosquitto, EMQX, AWS IoT Core). When set, no embedded broker is started. */
  url?: string;
  /** Shared-subscription group the gateway replicas join on the external broker. */
  shareGroup: string;
  /** Terminal CA and the embedded broker's server certificate (`tillpoint pki init`). */
  pkiDir: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  caFile: string;
  /** The gateway's own identity towards an external broker (optional; mqtts with client certificate). */
  clientCertFile?: string;
  clientKeyFile?: string;
  /** CA that signed the external broker's server certificate; default: the system's trust store. */
  brokerCaFile?: string;
  maxPayloadBytes: number;
  outboxPollMs: number;
  outboxBatchSize: number;
  requestRetentionHours: number;
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
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

function parseIdentity(env: Env, mode: Mode): IdentityConfig {
  // Each PCI DSS limit may be made stricter, never looser (8.2.8, 8.3.4, 8.2.6).
  const prod = mode === 'production';
  return {
    sessionIdleMinutes: int(env, 'SESSION_IDLE_MINUTES', 15, 1, 15),
    sessionAbsoluteHours: int(env, 'SESSION_ABSOLUTE_HOURS', 12, 1, 24),
    lockoutThreshold: int(env, 'LOCKOUT_THRESHOLD', 10, 1, 10),
    lockoutMinutes: int(env, 'LOCKOUT_MINUTES', 30, 30, 24 * 60),
    inactiveDays: int(env, 'OPERATOR_INACTIVE_DAYS', 90, 1, 90),
    // OWASP's argon2id floor (19 MiB, 2 passes) in production; tests may go cheaper to stay quick.
    passwordHash: {
      memoryKib: int(
        env,
        'PASSWORD_HASH_MEMORY_KIB',
        mode === 'test' ? 1024 : 19_456,
        prod ? 19_456 : 64,
        4 * 1024 * 1024,
      ),
      timeCost: int(env, 'PASSWORD_HASH_TIME_COST', mode === 'test' ? 1 : 2, prod ? 2 : 1, 20),
    },
    mfaKey: env.MFA_ENCRYPTION_KEY || undefined,
  };
}

function parseAudit(env: Env, dataDir: string): AuditConfig {
  const target = str(env, 'AUDIT_EXPORT', 'local');
  if (!['local', 's3', 'off'].includes(target)) throw new ConfigError('AUDIT_EXPORT', 'must be local, s3 or off');
  let s3: AuditConfig['export']['s3'];
  if (target === 's3') {
    for (const k of ['AUDIT_S3_BUCKET', 'AUDIT_S3_REGION']) {
      if (!env[k]) throw new ConfigError(k, 'is required when AUDIT_EXPORT=s3');
    }
    if (!hasAwsCredentials(env)) {
      throw new ConfigError(
        'AWS_ACCESS_KEY_ID',
        'AWS credentials are required when AUDIT_EXPORT=s3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (IRSA)',
      );
    }
    const endpoint = env.AUDIT_S3_ENDPOINT || undefined;
    if (endpoint && !/^https?:\/\//.test(endpoint))
      throw new ConfigError('AUDIT_S3_ENDPOINT', 'must be an http(s) URL');
    s3 = {
      bucket: env.AUDIT_S3_BUCKET!,
      region: env.AUDIT_S3_REGION!,
      endpoint,
      prefix: str(env, 'AUDIT_S3_PREFIX', 'audit/'),
    };
  }
  const retentionMonths = int(env, 'AUDIT_RETENTION_MONTHS', 12, 12, 120);
  return {
    signingKey: env.AUDIT_SIGNING_KEY || undefined,
    trustedPublicKeys: str(env, 'AUDIT_TRUSTED_PUBLIC_KEYS', '')
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    signIntervalSeconds: int(env, 'AUDIT_SIGN_INTERVAL_SECONDS', 10, 1, 3600),
    export: {
      target: target as 'local' | 's3' | 'off',
      dir: resolve(str(env, 'AUDIT_EXPORT_DIR', resolve(dataDir, 'audit-archive'))),
      s3,
    },
    retentionMonths,
    // PCI DSS 10.5.1: at least the last three months immediately available.
    onlineMonths: int(env, 'AUDIT_ONLINE_MONTHS', 3, 3, retentionMonths),
  };
}

/** A listener port: unset = `dflt`, "off" = no listener, 0 = any free port. */
function listenPort(env: Env, name: string, dflt: number | undefined): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (raw === 'off') return undefined;
  return int(env, name, 0, 0, 65535);
}

/** The MQTT settings alone (loadConfig calls it; tests of the production rules call it directly). */
export function parseMqtt(env: Env, mode: Mode, host: string, dataDir: string): MqttConfig {
  const url = env.MQTT_URL || undefined;
  if (url) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError('MQTT_URL', 'is not a URL');
    }
    if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(u.protocol))
      throw new ConfigError('MQTT_URL', 'must start with mqtt://, mqtts://, ws:// or wss://');
    // PCI DSS 4.2.1: terminal traffic is encrypted in transit in production.
    if (mode === 'production' && !['mqtts:', 'wss:'].includes(u.protocol))
      throw new ConfigError('MQTT_URL', 'must use TLS (mqtts:// or wss://) in production');
  }
  // Plain MQTT authenticates with a shared secret over cleartext: development and tests only.
  if (mode === 'production' && env.MQTT_PORT && env.MQTT_PORT !== 'off') {
    throw new ConfigError(
      'MQTT_PORT',
      'plain MQTT is refused in production; terminals connect with mutual TLS on MQTTS_PORT',
    );
  }
  const shareGroup = str(env, 'MQTT_SHARE_GROUP', 'tillpoint');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(shareGroup))
    throw new ConfigError('MQTT_SHARE_GROUP', 'must be 1-64 letters, digits, _ or -');
  const pkiDir = resolve(str(env, 'TERMINAL_PKI_DIR', resolve(dataDir, 'pki')));
  const file = (name: string) => (env[name] ? resolve(env[name]!) : undefined);
  return {
    port: mode === 'production' ? undefined : listenPort(env, 'MQTT_PORT', 1883),
    tlsPort: listenPort(env, 'MQTTS_PORT', 8883),
    host: str(env, 'MQTT_HOST', host),
    url,
    shareGroup,
    pkiDir,
    tlsCertFile: file('MQTTS_CERT_FILE') ?? resolve(pkiDir, 'server.crt'),
    tlsKeyFile: file('MQTTS_KEY_FILE') ?? resolve(pkiDir, 'server.key'),
    caFile: file('TERMINAL_CA_FILE') ?? resolve(pkiDir, 'ca.crt'),
    clientCertFile: file('MQTT_CLIENT_CERT_FILE'),
    clientKeyFile: file('MQTT_CLIENT_KEY_FILE'),
    brokerCaFile: file('MQTT_CA_FILE'),
    maxPayloadBytes: int(env, 'MQTT_MAX_PAYLOAD_BYTES', 16 * 1024, 1024, 1024 * 1024),
    outboxPollMs: int(env, 'TERMINAL_OUTBOX_POLL_MS', 100, 10, 60_000),
    outboxBatchSize: int(env, 'TERMINAL_OUTBOX_BATCH_SIZE', 100, 1, 10_000),
    requestRetentionHours: int(env, 'TERMINAL_REQUEST_RETENTION_HOURS', 24, 1, 24 * 90),
  };
}

/** Request limits, slow-client timeouts, proxies, browser policy. See src/modules/edge/README.md. */
export interface HttpConfig {
  bodyLimitBytes: number;
  /** Request line + headers. */
  maxHeaderBytes: number;
  jsonMaxDepth: number;
  jsonMaxArrayLength: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  /** Addresses/CIDRs of proxies allowed to set X-Forwarded-For; empty = trust none. */
  trustProxy: string[];
  /** Browser origins allowed by CORS; empty = CORS closed. */
  corsAllowedOrigins: string[];
  hstsMaxAgeSeconds: number;
}

/** A token bucket: refills `ratePerSecond`, holds at most `burst`. */
export interface RateLimitSpec {
  ratePerSecond: number;
  burst: number;
}

/** ip, api_key, terminal: every request. signin_*, mfa_account: routes that attach them. */
export const RATE_LIMIT_NAMES = ['ip', 'api_key', 'terminal', 'signin_ip', 'signin_account', 'mfa_account'] as const;
export type RateLimitName = (typeof RATE_LIMIT_NAMES)[number];

export interface RateLimitConfig {
  enabled: boolean;
  limits: Record<RateLimitName, RateLimitSpec>;
}

/** PCI DSS 8.3.4: lock out after at most 10 failed attempts. Per-account limits must let it act first. */
export const ACCOUNT_LOCKOUT_MAX_ATTEMPTS = 10;

// High for API traffic (a flood guard, not a quota: tests and benchmarks run under it); strict
// for sign-in and MFA. Rates read "<count>/<s|m|h>".
const RATE_LIMIT_DEFAULTS: Record<RateLimitName, { rate: string; burst: number }> = {
  ip: { rate: '5000/s', burst: 10_000 },
  api_key: { rate: '2000/s', burst: 4_000 },
  terminal: { rate: '500/s', burst: 1_000 },
  signin_ip: { rate: '60/h', burst: 30 },
  signin_account: { rate: '20/h', burst: 20 },
  mfa_account: { rate: '20/h', burst: 20 },
};

function parseRate(name: string, raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|m|h)\s*$/.exec(raw);
  if (!m) throw new ConfigError(name, `expected "<count>/<s|m|h>" (e.g. 100/s, 20/h), got "${raw}"`);
  const per = { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
  const v = Number(m[1]) / per;
  if (!(v > 0)) throw new ConfigError(name, 'must be more than 0');
  return v;
}

function parseRateLimits(env: Env): RateLimitConfig {
  const enabled = str(env, 'RATE_LIMIT_ENABLED', 'true');
  if (enabled !== 'true' && enabled !== 'false') throw new ConfigError('RATE_LIMIT_ENABLED', 'must be true or false');
  const limits = {} as Record<RateLimitName, RateLimitSpec>;
  for (const n of RATE_LIMIT_NAMES) {
    const v = `RATE_LIMIT_${n.toUpperCase()}`;
    limits[n] = {
      ratePerSecond: parseRate(v, str(env, v, RATE_LIMIT_DEFAULTS[n].rate)),
      burst: int(env, `${v}_BURST`, RATE_LIMIT_DEFAULTS[n].burst, 1),
    };
  }
  for (const n of ['signin_account', 'mfa_account'] as const) {
    if (limits[n].burst <= ACCOUNT_LOCKOUT_MAX_ATTEMPTS) {
      throw new ConfigError(
        `RATE_LIMIT_${n.toUpperCase()}_BURST`,
        `must be above ${ACCOUNT_LOCKOUT_MAX_ATTEMPTS}, so the account lockout (PCI DSS 8.3.4) acts before the rate limit`,
      );
    }
  }
  return { enabled: enabled === 'true', limits };
}

function list(env: Env, name: string): string[] {
  return str(env, name, '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function parseHttp(env: Env): HttpConfig {
  const requestTimeoutMs = int(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 1_000);
  const headersTimeoutMs = int(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 100);
  if (headersTimeoutMs > requestTimeoutMs)
    throw new ConfigError('HTTP_HEADERS_TIMEOUT_MS', 'must not exceed HTTP_REQUEST_TIMEOUT_MS');
  const trustProxy = list(env, 'HTTP_TRUST_PROXY');
  for (const p of trustProxy) {
    if (!['loopback', 'linklocal', 'uniquelocal'].includes(p) && isIP(p.split('/')[0]) === 0) {
      throw new ConfigError(
        'HTTP_TRUST_PROXY',
        `"${p}" is not an IP address, a CIDR range, or loopback/linklocal/uniquelocal`,
      );
    }
  }
  const corsAllowedOrigins = list(env, 'CORS_ALLOWED_ORIGINS');
  for (const o of corsAllowedOrigins) {
    let u: URL | undefined;
    try {
      u = new URL(o);
    } catch {
      /* reported below */
    }
    if (!u || u.origin !== o)
      throw new ConfigError(
        'CORS_ALLOWED_ORIGINS',
        `"${o}" is not an origin like https://console.example.com (no path, no wildcard)`,
      );
  }
  return {
    bodyLimitBytes: int(env, 'HTTP_BODY_LIMIT_BYTES', 64 * 1024, 1024),
    maxHeaderBytes: int(env, 'HTTP_MAX_HEADER_BYTES', 16 * 1024, 1024, 1024 * 1024),
    jsonMaxDepth: int(env, 'HTTP_JSON_MAX_DEPTH', 32, 2, 512),
    jsonMaxArrayLength: int(env, 'HTTP_JSON_MAX_ARRAY_LENGTH', 1000, 1),
    headersTimeoutMs,
    requestTimeoutMs,
    idleTimeoutMs: int(env, 'HTTP_IDLE_TIMEOUT_MS', 60_000, 1_000),
    keepAliveTimeoutMs: int(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1_000),
    maxConnections: int(env, 'HTTP_MAX_CONNECTIONS', 10_000, 1),
    trustProxy,
    corsAllowedOrigins,
    hstsMaxAgeSeconds: int(env, 'HSTS_MAX_AGE_SECONDS', 31_536_000, 0),
  };
}

function parseRedisUrl(env: Env): string | undefined {
  const url = env.REDIS_URL || undefined;
  if (url && !/^rediss?:\/\//.test(url)) throw new ConfigError('REDIS_URL', 'must start with redis:// or rediss://');
  return url;
}

function parseSecurityEventsFile(env: Env): string | undefined {
  const raw = str(env, 'SECURITY_EVENTS_FILE', '');
  if (raw === 'off') return undefined;
  return raw ? resolve(raw) : resolve(str(env, 'TILLPOINT_DATA_DIR', './data'), 'gateway', 'security-events.jsonl');
}

/** Default VPA syntax: common practice (letters, digits, . - _ before @, letters after); NPCI caps length at 255. */
export const DEFAULT_VPA_PATTERN = '^[A-Za-z0-9._-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$';

function parseBanks(env: Env, mode: Mode, selfUrl: string, devSecret: string): BankConfig[] {
  const raw = env.BANKS;
  if (raw === undefined || raw === '') {
    if (mode === 'production')
      throw new ConfigError('BANKS', 'required in production (a JSON array of bank connectors)');
    // Development and test: two simulated acquiring banks, so routing fallback has somewhere to go.
    // The embedded simulator is served by this very process: call it on our own listener, never
    // through PUBLIC_URL. That is the address clients use, often a WAF gateway in front of us,
    // and our outbound bank calls must not go through our own inbound edge (the gateway's
    // rules read a callback_url in a body as an attack, and refuse every payment).
    const url = env.BANK_SIM_URL || `${selfUrl}/sim`;
    const secret = env.BANK_SIM_SECRET || devSecret;
    return [
      { code: 'SIMBANK', connector: 'simbank', url, secret, vpaHandle: 'simbank' },
      simulatedSecondFormat(env, mode) === 'pspbank'
        ? devPspBank(env, url, secret)
        : { code: 'SIMBANK2', connector: 'simbank', url, secret, vpaHandle: 'simbank2' },
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
    for (const k of ['code', 'connector', 'url', ...(typeof o.secret_name === 'string' ? [] : ['secret'])]) {
      if (typeof o[k] !== 'string' || o[k] === '')
        throw new ConfigError(
          'BANKS',
          `entry ${i} needs a string "${k}"${k === 'secret' ? ' (or "secret_name")' : ''}`,
        );
    }
    if (typeof o.secret_name === 'string' && !/^[A-Z][A-Z0-9_]{0,127}$/.test(o.secret_name))
      throw new ConfigError('BANKS', `entry ${i}: secret_name must be A-Z, 0-9, _`);
    // PCI DSS 4.2.1: bank traffic crosses public networks; certificates are always verified.
    if (mode === 'production' && !/^https:\/\//.test(o.url as string))
      throw new ConfigError('BANKS', `entry ${i}: url must be https:// in production`);
    if (!/^[A-Z0-9_]{2,20}$/.test(o.code as string))
      throw new ConfigError('BANKS', `entry ${i}: code must be A-Z, 0-9, _`);
    try {
      new URL(o.url as string);
    } catch {
      throw new ConfigError('BANKS', `entry ${i}: url is not a URL`);
    }
    return {
      code: o.code as string,
      connector: o.connector as string,
      url: (o.url as string).replace(/\/$/, ''),
      // Filled from the secrets provider at start when secret_name is given (secrets.ts bindBankSecrets).
      secret: typeof o.secret === 'string' ? o.secret : '',
      previousSecret: typeof o.previous_secret === 'string' ? o.previous_secret : undefined,
      secretName: typeof o.secret_name === 'string' ? o.secret_name : undefined,
      caFile: typeof o.ca_file === 'string' ? resolve(o.ca_file) : undefined,
      vpaHandle: typeof o.vpa_handle === 'string' ? o.vpa_handle : undefined,
      // --- banks: per-connector settings (issue 14) ---
      ...parseBankSettings(o.settings, i),
    };
  });
}

// --- banks: per-connector settings (issue 14) ---------------------------------------------
function parseBankSettings(raw: unknown, i: number): { settings?: Record<string, unknown> } {
  if (raw === undefined) return {};
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new ConfigError('BANKS', `entry ${i}: settings must be a JSON object`);
  return { settings: raw as Record<string, unknown> };
}

/**
 * BANK_SIM2_FORMAT: the wire format the second simulated bank (SIMBANK2) speaks: `pspbank` by
 * default in development with the embedded simulator (so `npm start` runs both formats), `simbank`
 * otherwise unless asked for.
 */
function simulatedSecondFormat(env: Env, mode: Mode): 'simbank' | 'pspbank' {
  // A standalone simulator (BANK_SIM_URL, `tillpoint bank-sim`) speaks simbank only.
  const v = str(env, 'BANK_SIM2_FORMAT', mode === 'development' && !env.BANK_SIM_URL ? 'pspbank' : 'simbank');
  if (v !== 'simbank' && v !== 'pspbank') throw new ConfigError('BANK_SIM2_FORMAT', 'must be simbank or pspbank');
  return v;
}

/**
 * The second simulated bank speaks the encrypted PSP wire format
 * (connectors/pspbank), with sandbox keys the connector creates in the data directory, so both
 * formats run end to end. Tests (NODE_ENV=test) keep two simbank-format banks.
 */
function devPspBank(env: Env, url: string, secret: string): BankConfig {
  const dir = resolve(str(env, 'TILLPOINT_DATA_DIR', './data'), 'bank-sim', 'psp-keys');
  return {
    code: 'SIMBANK2',
    connector: 'pspbank',
    url: `${url}/psp`,
    secret,
    vpaHandle: 'simbank2',
    settings: { merchant_id: 'TILLPOINT01', sandbox_keys_dir: dir },
  };
}

export interface BankRoutingConfig {
  /** `priority`: the acquiring bank, then BANK_FALLBACK_ORDER. `success_rate`: weighted by each bank's success rate. */
  rule: 'priority' | 'success_rate';
  /** success_rate: share of payments spread evenly over all healthy banks, so each keeps being measured. */
  exploration: number;
  /** BANK_BREAKER=off turns the circuit breaker off (health is still measured and shown). */
  breaker: boolean;
  windowSeconds: number;
  tripWindowSeconds: number;
  minCalls: number;
  failureRateToOpen: number;
  consecutiveToOpen: number;
  openSeconds: number;
  probeEvery: number;
  probesToClose: number;
}

function fraction(env: Env, name: string, dflt: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || v < min || v > max)
    throw new ConfigError(name, `must be a number between ${min} and ${max}, got "${raw}"`);
  return v;
}

function parseBankRouting(env: Env): BankRoutingConfig {
  const rule = str(env, 'BANK_ROUTING_RULE', 'priority');
  if (rule !== 'priority' && rule !== 'success_rate')
    throw new ConfigError('BANK_ROUTING_RULE', `must be priority or success_rate, got "${rule}"`);
  const breaker = str(env, 'BANK_BREAKER', 'on');
  if (breaker !== 'on' && breaker !== 'off') throw new ConfigError('BANK_BREAKER', 'must be on or off');
  return {
    rule,
    exploration: fraction(env, 'BANK_ROUTING_EXPLORATION', 0.1, 0, 0.5),
    breaker: breaker === 'on',
    windowSeconds: int(env, 'BANK_HEALTH_WINDOW_SECONDS', 60, 5, 3600),
    tripWindowSeconds: int(env, 'BANK_BREAKER_TRIP_WINDOW_SECONDS', 10, 1, 3600),
    minCalls: int(env, 'BANK_BREAKER_MIN_CALLS', 20, 1, 100_000),
    failureRateToOpen: fraction(env, 'BANK_BREAKER_FAILURE_RATE', 0.5, 0.01, 1),
    consecutiveToOpen: int(env, 'BANK_BREAKER_CONSECUTIVE', 10, 1, 100_000),
    openSeconds: int(env, 'BANK_BREAKER_OPEN_SECONDS', 30, 1, 3600),
    probeEvery: int(env, 'BANK_BREAKER_PROBE_EVERY', 10, 1, 1000),
    probesToClose: int(env, 'BANK_BREAKER_PROBES_TO_CLOSE', 5, 1, 1000),
  };
}
// -------------------------------------------------------------------------------------------

/** A secret key of 32+ bytes, given as hex or base64; undefined when unset (its user decides if that is allowed). */
function parseKeyBytes(env: Env, name: string): Buffer | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = raw.trim();
  const key = /^(?:[0-9a-fA-F]{2})+$/.test(v)
    ? Buffer.from(v, 'hex')
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(v)
      ? Buffer.from(v, 'base64')
      : undefined;
  if (!key || key.length < 32) throw new ConfigError(name, 'must be 32 or more random bytes, hex or base64');
  return key;
}

/** Settings that hold a secret and may instead be read from a file: NAME_FILE=/path (a Kubernetes Secret volume). */
export const FILE_SETTINGS = [
  'DATABASE_URL',
  'REDIS_URL',
  'AUDIT_SIGNING_KEY',
  'MFA_ENCRYPTION_KEY',
  'REWARDS_CUSTOMER_KEY',
  'BANKS',
] as const;

/** env with every NAME_FILE of FILE_SETTINGS replaced by the file's content (trailing newline dropped). */
export function readSettingFiles(env: Env): Env {
  const out = { ...env };
  for (const name of FILE_SETTINGS) {
    const file = env[`${name}_FILE`];
    if (!file) continue;
    if (env[name]) throw new ConfigError(`${name}_FILE`, `and ${name} are both set; give one`);
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ConfigError(
        `${name}_FILE`,
        `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    if (!out[name]) throw new ConfigError(`${name}_FILE`, `${file} is empty`);
  }
  return out;
}

export function loadConfig(rawEnv: Env = process.env): Config {
  const env = readSettingFiles(rawEnv);
  const modeRaw = str(env, 'NODE_ENV', 'development');
  if (!['development', 'test', 'production'].includes(modeRaw)) {
    throw new ConfigError('NODE_ENV', `must be development, test or production, got "${modeRaw}"`);
  }
  const mode = modeRaw as Mode;
  const port = int(env, 'PORT', 8080, 0, 65535);
  const host = str(env, 'HOST', mode === 'production' ? '0.0.0.0' : '127.0.0.1');
  const publicUrl = str(env, 'PUBLIC_URL', `${tlsScheme(env)}://127.0.0.1:${port}`).replace(/\/$/, '');
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
  // Where this process itself listens (a wildcard address is reached on loopback).
  const selfHost =
    host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const banks = parseBanks(env, mode, `${tlsScheme(env)}://${selfHost}:${port}`, 'dev-only-simulator-secret');
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
    healthPort: listenPort(env, 'HEALTH_PORT', undefined),
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
    worker: {
      intervalMs: int(env, 'WORKER_INTERVAL_MS', 1000, 10),
      batchSize: int(env, 'WORKER_BATCH_SIZE', 100, 1, 10_000),
      leaseSeconds: int(env, 'WORKER_LEASE_SECONDS', 10, 2, 300),
    },
    lifecycle: {
      shutdownTimeoutSeconds: int(env, 'SHUTDOWN_TIMEOUT_SECONDS', 25, 1, 600),
      shutdownDelaySeconds: int(env, 'SHUTDOWN_DELAY_SECONDS', 0, 0, 120),
    },
    http: parseHttp(env),
    redisUrl: parseRedisUrl(env),
    rateLimits: parseRateLimits(env),
    securityEventsFile: parseSecurityEventsFile(env),
    bankTimeoutMs: int(env, 'BANK_TIMEOUT_MS', 15_000, 100),
    bankRouting: parseBankRouting(env),
    identity: parseIdentity(env, mode),
    audit: parseAudit(env, resolve(str(env, 'TILLPOINT_DATA_DIR', './data'))),
    keys: parseKeysConfig(env, mode, resolve(str(env, 'TILLPOINT_DATA_DIR', './data'))),
    secrets: parseSecretsConfig(env),
    databasePasswordSecret: env.DATABASE_PASSWORD_SECRET || undefined,
    tls: parseTlsConfig(env, mode),
    mqtt: parseMqtt(env, mode, host, resolve(str(env, 'TILLPOINT_DATA_DIR', './data'))),
    rewards: { customerKey: parseKeyBytes(env, 'REWARDS_CUSTOMER_KEY') },
  };
}
