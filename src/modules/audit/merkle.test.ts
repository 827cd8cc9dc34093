import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  CompactRange,
  EMPTY_ROOT,
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts';

// The Certificate Transparency reference data (the inputs and tree heads every RFC 6962
// implementation is checked against): leaves 0..7 and the root of each prefix.
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => Buffer.from(s, 'hex');
const INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(
  unhex,
);
const LEAVES = INPUTS.map((d) => leafHash(d));
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

test('leaf and node hashes use the RFC 6962 domain prefixes', () => {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(hex(leafHash(Buffer.from('x'))), sha(Buffer.from([0x00, 0x78])));
  const l = leafHash('l');
  const r = leafHash('r');
  assert.equal(hex(nodeHash(l, r)), sha(Buffer.concat([Buffer.from([0x01]), l, r])));
  assert.equal(hex(EMPTY_ROOT), ROOTS[0]);
});

test('tree heads of the RFC 6962 reference trees, sizes 0 to 8', () => {
  for (let n = 0; n <= 8; n++) assert.equal(hex(rootOf(LEAVES.slice(0, n))), ROOTS[n], `size ${n}`);
});

test('the compact range grows to the same heads, and reports every perfect subtree once', () => {
  const cr = new CompactRange();
  const nodes: string[] = [];
  for (let n = 1; n <= 8; n++) {
    for (const d of cr.append(LEAVES[n - 1])) nodes.push(`${d.level}/${d.index}`);
    assert.equal(hex(cr.root()), ROOTS[n], `size ${n}`);
  }
  assert.deepEqual(nodes, ['1/0', '1/1', '2/0', '1/2', '1/3', '2/1', '3/0']);
  assert.deepEqual(CompactRange.decomposition(7), [
    { level: 2, index: 0 },
    { level: 1, index: 2 },
    { level: 0, index: 6 },
  ]);
});

test('reference audit paths', () => {
  assert.deepEqual(inclusionProof(LEAVES, 0, 8).map(hex), [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]);
  assert.deepEqual(inclusionProof(LEAVES, 5, 8).map(hex), [
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]);
  assert.deepEqual(inclusionProof(LEAVES, 0, 1), []);
});

test('reference consistency proofs', () => {
  const p28 = consistencyProof(LEAVES, 2, 8);
  assert.deepEqual(p28.map(hex), [
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]);
  const p68 = consistencyProof(LEAVES, 6, 8);
  assert.deepEqual(p68.map(hex), [
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]);
  assert.ok(verifyConsistency(2, 8, unhex(ROOTS[2]), unhex(ROOTS[8]), p28));
  assert.ok(verifyConsistency(6, 8, unhex(ROOTS[6]), unhex(ROOTS[8]), p68));
});

test('every proof in trees of 1 to 40 leaves verifies; altered proofs do not', () => {
  const leaves = Array.from({ length: 40 }, (_, i) => leafHash(Buffer.from(`record ${i}`)));
  const roots = Array.from({ length: 41 }, (_, n) => rootOf(leaves.slice(0, n)));
  for (let n = 1; n <= 40; n++) {
    for (let i = 0; i < n; i++) {
      const p = inclusionProof(leaves, i, n);
      assert.ok(verifyInclusion(leaves[i], i, n, p, roots[n]), `inclusion ${i}/${n}`);
      assert.ok(!verifyInclusion(leaves[(i + 1) % 40], i, n, p, roots[n]), `wrong leaf ${i}/${n}`);
      if (p.length > 0) {
        const bad = p.map((h) => Buffer.from(h));
        bad[bad.length - 1][0] ^= 1;
        assert.ok(!verifyInclusion(leaves[i], i, n, bad, roots[n]), `flipped ${i}/${n}`);
        assert.ok(!verifyInclusion(leaves[i], i, n, p.slice(0, -1), roots[n]), `truncated ${i}/${n}`);
      }
      assert.ok(!verifyInclusion(leaves[i], i, n, [...p, leaves[0]], roots[n]), `extended ${i}/${n}`);
    }
    for (let m = 0; m <= n; m++) {
      const c = consistencyProof(leaves, m, n);
      assert.ok(verifyConsistency(m, n, roots[m], roots[n], c), `consistency ${m}->${n}`);
      if (m > 0 && m < n) {
        assert.ok(!verifyConsistency(m, n, roots[m], roots[n - 1], c), `wrong second root ${m}->${n}`);
        const bad = c.map((h) => Buffer.from(h));
        bad[0][5] ^= 0x80;
        assert.ok(!verifyConsistency(m, n, roots[m], roots[n], bad), `flipped ${m}->${n}`);
      }
    }
  }
});
