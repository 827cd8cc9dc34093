import { createHash } from 'node:crypto';

// The Merkle tree of RFC 6962 (section 2.1), the one Certificate Transparency uses:
//   leaf hash  = SHA-256(0x00 || record)
//   node hash  = SHA-256(0x01 || left || right)
//   MTH of n leaves splits at k, the largest power of two smaller than n.
// Audit paths and consistency proofs follow RFC 6962 2.1.1-2.1.2; their verification follows
// RFC 9162 2.1.3.2 and 2.1.4.2, so any CT-compatible verifier can check what we print.
// Sizes and indexes are plain numbers (safe to 2^53) and use arithmetic, never 32-bit bit ops.

export const HASH_BYTES = 32;
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export const EMPTY_ROOT: Buffer = sha256();
export const leafHash = (record: Uint8Array | string): Buffer =>
  sha256(LEAF_PREFIX, typeof record === 'string' ? Buffer.from(record, 'utf8') : record);
export const nodeHash = (left: Uint8Array, right: Uint8Array): Buffer => sha256(NODE_PREFIX, left, right);

/** Largest power of two strictly smaller than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
const isPowerOfTwo = (n: number) => n >= 1 && 2 ** Math.round(Math.log2(n)) === n;
const lsb = (n: number) => n % 2;
const half = (n: number) => Math.floor(n / 2);

/**
 * Where hashes of perfect subtrees come from: `perfect(level, index)` is the root of the
 * 2^level leaves starting at index * 2^level (level 0 = the leaf hashes themselves).
 */
export interface HashSource {
  perfect(level: number, index: number): Buffer;
}

/** MTH(D[start : start+n]) from perfect subtrees. */
export function rangeHash(src: HashSource, start: number, n: number): Buffer {
  if (n === 0) return EMPTY_ROOT;
  if (isPowerOfTwo(n) && start % n === 0) return src.perfect(Math.log2(n), start / n);
  const k = splitPoint(n);
  return nodeHash(rangeHash(src, start, k), rangeHash(src, start + k, n - k));
}

/** RFC 6962 PATH(m, D[start : start+n]). */
function path(src: HashSource, m: number, start: number, n: number): Buffer[] {
  if (n <= 1) return [];
  const k = splitPoint(n);
  if (m < k) return [...path(src, m, start, k), rangeHash(src, start + k, n - k)];
  return [...path(src, m - k, start + k, n - k), rangeHash(src, start, k)];
}

/** RFC 6962 SUBPROOF(m, D[start : start+n], b). */
function subproof(src: HashSource, m: number, start: number, n: number, b: boolean): Buffer[] {
  if (m === n) return b ? [] : [rangeHash(src, start, n)];
  const k = splitPoint(n);
  if (m <= k) return [...subproof(src, m, start, k, b), rangeHash(src, start + k, n - k)];
  return [...subproof(src, m - k, start + k, n - k, false), rangeHash(src, start, k)];
}

export function inclusionProofFrom(src: HashSource, index: number, size: number): Buffer[] {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) {
    throw new RangeError(`no leaf ${index} in a tree of ${size}`);
  }
  return path(src, index, 0, size);
}

export function consistencyProofFrom(src: HashSource, first: number, second: number): Buffer[] {
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(second) && first >= 0 && first <= second)) {
    throw new RangeError(`no consistency proof from ${first} to ${second}`);
  }
  if (first === 0 || first === second) return [];
  return subproof(src, first, 0, second, true);
}

/** A HashSource over an in-memory list of leaf hashes (tests, small trees, verification). */
export function memorySource(leaves: readonly Buffer[]): HashSource {
  return { perfect: (level, index) => rangeHashList(leaves, index * 2 ** level, 2 ** level) };
}
function rangeHashList(leaves: readonly Buffer[], start: number, n: number): Buffer {
  if (n === 1) return leaves[start];
  const k = n / 2;
  return nodeHash(rangeHashList(leaves, start, k), rangeHashList(leaves, start + k, k));
}

export const rootOf = (leaves: readonly Buffer[]) => rangeHash(memorySource(leaves), 0, leaves.length);
export const inclusionProof = (leaves: readonly Buffer[], index: number, size = leaves.length) =>
  inclusionProofFrom(memorySource(leaves), index, size);
export const consistencyProof = (leaves: readonly Buffer[], first: number, second = leaves.length) =>
  consistencyProofFrom(memorySource(leaves), first, second);

const okHash = (h: unknown): h is Uint8Array => h instanceof Uint8Array && h.length === HASH_BYTES;

/** RFC 9162 2.1.3.2: does `proof` show leaf `index` (hash `leaf`) in the tree of `size` with `root`? */
export function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!okHash(leaf) || !okHash(root) || !Array.isArray(proof) || !proof.every(okHash)) return false;
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) return false;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return false;
    if (lsb(fn) === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (lsb(fn) === 0) {
        while (lsb(fn) === 0 && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 2.1.4.2: is the tree of `second` leaves (root2) an append-only extension of the one of `first` (root1)? */
export function verifyConsistency(
  first: number,
  second: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!okHash(root1) || !okHash(root2) || !Array.isArray(proof) || !proof.every(okHash)) return false;
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(second) && first >= 0 && first <= second)) return false;
  if (first === second) return proof.length === 0 && Buffer.from(root1).equals(root2);
  if (first === 0) return proof.length === 0 && Buffer.from(root1).equals(EMPTY_ROOT);
  if (proof.length === 0) return false;
  const p = isPowerOfTwo(first) ? [root1, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (lsb(fn) === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Buffer = Buffer.from(p[0]);
  let sr: Buffer = Buffer.from(p[0]);
  for (const c of p.slice(1)) {
    if (sn === 0) return false;
    if (lsb(fn) === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (lsb(fn) === 0) {
        while (!(lsb(fn) === 1 || fn === 0)) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return fr.equals(root1) && sr.equals(root2) && sn === 0;
}

/**
 * The right edge of a growing tree: one perfect subtree root per set bit of its size. Appending
 * a leaf costs O(log n) and reports every perfect subtree it completes, so the sealer stores
 * each interior node once; the root of the whole tree folds these from the right.
 */
export class CompactRange {
  /** [level, hash] from the largest (leftmost) subtree to the smallest. */
  private stack: [number, Buffer][];
  size: number;
  constructor(size = 0, subtrees: [number, Buffer][] = []) {
    this.size = size;
    this.stack = subtrees;
  }

  /** The perfect subtrees (level, index) whose roots make up a tree of `size` leaves, left to right. */
  static decomposition(size: number): { level: number; index: number }[] {
    const out: { level: number; index: number }[] = [];
    let start = 0;
    for (let level = Math.floor(Math.log2(Math.max(size, 1))) + 1; level >= 0; level--) {
      const w = 2 ** level;
      if (size - start >= w) {
        out.push({ level, index: start / w });
        start += w;
      }
    }
    return out;
  }

  /** Adds a leaf; returns the perfect subtrees (level >= 1) completed by it. */
  append(leaf: Buffer): { level: number; index: number; hash: Buffer }[] {
    const done: { level: number; index: number; hash: Buffer }[] = [];
    let level = 0;
    let h = leaf;
    this.size += 1;
    while (this.stack.length > 0 && this.stack[this.stack.length - 1][0] === level) {
      const [, left] = this.stack.pop()!;
      h = nodeHash(left, h);
      level += 1;
      done.push({ level, index: this.size / 2 ** level - 1, hash: h });
    }
    this.stack.push([level, h]);
    return done;
  }

  root(): Buffer {
    if (this.stack.length === 0) return EMPTY_ROOT;
    let r = this.stack[this.stack.length - 1][1];
    for (let i = this.stack.length - 2; i >= 0; i--) r = nodeHash(this.stack[i][1], r);
    return r;
  }
}
