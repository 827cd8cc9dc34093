import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Db, Queryable } from '../../../platform/db.ts';
import { newReconId } from './ids.ts';
import { createParser, type LineBatch, type Mapping, newLineBatch } from './mapping.ts';
import * as repo from './recon.repo.ts';
import type { LineProblem } from './types.ts';

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
  let batch = newLineBatch();
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
  let firstMs = Number.POSITIVE_INFINITY;
  let lastMs = Number.NEGATIVE_INFINITY;

  // One batch is written while the next is parsed: the parse (here) and the insert (the
  // database) overlap, and at most two batches are ever held.
  let writing: Promise<void> = Promise.resolve();
  let writeError: unknown;
  const flush = async () => {
    const full = batch;
    batch = newLineBatch();
    await writing;
    if (writeError) throw writeError;
    if (full.lineNo.length === 0 || problemCount > 0) return;
    fileId ??= await opts.claim(cycleKey!);
    writing = repo.stageLines(tx, full).catch((e) => {
      writeError = e;
    });
  };

  let lineNo = 0;
  const take = (raw: string, b: LineBatch) => {
    lineNo++;
    const r = parser.feedInto(raw, lineNo, b);
    if (lineNo === 1 && opts.mapping.cycle.from === 'first_line') {
      cycleKey = parser.cycleFromFirstLine();
      if (!cycleKey) problem(1, 'the first line does not name the cycle');
    }
    if (r.kind === 'skip' || r.kind === 'header') {
      totals.skipped++;
      return;
    }
    if (r.kind === 'problem') {
      problem(lineNo, r.message);
      return;
    }
    if (r.cycle !== undefined) {
      if (cycleKey === undefined) cycleKey = r.cycle;
      else if (r.cycle !== cycleKey) {
        problem(lineNo, `names cycle ${r.cycle} in a file of cycle ${cycleKey}`);
        popLine(b);
        return;
      }
    }
    const i = b.lineNo.length - 1;
    const amount = b.amountPaise[i];
    totals.lines++;
    if (b.direction[i] === 'credit') {
      totals.credit += amount;
      totals.creditLines++;
    } else {
      totals.debit += amount;
      totals.debitLines++;
    }
    const at = b.txnAtMs[i];
    if (at !== null) {
      if (at < firstMs) firstMs = at;
      if (at > lastMs) lastMs = at;
    }
    if (opts.onProgress && totals.lines % 50_000 === 0) opts.onProgress(totals.lines);
  };

  for await (const lines of physicalLines(opts.open())) {
    for (const raw of lines) {
      take(raw, batch);
      if (batch.lineNo.length >= BATCH_LINES) await flush();
    }
  }
  if (firstMs !== Number.POSITIVE_INFINITY) totals.first = new Date(firstMs);
  if (lastMs !== Number.NEGATIVE_INFINITY) totals.last = new Date(lastMs);
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

/** Drops the last line of a batch (it named another cycle: a problem, not a line). */
function popLine(b: LineBatch) {
  b.lineNo.pop();
  b.direction.pop();
  b.txnRef.pop();
  b.bankRef.pop();
  b.reference.pop();
  b.amountPaise.pop();
  b.txnAtMs.pop();
}

/**
 * The physical lines of a stream, a chunk's worth at a time (an array per chunk, not an await
 * per line), split as readline splits them: at LF, CRLF or a lone CR; a last line without a
 * break counts, an empty one after the last break does not. UTF-8 split across chunks is
 * decoded whole.
 */
export async function* physicalLines(input: Readable): AsyncGenerator<string[]> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  const split = (s: string, final: boolean): string[] => {
    const out: string[] = [];
    let start = 0;
    if (s.indexOf('\r') < 0) {
      for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', start)) {
        out.push(s.slice(start, i));
        start = i + 1;
      }
    } else {
      for (let i = start; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c === 10) {
          out.push(s.slice(start, i));
          start = i + 1;
        } else if (c === 13) {
          // A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
          if (i === s.length - 1 && !final) break;
          out.push(s.slice(start, i));
          if (s.charCodeAt(i + 1) === 10) i++;
          start = i + 1;
        }
      }
    }
    rest = s.slice(start);
    if (final && rest !== '') {
      out.push(rest);
      rest = '';
    }
    return out;
  };
  for await (const chunk of input) {
    const text = rest + (typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer));
    const lines = split(text, false);
    if (lines.length > 0) yield lines;
  }
  const lines = split(rest + decoder.end(), true);
  if (lines.length > 0) yield lines;
}

export { newReconId };
export type { Db };
