import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { ConfigError, defineSettings, intOf, str, type Env, type Mode } from '../../platform/settings.ts';

// The banks module's settings: which acquiring banks we speak to (BANKS), the fallback order when
// one is down, the per-call timeout, how old a signed callback may be, and the simulated banks of
// development. Composed into the Config by src/config.ts.

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
  /**
   * BANKS[].settings as given: the connector's own settings (merchant and channel ids, key files,
   * secret names, client certificate). Validated at start against the connector's schema
   * (connectors/index.ts), not here.
   */
  settings?: Record<string, unknown>;
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

export interface BanksConfig {
  /** Serve the in-process bank simulator under /sim (development only). */
  embeddedBankSim: boolean;
  banks: BankConfig[];
  /** Ordered fallback when a merchant's acquiring bank is marked down. */
  bankFallbackOrder: string[];
  bankTimeoutMs: number;
  callbacks: { maxAgeSeconds: number };
  /** Health-based routing and the per-bank circuit breaker (src/modules/banks/README.md). */
  bankRouting: BankRoutingConfig;
}

declare module '../../platform/config.ts' {
  interface Config extends BanksConfig {}
}

const schema = Type.Object({
  BANKS: Type.String({
    defaultText: 'two simulated banks (not in production)',
    fromFile: true,
    description:
      'JSON array of bank connectors `[{"code","connector","url","secret" or "secret_name","previous_secret"?,"ca_file"?,"vpa_handle"?}]`; `secret_name` names a secret of `SECRETS_PROVIDER` (rotates without restart). Required in production, where every `url` is https://.',
  }),
  BANK_FALLBACK_ORDER: Type.String({
    defaultText: 'the order of `BANKS`',
    description: "Comma-separated bank codes: the ordered fallback when a merchant's acquiring bank is marked down.",
  }),
  BANK_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 15_000,
    description: "Per-call timeout to a bank (the switch's pay limit).",
  }),
  CALLBACK_MAX_AGE_SECONDS: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 300,
    description: 'Oldest acceptable signed callback (replays are refused past it).',
  }),
  EMBEDDED_BANK_SIM: Type.Boolean({
    defaultText: '`true` (never in production)',
    description:
      'Serve the bank simulator under `/sim` in this process; `false` to point the simulated banks at a separate `bank-sim` process (`BANK_SIM_URL`).',
  }),
  BANK_SIM_URL: Type.String({
    defaultText: 'this process, `/sim`',
    description: 'Where the simulated banks of development are served (a separate `tillpoint bank-sim`).',
  }),
  BANK_SIM_SECRET: Type.String({
    defaultText: 'a fixed development value',
    description: 'HMAC secret shared with the simulated banks (development and test only).',
  }),
  BANK_SIM2_FORMAT: Type.Union([Type.Literal('simbank'), Type.Literal('pspbank')], {
    defaultText: '`pspbank` in development with the embedded simulator, else `simbank`',
    description:
      'The wire format the second simulated bank (SIMBANK2) speaks: `pspbank` (encrypted, signed, form callbacks) so `npm start` runs both formats.',
  }),
  BANK_ROUTING_RULE: Type.Union([Type.Literal('priority'), Type.Literal('success_rate')], {
    default: 'priority',
    description:
      "`priority`: the merchant's acquiring bank, then `BANK_FALLBACK_ORDER`; `success_rate`: weighted by each bank's recent success rate.",
  }),
  BANK_ROUTING_EXPLORATION: Type.Number({
    default: 0.1,
    minimum: 0,
    maximum: 0.5,
    description:
      '`success_rate`: share of payments spread evenly over all healthy banks, so each keeps being measured.',
  }),
  BANK_BREAKER: Type.Union([Type.Literal('on'), Type.Literal('off')], {
    default: 'on',
    description: 'The per-bank circuit breaker (`off`: health is still measured and shown, routing ignores it).',
  }),
  BANK_HEALTH_WINDOW_SECONDS: Type.Integer({
    default: 60,
    minimum: 5,
    maximum: 3600,
    description: "Sliding window of a bank's health (success rate, latency) shown by `banks status`.",
  }),
  BANK_BREAKER_TRIP_WINDOW_SECONDS: Type.Integer({
    default: 10,
    minimum: 1,
    maximum: 3600,
    description: 'Window over which the technical failure rate opens the breaker.',
  }),
  BANK_BREAKER_MIN_CALLS: Type.Integer({
    default: 20,
    minimum: 1,
    maximum: 100_000,
    description: 'Calls in the trip window before the failure rate counts.',
  }),
  BANK_BREAKER_FAILURE_RATE: Type.Number({
    default: 0.5,
    minimum: 0.01,
    maximum: 1,
    description: 'Technical failure rate (timeouts, uncertain, 5xx; not customer declines) that opens the breaker.',
  }),
  BANK_BREAKER_CONSECUTIVE: Type.Integer({
    default: 10,
    minimum: 1,
    maximum: 100_000,
    description: 'Technical failures in a row that open the breaker whatever the rate.',
  }),
  BANK_BREAKER_OPEN_SECONDS: Type.Integer({
    default: 30,
    minimum: 1,
    maximum: 3600,
    description: 'How long an open breaker sends no payment before it probes.',
  }),
  BANK_BREAKER_PROBE_EVERY: Type.Integer({
    default: 10,
    minimum: 1,
    maximum: 1000,
    description: 'Half-open: one payment in this many goes to the bank as a probe.',
  }),
  BANK_BREAKER_PROBES_TO_CLOSE: Type.Integer({
    default: 5,
    minimum: 1,
    maximum: 1000,
    description: 'Successful probes in a row that close the breaker.',
  }),
});

export const banksSettings = defineSettings({
  title: 'Banks',
  source: 'src/modules/banks/banks.settings.ts',
  schema,
  load(env, ctx): BanksConfig {
    const banks = parseBanks(env, ctx.mode, ctx.selfUrl, 'dev-only-simulator-secret', ctx.dataDir);
    const fallback = str(env, 'BANK_FALLBACK_ORDER', banks.map((b) => b.code).join(','))
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const code of fallback) {
      if (!banks.some((b) => b.code === code)) throw new ConfigError('BANK_FALLBACK_ORDER', `unknown bank "${code}"`);
    }
    return {
      embeddedBankSim: ctx.mode !== 'production' && str(env, 'EMBEDDED_BANK_SIM', 'true') !== 'false',
      banks,
      bankFallbackOrder: fallback,
      bankTimeoutMs: intOf(schema, env, 'BANK_TIMEOUT_MS'),
      callbacks: { maxAgeSeconds: intOf(schema, env, 'CALLBACK_MAX_AGE_SECONDS') },
      bankRouting: parseBankRouting(env),
    };
  },
});

// The dev secret is not a secret: it only ever signs traffic between Tillpoint and its own simulator.
function parseBanks(env: Env, mode: Mode, selfUrl: string, devSecret: string, dataDir: string): BankConfig[] {
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
        ? devPspBank(dataDir, url, secret)
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
      // Filled from the secrets provider at start when secret_name is given (bindBankSecrets).
      secret: typeof o.secret === 'string' ? o.secret : '',
      previousSecret: typeof o.previous_secret === 'string' ? o.previous_secret : undefined,
      secretName: typeof o.secret_name === 'string' ? o.secret_name : undefined,
      caFile: typeof o.ca_file === 'string' ? resolve(o.ca_file) : undefined,
      vpaHandle: typeof o.vpa_handle === 'string' ? o.vpa_handle : undefined,
      ...parseBankSettings(o.settings, i),
    };
  });
}

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
 * The second simulated bank speaks the encrypted PSP wire format (connectors/pspbank), with
 * sandbox keys the connector creates in the data directory, so both formats run end to end.
 * Tests (NODE_ENV=test) keep two simbank-format banks.
 */
function devPspBank(dataDir: string, url: string, secret: string): BankConfig {
  const dir = resolve(dataDir, 'bank-sim', 'psp-keys');
  return {
    code: 'SIMBANK2',
    connector: 'pspbank',
    url: `${url}/psp`,
    secret,
    vpaHandle: 'simbank2',
    settings: { merchant_id: 'TILLPOINT01', sandbox_keys_dir: dir },
  };
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
  const n = (name: keyof typeof schema.properties) => intOf(schema, env, name);
  return {
    rule,
    exploration: fraction(env, 'BANK_ROUTING_EXPLORATION', 0.1, 0, 0.5),
    breaker: breaker === 'on',
    windowSeconds: n('BANK_HEALTH_WINDOW_SECONDS'),
    tripWindowSeconds: n('BANK_BREAKER_TRIP_WINDOW_SECONDS'),
    minCalls: n('BANK_BREAKER_MIN_CALLS'),
    failureRateToOpen: fraction(env, 'BANK_BREAKER_FAILURE_RATE', 0.5, 0.01, 1),
    consecutiveToOpen: n('BANK_BREAKER_CONSECUTIVE'),
    openSeconds: n('BANK_BREAKER_OPEN_SECONDS'),
    probeEvery: n('BANK_BREAKER_PROBE_EVERY'),
    probesToClose: n('BANK_BREAKER_PROBES_TO_CLOSE'),
  };
}
