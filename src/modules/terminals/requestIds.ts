import type { Queryable } from '../../platform/db.ts';
import { createRequestLedger, type RequestLedger } from '../../platform/requestLedger.ts';
import { REQUESTS_TABLE } from './terminals.repo.ts';

// The terminal protocol's request ids in the request ledger (platform/requestLedger.ts): scope
// the terminal, key the request id, the request type as the row's label, in terminals.requests.
//
// Written in batches. Every request that changes state costs two writes here, a claim before the
// work and its response after; one statement per write would be two round trips, two pool
// checkouts and two socket writes per payment. Instead, what arrives while a statement is running
// waits for it and then goes in the next one, claims and responses together: at low load each
// write still goes out at once (after the current turn of the event loop), alone; under load one
// statement carries many. Each write keeps its own outcome (the ledger's batched writer).

/** The ledger of terminal request ids, batched. */
export function createTerminalRequestLedger(q: Queryable, claimSeconds: number): RequestLedger {
  return createRequestLedger(q, REQUESTS_TABLE, { claimSeconds, batch: true });
}

export interface RequestClaim {
  terminalId: string;
  requestId: string;
  type: string;
  hash: string;
}

export interface RequestCompletion {
  terminalId: string;
  requestId: string;
  response: string;
}

/** The same ledger's writes in the protocol's terms (terminal id, request id, type). */
export interface RequestIdStore {
  /** True when this call claimed the id (a new row); false when a row for it was already there. */
  claim(c: RequestClaim): Promise<boolean>;
  /** Stores the response of a claimed request (state completed). */
  complete(c: RequestCompletion): Promise<void>;
  /** Statements run so far, and writes they carried (metrics and tests). */
  stats(): { statements: number; claims: number; completions: number };
  ledger: RequestLedger;
}

export function createRequestIdStore(q: Queryable, claimSeconds: number): RequestIdStore {
  const ledger = createTerminalRequestLedger(q, claimSeconds);
  return {
    claim: (c) => ledger.claim({ scope: c.terminalId, key: c.requestId, hash: c.hash, label: c.type }),
    complete: (c) => ledger.complete({ scope: c.terminalId, key: c.requestId, response: c.response }),
    stats: () => ledger.stats(),
    ledger,
  };
}
