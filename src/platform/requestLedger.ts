import { sleep } from './clock.ts';
import type { Queryable } from './db.ts';
import {
  type LedgerClaim,
  type LedgerCompletion,
  type LedgerRow,
  type LedgerTable,
  ledgerKey,
  ledgerStatements,
} from './requestLedger.repo.ts';

// The request ledger: a request that changes state runs once per key, whatever the transport.
// HTTP's Idempotency-Key (scope: the principal) and the terminal protocol's request id (scope:
// the terminal) both go through it:
//
//   begin     claims the key (one INSERT only one concurrent request can win). If the key is
//             taken: another request under it (another digest) is a conflict; a stored response
//             is replayed; a claim whose holder died (past claimSeconds) is taken over (one
//             UPDATE only one taker wins); a claim still held is waited for up to waitMs, then
//             reported in progress.
//   complete  stores the response; every later begin with the same key and digest replays it.
//   release   gives a claim up (the work failed in a way worth retrying): the next one runs it.
//
// Each transport decides what it hashes, what it stores and what a conflict or an in-progress key
// answers; the protocol is here once.
//
// The writes can be batched (the terminal gateway's choice, for throughput: see
// src/modules/terminals/README.md): claims and completions asked for while a statement runs go
// out together in the next one, each keeping its own outcome. Nothing about a single request
// changes: its claim is one row inserted (or not) by one statement, its response is stored before
// begin/complete return, and a statement that fails fails every write in it (each caller sees the
// error, as if it had run alone), after which each write is tried again alone once, so one bad row
// cannot take its neighbours down. HTTP writes one statement per write (one request per key and
// caller at a time; nothing to batch).
//
// Two tables, one mechanism: HTTP keys stay in platform.idempotency_keys and terminal request ids
// in terminals.requests (requestLedger.repo.ts builds the same statements for both). One table
// would need a migration moving live rows, would mix the terminals module's data (the exact MQTT
// payloads, its own retention, TERMINAL_REQUEST_RETENTION_HOURS) into a platform table, and would
// buy nothing: the protocol, not the storage, was what was written twice.

/** Writes in one statement at most (the arrays are parameters, so this only bounds its size). */
const MAX_BATCH = 256;
/** How often a request waiting for a claim held elsewhere looks again. */
const POLL_MS = 25;

export type LedgerBegin =
  /** This request holds the key: run it, then complete() or release(). */
  | { outcome: 'claimed' }
  /** The key's request finished before: its stored response (status when the table keeps one). */
  | { outcome: 'replay'; status: number | null; response: string | null }
  /** The key was used for a different request (another digest). */
  | { outcome: 'conflict' }
  /** Another holder is still running it (after waiting waitMs). */
  | { outcome: 'in_progress' };

export interface RequestLedgerOptions {
  /** A holder's claim lapses after this; a retry may then take it over. */
  claimSeconds: number;
  /** Batch the writes (claims and completions) of concurrent requests into shared statements. */
  batch?: boolean;
}

export interface RequestLedger {
  /** Claims `key` for this request (digest `hash`), or says what the key already holds. */
  begin(r: LedgerClaim, opts?: { waitMs?: number }): Promise<LedgerBegin>;
  /** Stores the claimed request's response (state completed). */
  complete(c: LedgerCompletion): Promise<void>;
  /** Gives a claim up so that a retry runs the request; a stored response is never released. */
  release(scope: string, key: string): Promise<void>;
  /** One claim write, no questions asked: true when this call inserted the row. */
  claim(c: LedgerClaim): Promise<boolean>;
  get(scope: string, key: string): Promise<LedgerRow | undefined>;
  /** Deletes rows older than this (retention). Returns how many. */
  prune(olderThanHours: number): Promise<number>;
  /** Statements written so far and the claims and completions they carried (metrics and tests). */
  stats(): { statements: number; claims: number; completions: number };
}

interface Pending<T, R> {
  item: T;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export function createRequestLedger(q: Queryable, table: LedgerTable, opts: RequestLedgerOptions): RequestLedger {
  const sql = ledgerStatements(table);
  const { claimSeconds } = opts;
  const stats = { statements: 0, claims: 0, completions: 0 };

  let claimWrite: (c: LedgerClaim) => Promise<boolean>;
  let completeWrite: (c: LedgerCompletion) => Promise<void>;

  if (!opts.batch) {
    claimWrite = (c) => {
      stats.statements++;
      stats.claims++;
      return sql.claim(q, c, claimSeconds);
    };
    completeWrite = (d) => {
      stats.statements++;
      stats.completions++;
      return sql.complete(q, d);
    };
  } else {
    let claims: Pending<LedgerClaim, boolean>[] = [];
    const completions: Pending<LedgerCompletion, void>[] = [];
    let running = false;

    const write = async (cs: Pending<LedgerClaim, boolean>[], ds: Pending<LedgerCompletion, void>[]) => {
      stats.statements++;
      stats.claims += cs.length;
      stats.completions += ds.length;
      const won = await sql.claimAndComplete(
        q,
        cs.map((c) => c.item),
        ds.map((d) => d.item),
        claimSeconds,
      );
      for (const c of cs) c.resolve(won.has(ledgerKey(c.item.scope, c.item.key)));
      for (const d of ds) d.resolve();
    };

    const flush = async () => {
      try {
        while (claims.length > 0 || completions.length > 0) {
          // The same key twice in one batch (a duplicate that arrived at the same moment): the
          // second waits for the next statement, where it finds the first one's row.
          const seen = new Set<string>();
          const cs: Pending<LedgerClaim, boolean>[] = [];
          const later: Pending<LedgerClaim, boolean>[] = [];
          for (const c of claims) {
            const k = ledgerKey(c.item.scope, c.item.key);
            if (seen.has(k) || cs.length >= MAX_BATCH) later.push(c);
            else {
              seen.add(k);
              cs.push(c);
            }
          }
          claims = later;
          const ds = completions.splice(0, MAX_BATCH);
          try {
            await write(cs, ds);
          } catch (e) {
            if (cs.length + ds.length === 1) {
              for (const c of cs) c.reject(e);
              for (const d of ds) d.reject(e);
              continue;
            }
            // One statement failed, so none of it happened: each write alone, once.
            await Promise.all([
              ...cs.map((c) => write([c], []).catch((err) => c.reject(err))),
              ...ds.map((d) => write([], [d]).catch((err) => d.reject(err))),
            ]);
          }
        }
      } finally {
        running = false;
      }
    };

    const kick = () => {
      if (running) return;
      running = true;
      // Writes asked for in the same turn of the event loop (several messages read off one
      // socket) go out together.
      setImmediate(() => void flush());
    };

    claimWrite = (item) =>
      new Promise<boolean>((resolve, reject) => {
        claims.push({ item, resolve, reject });
        kick();
      });
    completeWrite = (item) =>
      new Promise<void>((resolve, reject) => {
        completions.push({ item, resolve, reject });
        kick();
      });
  }

  return {
    async begin(r, { waitMs = 0 } = {}) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        if (await claimWrite(r)) return { outcome: 'claimed' };
        const row = await sql.get(q, r.scope, r.key);
        if (!row) continue; // released by a failed holder between the two statements: claim again
        if (row.request_hash !== r.hash) return { outcome: 'conflict' };
        if (row.state === 'completed') return { outcome: 'replay', status: row.status, response: row.response };
        if (row.claimable && (await sql.takeOver(q, r.scope, r.key, claimSeconds))) return { outcome: 'claimed' };
        if (Date.now() >= deadline) return { outcome: 'in_progress' };
        await sleep(POLL_MS);
      }
    },
    complete: (c) => completeWrite(c),
    release: (scope, key) => sql.release(q, scope, key),
    claim: (c) => claimWrite(c),
    get: (scope, key) => sql.get(q, scope, key),
    prune: (hours) => sql.prune(q, hours),
    stats: () => ({ ...stats }),
  };
}

/** Retention: deletes the table's rows older than this many hours. Returns how many. */
export function pruneRequestLedger(q: Queryable, table: LedgerTable, olderThanHours: number): Promise<number> {
  return ledgerStatements(table).prune(q, olderThanHours);
}

export type { LedgerClaim, LedgerCompletion, LedgerRow, LedgerTable } from './requestLedger.repo.ts';
export { IDEMPOTENCY_KEYS } from './requestLedger.repo.ts';
