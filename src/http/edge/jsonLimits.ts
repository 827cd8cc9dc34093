import { AppError } from '../../platform/errors.ts';

// JSON shape limits, checked on the raw text before JSON.parse builds anything: one pass, no
// recursion and no allocation per value, so a hostile body (a million nested brackets, an
// array of a million zeros) costs a scan of its bytes, never a deep object graph or a stack.
// Strings are skipped with their escapes, so brackets inside strings do not count.

export interface JsonLimits {
  /** Deepest nesting of objects and arrays; `{"a":1}` has depth 1. */
  maxDepth: number;
  /** Most elements in any one array. */
  maxArrayLength: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** The depth and longest array of a JSON text (for valid JSON; on invalid JSON, a best effort). */
export function measureJson(text: string, stopAt?: JsonLimits): { depth: number; longestArray: number } {
  // Element counts of the open containers; -1 marks an object (its members are not counted).
  const counts: number[] = [];
  let depth = 0;
  let longest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) {
      inString = true;
      markElement(counts);
    } else if (c === OPEN_OBJ || c === OPEN_ARR) {
      markElement(counts);
      counts.push(c === OPEN_ARR ? 0 : -1);
      if (counts.length > depth) {
        depth = counts.length;
        if (stopAt && depth > stopAt.maxDepth) break;
      }
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
      counts.pop();
    } else if (c === COMMA) {
      const top = counts.length - 1;
      // A comma closes one element; the next one is counted when it starts.
      if (top >= 0 && counts[top] >= 0) counts[top] = -counts[top] - 2;
    } else if (!WHITESPACE.has(c) && c !== 0x3a /* : */) {
      markElement(counts);
    }
    const top = counts.length - 1;
    if (top >= 0 && counts[top] > longest) {
      longest = counts[top];
      if (stopAt && longest > stopAt.maxArrayLength) break;
    }
  }
  return { depth, longestArray: longest };
}

// Encoding, to keep one number per open container: n >= 0 means "n elements, the last one
// still open"; -1 an object; n <= -2 means "-(n + 2) elements, a comma seen, next not started".
function markElement(counts: number[]) {
  const top = counts.length - 1;
  if (top < 0) return;
  const v = counts[top];
  if (v === 0)
    counts[top] = 1; // first element of an array
  else if (v <= -2) counts[top] = -v - 2 + 1; // element after a comma
}

export function assertJsonWithinLimits(text: string, limits: JsonLimits): void {
  const m = measureJson(text, limits);
  if (m.depth > limits.maxDepth) {
    throw new AppError('json_too_complex', `The JSON body is nested more than ${limits.maxDepth} levels deep`, {
      limit: 'depth',
      max: limits.maxDepth,
    });
  }
  if (m.longestArray > limits.maxArrayLength) {
    throw new AppError('json_too_complex', `A JSON array in the body has more than ${limits.maxArrayLength} elements`, {
      limit: 'array_length',
      max: limits.maxArrayLength,
    });
  }
}
