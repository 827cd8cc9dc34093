import { StringDecoder } from 'node:string_decoder';
import { parseStrictJson } from '../../http/strictJson.ts';

// Reads an import file as a stream of records, each with the line it starts on, holding at most
// one record in memory (the file's size does not matter). CSV per RFC 4180 (quoted fields with
// "" escapes and line breaks inside quotes, CRLF or LF), or JSON lines (one object per line).
//
// Two kinds of problem:
//   - a bad record (wrong number of fields, a stray quote, a line that is not a JSON object, a
//     control character): the record comes back with `problem` set and the import rejects that
//     line, naming it; the next record is read normally;
//   - a bad file (not UTF-8, an empty or oversized header, a quote left open at the end, a record
//     larger than the limit): FileError, and the import stops before or at that point.

export class FileError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(line > 0 ? `line ${line}: ${message}` : message);
    this.name = 'FileError';
  }
}

export interface SourceRecord {
  /** 1-based line of the file the record starts on (the header is line 1 in a CSV). */
  line: number;
  fields: Record<string, unknown>;
  /** Why the record cannot be read; `fields` is then empty. */
  problem?: string;
}

export interface ReaderLimits {
  /** Largest header line (CSV). */
  maxHeaderBytes: number;
  /** Largest record. */
  maxRecordBytes: number;
  maxColumns: number;
}

export const DEFAULT_LIMITS: ReaderLimits = { maxHeaderBytes: 16_384, maxRecordBytes: 65_536, maxColumns: 200 };

// C0 controls other than tab, CR and LF, and DEL: never part of a legitimate value.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
const CONTROL_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** Decodes chunks as strict UTF-8 and counts bytes; refuses anything that is not UTF-8. */
async function* text(
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  onBytes?: (n: number) => void,
): AsyncGenerator<string> {
  const dec = new StringDecoder('utf8');
  let first = true;
  for await (const c of chunks) {
    const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
    onBytes?.(buf.length);
    let s = dec.write(buf);
    if (s.includes('\ufffd') && !buf.includes(Buffer.from('\ufffd', 'utf8'))) {
      throw new FileError('the file is not UTF-8 text (export it as UTF-8 CSV)', 0);
    }
    if (first && s.length > 0) {
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1); // the BOM Excel and SQL Server's bcp add
      first = false;
    }
    if (s) yield s;
  }
  const rest = dec.end();
  if (rest) {
    if (rest.includes('\ufffd')) throw new FileError('the file ends in the middle of a UTF-8 character', 0);
    yield rest;
  }
}

/** Splits text into raw CSV records (arrays of fields), with the line each starts on. */
async function* csvRecords(
  input: AsyncIterable<string>,
  limits: ReaderLimits,
): AsyncGenerator<{ line: number; cells: string[]; problem?: string }> {
  // States: 0 start of a field, 1 in an unquoted field, 2 in a quoted field, 3 just saw a quote
  // in a quoted field (the next character decides: "" is a quote, else the field has ended).
  let state = 0;
  let cells: string[] = [];
  let cell = '';
  let problem: string | undefined;
  let line = 1;
  let start = 1;
  let size = 0;
  let pendingCR = false;
  let any = false;

  const endRecord = function* () {
    cells.push(cell);
    const r = { line: start, cells, problem };
    cells = [];
    cell = '';
    problem = undefined;
    state = 0;
    size = 0;
    any = false;
    line++;
    start = line;
    yield r;
  };

  for await (const chunk of input) {
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i];
      if (pendingCR) {
        pendingCR = false;
        if (ch === '\n') continue; // CRLF: the record already ended at the CR
      }
      if (++size > (start === 1 ? limits.maxHeaderBytes : limits.maxRecordBytes)) {
        throw new FileError(
          start === 1
            ? `the header is longer than ${limits.maxHeaderBytes} bytes: is this the right file, and is it CSV?`
            : `a record is longer than ${limits.maxRecordBytes} bytes (a quote left open?)`,
          start,
        );
      }
      any = true;
      if (state === 2) {
        if (ch === '"') state = 3;
        else {
          if (ch === '\n') line++;
          cell += ch;
        }
        continue;
      }
      if (state === 3) {
        if (ch === '"') {
          cell += '"';
          state = 2;
          continue;
        }
        state = 1;
        if (ch !== ',' && ch !== '\n' && ch !== '\r') {
          problem ??= 'characters after a closing quote';
          cell += ch;
          continue;
        }
      }
      if (ch === ',') {
        cells.push(cell);
        cell = '';
        state = 0;
        if (cells.length > limits.maxColumns) throw new FileError(`more than ${limits.maxColumns} columns`, start);
      } else if (ch === '\n' || ch === '\r') {
        pendingCR = ch === '\r';
        yield* endRecord();
      } else if (ch === '"' && state === 0) {
        state = 2;
      } else {
        if (ch === '"') problem ??= 'a quote inside an unquoted field (quote the whole field and double the quote)';
        cell += ch;
        state = 1;
      }
    }
  }
  if (state === 2) throw new FileError('a quoted field is never closed', start);
  if (any) yield* endRecord();
}

/** Splits text into lines (LF or CRLF), each with its number. */
async function* lines(input: AsyncIterable<string>, maxBytes: number): AsyncGenerator<{ line: number; text: string }> {
  let buf = '';
  let n = 0;
  for await (const chunk of input) {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      n++;
      const t = buf.slice(0, nl);
      yield { line: n, text: t.endsWith('\r') ? t.slice(0, -1) : t };
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
    }
    if (buf.length > maxBytes) throw new FileError(`a line is longer than ${maxBytes} bytes`, n + 1);
  }
  if (buf.length > 0) yield { line: n + 1, text: buf.endsWith('\r') ? buf.slice(0, -1) : buf };
}

export type FileFormat = 'csv' | 'jsonl';

/**
 * The records of a file. For CSV the first line names the columns (trimmed; unique, non-empty);
 * blank lines are skipped. `onBytes` counts raw bytes read (for progress).
 */
export async function* readRecords(
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  format: FileFormat,
  opts: { limits?: Partial<ReaderLimits>; onBytes?: (n: number) => void } = {},
): AsyncGenerator<SourceRecord> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const input = text(chunks, opts.onBytes);
  if (format === 'jsonl') {
    for await (const { line, text: t } of lines(input, limits.maxRecordBytes)) {
      if (t.trim() === '') continue;
      let v: unknown;
      try {
        v = parseStrictJson(t);
      } catch (e) {
        // The parser's message names a repeated key at most, never a value; say only what is wrong.
        const twice = /more than once/.test((e as Error).message);
        yield { line, fields: {}, problem: twice ? 'not valid JSON: a key appears twice' : 'not valid JSON' };
        continue;
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        yield { line, fields: {}, problem: 'a line must be one JSON object' };
        continue;
      }
      const fields = v as Record<string, unknown>;
      const bad = Object.values(fields).some((x) => typeof x === 'string' && CONTROL_RE.test(x));
      yield bad ? { line, fields: {}, problem: 'a value contains a control character' } : { line, fields };
    }
    return;
  }
  let header: string[] | undefined;
  for await (const r of csvRecords(input, limits)) {
    if (!header) {
      header = r.cells.map((c) => c.trim());
      if (r.problem) throw new FileError(`the header is not valid CSV: ${r.problem}`, r.line);
      if (header.length === 0 || header.every((h) => h === ''))
        throw new FileError('the first line must name the columns', 1);
      if (header.some((h) => h === '')) throw new FileError('a column has no name in the header', 1);
      // Positions, not names: a file exported without its header has data in the first line.
      const dup = header.findIndex((h, i) => header!.indexOf(h) !== i);
      if (dup >= 0)
        throw new FileError(
          `columns ${header.indexOf(header[dup]) + 1} and ${dup + 1} of the header have the same name (is the header line missing?)`,
          1,
        );
      if (header.some((h) => CONTROL_RE.test(h))) throw new FileError('the header contains a control character', 1);
      continue;
    }
    if (r.cells.length === 1 && r.cells[0] === '') continue; // blank line
    if (r.problem) {
      yield { line: r.line, fields: {}, problem: `malformed CSV: ${r.problem}` };
      continue;
    }
    if (r.cells.length !== header.length) {
      yield {
        line: r.line,
        fields: {},
        problem: `has ${r.cells.length} fields, the header has ${header.length}`,
      };
      continue;
    }
    if (r.cells.some((c) => CONTROL_RE.test(c))) {
      yield { line: r.line, fields: {}, problem: 'a value contains a control character' };
      continue;
    }
    const fields: Record<string, unknown> = {};
    header.forEach((h, i) => {
      fields[h] = r.cells[i];
    });
    yield { line: r.line, fields };
  }
  if (!header) throw new FileError('the file is empty (a CSV needs a header line naming the columns)', 0);
}

/** The columns a CSV file's header names (for checking a mapping before the import starts). */
export function csvHeaderColumns(firstLine: string): string[] {
  return firstLine.split(',').map((c) => c.trim().replace(/^"|"$/g, ''));
}
