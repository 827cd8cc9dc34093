import type { Queryable } from '../../../platform/db.ts';
import type { ExceptionRow } from './recon.service.ts';

// SQL of the console's view of the exception queue: each exception with the deadline it is worked
// against. The deadline is the RBI's for a failed UPI merchant payment (end of T + tat days, IST;
// reversals/deadline.ts), with T the IST day of the transaction: our payment's creation (the
// payment of a refund for a refund), else the bank line's own time, else the day the exception
// was opened. A customer debited twice or for a payment we closed waits on this clock, so an
// exception still open past it is money owed late.

const IST_OFFSET_S = 19_800;

/** Epoch seconds of the first instant past the deadline for a transaction at `at` (SQL expression). */
const deadlineEpoch = (at: string, tatParam: string) =>
  `((floor((extract(epoch FROM ${at}) + ${IST_OFFSET_S}) / 86400) + ${tatParam} + 1) * 86400 - ${IST_OFFSET_S})`;

const AGED = (tatParam: string) => `
  SELECT e.*, t.t_at, to_timestamp(${deadlineEpoch('t.t_at', tatParam)}) AS deadline_at
    FROM settlement.recon_exceptions e
    LEFT JOIN payments.payments p ON p.id = e.payment_id
    LEFT JOIN payments.refunds r ON e.payment_id IS NULL AND r.id = e.refund_id
    LEFT JOIN payments.payments rp ON rp.id = r.payment_id
    LEFT JOIN settlement.recon_lines l ON l.file_id = e.file_id AND l.line_no = e.line_no
    CROSS JOIN LATERAL (SELECT coalesce(p.created_at, rp.created_at, l.txn_at, e.created_at) AS t_at) t`;

export type DeadlineFilter = 'overdue' | 'due_soon' | 'on_time';
/** "Due soon": the deadline falls within this many hours. */
export const DUE_SOON_HOURS = 48;

export interface AgedExceptionRow extends ExceptionRow {
  t_at: Date;
  deadline_at: Date;
}

export async function listAgedExceptions(
  q: Queryable,
  f: {
    status?: string;
    kind?: string;
    bankCode?: string;
    minAgeHours?: number;
    deadline?: DeadlineFilter;
    before?: string;
    limit: number;
    now: Date;
    tatDays: number;
  },
): Promise<AgedExceptionRow[]> {
  // $7 now, $8 tat days. "Now" for a resolved exception is when it was resolved.
  const { rows } = await q.query<AgedExceptionRow>(
    `SELECT * FROM (${AGED('$8')}) x
      WHERE ($1::text IS NULL OR status = $1 OR ($1 = 'unresolved' AND status <> 'resolved')) AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR bank_code = $3)
        AND ($4::float8 IS NULL OR created_at <= $7::timestamptz - make_interval(secs => $4::float8 * 3600))
        AND ($5::text IS NULL
             OR ($5 = 'overdue' AND coalesce(resolved_at, $7::timestamptz) >= deadline_at)
             OR ($5 = 'due_soon' AND status <> 'resolved' AND $7::timestamptz < deadline_at
                 AND deadline_at <= $7::timestamptz + make_interval(hours => ${DUE_SOON_HOURS}))
             OR ($5 = 'on_time' AND coalesce(resolved_at, $7::timestamptz) < deadline_at
                 AND (status = 'resolved' OR deadline_at > $7::timestamptz + make_interval(hours => ${DUE_SOON_HOURS}))))
        AND ($6::text IS NULL OR id < $6)
      ORDER BY id DESC LIMIT $9`,
    [
      f.status ?? null,
      f.kind ?? null,
      f.bankCode ?? null,
      f.minAgeHours ?? null,
      f.deadline ?? null,
      f.before ?? null,
      f.now,
      f.tatDays,
      f.limit + 1,
    ],
  );
  return rows;
}

export interface AgingBucket {
  bucket: 'overdue' | 'due_24h' | 'due_48h' | 'later';
  kind: string;
  count: number;
  amount_paise: number;
  oldest_created_at: Date;
  earliest_deadline_at: Date;
}

/** Unresolved exceptions (open or waiting for a second operator) by kind and time left to their deadline. */
export async function agingBuckets(q: Queryable, now: Date, tatDays: number): Promise<AgingBucket[]> {
  const { rows } = await q.query<AgingBucket & { count: number; amount_paise: string | number }>(
    `SELECT CASE WHEN deadline_at <= $1 THEN 'overdue'
                 WHEN deadline_at <= $1::timestamptz + interval '24 hours' THEN 'due_24h'
                 WHEN deadline_at <= $1::timestamptz + interval '48 hours' THEN 'due_48h'
                 ELSE 'later' END AS bucket,
            kind, count(*)::int AS count, sum(amount_paise)::bigint AS amount_paise,
            min(created_at) AS oldest_created_at, min(deadline_at) AS earliest_deadline_at
       FROM (${AGED('$2')} WHERE e.status <> 'resolved') x
      GROUP BY 1, 2 ORDER BY 1, 2`,
    [now, tatDays],
  );
  return rows.map((r) => ({ ...r, amount_paise: Number(r.amount_paise) }));
}
