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
import type { ExceptionKind, FlaggedPaymentSettlement, ReconActor, Resolution, ReversalRequests } from './types.ts';

// Reconciliation: ingest a bank's file, match it, and work the exceptions it leaves.

export interface ReconDeps {
  db: Db;
  clock: Clock;
  audit: AuditWriter;
  /** Asks settlement for a reversal; without it, reversals are refused (503) and late successes wait in the queue. */
  reversals?: ReversalRequests;
  /**
   * Payments' transition for a flagged payment the file decides (deemed or unknown at the bank);
   * without it, such a line stays `not_final` and waits for an operator.
   */
  payments?: FlaggedPaymentSettlement;
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

/** The rule named on a line that settled a payment flagged deemed or unknown at the bank. */
export const FLAG_RULE = 'flagged_paid_in_file';

/** Up to this many lines left after the rules, classification looks their items up one by one (by index). */
const PROBE_LINES = 20_000;

/** From this many lines on, matching gets fresh statistics and more work_mem. */
const LARGE_FILE_LINES = 10_000;

interface StoredFile {
  id: string;
  bankCode: string;
  cycleKey: string;
  lines: number;
  creditLines: number;
  debitLines: number;
}

class DryRunRollback extends Error {
  constructor(readonly report: IngestReport) {
    super('dry run');
  }
}

const SYSTEM = 'system:recon';
const who = (a: ReconActor) => (a.id ? `${a.type}:${a.id}` : a.type);
const auditActor = (a: ReconActor) => ({ type: a.type, id: a.id, merchant_id: null });

export type { ExceptionRow } from './recon.repo.ts';
type ExceptionRow = repo.ExceptionRow;

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

  /**
   * Matches the staged lines of a file: every rule in order, then the classification of the
   * rest, then the exceptions; writes the lines with their outcomes; requests reversals for late
   * successes and settles flagged payments unless dry. All in `tx`, set-based: a handful of
   * statements per rule over the whole file, whatever its size.
   */
  async function matchFile(tx: Queryable, file: StoredFile, actor: ReconActor, dry: boolean) {
    const now = clock.now();
    const large = file.lines >= LARGE_FILE_LINES;
    if (large) await repo.prepareLargeMatch(tx, db.driver === 'pglite' ? '32MB' : '128MB');
    // Lines still without an outcome, per direction: a rule for a direction with none left is skipped.
    const left = { credit: file.creditLines, debit: file.debitLines };
    let src = repo.ALL_LINES;
    let decided = false;
    // The first rule statement copies the lines it leaves out of the staged ones (to recon_open),
    // and each rule after it deletes those it takes, so the rules and classifications after the
    // first work on the few lines left, not on the whole file again. Classifications narrow the
    // open lines after them.
    const narrowed = async () => {
      if (decided) src = await repo.narrowOpen(tx, src, large);
      decided = false;
      return src;
    };
    const byRules = { byRule: {} as Record<string, number>, lines: 0, paise: 0 };
    for (const rule of rules.rules)
      for (const kind of rule.applies_to) {
        const dir = kind === 'payment' ? 'credit' : 'debit';
        if (left[dir] === 0) continue;
        const r = await repo.applyRule(tx, src, file.id, file.bankCode, rule, kind, now, large);
        if (src === repo.ALL_LINES && large) await repo.analyzeOpen(tx);
        src = repo.OPEN_LINES;
        left[dir] -= r.lines;
        if (r.lines > 0) byRules.byRule[rule.name] = (byRules.byRule[rule.name] ?? 0) + r.lines;
        byRules.lines += r.lines;
        byRules.paise += r.paise;
      }
    if (left.credit + left.debit > 0) {
      // A few lines left after the rules: each looks up its item by index rather than joining all of ours.
      const probe = src === repo.OPEN_LINES && left.credit + left.debit <= PROBE_LINES;
      for (const key of repo.CLASSIFY_KEYS) {
        // A line for an item already settled is a duplicate; the first one for an item no rule
        // took is a mismatch, a late success or not final; the lines after it, duplicates.
        if ((await repo.classifyDuplicates(tx, await narrowed(), file.bankCode, key, probe)) > 0) decided = true;
        if ((await repo.classifyFirstLines(tx, await narrowed(), file.id, file.bankCode, key, now, probe)) > 0)
          decided = true;
        if ((await repo.classifyDuplicates(tx, await narrowed(), file.bankCode, key, probe)) > 0) decided = true;
      }
      await repo.classifyUnknown(tx, await narrowed(), file.bankCode, probe);
    }
    if (deps.payments) await settleFlagged(tx, deps.payments, file, actor, now);
    await repo.raiseExceptions(tx, file.id, file.bankCode, file.cycleKey, now, large);
    const counts = await repo.matchedCounts(tx, file.lines, byRules);
    await repo.writeLines(tx, file.id, counts.rest);
    await repo.saveFileCounts(tx, file.id, counts, now);
    let reversals = 0;
    // A customer debited for a payment we closed is paid back: the port starts the RBI clock.
    if (!dry && deps.reversals) {
      for (let after = 0; ; ) {
        const page = await repo.lateSuccessLines(tx, after, 500);
        if (page.length === 0) break;
        for (const l of page) {
          const r = await deps.reversals.request(tx, {
            paymentId: l.payment_id,
            amountPaise: l.amount_paise,
            reason: 'late_success',
            sourceRef: `recon:${file.id}:${l.line_no}`,
          });
          await repo.resolveBySystem(tx, l.exception_id, {
            resolution: 'reverse',
            by: SYSTEM,
            now,
            reason: 'reversal requested automatically',
            reversalId: r.reversalId,
          });
          await clearReconciliationFlag(tx, l.payment_id, now);
          reversals++;
        }
        after = page[page.length - 1].line_no;
      }
    }
    // Flagged payments the file settled are resolved by it.
    if (!dry) {
      for (const paymentId of await repo.flaggedSettledBy(tx, file.id, file.bankCode)) {
        await clearReconciliationFlag(tx, paymentId, now);
        await repo.resolveFlaggedOf(tx, paymentId, {
          resolution: 'matched_by_file',
          by: SYSTEM,
          now,
          reason: `matched in file ${file.id}`,
        });
      }
    }
    return {
      outcomes: counts.outcomes,
      matchedPaise: counts.matchedPaise,
      byRule: counts.byRule,
      exceptions: await repo.exceptionCounts(tx, file.id),
      reversals,
    };
  }

  /**
   * Payments flagged while pending, deemed or unknown at the bank, that the file decides. A line
   * for the payment's amount shows it paid: the payment succeeds (payments' transition, with its
   * ledger entry) and the line is matched by FLAG_RULE; the flag and its exception are then
   * resolved with the other flagged payments the file settled. A file whose span covers the
   * payment's whole validity (creation to expiry) without a line for it shows it not paid: the
   * payment fails, its flag is cleared and its exception resolved. Another amount, or any other
   * flag, stays for an operator. Each change is an audit event in the ingestion's transaction
   * (a dry run rolls it back with the rest).
   */
  async function settleFlagged(
    tx: Queryable,
    port: FlaggedPaymentSettlement,
    file: StoredFile,
    actor: ReconActor,
    now: Date,
  ) {
    const record = (paymentId: string, details: Record<string, unknown>) =>
      audit.record(tx, {
        action: 'recon.flagged_payment_settled',
        actor: auditActor(actor),
        resource: { type: 'payment', id: paymentId },
        details: { file_id: file.id, bank_code: file.bankCode, cycle_key: file.cycleKey, ...details },
      });
    for (const l of await repo.notFinalFlaggedLines(tx)) {
      const p = await port.settleFlaggedFromBankFile(tx, l.payment_id, {
        paid: true,
        amountPaise: l.amount_paise,
        detail: `paid: line ${l.line_no} of bank file ${file.id}`,
      });
      if (p?.status !== 'succeeded') continue;
      await repo.matchSettledFlag(tx, l.line_no, l.payment_id, FLAG_RULE);
      await record(l.payment_id, { flag: l.flag, outcome: 'succeeded', line_no: l.line_no });
    }
    for (const f of await repo.flaggedUnpaidBy(tx, file.id, file.bankCode)) {
      const p = await port.settleFlaggedFromBankFile(tx, f.payment_id, {
        paid: false,
        detail: `not paid: not in bank file ${file.id}, which covers its validity`,
      });
      if (p?.status !== 'failed') continue;
      await clearReconciliationFlag(tx, f.payment_id, now);
      await repo.resolveFlaggedOf(tx, f.payment_id, {
        resolution: 'accept',
        by: SYSTEM,
        now,
        reason: `not in bank file ${file.id}, which covers its validity: closed as failed`,
      });
      await record(f.payment_id, { flag: f.flag, outcome: 'failed', line_no: null });
    }
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
        await repo.createWorkTables(tx);
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
        const m = await matchFile(
          tx,
          {
            id: fileId,
            bankCode: opts.bankCode,
            cycleKey: stored.cycleKey,
            lines: stored.lines,
            creditLines: stored.creditLines,
            debitLines: stored.debitLines,
          },
          opts.actor,
          opts.dryRun === true,
        );
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
        await repo.insertRun(tx, {
          id: newReconId('run'),
          fileId,
          rulesId: rules.id,
          counts: { outcomes: m.outcomes, matched_by_rule: m.byRule, exceptions: m.exceptions },
          startedAt: started,
          finishedAt: clock.now(),
          by: who(opts.actor),
        });
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
      n += await repo.insertFlaggedException(q, {
        id: newReconId('exception'),
        bankCode: f.bank_code,
        paymentId: f.id,
        refundId: f.flagged_refund_id,
        amount: f.amount,
        detail: `flagged: ${f.reconciliation_reason ?? 'unknown'}`,
        now,
      });
    }
    return n;
  }

  async function getException(q: Queryable, id: string, lock = false): Promise<ExceptionRow> {
    const e = await repo.getException(q, id, lock);
    if (!e) throw new AppError('not_found', 'No such exception');
    return e;
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
    return repo.listExceptions(db, { ...f, limit: f.limit + 1 });
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
      // A compensation line is money we sent the customer, not money taken from them: nothing to reverse.
      if (e.compensation_id)
        throw new AppError(
          'invalid_request',
          'This exception is about a compensation credit: there is nothing to pay back',
        );
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
      const kind: repo.OurKind =
        e.match_kind ??
        (input.refund_id ? 'refund' : e.compensation_id ? 'compensation' : e.refund_id ? 'refund' : 'payment');
      const ourId =
        e.match_id ??
        input.refund_id ??
        input.payment_id ??
        (kind === 'refund' ? e.refund_id : kind === 'compensation' ? e.compensation_id : e.payment_id);
      if (!e.file_id || e.line_no === null || !ourId)
        throw new AppError('invalid_request', 'A match needs a bank line and one of our payments or refunds');
      const mode = input.forced ? 'forced' : 'manual';
      const amount = e.expected_paise ?? e.amount_paise;
      const fileId = e.file_id;
      if (!(await repo.matchLineByHand(tx, { fileId, lineNo: e.line_no, kind, ourId, mode, amount, now })))
        throw new AppError('conflict', 'That item is already matched to another bank line');
      await repo.recountFile(tx, fileId, null);
      await repo.resolveMissingMatchedByHand(tx, ourId, { by, now, exceptionId: e.id });
    }
    if (e.payment_id && !e.compensation_id && (await clearReconciliationFlag(tx, e.payment_id, now)))
      await repo.resolveFlaggedOf(tx, e.payment_id, {
        resolution: res,
        by,
        now,
        reason: `resolved with exception ${e.id}`,
        except: e.id,
      });
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
      // Without an id given, the line's own item: a refund's or a compensation's, else the payment.
      const kind: repo.OurKind = input.refund_id
        ? 'refund'
        : input.payment_id
          ? 'payment'
          : e.compensation_id
            ? 'compensation'
            : e.refund_id
              ? 'refund'
              : 'payment';
      const ourId =
        input.refund_id ??
        input.payment_id ??
        (kind === 'refund' ? e.refund_id : kind === 'compensation' ? e.compensation_id : e.payment_id);
      if (!ourId) throw new AppError('invalid_request', 'Name the payment_id or refund_id to match this line with');
      const amount = await repo.itemAmount(tx, kind, ourId);
      if (amount === undefined)
        throw new AppError(kind === 'payment' ? 'payment_not_found' : 'not_found', `No such ${kind}`);
      // Amounts that agree are a manual match; anything else forces it, and a second operator must agree.
      forced = amount !== e.amount_paise || e.kind === 'late_success' || e.kind === 'not_final';
      await repo.setMatchTarget(tx, id, kind, ourId, amount);
      e.match_kind = kind;
      e.match_id = ourId;
      e.expected_paise = amount;
    }
    if (needsApproval(input.resolution, forced)) {
      await repo.requestApproval(tx, id, { resolution: input.resolution, by, now, reason: input.reason });
      await audit.record(tx, {
        action: 'recon.exception_approval_requested',
        actor: auditActor(actor),
        resource: { type: 'recon_exception', id },
        details: { kind: e.kind, resolution: input.resolution, forced },
      });
      return getException(tx, id);
    }
    const reversalId = await apply(tx, e, input.resolution, { ...input, forced }, by);
    await repo.resolveException(tx, id, { resolution: input.resolution, reason: input.reason, by, now, reversalId });
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
        await repo.reopenException(tx, id);
        await audit.record(tx, {
          action: 'recon.exception_approval_rejected',
          actor: auditActor(actor),
          resource: { type: 'recon_exception', id },
          details: { kind: e.kind, resolution: res, reason_given: Boolean(reason) },
        });
        return getException(tx, id);
      }
      const reversalId = await apply(tx, e, res, { resolution: res, reason: e.reason ?? '', forced: true }, by);
      await repo.approveException(tx, id, { resolution: res, approvedBy: by, now, reversalId });
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

  const listFiles = (f: { bankCode?: string; before?: string; limit: number }) =>
    repo.listFiles(db, { ...f, limit: f.limit + 1 });
  async function getFile(id: string) {
    const f = await repo.getFile(db, id);
    if (!f) throw new AppError('not_found', 'No such file');
    return f;
  }
  const listRuns = (f: { fileId?: string; before?: string; limit: number }) =>
    repo.listRuns(db, { ...f, limit: f.limit + 1 });
  async function listLines(f: { fileId: string; outcome?: string; after?: number; limit: number }) {
    await getFile(f.fileId);
    return repo.listLines(db, { ...f, limit: f.limit + 1 });
  }

  /** Where reconciliation stands: files, exceptions by kind and status, and ours still expected or missing. */
  async function status() {
    const now = clock.now();
    const cutoff = new Date(now.getTime() - rules.missing_after_hours * 3_600_000);
    const ex = await repo.openExceptionStats(db);
    const files = await repo.fileStats(db);
    // Ours not yet in any file: expected while young, missing once past the deadline.
    const ours = await repo.paymentsNotInAFile(db, cutoff);
    return {
      files,
      exceptions: ex.map((r) => ({
        kind: r.kind,
        status: r.status,
        count: r.n,
        oldest_age_seconds: Math.max(0, Math.round((now.getTime() - new Date(r.oldest).getTime()) / 1000)),
      })),
      payments_expected: ours.expected,
      payments_missing: ours.missing,
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
