import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { LedgerService } from '../ledger/index.ts';
import { rewardsId } from './ids.ts';
import { accounts, PTS } from './points.ts';
import * as repo from './rewards.repo.ts';
import type { NewMovement, ProgramRow } from './rewards.repo.ts';

// Opening balances brought in from another system (the onboarding import), many customers per
// transaction. Each balance becomes an available lot with its own expiry, an "opening_balance"
// statement line and, double-entry in the PTS book, program funding (program_issued, as for any
// points the program grants) against the customer's available account: the same movement as a
// credit adjustment, so every invariant of README.md holds after an import, checked by
// `tillpoint rewards verify` and `tillpoint ledger verify`.

/** Lines per ledger entry: the ledger takes at most 100, one of them the program's debit. */
const CUSTOMERS_PER_ENTRY = 99;

export interface OpeningBalance {
  program: ProgramRow;
  /** HMAC of the customer's canonical VPA or phone (customers.ts); never the raw value. */
  customerHash: Buffer;
  points: number;
  expiresAt: Date | null;
  /** "<merchant id>:<external ref>", kept on the lot (the reconciliation counts by merchant). */
  sourceId: string;
}

/**
 * Posts a batch of opening balances inside the caller's transaction. Returns each balance's lot
 * id, in input order. `reference` names the batch in the ledger (unique per batch).
 */
export async function postOpeningBalances(
  deps: { ledger: Pick<LedgerService, 'post'> },
  tx: Queryable,
  balances: OpeningBalance[],
  opts: { reference: string; now: Date },
): Promise<string[]> {
  if (balances.length === 0) return [];
  const { now } = opts;
  for (const b of balances) {
    if (!Number.isSafeInteger(b.points) || b.points <= 0)
      throw new AppError('invalid_amount', 'an opening balance must be a positive whole number of points');
    if (b.expiresAt && b.expiresAt <= now) throw new AppError('validation_failed', 'an opening balance has expired');
  }
  const key = (programId: string, hash: Buffer) => `${programId}:${hash.toString('hex')}`;
  const wanted = new Map<string, { id: string; program_id: string; hash: Buffer }>();
  for (const b of balances) {
    const k = key(b.program.id, b.customerHash);
    if (!wanted.has(k)) wanted.set(k, { id: rewardsId('customer'), program_id: b.program.id, hash: b.customerHash });
  }
  const customers = new Map(
    (await repo.lockOrCreateCustomersBatch(tx, [...wanted.values()], now)).map((c) => [
      key(c.program_id, c.customer_hash),
      c,
    ]),
  );

  const lots: Parameters<typeof repo.insertLotsBatch>[1] = [];
  const movements: NewMovement[] = [];
  const debtChanged = new Set<string>();
  for (const b of balances) {
    const c = customers.get(key(b.program.id, b.customerHash));
    if (!c) throw new Error('a customer row was not created'); // cannot happen: created above, in this transaction
    // Points entering the available bucket repay debt first, as for every credit (points.ts).
    const repaid = Math.min(c.debt, b.points);
    if (repaid > 0) {
      c.debt -= repaid;
      debtChanged.add(c.id);
    }
    const lotId = rewardsId('lot');
    lots.push({
      id: lotId,
      program_id: b.program.id,
      customer_id: c.id,
      source: 'import',
      source_id: b.sourceId,
      points: b.points,
      remaining: b.points - repaid,
      status: 'available',
      available_at: now,
      expires_at: b.expiresAt,
      created_at: now,
    });
    movements.push({
      id: rewardsId('movement'),
      program_id: b.program.id,
      customer_id: c.id,
      kind: 'opening_balance',
      available_delta: b.points,
      pending_delta: 0,
      payment_id: null,
      reference: lotId,
      detail: b.expiresAt ? `opening balance, expires ${b.expiresAt.toISOString().slice(0, 10)}` : 'opening balance',
    });
  }
  for (const c of customers.values()) if (debtChanged.has(c.id)) await repo.setCustomerCounters(tx, c);
  await repo.insertLotsBatch(tx, lots);
  await repo.insertMovements(tx, movements, now);

  // The ledger: per program, entries of up to 99 customers each (one credit per customer).
  const perProgram = new Map<string, { program: ProgramRow; byCustomer: Map<string, number> }>();
  balances.forEach((b, i) => {
    let g = perProgram.get(b.program.id);
    if (!g) perProgram.set(b.program.id, (g = { program: b.program, byCustomer: new Map() }));
    const cid = lots[i].customer_id;
    g.byCustomer.set(cid, (g.byCustomer.get(cid) ?? 0) + b.points);
  });
  for (const { program, byCustomer } of perProgram.values()) {
    const entries = [...byCustomer.entries()];
    for (let i = 0; i < entries.length; i += CUSTOMERS_PER_ENTRY) {
      const chunk = entries.slice(i, i + CUSTOMERS_PER_ENTRY);
      const total = chunk.reduce((s, [, n]) => s + n, 0);
      await deps.ledger.post(tx, {
        book: PTS,
        kind: 'rewards.opening_balance',
        reference: `${opts.reference}:${program.id}:${i / CUSTOMERS_PER_ENTRY}`,
        lines: [
          { account: accounts.issued(program.id), debit: total },
          ...chunk.map(([cid, n]) => ({ account: accounts.available(program, cid), credit: n })),
        ],
      });
    }
  }
  return lots.map((l) => l.id);
}

export {
  programsForMerchants,
  addMembersBatch,
  getProgram,
} from './rewards.repo.ts';
export type { ProgramRow } from './rewards.repo.ts';
