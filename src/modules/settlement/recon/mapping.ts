import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { type BankLine, CYCLE_KEY_RE } from './types.ts';

// A bank's file layout, kept as data (mappings/*.json), checked against this schema when loaded.
// One mapping per bank; a file is read through it line by line (parseLine), so no file is ever
// held in memory whole. What each property means: README.md, "Mapping format".

const Slice = Type.Object(
  { start: Type.Integer({ minimum: 1 }), length: Type.Integer({ minimum: 1 }) },
  {
    additionalProperties: false,
  },
);
/** A CSV column (header name or 0-based index), a JSON key, or a fixed-width slice (1-based start). */
const Column = Type.Union([Type.String({ minLength: 1, maxLength: 100 }), Type.Integer({ minimum: 0 }), Slice]);

export const MappingSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{1,63}$' }),
    bank_code: Type.String({ pattern: '^[A-Z0-9_]{2,20}$' }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    kind: Type.Union([Type.Literal('csv'), Type.Literal('fixed_width'), Type.Literal('jsonl')]),
    csv: Type.Optional(
      Type.Object(
        {
          delimiter: Type.String({ minLength: 1, maxLength: 1 }),
          header: Type.Boolean(),
          quote: Type.Optional(Type.String({ minLength: 1, maxLength: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    skip: Type.Object(
      {
        /** Physical lines at the top that are never data (titles, a header line that carries the cycle). */
        leading_lines: Type.Integer({ minimum: 0, maximum: 100 }),
        /** Lines matching any of these regular expressions are skipped (trailers, totals, page breaks). */
        matching: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 20 }),
        /** Empty (or whitespace-only) lines are skipped; otherwise they are malformed. */
        blank: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
    columns: Type.Object(
      {
        txn_ref: Type.Optional(Column),
        bank_ref: Type.Optional(Column),
        reference: Type.Optional(Column),
        amount: Column,
        direction: Type.Optional(Column),
        txn_at: Type.Optional(Column),
        cycle: Type.Optional(Column),
      },
      { additionalProperties: false },
    ),
    amount: Type.Object(
      {
        unit: Type.Union([Type.Literal('rupees'), Type.Literal('paise')]),
        /** direction_column: a DR/CR column says which way, the amount is unsigned; signed: a minus sign is a debit. */
        sign: Type.Union([Type.Literal('direction_column'), Type.Literal('signed')]),
        credit_values: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 20 }), { minItems: 1 })),
        debit_values: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 20 }), { minItems: 1 })),
      },
      { additionalProperties: false },
    ),
    datetime: Type.Object(
      {
        /** Tokens YYYY MM DD HH mm ss; anything else is literal. */
        format: Type.String({ minLength: 4, maxLength: 40 }),
        /** An IANA zone ("Asia/Kolkata") or a fixed offset ("+05:30"). Bank files in India are in IST. */
        time_zone: Type.String({ minLength: 1, maxLength: 60 }),
      },
      { additionalProperties: false },
    ),
    cycle: Type.Object(
      {
        from: Type.Union([Type.Literal('file_name'), Type.Literal('first_line'), Type.Literal('column')]),
        /** A regular expression with named groups `date` and `n` (the cycle number). */
        pattern: Type.String({ minLength: 1, maxLength: 200 }),
        /** How `date` is written, same tokens as datetime.format (YYYY MM DD). */
        date_format: Type.String({ minLength: 4, maxLength: 20 }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type Mapping = Static<typeof MappingSchema>;

export class MappingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MappingError';
  }
}

/** Checks a mapping (schema, then the rules a schema cannot say); throws MappingError naming what is wrong. */
export function validateMapping(raw: unknown, source = 'mapping'): Mapping {
  if (!Value.Check(MappingSchema, raw)) {
    const e = [...Value.Errors(MappingSchema, raw)][0];
    throw new MappingError(`${source}: ${e?.path || '/'} ${e?.message ?? 'is invalid'}`);
  }
  const m = raw as Mapping;
  const cols = Object.entries(m.columns).filter(([, v]) => v !== undefined) as [string, Static<typeof Column>][];
  for (const [name, c] of cols) {
    const ok =
      m.kind === 'fixed_width'
        ? typeof c === 'object'
        : m.kind === 'jsonl'
          ? typeof c === 'string'
          : typeof c === 'number' || (typeof c === 'string' && m.csv?.header === true);
    if (!ok) throw new MappingError(`${source}: column "${name}" is not a ${m.kind} column`);
  }
  if (m.kind === 'csv' && !m.csv) throw new MappingError(`${source}: a csv mapping needs "csv"`);
  if (
    m.amount.sign === 'direction_column' &&
    (!m.columns.direction || !m.amount.credit_values || !m.amount.debit_values)
  )
    throw new MappingError(
      `${source}: sign "direction_column" needs columns.direction, credit_values and debit_values`,
    );
  if (m.cycle.from === 'column' && !m.columns.cycle)
    throw new MappingError(`${source}: cycle from "column" needs columns.cycle`);
  if (m.cycle.from === 'first_line' && m.skip.leading_lines < 1)
    throw new MappingError(`${source}: cycle from "first_line" needs skip.leading_lines >= 1`);
  let re: RegExp;
  try {
    re = new RegExp(m.cycle.pattern);
    for (const p of m.skip.matching) new RegExp(p);
  } catch (e) {
    throw new MappingError(`${source}: ${(e as Error).message}`);
  }
  if (!/\(\?<date>/.test(re.source) || !/\(\?<n>/.test(re.source))
    throw new MappingError(`${source}: cycle.pattern needs named groups "date" and "n"`);
  compileDate(m.datetime.format);
  compileDate(m.cycle.date_format);
  zoneOffsetMinutes(m.datetime.time_zone, Date.UTC(2026, 0, 1)); // throws on an unknown zone
  return m;
}

export const MAPPINGS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'mappings');

/** Every mapping in `dir`, by bank code. A bad file stops the load, named. */
export function loadMappings(dir = MAPPINGS_DIR): Map<string, Mapping> {
  const out = new Map<string, Mapping>();
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.json'))
    .sort()) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    } catch (e) {
      throw new MappingError(`${f}: not valid JSON (${(e as Error).message})`);
    }
    const m = validateMapping(raw, f);
    if (out.has(m.bank_code)) throw new MappingError(`${f}: a second mapping for bank ${m.bank_code}`);
    out.set(m.bank_code, m);
  }
  return out;
}

// ---- dates and time zones ----------------------------------------------------------------

const TOKENS: Record<string, string> = {
  YYYY: '(\\d{4})',
  MM: '(\\d{2})',
  DD: '(\\d{2})',
  HH: '(\\d{2})',
  mm: '(\\d{2})',
  ss: '(\\d{2})',
};

interface CompiledDate {
  re: RegExp;
  order: string[];
}
function compileDate(format: string): CompiledDate {
  const order: string[] = [];
  let src = '';
  for (let i = 0; i < format.length; ) {
    const tok = ['YYYY', 'MM', 'DD', 'HH', 'mm', 'ss'].find((t) => format.startsWith(t, i));
    if (tok) {
      order.push(tok);
      src += TOKENS[tok];
      i += tok.length;
    } else {
      src += format[i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i++;
    }
  }
  for (const need of ['YYYY', 'MM', 'DD'])
    if (!order.includes(need)) throw new MappingError(`date format "${format}" has no ${need}`);
  return { re: new RegExp(`^${src}$`), order };
}

const offsetCache = new Map<string, number>();
/** Minutes east of UTC in `zone` at `utcMs`. India has kept +05:30 since 1945, but the zone is read, not assumed. */
function zoneOffsetMinutes(zone: string, utcMs: number): number {
  const fixed = /^([+-])(\d{2}):(\d{2})$/.exec(zone);
  if (fixed) return (fixed[1] === '-' ? -1 : 1) * (Number(fixed[2]) * 60 + Number(fixed[3]));
  const day = `${zone}|${Math.floor(utcMs / 86_400_000)}`;
  const hit = offsetCache.get(day);
  if (hit !== undefined) return hit;
  let name: string;
  try {
    name =
      new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' })
        .formatToParts(new Date(utcMs))
        .find((p) => p.type === 'timeZoneName')?.value ?? '';
  } catch {
    throw new MappingError(`unknown time zone "${zone}"`);
  }
  const m = /GMT(?:([+-])(\d{2}):(\d{2}))?/.exec(name);
  const off = m?.[1] ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  if (offsetCache.size > 10_000) offsetCache.clear();
  offsetCache.set(day, off);
  return off;
}

function parseDateParts(d: CompiledDate, s: string): Record<string, number> | undefined {
  const m = d.re.exec(s);
  if (!m) return undefined;
  const v: Record<string, number> = { HH: 0, mm: 0, ss: 0 };
  d.order.forEach((t, i) => {
    v[t] = Number(m[i + 1]);
  });
  if (v.MM < 1 || v.MM > 12 || v.DD < 1 || v.DD > 31 || v.HH > 23 || v.mm > 59 || v.ss > 59) return undefined;
  const probe = new Date(Date.UTC(v.YYYY, v.MM - 1, v.DD));
  if (probe.getUTCDate() !== v.DD) return undefined; // 31 April and the like
  return v;
}

// ---- the line parser -------------------------------------------------------------------------

export type ParseResult =
  | { kind: 'skip' }
  | { kind: 'header' }
  | { kind: 'line'; line: BankLine; cycle?: string }
  | { kind: 'problem'; message: string };

export interface FileParser {
  /** Feeds one physical line (without its line break), numbered from 1. */
  feed(raw: string, lineNo: number): ParseResult;
  /** The cycle the file names, from its name or its first line (undefined: not known yet, or from a column). */
  cycleFromName(fileName: string | undefined): string | undefined;
  cycleFromFirstLine(): string | undefined;
}

/** Makes the cycle key (YYYY-MM-DD-C<n>) from what a file says; undefined when it does not say it. */
export function cycleKeyFrom(m: Mapping, text: string): string | undefined {
  const g = new RegExp(m.cycle.pattern).exec(text)?.groups;
  if (!g?.date || !g.n) return undefined;
  const d = parseDateParts(compileDate(m.cycle.date_format), g.date);
  if (!d) return undefined;
  const key = `${String(d.YYYY).padStart(4, '0')}-${String(d.MM).padStart(2, '0')}-${String(d.DD).padStart(2, '0')}-C${Number(g.n)}`;
  return CYCLE_KEY_RE.test(key) ? key : undefined;
}

/** Splits one CSV record. Quotes may wrap a field and double inside it; a record never spans lines here. */
export function splitCsv(s: string, delim: string, quote: string): string[] | undefined {
  if (!s.includes(quote)) return s.split(delim);
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (s[i] === quote) {
      let v = '';
      i++;
      for (;;) {
        const j = s.indexOf(quote, i);
        if (j < 0) return undefined; // unterminated quote
        v += s.slice(i, j);
        if (s[j + 1] === quote) {
          v += quote;
          i = j + 2;
          continue;
        }
        i = j + 1;
        break;
      }
      if (i < s.length && s[i] !== delim) return undefined; // text after a closing quote
      out.push(v);
    } else {
      const j = s.indexOf(delim, i);
      const v = j < 0 ? s.slice(i) : s.slice(i, j);
      if (v.includes(quote)) return undefined;
      out.push(v);
      i = j < 0 ? s.length : j;
    }
    if (i >= s.length) return out;
    i++; // the delimiter
    if (i === s.length) {
      out.push('');
      return out;
    }
  }
}

const REF_RE = /^[A-Za-z0-9_./-]{1,64}$/;

/**
 * Parsed lines of one batch, column by column: a file of a million lines makes no object per
 * line, only these arrays (one batch at a time), which the staging insert sends as PostgreSQL
 * arrays. `txnAtMs` is the transaction time in ms since the epoch (UTC).
 */
export interface LineBatch {
  lineNo: number[];
  direction: ('credit' | 'debit')[];
  txnRef: (string | null)[];
  bankRef: (string | null)[];
  reference: (string | null)[];
  amountPaise: number[];
  txnAtMs: (number | null)[];
}
export const newLineBatch = (): LineBatch => ({
  lineNo: [],
  direction: [],
  txnRef: [],
  bankRef: [],
  reference: [],
  amountPaise: [],
  txnAtMs: [],
});

/** What feedInto made of a line; a data line's fields are in the batch (or `line()`). */
export type FeedStatus =
  | { kind: 'skip' }
  | { kind: 'header' }
  | { kind: 'line'; cycle?: string }
  | { kind: 'problem'; message: string };

const SKIP = { kind: 'skip' } as const;
const HEADER = { kind: 'header' } as const;
const LINE = { kind: 'line' } as const;
const problem = (message: string) => ({ kind: 'problem', message }) as const;

/** A date format whose tokens are all fixed width (they are): positions instead of a regex. */
function datePositions(format: string) {
  const d = compileDate(format); // checks the format as before
  const lits: [number, number][] = [];
  const at: Record<string, [number, number]> = {};
  let pos = 0;
  for (let i = 0; i < format.length; ) {
    const tok = ['YYYY', 'MM', 'DD', 'HH', 'mm', 'ss'].find((t) => format.startsWith(t, i));
    if (tok) {
      at[tok] = [pos, tok.length];
      pos += tok.length;
      i += tok.length;
    } else {
      lits.push([pos, format.charCodeAt(i)]);
      pos++;
      i++;
    }
  }
  return { d, length: pos, lits, at };
}

/** The digits of s[pos, pos + len) as a number, or -1 when one is not an ASCII digit. */
function digitsAt(s: string, pos: number, len: number): number {
  let v = 0;
  for (let i = pos; i < pos + len; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

export function createParser(m: Mapping): FileParser & {
  /** As feed, but a data line's fields go to the end of `batch` (no object per line). */
  feedInto(raw: string, lineNo: number, batch: LineBatch): FeedStatus;
} {
  const skipRes = m.skip.matching.map((p) => new RegExp(p));
  const date = datePositions(m.datetime.format);
  const credit = new Set(m.amount.credit_values ?? []);
  const debit = new Set(m.amount.debit_values ?? []);
  const delim = m.csv?.delimiter ?? ',';
  const quote = m.csv?.quote ?? '"';
  const rupees = m.amount.unit === 'rupees';
  const maxIntDigits = rupees ? 13 : 15;
  const zone = m.datetime.time_zone;
  const fixedZone = /^([+-])(\d{2}):(\d{2})$/.test(zone) ? zoneOffsetMinutes(zone, 0) : undefined;
  let zoneDay = Number.NaN;
  let zoneOff = 0;
  let header: Map<string, number> | undefined;
  let firstLine: string | undefined;

  type Row = string[] | Record<string, unknown> | string;
  type Getter = (row: Row) => unknown;
  const getter = (c: Static<typeof Column> | undefined): Getter | undefined => {
    if (c === undefined) return undefined;
    if (typeof c === 'object') return (row) => (row as string).slice(c.start - 1, c.start - 1 + c.length);
    if (m.kind === 'jsonl') return (row) => (row as Record<string, unknown>)[c as string];
    if (typeof c === 'number') return (row) => (row as string[])[c];
    // A header name: its index, once the header is read.
    let i: number | undefined;
    return (row) => {
      i ??= header?.get(c);
      return i === undefined ? undefined : (row as string[])[i];
    };
  };
  const g = {
    txn_ref: getter(m.columns.txn_ref),
    bank_ref: getter(m.columns.bank_ref),
    reference: getter(m.columns.reference),
    amount: getter(m.columns.amount)!,
    direction: getter(m.columns.direction),
    txn_at: getter(m.columns.txn_at),
    cycle: getter(m.columns.cycle),
  };
  const text = (v: unknown): string | null => {
    if (v === undefined || v === null) return null;
    const s = (typeof v === 'number' ? String(v) : typeof v === 'string' ? v : '').trim();
    return s === '' ? null : s;
  };

  // The fields of the line being parsed (one set, reused: no object per line).
  let direction: 'credit' | 'debit' = 'credit';
  let txnRef: string | null = null;
  let bankRef: string | null = null;
  let reference: string | null = null;
  let paise = 0;
  let txnAtMs: number | null = null;
  let negative = false;

  /** Paise from an amount as the mapping writes it (rupees: up to two decimals), or -1. */
  const amountOf = (s: string): number => {
    let i = 0;
    negative = false;
    if (s.charCodeAt(0) === 45) {
      negative = true;
      i = 1;
    }
    const intStart = i;
    let v = 0;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      i++;
    }
    if (i === intStart || i - intStart > maxIntDigits) return -1;
    if (!rupees) return i === s.length ? v : -1;
    let frac = 0;
    if (i < s.length && s.charCodeAt(i) === 46) {
      const fracStart = ++i;
      while (i < s.length) {
        const c = s.charCodeAt(i);
        if (c < 48 || c > 57) break;
        frac = frac * 10 + (c - 48);
        i++;
      }
      const n = i - fracStart;
      if (n < 1 || n > 2) return -1;
      if (n === 1) frac *= 10;
    }
    return i === s.length ? v * 100 + frac : -1;
  };

  // Where each part of the time is (a format always has YYYY, MM and DD: compileDate checks it).
  const [pY, pM, pD, pH, pmi, pss] = ['YYYY', 'MM', 'DD', 'HH', 'mm', 'ss'].map((t) => date.at[t]);
  /** The transaction time (ms since the epoch) of a local time text, or undefined when it is not one. */
  const timeOf = (t: string): number | undefined => {
    if (t.length !== date.length) return undefined;
    for (const [pos, code] of date.lits) if (t.charCodeAt(pos) !== code) return undefined;
    const Y = digitsAt(t, pY[0], pY[1]);
    const M = digitsAt(t, pM[0], pM[1]);
    const D = digitsAt(t, pD[0], pD[1]);
    const h = pH ? digitsAt(t, pH[0], pH[1]) : 0;
    const mi = pmi ? digitsAt(t, pmi[0], pmi[1]) : 0;
    const sec = pss ? digitsAt(t, pss[0], pss[1]) : 0;
    if (Y < 0 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
      return undefined;
    // 31 April and the like (as parseDateParts: the day must exist in that month).
    if (D > 28 && new Date(Date.UTC(Y, M - 1, D)).getUTCDate() !== D) return undefined;
    const local = Date.UTC(Y, M - 1, D, h, mi, sec);
    if (fixedZone !== undefined) return local - fixedZone * 60_000;
    const day = Math.floor(local / 86_400_000);
    if (day !== zoneDay) {
      zoneOff = zoneOffsetMinutes(zone, local);
      zoneDay = day;
    }
    return local - zoneOff * 60_000;
  };

  /** Parses one physical line into the fields above; returns LINE (with the cycle, if any) or what else it is. */
  const parse = (raw: string, lineNo: number): FeedStatus => {
    if (lineNo === 1) firstLine = raw;
    if (lineNo <= m.skip.leading_lines) return SKIP;
    const c0 = raw.charCodeAt(0);
    // Only a line that starts with a space (or is empty, or starts beyond ASCII) can be blank.
    if (!(c0 > 32 && c0 < 127) && raw.trim() === '') return m.skip.blank ? SKIP : problem('empty line');
    for (const re of skipRes) if (re.test(raw)) return SKIP;
    let row: Row;
    if (m.kind === 'csv') {
      const cells = splitCsv(raw, delim, quote);
      if (!cells) return problem('unbalanced quotes');
      if (m.csv!.header && !header) {
        header = new Map(cells.map((c, i) => [c.trim(), i]));
        for (const [name, c] of Object.entries(m.columns))
          if (typeof c === 'string' && !header.has(c)) return problem(`header has no column "${c}" (${name})`);
        return HEADER;
      }
      if (header && cells.length !== header.size)
        return problem(`${cells.length} columns where the header has ${header.size}`);
      row = cells;
    } else if (m.kind === 'jsonl') {
      try {
        row = JSON.parse(raw);
      } catch {
        return problem('not valid JSON');
      }
      if (!row || typeof row !== 'object' || Array.isArray(row)) return problem('not a JSON object');
    } else {
      row = raw;
    }
    const amountText = text(g.amount(row));
    if (amountText === null) return problem('amount is missing');
    paise = amountOf(amountText);
    if (paise < 0) return problem('amount is not a valid amount');
    if (!Number.isSafeInteger(paise) || paise <= 0) return problem('amount must be above zero');
    if (m.amount.sign === 'signed') {
      direction = negative ? 'debit' : 'credit';
    } else {
      if (negative) return problem('a negative amount beside a debit/credit column');
      const d = text(g.direction!(row));
      if (d !== null && credit.has(d)) direction = 'credit';
      else if (d !== null && debit.has(d)) direction = 'debit';
      else return problem(`debit/credit value ${d === null ? 'is missing' : 'is not one the mapping knows'}`);
    }
    txnRef = g.txn_ref ? text(g.txn_ref(row)) : null;
    bankRef = g.bank_ref ? text(g.bank_ref(row)) : null;
    if (txnRef !== null && !REF_RE.test(txnRef)) return problem('txn_ref has characters a reference cannot have');
    if (bankRef !== null && !REF_RE.test(bankRef)) return problem('bank_ref has characters a reference cannot have');
    if (txnRef === null && bankRef === null) return problem('neither txn_ref nor bank_ref is given');
    txnAtMs = null;
    if (g.txn_at) {
      const t = text(g.txn_at(row));
      const at = t === null ? undefined : timeOf(t);
      if (at === undefined)
        return problem(`transaction time ${t === null ? 'is missing' : `does not match "${m.datetime.format}"`}`);
      txnAtMs = at;
    }
    const r = g.reference ? text(g.reference(row)) : null;
    reference = r === null ? null : r.length > 200 ? r.slice(0, 200) : r;
    if (m.cycle.from === 'column') {
      const c = text(g.cycle!(row));
      const cycle = c === null ? undefined : cycleKeyFrom(m, c);
      if (!cycle) return problem('the cycle column does not name a cycle');
      return { kind: 'line', cycle };
    }
    return LINE;
  };

  return {
    cycleFromName: (name) => (m.cycle.from === 'file_name' && name ? cycleKeyFrom(m, name) : undefined),
    cycleFromFirstLine: () =>
      m.cycle.from === 'first_line' && firstLine !== undefined ? cycleKeyFrom(m, firstLine) : undefined,
    feed(raw, lineNo) {
      const r = parse(raw, lineNo);
      if (r.kind !== 'line') return r;
      return {
        kind: 'line',
        cycle: r.cycle,
        line: {
          lineNo,
          direction,
          txnRef,
          bankRef,
          reference,
          amountPaise: paise,
          txnAt: txnAtMs === null ? null : new Date(txnAtMs),
        },
      };
    },
    feedInto(raw, lineNo, b) {
      const r = parse(raw, lineNo);
      if (r.kind !== 'line') return r;
      b.lineNo.push(lineNo);
      b.direction.push(direction);
      b.txnRef.push(txnRef);
      b.bankRef.push(bankRef);
      b.reference.push(reference);
      b.amountPaise.push(paise);
      b.txnAtMs.push(txnAtMs);
      return r;
    },
  };
}
