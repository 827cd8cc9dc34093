import type { Logger } from 'pino';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { blindIndexVersion, ciphertextVersion } from './envelope.ts';
import { fieldName, indexPurpose, type EncryptedField, type FieldCipher } from './fields.ts';
import type { DataKeyRow, KeyKind, KeyStore } from './keystore.ts';

// Background re-encryption after a rotation, and retirement of the versions it leaves unused.
//
// Per encrypted column, the worker walks the table in primary-key order, a batch per tick, and
// rewrites every value that is not on the active key version (ciphertext and blind index), plus
// any legacy plaintext. Where it got to is kept in vault.rewrap_jobs, so a restarted or another
// worker carries on from there. Rewrites are compare-and-set on the old value: a row the
// application changed in the meantime is left as the application wrote it.
//
// A pass starts only once every process must have seen the rotation (twice the key-cache TTL
// plus a second), so nothing still writes with the old version behind the cursor; a complete
// pass then proves the column current as of its start ("verified_at"). A decrypt-only version is
// retired when every column that uses its purpose is verified past its rotation and a final count
// finds no row left on it. A row that does not decrypt is logged and counted, never dropped, and
// its version is then never retired.

export interface RewrapDeps {
  db: Db;
  keys: KeyStore;
  cipher: FieldCipher;
  fields: EncryptedField[];
  clock: Clock;
  cacheTtlMs: number;
  batchSize: number;
  logger?: Logger;
  onFailure?(field: string): void;
}

interface JobRow {
  field: string;
  cursor: string | null;
  pass_started_at: Date | null;
  pass_rewritten: number;
  pass_failures: number;
  verified_at: Date | null;
  rows_rewritten: number;
  updated_at: Date;
  lease_until: Date | null;
}

const LEASE_MS = 60_000;
class LeaseLost extends Error {}

/** A pass that met rows it could not decrypt is not retried before this (an operator must look). */
const FAILED_PASS_BACKOFF_MS = 10 * 60_000;

const q = (ident: string) =>
  ident
    .split('.')
    .map((p) => `"${p}"`)
    .join('.');

export function createRewrapJob(deps: RewrapDeps) {
  const { db, keys, cipher, fields, clock, logger } = deps;
  const safeDelayMs = 2 * deps.cacheTtlMs + 1000;
  let jobsCreated = false;

  async function ensureJobs() {
    if (jobsCreated) return;
    for (const f of fields)
      await db.query(`INSERT INTO vault.rewrap_jobs (field) VALUES ($1) ON CONFLICT DO NOTHING`, [fieldName(f)]);
    jobsCreated = true;
  }

  /** Decrypt-only versions of the keys a field uses. */
  function pendingFor(f: EncryptedField, keyRows: DataKeyRow[]): DataKeyRow[] {
    return keyRows.filter(
      (k) =>
        k.state === 'decrypt_only' &&
        ((k.kind === 'aead' && k.purpose === f.purpose) ||
          (k.kind === 'hmac' && f.blindIndex && k.purpose === indexPurpose(f))),
    );
  }

  function needsWork(f: EncryptedField, job: JobRow, keyRows: DataKeyRow[], now: number): boolean {
    if (job.cursor !== null) return true;
    if (job.pass_failures > 0 && now - new Date(job.updated_at).getTime() < FAILED_PASS_BACKOFF_MS) return false;
    const pending = pendingFor(f, keyRows);
    const verified = job.verified_at ? new Date(job.verified_at).getTime() : -Infinity;
    if (f.legacyPlaintextColumn && job.verified_at === null) return true;
    if (pending.length === 0) return false;
    const readyAt = Math.max(...pending.map((k) => new Date(k.rotated_at!).getTime())) + safeDelayMs;
    return now >= readyAt && verified < readyAt;
  }

  /**
   * One batch of one field. The job row is leased (not locked) while the batch is read and
   * re-encrypted, so no transaction is open during key-manager calls or crypto; the rewrites and
   * the cursor then commit together. Returns rows rewritten, or -1 when another worker has it.
   */
  async function batch(f: EncryptedField): Promise<number> {
    const now = clock.now();
    const lease = new Date(now.getTime() + LEASE_MS);
    const claimed = await db.query<JobRow>(
      `UPDATE vault.rewrap_jobs SET lease_until = $2 WHERE field = $1 AND (lease_until IS NULL OR lease_until <= $3) RETURNING *`,
      [fieldName(f), lease, now],
    );
    const job = claimed.rows[0];
    if (!job) return -1;
    const release = () =>
      db.query(`UPDATE vault.rewrap_jobs SET lease_until = NULL WHERE field = $1 AND lease_until = $2`, [
        fieldName(f),
        lease,
      ]);
    try {
      if (!needsWork(f, job, await allKeys(db), now.getTime())) {
        await release();
        return 0;
      }
      let cursor = job.cursor;
      let passStarted = job.pass_started_at;
      let passRewritten = Number(job.pass_rewritten);
      let passFailures = Number(job.pass_failures);
      if (cursor === null) {
        cursor = '';
        passStarted = now;
        passRewritten = 0;
        passFailures = 0;
      }

      const cols = [`${q(f.idColumn)} AS id`, `${q(f.column)} AS ct`];
      if (f.blindIndex) cols.push(`${q(f.blindIndex.column)} AS bidx`);
      if (f.legacyPlaintextColumn) cols.push(`${q(f.legacyPlaintextColumn)} AS legacy`);
      const page = await db.query<{ id: string; ct: string | null; bidx?: string | null; legacy?: string | null }>(
        `SELECT ${cols.join(', ')} FROM ${q(f.table)} WHERE ${q(f.idColumn)} > $1 ORDER BY ${q(f.idColumn)} LIMIT $2`,
        [cursor, deps.batchSize],
      );
      const aead = await keys.active(f.purpose, 'aead');
      const hmac = f.blindIndex ? await keys.active(indexPurpose(f), 'hmac') : undefined;

      const updates: { id: string; oldCt: string | null; oldLegacy: string | null; ct: string; bidx: string | null }[] =
        [];
      for (const r of page.rows) {
        const legacy = r.legacy ?? null;
        if (r.ct === null && legacy === null) continue;
        const ctStale = r.ct === null || ciphertextVersion(r.ct) !== aead.version;
        const idxStale = hmac !== undefined && blindIndexVersion(r.bidx) !== hmac.version;
        if (!ctStale && !idxStale && legacy === null) continue;
        let plaintext: string;
        try {
          plaintext = r.ct !== null ? await cipher.open(f, r.id, r.ct) : legacy!;
        } catch (e) {
          passFailures++;
          deps.onFailure?.(fieldName(f));
          logger?.error(
            { field: fieldName(f), row_id: r.id, code: (e as { code?: string }).code },
            'vault: a value does not decrypt; its key version will not be retired',
          );
          continue;
        }
        const sealed = await cipher.seal(f, r.id, plaintext);
        updates.push({
          id: r.id,
          oldCt: r.ct,
          oldLegacy: legacy,
          ct: ctStale ? sealed.ciphertext : r.ct!,
          bidx: sealed.blindIndex ?? null,
        });
      }

      const done = page.rows.length < deps.batchSize;
      const last = page.rows.length > 0 ? page.rows[page.rows.length - 1].id : cursor;
      return await db.tx(async (tx) => {
        let rewritten = 0;
        if (updates.length > 0) {
          const params: unknown[] = [];
          const values = updates.map((u) => {
            params.push(u.id, u.oldCt, u.oldLegacy, u.ct, u.bidx);
            const n = params.length;
            return `($${n - 4}::text, $${n - 3}::text, $${n - 2}::text, $${n - 1}::text, $${n}::text)`;
          });
          const sets = [`${q(f.column)} = v.ct`];
          if (f.blindIndex) sets.push(`${q(f.blindIndex.column)} = v.bidx`);
          if (f.legacyPlaintextColumn) sets.push(`${q(f.legacyPlaintextColumn)} = NULL`);
          // Compare-and-set: a row the application rewrote meanwhile keeps what it wrote.
          const guards = [`t.${q(f.column)} IS NOT DISTINCT FROM v.old_ct`];
          if (f.legacyPlaintextColumn) guards.push(`t.${q(f.legacyPlaintextColumn)} IS NOT DISTINCT FROM v.old_legacy`);
          const res = await tx.query(
            `UPDATE ${q(f.table)} AS t SET ${sets.join(', ')}
               FROM (VALUES ${values.join(', ')}) AS v(id, old_ct, old_legacy, ct, bidx)
              WHERE t.${q(f.idColumn)} = v.id AND ${guards.join(' AND ')}`,
            params,
          );
          rewritten = res.rowCount;
        }
        const saved = await tx.query(
          `UPDATE vault.rewrap_jobs SET cursor = $2, pass_started_at = $3, pass_rewritten = $4, pass_failures = $5,
                  verified_at = CASE WHEN $6::boolean THEN $3 ELSE verified_at END,
                  rows_rewritten = rows_rewritten + $7, updated_at = $8, lease_until = NULL
            WHERE field = $1 AND lease_until = $9`,
          [
            fieldName(f),
            done ? null : last,
            passStarted,
            passRewritten + rewritten,
            passFailures,
            done && passFailures === 0,
            rewritten,
            clock.now(),
            lease,
          ],
        );
        // Our lease ran out and another worker took over: undo, it redoes this batch.
        if (saved.rowCount !== 1) throw new LeaseLost();
        if (done)
          logger?.info(
            { field: fieldName(f), rewritten: passRewritten + rewritten, failures: passFailures },
            'vault: re-encryption pass complete',
          );
        return rewritten;
      });
    } catch (e) {
      if (e instanceof LeaseLost) return 0;
      await release().catch(() => {});
      throw e;
    }
  }

  async function allKeys(qq: Queryable): Promise<DataKeyRow[]> {
    return (
      await qq.query<DataKeyRow>(
        `SELECT purpose, kind, version, state, kek_ref, created_at, rotated_at, retired_at FROM vault.data_keys WHERE state <> 'retired'`,
      )
    ).rows;
  }

  /** Rows of a field still on a given version (ciphertext for aead, blind index for hmac). */
  async function countOnVersion(f: EncryptedField, kind: KeyKind, version: number): Promise<number> {
    const col = kind === 'aead' ? f.column : f.blindIndex!.column;
    const pattern = kind === 'aead' ? `tp1.${f.purpose}.${version}.%` : `v${version}.%`;
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${q(f.table)} WHERE ${q(col)} LIKE $1`,
      [pattern],
    );
    return rows[0].n;
  }

  /** Retires decrypt-only versions no row uses any more. Returns what was retired. */
  async function retireUnused(): Promise<{ purpose: string; kind: KeyKind; version: number }[]> {
    const keyRows = await allKeys(db);
    const jobs = new Map((await db.query<JobRow>(`SELECT * FROM vault.rewrap_jobs`)).rows.map((j) => [j.field, j]));
    const retired: { purpose: string; kind: KeyKind; version: number }[] = [];
    for (const k of keyRows.filter((r) => r.state === 'decrypt_only')) {
      const users = fields.filter((f) =>
        k.kind === 'aead' ? f.purpose === k.purpose : f.blindIndex && indexPurpose(f) === k.purpose,
      );
      // A purpose nobody here declared may be used by code we do not know: never retire it blind.
      if (users.length === 0) continue;
      const readyAt = new Date(k.rotated_at!).getTime() + safeDelayMs;
      const verified = users.every((f) => {
        const j = jobs.get(fieldName(f));
        return j?.verified_at && new Date(j.verified_at).getTime() >= readyAt && j.cursor === null;
      });
      if (!verified) continue;
      let left = 0;
      for (const f of users) left += await countOnVersion(f, k.kind, k.version);
      if (left > 0) {
        logger?.warn(
          { purpose: k.purpose, kind: k.kind, version: k.version, rows: left },
          'vault: rows still on a rotated key version; not retiring it',
        );
        continue;
      }
      for (const v of await keys.retire(k.purpose, k.kind, [k.version])) {
        retired.push({ purpose: k.purpose, kind: k.kind, version: v });
        logger?.info({ purpose: k.purpose, kind: k.kind, version: v }, 'vault: key version retired');
      }
    }
    return retired;
  }

  return {
    /** One batch for every field that has work, then retirement. Returns rows rewritten. */
    async runOnce(): Promise<number> {
      await ensureJobs();
      let total = 0;
      for (const f of fields) total += Math.max(0, await batch(f));
      await retireUnused();
      return total;
    },

    /** Until no field has work left (CLI and tests). Gives up after `maxBatches`. */
    async runToCompletion(maxBatches = 1_000_000): Promise<number> {
      await ensureJobs();
      let total = 0;
      for (let i = 0; i < maxBatches; i++) {
        const keyRows = await allKeys(db);
        const jobs = new Map((await db.query<JobRow>(`SELECT * FROM vault.rewrap_jobs`)).rows.map((j) => [j.field, j]));
        const now = clock.now().getTime();
        const busy = fields.filter((f) => needsWork(f, jobs.get(fieldName(f))!, keyRows, now));
        if (busy.length === 0) break;
        for (const f of busy) total += Math.max(0, await batch(f));
      }
      await retireUnused();
      return total;
    },

    retireUnused,

    /** When the next pass may start, per field: for `keys status`. */
    async progress() {
      await ensureJobs();
      const jobs = (await db.query<JobRow>(`SELECT * FROM vault.rewrap_jobs ORDER BY field`)).rows;
      return jobs.filter((j) => fields.some((f) => fieldName(f) === j.field));
    },

    /** Rows per key version of every declared field, and legacy plaintext still waiting. */
    async rowsPerVersion(): Promise<
      { field: string; kind: KeyKind | 'plaintext'; purpose: string; version: number | null; rows: number }[]
    > {
      const out: {
        field: string;
        kind: KeyKind | 'plaintext';
        purpose: string;
        version: number | null;
        rows: number;
      }[] = [];
      for (const f of fields) {
        const ct = await db.query<{ v: string; n: number }>(
          `SELECT split_part(${q(f.column)}, '.', 3) AS v, count(*)::int AS n FROM ${q(f.table)} WHERE ${q(f.column)} IS NOT NULL GROUP BY 1 ORDER BY 1`,
        );
        for (const r of ct.rows)
          out.push({ field: fieldName(f), kind: 'aead', purpose: f.purpose, version: Number(r.v) || null, rows: r.n });
        if (f.blindIndex) {
          const bx = await db.query<{ v: string; n: number }>(
            `SELECT split_part(substr(${q(f.blindIndex.column)}, 2), '.', 1) AS v, count(*)::int AS n FROM ${q(f.table)} WHERE ${q(f.blindIndex.column)} IS NOT NULL GROUP BY 1 ORDER BY 1`,
          );
          for (const r of bx.rows)
            out.push({
              field: `${f.table}.${f.blindIndex.column}`,
              kind: 'hmac',
              purpose: indexPurpose(f),
              version: Number(r.v) || null,
              rows: r.n,
            });
        }
        if (f.legacyPlaintextColumn) {
          const lg = await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${q(f.table)} WHERE ${q(f.legacyPlaintextColumn)} IS NOT NULL`,
          );
          if (lg.rows[0].n > 0)
            out.push({
              field: `${f.table}.${f.legacyPlaintextColumn}`,
              kind: 'plaintext',
              purpose: f.purpose,
              version: null,
              rows: lg.rows[0].n,
            });
        }
      }
      return out;
    },
  };
}

export type RewrapJob = ReturnType<typeof createRewrapJob>;
