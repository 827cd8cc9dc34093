import type { Queryable } from '../../../platform/db.ts';
import { reconPaymentsSql, reconRefundsSql } from '../../payments/index.ts';
import { reconCompensationsSql } from '../reversals/compensation.repo.ts';
import { conditionSql, type Rule } from './rules.ts';
import type { LineBatch } from './mapping.ts';
import type { ExceptionKind } from './types.ts';

// All of reconciliation's SQL (the service keeps the decisions). Matching is set-based: each rule
// is one statement over the whole file, so a file of a million lines costs a handful of joins,
// not a million round trips. In the matching statements $1 is the file id and $2 the bank code,
// unless a function says otherwise.

/** What an item of ours is: a payment, a refund, or a compensation push credit (settlement's). */
export type OurKind = 'payment' | 'refund' | 'compensation';
const SOURCES: Record<OurKind, (bank: string) => string> = {
  payment: reconPaymentsSql,
  refund: reconRefundsSql,
  compensation: reconCompensationsSql,
};
/** Our payments, refunds and compensation credits of one bank (the parameter `bank`, e.g. '$2'), as the matching sees them. */
const oursAll = (bank = '$2') =>
  `(SELECT 'payment'::text AS kind, p.* FROM (${reconPaymentsSql(bank)}) p
    UNION ALL SELECT 'refund'::text AS kind, r.* FROM (${reconRefundsSql(bank)}) r
    UNION ALL SELECT 'compensation'::text AS kind, c.* FROM (${reconCompensationsSql(bank)}) c)`;
const OURS = oursAll();
const oursOf = (kind: OurKind) => `(SELECT '${kind}'::text AS kind, x.* FROM (${SOURCES[kind]('$2')}) x)`;
/**
 * The direction of a bank line for each kind: money in for a payment; money out of our account
 * for a refund and for a push credit (the bank lists both as debits).
 */
const DIRECTION = { payment: 'credit', refund: 'debit', compensation: 'debit' } as const;
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

/**
 * The file this one would repeat: one with the same bytes (an empty one only for the same cycle,
 * or when the cycle is in the bytes themselves: every empty cycle's file may look alike,
 * migrations/0035), or another file for the same cycle.
 */
export async function findFile(q: Queryable, bankCode: string, sha256: string, cycleKey?: string) {
  const { rows } = await q.query<FileRow>(
    `SELECT * FROM settlement.recon_files
      WHERE bank_code = $1
        AND ((sha256 = $2 AND (lines > 0 OR $3::text IS NULL OR cycle_key = $3)) OR cycle_key = $3)
      ORDER BY (sha256 = $2) DESC LIMIT 1`,
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

// ---- the work tables of one ingestion ---------------------------------------------------------
//
// A file's lines are staged in temporary tables of the ingesting transaction (no WAL, dropped
// at commit or rollback): `recon_stage` holds every line as parsed, `recon_open` the lines still
// without an outcome once the first rule has run, `recon_match` the outcome of each line the
// rules did not match (classification: duplicates, mismatches, unknown; its primary key: one
// outcome per line). A rule writes the lines it matches straight to settlement.recon_lines, with
// their outcome, in the statement that decides them; the others are written at the end from
// `recon_match`, each with its outcome and exception. No line is written twice (the lines'
// primary key), and the counts check that every staged line was written once.

const STAGE = 'pg_temp.recon_stage';
const OPEN = 'pg_temp.recon_open';
const MATCH = 'pg_temp.recon_match';
/** Where the lines still without an outcome are: every staged line, or the narrowed set. */
export type LineSource = typeof STAGE | typeof OPEN;
export const ALL_LINES: LineSource = STAGE;
export const OPEN_LINES: LineSource = OPEN;

/** Creates the ingestion's work tables (temporary, dropped with its transaction). */
export async function createWorkTables(q: Queryable) {
  await q.query(
    `CREATE TEMP TABLE recon_stage (line_no int NOT NULL, direction text NOT NULL, txn_ref text, bank_ref text,
                                    reference text, amount_paise bigint NOT NULL, txn_at timestamptz) ON COMMIT DROP`,
  );
  await q.query('CREATE TEMP TABLE recon_open (LIKE pg_temp.recon_stage) ON COMMIT DROP');
  await q.query(
    `CREATE TEMP TABLE recon_match (line_no int PRIMARY KEY, amount_paise bigint NOT NULL, outcome text NOT NULL,
                                    rule text, mode text, grp int, our_kind text, our_id text, payment_id text,
                                    our_amount bigint, exception_id text) ON COMMIT DROP`,
  );
}

/**
 * Stages a batch of parsed lines in one statement (arrays unnested), whatever the batch size.
 * The arrays' literals are written here rather than by the driver, which escapes every element
 * with two regular expressions: references are checked by the parser (letters, digits, _./-),
 * so only the free-text narration is escaped, and only when it has a quote or a backslash.
 * Times travel as ms since the epoch.
 */
export async function stageLines(q: Queryable, b: LineBatch) {
  await q.query(
    `INSERT INTO pg_temp.recon_stage (line_no, direction, txn_ref, bank_ref, reference, amount_paise, txn_at)
     SELECT line_no, direction, txn_ref, bank_ref, reference, amount_paise,
            CASE WHEN ms IS NOT NULL THEN 'epoch'::timestamptz + ms * interval '1 millisecond' END
       FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
            AS u (line_no, direction, txn_ref, bank_ref, reference, amount_paise, ms)`,
    [
      `{${b.lineNo.join(',')}}`,
      `{${b.direction.join(',')}}`,
      textArray(b.txnRef, false),
      textArray(b.bankRef, false),
      textArray(b.reference, true),
      `{${b.amountPaise.join(',')}}`,
      numberArray(b.txnAtMs),
    ],
  );
}

const NEEDS_ESCAPE = /["\\]/;
/** A PostgreSQL text[] literal; every element quoted (so "NULL" stays a string), escaped when `free`. */
function textArray(values: (string | null)[], free: boolean): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null) out += 'NULL';
    else if (free && NEEDS_ESCAPE.test(v)) out += `"${v.replace(/["\\]/g, '\\$&')}"`;
    else out += `"${v}"`;
  }
  return `${out}}`;
}

function numberArray(values: (number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    out += v === null ? 'NULL' : String(v);
  }
  return `${out}}`;
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

/**
 * Settings and statistics for matching a large file: fresh statistics on the staged lines (a
 * temporary table is never analysed by autovacuum), room for the big hash joins, which with
 * the default work_mem (4 MB) spill to disk in batches, and no JIT: the plans' costs cross
 * jit_above_cost (more so with nested loops disabled, below), and compiling them took 0.6 to
 * 1 s per statement (EXPLAIN ANALYZE) for statements that then ran in 0.2 s. For this
 * transaction only.
 */
export async function prepareLargeMatch(q: Queryable, workMem: string) {
  if (!/^[0-9]+MB$/.test(workMem)) throw new Error(`recon: bad work_mem ${workMem}`);
  await q.query(`SET LOCAL work_mem = '${workMem}'`);
  await q.query('SET LOCAL jit = off');
  await q.query(`ANALYZE ${STAGE}`);
}

/** Fresh statistics on the lines still open (after the first rule took most of a large file). */
export async function analyzeOpen(q: Queryable) {
  await q.query(`ANALYZE ${OPEN}`);
}

/**
 * Narrows the lines still without an outcome after a classification: the first time (no rule
 * ran), copies them out of the staged lines (one anti-join); after that, deletes the newly
 * decided ones from the narrowed set.
 */
export async function narrowOpen(q: Queryable, from: LineSource, analyze: boolean): Promise<LineSource> {
  if (from === STAGE)
    await q.query(
      `INSERT INTO ${OPEN} SELECT s.* FROM ${STAGE} s WHERE NOT EXISTS (SELECT 1 FROM ${MATCH} m WHERE m.line_no = s.line_no)`,
    );
  else await q.query(`DELETE FROM ${OPEN} o USING ${MATCH} m WHERE m.line_no = o.line_no`);
  if (analyze) await q.query(`ANALYZE ${OPEN}`);
  return OPEN;
}

/**
 * Runs `fn` without nested loops when `whole` (a statement over a whole large file, or over all
 * our items of a bank). The planner estimates our items' state (a CASE over their status) at
 * 0.5 % of the rows, so it would probe recon_item_outcomes' index once per payment (EXPLAIN
 * ANALYZE: 4.5 s for 200,000) where one hash anti-join reads each side once. Restored after.
 */
async function hashJoins<T>(q: Queryable, whole: boolean, fn: () => Promise<T>): Promise<T> {
  if (!whole) return fn();
  await q.query('SET LOCAL enable_nestloop = off');
  const r = await fn();
  await q.query('SET LOCAL enable_nestloop = on');
  return r;
}

const open = (kind: OurKind) =>
  `NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = '${kind}' AND x.our_id = o.id)`;

const MATCH_COLUMNS = '(line_no, amount_paise, outcome, rule, mode, grp, our_kind, our_id, payment_id, our_amount)';
const OUTCOME_COLUMNS = '(our_kind, our_id, outcome, mode, rule, file_id, match_group, amount_paise, created_at)';
const LINE_COLUMNS = `(file_id, line_no, direction, txn_ref, bank_ref, reference, amount_paise, txn_at,
                       outcome, match_rule, match_mode, match_group, our_kind, our_id, exception_id)`;

/** What one rule matched: lines, and their amount in paise. */
export interface RuleResult {
  lines: number;
  paise: number;
}

/**
 * Applies one rule to the lines of `src` (all of them without an outcome) in one statement:
 * the lines it matches are written to settlement.recon_lines with their outcome, our items'
 * outcomes to recon_item_outcomes, and the lines it leaves are the open ones after it (copied
 * to recon_open when `src` is every staged line: the first rule; deleted from it after that).
 */
export async function applyRule(
  q: Queryable,
  src: LineSource,
  fileId: string,
  bankCode: string,
  rule: Rule,
  kind: OurKind,
  now: Date,
  large: boolean,
): Promise<RuleResult> {
  // Over every staged line, or (one_to_many) over all our open items: hash joins.
  return hashJoins(q, large && (src === STAGE || rule.strategy === 'one_to_many'), () =>
    ruleStatement(q, src, fileId, bankCode, rule, kind, now),
  );
}

/**
 * The tail every rule statement shares, after a CTE `w` (the matched lines written, RETURNING
 * line_no and amount_paise): the open lines narrowed, and what was matched counted.
 */
const narrowAndCount = (src: LineSource) =>
  `${
    src === STAGE
      ? `rest AS (INSERT INTO ${OPEN} SELECT s.* FROM ${STAGE} s WHERE NOT EXISTS (SELECT 1 FROM w WHERE w.line_no = s.line_no))`
      : `gone AS (DELETE FROM ${OPEN} o USING w WHERE o.line_no = w.line_no)`
  }
   SELECT count(*)::int AS n, coalesce(sum(amount_paise), 0)::bigint AS paise FROM w`;

async function ruleStatement(
  q: Queryable,
  src: LineSource,
  fileId: string,
  bankCode: string,
  rule: Rule,
  kind: OurKind,
  now: Date,
): Promise<RuleResult> {
  const dir = DIRECTION[kind];
  const params = [fileId, bankCode, rule.name, now];
  const result = (rows: { n: number; paise: string | number }[]) => ({
    lines: rows[0].n,
    paise: Number(rows[0].paise),
  });
  if (rule.strategy === 'one_to_one') {
    const conds = rule.when.map((c) => conditionSql(c)).join(' AND ');
    // Each line takes its lowest candidate; each item, the first line that took it. Two sorts
    // (DISTINCT ON), not hash aggregates joined back to the candidates: on a million lines
    // (EXPLAIN ANALYZE) 3.2 to 5.2 s against 11.5 to 14 s, the aggregates' hash tables holding a
    // copy of every id (over 200 MB each) and the candidates spilling to disk to be read twice.
    // The second sort also hands the item outcomes over in the order of their key.
    const { rows } = await q.query<{ n: number; paise: string }>(
      `WITH cand AS (
         SELECT l.line_no, o.id AS our_id, o.amount AS our_amount
           FROM ${src} l JOIN ${oursOf(kind)} o ON ${conds}
          WHERE l.direction = '${dir}' AND o.state = 'success' AND ${open(kind)}),
       per_line AS (SELECT DISTINCT ON (line_no) line_no, our_id, our_amount FROM cand ORDER BY line_no, our_id),
       pick AS MATERIALIZED (
         SELECT DISTINCT ON (our_id) line_no, our_id, our_amount FROM per_line ORDER BY our_id, line_no),
       w AS (INSERT INTO settlement.recon_lines ${LINE_COLUMNS}
             SELECT $1, l.line_no, l.direction, l.txn_ref, l.bank_ref, l.reference, l.amount_paise, l.txn_at,
                    'matched', $3, 'auto', l.line_no, '${kind}', pick.our_id, NULL
               FROM pick JOIN ${src} l ON l.line_no = pick.line_no
             RETURNING line_no, amount_paise),
       ins AS (INSERT INTO settlement.recon_item_outcomes ${OUTCOME_COLUMNS}
               SELECT '${kind}', our_id, 'matched', 'auto', $3, $1, line_no, our_amount, $4 FROM pick),
       ${narrowAndCount(src)}`,
      params,
    );
    return result(rows);
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
    const { rows } = await q.query<{ n: number; paise: string }>(
      `WITH g AS (
         SELECT l.${gb} AS k, sum(l.amount_paise) AS amount_paise, min(l.line_no) AS grp, max(l.txn_at) AS txn_at,
                min(l.txn_ref) AS txn_ref, min(l.bank_ref) AS bank_ref, min(l.reference) AS reference
           FROM ${src} l
          WHERE l.direction = '${dir}' AND l.${gb} IS NOT NULL
          GROUP BY l.${gb} HAVING count(*) > 1),
       cand AS (
         SELECT g.k, g.grp, o.id AS our_id, o.amount AS our_amount,
                row_number() OVER (PARTITION BY g.k ORDER BY o.id) AS rl,
                row_number() OVER (PARTITION BY o.id ORDER BY g.grp) AS ro
           FROM g JOIN ${oursOf(kind)} o ON ${conds} WHERE o.state = 'success' AND ${open(kind)}),
       pick AS MATERIALIZED (SELECT k, grp, our_id, our_amount FROM cand WHERE rl = 1 AND ro = 1),
       w AS (INSERT INTO settlement.recon_lines ${LINE_COLUMNS}
             SELECT $1, l.line_no, l.direction, l.txn_ref, l.bank_ref, l.reference, l.amount_paise, l.txn_at,
                    'matched', $3, 'auto', pick.grp, '${kind}', pick.our_id, NULL
               FROM ${src} l JOIN pick ON l.${gb} = pick.k WHERE l.direction = '${dir}'
             RETURNING line_no, amount_paise),
       ins AS (INSERT INTO settlement.recon_item_outcomes ${OUTCOME_COLUMNS}
               SELECT '${kind}', our_id, 'matched', 'auto', $3, $1, grp, our_amount, $4 FROM pick),
       ${narrowAndCount(src)}`,
      params,
    );
    return result(rows);
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
  const { rows } = await q.query<{ n: number; paise: string }>(
    `WITH og AS (
       SELECT o.${gb} AS k, sum(o.amount) AS amount, max(o.at) AS at, min(o.id) AS id, min(o.txn_ref) AS txn_ref,
              min(o.bank_ref) AS bank_ref, min(o.merchant_id) AS merchant_id
         FROM ${oursOf(kind)} o WHERE o.state = 'success' AND ${open(kind)} AND o.${gb} IS NOT NULL
        GROUP BY o.${gb} HAVING count(*) > 1),
     cand AS (
       SELECT l.line_no, og.k, row_number() OVER (PARTITION BY l.line_no ORDER BY og.k) AS rl,
              row_number() OVER (PARTITION BY og.k ORDER BY l.line_no) AS ro
         FROM ${src} l JOIN og ON ${conds}
        WHERE l.direction = '${dir}'),
     pick AS MATERIALIZED (SELECT line_no, k FROM cand WHERE rl = 1 AND ro = 1),
     w AS (INSERT INTO settlement.recon_lines ${LINE_COLUMNS}
           SELECT $1, l.line_no, l.direction, l.txn_ref, l.bank_ref, l.reference, l.amount_paise, l.txn_at,
                  'matched', $3, 'auto', l.line_no, '${kind}', NULL, NULL
             FROM pick JOIN ${src} l ON l.line_no = pick.line_no
           RETURNING line_no, amount_paise),
     ins AS (INSERT INTO settlement.recon_item_outcomes ${OUTCOME_COLUMNS}
             SELECT '${kind}', o.id, 'matched', 'auto', $3, $1, pick.line_no, o.amount, $4
               FROM pick JOIN ${oursOf(kind)} o ON o.${gb} = pick.k AND o.state = 'success' AND ${open(kind)}),
     ${narrowAndCount(src)}`,
    params,
  );
  return result(rows);
}

/** Whether an item of kind `o.kind` can be named by line `l`: a credit names a payment, a debit a refund or a compensation. */
const KIND_FITS_LINE = `(o.kind = 'payment') = (l.direction = 'credit')`;
/** How a line no rule took names one of ours: its txn ref, or (without one) its bank ref. */
export const CLASSIFY_KEYS = ['l.txn_ref = o.txn_ref', 'l.txn_ref IS NULL AND l.bank_ref = o.bank_ref'] as const;
export type ClassifyKey = (typeof CLASSIFY_KEYS)[number];

/**
 * The open lines joined with our items they name by `key`. With `probe` (a few open lines, and
 * the txn ref, which our tables index uniquely) a look-up per line (LATERAL: the conditions go
 * down into the union to the index); otherwise one hash join, which reads all our items of the
 * bank: on a million payments that was 0.5 to 1 s per statement for a thousand open lines.
 * OFFSET 0 keeps the planner from flattening the look-up back into that hash join.
 */
const linesWithOurs = (src: LineSource, bank: string, key: ClassifyKey, probe: boolean) =>
  probe && key === CLASSIFY_KEYS[0]
    ? `${src} l CROSS JOIN LATERAL (SELECT * FROM ${oursAll(bank)} o WHERE ${KIND_FITS_LINE} AND ${key} OFFSET 0) o`
    : `${src} l JOIN ${oursAll(bank)} o ON ${KIND_FITS_LINE} AND ${key}`;

/** Open lines naming an item of ours that already has an outcome (in this file or an earlier one): duplicates. */
export async function classifyDuplicates(
  q: Queryable,
  src: LineSource,
  bankCode: string,
  key: ClassifyKey,
  probe = false,
) {
  const { rowCount } = await q.query(
    `INSERT INTO ${MATCH} ${MATCH_COLUMNS}
     SELECT DISTINCT ON (l.line_no) l.line_no, l.amount_paise, 'duplicate', NULL, NULL, NULL, o.kind, o.id, o.payment_id, o.amount
       FROM ${linesWithOurs(src, '$1', key, probe)}
       JOIN settlement.recon_item_outcomes x ON x.our_kind = o.kind AND x.our_id = o.id
      ORDER BY l.line_no, o.kind, o.id`,
    [bankCode],
  );
  return rowCount;
}

/**
 * The first open line for one of ours that no rule took: an amount mismatch (ours succeeded),
 * a late success (ours closed) or not final (ours still open). Its item gets that outcome.
 */
export async function classifyFirstLines(
  q: Queryable,
  src: LineSource,
  fileId: string,
  bankCode: string,
  key: ClassifyKey,
  now: Date,
  probe = false,
) {
  const { rows } = await q.query<{ n: number }>(
    `WITH cand AS (
       SELECT l.line_no, l.amount_paise, o.kind, o.id, o.payment_id, o.amount, o.state,
              row_number() OVER (PARTITION BY o.kind, o.id ORDER BY l.line_no) AS ro,
              row_number() OVER (PARTITION BY l.line_no ORDER BY o.kind, o.id) AS rl
         FROM ${linesWithOurs(src, '$2', key, probe)}
        WHERE NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = o.kind AND x.our_id = o.id)),
     pick AS MATERIALIZED (
       SELECT *, CASE WHEN state = 'success' THEN 'amount_mismatch' WHEN state = 'closed' THEN 'late_success' ELSE 'not_final' END AS outcome
         FROM cand WHERE ro = 1 AND rl = 1 AND NOT (state = 'success' AND amount = amount_paise)),
     m AS (INSERT INTO ${MATCH} ${MATCH_COLUMNS}
           SELECT line_no, amount_paise, outcome, NULL, NULL, line_no, kind, id, payment_id, amount FROM pick RETURNING 1),
     ins AS (INSERT INTO settlement.recon_item_outcomes ${OUTCOME_COLUMNS}
             SELECT kind, id, outcome, 'auto', 'classify', $1, line_no, amount, $3 FROM pick RETURNING 1)
     SELECT (SELECT count(*) FROM m)::int AS n, (SELECT count(*) FROM ins)::int AS items`,
    [fileId, bankCode, now],
  );
  return rows[0].n;
}

/**
 * The rest is unknown: with our item named when the line names one of ours by its txn ref (the
 * same amount, but no rule took it, e.g. outside a time window: an operator matches it by hand),
 * without one otherwise.
 */
export async function classifyUnknown(q: Queryable, src: LineSource, bankCode: string, probe = false) {
  await q.query(
    `INSERT INTO ${MATCH} ${MATCH_COLUMNS}
     SELECT DISTINCT ON (l.line_no) l.line_no, l.amount_paise, 'unknown', NULL, NULL, NULL, o.kind, o.id, o.payment_id, o.amount
       FROM ${linesWithOurs(src, '$1', CLASSIFY_KEYS[0], probe)}
      WHERE NOT EXISTS (SELECT 1 FROM ${MATCH} m WHERE m.line_no = l.line_no)
      ORDER BY l.line_no, o.kind, o.id`,
    [bankCode],
  );
  await q.query(
    `INSERT INTO ${MATCH} ${MATCH_COLUMNS}
     SELECT l.line_no, l.amount_paise, 'unknown', NULL, NULL, NULL, NULL, NULL, NULL, NULL
       FROM ${src} l WHERE NOT EXISTS (SELECT 1 FROM ${MATCH} m WHERE m.line_no = l.line_no)`,
  );
}

/** Flags the bank's file can settle: a payment flagged while pending, deemed or unknown at the bank. */
const SETTLEABLE_FLAG = `p.status = 'pending' AND p.needs_reconciliation AND p.reconciliation_reason IN ('deemed', 'unknown_at_bank')`;

/** Lines of this file classified not final whose payment is flagged deemed or unknown at the bank. */
export async function notFinalFlaggedLines(q: Queryable) {
  const { rows } = await q.query<{ line_no: number; payment_id: string; amount_paise: number; flag: string }>(
    `SELECT m.line_no, m.our_id AS payment_id, m.amount_paise, p.reconciliation_reason AS flag
       FROM ${MATCH} m JOIN payments.payments p ON p.id = m.our_id
      WHERE m.outcome = 'not_final' AND m.our_kind = 'payment' AND ${SETTLEABLE_FLAG}
      ORDER BY m.line_no`,
  );
  return rows;
}

/**
 * Payments flagged deemed or unknown at the bank that this file shows as not paid: their whole
 * validity (creation to expiry) lies within the file's span, and no file has a line for them.
 */
export async function flaggedUnpaidBy(q: Queryable, fileId: string, bankCode: string) {
  const { rows } = await q.query<{ payment_id: string; flag: string }>(
    `SELECT p.id AS payment_id, p.reconciliation_reason AS flag
       FROM payments.payments p JOIN settlement.recon_files f ON f.id = $1
      WHERE p.needs_reconciliation AND p.bank_code = $2 AND ${SETTLEABLE_FLAG}
        AND p.created_at >= f.first_txn_at AND p.expires_at <= f.last_txn_at
        AND NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = 'payment' AND x.our_id = p.id)
      ORDER BY p.id`,
    [fileId, bankCode],
  );
  return rows;
}

/** A not-final line whose payment the file has just settled: matched, by the rule that says so. */
export async function matchSettledFlag(q: Queryable, lineNo: number, paymentId: string, rule: string) {
  await q.query(`UPDATE ${MATCH} SET outcome = 'matched', rule = $2, mode = 'auto' WHERE line_no = $1`, [lineNo, rule]);
  await q.query(
    `UPDATE settlement.recon_item_outcomes SET outcome = 'matched', rule = $2
      WHERE our_kind = 'payment' AND our_id = $1 AND outcome = 'not_final'`,
    [paymentId, rule],
  );
}

/** One exception per line that is not matched, and one per item of ours the file should have had. */
export async function raiseExceptions(
  q: Queryable,
  fileId: string,
  bankCode: string,
  cycleKey: string,
  now: Date,
  large: boolean,
) {
  await q.query(
    `WITH ins AS (
     INSERT INTO settlement.recon_exceptions (id, kind, bank_code, cycle_key, file_id, line_no, payment_id, refund_id,
                                              compensation_id, amount_paise, expected_paise, detail, status, created_at)
     SELECT ${exceptionId('$3', "$1 || ':' || m.line_no")},
            CASE m.outcome WHEN 'amount_mismatch' THEN CASE WHEN m.amount_paise > m.our_amount THEN 'amount_over' ELSE 'amount_under' END
                           ELSE m.outcome END,
            $2, $4, $1, m.line_no,
            CASE WHEN m.our_kind IS NOT NULL THEN m.payment_id END, CASE WHEN m.our_kind = 'refund' THEN m.our_id END,
            CASE WHEN m.our_kind = 'compensation' THEN m.our_id END, m.amount_paise, m.our_amount,
            CASE m.outcome
              WHEN 'amount_mismatch' THEN 'the bank has ' || m.amount_paise || ' paise where we have ' || m.our_amount
              WHEN 'duplicate' THEN 'a second line for an item already settled by a bank line'
              WHEN 'late_success' THEN 'the bank shows a success for an item we closed'
              WHEN 'not_final' THEN 'the bank shows an item that is still open on our side'
              WHEN 'unknown' THEN CASE WHEN m.our_kind IS NULL THEN 'the bank has it, we do not'
                                       ELSE 'names one of ours, but no rule matched it' END
            END,
            'open', $3
       FROM ${MATCH} m WHERE m.outcome <> 'matched'
     RETURNING id, line_no)
     UPDATE ${MATCH} m SET exception_id = ins.id FROM ins WHERE m.line_no = ins.line_no`,
    [fileId, bankCode, now, cycleKey],
  );
  // Items of ours up to the file's last line that it does not have (nor did an earlier file):
  // the bank's file covers everything it settled up to then.
  await hashJoins(q, large, () =>
    q.query(
      `INSERT INTO settlement.recon_exceptions (id, kind, bank_code, cycle_key, payment_id, refund_id, compensation_id,
                                              amount_paise, expected_paise, detail, status, created_at)
     SELECT ${exceptionId('$3', 'o.kind || o.id || $1')}, 'missing', $2, f.cycle_key, o.payment_id,
            CASE WHEN o.kind = 'refund' THEN o.id END, CASE WHEN o.kind = 'compensation' THEN o.id END, o.amount, o.amount,
            'completed before the last line of the file, but in no file', 'open', $3
       FROM ${OURS} o JOIN settlement.recon_files f ON f.id = $1
      WHERE o.state = 'success' AND f.last_txn_at IS NOT NULL AND o.at <= f.last_txn_at
        AND NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = o.kind AND x.our_id = o.id)
     ON CONFLICT (kind, coalesce(compensation_id, refund_id, payment_id)) WHERE line_no IS NULL AND status <> 'resolved' DO NOTHING`,
      [fileId, bankCode, now],
    ),
  );
  // Items reported missing before that this file has now settled.
  await q.query(
    `UPDATE settlement.recon_exceptions e SET status = 'resolved', resolution = 'matched_by_file', resolved_by = 'system:recon',
            resolved_at = $2, reason = 'matched in file ' || $1
      WHERE e.kind = 'missing' AND e.status = 'open' AND e.line_no IS NULL
        AND EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x
                     WHERE x.our_kind = CASE WHEN e.compensation_id IS NOT NULL THEN 'compensation'
                                             WHEN e.refund_id IS NOT NULL THEN 'refund' ELSE 'payment' END
                       AND x.our_id = coalesce(e.compensation_id, e.refund_id, e.payment_id) AND x.file_id = $1 AND x.outcome = 'matched')`,
    [fileId, now],
  );
}

/**
 * Outcomes per line and the matched total: the lines the rules matched (`byRules`, counted by
 * the statements that wrote them) and those in the work table; throws when they do not add up
 * to the staged lines (`lines`). The work table's key gives each line one outcome at most, the
 * lines' primary key one row.
 */
export async function matchedCounts(
  q: Queryable,
  lines: number,
  byRules: { byRule: Record<string, number>; lines: number; paise: number },
) {
  const { rows } = await q.query<{ outcome: string; rule: string | null; n: number; paise: string }>(
    `SELECT outcome, rule, count(*)::int AS n, coalesce(sum(amount_paise), 0)::bigint AS paise FROM ${MATCH} GROUP BY outcome, rule`,
  );
  const outcomes: Record<string, number> = byRules.lines > 0 ? { matched: byRules.lines } : {};
  const byRule: Record<string, number> = { ...byRules.byRule };
  let matchedPaise = byRules.paise;
  let total = byRules.lines;
  let rest = 0;
  for (const r of rows) {
    outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + r.n;
    total += r.n;
    rest += r.n;
    if (r.outcome === 'matched') {
      matchedPaise += Number(r.paise);
      byRule[r.rule ?? 'unknown'] = (byRule[r.rule ?? 'unknown'] ?? 0) + r.n;
    }
  }
  if (total !== lines) throw new Error(`recon: ${lines - total} of ${lines} lines have no outcome`);
  return { outcomes, byRule, matchedPaise, rest };
}

/**
 * Writes the lines no rule matched to the file, each with its outcome and exception: one bulk
 * insert. Throws unless it wrote `lines` rows (each once: the work table's key, and the lines'
 * primary key, which also refuses a line a rule has already written).
 */
export async function writeLines(q: Queryable, fileId: string, lines: number) {
  const { rowCount } = await q.query(
    `INSERT INTO settlement.recon_lines ${LINE_COLUMNS}
     SELECT $1, s.line_no, s.direction, s.txn_ref, s.bank_ref, s.reference, s.amount_paise, s.txn_at,
            m.outcome, m.rule, m.mode, m.grp, m.our_kind, m.our_id, m.exception_id
       FROM ${STAGE} s JOIN ${MATCH} m ON m.line_no = s.line_no`,
    [fileId],
  );
  if (rowCount !== lines) throw new Error(`recon: wrote ${rowCount} of ${lines} lines of file ${fileId}`);
}

export async function saveFileCounts(
  q: Queryable,
  fileId: string,
  c: { outcomes: Record<string, number>; matchedPaise: number },
  now: Date | null,
) {
  await q.query(
    `UPDATE settlement.recon_files SET outcomes = $2, matched_paise = $3, status = 'matched', matched_at = coalesce(matched_at, $4)
      WHERE id = $1`,
    [fileId, JSON.stringify(c.outcomes), c.matchedPaise, now],
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
/** Lines of this ingestion that showed a late success of one of our payments, with their exception. */
export async function lateSuccessLines(q: Queryable, after: number, limit: number) {
  const { rows } = await q.query<LateSuccessLine>(
    `SELECT m.line_no, m.our_id AS payment_id, m.amount_paise, m.exception_id
       FROM ${MATCH} m
      WHERE m.outcome = 'late_success' AND m.our_kind = 'payment' AND m.line_no > $1 ORDER BY m.line_no LIMIT $2`,
    [after, limit],
  );
  return rows;
}

/** Recounts a file's outcomes and matched total from its lines (after a manual match). */
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

// ---- runs, the exception queue and reads -------------------------------------------------------

export async function insertRun(
  q: Queryable,
  r: { id: string; fileId: string; rulesId: string; counts: unknown; startedAt: Date; finishedAt: Date; by: string },
) {
  await q.query(
    `INSERT INTO settlement.recon_runs (id, file_id, rules_id, counts, started_at, finished_at, run_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [r.id, r.fileId, r.rulesId, JSON.stringify(r.counts), r.startedAt, r.finishedAt, r.by],
  );
}

export interface ExceptionRow {
  id: string;
  kind: ExceptionKind;
  bank_code: string;
  cycle_key: string | null;
  file_id: string | null;
  line_no: number | null;
  payment_id: string | null;
  refund_id: string | null;
  compensation_id: string | null;
  amount_paise: number;
  expected_paise: number | null;
  detail: string;
  status: 'open' | 'pending_approval' | 'resolved';
  resolution: string | null;
  reason: string | null;
  requested_resolution: 'match' | 'write_off' | null;
  requested_by: string | null;
  requested_at: Date | null;
  resolved_by: string | null;
  approved_by: string | null;
  reversal_id: string | null;
  match_kind: OurKind | null;
  match_id: string | null;
  created_at: Date;
  resolved_at: Date | null;
}

/** A flagged payment's exception (one open per payment or flagged refund: the insert is idempotent). */
export async function insertFlaggedException(
  q: Queryable,
  e: {
    id: string;
    bankCode: string;
    paymentId: string;
    refundId: string | null;
    amount: number;
    detail: string;
    now: Date;
  },
): Promise<number> {
  const { rowCount } = await q.query(
    `INSERT INTO settlement.recon_exceptions (id, kind, bank_code, payment_id, refund_id, amount_paise, expected_paise, detail, status, created_at)
     VALUES ($1, 'flagged', $2, $3, $4, $5, $5, $6, 'open', $7)
     ON CONFLICT (kind, coalesce(compensation_id, refund_id, payment_id)) WHERE line_no IS NULL AND status <> 'resolved' DO NOTHING`,
    [e.id, e.bankCode, e.paymentId, e.refundId, e.amount, e.detail, e.now],
  );
  return rowCount;
}

export async function getException(q: Queryable, id: string, lock = false): Promise<ExceptionRow | undefined> {
  const { rows } = await q.query<ExceptionRow>(
    `SELECT * FROM settlement.recon_exceptions WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

export async function listExceptions(
  q: Queryable,
  f: { status?: string; kind?: string; bankCode?: string; fileId?: string; before?: string; limit: number },
) {
  const { rows } = await q.query<ExceptionRow>(
    `SELECT * FROM settlement.recon_exceptions
      WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR bank_code = $3)
        AND ($4::text IS NULL OR file_id = $4) AND ($5::text IS NULL OR id < $5)
      ORDER BY id DESC LIMIT $6`,
    [f.status ?? null, f.kind ?? null, f.bankCode ?? null, f.fileId ?? null, f.before ?? null, f.limit],
  );
  return rows;
}

/** Closes an open exception by the system (a reversal requested, a file that settled it). */
export async function resolveBySystem(
  q: Queryable,
  id: string,
  r: {
    resolution: 'reverse' | 'matched_by_file' | 'accept';
    by: string;
    now: Date;
    reason: string;
    reversalId?: string | null;
  },
) {
  const { rowCount } = await q.query(
    `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = $2, resolved_by = $3, resolved_at = $4,
            reason = $5, reversal_id = coalesce($6, reversal_id)
      WHERE id = $1 AND status = 'open'`,
    [id, r.resolution, r.by, r.now, r.reason, r.reversalId ?? null],
  );
  return rowCount;
}

/** Resolves the open `flagged` exception of a payment (but `except`), as the resolution given says. */
export async function resolveFlaggedOf(
  q: Queryable,
  paymentId: string,
  r: { resolution: string; by: string; now: Date; reason: string; except?: string },
): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(
    `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = $2, resolved_by = $3, resolved_at = $4, reason = $5
      WHERE kind = 'flagged' AND payment_id = $1 AND status = 'open' AND ($6::text IS NULL OR id <> $6)
     RETURNING id`,
    [paymentId, r.resolution, r.by, r.now, r.reason, r.except ?? null],
  );
  return rows.map((x) => x.id);
}

/** A manual or forced match: the line's earlier outcome for that item goes, the item's match is recorded. */
export async function matchLineByHand(
  q: Queryable,
  m: {
    fileId: string;
    lineNo: number;
    kind: OurKind;
    ourId: string;
    mode: 'manual' | 'forced';
    amount: number;
    now: Date;
  },
): Promise<boolean> {
  await q.query(
    `DELETE FROM settlement.recon_item_outcomes WHERE file_id = $1 AND match_group = $2 AND our_kind = $3 AND our_id = $4 AND outcome <> 'matched'`,
    [m.fileId, m.lineNo, m.kind, m.ourId],
  );
  const ins = await q.query(
    `INSERT INTO settlement.recon_item_outcomes (our_kind, our_id, outcome, mode, rule, file_id, match_group, amount_paise, created_at)
     VALUES ($1, $2, 'matched', $3, 'operator', $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
    [m.kind, m.ourId, m.mode, m.fileId, m.lineNo, m.amount, m.now],
  );
  if (ins.rowCount === 0) return false;
  await q.query(
    `UPDATE settlement.recon_lines SET outcome = 'matched', match_rule = 'operator', match_mode = $3, match_group = line_no,
            our_kind = $4, our_id = $5 WHERE file_id = $1 AND line_no = $2`,
    [m.fileId, m.lineNo, m.mode, m.kind, m.ourId],
  );
  return true;
}

/** The open `missing` exception of an item an operator has just matched by hand. */
export async function resolveMissingMatchedByHand(
  q: Queryable,
  ourId: string,
  r: { by: string; now: Date; exceptionId: string },
) {
  await q.query(
    `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = 'matched_by_file', resolved_by = $2, resolved_at = $3,
            reason = 'matched by hand with exception ' || $4
      WHERE kind = 'missing' AND status = 'open' AND line_no IS NULL AND coalesce(compensation_id, refund_id, payment_id) = $1`,
    [ourId, r.by, r.now, r.exceptionId],
  );
}

/** The amount of one of our payments or refunds, or undefined when there is no such item. */
export async function itemAmount(q: Queryable, kind: OurKind, id: string): Promise<number | undefined> {
  const { rows } = await q.query<{ amount: number }>(
    kind === 'refund'
      ? 'SELECT amount FROM payments.refunds WHERE id = $1'
      : kind === 'compensation'
        ? `SELECT amount FROM settlement.compensations WHERE status <> 'legacy' AND payment_id || ':' || day = $1`
        : 'SELECT amount FROM payments.payments WHERE id = $1',
    [id],
  );
  return rows[0]?.amount;
}

export async function setMatchTarget(q: Queryable, id: string, kind: OurKind, ourId: string, amount: number) {
  await q.query(
    'UPDATE settlement.recon_exceptions SET match_kind = $2, match_id = $3, expected_paise = $4 WHERE id = $1',
    [id, kind, ourId, amount],
  );
}

export async function requestApproval(
  q: Queryable,
  id: string,
  r: { resolution: string; by: string; now: Date; reason: string },
) {
  await q.query(
    `UPDATE settlement.recon_exceptions SET status = 'pending_approval', requested_resolution = $2, requested_by = $3,
            requested_at = $4, reason = $5 WHERE id = $1`,
    [id, r.resolution, r.by, r.now, r.reason],
  );
}

export async function resolveException(
  q: Queryable,
  id: string,
  r: { resolution: string; reason: string; by: string; now: Date; reversalId: string | null },
) {
  await q.query(
    `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = $2, reason = $3, resolved_by = $4, resolved_at = $5,
            reversal_id = $6 WHERE id = $1`,
    [id, r.resolution, r.reason, r.by, r.now, r.reversalId],
  );
}

/** A rejected request for approval: the exception is open again, as it was. */
export async function reopenException(q: Queryable, id: string) {
  await q.query(
    `UPDATE settlement.recon_exceptions SET status = 'open', requested_resolution = NULL, requested_by = NULL,
            requested_at = NULL, match_kind = NULL, match_id = NULL WHERE id = $1`,
    [id],
  );
}

/** An approved request: resolved in the requester's name, with the approver beside it. */
export async function approveException(
  q: Queryable,
  id: string,
  r: { resolution: string; approvedBy: string; now: Date; reversalId: string | null },
) {
  await q.query(
    `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = $2, resolved_by = requested_by, approved_by = $3,
            resolved_at = $4, reversal_id = $5 WHERE id = $1`,
    [id, r.resolution, r.approvedBy, r.now, r.reversalId],
  );
}

export async function listFiles(q: Queryable, f: { bankCode?: string; before?: string; limit: number }) {
  const { rows } = await q.query<FileRow>(
    `SELECT * FROM settlement.recon_files WHERE ($1::text IS NULL OR bank_code = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [f.bankCode ?? null, f.before ?? null, f.limit],
  );
  return rows;
}

export async function getFile(q: Queryable, id: string): Promise<FileRow | undefined> {
  const { rows } = await q.query<FileRow>('SELECT * FROM settlement.recon_files WHERE id = $1', [id]);
  return rows[0];
}

export interface RunRow {
  id: string;
  file_id: string;
  rules_id: string;
  counts: unknown;
  started_at: Date;
  finished_at: Date;
  run_by: string | null;
}
export async function listRuns(q: Queryable, f: { fileId?: string; before?: string; limit: number }) {
  const { rows } = await q.query<RunRow>(
    `SELECT * FROM settlement.recon_runs WHERE ($1::text IS NULL OR file_id = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [f.fileId ?? null, f.before ?? null, f.limit],
  );
  return rows;
}

export async function listLines(q: Queryable, f: { fileId: string; outcome?: string; after?: number; limit: number }) {
  const { rows } = await q.query<Record<string, unknown> & { line_no: number }>(
    `SELECT line_no, direction, txn_ref, bank_ref, amount_paise, txn_at, outcome, match_rule, match_mode, match_group,
            our_kind, our_id, exception_id
       FROM settlement.recon_lines WHERE file_id = $1 AND ($2::text IS NULL OR outcome = $2) AND line_no > $3
      ORDER BY line_no LIMIT $4`,
    [f.fileId, f.outcome ?? null, f.after ?? 0, f.limit],
  );
  return rows;
}

/** Open exceptions by kind and status, with the oldest's creation. */
export async function openExceptionStats(q: Queryable) {
  const { rows } = await q.query<{ kind: string; status: string; n: number; oldest: Date }>(
    `SELECT kind, status, count(*)::int AS n, min(created_at) AS oldest FROM settlement.recon_exceptions
      WHERE status <> 'resolved' GROUP BY kind, status ORDER BY kind, status`,
  );
  return rows;
}

export async function fileStats(q: Queryable) {
  const { rows } = await q.query<{ bank_code: string; n: number; last_cycle: string | null }>(
    `SELECT bank_code, count(*)::int AS n, max(cycle_key) AS last_cycle FROM settlement.recon_files GROUP BY bank_code ORDER BY bank_code`,
  );
  return rows;
}

/** Our successful payments in no file yet: expected while completed after `cutoff`, missing before. */
export async function paymentsNotInAFile(q: Queryable, cutoff: Date) {
  const { rows } = await q.query<{ expected: number; missing: number }>(
    `SELECT count(*) FILTER (WHERE coalesce(p.completed_at, p.created_at) >= $1)::int AS expected,
            count(*) FILTER (WHERE coalesce(p.completed_at, p.created_at) < $1)::int AS missing
       FROM payments.payments p
      WHERE p.status IN ('succeeded', 'partially_refunded', 'refunded')
        AND NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = 'payment' AND x.our_id = p.id)`,
    [cutoff],
  );
  return rows[0];
}

// ---- metrics and settlement's port ------------------------------------------------------------

/** Lines of all files by bank and outcome: per-file counts are kept on the file row, so one row per file is read. */
export async function linesByBankAndOutcome(q: Queryable) {
  const { rows } = await q.query<{ bank: string; outcome: string; n: string }>(
    `SELECT f.bank_code AS bank, e.key AS outcome, sum(e.value::bigint)::text AS n
       FROM settlement.recon_files f, jsonb_each_text(f.outcomes) e GROUP BY 1, 2`,
  );
  return rows;
}

/** Exceptions not yet resolved, by kind, with the oldest one's age in seconds. */
export async function openExceptionsByKind(q: Queryable) {
  const { rows } = await q.query<{ kind: string; n: number; age: number | null }>(
    `SELECT kind, count(*)::int AS n, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS age
       FROM settlement.recon_exceptions WHERE status <> 'resolved' GROUP BY kind`,
  );
  return rows;
}

/** The bank's matched file for a cycle, if any (settlement's BankFileTotals). */
export async function matchedFileForCycle(q: Queryable, bankCode: string, cycleKey: string) {
  const { rows } = await q.query<{ id: string; credit_paise: number; debit_paise: number; lines: number }>(
    `SELECT id, credit_paise, debit_paise, lines FROM settlement.recon_files
      WHERE bank_code = $1 AND cycle_key = $2 AND status = 'matched'`,
    [bankCode, cycleKey],
  );
  return rows[0];
}
