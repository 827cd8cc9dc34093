import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Db, Queryable } from '../../../platform/db.ts';
import { newReconId } from './ids.ts';
import { createParser, type Mapping } from './mapping.ts';
import * as repo from './recon.repo.ts';
import type { BankLine, LineProblem } from './types.ts';

// Streaming ingestion: the file is read twice, never held whole. The first pass hashes it (the
// SHA-256 decides whether we have seen it) and reads its first line (some banks name the cycle
// there); the second parses it line by line and stages the lines in batches (in the
// transaction's temporary table, recon.repo.ts), all in one transaction with the matching that
// follows and writes them with their outcomes. A file with a malformed line is refused whole,
// with every problem named by line number (the first MAX_PROBLEMS of them): nothing of it stays.

export const BATCH_LINES = 5_000;
export const MAX_PROBLEMS = 100;

/** Opens the file afresh for each pass (a path on disk, or a buffer an upload brought). */
export type FileSource = () => Readable;

export interface FirstPass {
  sha256: string;
  firstLine: string;
  bytes: number;
}

export async function firstPass(open: FileSource): Promise<FirstPass> {
  const hash = createHash('sha256');
  let bytes = 0;
  let head = '';
  for await (const chunk of open()) {
    const b = chunk as Buffer;
    hash.update(b);
    bytes += b.length;
    if (head.length < 4096 && !head.includes('\n')) head += b.subarray(0, 4096).toString('utf8');
  }
  return { sha256: hash.digest('hex'), firstLine: head.split(/\r?\n/)[0] ?? '', bytes };
}

export interface IngestedFile {
  fileId: string;
  cycleKey: string;
  lines: number;
  skipped: number;
  creditPaise: number;
  debitPaise: number;
  creditLines: number;
  debitLines: number;
}

export class FileRejected extends Error {
  constructor(
    readonly problems: LineProblem[],
    readonly problemCount: number,
  ) {
    super(`the file has ${problemCount} malformed line(s); nothing was ingested`);
    this.name = 'FileRejected';
  }
}

/**
 * Parses the file and stages its lines with `tx` (repo.createWorkTables first). `claim(cycleKey)`
 * is called once the cycle is known, before the first line is staged: it inserts the file's row
 * (and throws when the bank's cycle or this file was already taken, so a second ingest of one
 * file waits on the first's row, not after parsing all of it). Throws FileRejected on any
 * malformed line.
 */
export async function parseAndStore(
  tx: Queryable,
  opts: {
    mapping: Mapping;
    open: FileSource;
    fileName?: string;
    cycleHint?: string;
    claim: (cycleKey: string) => Promise<string>;
    onProgress?: (lines: number) => void;
  },
): Promise<IngestedFile> {
  const parser = createParser(opts.mapping);
  const problems: LineProblem[] = [];
  let problemCount = 0;
  const problem = (line: number, message: string) => {
    problemCount++;
    if (problems.length < MAX_PROBLEMS) problems.push({ line, message });
  };
  let cycleKey: string | undefined = opts.cycleHint;
  let fileId: string | undefined;
  let batch: BankLine[] = [];
  const totals = {
    lines: 0,
    skipped: 0,
    credit: 0,
    debit: 0,
    creditLines: 0,
    debitLines: 0,
    first: null as Date | null,
    last: null as Date | null,
  };

  // One batch is written while the next is parsed: the parse (here) and the insert (the
  // database) overlap, and at most two batches are ever held.
  let writing: Promise<void> = Promise.resolve();
  let writeError: unknown;
  const flush = async () => {
    const full = batch;
    batch = [];
    await writing;
    if (writeError) throw writeError;
    if (full.length === 0 || problemCount > 0) return;
    fileId ??= await opts.claim(cycleKey!);
    writing = repo.stageLines(tx, full).catch((e) => {
      writeError = e;
    });
  };

  const rl = createInterface({ input: opts.open(), crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  for await (const raw of rl) {
    lineNo++;
    const r = parser.feed(raw, lineNo);
    if (lineNo === 1 && opts.mapping.cycle.from === 'first_line') {
      cycleKey = parser.cycleFromFirstLine();
      if (!cycleKey) problem(1, 'the first line does not name the cycle');
    }
    if (r.kind === 'skip' || r.kind === 'header') {
      totals.skipped++;
      continue;
    }
    if (r.kind === 'problem') {
      problem(lineNo, r.message);
      continue;
    }
    if (r.cycle !== undefined) {
      if (cycleKey === undefined) cycleKey = r.cycle;
      else if (r.cycle !== cycleKey) {
        problem(lineNo, `names cycle ${r.cycle} in a file of cycle ${cycleKey}`);
        continue;
      }
    }
    const l = r.line;
    totals.lines++;
    if (l.direction === 'credit') {
      totals.credit += l.amountPaise;
      totals.creditLines++;
    } else {
      totals.debit += l.amountPaise;
      totals.debitLines++;
    }
    if (l.txnAt) {
      if (!totals.first || l.txnAt < totals.first) totals.first = l.txnAt;
      if (!totals.last || l.txnAt > totals.last) totals.last = l.txnAt;
    }
    batch.push(l);
    if (batch.length >= BATCH_LINES) await flush();
    if (opts.onProgress && totals.lines % 50_000 === 0) opts.onProgress(totals.lines);
  }
  if (!cycleKey && problemCount === 0) problem(Math.max(lineNo, 1), 'the file does not name its settlement cycle');
  if (problemCount > 0) {
    await writing;
    throw new FileRejected(problems, problemCount);
  }
  await flush();
  await writing;
  if (writeError) throw writeError;
  fileId ??= await opts.claim(cycleKey!);
  await repo.finishIngest(tx, fileId, totals);
  opts.onProgress?.(totals.lines);
  return {
    fileId,
    cycleKey: cycleKey!,
    lines: totals.lines,
    skipped: totals.skipped,
    creditPaise: totals.credit,
    debitPaise: totals.debit,
    creditLines: totals.creditLines,
    debitLines: totals.debitLines,
  };
}

export { newReconId };
export type { Db };
