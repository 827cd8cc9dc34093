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
}

export interface BanksConfig {
  /** Serve the in-process bank simulator under /sim (development only). */
  embeddedBankSim: boolean;
  banks: BankConfig[];
  /** Ordered fallback when a merchant's acquiring bank is marked down. */
  bankFallbackOrder: string[];
  bankTimeoutMs: number;
  callbacks: { maxAgeSeconds: number };
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
});

export const banksSettings = defineSettings({
  title: 'Banks',
  source: 'src/modules/banks/banks.settings.ts',
  schema,
  load(env, ctx): BanksConfig {
    const banks = parseBanks(env, ctx.mode, ctx.selfUrl, 'dev-only-simulator-secret');
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
    };
  },
});

// The dev secret is not a secret: it only ever signs traffic between Tillpoint and its own simulator.
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
    };
  });
}
