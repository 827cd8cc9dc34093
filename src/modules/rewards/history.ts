import { v7 as uuidv7 } from 'uuid';
import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { LedgerService } from '../ledger/index.ts';
import { rewardsId } from './ids.ts';
import { accounts, expiryFor, PTS } from './points.ts';
import * as repo from './rewards.repo.ts';
import type { ProgramRow } from './rewards.repo.ts';
import * as hrepo from './history.repo.ts';

// Points history from a legacy system (the onboarding import of payment history): what each
// historical payment earned and redeemed, as the legacy system recorded it, written as the
// points engine would have written it then. An earn is an available lot (source 'history', its
// expiry the program's validity from the payment's time), an earning and an "earn" statement
// line; a redemption is a committed redemption that consumed the customer's lots oldest first,
// with its "redeem" line. Double-entry in the PTS book: program_issued against
// customer_available (earned), customer_available against program_redeemed (redeemed), so
// `rewards verify` and `ledger verify` hold. Lots that have since passed their expiry are
// expired by the rewards worker as any other lot. Refunds of historical payments move no points:
// the legacy figures are the payment's final ones.

/** Lines per ledger entry: the ledger takes at most 100, one of them the program's side. */
const CUSTOMERS_PER_ENTRY = 99;

export interface HistoricalPoints {
  program: ProgramRow;
  /** HMAC of the customer's canonical VPA or phone (customers.ts); never the raw value. */
  customerHash: Buffer;
  paymentId: string;
  merchantId: string;
  amountPaise: number;
  at: Date;
  earned: number;
  redeemed: number;
}

/** Per item: written, or why not (the customer did not have the points then). */
export type HistoryOutcome = { ok: true } | { ok: false; field: string; problem: string };

const idAt = (prefix: string, at: Date) => `${prefix}_${uuidv7({ msecs: at.getTime() }).replaceAll('-', '')}`;

/**
 * Writes the points of a batch of historical payments inside the caller's transaction, oldest
 * first. `reference` names the batch in the ledger (unique per batch).
 */
export async function postHistoricalPoints(
  deps: { ledger: Pick<LedgerService, 'post'> },
  tx: Queryable,
  items: HistoricalPoints[],
  opts: { reference: string; now: Date },
): Promise<HistoryOutcome[]> {
  const out: HistoryOutcome[] = items.map(() => ({ ok: true }));
  const todo = items.map((it, i) => ({ it, i })).filter(({ it }) => it.earned > 0 || it.redeemed > 0);
  if (todo.length === 0) return out;
  for (const { it } of todo) {
    if (![it.earned, it.redeemed].every((n) => Number.isSafeInteger(n) && n >= 0))
      throw new AppError('invalid_amount', 'historical points must be whole numbers');
    if (it.at > opts.now) throw new AppError('validation_failed', 'historical points cannot be in the future');
  }
  const key = (programId: string, hash: Buffer) => `${programId}:${hash.toString('hex')}`;
  const wanted = new Map<string, { id: string; program_id: string; hash: Buffer }>();
  for (const { it } of todo) {
    const k = key(it.program.id, it.customerHash);
    if (!wanted.has(k)) wanted.set(k, { id: rewardsId('customer'), program_id: it.program.id, hash: it.customerHash });
  }
  const customers = new Map(
    (await repo.lockOrCreateCustomersBatch(tx, [...wanted.values()], opts.now)).map((c) => [
      key(c.program_id, c.customer_hash),
      c,
    ]),
  );
  const lotsByCustomer = new Map<string, hrepo.OpenLot[]>();
  for (const l of await hrepo.openLots(
    tx,
    [...customers.values()].map((c) => c.id),
  )) {
    const list = lotsByCustomer.get(l.customer_id) ?? [];
    list.push({ ...l, remaining: Number(l.remaining) });
    lotsByCustomer.set(l.customer_id, list);
  }
  const existingTouched = new Map<string, hrepo.OpenLot>();
  const w: hrepo.HistoryWrite = { lots: [], earnings: [], redemptions: [], consumptions: [], movements: [] };
  const newLots = new Map<string, hrepo.HistoryWrite['lots'][number]>();
  const debtChanged = new Set<string>();
  // Per program and customer: points earned and redeemed, for the ledger.
  const sums = new Map<string, { program: ProgramRow; earned: Map<string, number>; redeemed: Map<string, number> }>();
  const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);

  todo.sort((a, b) => a.it.at.getTime() - b.it.at.getTime() || a.i - b.i);
  for (const { it, i } of todo) {
    const c = customers.get(key(it.program.id, it.customerHash))!;
    const lots = lotsByCustomer.get(c.id) ?? [];
    // The redemption first: points spent at the till come out of what the customer held before this payment.
    if (it.redeemed > 0) {
      const spendable = lots.filter(
        (l) => l.remaining > 0 && l.available_at <= it.at && (l.expires_at === null || l.expires_at > it.at),
      );
      const had = spendable.reduce((s, l) => s + l.remaining, 0) - c.debt;
      if (had < it.redeemed) {
        out[i] = {
          ok: false,
          field: 'points_redeemed',
          problem: `the customer had ${Math.max(0, had)} points at that time in Tillpoint's history`,
        };
        continue; // a row is all or nothing: nothing of it is written
      }
      const redemptionId = idAt('rdm', it.at);
      let left = it.redeemed;
      for (const l of spendable) {
        if (left === 0) break;
        const take = Math.min(l.remaining, left);
        l.remaining -= take;
        left -= take;
        w.consumptions.push({ redemption_id: redemptionId, lot_id: l.id, points: take });
        const fresh = newLots.get(l.id);
        if (fresh) fresh.remaining = l.remaining;
        else existingTouched.set(l.id, l);
      }
      w.redemptions.push({
        id: redemptionId,
        payment_id: it.paymentId,
        program_id: it.program.id,
        customer_id: c.id,
        merchant_id: it.merchantId,
        points: it.redeemed,
        value_paise: it.redeemed * it.program.point_value_paise,
        at: it.at,
      });
      w.movements.push({
        id: idAt('mov', it.at),
        program_id: it.program.id,
        customer_id: c.id,
        kind: 'redeem',
        available_delta: -it.redeemed,
        payment_id: it.paymentId,
        reference: redemptionId,
        detail: 'redeemed (history before the move to Tillpoint)',
        at: it.at,
      });
    }
    if (it.earned > 0) {
      // Points entering the available bucket repay debt first, as for every credit (points.ts).
      const repaid = Math.min(c.debt, it.earned);
      if (repaid > 0) {
        c.debt -= repaid;
        debtChanged.add(c.id);
      }
      const lotId = idAt('lot', it.at);
      const lot = {
        id: lotId,
        program_id: it.program.id,
        customer_id: c.id,
        source_id: it.paymentId,
        points: it.earned,
        remaining: it.earned - repaid,
        at: it.at,
        expires_at: expiryFor(it.program, it.at),
      };
      w.lots.push(lot);
      newLots.set(lotId, lot);
      lots.push({
        id: lotId,
        customer_id: c.id,
        remaining: lot.remaining,
        available_at: it.at,
        expires_at: lot.expires_at,
      });
      lotsByCustomer.set(c.id, lots);
      w.earnings.push({
        payment_id: it.paymentId,
        program_id: it.program.id,
        customer_id: c.id,
        merchant_id: it.merchantId,
        lot_id: lotId,
        amount: it.amountPaise,
        points: it.earned,
        at: it.at,
      });
      w.movements.push({
        id: idAt('mov', new Date(it.at.getTime() + 1)),
        program_id: it.program.id,
        customer_id: c.id,
        kind: 'earn',
        available_delta: it.earned,
        payment_id: it.paymentId,
        reference: lotId,
        detail: 'earned (history before the move to Tillpoint)',
        at: it.at,
      });
    }
    let s = sums.get(it.program.id);
    if (!s) sums.set(it.program.id, (s = { program: it.program, earned: new Map(), redeemed: new Map() }));
    if (it.earned > 0) add(s.earned, c.id, it.earned);
    if (it.redeemed > 0) add(s.redeemed, c.id, it.redeemed);
  }
  for (const c of customers.values()) if (debtChanged.has(c.id)) await repo.setCustomerCounters(tx, c);
  await hrepo.setLotsRemaining(tx, [...existingTouched.values()]);
  await hrepo.insertHistory(tx, w);

  // The ledger: per program, the earned entries first, then the redeemed ones (a customer's
  // available account never dips below zero between them: every redemption was checked above
  // against points held at its time).
  for (const { program, earned, redeemed } of sums.values()) {
    for (const [kind, byCustomer] of [
      ['rewards.history.earned', earned],
      ['rewards.history.redeemed', redeemed],
    ] as const) {
      const entries = [...byCustomer.entries()];
      for (let n = 0; n < entries.length; n += CUSTOMERS_PER_ENTRY) {
        const chunk = entries.slice(n, n + CUSTOMERS_PER_ENTRY);
        const total = chunk.reduce((t, [, p]) => t + p, 0);
        const customerLines = chunk.map(([cid, p]) =>
          kind === 'rewards.history.earned'
            ? { account: accounts.available(program, cid), credit: p }
            : { account: accounts.available(program, cid), debit: p },
        );
        await deps.ledger.post(tx, {
          book: PTS,
          kind,
          reference: `${opts.reference}:${program.id}:${n / CUSTOMERS_PER_ENTRY}`,
          lines:
            kind === 'rewards.history.earned'
              ? [{ account: accounts.issued(program.id), debit: total }, ...customerLines]
              : [...customerLines, { account: accounts.redeemed(program.id), credit: total }],
        });
      }
    }
  }
  return out;
}
