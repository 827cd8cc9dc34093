import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base32Decode, base32Encode, matchTotp, otpauthUri, totp } from './totp.ts';

// RFC 6238, Appendix B: the reference secrets and the 8-digit codes at the listed times.
const SEEDS = {
  sha1: Buffer.from('12345678901234567890'),
  sha256: Buffer.from('12345678901234567890123456789012'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
};
const VECTORS: [number, string, keyof typeof SEEDS][] = [
  [59, '94287082', 'sha1'],
  [59, '46119246', 'sha256'],
  [59, '90693936', 'sha512'],
  [1111111109, '07081804', 'sha1'],
  [1111111109, '68084774', 'sha256'],
  [1111111109, '25091201', 'sha512'],
  [1111111111, '14050471', 'sha1'],
  [1111111111, '67062674', 'sha256'],
  [1111111111, '99943326', 'sha512'],
  [1234567890, '89005924', 'sha1'],
  [1234567890, '91819424', 'sha256'],
  [1234567890, '93441116', 'sha512'],
  [2000000000, '69279037', 'sha1'],
  [2000000000, '90698825', 'sha256'],
  [2000000000, '38618901', 'sha512'],
  [20000000000, '65353130', 'sha1'],
  [20000000000, '77737706', 'sha256'],
  [20000000000, '47863826', 'sha512'],
];

test('RFC 6238 appendix B test vectors', () => {
  for (const [t, code, alg] of VECTORS) {
    assert.equal(totp(SEEDS[alg], new Date(t * 1000), { algorithm: alg, digits: 8 }), code, `${alg} at ${t}`);
  }
});

test('a code matches its own step and its neighbours, nothing further', () => {
  const at = new Date(1111111111 * 1000);
  const code = totp(SEEDS.sha1, at);
  const step = Math.floor(1111111111 / 30);
  assert.equal(code, '050471', 'the 6-digit form is the last six digits');
  assert.equal(matchTotp(SEEDS.sha1, code, at), step);
  assert.equal(matchTotp(SEEDS.sha1, code, new Date(at.getTime() + 30_000)), step, 'one step late still matches');
  assert.equal(matchTotp(SEEDS.sha1, code, new Date(at.getTime() + 90_000)), undefined, 'three steps late does not');
  assert.equal(matchTotp(SEEDS.sha1, '12345', at), undefined, 'wrong length');
  assert.equal(matchTotp(SEEDS.sha1, 'abcdef', at), undefined, 'not digits');
});

test('base32 (RFC 4648 test vectors) and the otpauth URI', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['f', 'MY'],
    ['fo', 'MZXQ'],
    ['foo', 'MZXW6'],
    ['foob', 'MZXW6YQ'],
    ['fooba', 'MZXW6YTB'],
    ['foobar', 'MZXW6YTBOI'],
  ];
  for (const [plain, enc] of cases) {
    assert.equal(base32Encode(Buffer.from(plain)), enc);
    assert.equal(base32Decode(enc).toString(), plain);
  }
  const uri = otpauthUri(SEEDS.sha1, 'asha@example.com');
  assert.equal(
    uri,
    'otpauth://totp/Tillpoint:asha%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tillpoint&algorithm=SHA1&digits=6&period=30',
  );
});
