import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Db, Queryable } from '../../../platform/db.ts';
import type { Clock } from '../../../platform/clock.ts';
import { AppError } from '../../../platform/errors.ts';
import { page } from '../../../http/pagination.ts';
import type { LedgerService } from '../../ledger/index.ts';
import { DAY_MS } from '../calendar.ts';
import { newSettlementId } from '../ids.ts';
import { clearingAccount, merchantPayableAccount } from '../reversals/reversals.service.ts';
import type { CycleWindow } from '../cycles/cycleKeys.ts';
import { BULK_TRANSFER_FORMATS, renderBatch, type PayoutLine } from './formats.ts';
import * as repo from './payouts.repo.ts';
import type { MerchantTerms, PayoutRow } from './payouts.repo.ts';

// Payouts to merchants: per merchant and cycle, the net owed (payments − refunds − reversals
// charged to the merchant − fees, plus what earlier payouts left behind, less a disputed amount
// held back), on the merchant's schedule (T+0 or T+1), held while the merchant is under review.
// Ledger, per step:
//   fee        merchant_payable:<m>   → fee_revenue              (at the cycle's close)
//   sent       merchant_payable:<m>   → payout_in_transit:<m>    (in the batch file)
//   paid       payout_in_transit:<m>  → bank_clearing:<bank>     (the bank confirmed the transfer)
//   returned   payout_in_transit:<m>  → merchant_payable:<m>     (the bank sent it back; carried forward)

export const payoutInTransitAccount = (merchantId: string) =>
  ({ code: `payout_in_transit:${merchantId}`, type: 'liability' }) as const;
export const FEE_REVENUE = { code: 'fee_revenue', type: 'revenue' } as const;

/** Where the merchant's settlement account comes from: the merchants module, which decrypts and audits the read. */
export interface SettlementAccounts {
  getSettlementAccount(merchantId: string, reason: string): Promise<{ account_number: string; ifsc: string } | null>;
}

export interface PayoutsDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  clock: Clock;
  logger: Logger;
  accounts: SettlementAccounts;
  /** The bulk-transfer mapping batches are written in (formats.ts). */
  fileFormat?: string;
}

/** The fee on a cycle's payments: basis points (rounded down, in the merchant's favour) plus a fixed fee per payment. */
export function feeFor(t: Pick<MerchantTerms, 'fee_bps' | 'fee_fixed_paise'>, paymentsPaise: number, count: number) {
  return Math.floor((paymentsPaise * t.fee_bps) / 10_000) + t.fee_fixed_paise * count;
}

export function payoutView(p: PayoutRow) {
  return {
    id: p.id,
    merchant_id: p.merchant_id,
    cycle_key: p.cycle_key,
    bank_code: p.bank_code,
    payments: p.payments_paise,
    payments_count: p.payments_count,
    refunds: p.refunds_paise,
    reversals: p.reversals_paise,
    fees: p.fees_paise,
    carried: p.carried_paise,
    held: p.held_paise,
    net: p.net_paise,
    status: p.status,
    due_at: p.due_at.toISOString(),
    batch_id: p.batch_id,
    bank_ref: p.bank_ref,
    return_reason: p.return_reason,
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
  };
}
export type PayoutView = ReturnType<typeof payoutView>;

export function termsView(t: MerchantTerms) {
  return {
    merchant_id: t.merchant_id,
    schedule: t.schedule,
    fee_bps: t.fee_bps,
    fee_fixed_paise: t.fee_fixed_paise,
    under_review: t.under_review,
    review_reason: t.review_reason,
    disputed_hold: t.disputed_hold,
    updated_at: t.updated_at ? t.updated_at.toISOString() : null,
  };
}

export function createPayoutsService(deps: PayoutsDeps) {
  const { db, ledger, clock, logger, accounts } = deps;
  const formatName = deps.fileFormat ?? 'generic_neft_csv';
  const format = BULK_TRANSFER_FORMATS[formatName];
  if (!format) throw new AppError('validation_failed', `Unknown payout file format "${formatName}"`);

  return {
    /**
     * The payouts of a cycle, in the transaction that closes it (cycles.service.ts): one per
     * merchant with activity in the window or a remainder to bring forward. Returns how many.
     */
    async createForCycle(tx: Queryable, w: CycleWindow, now: Date): Promise<number> {
      const activity = await repo.activityInWindow(tx, w.startsAt, w.endsAt);
      const carries = await repo.carriesToBringForward(tx);
      const ids = [...new Set([...activity.map((a) => a.merchant_id), ...carries.map((c) => c.merchant_id)])].sort();
      const terms = await repo.termsFor(tx, ids);
      let n = 0;
      for (const merchantId of ids) {
        const a = activity.find((x) => x.merchant_id === merchantId);
        const mine = carries.filter((c) => c.merchant_id === merchantId);
        const t = terms.get(merchantId)!;
        const payments = a?.payments_paise ?? 0;
        const count = a?.payments_count ?? 0;
        const fees = feeFor(t, payments, count);
        const carried = mine.reduce((s, c) => s + c.amount, 0);
        const beforeHold = payments - (a?.refunds_paise ?? 0) - (a?.reversals_paise ?? 0) - fees + carried;
        const held = Math.min(t.disputed_hold, Math.max(0, beforeHold));
        const net = beforeHold - held;
        const id = newSettlementId('payout');
        const row = await repo.insertPayout(tx, {
          id,
          merchant_id: merchantId,
          cycle_key: w.key,
          bank_code: a?.bank_code ?? mine[0].bank_code,
          payments_paise: payments,
          payments_count: count,
          refunds_paise: a?.refunds_paise ?? 0,
          reversals_paise: a?.reversals_paise ?? 0,
          fees_paise: fees,
          carried_paise: carried,
          held_paise: held,
          net_paise: net,
          status: net <= 0 ? 'nothing_due' : t.under_review ? 'held' : 'scheduled',
          due_at: new Date(w.endsAt.getTime() + (t.schedule === 'T+1' ? DAY_MS : 0)),
          created_at: now,
        });
        if (!row) continue; // this cycle's payout exists already
        await repo.markCarried(
          tx,
          mine.map((c) => c.id),
          row.id,
        );
        if (fees > 0)
          await ledger.post(tx, {
            kind: 'payout.fee',
            reference: row.id,
            lines: [
              { account: merchantPayableAccount(merchantId), debit: fees },
              { account: FEE_REVENUE, credit: fees },
            ],
          });
        n++;
      }
      return n;
    },

    /**
     * Writes the due payouts into one bulk-transfer batch and marks them sent (ledger:
     * merchant_payable → payout_in_transit), all in one transaction: a batch exists exactly when
     * its payouts are sent. A payout whose merchant has no settlement account on file stays
     * scheduled and is reported. `onProgress` is told as accounts are read.
     */
    async exportDue(opts: { limit?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<{
      batch: { id: string; file_name: string; payouts: number; total: number; sha256: string; format: string } | null;
      content: string | null;
      skipped: { payout_id: string; merchant_id: string; reason: string }[];
    }> {
      const now = clock.now();
      const candidates = await repo.dueCandidates(db, now, opts.limit ?? 1000);
      const skipped: { payout_id: string; merchant_id: string; reason: string }[] = [];
      // Accounts are decrypted (and the read audited) before the transaction: no key service call inside it.
      const found = new Map<string, { account_number: string; ifsc: string }>();
      let done = 0;
      for (const merchantId of [...new Set(candidates.map((c) => c.merchant_id))]) {
        const acc = await accounts.getSettlementAccount(merchantId, 'payout batch');
        if (acc) found.set(merchantId, acc);
        done++;
        opts.onProgress?.(done, new Set(candidates.map((c) => c.merchant_id)).size);
      }
      for (const c of candidates)
        if (!found.has(c.merchant_id))
          skipped.push({ payout_id: c.id, merchant_id: c.merchant_id, reason: 'no settlement account on file' });
      const eligible = candidates.filter((c) => found.has(c.merchant_id)).map((c) => c.id);
      if (eligible.length === 0) return { batch: null, content: null, skipped };
      const names = await repo.merchantNames(db, [...found.keys()]);
      const result = await db.tx(async (tx) => {
        const claimed = await repo.claimDue(tx, now, eligible.length, eligible);
        if (claimed.length === 0) return null;
        const batchId = newSettlementId('payoutBatch');
        const lines: PayoutLine[] = claimed.map((p) => ({
          payoutId: p.id,
          merchantId: p.merchant_id,
          beneficiaryName: names.get(p.merchant_id) ?? p.merchant_id,
          account: found.get(p.merchant_id)!.account_number,
          ifsc: found.get(p.merchant_id)!.ifsc,
          amountPaise: p.net_paise,
          valueDate: now,
          narration: `Settlement ${p.cycle_key}`,
        }));
        const content = renderBatch(format, lines);
        const sha256 = createHash('sha256').update(content).digest('hex');
        const total = claimed.reduce((s, p) => s + p.net_paise, 0);
        const fileName = `payouts-${batchId}.csv`;
        await repo.insertBatch(tx, {
          id: batchId,
          format: format.name,
          payouts: claimed.length,
          total,
          sha256,
          fileName,
          now,
        });
        for (const p of claimed) {
          const sent = await repo.setStatus(tx, p.id, 'scheduled', 'sent', { batchId, now });
          if (!sent) throw new AppError('conflict', `Payout ${p.id} changed while it was being sent`);
          await ledger.post(tx, {
            kind: 'payout.sent',
            reference: p.id,
            lines: [
              { account: merchantPayableAccount(p.merchant_id), debit: p.net_paise },
              { account: payoutInTransitAccount(p.merchant_id), credit: p.net_paise },
            ],
          });
        }
        return {
          batch: { id: batchId, file_name: fileName, payouts: claimed.length, total, sha256, format: format.name },
          content,
        };
      });
      if (result) logger.info({ batch_id: result.batch.id, payouts: result.batch.payouts }, 'payout batch written');
      return { batch: result?.batch ?? null, content: result?.content ?? null, skipped };
    },

    /** The bank confirmed the transfer. */
    async markPaid(id: string, bankRef: string): Promise<PayoutView> {
      return db.tx(async (tx) => {
        const p = await mustGet(tx, id);
        const next = await repo.setStatus(tx, p.id, 'sent', 'paid', { bankRef, now: clock.now() });
        if (!next) throw new AppError('invalid_state_transition', `A ${p.status} payout cannot become paid`);
        await ledger.post(tx, {
          kind: 'payout.paid',
          reference: p.id,
          lines: [
            { account: payoutInTransitAccount(p.merchant_id), debit: p.net_paise },
            { account: clearingAccount(p.bank_code), credit: p.net_paise },
          ],
        });
        return payoutView(next);
      });
    },

    /** The bank returned the transfer (closed account, wrong IFSC): the money is owed again and brought forward. */
    async markReturned(id: string, reason: string): Promise<PayoutView> {
      return db.tx(async (tx) => {
        const p = await mustGet(tx, id);
        const next = await repo.setStatus(tx, p.id, 'sent', 'returned', { returnReason: reason, now: clock.now() });
        if (!next) throw new AppError('invalid_state_transition', `A ${p.status} payout cannot be returned`);
        await ledger.post(tx, {
          kind: 'payout.returned',
          reference: p.id,
          lines: [
            { account: payoutInTransitAccount(p.merchant_id), debit: p.net_paise },
            { account: merchantPayableAccount(p.merchant_id), credit: p.net_paise },
          ],
        });
        return payoutView(next);
      });
    },

    async getTerms(merchantId: string) {
      return termsView((await repo.termsFor(db, [merchantId])).get(merchantId)!);
    },

    /** Changes a merchant's terms; starting or ending a review holds or releases its unsent payouts. */
    async setTerms(merchantId: string, patch: Partial<Omit<MerchantTerms, 'merchant_id' | 'updated_at'>>) {
      return db.tx(async (tx) => {
        const cur = (await repo.termsFor(tx, [merchantId])).get(merchantId)!;
        const next = { ...cur, ...patch, merchant_id: merchantId };
        if (!next.under_review) next.review_reason = null;
        const now = clock.now();
        const saved = await repo.upsertTerms(tx, next, now);
        if (cur.under_review !== next.under_review) await repo.setReviewHold(tx, merchantId, next.under_review, now);
        return termsView({ ...saved, disputed_hold: Number(saved.disputed_hold) });
      });
    },

    async get(id: string) {
      return payoutView(await mustGet(db, id));
    },

    async list(f: Parameters<typeof repo.listPayouts>[1]) {
      const pg = page(await repo.listPayouts(db, f), f.limit);
      return { data: pg.data.map(payoutView), next_cursor: pg.next_cursor };
    },

    /** The batch file again (the same bytes: checked against the digest taken when it was written). */
    async batchFile(batchId: string): Promise<{ file_name: string; content: string }> {
      const b = await repo.getBatch(db, batchId);
      if (!b) throw new AppError('not_found', 'Payout batch not found');
      const f = BULK_TRANSFER_FORMATS[b.format];
      const rows = await repo.batchPayouts(db, batchId);
      const names = await repo.merchantNames(db, [...new Set(rows.map((r) => r.merchant_id))]);
      const lines: PayoutLine[] = [];
      for (const p of rows) {
        const acc = await accounts.getSettlementAccount(p.merchant_id, 'payout batch reprint');
        if (!acc)
          throw new AppError('conflict', `Merchant ${p.merchant_id} has no settlement account on file any more`);
        lines.push({
          payoutId: p.id,
          merchantId: p.merchant_id,
          beneficiaryName: names.get(p.merchant_id) ?? p.merchant_id,
          account: acc.account_number,
          ifsc: acc.ifsc,
          amountPaise: p.net_paise,
          valueDate: b.created_at,
          narration: `Settlement ${p.cycle_key}`,
        });
      }
      const content = renderBatch(f, lines);
      if (createHash('sha256').update(content).digest('hex') !== b.sha256)
        throw new AppError(
          'conflict',
          'The batch no longer renders to the file that was sent (an account changed since)',
        );
      return { file_name: b.file_name, content };
    },
  };

  async function mustGet(q: Queryable, id: string) {
    const p = await repo.getPayout(q, id);
    if (!p) throw new AppError('not_found', 'Payout not found');
    return p;
  }
}

export type PayoutsService = ReturnType<typeof createPayoutsService>;
