import sjson from 'secure-json-parse';
import { visit } from 'jsonc-parser';
import { AppError } from '../platform/errors.ts';

// One reading of a JSON text, for every transport (HTTP bodies, terminal MQTT requests).
//
// Duplicate keys: JSON.parse keeps the last of `{"amount":100,"amount":20000}`, a WAF or a
// log reader may keep the first; two readers that disagree on what a payment says is how a
// request slips past a check. RFC 8259 leaves duplicates to the reader, I-JSON (RFC 7493)
// forbids them: we refuse them. JSON.parse's reviver cannot see them (it gets the object
// after the last value won), so the text is walked with jsonc-parser's scanner (Microsoft's,
// VS Code's JSON reader), which hands over every member name decoded (so "a" and "\u0061"
// are the same key). Syntax is still JSON.parse's (through secure-json-parse, which also
// refuses __proto__ / constructor keys): jsonc-parser's leniency (comments, trailing commas)
// never decides what is accepted.

/** The JSON path of the first member name that appears twice in one object, or undefined. */
export function findDuplicateKey(text: string): string | undefined {
  // One set of seen names per open object; arrays push undefined.
  const open: (Set<string> | undefined)[] = [];
  let found: string | undefined;
  visit(text, {
    onObjectBegin: () => {
      open.push(new Set());
    },
    onObjectEnd: () => {
      open.pop();
    },
    onArrayBegin: () => {
      open.push(undefined);
    },
    onArrayEnd: () => {
      open.pop();
    },
    onObjectProperty: (name, _offset, _length, _line, _col, pathSupplier) => {
      if (found !== undefined) return;
      const seen = open[open.length - 1];
      if (!seen) return;
      if (seen.has(name)) found = ['$', ...pathSupplier(), name].map(String).join('.');
      else seen.add(name);
    },
  });
  return found;
}

// The fast path. In valid JSON every object member has exactly one ':' outside strings, and a
// parsed object keeps one key per distinct name: the text has a duplicate exactly when it has
// more such colons than the parsed value has keys. Counting both is a plain scan, several
// times cheaper than the scanner, which then runs only to name the duplicate.
function colonsOutsideStrings(text: string): number {
  let n = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x3a) n++;
  }
  return n;
}

function keysIn(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  let n = 0;
  if (Array.isArray(value)) {
    for (const v of value) n += keysIn(v);
    return n;
  }
  for (const k in value) n += 1 + keysIn((value as Record<string, unknown>)[k]);
  return n;
}

/** Parses a JSON text, refusing prototype-polluting keys and duplicate keys (AppError `malformed_json`). */
export function parseStrictJson(text: string): unknown {
  let value: unknown;
  try {
    value = sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch {
    throw new AppError('malformed_json', 'The body is not valid JSON');
  }
  if (colonsOutsideStrings(text) === keysIn(value)) return value;
  const dup = findDuplicateKey(text);
  if (dup !== undefined) {
    throw new AppError('malformed_json', `The JSON has the key ${dup} more than once`, { duplicate_key: dup });
  }
  return value;
}

// Control characters: PostgreSQL cannot store U+0000 in text or jsonb (SQLSTATE 22021 /
// 22P05), and the other C0 controls (but tab, line feed and carriage return), DEL and
// unpaired UTF-16 surrogates have no business in a name, an email, a reason or an id: they
// forge log lines, hide text in consoles, and an unpaired surrogate cannot be written as
// UTF-8 at all (it would be stored as U+FFFD, silently changed). They are refused at the
// door, in keys and values alike.
// A quick screen first: almost every string has none of these code units at all.
const SUSPECT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ud800-\udfff]/;
const FORBIDDEN =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The path of the first string (or object key) in `value` holding a forbidden character. */
export function findForbiddenCharacter(value: unknown, path = '$', depth = 0): string | undefined {
  if (typeof value === 'string') return SUSPECT.test(value) && FORBIDDEN.test(value) ? path : undefined;
  if (value === null || typeof value !== 'object' || depth > 64) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = findForbiddenCharacter(value[i], `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    if (SUSPECT.test(k) && FORBIDDEN.test(k)) return `${path}.${JSON.stringify(k)}`;
    const p = findForbiddenCharacter(v, `${path}.${k}`, depth + 1);
    if (p) return p;
  }
  return undefined;
}
