import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { signV4 } from '../src/platform/aws.ts';
import { createTestDb } from '../src/platform/testing.ts';
import { testAuditService } from './helpers/audit.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { s3Worm } from '../src/modules/audit/index.ts';

// The S3 adapter cannot talk to S3 here, so it is tested against the documented request:
// PutObject with x-amz-object-lock-mode: COMPLIANCE, x-amz-object-lock-retain-until-date
// (ISO 8601), Content-MD5 (required by S3 with Object Lock), If-None-Match: * (no overwrite),
// and a SigV4 signature over all of it, which this fake S3 recomputes from what it received.

const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: randomBytes(20).toString('base64') };

interface Put {
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

function fakeS3() {
  const objects = new Map<string, Buffer>();
  const puts: Put[] = [];
  const problems: string[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const auth = String(req.headers.authorization ?? '');
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    if (!m) {
      problems.push(`bad Authorization: ${auth}`);
      res.writeHead(403).end('<Error><Code>AccessDenied</Code></Error>');
      return;
    }
    // Recompute the signature from the headers the client says it signed.
    const signed: Record<string, string> = {};
    for (const h of m[4].split(';')) if (h !== 'host' && h !== 'x-amz-date') signed[h] = String(req.headers[h]);
    const again = signV4({
      method: req.method!,
      url: `http://${req.headers.host}${req.url}`,
      headers: signed,
      body,
      region: m[3],
      service: 's3',
      credentials: CREDS,
      now: new Date(
        String(req.headers['x-amz-date']).replace(
          /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/,
          '$1-$2-$3T$4:$5:$6Z',
        ),
      ),
    });
    if (again.signature !== m[5]) {
      problems.push('signature mismatch');
      res.writeHead(403).end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
      return;
    }
    const path = decodeURIComponent(req.url!);
    const url = new URL(req.url!, 'http://s3.test');
    if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
      // ListObjectsV2 (path-style): keys under the prefix, two a page, to exercise continuation.
      const bucket = url.pathname.replace(/\/$/, '');
      const all = [...objects.keys()]
        .filter((k) => k.startsWith(`${bucket}/${url.searchParams.get('prefix') ?? ''}`))
        .map((k) => k.slice(bucket.length + 1))
        .sort();
      const from = Number(url.searchParams.get('continuation-token') ?? 0);
      const page = all.slice(from, from + 2);
      const more = from + 2 < all.length;
      res
        .writeHead(200, { 'content-type': 'application/xml' })
        .end(
          `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${bucket.slice(1)}</Name><KeyCount>${page.length}</KeyCount><MaxKeys>2</MaxKeys>` +
            `<IsTruncated>${more}</IsTruncated>${page.map((k) => `<Contents><Key>${k}</Key><Size>${objects.get(`${bucket}/${k}`)!.length}</Size></Contents>`).join('')}` +
            `${more ? `<NextContinuationToken>${from + 2}</NextContinuationToken>` : ''}</ListBucketResult>`,
        );
      return;
    }
    if (req.method === 'GET') {
      const o = objects.get(path);
      if (!o) {
        res.writeHead(404).end('<Error><Code>NoSuchKey</Code></Error>');
        return;
      }
      const range = /^bytes=0-(\d+)$/.exec(String(req.headers.range ?? ''));
      if (range) res.writeHead(206).end(o.subarray(0, Number(range[1]) + 1));
      else res.writeHead(200).end(o);
      return;
    }
    if (req.method === 'HEAD') {
      const o = objects.get(path);
      res.writeHead(o ? 200 : 404, o ? { etag: `"${createHash('md5').update(o).digest('hex')}"` } : {}).end();
      return;
    }
    puts.push({ path, headers: req.headers, body });
    for (const h of [
      'content-md5',
      'x-amz-object-lock-mode',
      'x-amz-object-lock-retain-until-date',
      'if-none-match',
      'x-amz-content-sha256',
    ]) {
      if (!m[4].split(';').includes(h)) problems.push(`${h} not signed`);
    }
    if (req.headers['content-md5'] !== createHash('md5').update(body).digest('base64')) {
      res.writeHead(400).end('<Error><Code>BadDigest</Code></Error>');
      return;
    }
    if (objects.has(path) && req.headers['if-none-match'] === '*') {
      res.writeHead(412).end('<Error><Code>PreconditionFailed</Code></Error>');
      return;
    }
    objects.set(path, body);
    res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` }).end();
  });
  return { server, objects, puts, problems };
}

test('S3 with Object Lock in compliance mode: the documented PutObject, signed, never overwriting', async () => {
  const s3 = fakeS3();
  await new Promise<void>((r) => s3.server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(s3.server.address() as AddressInfo).port}`;
  const db = await createTestDb();
  const clock = fixedClock('2025-02-01T00:00:00.000Z');
  try {
    const store = s3Worm({
      bucket: 'tp-audit',
      region: 'ap-south-1',
      endpoint,
      prefix: 'prod/audit/',
      credentials: CREDS,
      now: () => clock.now(),
    });
    const audit = testAuditService({ db, clock, store });
    for (let i = 0; i < 3; i++)
      await db.tx((tx) =>
        audit.record(tx, { action: 'api_key.created', resource: { type: 'api_key', id: `key_${i}` } }),
      );
    await audit.seal();
    await audit.signHead(true);
    const out = await audit.exportSegments();
    assert.deepEqual([out?.start, out?.end], [0, 3]);
    assert.equal(s3.problems.length, 0, s3.problems.join('; '));
    const put = s3.puts[0];
    assert.equal(put.path, '/tp-audit/prod/audit/segments/000000000000-000000000003.jsonl');
    assert.equal(put.headers['x-amz-object-lock-mode'], 'COMPLIANCE');
    assert.equal(put.headers['x-amz-object-lock-retain-until-date'], '2026-02-01T00:00:00Z', 'twelve months, ISO 8601');
    assert.equal(put.headers['if-none-match'], '*');
    assert.equal(put.headers['x-amz-content-sha256'], createHash('sha256').update(put.body).digest('hex'));
    assert.match(String(put.headers.authorization), /Credential=AKIDEXAMPLE\/20250201\/ap-south-1\/s3\/aws4_request/);
    const lines = put.body
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines[0].head.tree_size, 3);
    assert.equal(lines.length, 4);
    // Exported once; the same bytes again are accepted as already there; other bytes are refused.
    assert.equal(await audit.exportSegments(), undefined);
    assert.equal(
      await store.put('segments/000000000000-000000000003.jsonl', put.body, clock.now()),
      `${endpoint}/tp-audit/prod/audit/segments/000000000000-000000000003.jsonl`,
    );
    await assert.rejects(
      store.put('segments/000000000000-000000000003.jsonl', Buffer.from('forged\n'), clock.now()),
      /never overwritten/,
    );
    assert.equal(
      s3.objects.get('/tp-audit/prod/audit/segments/000000000000-000000000003.jsonl')!.equals(put.body),
      true,
      'the stored object is unchanged',
    );
  } finally {
    await db.close();
    s3.server.close();
  }
});

test('retention: records older than the online period leave the database only after export, and verify still passes', async () => {
  const db = await createTestDb();
  const dir = mkdtempSync(join(tmpdir(), 'tp-ret-'));
  const clock = fixedClock('2025-01-01T00:00:00.000Z');
  try {
    const audit = testAuditService({ db, clock, dir });
    const old: string[] = [];
    for (let i = 0; i < 4; i++)
      old.push(await db.tx((tx) => audit.record(tx, { action: 'merchant.created', details: { i } })));
    await audit.seal();
    await audit.signHead(true);
    clock.advance(100 * 86_400_000);
    for (let i = 0; i < 2; i++) await db.tx((tx) => audit.record(tx, { action: 'merchant.updated', details: { i } }));
    await audit.seal();
    assert.equal((await audit.runRetention()).pruned, undefined, 'nothing leaves before it is exported');
    await audit.exportSegments();
    const r = await audit.runRetention();
    assert.deepEqual({ from: r.pruned?.from, to: r.pruned?.to }, { from: 0, to: 4 });
    const left = await db.query<{ id: string }>(`SELECT id FROM audit.events WHERE id = ANY($1)`, [old]);
    assert.equal(left.rows.length, 0, 'records past three months are gone from the database');
    await audit.seal();
    await audit.signHead(true);
    const v = await audit.verify();
    assert.equal(v.ok, true, JSON.stringify(v.first));
    assert.equal(v.archived_leaves, 4);
    // Moving the boundary by hand (deleting more) is caught: no recorded retention run covers it.
    await db.tx(async (tx) => {
      await tx.query(`UPDATE audit.state SET pruned_size = 6`);
      await tx.query(`ALTER TABLE audit.events DISABLE TRIGGER USER`);
      await tx.query(
        `DELETE FROM audit.events e USING audit.leaves l WHERE l.event_id = e.id AND l.leaf_index IN (4, 5)`,
      );
      await tx.query(`ALTER TABLE audit.events ENABLE TRIGGER USER`);
    });
    const bad = await audit.verify();
    assert.equal(bad.ok, false);
    assert.equal(bad.first?.kind, 'removed');
    assert.equal(bad.first?.leaf_index, 4, 'at the first record past the recorded boundary');
  } finally {
    await db.close();
  }
});

test('S3: audit verify lists the bucket and reads every segment head back; a trail cut short in the database fails', async () => {
  const s3 = fakeS3();
  await new Promise<void>((r) => s3.server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(s3.server.address() as AddressInfo).port}`;
  const db = await createTestDb();
  const clock = fixedClock('2025-02-01T00:00:00.000Z');
  try {
    // A credentials provider (as awsCredentials gives: env keys or IRSA), asked before each request.
    let asked = 0;
    const store = s3Worm({
      bucket: 'tp-audit',
      region: 'ap-south-1',
      endpoint,
      prefix: 'prod/audit/',
      credentials: async () => (asked++, CREDS),
      now: () => clock.now(),
    });
    const audit = testAuditService({ db, clock, store });
    // Five segments, so the listing takes three pages.
    for (let seg = 0; seg < 5; seg++) {
      for (let i = 0; i < 3; i++)
        await db.tx((tx) =>
          audit.record(tx, { action: 'api_key.created', resource: { type: 'api_key', id: `key_${seg}_${i}` } }),
        );
      clock.advance(120_000);
      await audit.seal();
      await audit.signHead(true);
      await audit.exportSegments();
    }
    assert.deepEqual(
      await store.list('segments/'),
      [0, 3, 6, 9, 12].map((s) => `segments/${String(s).padStart(12, '0')}-${String(s + 3).padStart(12, '0')}.jsonl`),
    );
    const ok = await audit.verify();
    assert.equal(ok.ok, true, JSON.stringify(ok.first));
    assert.equal(ok.exported_heads_checked, 5);
    assert.equal(s3.problems.length, 0, s3.problems.join('; '));
    // A database owner cuts the trail back to 9 leaves, with everything the database knows of the rest.
    await db.tx(async (tx) => {
      await tx.query(`SET LOCAL session_replication_role = replica`);
      await tx.query(`DELETE FROM audit.events e USING audit.leaves l WHERE l.event_id = e.id AND l.leaf_index >= 9`);
      await tx.query(`DELETE FROM audit.leaves WHERE leaf_index >= 9`);
      await tx.query(`DELETE FROM audit.nodes WHERE (idx + 1) * (1::bigint << level) > 9`);
      await tx.query(`DELETE FROM audit.tree_heads WHERE tree_size > 9`);
      await tx.query(`DELETE FROM audit.exports WHERE segment_end > 9`);
      await tx.query(`UPDATE audit.state SET tree_size = 9, exported_size = 9`);
    });
    const bad = await audit.verify();
    assert.equal(bad.ok, false);
    assert.equal(bad.first?.kind, 'removed');
    assert.match(bad.first!.message, /segments\/000000000012-000000000015\.jsonl/);
    assert.match(bad.first!.message, /leaves 9 to 14 \(6 records\) are missing/);
    // The store cannot be read: verify does not say ok.
    s3.server.close();
    s3.server.closeAllConnections();
    const blind = await audit.verify();
    assert.equal(blind.ok, false);
    assert.ok(blind.problems.some((p) => p.kind === 'export_unreadable'));
    assert.ok(asked > 0, 'the credentials provider was asked');
  } finally {
    await db.close();
    s3.server.close();
  }
});
