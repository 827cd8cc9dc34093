// Checks an audit record's inclusion proof in the browser, with WebCrypto only: the leaf hash
// from the record's exact text, the RFC 9162 (2.1.3.2) fold of the audit path up to the signed
// root, and the Ed25519 signature over the tree head. Mirrors src/modules/audit/merkle.ts; the
// server's answer is not trusted for any of it.

export interface InclusionProof {
  log: string;
  record: string;
  leaf_index: number;
  leaf_hash: string;
  audit_path: string[];
  tree_head: { tree_size: number; root_hash: string; timestamp: string; key_id: string; signature: string };
  public_key: string;
}
export interface ProofResult {
  ok: boolean;
  leafMatches: boolean;
  rootMatches: boolean;
  signature: 'valid' | 'invalid' | 'unsupported';
  detail: string;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const fromHex = (s: string) => new Uint8Array((s.match(/../g) ?? []).map((h) => parseInt(h, 16)));
const fromB64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
async function sha256(...parts: Uint8Array[]) {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', all));
}
const leafHash = (record: string) => sha256(new Uint8Array([0]), new TextEncoder().encode(record));
const nodeHash = (l: Uint8Array, r: Uint8Array) => sha256(new Uint8Array([1]), l, r);

export async function rootFromPath(
  leaf: Uint8Array,
  index: number,
  size: number,
  path: Uint8Array[],
): Promise<Uint8Array | undefined> {
  if (!(index >= 0 && index < size)) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0)
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}

/** The exact bytes the worker signed: canonical JSON (keys sorted, no spaces) of the head. */
export const headMessage = (h: InclusionProof['tree_head'], log: string) =>
  JSON.stringify({ log, root_hash: h.root_hash, timestamp: h.timestamp, tree_size: h.tree_size, v: 1 });

export async function checkProof(p: InclusionProof, trustedPublicKey: string): Promise<ProofResult> {
  const leaf = await leafHash(p.record);
  const leafMatches = hex(leaf) === p.leaf_hash;
  const root = await rootFromPath(leaf, p.leaf_index, p.tree_head.tree_size, p.audit_path.map(fromHex));
  const rootMatches = !!root && hex(root) === p.tree_head.root_hash;
  let signature: ProofResult['signature'] = 'invalid';
  if (p.public_key === trustedPublicKey) {
    try {
      const key = await crypto.subtle.importKey('raw', fromB64(trustedPublicKey), { name: 'Ed25519' }, false, [
        'verify',
      ]);
      signature = (await crypto.subtle.verify(
        { name: 'Ed25519' },
        key,
        fromB64(p.tree_head.signature),
        new TextEncoder().encode(headMessage(p.tree_head, p.log)),
      ))
        ? 'valid'
        : 'invalid';
    } catch {
      signature = 'unsupported';
    }
  }
  const ok = leafMatches && rootMatches && signature === 'valid';
  const detail = ok
    ? `Included at position ${p.leaf_index} of ${p.tree_head.tree_size}; the signed head checks out.`
    : !leafMatches
      ? 'The record does not hash to the leaf in the proof.'
      : !rootMatches
        ? 'The audit path does not lead to the signed root.'
        : signature === 'unsupported'
          ? 'The path leads to the root, but this browser cannot check Ed25519 signatures: not verified.'
          : "The tree head signature does not verify with the trail's public key.";
  return { ok, leafMatches, rootMatches, signature, detail };
}
