import { resolve } from 'node:path';
import { isIP } from 'node:net';
import { Type } from '@sinclair/typebox';
import type { SecretsConfig } from './secrets.ts';
import { tlsScheme, type TlsConfig } from './tls.ts';
import {
  ConfigError,
  defineSettings,
  intOf,
  list,
  listenPort,
  str,
  type Env,
  type Mode,
  type SettingsContext,
} from './settings.ts';

// The platform's own settings: the process (mode, listener, data directory, log), the database,
// the worker tick, graceful stops, Redis and the HTTP server's limits. Secrets, TLS and AWS
// credentials declare theirs beside their code (secrets.ts, tls.ts, awsCredentials.ts), and each
// module in its *.settings.ts. src/config.ts composes them all into one Config, read once at
// start: a bad or missing setting stops the process with a message naming it. Secrets have
// defaults only in development mode.

export { ConfigError, type Mode } from './settings.ts';

export interface PlatformConfig {
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
  /** Where secrets come from (env, Kubernetes-mounted files, AWS Secrets Manager). */
  secrets: SecretsConfig;
  /** DATABASE_PASSWORD_SECRET: the database password comes from this secret instead of DATABASE_URL. */
  databasePasswordSecret?: string;
  /** HTTPS on the API. */
  tls: TlsConfig;
}

/**
 * The whole configuration. Platform declares its part here; each module adds its own section
 * to this interface from its *.settings.ts (declaration merging, as Fastify's decorators do), so
 * code that takes a Config sees every section while platform names none of them. The values are
 * composed by loadConfig in src/config.ts.
 */
export interface Config extends PlatformConfig {}

/** Request limits, slow-client timeouts, proxies, browser policy. See src/http/edge/README.md. */
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
  /** Admission (src/http/admission.ts): requests worked on at once, how many may wait, and for how long. */
  maxInFlight: number;
  queueMax: number;
  queueTimeoutMs: number;
  /** Addresses/CIDRs of proxies allowed to set X-Forwarded-For; empty = trust none. */
  trustProxy: string[];
  /** Browser origins allowed by CORS; empty = CORS closed. */
  corsAllowedOrigins: string[];
  hstsMaxAgeSeconds: number;
}

const core = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('test'), Type.Literal('production')], {
    default: 'development',
    description:
      'Production refuses PGlite, the embedded bank simulator, plain MQTT and default secrets; test makes logs silent and password hashing cheap.',
  }),
  PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 8080,
    description: 'HTTP listen port (0: any free port).',
  }),
  HOST: Type.String({
    defaultText: '`127.0.0.1` (`0.0.0.0` in production)',
    description: 'HTTP listen address.',
  }),
  HEALTH_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    defaultText: 'off (`9464` in the image)',
    description:
      'Plain-HTTP `/healthz`, `/readyz`, `/metrics` for probes and scrapes, in every role (the worker and terminal gateway have no other HTTP port); `off` or unset: none. See deploy/README.md.',
  }),
  PUBLIC_URL: Type.String({
    defaultText: '`http(s)://127.0.0.1:$PORT`',
    description: "How banks reach us (callback URLs); the WAF gateway's URL when one is in front.",
  }),
  TILLPOINT_DATA_DIR: Type.String({
    default: './data',
    description: 'PGlite database, `demo.json`, development keys, the terminal CA and the audit archive.',
  }),
  DATABASE_URL: Type.String({
    defaultText: '— (PGlite in the data dir)',
    fromFile: true,
    description:
      '`postgres://…` switches to PostgreSQL 15+; add `sslmode=verify-full&sslrootcert=…` for TLS. Required in production.',
  }),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'Connections per process.' }),
  DATABASE_PASSWORD_SECRET: Type.String({
    description:
      'Name of a secret (see `SECRETS_PROVIDER`) holding the database password, used instead of the one in `DATABASE_URL`; it rotates without a restart.',
  }),
  LOG_LEVEL: Type.String({
    defaultText: '`info` (`silent` in test)',
    description: 'pino level; logs are JSON with PII and secrets redacted at any depth.',
  }),
  WORKER_INTERVAL_MS: Type.Integer({ minimum: 10, default: 1000, description: 'Worker tick.' }),
  WORKER_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 100,
    description: 'Rows a worker job takes per tick.',
  }),
  WORKER_LEASE_SECONDS: Type.Integer({
    minimum: 2,
    maximum: 300,
    default: 10,
    description:
      'Lease of singleton work (the audit signer): the longest another worker waits to take over when its holder dies.',
  }),
  SHUTDOWN_TIMEOUT_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 600,
    default: 25,
    description:
      'The longest a graceful stop (SIGTERM) may take before the process exits anyway (exit 1). Keep `terminationGracePeriodSeconds` ≥ delay + timeout + 5 (30 with the defaults).',
  }),
  SHUTDOWN_DELAY_SECONDS: Type.Integer({
    minimum: 0,
    maximum: 120,
    default: 0,
    description: 'How long `/readyz` says `draining` before work stops (set 5 behind a Kubernetes Service).',
  }),
  REDIS_URL: Type.String({
    defaultText: '— (in-process)',
    fromFile: true,
    description: 'Shared rate limits across replicas (`redis://` or `rediss://`, CA in `REDIS_TLS_CA_FILE`).',
  }),
});

/** The process, database, worker, graceful stop and Redis. Its result gives the other sections their context. */
export const platformSettings = defineSettings({
  title: 'Process and database',
  source: 'src/platform/config.ts',
  schema: core,
  load: (env: Env) => loadPlatform(env),
});

/** The platform's own part of the Config (its other parts: httpSettings, tlsSettings, secretsSettings). */
export function loadPlatform(env: Env) {
  const modeRaw = str(env, 'NODE_ENV', 'development');
  if (!['development', 'test', 'production'].includes(modeRaw)) {
    throw new ConfigError('NODE_ENV', `must be development, test or production, got "${modeRaw}"`);
  }
  const mode = modeRaw as Mode;
  const port = intOf(core, env, 'PORT');
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
  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl))
    throw new ConfigError('REDIS_URL', 'must start with redis:// or rediss://');
  return {
    mode,
    host,
    port,
    healthPort: listenPort(env, 'HEALTH_PORT', undefined),
    publicUrl,
    dataDir: resolve(str(env, 'TILLPOINT_DATA_DIR', core.properties.TILLPOINT_DATA_DIR.default)),
    databaseUrl,
    databasePoolSize: intOf(core, env, 'DATABASE_POOL_SIZE'),
    databasePasswordSecret: env.DATABASE_PASSWORD_SECRET || undefined,
    logLevel: str(env, 'LOG_LEVEL', mode === 'test' ? 'silent' : 'info'),
    worker: {
      intervalMs: intOf(core, env, 'WORKER_INTERVAL_MS'),
      batchSize: intOf(core, env, 'WORKER_BATCH_SIZE'),
      leaseSeconds: intOf(core, env, 'WORKER_LEASE_SECONDS'),
    },
    lifecycle: {
      shutdownTimeoutSeconds: intOf(core, env, 'SHUTDOWN_TIMEOUT_SECONDS'),
      shutdownDelaySeconds: intOf(core, env, 'SHUTDOWN_DELAY_SECONDS'),
    },
    redisUrl,
  };
}

const httpSchema = Type.Object({
  HTTP_BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 64 * 1024, description: 'Largest request body.' }),
  HTTP_MAX_HEADER_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 1024 * 1024,
    default: 16 * 1024,
    description: 'Largest request line and headers.',
  }),
  HTTP_JSON_MAX_DEPTH: Type.Integer({
    minimum: 2,
    maximum: 512,
    default: 32,
    description: 'Deepest JSON nesting accepted.',
  }),
  HTTP_JSON_MAX_ARRAY_LENGTH: Type.Integer({ minimum: 1, default: 1000, description: 'Longest JSON array accepted.' }),
  HTTP_HEADERS_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 10_000,
    description: 'Slow-client protection: time to receive the headers; at most `HTTP_REQUEST_TIMEOUT_MS`.',
  }),
  HTTP_REQUEST_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    default: 30_000,
    description: 'Time to receive a whole request.',
  }),
  HTTP_IDLE_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    default: 60_000,
    description: 'An idle connection is closed after this.',
  }),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    default: 72_000,
    description: "Keep-alive between requests (above the load balancer's idle timeout).",
  }),
  HTTP_MAX_CONNECTIONS: Type.Integer({ minimum: 1, default: 10_000, description: 'Open connections per process.' }),
  HTTP_MAX_IN_FLIGHT: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 64,
    description:
      "Requests the API works on at once; the others wait (first come, first served; banks' callbacks first). Bounds what a graceful stop must finish.",
  }),
  HTTP_QUEUE_MAX: Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    default: 1000,
    description:
      'Requests that may wait for admission; past it, 503 `service_unavailable` with `Retry-After` (nothing ran: retry anywhere).',
  }),
  HTTP_QUEUE_TIMEOUT_MS: Type.Integer({
    minimum: 1,
    default: 30_000,
    description:
      'The longest a request waits for admission before it is answered 503 `service_unavailable` (nothing ran); a stop refuses the waiting ones at once.',
  }),
  HTTP_TRUST_PROXY: Type.String({
    defaultText: 'none',
    description:
      'Comma-separated addresses or CIDR ranges (or `loopback`, `linklocal`, `uniquelocal`) whose `X-Forwarded-For` to believe: set it to the gateway.',
  }),
  CORS_ALLOWED_ORIGINS: Type.String({
    defaultText: 'closed',
    description:
      'Comma-separated browser origins (`https://console.example.com`, no path, no wildcard) allowed by CORS.',
  }),
  HSTS_MAX_AGE_SECONDS: Type.Integer({
    minimum: 0,
    default: 31_536_000,
    description: 'Strict-Transport-Security max-age (one year).',
  }),
});

/** The HTTP server's request limits, slow-client timeouts, proxies and browser policy. */
export const httpSettings = defineSettings({
  title: 'HTTP server',
  source: 'src/platform/config.ts',
  schema: httpSchema,
  load: (env: Env) => ({ http: parseHttp(env) }),
});

export function parseHttp(env: Env): HttpConfig {
  const n = (name: keyof typeof httpSchema.properties) => intOf(httpSchema, env, name);
  const requestTimeoutMs = n('HTTP_REQUEST_TIMEOUT_MS');
  const headersTimeoutMs = n('HTTP_HEADERS_TIMEOUT_MS');
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
    bodyLimitBytes: n('HTTP_BODY_LIMIT_BYTES'),
    maxHeaderBytes: n('HTTP_MAX_HEADER_BYTES'),
    jsonMaxDepth: n('HTTP_JSON_MAX_DEPTH'),
    jsonMaxArrayLength: n('HTTP_JSON_MAX_ARRAY_LENGTH'),
    headersTimeoutMs,
    requestTimeoutMs,
    idleTimeoutMs: n('HTTP_IDLE_TIMEOUT_MS'),
    keepAliveTimeoutMs: n('HTTP_KEEP_ALIVE_TIMEOUT_MS'),
    maxConnections: n('HTTP_MAX_CONNECTIONS'),
    maxInFlight: n('HTTP_MAX_IN_FLIGHT'),
    queueMax: n('HTTP_QUEUE_MAX'),
    queueTimeoutMs: n('HTTP_QUEUE_TIMEOUT_MS'),
    trustProxy,
    corsAllowedOrigins,
    hstsMaxAgeSeconds: n('HSTS_MAX_AGE_SECONDS'),
  };
}

/** What the modules' settings may depend on, from the platform's. */
export function settingsContext(
  c: Pick<PlatformConfig, 'mode' | 'host' | 'port' | 'dataDir'>,
  env: Env,
): SettingsContext {
  // Where this process itself listens (a wildcard address is reached on loopback).
  const h = c.host;
  const selfHost = h === '0.0.0.0' || h === '::' || h === '' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  return {
    mode: c.mode,
    host: c.host,
    port: c.port,
    dataDir: c.dataDir,
    selfUrl: `${tlsScheme(env)}://${selfHost}:${c.port}`,
  };
}
