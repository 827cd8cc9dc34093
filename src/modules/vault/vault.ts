import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Db } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import type { KeysConfig } from './vault.settings.ts';
import { checkField, createFieldCipher, fieldName, indexPurpose, type EncryptedField } from './fields.ts';
import { createKeyStore, type KeyKind } from './keystore.ts';
import type { KekInfo, KeyManager } from './kms/types.ts';
import { createVaultMetrics } from './metrics.ts';
import { createRewrapJob } from './rewrap.ts';
import { createTokenService, TOKENS_FIELD, type DetokenizeAuditHook } from './tokens.ts';
import { VaultError } from './errors.ts';

// The vault: key store, field cipher, tokens and the re-encryption job, wired to one key manager.

export interface VaultDeps {
  db: Db;
  kms: KeyManager;
  config: Pick<KeysConfig, 'cacheTtlMs' | 'rewrapBatchSize' | 'cryptoperiodDays'>;
  clock: Clock;
  logger?: Logger;
  /** Metrics go to this registry (the app's); none when absent. */
  registry?: Registry;
  /** Encrypted columns other modules declared (payments, merchants, …). */
  fields: EncryptedField[];
  vpaPattern: RegExp;
  /** The audit module's hook for detokenization, when it is wired in. */
  audit?: DetokenizeAuditHook;
}

const DAY_MS = 86_400_000;

export function createVault(deps: VaultDeps) {
  const { db, kms, clock, logger } = deps;
  const metrics = deps.registry ? createVaultMetrics(deps.registry) : undefined;
  const keys = createKeyStore({ db, kms, clock, cacheTtlMs: deps.config.cacheTtlMs });
  const cipher = createFieldCipher(keys, { onDecryptFailure: (code) => metrics?.decryptFailures.inc({ code }) });
  const fields = [...deps.fields, TOKENS_FIELD].map(checkField);
  const tokens = createTokenService({
    db,
    cipher,
    clock,
    vpaPattern: deps.vpaPattern,
    audit: deps.audit,
    onDetokenize: (outcome) => metrics?.detokenize.inc({ outcome }),
  });
  const rewrap = createRewrapJob({
    db,
    keys,
    cipher,
    fields,
    clock,
    cacheTtlMs: deps.config.cacheTtlMs,
    batchSize: deps.config.rewrapBatchSize,
    logger,
    onFailure: (field) => metrics?.rewrapFailures.inc({ field }),
  });

  /** Every (purpose, kind) the declared fields use. */
  function keyPairs(): { purpose: string; kind: KeyKind }[] {
    const out = new Map<string, { purpose: string; kind: KeyKind }>();
    for (const f of fields) {
      out.set(`${f.purpose}/aead`, { purpose: f.purpose, kind: 'aead' });
      if (f.blindIndex) out.set(`${indexPurpose(f)}/hmac`, { purpose: indexPurpose(f), kind: 'hmac' });
    }
    return [...out.values()];
  }

  const period = (kind: KeyKind | 'kek') => deps.config.cryptoperiodDays[kind];

  async function status() {
    const now = clock.now().getTime();
    const kek = await kms.describe();
    const rows = await rewrap.rowsPerVersion();
    const list = await keys.list();
    const kekAgeDays = kek.createdAt ? (now - kek.createdAt.getTime()) / DAY_MS : null;
    return {
      kek: {
        ...kek,
        ageDays: kekAgeDays,
        cryptoperiodDays: period('kek'),
        overdue: kekAgeDays !== null && kekAgeDays > period('kek'),
      },
      keys: list.map((k) => {
        const ageDays = (now - new Date(k.created_at).getTime()) / DAY_MS;
        return {
          ...k,
          ageDays,
          cryptoperiodDays: period(k.kind),
          overdue: k.state === 'active' && ageDays > period(k.kind),
          rows: rows
            .filter((r) => r.kind === k.kind && r.purpose === k.purpose && r.version === k.version)
            .map((r) => ({ field: r.field, rows: r.rows })),
        };
      }),
      plaintextRows: rows.filter((r) => r.kind === 'plaintext'),
      jobs: await rewrap.progress(),
    };
  }

  return {
    keys,
    cipher,
    tokens,
    rewrap,
    kms,
    fields,
    /** Creates missing data keys and checks the key manager answers. Call before serving. */
    async init(): Promise<KekInfo> {
      const kek = await kms.describe();
      await keys.ensure(keyPairs());
      // Unwrap every active data key now: a key manager that cannot (a replaced or lost keyring,
      // the wrong KMS key) stops the start here instead of failing payments one by one.
      for (const p of keyPairs()) {
        try {
          await keys.active(p.purpose, p.kind);
        } catch (e) {
          throw new VaultError(
            'kms_unavailable',
            `the ${p.purpose} ${p.kind} data key stored in the database cannot be unwrapped by the configured key manager (${kms.provider}, ${kek.kekRef}): ${(e as Error).message}. Was the keyring or KMS key replaced?`,
          );
        }
      }
      return kek;
    },

    /**
     * New versions of data keys: of one purpose (both kinds, or `kind`), or of every key in use.
     * The worker then re-encrypts rows and retires the old versions.
     */
    async rotate(opts: { purpose?: string; kind?: KeyKind } = {}) {
      const existing = (await keys.list())
        .filter((k) => k.state === 'active')
        .map((k) => ({ purpose: k.purpose, kind: k.kind }));
      const pairs = new Map([...keyPairs(), ...existing].map((p) => [`${p.purpose}/${p.kind}`, p]));
      const chosen = [...pairs.values()].filter(
        (p) => (!opts.purpose || p.purpose === opts.purpose) && (!opts.kind || p.kind === opts.kind),
      );
      if (chosen.length === 0) return [];
      const out = [];
      for (const p of chosen) out.push(await keys.rotate(p.purpose, p.kind));
      logger?.info({ rotated: out.map((r) => `${r.purpose}/${r.kind} v${r.from}->v${r.to}`) }, 'vault: keys rotated');
      return out;
    },

    /** A new KEK version, every data key re-wrapped under it, then the old KEK versions retired. */
    async rotateKek() {
      const kek = await kms.rotate();
      const rewrapped = await keys.rewrapAll();
      const retired = await kms.retireOldVersions();
      logger?.info({ kek_ref: kek.kekRef, rewrapped, retired }, 'vault: key-encrypting key rotated');
      return { kek, rewrapped, retired };
    },

    /** Re-wraps every data key under the KEK version now current (after a KEK rotation done outside Tillpoint). */
    rewrapDeks: () => keys.rewrapAll(),

    status,

    /** Key ages and the cryptoperiod alarm, for /metrics. */
    async updateMetrics() {
      if (!metrics) return;
      const s = await status();
      if (s.kek.ageDays !== null) {
        metrics.keyAge.set({ purpose: 'kek', kind: 'kek' }, s.kek.ageDays * 86_400);
        metrics.cryptoperiodExceeded.set({ purpose: 'kek', kind: 'kek' }, s.kek.overdue ? 1 : 0);
      }
      for (const k of s.keys.filter((x) => x.state === 'active')) {
        metrics.keyAge.set({ purpose: k.purpose, kind: k.kind }, k.ageDays * 86_400);
        metrics.cryptoperiodExceeded.set({ purpose: k.purpose, kind: k.kind }, k.overdue ? 1 : 0);
      }
    },

    /** One tick of the worker: a batch of re-encryption per field, retirement of unused versions. */
    async runWorkerTick(): Promise<number> {
      const n = await rewrap.runOnce();
      if (n > 0) metrics?.rowsRewritten.inc(n);
      return n;
    },

    onSensitiveDataRefused: () => metrics?.sensitiveDataRefused.inc(),

    /** Wipes unwrapped keys from memory. */
    close() {
      keys.wipe();
    },

    fieldNames: () => fields.map(fieldName),
  };
}

export type Vault = ReturnType<typeof createVault>;
