import type { Queryable } from '../../../platform/db.ts';

// SQL for settlement cycles. What we expect per bank is read from the payments schema (read
// only) and settlement's own reversals and compensations, over the cycle's window (start, end].

const PAID = `('succeeded', 'partially_refunded', 'refunded')`;

export interface ExpectedTotals {
  bank_code: string;
  credit: number;
  debit: number;
  lines: number;
}

/**
 * Per bank, what the bank's file for the window should show: credits (payments that succeeded,
 * money received for a payment we then owed back), debits (refunds, reversals, compensation).
 */
export async function expectedByBank(q: Queryable, startsAt: Date, endsAt: Date): Promise<ExpectedTotals[]> {
  const r = await q.query<ExpectedTotals>(
    `WITH credits AS (
       SELECT p.bank_code, p.amount AS amt FROM payments.payments p
        WHERE p.status IN ${PAID} AND p.completed_at > $1 AND p.completed_at <= $2
       UNION ALL
       SELECT r.bank_code, r.debited_amount FROM settlement.reversals r
        WHERE NOT r.charge_merchant AND r.created_at > $1 AND r.created_at <= $2
     ), debits AS (
       SELECT p.bank_code, f.amount AS amt FROM payments.refunds f JOIN payments.payments p ON p.id = f.payment_id
        WHERE f.status = 'succeeded' AND f.completed_at > $1 AND f.completed_at <= $2
       UNION ALL
       SELECT r.bank_code, r.amount FROM settlement.reversals r
        WHERE r.status = 'succeeded' AND r.completed_at > $1 AND r.completed_at <= $2
       UNION ALL
       -- Compensation leaves our account when the bank credits the customer (a push credit); rows
       -- booked before credits existed (legacy, migration 0027) were expected when posted.
       SELECT c.bank_code, c.amount FROM settlement.compensations c
        WHERE (c.status = 'paid' AND c.paid_at > $1 AND c.paid_at <= $2)
           OR (c.status = 'legacy' AND c.posted_at > $1 AND c.posted_at <= $2)
     )
     SELECT bank_code, sum(credit)::bigint AS credit, sum(debit)::bigint AS debit, count(*)::int AS lines
       FROM (SELECT bank_code, amt AS credit, 0 AS debit FROM credits
             UNION ALL SELECT bank_code, 0, amt FROM debits) x
      GROUP BY bank_code ORDER BY bank_code`,
    [startsAt, endsAt],
  );
  return r.rows.map((x) => ({ ...x, credit: Number(x.credit), debit: Number(x.debit) }));
}

export async function insertCycle(tx: Queryable, c: { key: string; startsAt: Date; endsAt: Date; now: Date }) {
  const r = await tx.query(
    `INSERT INTO settlement.cycles (key, starts_at, ends_at, closed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
    [c.key, c.startsAt, c.endsAt, c.now],
  );
  return r.rowCount === 1;
}

/**
 * Closes take turns (a few a day): two closes at once could each find the other's window free, or
 * each believe it is the installation's first cycle. Held until the closing transaction ends.
 */
export async function lockCycles(tx: Queryable) {
  await tx.query(`LOCK TABLE settlement.cycles IN SHARE ROW EXCLUSIVE MODE`);
}

/** True when no cycle other than `key` was ever closed: `key` is the installation's first. */
export async function isFirstCycle(tx: Queryable, key: string) {
  const r = await tx.query(`SELECT 1 FROM settlement.cycles WHERE key <> $1 LIMIT 1`, [key]);
  return r.rows.length === 0;
}

/** The first cycle's payouts take everything before it: their window starts at `from`. */
export async function setSettlesFrom(tx: Queryable, key: string, from: Date) {
  await tx.query(`UPDATE settlement.cycles SET settles_from = $2 WHERE key = $1`, [key, from]);
}

/** A closed cycle other than `key` whose payouts' window overlaps (startsAt, endsAt]. */
export async function overlappingCycle(tx: Queryable, key: string, startsAt: Date, endsAt: Date) {
  const r = await tx.query<{ key: string }>(
    `SELECT key FROM settlement.cycles
      WHERE key <> $1 AND coalesce(settles_from, starts_at) < $3 AND ends_at > $2 LIMIT 1`,
    [key, startsAt, endsAt],
  );
  return r.rows[0]?.key;
}

export async function insertCycleBank(tx: Queryable, key: string, e: ExpectedTotals, now: Date) {
  await tx.query(
    `INSERT INTO settlement.cycle_banks (cycle_key, bank_code, expected_credit, expected_debit, expected_lines, status, checked_at)
     VALUES ($1, $2, $3, $4, $5, 'awaiting_file', $6)`,
    [key, e.bank_code, e.credit, e.debit, e.lines, now],
  );
}

export interface CycleBankRow {
  cycle_key: string;
  bank_code: string;
  expected_credit: number;
  expected_debit: number;
  expected_lines: number;
  status: 'awaiting_file' | 'matched' | 'difference';
  file_id: string | null;
  file_credit: number | null;
  file_debit: number | null;
  file_lines: number | null;
  checked_at: Date;
}

export async function cycleBanks(q: Queryable, key: string): Promise<CycleBankRow[]> {
  const r = await q.query<CycleBankRow>(
    `SELECT * FROM settlement.cycle_banks WHERE cycle_key = $1 ORDER BY bank_code`,
    [key],
  );
  return r.rows;
}

/** Banks of recent cycles still waiting for their file, oldest cycle first. */
export async function awaitingFiles(q: Queryable, since: Date, limit: number) {
  const r = await q.query<{ cycle_key: string; bank_code: string }>(
    `SELECT b.cycle_key, b.bank_code FROM settlement.cycle_banks b JOIN settlement.cycles c ON c.key = b.cycle_key
      WHERE b.status = 'awaiting_file' AND c.ends_at >= $1
      ORDER BY c.ends_at, b.bank_code LIMIT $2`,
    [since, limit],
  );
  return r.rows;
}

/** Records the bank's file totals, once: only while the bank still awaits its file. */
export async function recordFile(
  tx: Queryable,
  key: string,
  bank: string,
  f: { fileId: string; creditPaise: number; debitPaise: number; lines: number },
  now: Date,
): Promise<CycleBankRow | undefined> {
  const r = await tx.query<CycleBankRow>(
    `UPDATE settlement.cycle_banks
        SET file_id = $3, file_credit = $4, file_debit = $5, file_lines = $6, checked_at = $7,
            status = CASE WHEN expected_credit = $4 AND expected_debit = $5 AND expected_lines = $6 THEN 'matched' ELSE 'difference' END
      WHERE cycle_key = $1 AND bank_code = $2 AND status = 'awaiting_file'
      RETURNING *`,
    [key, bank, f.fileId, f.creditPaise, f.debitPaise, f.lines, now],
  );
  return r.rows[0];
}

export async function insertException(
  tx: Queryable,
  e: { id: string; key: string; bank: string; fileId: string; credit: number; debit: number; lines: number; now: Date },
) {
  await tx.query(
    `INSERT INTO settlement.cycle_exceptions (id, cycle_key, bank_code, file_id, credit_difference, debit_difference,
       lines_difference, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
    [e.id, e.key, e.bank, e.fileId, e.credit, e.debit, e.lines, e.now],
  );
}

export interface CycleRow {
  key: string;
  starts_at: Date;
  /** The first cycle's payouts start here (everything before it); null: at starts_at. */
  settles_from: Date | null;
  ends_at: Date;
  closed_at: Date;
}

export async function getCycle(q: Queryable, key: string): Promise<CycleRow | undefined> {
  const r = await q.query<CycleRow>(`SELECT * FROM settlement.cycles WHERE key = $1`, [key]);
  return r.rows[0];
}

export async function latestCycle(q: Queryable): Promise<CycleRow | undefined> {
  const r = await q.query<CycleRow>(`SELECT * FROM settlement.cycles ORDER BY ends_at DESC LIMIT 1`);
  return r.rows[0];
}

/** Newest first; `before`: the ends_at of the last cycle of the previous page. */
export async function listCycles(q: Queryable, f: { before?: Date; limit: number }): Promise<CycleRow[]> {
  const r = await q.query<CycleRow>(
    `SELECT * FROM settlement.cycles WHERE ($1::timestamptz IS NULL OR ends_at < $1) ORDER BY ends_at DESC LIMIT $2`,
    [f.before ?? null, f.limit + 1],
  );
  return r.rows;
}

export interface CycleExceptionRow {
  id: string;
  cycle_key: string;
  bank_code: string;
  file_id: string;
  credit_difference: number;
  debit_difference: number;
  lines_difference: number;
  status: 'open' | 'resolved';
  resolution: string | null;
  created_at: Date;
  resolved_at: Date | null;
}

export async function listExceptions(
  q: Queryable,
  f: { status?: string; cycleKey?: string; bankCode?: string; before?: string; limit: number },
): Promise<CycleExceptionRow[]> {
  const r = await q.query<CycleExceptionRow>(
    `SELECT * FROM settlement.cycle_exceptions
      WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR cycle_key = $2)
        AND ($3::text IS NULL OR bank_code = $3) AND ($4::text IS NULL OR id < $4)
      ORDER BY id DESC LIMIT $5`,
    [f.status ?? null, f.cycleKey ?? null, f.bankCode ?? null, f.before ?? null, f.limit + 1],
  );
  return r.rows;
}

export async function resolveException(tx: Queryable, id: string, resolution: string, now: Date) {
  const r = await tx.query<CycleExceptionRow>(
    `UPDATE settlement.cycle_exceptions SET status = 'resolved', resolution = $2, resolved_at = $3
      WHERE id = $1 AND status = 'open' RETURNING *`,
    [id, resolution, now],
  );
  return r.rows[0];
}

export async function getException(q: Queryable, id: string): Promise<CycleExceptionRow | undefined> {
  const r = await q.query<CycleExceptionRow>(`SELECT * FROM settlement.cycle_exceptions WHERE id = $1`, [id]);
  return r.rows[0];
}

/** Scrape-time: the latest difference per bank (file − expected, credits and debits), over checked cycles. */
export async function latestDifferences(q: Queryable) {
  const r = await q.query<{ bank_code: string; credit: number; debit: number; open: number }>(
    `SELECT DISTINCT ON (b.bank_code) b.bank_code,
            (b.file_credit - b.expected_credit)::bigint AS credit, (b.file_debit - b.expected_debit)::bigint AS debit,
            (SELECT count(*) FROM settlement.cycle_exceptions e WHERE e.bank_code = b.bank_code AND e.status = 'open')::int AS open
       FROM settlement.cycle_banks b JOIN settlement.cycles c ON c.key = b.cycle_key
      WHERE b.status <> 'awaiting_file'
      ORDER BY b.bank_code, c.ends_at DESC`,
  );
  return r.rows.map((x) => ({ ...x, credit: Number(x.credit), debit: Number(x.debit) }));
}
