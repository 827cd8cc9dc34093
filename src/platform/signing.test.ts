import { test } from 'node:test';
import { createHmac } from 'node:crypto';
import assert from 'node:assert/strict';
import { createTestDb } from './testing.ts';
import { AppError } from './errors.ts';
import { checkSignature, pruneNonces, signRequest, verifySignedRequest, type RejectReason } from './signing.ts';

const NOW = new Date('2026-03-01T10:00:00Z');
const BODY = '{"txn_ref":"TP123","amount":"149.00"}';

type Db = Awaited<ReturnType<typeof createTestDb>>;

async function withDb(fn: (db: Db) => Promise<void>) {
  const db = await createTestDb();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

const base = (db: Db, over: Partial<Parameters<typeof verifySignedRequest>[0]> = {}) => ({
  scope: 'bank:TEST',
  secrets: ['current-secret'],
  headers: signRequest('current-secret', BODY, NOW),
  rawBody: BODY,
  maxAgeSeconds: 300,
  now: NOW,
  db,
  remoteAddr: '10.0.0.9',
  ...over,
});

async function rejectedReasons(db: Db): Promise<string[]> {
  const r = await db.query<{ reason: string }>('SELECT reason FROM platform.rejected_calls ORDER BY id');
  return r.rows.map((x) => x.reason);
}

async function assertRejected(
  p: Promise<unknown>,
  code: 'invalid_signature' | 'replayed_request',
  reason: RejectReason,
) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, code);
    assert.deepEqual(e.details, { reason });
    return true;
  });
}

test('signRequest produces the documented header format', () => {
  const h = signRequest('s3cret', BODY, NOW);
  assert.equal(h['X-Tillpoint-Timestamp'], String(NOW.getTime() / 1000));
  assert.match(h['X-Tillpoint-Nonce'], /^[0-9a-f]{32}$/);
  assert.match(h['X-Tillpoint-Signature'], /^v1=[0-9a-f]{64}$/);
  assert.notEqual(
    signRequest('s3cret', BODY, NOW)['X-Tillpoint-Nonce'],
    h['X-Tillpoint-Nonce'],
    'fresh nonce each time',
  );
});

test('a good request verifies, with lower-case (Node) header names and Buffer bodies', async () => {
  await withDb(async (db) => {
    const h = signRequest('current-secret', BODY, NOW);
    const lower = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
    const r = await verifySignedRequest(base(db, { headers: lower, rawBody: Buffer.from(BODY) }));
    assert.equal(r.secretIndex, 0);
    const fetchHeaders = new Headers(signRequest('current-secret', BODY, NOW));
    await verifySignedRequest(base(db, { headers: fetchHeaders }));
    assert.deepEqual(await rejectedReasons(db), []);
  });
});

test('tampered body is refused and recorded', async () => {
  await withDb(async (db) => {
    await assertRejected(
      verifySignedRequest(base(db, { rawBody: BODY.replace('149', '1') })),
      'invalid_signature',
      'bad_signature',
    );
    const r = await db.query<{ scope: string; remote_addr: string }>(
      'SELECT scope, remote_addr FROM platform.rejected_calls',
    );
    assert.deepEqual(r.rows, [{ scope: 'bank:TEST', remote_addr: '10.0.0.9' }]);
  });
});

test('wrong secret is refused; the error never carries the secret or signature', async () => {
  await withDb(async (db) => {
    const headers = signRequest('attacker-secret', BODY, NOW);
    await assert.rejects(verifySignedRequest(base(db, { headers })), (e: AppError) => {
      const text = JSON.stringify({ m: e.message, d: e.details });
      assert.ok(!text.includes('current-secret') && !text.includes(headers['X-Tillpoint-Signature'].slice(3)));
      return e.code === 'invalid_signature';
    });
  });
});

test('previous secret is accepted during a rotation overlap, and reported as such', async () => {
  await withDb(async (db) => {
    const headers = signRequest('old-secret', BODY, NOW);
    const r = await verifySignedRequest(base(db, { headers, secrets: ['new-secret', 'old-secret'] }));
    assert.equal(r.secretIndex, 1);
    // Once the overlap ends the old secret is refused.
    const again = signRequest('old-secret', BODY, NOW);
    await assertRejected(
      verifySignedRequest(base(db, { headers: again, secrets: ['new-secret'] })),
      'invalid_signature',
      'bad_signature',
    );
  });
});

test('stale and future timestamps are refused; the edges of the window are accepted', async () => {
  await withDb(async (db) => {
    const at = (deltaSec: number) => signRequest('current-secret', BODY, new Date(NOW.getTime() + deltaSec * 1000));
    await assertRejected(verifySignedRequest(base(db, { headers: at(-301) })), 'invalid_signature', 'stale_timestamp');
    await assertRejected(verifySignedRequest(base(db, { headers: at(301) })), 'invalid_signature', 'future_timestamp');
    await verifySignedRequest(base(db, { headers: at(-300) }));
    await verifySignedRequest(base(db, { headers: at(300) }));
    assert.deepEqual(await rejectedReasons(db), ['stale_timestamp', 'future_timestamp']);
  });
});

test('a replayed nonce is refused as replayed_request, per scope', async () => {
  await withDb(async (db) => {
    const headers = signRequest('current-secret', BODY, NOW);
    await verifySignedRequest(base(db, { headers }));
    await assertRejected(verifySignedRequest(base(db, { headers })), 'replayed_request', 'replayed_nonce');
    // The same nonce under another scope is a different caller's namespace.
    await verifySignedRequest(base(db, { headers, scope: 'bank:OTHER' }));
    assert.deepEqual(await rejectedReasons(db), ['replayed_nonce']);
  });
});

test('concurrent deliveries of one request: exactly one is accepted', async () => {
  await withDb(async (db) => {
    const headers = signRequest('current-secret', BODY, NOW);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => verifySignedRequest(base(db, { headers }))),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  });
});

test('missing and malformed headers are refused', async () => {
  await withDb(async (db) => {
    const good = signRequest('current-secret', BODY, NOW);
    for (const drop of Object.keys(good) as (keyof typeof good)[]) {
      const headers: Record<string, string> = { ...good };
      delete headers[drop];
      await assertRejected(verifySignedRequest(base(db, { headers })), 'invalid_signature', 'missing_headers');
    }
    const bad = [
      { 'X-Tillpoint-Signature': good['X-Tillpoint-Signature'].slice(3) }, // no v1=
      { 'X-Tillpoint-Signature': 'v2=' + good['X-Tillpoint-Signature'].slice(3) },
      { 'X-Tillpoint-Nonce': 'abc' }, // too short
      { 'X-Tillpoint-Nonce': 'a'.repeat(20) }, // hex, fewer than 16 bytes
      { 'X-Tillpoint-Timestamp': '2026-03-01T10:00:00Z' },
    ];
    for (const over of bad) {
      await assertRejected(
        verifySignedRequest(base(db, { headers: { ...good, ...over } })),
        'invalid_signature',
        'malformed_headers',
      );
    }
    // A header sent twice is ambiguous.
    await assertRejected(
      verifySignedRequest(
        base(db, { headers: { ...good, 'X-Tillpoint-Nonce': [good['X-Tillpoint-Nonce'], good['X-Tillpoint-Nonce']] } }),
      ),
      'invalid_signature',
      'malformed_headers',
    );
  });
});

test('base64url nonces of 16+ bytes are accepted', () => {
  // Hand-built signature with a base64url nonce, as a partner might send it.
  const nonce = Buffer.alloc(16, 7).toString('base64url');
  const ts = String(NOW.getTime() / 1000);
  const sig = createHmac('sha256', 'k').update(`${ts}.${nonce}.${BODY}`).digest('hex');
  const r = checkSignature({
    secrets: ['k'],
    headers: { 'x-tillpoint-timestamp': ts, 'x-tillpoint-nonce': nonce, 'x-tillpoint-signature': `v1=${sig}` },
    rawBody: BODY,
    maxAgeSeconds: 60,
    now: NOW,
  });
  assert.equal(r.ok, true);
});

test('no configured secret is a deployment error, not a silent accept', () => {
  assert.throws(() => checkSignature({ secrets: [''], headers: {}, rawBody: '', maxAgeSeconds: 1 }), /no secret/);
});

test('pruneNonces forgets old nonces only', async () => {
  await withDb(async (db) => {
    const old = signRequest('current-secret', BODY, new Date(NOW.getTime() - 900_000));
    await verifySignedRequest(base(db, { headers: old, now: new Date(NOW.getTime() - 900_000) }));
    await verifySignedRequest(base(db));
    assert.equal(await pruneNonces(db, 600, NOW), 1);
    const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM platform.used_nonces');
    assert.equal(r.rows[0].n, 1);
  });
});
