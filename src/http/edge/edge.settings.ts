import { resolve } from 'node:path';
import { Type, type TSchema } from '@sinclair/typebox';
import { ConfigError, defineSettings, int, str, type Env } from '../../platform/settings.ts';

// The edge's settings: the token-bucket rate limits and the WAF gateway's security events file.
// Composed into the Config by src/config.ts.

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

export interface EdgeConfig {
  rateLimits: RateLimitConfig;
  /** The WAF gateway's security events (JSON lines) the API counts in its metrics; undefined = off. */
  securityEventsFile?: string;
}

declare module '../../platform/config.ts' {
  interface Config extends EdgeConfig {}
}

/** PCI DSS 8.3.4: lock out after at most 10 failed attempts. Per-account limits must let it act first. */
export const ACCOUNT_LOCKOUT_MAX_ATTEMPTS = 10;

// High for API traffic (a flood guard, not a quota: tests and benchmarks run under it); strict
// for sign-in and MFA. Rates read "<count>/<s|m|h>".
const RATE_LIMIT_DEFAULTS: Record<RateLimitName, { rate: string; burst: number; what: string }> = {
  ip: { rate: '5000/s', burst: 10_000, what: 'every request, per client IP' },
  api_key: { rate: '2000/s', burst: 4_000, what: 'every request, per API key' },
  terminal: { rate: '500/s', burst: 1_000, what: 'every request, per terminal' },
  signin_ip: { rate: '60/h', burst: 30, what: 'sign-in attempts, per client IP' },
  signin_account: { rate: '20/h', burst: 20, what: 'sign-in attempts, per account' },
  mfa_account: { rate: '20/h', burst: 20, what: 'MFA attempts, per account' },
};

const rateLimitSchemas: Record<string, TSchema> = {};
for (const n of RATE_LIMIT_NAMES) {
  const v = `RATE_LIMIT_${n.toUpperCase()}`;
  const d = RATE_LIMIT_DEFAULTS[n];
  rateLimitSchemas[v] = Type.String({
    default: d.rate,
    description: `Token bucket refill for ${d.what}: \`<count>/<s|m|h>\`.`,
  });
  const account = n === 'signin_account' || n === 'mfa_account';
  rateLimitSchemas[`${v}_BURST`] = Type.Integer({
    minimum: account ? ACCOUNT_LOCKOUT_MAX_ATTEMPTS + 1 : 1,
    default: d.burst,
    description: `The most requests that bucket holds at once.${account ? ' Above the account lockout threshold (10), so the lockout (PCI DSS 8.3.4) acts first.' : ''}`,
  });
}

const schema = Type.Object({
  RATE_LIMIT_ENABLED: Type.Boolean({ default: true, description: 'Token-bucket rate limits on the API.' }),
  ...rateLimitSchemas,
  SECURITY_EVENTS_FILE: Type.String({
    defaultText: '`<data dir>/gateway/security-events.jsonl`',
    description: "The WAF gateway's security events (JSON lines) the API counts in its metrics; `off`: none.",
  }),
});

export const edgeSettings = defineSettings({
  title: 'Edge (rate limits, WAF events)',
  source: 'src/http/edge/edge.settings.ts',
  schema,
  load: (env, ctx): EdgeConfig => ({
    rateLimits: parseRateLimits(env),
    securityEventsFile: parseSecurityEventsFile(env, ctx.dataDir),
  }),
});

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

function parseSecurityEventsFile(env: Env, dataDir: string): string | undefined {
  const raw = str(env, 'SECURITY_EVENTS_FILE', '');
  if (raw === 'off') return undefined;
  return raw ? resolve(raw) : resolve(dataDir, 'gateway', 'security-events.jsonl');
}
