import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { signV4 } from '../../../platform/aws.ts';
import { createTestDb } from '../../../platform/testing.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { createVault } from '../vault.ts';
import { createAwsKmsKeyManager } from './awsKms.ts';
import { KmsError } from './types.ts';

// AWS KMS cannot run here, so this is a local HTTP server that speaks KMS's documented wire
// format (AWS KMS API Reference: JSON 1.1 protocol, X-Amz-Target "TrentService.<Operation>",
// base64 blobs, `__type` errors) and refuses anything else: a wrong target, content type,
// missing field, an encryption context that differs from the one a blob was made with, and any
// request whose SigV4 signature does not verify with the test credentials. It keeps key
// material per rotation, as KMS does, and encrypts data keys for real (AES-GCM), so a blob is
// opaque to the client.

const CREDS = { accessKeyId: 'AKIDTESTKMS', secretAccessKey: 'test-secret-access-key' };
const REGION = 'ap-south-1';
const KEY_ID = '1234abcd-12ab-34cd-56ef-1234567890ab';
const ARN = `arn:aws:kms:${REGION}:111122223333:key/${KEY_ID}`;

function fakeKms() {
  const materials: { id: string; key: Buffer; at: number }[] = [
    { id: randomBytes(32).toString('hex'), key: randomBytes(32), at: 1_700_000_000 },
  ];
  const calls: { target: string; body: Record<string, unknown> }[] = [];
  let throttleNext = false;
  const ctxText = (c: unknown) => JSON.stringify(Object.entries((c ?? {}) as Record<string, string>).sort());

  function seal(plaintext: Buffer, context: unknown) {
    const m = materials[materials.length - 1];
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', m.key, iv);
    c.setAAD(Buffer.from(ctxText(context)));
    const ct = Buffer.concat([c.update(plaintext), c.final()]);
    return Buffer.concat([Buffer.from(m.id, 'hex'), iv, ct, c.getAuthTag()]).toString('base64');
  }
  function open(blob: string, context: unknown): Buffer | undefined {
    const raw = Buffer.from(blob, 'base64');
    const m = materials.find((x) => x.id === raw.subarray(0, 32).toString('hex'));
    if (!m || raw.length < 32 + 12 + 16) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', m.key, raw.subarray(32, 44));
      d.setAAD(Buffer.from(ctxText(context)));
      d.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([d.update(raw.subarray(44, raw.length - 16)), d.final()]);
    } catch {
      return undefined;
    }
  }
  const keyMatches = (k: unknown) => k === KEY_ID || k === ARN || k === 'alias/tillpoint';

  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const fail = (status: number, type: string, message: string) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type });
        res.end(JSON.stringify({ __type: type, message }));
      };
      const ok = (body: unknown) => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
        res.end(JSON.stringify(body));
      };
      // Transport: POST / with the JSON 1.1 content type and a TrentService target.
      const target = String(req.headers['x-amz-target'] ?? '');
      if (req.method !== 'POST' || req.url !== '/') return fail(404, 'UnknownOperationException', 'POST / only');
      if (req.headers['content-type'] !== 'application/x-amz-json-1.1')
        return fail(400, 'SerializationException', 'content type');
      if (!target.startsWith('TrentService.')) return fail(400, 'UnknownOperationException', 'target');
      // SigV4: recompute over the signed headers as received and compare.
      const auth = String(req.headers.authorization ?? '');
      const m =
        /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/kms\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
          auth,
        );
      if (!m || m[1] !== CREDS.accessKeyId || m[3] !== REGION)
        return fail(400, 'IncompleteSignatureException', 'bad authorization header');
      const signed: Record<string, string> = {};
      // X-Amz-Date is added by signV4 itself from `now`.
      for (const h of m[4].split(';')) if (h !== 'x-amz-date') signed[h] = String(req.headers[h]);
      const amz = String(req.headers['x-amz-date']);
      const check = signV4({
        method: 'POST',
        url: `http://${req.headers.host}/`,
        headers: signed,
        body: text,
        region: REGION,
        service: 'kms',
        credentials: CREDS,
        now: new Date(
          `${amz.slice(0, 4)}-${amz.slice(4, 6)}-${amz.slice(6, 8)}T${amz.slice(9, 11)}:${amz.slice(11, 13)}:${amz.slice(13, 15)}Z`,
        ),
      });
      if (check.signature !== m[5])
        return fail(400, 'InvalidSignatureException', 'The request signature we calculated does not match');
      if (!m[4].split(';').includes('x-amz-target'))
        return fail(400, 'InvalidSignatureException', 'target must be signed');

      const body = JSON.parse(text || '{}');
      const op = target.slice('TrentService.'.length);
      calls.push({ target: op, body });
      if (throttleNext) {
        throttleNext = false;
        return fail(400, 'ThrottlingException', 'Rate exceeded');
      }
      const ctxOk = (c: unknown) =>
        c === undefined ||
        (typeof c === 'object' && c !== null && Object.values(c).every((v) => typeof v === 'string'));
      switch (op) {
        case 'GenerateDataKey': {
          if (!keyMatches(body.KeyId)) return fail(400, 'NotFoundException', 'key');
          if (body.KeySpec !== 'AES_256' && body.NumberOfBytes !== 32)
            return fail(400, 'ValidationException', 'KeySpec');
          if (!ctxOk(body.EncryptionContext))
            return fail(400, 'ValidationException', 'EncryptionContext values must be strings');
          const pt = randomBytes(32);
          return ok({
            CiphertextBlob: seal(pt, body.EncryptionContext),
            Plaintext: pt.toString('base64'),
            KeyId: ARN,
            KeyMaterialId: materials[materials.length - 1].id,
          });
        }
        case 'Decrypt': {
          if (typeof body.CiphertextBlob !== 'string') return fail(400, 'ValidationException', 'CiphertextBlob');
          if (body.KeyId !== undefined && !keyMatches(body.KeyId)) return fail(400, 'IncorrectKeyException', 'key');
          const pt = open(body.CiphertextBlob, body.EncryptionContext);
          if (!pt) return fail(400, 'InvalidCiphertextException', '');
          return ok({ Plaintext: pt.toString('base64'), KeyId: ARN, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
        }
        case 'ReEncrypt': {
          if (!keyMatches(body.DestinationKeyId)) return fail(400, 'NotFoundException', 'destination key');
          const pt = open(String(body.CiphertextBlob), body.SourceEncryptionContext);
          if (!pt) return fail(400, 'InvalidCiphertextException', '');
          return ok({
            CiphertextBlob: seal(pt, body.DestinationEncryptionContext),
            KeyId: ARN,
            SourceKeyId: ARN,
            SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
            DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
          });
        }
        case 'DescribeKey':
          if (!keyMatches(body.KeyId)) return fail(400, 'NotFoundException', 'key');
          return ok({
            KeyMetadata: {
              AWSAccountId: '111122223333',
              Arn: ARN,
              KeyId: KEY_ID,
              CreationDate: materials[0].at,
              Enabled: true,
              KeyState: 'Enabled',
              KeySpec: 'SYMMETRIC_DEFAULT',
              KeyUsage: 'ENCRYPT_DECRYPT',
            },
          });
        case 'ListKeyRotations':
          return ok({
            Rotations: materials.slice(1).map((x) => ({ KeyId: ARN, RotationDate: x.at, RotationType: 'ON_DEMAND' })),
            Truncated: false,
          });
        case 'RotateKeyOnDemand':
          if (!keyMatches(body.KeyId)) return fail(400, 'NotFoundException', 'key');
          materials.push({
            id: randomBytes(32).toString('hex'),
            key: randomBytes(32),
            at: Math.floor(Date.now() / 1000),
          });
          return ok({ KeyId: KEY_ID });
        default:
          return fail(400, 'UnknownOperationException', op);
      }
    });
  });
  return {
    server,
    calls,
    throttle: () => (throttleNext = true),
    async listen() {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
  };
}

test('AWS KMS adapter speaks the documented wire format: GenerateDataKey, Decrypt, ReEncrypt with encryption context', async () => {
  const kms = fakeKms();
  const endpoint = await kms.listen();
  try {
    const km = createAwsKmsKeyManager({ keyId: 'alias/tillpoint', region: REGION, endpoint, credentials: () => CREDS });
    const ctx = { app: 'tillpoint', purpose: 'payer_vpa', kind: 'aead', version: '1' };
    const dk = await km.generateDataKey(ctx);
    assert.equal(dk.plaintext.length, 32);
    assert.match(dk.wrapped, /^aws1:[A-Za-z0-9+/=]+$/);
    assert.ok(dk.kekRef.startsWith(`aws-kms:${ARN}`));
    const gen = kms.calls.find((c) => c.target === 'GenerateDataKey')!;
    assert.deepEqual(gen.body, { KeyId: 'alias/tillpoint', KeySpec: 'AES_256', EncryptionContext: ctx });

    assert.deepEqual(await km.unwrap(dk.wrapped, ctx), dk.plaintext);
    const dec = kms.calls.find((c) => c.target === 'Decrypt')!;
    assert.deepEqual(dec.body, {
      CiphertextBlob: dk.wrapped.slice(5),
      EncryptionContext: ctx,
      KeyId: 'alias/tillpoint',
    });
    // Another context: KMS refuses; the error says which exception, nothing more.
    await assert.rejects(
      km.unwrap(dk.wrapped, { ...ctx, version: '2' }),
      (e: Error) => e instanceof KmsError && e.reason === 'InvalidCiphertextException' && !e.retryable,
    );

    // Rotate the KEK (new key material), ReEncrypt under it, the data key itself is unchanged.
    await km.rotate();
    const re = await km.rewrap(dk.wrapped, ctx);
    assert.notEqual(re.wrapped, dk.wrapped);
    const reCall = kms.calls.find((c) => c.target === 'ReEncrypt')!;
    assert.deepEqual(Object.keys(reCall.body).sort(), [
      'CiphertextBlob',
      'DestinationEncryptionContext',
      'DestinationKeyId',
      'SourceEncryptionContext',
    ]);
    assert.deepEqual(await km.unwrap(re.wrapped, ctx), dk.plaintext);
    const info = await km.describe();
    assert.equal(info.kekRef, `aws-kms:${ARN}`);
    assert.ok(info.createdAt!.getTime() > 1_700_000_000_000, 'age counts from the last rotation');

    kms.throttle();
    await assert.rejects(
      km.unwrap(dk.wrapped, ctx),
      (e: Error) => e instanceof KmsError && e.reason === 'ThrottlingException' && e.retryable,
    );
    // Wrong credentials are refused by the signature check.
    const bad = createAwsKmsKeyManager({
      keyId: KEY_ID,
      region: REGION,
      endpoint,
      credentials: () => ({ ...CREDS, secretAccessKey: 'wrong' }),
    });
    await assert.rejects(
      bad.generateDataKey(ctx),
      (e: Error) => e instanceof KmsError && e.reason === 'InvalidSignatureException',
    );
  } finally {
    kms.server.close();
  }
});

test('the vault runs on the AWS KMS adapter end to end: fields, rotation of the KEK, retirement is a no-op', async () => {
  const kms = fakeKms();
  const endpoint = await kms.listen();
  const db = await createTestDb();
  try {
    await db.exec(`CREATE SCHEMA vt; CREATE TABLE vt.items (id text PRIMARY KEY, v_ct text)`);
    const field = { table: 'vt.items', idColumn: 'id', column: 'v_ct', purpose: 'aws_test' };
    const vault = createVault({
      db,
      clock: fixedClock('2026-01-01T00:00:00Z'),
      fields: [field],
      vpaPattern: /./,
      kms: createAwsKmsKeyManager({ keyId: KEY_ID, region: REGION, endpoint, credentials: () => CREDS }),
      config: { cacheTtlMs: 0, rewrapBatchSize: 10, cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 } },
    });
    await vault.init();
    const s = await vault.cipher.seal(field, 'row1', '4111111111111111');
    const out = await vault.rotateKek();
    assert.equal(out.retired, 0, 'KMS keeps earlier key material by design');
    vault.keys.wipe();
    assert.equal(await vault.cipher.open(field, 'row1', s.ciphertext), '4111111111111111');
    // Every data key is stored wrapped by KMS, with its context.
    const rows = await db.query<{ wrapped_key: string; purpose: string }>(
      `SELECT wrapped_key, purpose FROM vault.data_keys`,
    );
    for (const r of rows.rows) assert.match(r.wrapped_key, /^aws1:/);
    const ctxs = kms.calls
      .filter((c) => c.target === 'Decrypt')
      .map((c) => (c.body.EncryptionContext as Record<string, string>).purpose);
    assert.ok(ctxs.includes('aws_test'));
  } finally {
    kms.server.close();
    await db.close();
  }
});
