import type { Queryable } from '../../../platform/db.ts';
import { reconPaymentsSql, reconRefundsSql } from '../../payments/index.ts';
import { conditionSql, type Rule } from './rules.ts';
import type { BankLine } from './types.ts';

// SQL of reconciliation. Matching is set-based: each rule is one statement over the whole file,
// so a file of a million lines costs a handful of joins, not a million round trips.
// Parameters throughout: $1 the file id, $2 the bank code.

const OURS = `(SELECT 'payment'::text AS kind, p.* FROM (${reconPaymentsSql('$2')}) p
               UNION ALL SELECT 'refund'::text AS kind, r.* FROM (${reconRefundsSql('$2')}) r)`;
const oursOf = (kind: 'payment' | 'refund') =>
  `(SELECT '${kind}'::text AS kind, x.* FROM (${kind === 'payment' ? reconPaymentsSql('$2') : reconRefundsSql('$2')}) x)`;
const DIRECTION = { payment: 'credit', refund: 'debit' } as const;
/** Time-sortable exception ids made in SQL: the ms timestamp as 12 hex digits, then 20 of a digest of `seed`. */
const exceptionId = (at: string, seed: string) =>
  `'rce_' || lpad(to_hex((extract(epoch FROM ${at}::timestamptz) * 1000)::bigint), 12, '0') || substr(md5(${seed}), 1, 20)`;

export interface FileRow {
  id: string;
  bank_code: string;
  cycle_key: string;
  sha256: string;
  file_name: string | null;
  mapping_id: string;
  status: 'ingested' | 'matched';
  lines: number;
  skipped_lines: number;
  credit_paise: number;
  debit_paise: number;
  first_txn_at: Date | null;
  last_txn_at: Date | null;
  matched_paise: number;
  outcomes: Record<string, number>;
  ingested_by: string | null;
  created_at: Date;
  matched_at: Date | null;
}

export async function findFile(q: Queryable, bankCode: string, sha256: string, cycleKey?: string) {
  const { rows } = await q.query<FileRow>(
    `SELECT * FROM settlement.recon_files WHERE bank_code = $1 AND (sha256 = $2 OR cycle_key = $3) ORDER BY (sha256 = $2) DESC LIMIT 1`,
    [bankCode, sha256, cycleKey ?? null],
  );
  return rows[0];
}

export async function insertFile(
  q: Queryable,
  f: {
    id: string;
    bankCode: string;
    cycleKey: string;
    sha256: string;
    fileName: string | null;
    mappingId: string;
    by: string | null;
    now: Date;
  },
) {
  await q.query(
    `INSERT INTO settlement.recon_files (id, bank_code, cycle_key, sha256, file_name, mapping_id, status, ingested_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'ingested', $7, $8)`,
    [f.id, f.bankCode, f.cycleKey, f.sha256, f.fileName, f.mappingId, f.by, f.now],
  );
}

/** Writes a batch of lines in one statement (arrays unnested), whatever the batch size. */
export async function insertLines(q: Queryable, fileId: string, lines: BankLine[]) {
  await q.query(
    `INSERT INTO settlement.recon_lines (file_id, line_no, direction, txn_ref, bank_ref, reference, amount_paise, txn_at)
     SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::timestamptz[])`,
    [
      fileId,
      lines.map((l) => l.lineNo),
      lines.map((l) => l.direction),
      lines.map((l) => l.txnRef),
      lines.map((l) => l.bankRef),
      lines.map((l) => l.reference),
      lines.map((l) => l.amountPaise),
      lines.map((l) => (l.txnAt ? l.txnAt.toISOString() : null)),
    ],
  );
}

export async function finishIngest(
  q: Queryable,
  id: string,
  t: { lines: number; skipped: number; credit: number; debit: number; first: Date | null; last: Date | null },
) {
  await q.query(
    `UPDATE settlement.recon_files SET lines = $2, skipped_lines = $3, credit_paise = $4, debit_paise = $5,
            first_txn_at = $6, last_txn_at = $7 WHERE id = $1`,
    [id, t.lines, t.skipped, t.credit, t.debit, t.first, t.last],
  );
}

const open = (kind: 'payment' | 'refund') =>
  `NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = '${kind}' AND x.our_id = o.id)`;

/** Fresh statistics for a large file's lines, so the planner joins them by hash, not by loops. */
export async function analyzeLines(q: Queryable) {
  await q.query('ANALYZE settlement.recon_lines');
}

async function anyOpenLines(q: Queryable, fileId: string, direction: string) {
  const { rows } = await q.query(
    `SELECT 1 FROM settlement.recon_lines WHERE file_id = $1 AND outcome IS NULL AND direction = $2 LIMIT 1`,
    [fileId, direction],
  );
  return rows.length > 0;
}

/** Applies one rule to the file's unmatched lines; returns how many lines it matched. */
export async function applyRule(
  q: Queryable,
  fileId: string,
  bankCode: string,
  rule: Rule,
  kind: 'payment' | 'refund',
  now: Date,
): Promise<number> {
  const dir = DIRECTION[kind];
  if (!(await anyOpenLines(q, fileId, dir))) return 0;
  const params = [fileId, bankCode, rule.name, now];
  if (rule.strategy === 'one_to_one') {
    const conds = rule.when.map((c) => conditionSql(c)).join(' AND ');
    // Each line takes its lowest candidate; each item, the first line that took it. Hash
    // aggregates, not window sorts: a file of a million lines is one pass over the join.
    const { rows } = await q.query<{ n: number }>(
      `WITH cand AS MATERIALIZED (
         SELECT l.line_no, o.id AS our_id, o.amount AS our_amount
           FROM settlement.recon_lines l JOIN ${oursOf(kind)} o ON ${conds}
          WHERE l.file_id = $1 AND l.outcome IS NULL AND l.direction = '${dir}' AND o.state = 'success' AND ${open(kind)}),
       per_line AS (SELECT line_no, min(our_id) AS our_id FROM cand GROUP BY line_no),
       per_item AS (SELECT our_id, min(line_no) AS line_no FROM per_line GROUP BY our_id),
       pick AS (SELECT DISTINCT c.line_no, c.our_id, c.our_amount FROM per_item i JOIN cand c ON c.line_no = i.line_no AND c.our_id = i.our_id),
       upd AS (UPDATE settlement.recon_lines l SET outcome = 'matched', match_rule = $3, match_mode = 'auto',
                      match_group = l.line_no, our_kind = '${kind}', our_id = pick.our_id
                 FROM pick WHERE l.file_id = $1 AND l.line_no = pick.line_no RETURNING 1),
       ins AS (INSERT INTO settlement.recon_item_outcomes (our_kind, our_id, outcome, mode, rule, file_id, match_group, amount_paise, created_at)
               SELECT '${kind}', our_id, 'matched', 'auto', $3, $1, line_no, our_amount, $4 FROM pick RETURNING 1)
       SELECT (SELECT count(*) FROM upd)::int AS n, (SELECT count(*) FROM ins)::int AS m`,
      params,
    );
    return rows[0].n;
  }
  if (rule.strategy === 'many_to_one') {
    const gb = rule.group_by as string;
    const conds = rule.when
      .map((c) =>
        conditionSql(c, {
          lineAmount: 'g.amount_paise',
          ourAmount: 'o.amount',
          lineAt: 'g.txn_at',
          ourAt: 'o.at',
          line: 'g',
        }),
      )
      .join(' AND ');
    const { rows } = await q.query<{ n: number }>(
      `WITH g AS (
         SELECT l.${gb} AS k, sum(l.amount_paise) AS amount_paise, min(l.line_no) AS grp, max(l.txn_at) AS txn_at,
                min(l.txn_ref) AS txn_ref, min(l.bank_ref) AS bank_ref, min(l.reference) AS reference
           FROM settlement.recon_lines l
          WHERE l.file_id = $1 AND l.outcome IS NULL AND l.direction = '${dir}' AND l.${gb} IS NOT NULL
          GROUP BY l.${gb} HAVING count(*) > 1),
       cand AS (
         SELECT g.k, g.grp, o.id AS our_id, o.amount AS our_amount,
                row_number() OVER (PARTITION BY g.k ORDER BY o.id) AS rl,
                row_number() OVER (PARTITION BY o.id ORDER BY g.grp) AS ro
           FROM g JOIN ${oursOf(kind)} o ON ${conds} WHERE o.state = 'success' AND ${open(kind)}),
       pick AS (SELECT k, grp, our_id, our_amount FROM cand WHERE rl = 1 AND ro = 1),
       upd AS (UPDATE settlement.recon_lines l SET outcome = 'matched', match_rule = $3, match_mode = 'auto',
                      match_group = pick.grp, our_kind = '${kind}', our_id = pick.our_id
                 FROM pick WHERE l.file_id = $1 AND l.outcome IS NULL AND l.direction = '${dir}' AND l.${gb} = pick.k RETURNING 1),
       ins AS (INSERT INTO settlement.recon_item_outcomes (our_kind, our_id, outcome, mode, rule, file_id, match_group, amount_paise, created_at)
               SELECT '${kind}', our_id, 'matched', 'auto', $3, $1, grp, our_amount, $4 FROM pick RETURNING 1)
       SELECT (SELECT count(*) FROM upd)::int AS n, (SELECT count(*) FROM ins)::int AS m`,
      params,
    );
    return rows[0].n;
  }
  // one_to_many: one line nets several of our items, grouped by one of our fields.
  const gb = rule.group_by as string;
  const conds = rule.when
    .map((c) =>
      conditionSql(c, {
        lineAmount: 'l.amount_paise',
        ourAmount: 'og.amount',
        lineAt: 'l.txn_at',
        ourAt: 'og.at',
        ours: 'og',
      }),
    )
    .join(' AND ');
  const { rows } = await q.query<{ n: number }>(
    `WITH og AS (
       SELECT o.${gb} AS k, sum(o.amount) AS amount, max(o.at) AS at, min(o.id) AS id, min(o.txn_ref) AS txn_ref,
              min(o.bank_ref) AS bank_ref, min(o.merchant_id) AS merchant_id
         FROM ${oursOf(kind)} o WHERE o.state = 'success' AND ${open(kind)} AND o.${gb} IS NOT NULL
        GROUP BY o.${gb} HAVING count(*) > 1),
     cand AS (
       SELECT l.line_no, og.k, row_number() OVER (PARTITION BY l.line_no ORDER BY og.k) AS rl,
              row_number() OVER (PARTITION BY og.k ORDER BY l.line_no) AS ro
         FROM settlement.recon_lines l JOIN og ON ${conds}
        WHERE l.file_id = $1 AND l.outcome IS NULL AND l.direction = '${dir}'),
     pick AS (SELECT line_no, k FROM cand WHERE rl = 1 AND ro = 1),
     upd AS (UPDATE settlement.recon_lines l SET outcome = 'matched', match_rule = $3, match_mode = 'auto',
                    match_group = l.line_no, our_kind = '${kind}', our_id = NULL
               FROM pick WHERE l.file_id = $1 AND l.line_no = pick.line_no RETURNING 1),
     ins AS (INSERT INTO settlement.recon_item_outcomes (our_kind, our_id, outcome, mode, rule, file_id, match_group, amount_paise, created_at)
             SELECT '${kind}', o.id, 'matched', 'auto', $3, $1, pick.line_no, o.amount, $4
               FROM pick JOIN ${oursOf(kind)} o ON o.${gb} = pick.k AND o.state = 'success' AND ${open(kind)} RETURNING 1)
     SELECT (SELECT count(*) FROM upd)::int AS n, (SELECT count(*) FROM ins)::int AS m`,
    params,
  );
  return rows[0].n;
}

/**
 * Gives every line no rule matched its outcome: a second line for an item already settled is a
 * duplicate; the first line for one of ours that no rule took is an amount mismatch (ours
 * succeeded), a late success (ours closed) or not final (ours still open); the rest are unknown.
 */
export async function classifyRest(q: Queryable, fileId: string, bankCode: string, now: Date) {
  const kindOf = `(CASE l.direction WHEN 'credit' THEN 'payment' ELSE 'refund' END)`;
  for (const key of ['l.txn_ref = o.txn_ref', 'l.txn_ref IS NULL AND l.bank_ref = o.bank_ref']) {
    const duplicates = `UPDATE settlement.recon_lines l SET outcome = 'duplicate', our_kind = o.kind, our_id = o.id
         FROM ${OURS} o JOIN settlement.recon_item_outcomes x ON x.our_kind = o.kind AND x.our_id = o.id
        WHERE l.file_id = $1 AND l.outcome IS NULL AND o.kind = ${kindOf} AND ${key}`;
    await q.query(duplicates, [fileId, bankCode]);
    await q.query(
      `WITH cand AS (
         SELECT l.line_no, l.amount_paise, o.kind, o.id, o.amount, o.state,
                row_number() OVER (PARTITION BY o.kind, o.id ORDER BY l.line_no) AS ro,
                row_number() OVER (PARTITION BY l.line_no ORDER BY o.id) AS rl
           FROM settlement.recon_lines l JOIN ${OURS} o ON o.kind = ${kindOf} AND ${key}
          WHERE l.file_id = $1 AND l.outcome IS NULL
            AND NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = o.kind AND x.our_id = o.id)),
       pick AS (
         SELECT *, CASE WHEN state = 'success' THEN 'amount_mismatch' WHEN state = 'closed' THEN 'late_success' ELSE 'not_final' END AS outcome
           FROM cand WHERE ro = 1 AND rl = 1 AND NOT (state = 'success' AND amount = amount_paise)),
       upd AS (UPDATE settlement.recon_lines l SET outcome = pick.outcome, match_group = l.line_no, our_kind = pick.kind, our_id = pick.id
                 FROM pick WHERE l.file_id = $1 AND l.line_no = pick.line_no RETURNING 1)
       INSERT INTO settlement.recon_item_outcomes (our_kind, our_id, outcome, mode, rule, file_id, match_group, amount_paise, created_at)
       SELECT kind, id, outcome, 'auto', 'classify', $1, line_no, amount, $3 FROM pick`,
      [fileId, bankCode, now],
    );
    await q.query(duplicates, [fileId, bankCode]);
  }
  // A line that names one of ours with the same amount that no rule took (a time window it fell
  // outside, say) is unknown with our item named: an operator matches it by hand.
  await q.query(
    `UPDATE settlement.recon_lines l SET outcome = 'unknown', our_kind = o.kind, our_id = o.id
       FROM ${OURS} o WHERE l.file_id = $1 AND l.outcome IS NULL AND o.kind = ${kindOf} AND l.txn_ref = o.txn_ref`,
    [fileId, bankCode],
  );
  await q.query(`UPDATE settlement.recon_lines SET outcome = 'unknown' WHERE file_id = $1 AND outcome IS NULL`, [
    fileId,
  ]);
}

/** One exception per line that is not matched, and one per item of ours the file should have had. */
export async function raiseExceptions(q: Queryable, fileId: string, bankCode: string, now: Date) {
  await q.query(
    `WITH ins AS (
       INSERT INTO settlement.recon_exceptions (id, kind, bank_code, cycle_key, file_id, line_no, payment_id, refund_id,
                                                amount_paise, expected_paise, detail, status, created_at)
       SELECT ${exceptionId('$3', "l.file_id || ':' || l.line_no")},
              CASE l.outcome WHEN 'amount_mismatch' THEN CASE WHEN l.amount_paise > o.amount THEN 'amount_over' ELSE 'amount_under' END
                             ELSE l.outcome END,
              $2, f.cycle_key, l.file_id, l.line_no,
              CASE WHEN o.kind IS NOT NULL THEN o.payment_id END, CASE WHEN o.kind = 'refund' THEN o.id END,
              l.amount_paise, o.amount,
              CASE l.outcome
                WHEN 'amount_mismatch' THEN 'the bank has ' || l.amount_paise || ' paise where we have ' || o.amount
                WHEN 'duplicate' THEN 'a second line for an item already settled by a bank line'
                WHEN 'late_success' THEN 'the bank shows a success for an item we closed'
                WHEN 'not_final' THEN 'the bank shows an item that is still open on our side'
                WHEN 'unknown' THEN CASE WHEN o.kind IS NULL THEN 'the bank has it, we do not'
                                         ELSE 'names one of ours, but no rule matched it' END
              END,
              'open', $3
         FROM settlement.recon_lines l JOIN settlement.recon_files f ON f.id = l.file_id
         LEFT JOIN ${OURS} o ON o.kind = l.our_kind AND o.id = l.our_id
        WHERE l.file_id = $1 AND l.outcome <> 'matched'
       RETURNING id, line_no)
     UPDATE settlement.recon_lines l SET exception_id = ins.id FROM ins WHERE l.file_id = $1 AND l.line_no = ins.line_no`,
    [fileId, bankCode, now],
  );
  // Items of ours up to the file's last line that it does not have (nor did an earlier file):
  // the bank's file covers everything it settled up to then.
  await q.query(
    `INSERT INTO settlement.recon_exceptions (id, kind, bank_code, cycle_key, payment_id, refund_id, amount_paise,
                                              expected_paise, detail, status, created_at)
     SELECT ${exceptionId('$3', 'o.kind || o.id || $1')}, 'missing', $2, f.cycle_key, o.payment_id,
            CASE WHEN o.kind = 'refund' THEN o.id END, o.amount, o.amount,
            'completed before the last line of the file, but in no file', 'open', $3
       FROM ${OURS} o JOIN settlement.recon_files f ON f.id = $1
      WHERE o.state = 'success' AND f.last_txn_at IS NOT NULL AND o.at <= f.last_txn_at
        AND NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = o.kind AND x.our_id = o.id)
     ON CONFLICT (kind, coalesce(refund_id, payment_id)) WHERE line_no IS NULL AND status <> 'resolved' DO NOTHING`,
    [fileId, bankCode, now],
  );
  // Items reported missing before that this file has now settled.
  await q.query(
    `UPDATE settlement.recon_exceptions e SET status = 'resolved', resolution = 'matched_by_file', resolved_by = 'system:recon',
            resolved_at = $2, reason = 'matched in file ' || $1
      WHERE e.kind = 'missing' AND e.status = 'open' AND e.line_no IS NULL
        AND EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x
                     WHERE x.our_kind = CASE WHEN e.refund_id IS NULL THEN 'payment' ELSE 'refund' END
                       AND x.our_id = coalesce(e.refund_id, e.payment_id) AND x.file_id = $1 AND x.outcome = 'matched')`,
    [fileId, now],
  );
}

/** Payments this file settled that were flagged for reconciliation (directly or through a refund). */
export async function flaggedSettledBy(q: Queryable, fileId: string, bankCode: string): Promise<string[]> {
  const { rows } = await q.query<{ payment_id: string }>(
    `SELECT DISTINCT o.payment_id FROM ${OURS} o
      WHERE o.flagged AND EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x
                                   WHERE x.our_kind = o.kind AND x.our_id = o.id AND x.file_id = $1 AND x.outcome = 'matched')`,
    [fileId, bankCode],
  );
  return rows.map((r) => r.payment_id);
}

export interface LateSuccessLine {
  line_no: number;
  payment_id: string;
  amount_paise: number;
  exception_id: string;
}
export async function lateSuccessLines(q: Queryable, fileId: string, after: number, limit: number) {
  const { rows } = await q.query<LateSuccessLine>(
    `SELECT line_no, our_id AS payment_id, amount_paise, exception_id FROM settlement.recon_lines
      WHERE file_id = $1 AND outcome = 'late_success' AND our_kind = 'payment' AND line_no > $2 ORDER BY line_no LIMIT $3`,
    [fileId, after, limit],
  );
  return rows;
}

/** Recounts a file's outcomes and matched total from its lines (after matching, or after a manual match). */
export async function recountFile(q: Queryable, fileId: string, now: Date | null) {
  const { rows } = await q.query<{ outcome: string | null; n: number; paise: number }>(
    `SELECT outcome, count(*)::int AS n, coalesce(sum(amount_paise), 0)::bigint AS paise
       FROM settlement.recon_lines WHERE file_id = $1 GROUP BY outcome`,
    [fileId],
  );
  const outcomes: Record<string, number> = {};
  let matched = 0;
  for (const r of rows) {
    if (r.outcome === null) throw new Error(`recon: file ${fileId} has lines without an outcome`);
    outcomes[r.outcome] = r.n;
    if (r.outcome === 'matched') matched = Number(r.paise);
  }
  await q.query(
    `UPDATE settlement.recon_files SET outcomes = $2, matched_paise = $3, status = 'matched', matched_at = coalesce(matched_at, $4)
      WHERE id = $1`,
    [fileId, JSON.stringify(outcomes), matched, now],
  );
  return { outcomes, matchedPaise: matched };
}

export async function ruleCounts(q: Queryable, fileId: string) {
  const { rows } = await q.query<{ rule: string; n: number }>(
    `SELECT match_rule AS rule, count(*)::int AS n FROM settlement.recon_lines
      WHERE file_id = $1 AND outcome = 'matched' GROUP BY match_rule ORDER BY match_rule`,
    [fileId],
  );
  return Object.fromEntries(rows.map((r) => [r.rule, r.n]));
}

export async function exceptionCounts(q: Queryable, fileId: string) {
  const { rows } = await q.query<{ kind: string; n: number }>(
    `SELECT kind, count(*)::int AS n FROM settlement.recon_exceptions
      WHERE file_id = $1 OR (line_no IS NULL AND kind = 'missing' AND cycle_key = (SELECT cycle_key FROM settlement.recon_files WHERE id = $1)
                             AND bank_code = (SELECT bank_code FROM settlement.recon_files WHERE id = $1))
      GROUP BY kind ORDER BY kind`,
    [fileId],
  );
  return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
}
