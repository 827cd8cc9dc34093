import type { Logger } from 'pino';
import type { Db, Queryable } from '../../../platform/db.ts';
import type { Clock } from '../../../platform/clock.ts';
import { AppError } from '../../../platform/errors.ts';
import { newSettlementId } from '../ids.ts';
import { DAY_MS } from '../calendar.ts';
import { cycleOf, lastEndedCycle, nextCycle, parseCycleKey, type CycleWindow } from './cycleKeys.ts';
import * as repo from './cycles.repo.ts';

/**
 * The bank's file totals for a cycle, as reconciliation (recon/) ingested them: the port settlement
 * compares its expectation against. null: no file for that bank and cycle yet ("awaiting file").
 */
export interface BankFileTotals {
  forCycle(
    bankCode: string,
    cycleKey: string,
  ): Promise<{ fileId: string; creditPaise: number; debitPaise: number; lines: number } | null>;
}

export interface CyclesDeps {
  db: Db;
  clock: Clock;
  logger: Logger;
  /** Cut-offs, minutes after 00:00 IST (config.ts). */
  cutoffs: readonly number[];
  /** Banks that always get a line per cycle (even with nothing expected: a file with lines is then a difference). */
  bankCodes: readonly string[];
  /** Injected by the app: recon's implementation. Without one every bank stays "awaiting file". */
  files?: BankFileTotals;
  /** The payouts of a cycle, created in the transaction that closes it. */
  onClose?(tx: Queryable, w: CycleWindow, now: Date): Promise<number>;
}

/** Where the first cycle's payouts begin: before anything this installation can have recorded. */
const SETTLES_FROM_THE_START = new Date('1970-01-01T00:00:00Z');
/** How far back the worker keeps asking for files of cycles still awaiting one. */
const FILE_WAIT_DAYS = 7;
/** The most cycles one worker tick closes (catching up after downtime). */
const CLOSE_BATCH = 24;

export function cycleBankView(b: repo.CycleBankRow) {
  return {
    bank_code: b.bank_code,
    status: b.status,
    expected: { credit: b.expected_credit, debit: b.expected_debit, lines: b.expected_lines },
    file:
      b.file_id === null ? null : { id: b.file_id, credit: b.file_credit!, debit: b.file_debit!, lines: b.file_lines! },
    difference:
      b.file_id === null
        ? null
        : {
            credit: b.file_credit! - b.expected_credit,
            debit: b.file_debit! - b.expected_debit,
            lines: b.file_lines! - b.expected_lines,
          },
    checked_at: b.checked_at.toISOString(),
  };
}

export function exceptionView(e: repo.CycleExceptionRow) {
  return {
    id: e.id,
    cycle_key: e.cycle_key,
    bank_code: e.bank_code,
    file_id: e.file_id,
    difference: { credit: e.credit_difference, debit: e.debit_difference, lines: e.lines_difference },
    status: e.status,
    resolution: e.resolution,
    created_at: e.created_at.toISOString(),
    resolved_at: e.resolved_at ? e.resolved_at.toISOString() : null,
  };
}

export function createCyclesService(deps: CyclesDeps) {
  const { db, clock, logger, cutoffs } = deps;

  function windowOf(key: string): CycleWindow {
    const w = parseCycleKey(key, cutoffs);
    if (!w)
      throw new AppError('validation_failed', `"${key}" is not a cycle key (YYYY-MM-DD-C1 … C${cutoffs.length})`, [
        { field: 'cycle', problem: 'must be YYYY-MM-DD-C<n>' },
      ]);
    return w;
  }

  async function view(key: string) {
    const c = await repo.getCycle(db, key);
    if (!c) throw new AppError('not_found', 'Cycle not closed yet');
    const banks = await repo.cycleBanks(db, key);
    return {
      key: c.key,
      starts_at: c.starts_at.toISOString(),
      settles_from: c.settles_from ? c.settles_from.toISOString() : null,
      ends_at: c.ends_at.toISOString(),
      closed_at: c.closed_at.toISOString(),
      status: banks.some((b) => b.status === 'difference')
        ? 'difference'
        : banks.some((b) => b.status === 'awaiting_file')
          ? 'awaiting_file'
          : 'matched',
      banks: banks.map(cycleBankView),
    };
  }

  /** Compares one bank's expectation with its file, if recon has one; a difference becomes an exception. */
  async function checkFile(key: string, bank: string): Promise<boolean> {
    if (!deps.files) return false;
    const totals = await deps.files.forCycle(bank, key);
    if (!totals) return false;
    for (const [name, v] of Object.entries({
      creditPaise: totals.creditPaise,
      debitPaise: totals.debitPaise,
      lines: totals.lines,
    }))
      if (!Number.isSafeInteger(v) || v < 0)
        throw new AppError('validation_failed', `bank file totals: ${name} is not a count`);
    return db.tx(async (tx) => {
      const now = clock.now();
      const b = await repo.recordFile(tx, key, bank, totals, now);
      if (!b) return false; // recorded already
      if (b.status === 'difference') {
        await repo.insertException(tx, {
          id: newSettlementId('cycleException'),
          key,
          bank,
          fileId: totals.fileId,
          credit: totals.creditPaise - b.expected_credit,
          debit: totals.debitPaise - b.expected_debit,
          lines: totals.lines - b.expected_lines,
          now,
        });
        logger.warn({ cycle: key, bank, file_id: totals.fileId }, 'settlement cycle differs from the bank file');
      }
      return true;
    });
  }

  const service = {
    cutoffs,
    windowOf,
    cycleOf: (at: Date) => cycleOf(at, cutoffs),

    /**
     * Closes a cycle that has ended: fixes what we expect per bank (payments succeeded − refunds −
     * reversals − compensation), creates its payouts, then compares each bank with its file.
     * Closing it again changes nothing already fixed; it only checks for files still awaited.
     */
    async close(key: string) {
      const w = windowOf(key);
      const now = clock.now();
      if (w.endsAt.getTime() > now.getTime())
        throw new AppError('conflict', `Cycle ${key} has not ended: its cut-off is ${w.endsAt.toISOString()}`);
      const closedNow = await db.tx(async (tx) => {
        await repo.lockCycles(tx);
        if (!(await repo.insertCycle(tx, { key: w.key, startsAt: w.startsAt, endsAt: w.endsAt, now }))) return false;
        // The installation's first cycle: its payouts take everything completed before it too, or
        // the payments of the days before the first close would be in no payout at all. What we
        // expect of each bank stays the cycle's own window (the bank's file is for that cycle).
        const first = await repo.isFirstCycle(tx, w.key);
        if (first) await repo.setSettlesFrom(tx, w.key, SETTLES_FROM_THE_START);
        // Windows never overlap (a payment is in one cycle and one payout at most), even when the
        // cut-offs were changed between closes.
        const overlap = await repo.overlappingCycle(tx, w.key, w.startsAt, w.endsAt);
        if (overlap)
          throw new AppError('conflict', `Cycle ${w.key} overlaps cycle ${overlap}, closed under other cut-offs`);
        const expected = await repo.expectedByBank(tx, w.startsAt, w.endsAt);
        for (const code of deps.bankCodes)
          if (!expected.some((e) => e.bank_code === code))
            expected.push({ bank_code: code, credit: 0, debit: 0, lines: 0 });
        for (const e of expected) await repo.insertCycleBank(tx, w.key, e, now);
        const payouts = deps.onClose
          ? await deps.onClose(tx, first ? { ...w, startsAt: SETTLES_FROM_THE_START } : w, now)
          : 0;
        logger.info({ cycle: w.key, banks: expected.length, payouts }, 'settlement cycle closed');
        return true;
      });
      for (const b of await repo.cycleBanks(db, w.key))
        if (b.status === 'awaiting_file') await checkFile(w.key, b.bank_code);
      return { closed_now: closedNow, cycle: await view(w.key) };
    },

    get: view,

    async list(f: { before?: string; limit: number }) {
      let before: Date | undefined;
      if (f.before !== undefined) {
        const key = Buffer.from(f.before, 'base64url').toString('utf8');
        const w = parseCycleKey(key, cutoffs);
        if (!w) throw new AppError('invalid_cursor', 'The cursor is not one this API issued');
        before = w.endsAt;
      }
      const rows = await repo.listCycles(db, { before, limit: f.limit });
      const data = await Promise.all(rows.slice(0, f.limit).map((c) => view(c.key)));
      const next = rows.length > f.limit ? Buffer.from(data[data.length - 1].key).toString('base64url') : null;
      return { data, next_cursor: next };
    },

    /**
     * The worker's job: closes every cycle that ended since the last one closed (the last ended
     * one on a fresh install), then asks for files still awaited by the week's cycles. Safe on
     * any number of workers: a cycle is closed by whoever inserts its row first.
     */
    async runCycles(): Promise<number> {
      const now = clock.now();
      const last = lastEndedCycle(now, cutoffs);
      const latest = await repo.latestCycle(db);
      // After the last one closed; under changed cut-offs, the first whole window after it.
      const prev = latest && parseCycleKey(latest.key, cutoffs);
      let w = prev && prev.endsAt.getTime() === latest.ends_at.getTime() ? nextCycle(prev, cutoffs) : last;
      if (latest && !(prev && prev.endsAt.getTime() === latest.ends_at.getTime())) {
        w = cycleOf(new Date(latest.ends_at.getTime() + 1), cutoffs);
        if (w.startsAt.getTime() < latest.ends_at.getTime()) w = nextCycle(w, cutoffs);
        logger.warn(
          { last_closed: latest.key, next: w.key },
          'cycle cut-offs changed: closing from the next whole cycle',
        );
      }
      let n = 0;
      while (w.endsAt.getTime() <= now.getTime() && n < CLOSE_BATCH) {
        if ((await service.close(w.key)).closed_now) n++;
        w = nextCycle(w, cutoffs);
      }
      for (const a of await repo.awaitingFiles(db, new Date(now.getTime() - FILE_WAIT_DAYS * DAY_MS), 100))
        await checkFile(a.cycle_key, a.bank_code).catch((e) =>
          logger.warn({ cycle: a.cycle_key, bank: a.bank_code, code: (e as AppError).code }, 'bank file check failed'),
        );
      return n;
    },

    async listExceptions(f: Parameters<typeof repo.listExceptions>[1]) {
      const rows = await repo.listExceptions(db, f);
      const data = rows.slice(0, f.limit).map(exceptionView);
      return {
        data,
        next_cursor: rows.length > f.limit ? Buffer.from(data[data.length - 1].id).toString('base64url') : null,
      };
    },

    async resolveException(id: string, resolution: string) {
      const now = clock.now();
      const done = await db.tx((tx) => repo.resolveException(tx, id, resolution, now));
      if (done) return exceptionView(done);
      const cur = await repo.getException(db, id);
      if (!cur) throw new AppError('not_found', 'Cycle exception not found');
      throw new AppError('invalid_state_transition', 'The exception is resolved already');
    },
  };

  return service;
}

export type CyclesService = ReturnType<typeof createCyclesService>;
