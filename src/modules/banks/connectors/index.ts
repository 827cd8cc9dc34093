import { readFileSync } from 'node:fs';
import { Type, type TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { BankConfig } from '../banks.settings.ts';
import { ConfigError } from '../../../platform/settings.ts';
import { systemClock, type Clock } from '../../../platform/clock.ts';
import { AppError } from '../../../platform/errors.ts';
import type { Metrics } from '../../../platform/metrics.ts';
import type { RotatingSecret, SecretStore } from '../../../platform/secrets.ts';
import { createTransport, pem, type BankTransport } from '../transport.ts';
import type { Connector, ConnectorDefinition } from './contract.ts';
import { pspbank } from './pspbank/index.ts';
import { simbank } from './simbank/index.ts';

// Which folder speaks to which bank: BankConfig.connector names an entry here. Adding a bank
// means adding its folder and one line below (README.md, "Adding a bank").
const DEFINITIONS: Record<string, ConnectorDefinition> = {
  simbank: simbank as unknown as ConnectorDefinition,
  pspbank: pspbank as unknown as ConnectorDefinition,
};

export const CONNECTOR_NAMES = Object.keys(DEFINITIONS);

const SecretName = Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,127}$' });

/** Settings every bank may have, whatever its connector: they configure the shared transport. */
export const TransportSettings = Type.Object({
  /** Per-attempt budget (default BANK_TIMEOUT_MS). */
  timeout_ms: Type.Optional(Type.Integer({ minimum: 100, maximum: 120_000 })),
  /** Retries of idempotent operations (status queries), where the bank allows them. Default 0. */
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 3 })),
  max_sockets: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
  /** Mutual TLS: our client certificate (PEM file) and its key (a secret, or a file). */
  client_cert_file: Type.Optional(Type.String({ minLength: 1 })),
  client_key_secret: Type.Optional(SecretName),
  client_key_file: Type.Optional(Type.String({ minLength: 1 })),
});

export interface ConnectorOptions {
  publicUrl: string;
  timeoutMs: number;
  metrics?: Pick<Metrics, 'bankCalls'>;
  clock?: Clock;
  callbackMaxAgeSeconds?: number;
  production?: boolean;
}

// Secrets named in BANKS[].settings (`*_secret` fields), bound at start by bindConnectorSecrets.
const bound = new WeakMap<BankConfig, Map<string, RotatingSecret>>();

/**
 * Loads every secret a bank's settings name (fields ending in `_secret`) from the secrets
 * provider, and keeps them fresh (they rotate without a restart). Call at start, before the
 * banks service is built; a missing secret stops the start, naming its setting.
 */
export async function bindConnectorSecrets(banks: BankConfig[], store: Pick<SecretStore, 'watch'>): Promise<void> {
  for (const b of banks) {
    const map = new Map<string, RotatingSecret>();
    for (const [k, v] of Object.entries(b.settings ?? {})) {
      if (k.endsWith('_secret') && typeof v === 'string')
        map.set(v, await store.watch(v, `BANKS[${b.code}].settings.${k}`));
    }
    bound.set(b, map);
  }
}

function validate(bank: BankConfig, def: ConnectorDefinition): Record<string, unknown> {
  const schema: TObject = Type.Composite([TransportSettings, def.settings], { additionalProperties: false });
  const settings = bank.settings ?? {};
  if (!Value.Check(schema, settings)) {
    const first = Value.Errors(schema, settings).First();
    throw new ConfigError(
      `BANKS[${bank.code}].settings${first?.path.replace(/\//g, '.') ?? ''}`,
      first?.message ?? 'does not match the connector settings',
    );
  }
  return settings;
}

export function createConnector(bank: BankConfig, opts: ConnectorOptions): Connector {
  const def = Object.hasOwn(DEFINITIONS, bank.connector) ? DEFINITIONS[bank.connector] : undefined;
  if (!def) {
    // Raised at start-up (the service builds every connector then), so a typo in BANKS stops
    // the process instead of failing the first payment.
    throw new AppError('internal_error', `Bank ${bank.code}: unknown connector "${bank.connector}"`, {
      known: CONNECTOR_NAMES,
    });
  }
  const settings = validate(bank, def) as Record<string, unknown> & {
    timeout_ms?: number;
    retries?: number;
    max_sockets?: number;
    client_cert_file?: string;
    client_key_secret?: string;
    client_key_file?: string;
  };
  if (settings.client_cert_file && !settings.client_key_secret && !settings.client_key_file)
    throw new ConfigError(`BANKS[${bank.code}].settings.client_key_secret`, 'client_cert_file needs a key');

  const secret = (name: string) => {
    const s = bound.get(bank)?.get(name);
    if (!s) throw new AppError('internal_error', `Bank ${bank.code}: secret ${name} was not loaded at start`);
    return { current: s.current(), verifying: s.verifying() };
  };

  let transport: BankTransport | undefined;
  const makeTransport = (): BankTransport => {
    // A bank with `ca_file` is trusted only through that CA (pinned); others through the system's
    // CAs. Certificates are always verified either way.
    transport ??= createTransport({
      bank: bank.code,
      baseUrl: bank.url,
      timeoutMs: settings.timeout_ms ?? opts.timeoutMs,
      retries: settings.retries,
      maxSockets: settings.max_sockets,
      metrics: opts.metrics,
      tls: {
        ...(bank.caFile ? { ca: readFileSync(bank.caFile) } : {}),
        ...(settings.client_cert_file
          ? {
              cert: readFileSync(settings.client_cert_file),
              key: settings.client_key_file
                ? readFileSync(settings.client_key_file)
                : pem(secret(settings.client_key_secret!).current),
            }
          : {}),
      },
    });
    return transport;
  };

  return def.create({
    bank,
    settings,
    transport: makeTransport,
    clock: opts.clock ?? systemClock,
    production: opts.production ?? false,
    callbackMaxAgeSeconds: opts.callbackMaxAgeSeconds ?? 300,
    secret,
  });
}

export type { Connector, ConnectorDefinition, CallbackVerdict, ConnectorContext } from './contract.ts';
