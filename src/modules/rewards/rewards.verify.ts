import type { Db, Queryable } from '../../platform/db.ts';

// Cross-checks the rewards tables against the PTS book of the ledger. `tillpoint ledger verify`
// proves the ledger balances in itself; this proves that the lots, the statement and the
// ledger tell the same story, customer by customer. Read-only.

export interface RewardsViolation {
  invariant:
    | 'available_matches_lots'
    | 'pending_matches_lots'
    | 'reserved_matches_redemptions'
    | 'statement_matches_ledger'
    | 'consumptions_match_redemption';
  subject: string;
  message: string;
}

const LIMIT = 1000;
// "remaining > 0" changes no sum (empty lots add nothing) but lets each customer's lots be read
// through lots_open_by_customer instead of a scan of every lot per customer (quadratic at a
// million customers, as after a bulk import of opening balances).

// The ledger's normal-side balance of one PTS account (0 when it was never used).
const bal = (prefix: string) =>
  `coalesce((SELECT a.balance FROM ledger.accounts a WHERE a.book = 'PTS' AND a.code = '${prefix}:' || c.id), 0)`;

/** Customers read per statement: memory stays flat at a million customers (one snapshot throughout). */
const PAGE = 5000;

export async function verifyRewards(q: Queryable, opts: { pageSize?: number } = {}): Promise<RewardsViolation[]> {
  const pageSize = opts.pageSize ?? PAGE;
  const out: RewardsViolation[] = [];
  let after = '';
  for (;;) {
    const page = await customersPage(q, after, pageSize);
    for (const r of page) {
      if (out.length >= LIMIT) break;
      checkCustomer(r, out);
    }
    if (page.length < pageSize || out.length >= LIMIT) break;
    after = page[page.length - 1].id;
  }
  await checkConsumptions(q, out);
  return out;
}

interface CustomerSums {
  id: string;
  available: number;
  pending: number;
  reserved: number;
  lots_available: number;
  lots_pending: number;
  debt: number;
  reserved_points: number;
  st_available: number;
  st_pending: number;
}

async function customersPage(q: Queryable, after: string, pageSize: number): Promise<CustomerSums[]> {
  const r = await q.query<CustomerSums>(
    `SELECT c.id, c.debt,
            ${bal('customer_available')} AS available, ${bal('customer_pending')} AS pending, ${bal('customer_reserved')} AS reserved,
            coalesce((SELECT sum(remaining) FROM rewards.lots l WHERE l.customer_id = c.id AND l.remaining > 0 AND l.status = 'available'), 0)::bigint AS lots_available,
            coalesce((SELECT sum(remaining) FROM rewards.lots l WHERE l.customer_id = c.id AND l.remaining > 0 AND l.status = 'pending'), 0)::bigint AS lots_pending,
            coalesce((SELECT sum(points) FROM rewards.redemptions d WHERE d.customer_id = c.id AND d.status = 'reserved'), 0)::bigint AS reserved_points,
            coalesce((SELECT sum(available_delta) FROM rewards.movements m WHERE m.customer_id = c.id), 0)::bigint AS st_available,
            coalesce((SELECT sum(pending_delta) FROM rewards.movements m WHERE m.customer_id = c.id), 0)::bigint AS st_pending
       FROM rewards.customers c WHERE c.id > $1 ORDER BY c.id LIMIT $2`,
    [after, pageSize],
  );
  return r.rows;
}

function checkCustomer(r: CustomerSums, out: RewardsViolation[]) {
  if (r.available !== r.lots_available - r.debt) {
    out.push({
      invariant: 'available_matches_lots',
      subject: r.id,
      message: `ledger available ${r.available}, lots ${r.lots_available} - debt ${r.debt}`,
    });
  }
  if (r.pending !== r.lots_pending) {
    out.push({
      invariant: 'pending_matches_lots',
      subject: r.id,
      message: `ledger pending ${r.pending}, pending lots ${r.lots_pending}`,
    });
  }
  if (r.reserved !== r.reserved_points) {
    out.push({
      invariant: 'reserved_matches_redemptions',
      subject: r.id,
      message: `ledger reserved ${r.reserved}, reserved redemptions ${r.reserved_points}`,
    });
  }
  if (r.st_available !== r.available || r.st_pending !== r.pending) {
    out.push({
      invariant: 'statement_matches_ledger',
      subject: r.id,
      message: `statement ${r.st_available}/${r.st_pending}, ledger ${r.available}/${r.pending} (available/pending)`,
    });
  }
}

// Points a redemption still holds must sit in its lot consumptions: all of them while it is
// reserved or committed (less what refunds gave back), none once released.
async function checkConsumptions(q: Queryable, out: RewardsViolation[]) {
  const cons = await q.query<{ id: string; held: number; taken: number }>(
    `SELECT d.id, CASE WHEN d.status = 'released' THEN 0 ELSE d.points - d.points_returned END AS held,
            coalesce((SELECT sum(points - returned) FROM rewards.lot_consumptions x WHERE x.redemption_id = d.id), 0)::bigint AS taken
       FROM rewards.redemptions d
      WHERE (CASE WHEN d.status = 'released' THEN 0 ELSE d.points - d.points_returned END)
            <> coalesce((SELECT sum(points - returned) FROM rewards.lot_consumptions x WHERE x.redemption_id = d.id), 0)
      ORDER BY d.id LIMIT ${LIMIT}`,
  );
  for (const r of cons.rows) {
    out.push({
      invariant: 'consumptions_match_redemption',
      subject: r.id,
      message: `redemption holds ${r.held} points, its lot consumptions ${r.taken}`,
    });
  }
}

/** `tillpoint rewards verify`: every check in one read-only snapshot. */
export async function runRewardsVerify(db: Pick<Db, 'tx'>) {
  return db.tx(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const counts = await tx.query<{ customers: number; lots: number }>(
      `SELECT (SELECT count(*)::int FROM rewards.customers) AS customers, (SELECT count(*)::int FROM rewards.lots) AS lots`,
    );
    const violations = await verifyRewards(tx);
    return { ok: violations.length === 0, violations, checked: counts.rows[0] };
  });
}
