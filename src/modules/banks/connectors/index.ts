import { readFileSync } from 'node:fs';
import type { BankConfig } from '../banks.settings.ts';
import { createCaPinnedFetch, createKeepAliveFetch } from '../../../platform/tls.ts';
import { AppError } from '../../../platform/errors.ts';
import type { BankConnector } from '../types.ts';
import { createSimbankConnector, type ConnectorOptions } from './simbank.ts';

// Which file speaks to which bank: BankConfig.connector names an entry here. Adding a real
// bank means adding its connector file and one line below.
const FACTORIES: Record<string, (bank: BankConfig, opts: ConnectorOptions) => BankConnector> = {
  simbank: createSimbankConnector,
};

export const CONNECTOR_NAMES = Object.keys(FACTORIES);

export function createConnector(bank: BankConfig, opts: ConnectorOptions): BankConnector {
  const factory = Object.hasOwn(FACTORIES, bank.connector) ? FACTORIES[bank.connector] : undefined;
  if (!factory) {
    // Raised at start-up (the service builds every connector then), so a typo in BANKS stops
    // the process instead of failing the first payment.
    throw new AppError('internal_error', `Bank ${bank.code}: unknown connector "${bank.connector}"`, {
      known: CONNECTOR_NAMES,
    });
  }
  // A bank with `ca_file` is trusted only through that CA (pinned); others through the system's
  // CAs. Certificates are always verified either way. Calls go over keep-alive node:http(s)
  // agents rather than the global fetch (cheaper per call; platform/tls.ts).
  if (opts.fetch) return factory(bank, opts);
  return factory(bank, {
    ...opts,
    fetch: bank.caFile ? createCaPinnedFetch(readFileSync(bank.caFile)) : createKeepAliveFetch(),
  });
}

export type { ConnectorOptions };
