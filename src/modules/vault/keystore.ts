import { createSecretKey, type KeyObject } from 'node:crypto';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { isPurpose } from './envelope.ts';
import { VaultError } from './errors.ts';
import { KmsError, type KeyContext, type KeyManager } from './kms/types.ts';

// Data-encryption keys (DEKs): one active version per (purpose, kind) that encrypts, older
// versions that only decrypt until nothing uses them, and retired versions whose wrapped key has
// been erased. DEKs are stored only wrapped by the KEK (vault.data_keys.wrapped_key); unwrapped
// copies live in this process's memory, refreshed from the table every `cacheTtlMs`, as
// `KeyObject`s: the bytes sit outside the JavaScript heap and OpenSSL clears them when the object
// is collected (the KMS's Buffer is zeroed at once), and Node 24 takes a KeyObject without the
// two thrown TypeErrors a raw Buffer key costs it on every cipher and HMAC.
//
// The cache TTL is a promise to the rest of the system: a rotation made by any process is seen
// by every process within one TTL. Re-encryption waits that long before it starts (rewrap.ts),
// so no process can still be writing with the old version once it has begun.

export type KeyKind = 'aead' | 'hmac';

export interface DataKeyRow {
  purpose: string;
  kind: KeyKind;
  version: number;
  state: 'active' | 'decrypt_only' | 'retired';
  wrapped_key: string | null;
  kek_ref: string;
  created_at: Date;
  rotated_at: Date | null;
  retired_at: Date | null;
}

export interface UsableKey {
  version: number;
  key: KeyObject;
}

interface Entry {
  loadedAt: number;
  rows: DataKeyRow[];
  loading?: Promise<void>;
  loadingVia?: Queryable;
}

export interface KeyStoreDeps {
  db: Db;
  kms: KeyManager;
  clock: Clock;
  /** How long a process trusts what it read from vault.data_keys. */
  cacheTtlMs: number;
}

export const keyContext = (purpose: string, kind: KeyKind, version: number): KeyContext => ({
  app: 'tillpoint',
  purpose,
  kind,
  version: String(version),
});

const COLS = 'purpose, kind, version, state, wrapped_key, kek_ref, created_at, rotated_at, retired_at';

export function createKeyStore(deps: KeyStoreDeps) {
  const { db, kms, clock } = deps;
  const entries = new Map<string, Entry>();
  // Unwrapped DEKs by their wrapped form: a refresh that finds the same wrapped key reuses it,
  // so the KMS is called once per key version per process, not once per TTL.
  const material = new Map<string, KeyObject>();
  const unwrapping = new Map<string, Promise<KeyObject>>();

  const id = (purpose: string, kind: KeyKind) => `${purpose}/${kind}`;

  function checkPurpose(purpose: string) {
    if (!isPurpose(purpose))
      throw new VaultError('invalid_field', `"${purpose}" is not a key purpose (a-z, 0-9, _; up to 40)`);
  }

  async function loadRows(q: Queryable, purpose: string, kind: KeyKind): Promise<DataKeyRow[]> {
    const { rows } = await q.query<DataKeyRow>(
      `SELECT ${COLS} FROM vault.data_keys WHERE purpose = $1 AND kind = $2 ORDER BY version`,
      [purpose, kind],
    );
    return rows;
  }

  /** Creates version 1 when a purpose is used for the first time. Safe when processes race. */
  async function createFirst(purpose: string, kind: KeyKind) {
    const dek = await kmsCall(() => kms.generateDataKey(keyContext(purpose, kind, 1)));
    dek.plaintext.fill(0); // only the wrapped form is kept; it is unwrapped on use like any other
    await db.query(
      `INSERT INTO vault.data_keys (purpose, kind, version, state, wrapped_key, kek_ref, created_at)
       VALUES ($1, $2, 1, 'active', $3, $4, $5) ON CONFLICT DO NOTHING`,
      [purpose, kind, dek.wrapped, dek.kekRef, clock.now()],
    );
  }

  /**
   * The rows of one (purpose, kind), from cache or read again. `q` lets a caller inside a
   * transaction read through it: on PGlite (one connection) a read on the database itself would
   * wait for that very transaction. Keys are only ever created outside a caller's transaction
   * (`create`), so a rolled-back transaction can never take a key that encrypted data with it.
   */
  async function entry(
    purpose: string,
    kind: KeyKind,
    opts: { force?: boolean; create?: boolean; q?: Queryable } = {},
  ): Promise<Entry> {
    checkPurpose(purpose);
    const k = id(purpose, kind);
    const e = entries.get(k);
    const stale =
      !e ||
      opts.force ||
      Date.now() - e.loadedAt >= deps.cacheTtlMs ||
      (opts.create && !e.rows.some((r) => r.state === 'active'));
    if (!stale) return e!;
    const q = opts.q ?? db;
    // Join a load already under way only if it reads through the same handle (see above).
    if (e?.loading && e.loadingVia === q) {
      await e.loading;
      return entries.get(k)!;
    }
    const next: Entry = { loadedAt: 0, rows: e?.rows ?? [] };
    next.loadingVia = q;
    next.loading = (async () => {
      let rows = await loadRows(q, purpose, kind);
      if (opts.create && !opts.q && !rows.some((r) => r.state === 'active')) {
        await createFirst(purpose, kind);
        rows = await loadRows(db, purpose, kind);
      }
      // Forget unwrapped copies of versions that were retired meanwhile.
      for (const r of rows) if (r.state === 'retired') forget(purpose, kind, r.version);
      next.rows = rows;
      next.loadedAt = Date.now();
    })();
    entries.set(k, next);
    try {
      await next.loading;
    } finally {
      next.loading = undefined;
      next.loadingVia = undefined;
    }
    return next;
  }

  function forget(purpose: string, kind: KeyKind, version: number) {
    const prefix = `${purpose}/${kind}/${version}:`;
    for (const k of material.keys()) if (k.startsWith(prefix)) material.delete(k);
  }

  async function kmsCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof KmsError) throw new VaultError('kms_unavailable', `key manager: ${e.message}`);
      throw e;
    }
  }

  async function unwrap(row: DataKeyRow): Promise<KeyObject> {
    const k = `${row.purpose}/${row.kind}/${row.version}:${row.wrapped_key}`;
    const have = material.get(k);
    if (have) return have;
    let p = unwrapping.get(k);
    if (!p) {
      p = kmsCall(async () => {
        const raw = await kms.unwrap(row.wrapped_key!, keyContext(row.purpose, row.kind, row.version));
        const key = createSecretKey(raw);
        raw.fill(0);
        return key;
      });
      unwrapping.set(k, p);
    }
    try {
      const key = await p;
      material.set(k, key);
      return key;
    } finally {
      unwrapping.delete(k);
    }
  }

  const describe = (purpose: string, kind: KeyKind) => `${purpose} ${kind === 'aead' ? 'encryption' : 'index'} key`;

  return {
    /**
     * The version new data is written with. Created on first use, unless called inside a
     * transaction (`q`): then it must exist already (`ensure` at start does that).
     */
    async active(purpose: string, kind: KeyKind, q?: Queryable): Promise<UsableKey> {
      const e = await entry(purpose, kind, { create: true, q });
      const row = e.rows.find((r) => r.state === 'active');
      if (!row)
        throw new VaultError(
          'unknown_key_version',
          `${describe(purpose, kind)} has no active version (create it outside a transaction first)`,
        );
      return { version: row.version, key: await unwrap(row) };
    },

    /** A specific version, for decryption. Retired and unknown versions fail loudly. */
    async version(purpose: string, kind: KeyKind, version: number, q?: Queryable): Promise<KeyObject> {
      let e = await entry(purpose, kind, { q });
      let row = e.rows.find((r) => r.version === version);
      // A version newer than what we hold may have been made by another process: look again once.
      if (!row) {
        e = await entry(purpose, kind, { force: true, q });
        row = e.rows.find((r) => r.version === version);
      }
      if (!row)
        throw new VaultError('unknown_key_version', `${describe(purpose, kind)} version ${version} does not exist`);
      if (row.state === 'retired')
        throw new VaultError(
          'key_retired',
          `${describe(purpose, kind)} version ${version} is retired and can no longer decrypt`,
        );
      return unwrap(row);
    },

    /** Every version that can still match (active first): blind-index lookups try each. */
    async live(purpose: string, kind: KeyKind, q?: Queryable): Promise<UsableKey[]> {
      const e = await entry(purpose, kind, { create: true, q });
      const rows = e.rows
        .filter((r) => r.state !== 'retired')
        .sort((a, b) => (a.state === 'active' ? -1 : b.state === 'active' ? 1 : b.version - a.version));
      return Promise.all(rows.map(async (r) => ({ version: r.version, key: await unwrap(r) })));
    },

    /**
     * Makes a new version active; the old one keeps decrypting until the worker has moved every
     * row off it. The new key is generated before the transaction so the row locks are short.
     */
    async rotate(
      purpose: string,
      kind: KeyKind,
    ): Promise<{ purpose: string; kind: KeyKind; from: number | null; to: number }> {
      checkPurpose(purpose);
      const current = await db.query<{ v: number }>(
        `SELECT coalesce(max(version), 0)::int AS v FROM vault.data_keys WHERE purpose = $1 AND kind = $2`,
        [purpose, kind],
      );
      const to = current.rows[0].v + 1;
      const dek = await kmsCall(() => kms.generateDataKey(keyContext(purpose, kind, to)));
      dek.plaintext.fill(0);
      const from = await db.tx(async (tx) => {
        const rows = await tx.query<{ version: number; state: string }>(
          `SELECT version, state FROM vault.data_keys WHERE purpose = $1 AND kind = $2 ORDER BY version FOR UPDATE`,
          [purpose, kind],
        );
        const max = rows.rows.reduce((m, r) => Math.max(m, r.version), 0);
        // Someone rotated between our read and the lock: one rotation is what was asked for.
        if (max + 1 !== to)
          throw new VaultError(
            'invalid_field',
            `${describe(purpose, kind)} was rotated concurrently; run the command again`,
          );
        const active = rows.rows.find((r) => r.state === 'active');
        const now = clock.now();
        if (active) {
          await tx.query(
            `UPDATE vault.data_keys SET state = 'decrypt_only', rotated_at = $4 WHERE purpose = $1 AND kind = $2 AND version = $3`,
            [purpose, kind, active.version, now],
          );
        }
        await tx.query(
          `INSERT INTO vault.data_keys (purpose, kind, version, state, wrapped_key, kek_ref, created_at) VALUES ($1, $2, $3, 'active', $4, $5, $6)`,
          [purpose, kind, to, dek.wrapped, dek.kekRef, now],
        );
        return active?.version ?? null;
      });
      entries.delete(id(purpose, kind));
      return { purpose, kind, from, to };
    },

    /** Erases the wrapped key of decrypt-only versions: they can never decrypt again. */
    async retire(purpose: string, kind: KeyKind, versions: number[]): Promise<number[]> {
      if (versions.length === 0) return [];
      const { rows } = await db.query<{ version: number }>(
        `UPDATE vault.data_keys SET state = 'retired', wrapped_key = NULL, retired_at = $4
          WHERE purpose = $1 AND kind = $2 AND version = ANY($3::int[]) AND state = 'decrypt_only' RETURNING version`,
        [purpose, kind, versions, clock.now()],
      );
      for (const r of rows) forget(purpose, kind, r.version);
      entries.delete(id(purpose, kind));
      return rows.map((r) => r.version);
    },

    async list(): Promise<Omit<DataKeyRow, 'wrapped_key'>[]> {
      const { rows } = await db.query<DataKeyRow>(
        `SELECT ${COLS} FROM vault.data_keys ORDER BY purpose, kind, version`,
      );
      return rows.map(({ wrapped_key: _w, ...r }) => r);
    },

    /**
     * After a KEK rotation: re-wraps every DEK that can still decrypt under the current KEK
     * version (through the KMS's own rewrap where it has one). The DEKs themselves do not change,
     * so no field needs re-encrypting.
     */
    async rewrapAll(): Promise<number> {
      const { rows } = await db.query<DataKeyRow>(
        `SELECT ${COLS} FROM vault.data_keys WHERE state <> 'retired' ORDER BY purpose, kind, version`,
      );
      for (const r of rows) {
        const out = await kmsCall(() => kms.rewrap(r.wrapped_key!, keyContext(r.purpose, r.kind, r.version)));
        await db.query(
          `UPDATE vault.data_keys SET wrapped_key = $4, kek_ref = $5 WHERE purpose = $1 AND kind = $2 AND version = $3 AND wrapped_key = $6`,
          [r.purpose, r.kind, r.version, out.wrapped, out.kekRef, r.wrapped_key],
        );
      }
      entries.clear();
      return rows.length;
    },

    /** Creates the active version of each (purpose, kind) that has none yet. Call at start. */
    async ensure(pairs: { purpose: string; kind: KeyKind }[]) {
      for (const p of pairs) await entry(p.purpose, p.kind, { create: true });
    },

    /** Drops what this process read, so the next use reads vault.data_keys again. */
    invalidate() {
      entries.clear();
    },

    /** Drops the unwrapped keys held in memory (at shutdown); OpenSSL clears each when it is collected. */
    wipe() {
      material.clear();
      entries.clear();
    },
  };
}

export type KeyStore = ReturnType<typeof createKeyStore>;
