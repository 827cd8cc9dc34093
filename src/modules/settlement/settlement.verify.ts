import type { Db, Queryable } from '../../platform/db.ts';
import type { LedgerService } from '../ledger/index.ts';

// Settlement's invariants against the ledger (README "Invariants"), for `tillpoint settle verify`
// and the tests. The ledger's own verify checks that every entry balances and every stored balance
// matches its postings; this checks that settlement's rows and the ledger tell the same story.
// Balances are read through the ledger's public face, one account at a time.

export interface SettlementViolation {
  invariant:
    | 'reversal_payable_matches_open_reversals'
    | 'compensation_matches_days'
    | 'compensation_payable_matches_unpaid'
    | 'compensation_in_transit_matches_pending'
    | 'payout_in_transit_matches_sent_payouts'
    | 'fee_revenue_matches_payout_fees'
    | 'batch_totals_match_payouts'
    | 'cycle_difference_has_exception';
  subject: string;
  message: string;
}

export async function verifySettlement(
  q: Queryable,
  ledger: Pick<LedgerService, 'balance'>,
): Promise<SettlementViolation[]> {
  const out: SettlementViolation[] = [];
  // 1. What is owed back to each bank's customers is exactly the reversals still working.
  const owed = await q.query<{ bank_code: string; open: number }>(
    `SELECT bank_code, coalesce(sum(amount) FILTER (WHERE status IN ('scheduled', 'pending')), 0)::bigint AS open
       FROM settlement.reversals GROUP BY bank_code ORDER BY bank_code`,
  );
  for (const r of owed.rows) {
    const bal = await ledger.balance(q, `reversal_payable:${r.bank_code}`);
    if (bal !== Number(r.open))
      out.push({
        invariant: 'reversal_payable_matches_open_reversals',
        subject: `reversal_payable:${r.bank_code}`,
        message: `ledger balance ${bal} but open reversals total ${r.open}`,
      });
  }
  // 2. The compensation expense is the sum of the days compensated.
  const comp = await q.query<{ total: number }>(
    `SELECT coalesce(sum(amount), 0)::bigint AS total FROM settlement.compensations`,
  );
  const compBal = await ledger.balance(q, 'reversal_compensation');
  if (compBal !== Number(comp.rows[0].total))
    out.push({
      invariant: 'compensation_matches_days',
      subject: 'reversal_compensation',
      message: `ledger balance ${compBal} but compensation rows total ${comp.rows[0].total}`,
    });
  // 2b. Compensation owed to each bank's customers is exactly the credits not sent or refused, and
  // compensation in transit exactly the credits sent whose outcome is not known yet.
  const credits = await q.query<{ bank_code: string; unpaid: number; pending: number }>(
    `SELECT bank_code,
            coalesce(sum(amount) FILTER (WHERE status IN ('due', 'failed')), 0)::bigint AS unpaid,
            coalesce(sum(amount) FILTER (WHERE status = 'pending'), 0)::bigint AS pending
       FROM settlement.compensations GROUP BY bank_code ORDER BY bank_code`,
  );
  for (const c of credits.rows) {
    const payable = await ledger.balance(q, `compensation_payable:${c.bank_code}`);
    if (payable !== Number(c.unpaid))
      out.push({
        invariant: 'compensation_payable_matches_unpaid',
        subject: `compensation_payable:${c.bank_code}`,
        message: `ledger balance ${payable} but unpaid compensation (due, failed) totals ${c.unpaid}`,
      });
    const transit = await ledger.balance(q, `compensation_in_transit:${c.bank_code}`);
    if (transit !== Number(c.pending))
      out.push({
        invariant: 'compensation_in_transit_matches_pending',
        subject: `compensation_in_transit:${c.bank_code}`,
        message: `ledger balance ${transit} but compensation credits pending total ${c.pending}`,
      });
  }
  // 3. Money in transit to each merchant is exactly its sent (not yet paid or returned) payouts.
  const transit = await q.query<{ merchant_id: string; sent: number }>(
    `SELECT merchant_id, coalesce(sum(net_paise) FILTER (WHERE status = 'sent'), 0)::bigint AS sent
       FROM settlement.payouts WHERE batch_id IS NOT NULL GROUP BY merchant_id ORDER BY merchant_id`,
  );
  for (const t of transit.rows) {
    const bal = await ledger.balance(q, `payout_in_transit:${t.merchant_id}`);
    if (bal !== Number(t.sent))
      out.push({
        invariant: 'payout_in_transit_matches_sent_payouts',
        subject: `payout_in_transit:${t.merchant_id}`,
        message: `ledger balance ${bal} but sent payouts total ${t.sent}`,
      });
  }
  // 4. Fee revenue is the fees the payouts took.
  const fees = await q.query<{ total: number }>(
    `SELECT coalesce(sum(fees_paise), 0)::bigint AS total FROM settlement.payouts`,
  );
  const feeBal = await ledger.balance(q, 'fee_revenue');
  if (feeBal !== Number(fees.rows[0].total))
    out.push({
      invariant: 'fee_revenue_matches_payout_fees',
      subject: 'fee_revenue',
      message: `ledger balance ${feeBal} but payout fees total ${fees.rows[0].total}`,
    });
  // 5. A batch's recorded count and total are its payouts'.
  const batches = await q.query<{ id: string; payouts: number; total: number; n: number; sum: number }>(
    `SELECT b.id, b.payouts, b.total, count(p.id)::int AS n, coalesce(sum(p.net_paise), 0)::bigint AS sum
       FROM settlement.payout_batches b LEFT JOIN settlement.payouts p ON p.batch_id = b.id
      GROUP BY b.id HAVING b.payouts <> count(p.id) OR b.total <> coalesce(sum(p.net_paise), 0) ORDER BY b.id`,
  );
  for (const b of batches.rows)
    out.push({
      invariant: 'batch_totals_match_payouts',
      subject: b.id,
      message: `batch says ${b.payouts} payouts, ${b.total} paise; its payouts are ${b.n}, ${b.sum} paise`,
    });
  // 6. Every bank whose file differed from the cycle has its exception.
  const missing = await q.query<{ cycle_key: string; bank_code: string }>(
    `SELECT b.cycle_key, b.bank_code FROM settlement.cycle_banks b
      WHERE b.status = 'difference'
        AND NOT EXISTS (SELECT 1 FROM settlement.cycle_exceptions e
                         WHERE e.cycle_key = b.cycle_key AND e.bank_code = b.bank_code AND e.file_id = b.file_id)
      ORDER BY b.cycle_key, b.bank_code`,
  );
  for (const m of missing.rows)
    out.push({
      invariant: 'cycle_difference_has_exception',
      subject: `${m.cycle_key}/${m.bank_code}`,
      message: 'the file differs from the cycle but no exception was opened',
    });
  return out;
}

/** What `tillpoint settle verify` runs: every check in one read-only REPEATABLE READ transaction. */
export async function runSettlementVerify(db: Pick<Db, 'tx'>, ledger: Pick<LedgerService, 'balance'>) {
  return db.tx(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const counts = await tx.query<{ reversals: number; payouts: number; cycles: number }>(
      `SELECT (SELECT count(*)::int FROM settlement.reversals) AS reversals,
              (SELECT count(*)::int FROM settlement.payouts) AS payouts,
              (SELECT count(*)::int FROM settlement.cycles) AS cycles`,
    );
    const violations = await verifySettlement(tx, ledger);
    return { ok: violations.length === 0, violations, checked: counts.rows[0] };
  });
}
