import type { Queryable } from '../../platform/db.ts';

// SQL for points history brought in from a legacy system (history.ts). Every row carries the
// legacy time it happened at, so lots, earnings, redemptions and statement lines sit in the
// customer's history where they belong (ids are UUIDv7 of that time too).

export interface OpenLot {
  id: string;
  customer_id: string;
  remaining: number;
  available_at: Date;
  expires_at: Date | null;
}

/** The customers' available lots that still hold points, oldest first (the rows are locked by the customer lock). */
export async function openLots(q: Queryable, customerIds: string[]): Promise<OpenLot[]> {
  if (customerIds.length === 0) return [];
  const { rows } = await q.query<OpenLot>(
    `SELECT id, customer_id, remaining::float8 AS remaining, available_at, expires_at FROM rewards.lots
      WHERE customer_id = ANY($1::text[]) AND remaining > 0 AND status = 'available' ORDER BY id`,
    [customerIds],
  );
  return rows;
}

export async function setLotsRemaining(q: Queryable, lots: { id: string; remaining: number }[]) {
  if (lots.length === 0) return;
  await q.query(
    `UPDATE rewards.lots l SET remaining = x.r FROM unnest($1::text[], $2::bigint[]) AS x(id, r) WHERE l.id = x.id`,
    [lots.map((l) => l.id), lots.map((l) => l.remaining)],
  );
}

export interface HistoryWrite {
  lots: {
    id: string;
    program_id: string;
    customer_id: string;
    source_id: string;
    points: number;
    remaining: number;
    at: Date;
    expires_at: Date | null;
  }[];
  earnings: {
    payment_id: string;
    program_id: string;
    customer_id: string;
    merchant_id: string;
    lot_id: string;
    amount: number;
    points: number;
    at: Date;
  }[];
  redemptions: {
    id: string;
    payment_id: string;
    program_id: string;
    customer_id: string;
    merchant_id: string;
    points: number;
    value_paise: number;
    at: Date;
  }[];
  consumptions: { redemption_id: string; lot_id: string; points: number }[];
  movements: {
    id: string;
    program_id: string;
    customer_id: string;
    kind: 'earn' | 'redeem';
    available_delta: number;
    payment_id: string;
    reference: string;
    detail: string;
    at: Date;
  }[];
}

/** Writes a batch of history: lots (source 'history'), earnings, committed redemptions, their lot consumptions, statement lines. */
export async function insertHistory(q: Queryable, w: HistoryWrite) {
  if (w.lots.length > 0)
    await q.query(
      `INSERT INTO rewards.lots (id, program_id, customer_id, source, source_id, points, remaining, status, available_at, expires_at, created_at)
       SELECT id, p, c, 'history', s, n, r, 'available', at, e, at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::timestamptz[], $8::timestamptz[])
              AS x(id, p, c, s, n, r, at, e)`,
      [
        w.lots.map((l) => l.id),
        w.lots.map((l) => l.program_id),
        w.lots.map((l) => l.customer_id),
        w.lots.map((l) => l.source_id),
        w.lots.map((l) => l.points),
        w.lots.map((l) => l.remaining),
        w.lots.map((l) => l.at),
        w.lots.map((l) => l.expires_at),
      ],
    );
  if (w.earnings.length > 0)
    await q.query(
      `INSERT INTO rewards.earnings (payment_id, program_id, customer_id, merchant_id, lot_id, amount, points, breakdown, created_at)
       SELECT pay, p, c, m, l, a, n, '{"source":"history"}'::jsonb, at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::timestamptz[])
              AS x(pay, p, c, m, l, a, n, at)`,
      [
        w.earnings.map((e) => e.payment_id),
        w.earnings.map((e) => e.program_id),
        w.earnings.map((e) => e.customer_id),
        w.earnings.map((e) => e.merchant_id),
        w.earnings.map((e) => e.lot_id),
        w.earnings.map((e) => e.amount),
        w.earnings.map((e) => e.points),
        w.earnings.map((e) => e.at),
      ],
    );
  if (w.redemptions.length > 0)
    await q.query(
      `INSERT INTO rewards.redemptions (id, payment_id, program_id, customer_id, merchant_id, points, value_paise, mode, status, created_at, settled_at)
       SELECT id, pay, p, c, m, n, v, 'discount', 'committed', at, at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::timestamptz[])
              AS x(id, pay, p, c, m, n, v, at)`,
      [
        w.redemptions.map((r) => r.id),
        w.redemptions.map((r) => r.payment_id),
        w.redemptions.map((r) => r.program_id),
        w.redemptions.map((r) => r.customer_id),
        w.redemptions.map((r) => r.merchant_id),
        w.redemptions.map((r) => r.points),
        w.redemptions.map((r) => r.value_paise),
        w.redemptions.map((r) => r.at),
      ],
    );
  if (w.consumptions.length > 0)
    await q.query(
      `INSERT INTO rewards.lot_consumptions (redemption_id, lot_id, points)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])`,
      [
        w.consumptions.map((c) => c.redemption_id),
        w.consumptions.map((c) => c.lot_id),
        w.consumptions.map((c) => c.points),
      ],
    );
  if (w.movements.length > 0)
    await q.query(
      `INSERT INTO rewards.movements (id, program_id, customer_id, kind, available_delta, pending_delta, payment_id, reference, detail, created_at)
       SELECT id, p, c, k, d, 0, pay, r, t, at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
              AS x(id, p, c, k, d, pay, r, t, at)`,
      [
        w.movements.map((m) => m.id),
        w.movements.map((m) => m.program_id),
        w.movements.map((m) => m.customer_id),
        w.movements.map((m) => m.kind),
        w.movements.map((m) => m.available_delta),
        w.movements.map((m) => m.payment_id),
        w.movements.map((m) => m.reference),
        w.movements.map((m) => m.detail),
        w.movements.map((m) => m.at),
      ],
    );
}
