import { Counter, Gauge, type Registry } from 'prom-client';

// Vault metrics. `tillpoint_vault_key_cryptoperiod_exceeded` is the alarm: 1 for each key whose
// active version is older than the cryptoperiod configured for its type (PCI DSS 3.7.4).
export function createVaultMetrics(registry: Registry) {
  return {
    keyAge: new Gauge({
      name: 'tillpoint_vault_key_age_seconds',
      help: 'Age of the active version of each key (kind aead, hmac, or kek for the key-encrypting key)',
      labelNames: ['purpose', 'kind'] as const,
      registers: [registry],
    }),
    cryptoperiodExceeded: new Gauge({
      name: 'tillpoint_vault_key_cryptoperiod_exceeded',
      help: '1 when the active version of a key is older than its configured cryptoperiod: rotate it',
      labelNames: ['purpose', 'kind'] as const,
      registers: [registry],
    }),
    decryptFailures: new Counter({
      name: 'tillpoint_vault_decrypt_failures_total',
      help: 'Field values that did not decrypt (tampered, truncated, moved, or under a retired key), by reason',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    rewrapFailures: new Counter({
      name: 'tillpoint_vault_rewrap_failures_total',
      help: 'Rows the re-encryption job could not decrypt, by field',
      labelNames: ['field'] as const,
      registers: [registry],
    }),
    rowsRewritten: new Counter({
      name: 'tillpoint_vault_rows_rewritten_total',
      help: 'Rows re-encrypted under the active key version by the background job',
      registers: [registry],
    }),
    detokenize: new Counter({
      name: 'tillpoint_vault_detokenize_total',
      help: 'Detokenization attempts by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    sensitiveDataRefused: new Counter({
      name: 'tillpoint_sensitive_auth_data_refused_total',
      help: 'Requests refused because they carried card verification codes, PIN blocks or track data',
      registers: [registry],
    }),
  };
}

export type VaultMetrics = ReturnType<typeof createVaultMetrics>;
