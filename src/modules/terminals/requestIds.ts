import type { Queryable } from '../../platform/db.ts';
import * as repo from './terminals.repo.ts';

// Claims and stored responses of state-changing requests' ids (terminals.requests), written in
// batches. Every request that changes state costs two writes here, a claim before the work and
// its response after; one statement per write would be two round trips, two pool checkouts and
// two socket writes per payment. Instead, what arrives while a statement is running waits for it
// and then goes in the next one, claims and responses together: at low load each write still
// goes out at once (after the current turn of the event loop), alone; under load one statement
// carries many.
//
// Nothing about a single request changes: its claim is one row inserted (or not) by one
// statement, its response is stored before it is published, and a statement that fails fails
// every write in it (each caller sees the error, as if it had run alone), after which each write
// is tried again alone once, so one bad row cannot take its neighbours down.

/** Writes in one statement at most (the arrays are parameters, so this only bounds its size). */
const MAX_BATCH = 256;

interface Pending<T, R> {
  item: T;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export interface RequestIdStore {
  /** True when this call claimed the id (a new row); false when a row for it was already there. */
  claim(c: repo.RequestClaim): Promise<boolean>;
  /** Stores the response of a claimed request (state completed). */
  complete(c: repo.RequestCompletion): Promise<void>;
  /** Statements run so far, and writes they carried (metrics and tests). */
  stats(): { statements: number; claims: number; completions: number };
}

const keyOf = (terminalId: string, requestId: string) => `${terminalId}\n${requestId}`;

export function createRequestIdStore(q: Queryable, claimSeconds: number): RequestIdStore {
  let claims: Pending<repo.RequestClaim, boolean>[] = [];
  const completions: Pending<repo.RequestCompletion, void>[] = [];
  let running = false;
  const stats = { statements: 0, claims: 0, completions: 0 };

  async function write(
    cs: Pending<repo.RequestClaim, boolean>[],
    ds: Pending<repo.RequestCompletion, void>[],
  ): Promise<void> {
    stats.statements++;
    stats.claims += cs.length;
    stats.completions += ds.length;
    const won = await repo.claimAndCompleteRequests(
      q,
      cs.map((c) => c.item),
      ds.map((d) => d.item),
      claimSeconds,
    );
    for (const c of cs) c.resolve(won.has(keyOf(c.item.terminalId, c.item.requestId)));
    for (const d of ds) d.resolve();
  }

  async function flush(): Promise<void> {
    try {
      while (claims.length > 0 || completions.length > 0) {
        // The same id twice in one batch (a duplicate that arrived at the same moment): the
        // second waits for the next statement, where it finds the first one's row.
        const seen = new Set<string>();
        const cs: Pending<repo.RequestClaim, boolean>[] = [];
        const later: Pending<repo.RequestClaim, boolean>[] = [];
        for (const c of claims) {
          const k = keyOf(c.item.terminalId, c.item.requestId);
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
  }

  function kick() {
    if (running) return;
    running = true;
    // Writes asked for in the same turn of the event loop (several messages read off one socket)
    // go out together.
    setImmediate(() => void flush());
  }

  return {
    claim(item) {
      return new Promise<boolean>((resolve, reject) => {
        claims.push({ item, resolve, reject });
        kick();
      });
    },
    complete(item) {
      return new Promise<void>((resolve, reject) => {
        completions.push({ item, resolve, reject });
        kick();
      });
    },
    stats: () => ({ ...stats }),
  };
}
