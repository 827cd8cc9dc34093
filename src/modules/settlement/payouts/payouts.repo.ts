import type { Queryable } from '../../../platform/db.ts';

// SQL for payouts and merchants' payout terms. A merchant's activity in a cycle is read from the
// payments schema (read only) and settlement's reversals; each state change is one
// compare-and-set on (id, status).

const PAID = `('succeeded', 'partially_refunded', 'refunded')`;

export interface MerchantActivity {
  merchant_id: string;
  bank_code: string;
  payments_paise: number;
  payments_count: number;
  refunds_paise: number;
  reversals_paise: number;
}

/**
 * Per merchant with anything in the window (start, end]: payments that succeeded, refunds that
 * succeeded, reversals charged to the merchant (booked against merchant_payable when requested).
 * bank_code: the bank the payout leaves from, the merchant's acquiring bank.
 */
export async function activityInWindow(q: Queryable, startsAt: Date, endsAt: Date): Promise<MerchantActivity[]> {
  const r = await q.query<MerchantActivity>(
    `WITH pay AS (
       SELECT merchant_id, sum(amount) AS paise, count(*) AS n, max(bank_code) AS bank FROM payments.payments
        WHERE status IN ${PAID} AND completed_at > $1 AND completed_at <= $2 GROUP BY merchant_id
     ), rfd AS (
       SELECT p.merchant_id, sum(f.amount) AS paise, max(p.bank_code) AS bank
         FROM payments.refunds f JOIN payments.payments p ON p.id = f.payment_id
        WHERE f.status = 'succeeded' AND f.completed_at > $1 AND f.completed_at <= $2 GROUP BY p.merchant_id
     ), rev AS (
       SELECT merchant_id, sum(amount) AS paise, max(bank_code) AS bank FROM settlement.reversals
        WHERE charge_merchant AND created_at > $1 AND created_at <= $2 GROUP BY merchant_id
     ), ids AS (SELECT merchant_id FROM pay UNION SELECT merchant_id FROM rfd UNION SELECT merchant_id FROM rev)
     SELECT ids.merchant_id,
            coalesce((SELECT m.acquiring_bank FROM merchants.merchants m WHERE m.id = ids.merchant_id), pay.bank, rfd.bank, rev.bank) AS bank_code,
            coalesce(pay.paise, 0)::bigint AS payments_paise, coalesce(pay.n, 0)::int AS payments_count,
            coalesce(rfd.paise, 0)::bigint AS refunds_paise, coalesce(rev.paise, 0)::bigint AS reversals_paise
       FROM ids LEFT JOIN pay USING (merchant_id) LEFT JOIN rfd USING (merchant_id) LEFT JOIN rev USING (merchant_id)
      ORDER BY ids.merchant_id`,
    [startsAt, endsAt],
  );
  return r.rows.map((x) => ({
    ...x,
    payments_paise: Number(x.payments_paise),
    refunds_paise: Number(x.refunds_paise),
    reversals_paise: Number(x.reversals_paise),
  }));
}

export interface CarryRow {
  id: string;
  merchant_id: string;
  bank_code: string;
  amount: number;
}

/**
 * What earlier payouts left behind, per merchant, not yet brought forward: the held (disputed)
 * part of every payout, and the whole of one that was short (nothing due) or returned by the bank.
 * Locked, so two closes cannot bring the same remainder forward twice.
 */
export async function carriesToBringForward(tx: Queryable): Promise<CarryRow[]> {
  const r = await tx.query<CarryRow>(
    `SELECT id, merchant_id, bank_code,
            (CASE WHEN status IN ('nothing_due', 'returned') THEN net_paise + held_paise ELSE held_paise END)::bigint AS amount
       FROM settlement.payouts
      WHERE carried_into IS NULL AND (held_paise > 0 OR status IN ('nothing_due', 'returned'))
      ORDER BY id FOR UPDATE`,
  );
  return r.rows.map((x) => ({ ...x, amount: Number(x.amount) }));
}

export async function markCarried(tx: Queryable, ids: string[], into: string) {
  if (ids.length === 0) return;
  await tx.query(`UPDATE settlement.payouts SET carried_into = $2 WHERE id = ANY($1::text[])`, [ids, into]);
}

export interface MerchantTerms {
  merchant_id: string;
  schedule: 'T+0' | 'T+1';
  fee_bps: number;
  fee_fixed_paise: number;
  under_review: boolean;
  review_reason: string | null;
  disputed_hold: number;
  updated_at: Date | null;
}

export const defaultTerms = (merchantId: string): MerchantTerms => ({
  merchant_id: merchantId,
  schedule: 'T+1',
  fee_bps: 0,
  fee_fixed_paise: 0,
  under_review: false,
  review_reason: null,
  disputed_hold: 0,
  updated_at: null,
});

export async function termsFor(q: Queryable, merchantIds: string[]): Promise<Map<string, MerchantTerms>> {
  const r = await q.query<MerchantTerms>(
    `SELECT * FROM settlement.merchant_terms WHERE merchant_id = ANY($1::text[])`,
    [merchantIds],
  );
  const out = new Map(merchantIds.map((id) => [id, defaultTerms(id)]));
  for (const t of r.rows) out.set(t.merchant_id, { ...t, disputed_hold: Number(t.disputed_hold) });
  return out;
}

export async function upsertTerms(
  tx: Queryable,
  t: Omit<MerchantTerms, 'updated_at'>,
  now: Date,
): Promise<MerchantTerms> {
  const r = await tx.query<MerchantTerms>(
    `INSERT INTO settlement.merchant_terms (merchant_id, schedule, fee_bps, fee_fixed_paise, under_review, review_reason, disputed_hold, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (merchant_id) DO UPDATE SET schedule = $2, fee_bps = $3, fee_fixed_paise = $4, under_review = $5,
       review_reason = $6, disputed_hold = $7, updated_at = $8
     RETURNING *`,
    [t.merchant_id, t.schedule, t.fee_bps, t.fee_fixed_paise, t.under_review, t.review_reason, t.disputed_hold, now],
  );
  return r.rows[0];
}

export type PayoutStatus = 'scheduled' | 'held' | 'nothing_due' | 'sent' | 'paid' | 'returned';

export interface PayoutRow {
  id: string;
  merchant_id: string;
  cycle_key: string;
  bank_code: string;
  payments_paise: number;
  payments_count: number;
  refunds_paise: number;
  reversals_paise: number;
  fees_paise: number;
  carried_paise: number;
  held_paise: number;
  net_paise: number;
  status: PayoutStatus;
  due_at: Date;
  batch_id: string | null;
  bank_ref: string | null;
  return_reason: string | null;
  carried_into: string | null;
  created_at: Date;
  updated_at: Date;
}

export async function insertPayout(
  tx: Queryable,
  p: Omit<PayoutRow, 'batch_id' | 'bank_ref' | 'return_reason' | 'carried_into' | 'updated_at'>,
) {
  const r = await tx.query<PayoutRow>(
    `INSERT INTO settlement.payouts (id, merchant_id, cycle_key, bank_code, payments_paise, payments_count, refunds_paise,
       reversals_paise, fees_paise, carried_paise, held_paise, net_paise, status, due_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
     ON CONFLICT (merchant_id, cycle_key) DO NOTHING RETURNING *`,
    [
      p.id,
      p.merchant_id,
      p.cycle_key,
      p.bank_code,
      p.payments_paise,
      p.payments_count,
      p.refunds_paise,
      p.reversals_paise,
      p.fees_paise,
      p.carried_paise,
      p.held_paise,
      p.net_paise,
      p.status,
      p.due_at,
      p.created_at,
    ],
  );
  return r.rows[0];
}

export async function getPayout(q: Queryable, id: string): Promise<PayoutRow | undefined> {
  const r = await q.query<PayoutRow>(`SELECT * FROM settlement.payouts WHERE id = $1`, [id]);
  return r.rows[0];
}

/** Scheduled payouts due by `now`, claimed for a batch (FOR UPDATE SKIP LOCKED: two exports never take the same one). */
export async function claimDue(tx: Queryable, now: Date, limit: number, ids?: string[]): Promise<PayoutRow[]> {
  const r = await tx.query<PayoutRow>(
    `SELECT * FROM settlement.payouts
      WHERE status = 'scheduled' AND due_at <= $1 AND ($3::text[] IS NULL OR id = ANY($3::text[]))
      ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [now, limit, ids ?? null],
  );
  return r.rows;
}

export async function dueCandidates(q: Queryable, now: Date, limit: number): Promise<PayoutRow[]> {
  const r = await q.query<PayoutRow>(
    `SELECT * FROM settlement.payouts WHERE status = 'scheduled' AND due_at <= $1 ORDER BY due_at, id LIMIT $2`,
    [now, limit],
  );
  return r.rows;
}

export async function setStatus(
  q: Queryable,
  id: string,
  from: PayoutStatus,
  to: PayoutStatus,
  u: { batchId?: string; bankRef?: string | null; returnReason?: string | null; now: Date },
): Promise<PayoutRow | undefined> {
  const r = await q.query<PayoutRow>(
    `UPDATE settlement.payouts SET status = $3, batch_id = coalesce($4, batch_id), bank_ref = coalesce($5, bank_ref),
            return_reason = coalesce($6, return_reason), updated_at = $7
      WHERE id = $1 AND status = $2 RETURNING *`,
    [id, from, to, u.batchId ?? null, u.bankRef ?? null, u.returnReason ?? null, u.now],
  );
  return r.rows[0];
}

/** Holds or releases every unsent payout of a merchant (review started or ended). */
export async function setReviewHold(tx: Queryable, merchantId: string, hold: boolean, now: Date) {
  const r = await tx.query(
    `UPDATE settlement.payouts SET status = $2, updated_at = $4 WHERE merchant_id = $1 AND status = $3`,
    [merchantId, hold ? 'held' : 'scheduled', hold ? 'scheduled' : 'held', now],
  );
  return r.rowCount;
}

export async function insertBatch(
  tx: Queryable,
  b: { id: string; format: string; payouts: number; total: number; sha256: string; fileName: string; now: Date },
) {
  await tx.query(
    `INSERT INTO settlement.payout_batches (id, format, payouts, total, sha256, file_name, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [b.id, b.format, b.payouts, b.total, b.sha256, b.fileName, b.now],
  );
}

export async function getBatch(q: Queryable, id: string) {
  const r = await q.query<{
    id: string;
    format: string;
    payouts: number;
    total: number;
    sha256: string;
    file_name: string;
    created_at: Date;
  }>(`SELECT * FROM settlement.payout_batches WHERE id = $1`, [id]);
  return r.rows[0];
}

export async function batchPayouts(q: Queryable, batchId: string): Promise<PayoutRow[]> {
  const r = await q.query<PayoutRow>(`SELECT * FROM settlement.payouts WHERE batch_id = $1 ORDER BY due_at, id`, [
    batchId,
  ]);
  return r.rows;
}

export async function merchantNames(q: Queryable, ids: string[]): Promise<Map<string, string>> {
  const r = await q.query<{ id: string; name: string }>(
    `SELECT id, name FROM merchants.merchants WHERE id = ANY($1::text[])`,
    [ids],
  );
  return new Map(r.rows.map((x) => [x.id, x.name]));
}

export async function listPayouts(
  q: Queryable,
  f: { merchantId?: string; cycleKey?: string; status?: string; before?: string; limit: number },
): Promise<PayoutRow[]> {
  const r = await q.query<PayoutRow>(
    `SELECT * FROM settlement.payouts
      WHERE ($1::text IS NULL OR merchant_id = $1) AND ($2::text IS NULL OR cycle_key = $2)
        AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR id < $4)
      ORDER BY id DESC LIMIT $5`,
    [f.merchantId ?? null, f.cycleKey ?? null, f.status ?? null, f.before ?? null, f.limit + 1],
  );
  return r.rows;
}

/** Scrape-time: payout amounts and counts by status. */
export async function payoutTotals(q: Queryable) {
  const r = await q.query<{ status: string; n: number; paise: number }>(
    `SELECT status, count(*)::int AS n, coalesce(sum(net_paise), 0)::bigint AS paise FROM settlement.payouts GROUP BY status`,
  );
  return r.rows.map((x) => ({ ...x, paise: Number(x.paise) }));
}
