import type { Db, Queryable } from '../../../platform/db.ts';
import type { Clock } from '../../../platform/clock.ts';
import { AppError } from '../../../platform/errors.ts';
import type { AuditWriter } from '../../audit/index.ts';
import { clearReconciliationFlag, listFlaggedPayments } from '../../payments/index.ts';
import { newReconId } from './ids.ts';
import { FileRejected, firstPass, parseAndStore, type FileSource } from './ingest.ts';
import { cycleKeyFrom, loadMappings, type Mapping } from './mapping.ts';
import * as repo from './recon.repo.ts';
import { loadRules, type RuleSet } from './rules.ts';
import type { ExceptionKind, ReconActor, Resolution, ReversalRequests } from './types.ts';

// Reconciliation: ingest a bank's file, match it, and work the exceptions it leaves.

export interface ReconDeps {
  db: Db;
  clock: Clock;
  audit: AuditWriter;
  /** Asks settlement for a reversal; without it, reversals are refused (503) and late successes wait in the queue. */
  reversals?: ReversalRequests;
  mappings?: Map<string, Mapping>;
  rules?: RuleSet;
}

export interface IngestReport {
  status: 'ingested' | 'dry_run' | 'already_ingested' | 'cycle_already_processed';
  file_id: string | null;
  bank_code: string;
  cycle_key: string | null;
  sha256: string;
  lines: number;
  skipped_lines: number;
  credit_paise: number;
  debit_paise: number;
  matched_paise: number;
  outcomes: Record<string, number>;
  matched_by_rule: Record<string, number>;
  exceptions: Record<string, number>;
  reversals_requested: number;
  message: string;
}

class DryRunRollback extends Error {
  constructor(readonly report: IngestReport) {
    super('dry run');
  }
}

const SYSTEM = 'system:recon';
const who = (a: ReconActor) => (a.id ? `${a.type}:${a.id}` : a.type);
const auditActor = (a: ReconActor) => ({ type: a.type, id: a.id, merchant_id: null });

export interface ExceptionRow {
  id: string;
  kind: ExceptionKind;
  bank_code: string;
  cycle_key: string | null;
  file_id: string | null;
  line_no: number | null;
  payment_id: string | null;
  refund_id: string | null;
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
  match_kind: 'payment' | 'refund' | null;
  match_id: string | null;
  created_at: Date;
  resolved_at: Date | null;
}

export interface ResolveInput {
  resolution: Resolution;
  reason: string;
  /** For `match`: the item the line is to be matched with (default: the one the exception names). */
  payment_id?: string;
  refund_id?: string;
  /** For refund_customer / reverse: less than the default amount, if the operator says so. */
  amount_paise?: number;
}

/** Resolutions that need a second, different operator before they take effect. */
const needsApproval = (r: Resolution, forced: boolean) => r === 'write_off' || (r === 'match' && forced);

export function createReconService(deps: ReconDeps) {
  const { db, clock, audit } = deps;
  const mappings = deps.mappings ?? loadMappings();
  const rules = deps.rules ?? loadRules();

  function mappingFor(bankCode: string): Mapping {
    const m = mappings.get(bankCode);
    if (!m) throw new AppError('validation_failed', `No file mapping for bank ${bankCode}`, { bank_code: bankCode });
    return m;
  }

  /** Runs every rule and classifies the rest, in `tx`; requests reversals for late successes unless dry. */
  async function matchFile(tx: Queryable, fileId: string, bankCode: string, dry: boolean) {
    const now = clock.now();
    const { rows: size } = await tx.query<{ lines: number }>('SELECT lines FROM settlement.recon_files WHERE id = $1', [
      fileId,
    ]);
    if ((size[0]?.lines ?? 0) >= 10_000) {
      await repo.analyzeLines(tx);
      // Matching a large file is a few big hash joins: with the default work_mem (4 MB) each
      // spills to disk in batches. For this transaction only.
      await tx.query(`SET LOCAL work_mem = '${db.driver === 'pglite' ? '32MB' : '128MB'}'`);
    }
    for (const rule of rules.rules)
      for (const kind of rule.applies_to) await repo.applyRule(tx, fileId, bankCode, rule, kind, now);
    await repo.classifyRest(tx, fileId, bankCode, now);
    await repo.raiseExceptions(tx, fileId, bankCode, now);
    let reversals = 0;
    // A customer debited for a payment we closed is paid back: the port starts the RBI clock.
    if (!dry && deps.reversals) {
      for (let after = 0; ; ) {
        const page = await repo.lateSuccessLines(tx, fileId, after, 500);
        if (page.length === 0) break;
        for (const l of page) {
          const r = await deps.reversals.request(tx, {
            paymentId: l.payment_id,
            amountPaise: l.amount_paise,
            reason: 'late_success',
            sourceRef: `recon:${fileId}:${l.line_no}`,
          });
          await tx.query(
            `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = 'reverse', resolved_by = $2,
                    resolved_at = $3, reversal_id = $4, reason = 'reversal requested automatically'
              WHERE id = $1 AND status = 'open'`,
            [l.exception_id, SYSTEM, now, r.reversalId],
          );
          await clearReconciliationFlag(tx, l.payment_id, now);
          reversals++;
        }
        after = page[page.length - 1].line_no;
      }
    }
    // Flagged payments the file settled are resolved by it.
    if (!dry) {
      for (const paymentId of await repo.flaggedSettledBy(tx, fileId, bankCode)) {
        await clearReconciliationFlag(tx, paymentId, now);
        await tx.query(
          `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = 'matched_by_file', resolved_by = $2,
                  resolved_at = $3, reason = 'matched in file ' || $4
            WHERE kind = 'flagged' AND payment_id = $1 AND status = 'open'`,
          [paymentId, SYSTEM, now, fileId],
        );
      }
    }
    const counts = await repo.recountFile(tx, fileId, now);
    return {
      ...counts,
      byRule: await repo.ruleCounts(tx, fileId),
      exceptions: await repo.exceptionCounts(tx, fileId),
      reversals,
    };
  }

  async function ingest(opts: {
    bankCode: string;
    open: FileSource;
    fileName?: string;
    dryRun?: boolean;
    actor: ReconActor;
    onProgress?: (lines: number) => void;
  }): Promise<IngestReport> {
    const mapping = mappingFor(opts.bankCode);
    const first = await firstPass(opts.open);
    const cycleHint =
      mapping.cycle.from === 'file_name'
        ? opts.fileName && cycleKeyFrom(mapping, opts.fileName)
        : mapping.cycle.from === 'first_line'
          ? cycleKeyFrom(mapping, first.firstLine)
          : undefined;
    if (mapping.cycle.from === 'file_name' && !cycleHint)
      throw new FileRejected(
        [{ line: 0, message: `the file name does not name its cycle (${mapping.cycle.pattern})` }],
        1,
      );
    const base = {
      bank_code: opts.bankCode,
      sha256: first.sha256,
      lines: 0,
      skipped_lines: 0,
      credit_paise: 0,
      debit_paise: 0,
      matched_paise: 0,
      outcomes: {},
      matched_by_rule: {},
      exceptions: {},
      reversals_requested: 0,
    };
    const seen = async (q: Queryable, cycle?: string): Promise<IngestReport | undefined> => {
      const f = await repo.findFile(q, opts.bankCode, first.sha256, cycle);
      if (!f) return undefined;
      const same = f.sha256 === first.sha256;
      return {
        ...base,
        status: same ? 'already_ingested' : 'cycle_already_processed',
        file_id: f.id,
        cycle_key: f.cycle_key,
        lines: f.lines,
        message: same
          ? `this file was already ingested as ${f.id}; nothing changed`
          : `cycle ${f.cycle_key} of ${opts.bankCode} was already processed from file ${f.id}; nothing changed`,
      };
    };
    const before = await seen(db, cycleHint || undefined);
    if (before) return before;

    const started = clock.now();
    let attempt = 0;
    try {
      return await db.tx(async (tx) => {
        // The file is a stream: a transaction the database asks to retry cannot be replayed here.
        if (++attempt > 1) throw new AppError('conflict', 'The ingestion met a concurrent change; send the file again');
        const fileId = newReconId('file');
        const stored = await parseAndStore(tx, {
          mapping,
          open: opts.open,
          fileName: opts.fileName,
          cycleHint: cycleHint || undefined,
          onProgress: opts.onProgress,
          claim: async (cycleKey) => {
            await repo.insertFile(tx, {
              id: fileId,
              bankCode: opts.bankCode,
              cycleKey,
              sha256: first.sha256,
              fileName: opts.fileName ?? null,
              mappingId: mapping.id,
              by: who(opts.actor),
              now: started,
            });
            return fileId;
          },
        });
        const m = await matchFile(tx, fileId, opts.bankCode, opts.dryRun === true);
        const report: IngestReport = {
          ...base,
          status: opts.dryRun ? 'dry_run' : 'ingested',
          file_id: opts.dryRun ? null : fileId,
          cycle_key: stored.cycleKey,
          lines: stored.lines,
          skipped_lines: stored.skipped,
          credit_paise: stored.creditPaise,
          debit_paise: stored.debitPaise,
          matched_paise: m.matchedPaise,
          outcomes: m.outcomes,
          matched_by_rule: m.byRule,
          exceptions: m.exceptions,
          reversals_requested: m.reversals,
          message: opts.dryRun
            ? 'dry run: this is what the file would do; nothing was stored'
            : `ingested ${stored.lines} lines for cycle ${stored.cycleKey}`,
        };
        if (opts.dryRun) throw new DryRunRollback(report);
        await tx.query(
          `INSERT INTO settlement.recon_runs (id, file_id, rules_id, counts, started_at, finished_at, run_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [
            newReconId('run'),
            fileId,
            rules.id,
            JSON.stringify({ outcomes: m.outcomes, matched_by_rule: m.byRule, exceptions: m.exceptions }),
            started,
            clock.now(),
            who(opts.actor),
          ],
        );
        await audit.record(tx, {
          action: 'recon.file_ingested',
          actor: auditActor(opts.actor),
          resource: { type: 'recon_file', id: fileId },
          details: { bank_code: opts.bankCode, cycle_key: stored.cycleKey, lines: stored.lines, sha256: first.sha256 },
        });
        return report;
      });
    } catch (e) {
      if (e instanceof DryRunRollback) return e.report;
      // Two ingests of one file (or cycle) at once: the second waits on the first's row, then fails on it.
      if ((e as { code?: string }).code === '23505') {
        const after = await seen(db, cycleHint || undefined);
        if (after) return after;
      }
      throw e;
    }
  }

  // ---- the exception queue ---------------------------------------------------------------

  /** Brings today's flagged payments into the queue (idempotent: one open exception per flagged item). */
  async function syncFlagged(q: Queryable = db) {
    const now = clock.now();
    let n = 0;
    for (const f of await listFlaggedPayments(q, 1000)) {
      const { rowCount } = await q.query(
        `INSERT INTO settlement.recon_exceptions (id, kind, bank_code, payment_id, refund_id, amount_paise, expected_paise, detail, status, created_at)
         VALUES ($1, 'flagged', $2, $3, $4, $5, $5, $6, 'open', $7)
         ON CONFLICT (kind, coalesce(refund_id, payment_id)) WHERE line_no IS NULL AND status <> 'resolved' DO NOTHING`,
        [
          newReconId('exception'),
          f.bank_code,
          f.id,
          f.flagged_refund_id,
          f.amount,
          `flagged: ${f.reconciliation_reason ?? 'unknown'}`,
          now,
        ],
      );
      n += rowCount;
    }
    return n;
  }

  async function getException(q: Queryable, id: string, lock = false): Promise<ExceptionRow> {
    const { rows } = await q.query<ExceptionRow>(
      `SELECT * FROM settlement.recon_exceptions WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    if (!rows[0]) throw new AppError('not_found', 'No such exception');
    return rows[0];
  }

  async function listExceptions(f: {
    status?: string;
    kind?: string;
    bankCode?: string;
    fileId?: string;
    before?: string;
    limit: number;
  }) {
    await syncFlagged();
    const { rows } = await db.query<ExceptionRow>(
      `SELECT * FROM settlement.recon_exceptions
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR bank_code = $3)
          AND ($4::text IS NULL OR file_id = $4) AND ($5::text IS NULL OR id < $5)
        ORDER BY id DESC LIMIT $6`,
      [f.status ?? null, f.kind ?? null, f.bankCode ?? null, f.fileId ?? null, f.before ?? null, f.limit + 1],
    );
    return rows;
  }

  function reversalReason(kind: ExceptionKind): 'late_success' | 'amount_mismatch' | 'duplicate_debit' | 'operator' {
    if (kind === 'late_success') return 'late_success';
    if (kind === 'amount_over' || kind === 'amount_under') return 'amount_mismatch';
    if (kind === 'duplicate') return 'duplicate_debit';
    return 'operator';
  }
  function defaultReversalAmount(e: ExceptionRow): number {
    if (e.kind === 'amount_over' && e.expected_paise !== null) return e.amount_paise - e.expected_paise;
    return e.amount_paise;
  }

  /** Carries a resolution out: the match, the reversal, the flags. Runs when it takes effect. */
  async function apply(
    tx: Queryable,
    e: ExceptionRow,
    res: Resolution,
    input: ResolveInput & { forced?: boolean },
    by: string,
  ) {
    const now = clock.now();
    let reversalId: string | null = null;
    if (res === 'refund_customer' || res === 'reverse') {
      if (!deps.reversals) throw new AppError('service_unavailable', 'Reversals are not available in this process');
      if (!e.payment_id) throw new AppError('invalid_request', 'This exception names no payment of ours to pay back');
      const amount = input.amount_paise ?? defaultReversalAmount(e);
      if (!Number.isSafeInteger(amount) || amount <= 0 || amount > defaultReversalAmount(e))
        throw new AppError('invalid_amount', `The amount must be 1 to ${defaultReversalAmount(e)} paise`);
      const r = await deps.reversals.request(tx, {
        paymentId: e.payment_id,
        amountPaise: amount,
        reason: reversalReason(e.kind),
        sourceRef: `recon:${e.id}`,
      });
      reversalId = r.reversalId;
    }
    if (res === 'match') {
      const kind = (e.match_kind ?? (input.refund_id ? 'refund' : e.refund_id ? 'refund' : 'payment')) as
        | 'payment'
        | 'refund';
      const ourId =
        e.match_id ?? input.refund_id ?? input.payment_id ?? (kind === 'refund' ? e.refund_id : e.payment_id);
      if (!e.file_id || e.line_no === null || !ourId)
        throw new AppError('invalid_request', 'A match needs a bank line and one of our payments or refunds');
      const mode = input.forced ? 'forced' : 'manual';
      await tx.query(
        `DELETE FROM settlement.recon_item_outcomes WHERE file_id = $1 AND match_group = $2 AND our_kind = $3 AND our_id = $4 AND outcome <> 'matched'`,
        [e.file_id, e.line_no, kind, ourId],
      );
      const ins = await tx.query(
        `INSERT INTO settlement.recon_item_outcomes (our_kind, our_id, outcome, mode, rule, file_id, match_group, amount_paise, created_at)
         VALUES ($1, $2, 'matched', $3, 'operator', $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        [kind, ourId, mode, e.file_id, e.line_no, e.expected_paise ?? e.amount_paise, now],
      );
      if (ins.rowCount === 0) throw new AppError('conflict', 'That item is already matched to another bank line');
      await tx.query(
        `UPDATE settlement.recon_lines SET outcome = 'matched', match_rule = 'operator', match_mode = $3, match_group = line_no,
                our_kind = $4, our_id = $5 WHERE file_id = $1 AND line_no = $2`,
        [e.file_id, e.line_no, mode, kind, ourId],
      );
      await repo.recountFile(tx, e.file_id, null);
      await tx.query(
        `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = 'matched_by_file', resolved_by = $2, resolved_at = $3,
                reason = 'matched by hand with exception ' || $4
          WHERE kind = 'missing' AND status = 'open' AND line_no IS NULL AND coalesce(refund_id, payment_id) = $1`,
        [ourId, by, now, e.id],
      );
    }
    if (e.payment_id && (await clearReconciliationFlag(tx, e.payment_id, now))) {
      await tx.query(
        `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = $2, resolved_by = $3, resolved_at = $4,
                reason = 'resolved with exception ' || $5
          WHERE kind = 'flagged' AND payment_id = $1 AND status = 'open' AND id <> $5`,
        [e.payment_id, res, by, now, e.id],
      );
    }
    return reversalId;
  }

  async function resolveIn(tx: Queryable, actor: ReconActor, id: string, input: ResolveInput) {
    const e = await getException(tx, id, true);
    if (e.status !== 'open')
      throw new AppError('invalid_state_transition', `The exception is ${e.status.replace('_', ' ')}, not open`);
    const by = who(actor);
    const now = clock.now();
    let forced = false;
    if (input.resolution === 'match') {
      if (e.line_no === null)
        throw new AppError('invalid_request', 'Only an exception about a bank line can be matched');
      const kind = input.refund_id || (!input.payment_id && e.refund_id) ? 'refund' : 'payment';
      const ourId = input.refund_id ?? input.payment_id ?? (kind === 'refund' ? e.refund_id : e.payment_id);
      if (!ourId) throw new AppError('invalid_request', 'Name the payment_id or refund_id to match this line with');
      const { rows } = await tx.query<{ amount: number }>(
        kind === 'refund'
          ? 'SELECT amount FROM payments.refunds WHERE id = $1'
          : 'SELECT amount FROM payments.payments WHERE id = $1',
        [ourId],
      );
      if (!rows[0]) throw new AppError(kind === 'refund' ? 'not_found' : 'payment_not_found', `No such ${kind}`);
      // Amounts that agree are a manual match; anything else forces it, and a second operator must agree.
      forced = rows[0].amount !== e.amount_paise || e.kind === 'late_success' || e.kind === 'not_final';
      await tx.query(
        `UPDATE settlement.recon_exceptions SET match_kind = $2, match_id = $3, expected_paise = $4 WHERE id = $1`,
        [id, kind, ourId, rows[0].amount],
      );
      e.match_kind = kind;
      e.match_id = ourId;
      e.expected_paise = rows[0].amount;
    }
    if (needsApproval(input.resolution, forced)) {
      await tx.query(
        `UPDATE settlement.recon_exceptions SET status = 'pending_approval', requested_resolution = $2, requested_by = $3,
                requested_at = $4, reason = $5 WHERE id = $1`,
        [id, input.resolution, by, now, input.reason],
      );
      await audit.record(tx, {
        action: 'recon.exception_approval_requested',
        actor: auditActor(actor),
        resource: { type: 'recon_exception', id },
        details: { kind: e.kind, resolution: input.resolution, forced },
      });
      return getException(tx, id);
    }
    const reversalId = await apply(tx, e, input.resolution, { ...input, forced }, by);
    await tx.query(
      `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = $2, reason = $3, resolved_by = $4, resolved_at = $5,
              reversal_id = $6 WHERE id = $1`,
      [id, input.resolution, input.reason, by, now, reversalId],
    );
    await audit.record(tx, {
      action: 'recon.exception_resolved',
      actor: auditActor(actor),
      resource: { type: 'recon_exception', id },
      details: { kind: e.kind, resolution: input.resolution, payment_id: e.payment_id, reversal_id: reversalId },
    });
    return getException(tx, id);
  }

  async function resolve(actor: ReconActor, id: string, input: ResolveInput) {
    return db.tx((tx) => resolveIn(tx, actor, id, input));
  }

  /** The second pair of eyes: another operator approves (or rejects) a forced match or a write-off. */
  async function approve(actor: ReconActor, id: string, decision: 'approve' | 'reject', reason?: string) {
    return db.tx(async (tx) => {
      const e = await getException(tx, id, true);
      if (e.status !== 'pending_approval')
        throw new AppError('invalid_state_transition', 'The exception is not waiting for an approval');
      if (actor.type !== 'operator') throw new AppError('forbidden', 'Only an operator can approve');
      const by = who(actor);
      if (by === e.requested_by)
        throw new AppError('forbidden', 'A second, different operator must approve (four eyes)');
      const res = e.requested_resolution as Resolution;
      const now = clock.now();
      if (decision === 'reject') {
        await tx.query(
          `UPDATE settlement.recon_exceptions SET status = 'open', requested_resolution = NULL, requested_by = NULL,
                  requested_at = NULL, match_kind = NULL, match_id = NULL WHERE id = $1`,
          [id],
        );
        await audit.record(tx, {
          action: 'recon.exception_approval_rejected',
          actor: auditActor(actor),
          resource: { type: 'recon_exception', id },
          details: { kind: e.kind, resolution: res, reason_given: Boolean(reason) },
        });
        return getException(tx, id);
      }
      const reversalId = await apply(tx, e, res, { resolution: res, reason: e.reason ?? '', forced: true }, by);
      await tx.query(
        `UPDATE settlement.recon_exceptions SET status = 'resolved', resolution = $2, resolved_by = requested_by, approved_by = $3,
                resolved_at = $4, reversal_id = $5 WHERE id = $1`,
        [id, res, by, now, reversalId],
      );
      await audit.record(tx, {
        action: 'recon.exception_resolved',
        actor: auditActor(actor),
        resource: { type: 'recon_exception', id },
        details: {
          kind: e.kind,
          resolution: res,
          requested_by: e.requested_by,
          approved_by: by,
          payment_id: e.payment_id,
        },
      });
      return getException(tx, id);
    });
  }

  /**
   * Resolutions from a CSV (exception_id,resolution,reason[,payment_id]): every row is checked,
   * then all are applied in one transaction, or none (a bad row is named by its line number).
   */
  async function resolveBulk(actor: ReconActor, csv: string) {
    const rows = csv.split(/\r?\n/);
    const header = (rows.shift() ?? '').split(',').map((s) => s.trim());
    const want = ['exception_id', 'resolution', 'reason'];
    if (want.some((w, i) => header[i] !== w) || header.length > 4 || (header[3] && header[3] !== 'payment_id'))
      throw new AppError('validation_failed', 'The CSV header must be exception_id,resolution,reason[,payment_id]');
    const items: { line: number; id: string; input: ResolveInput }[] = [];
    const problems: { line: number; message: string }[] = [];
    rows.forEach((raw, i) => {
      if (raw.trim() === '') return;
      const c = raw.split(',').map((s) => s.trim());
      const line = i + 2;
      if (c.length < 3 || c.length > header.length) return problems.push({ line, message: 'wrong number of columns' });
      if (!/^rce_[0-9a-f]{32}$/.test(c[0])) return problems.push({ line, message: 'not an exception id' });
      if (!['accept', 'refund_customer', 'reverse', 'write_off', 'match'].includes(c[1]))
        return problems.push({ line, message: `unknown resolution "${c[1]}"` });
      if (c[2].length < 3 || c[2].length > 500)
        return problems.push({ line, message: 'a reason of 3 to 500 characters is needed' });
      items.push({
        line,
        id: c[0],
        input: { resolution: c[1] as Resolution, reason: c[2], ...(c[3] ? { payment_id: c[3] } : {}) },
      });
    });
    if (items.length > 1000) problems.push({ line: 0, message: 'at most 1000 rows at once' });
    if (problems.length)
      throw new AppError('validation_failed', 'The CSV has bad rows; nothing was resolved', { problems });
    return db.tx(async (tx) => {
      const out = [];
      for (const it of items) {
        try {
          const r = await resolveIn(tx, actor, it.id, it.input);
          out.push({ line: it.line, id: it.id, status: r.status });
        } catch (e) {
          if (e instanceof AppError)
            throw new AppError(e.code, `line ${it.line}: ${e.message}; nothing was resolved`, { line: it.line });
          throw e;
        }
      }
      return {
        resolved: out.filter((o) => o.status === 'resolved').length,
        pending_approval: out.filter((o) => o.status === 'pending_approval').length,
        rows: out,
      };
    });
  }

  // ---- reads ------------------------------------------------------------------------------

  async function listFiles(f: { bankCode?: string; before?: string; limit: number }) {
    const { rows } = await db.query<repo.FileRow>(
      `SELECT * FROM settlement.recon_files WHERE ($1::text IS NULL OR bank_code = $1) AND ($2::text IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3`,
      [f.bankCode ?? null, f.before ?? null, f.limit + 1],
    );
    return rows;
  }
  async function getFile(id: string) {
    const { rows } = await db.query<repo.FileRow>('SELECT * FROM settlement.recon_files WHERE id = $1', [id]);
    if (!rows[0]) throw new AppError('not_found', 'No such file');
    return rows[0];
  }
  async function listRuns(f: { fileId?: string; before?: string; limit: number }) {
    const { rows } = await db.query<{
      id: string;
      file_id: string;
      rules_id: string;
      counts: unknown;
      started_at: Date;
      finished_at: Date;
      run_by: string | null;
    }>(
      `SELECT * FROM settlement.recon_runs WHERE ($1::text IS NULL OR file_id = $1) AND ($2::text IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3`,
      [f.fileId ?? null, f.before ?? null, f.limit + 1],
    );
    return rows;
  }
  async function listLines(f: { fileId: string; outcome?: string; after?: number; limit: number }) {
    await getFile(f.fileId);
    const { rows } = await db.query<Record<string, unknown> & { line_no: number }>(
      `SELECT line_no, direction, txn_ref, bank_ref, amount_paise, txn_at, outcome, match_rule, match_mode, match_group,
              our_kind, our_id, exception_id
         FROM settlement.recon_lines WHERE file_id = $1 AND ($2::text IS NULL OR outcome = $2) AND line_no > $3
        ORDER BY line_no LIMIT $4`,
      [f.fileId, f.outcome ?? null, f.after ?? 0, f.limit + 1],
    );
    return rows;
  }

  /** Where reconciliation stands: files, exceptions by kind and status, and ours still expected or missing. */
  async function status() {
    const now = clock.now();
    const cutoff = new Date(now.getTime() - rules.missing_after_hours * 3_600_000);
    const ex = await db.query<{ kind: string; status: string; n: number; oldest: Date }>(
      `SELECT kind, status, count(*)::int AS n, min(created_at) AS oldest FROM settlement.recon_exceptions
        WHERE status <> 'resolved' GROUP BY kind, status ORDER BY kind, status`,
    );
    const files = await db.query<{ bank_code: string; n: number; last_cycle: string | null }>(
      `SELECT bank_code, count(*)::int AS n, max(cycle_key) AS last_cycle FROM settlement.recon_files GROUP BY bank_code ORDER BY bank_code`,
    );
    // Ours not yet in any file: expected while young, missing once past the deadline.
    const ours = await db.query<{ expected: number; missing: number }>(
      `SELECT count(*) FILTER (WHERE coalesce(p.completed_at, p.created_at) >= $1)::int AS expected,
              count(*) FILTER (WHERE coalesce(p.completed_at, p.created_at) < $1)::int AS missing
         FROM payments.payments p
        WHERE p.status IN ('succeeded', 'partially_refunded', 'refunded')
          AND NOT EXISTS (SELECT 1 FROM settlement.recon_item_outcomes x WHERE x.our_kind = 'payment' AND x.our_id = p.id)`,
      [cutoff],
    );
    return {
      files: files.rows,
      exceptions: ex.rows.map((r) => ({
        kind: r.kind,
        status: r.status,
        count: r.n,
        oldest_age_seconds: Math.max(0, Math.round((now.getTime() - new Date(r.oldest).getTime()) / 1000)),
      })),
      payments_expected: ours.rows[0].expected,
      payments_missing: ours.rows[0].missing,
      missing_after_hours: rules.missing_after_hours,
    };
  }

  return {
    mappings,
    rules,
    ingest,
    syncFlagged,
    listExceptions,
    getException: (id: string) => getException(db, id),
    resolve,
    approve,
    resolveBulk,
    listFiles,
    getFile,
    listRuns,
    listLines,
    status,
  };
}

export type ReconService = ReturnType<typeof createReconService>;
