import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, renameSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  createAwsSecretsManager,
  createEnvSecrets,
  createFileSecrets,
  createSecretStore,
  parseSecretsConfig,
} from './secrets.ts';
import { ConfigError } from './settings.ts';
import { checkSignature, signRequest } from './signing.ts';

test('env secrets: NAME and NAME_PREVIOUS', async () => {
  const p = createEnvSecrets({ BANK_AXIS_SECRET: 'new', BANK_AXIS_SECRET_PREVIOUS: 'old' });
  assert.deepEqual(await p.get('BANK_AXIS_SECRET'), { current: 'new', previous: 'old' });
  assert.equal(await p.get('MISSING'), undefined);
});

test('Kubernetes-mounted secrets: read through the ..data symlink, a swapped volume is picked up', async () => {
  // The layout the kubelet writes: files live in a timestamped dir, "..data" points at it, and
  // each key is a symlink through "..data". An update writes a new dir and flips "..data".
  const dir = mkdtempSync(join(tmpdir(), 'tp-secrets-'));
  const v1 = join(dir, '..2026_01_01_00_00_00.1');
  mkdirSync(v1);
  writeFileSync(join(v1, 'DATABASE_PASSWORD'), 'pw-1\n');
  symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data'));
  symlinkSync('..data/DATABASE_PASSWORD', join(dir, 'DATABASE_PASSWORD'));
  symlinkSync('..data/DATABASE_PASSWORD_PREVIOUS', join(dir, 'DATABASE_PASSWORD_PREVIOUS'));
  const files = createFileSecrets(dir);
  assert.equal((await files.get('DATABASE_PASSWORD'))!.current, 'pw-1', 'trailing newline is not part of the value');
  assert.equal((await files.get('DATABASE_PASSWORD'))!.previous, undefined);

  const store = createSecretStore(files, { refreshMs: 60_000, overlapMs: 3_600_000 });
  const s = await store.watch('DATABASE_PASSWORD', 'DATABASE_PASSWORD_SECRET');
  let changes = 0;
  s.onChange(() => changes++);
  const v2 = join(dir, '..2026_01_02_00_00_00.1');
  mkdirSync(v2);
  writeFileSync(join(v2, 'DATABASE_PASSWORD'), 'pw-2');
  writeFileSync(join(v2, 'DATABASE_PASSWORD_PREVIOUS'), 'pw-1');
  symlinkSync('..2026_01_02_00_00_00.1', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  await store.refresh();
  assert.equal(s.current(), 'pw-2');
  assert.deepEqual(s.verifying(), ['pw-2', 'pw-1']);
  assert.ok(changes >= 1);
  // Once the current value is older than the overlap, the previous one stops verifying.
  const old = new Date(Date.now() - 2 * 3_600_000);
  utimesSync(join(v2, 'DATABASE_PASSWORD'), old, old);
  await store.refresh();
  assert.deepEqual(s.verifying(), ['pw-2']);
  await assert.rejects(
    store.watch('NOT_THERE', 'SOME_SETTING'),
    (e: Error) => e instanceof ConfigError && /SOME_SETTING/.test(e.message) && /NOT_THERE is not set/.test(e.message),
  );
});

// AWS Secrets Manager cannot run here: a local server that answers GetSecretValue in the
// documented JSON 1.1 format (target "secretsmanager.GetSecretValue", SecretId + VersionStage,
// ResourceNotFoundException for a missing stage) and checks each request is SigV4-signed for
// the secretsmanager service.
function fakeSecretsManager(secrets: Record<string, { stages: Record<string, { value: string; created: number }> }>) {
  const requests: { target: string; body: Record<string, unknown>; auth: string }[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const body = JSON.parse(text || '{}');
      const target = String(req.headers['x-amz-target']);
      const auth = String(req.headers.authorization);
      requests.push({ target, body, auth });
      const reply = (status: number, b: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(b));
      };
      if (
        req.headers['content-type'] !== 'application/x-amz-json-1.1' ||
        !/\/secretsmanager\/aws4_request, SignedHeaders=[a-z;-]*x-amz-target/.test(auth)
      ) {
        return reply(400, { __type: 'InvalidSignatureException', message: 'signature' });
      }
      if (target !== 'secretsmanager.GetSecretValue')
        return reply(400, { __type: 'UnknownOperationException', message: target });
      const s = secrets[String(body.SecretId)];
      const stage = s?.stages[String(body.VersionStage ?? 'AWSCURRENT')];
      if (!stage)
        return reply(400, {
          __type: 'ResourceNotFoundException',
          message: "Secrets Manager can't find the specified secret.",
        });
      return reply(200, {
        ARN: `arn:aws:secretsmanager:ap-south-1:111122223333:secret:${body.SecretId}-AbCdEf`,
        Name: body.SecretId,
        VersionId: randomUUID(),
        SecretString: stage.value,
        VersionStages: [String(body.VersionStage)],
        CreatedDate: stage.created,
      });
    });
  });
  return {
    server,
    requests,
    secrets,
    async listen() {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
  };
}

test('AWS Secrets Manager adapter: AWSCURRENT and AWSPREVIOUS in the documented format; a watched secret rotates without restart', async () => {
  const now = Math.floor(Date.now() / 1000);
  const sm = fakeSecretsManager({
    'tillpoint/BANK_AXIS_SECRET': { stages: { AWSCURRENT: { value: 'axis-secret-1', created: now - 86_400 * 30 } } },
  });
  const endpoint = await sm.listen();
  try {
    const provider = createAwsSecretsManager({
      region: 'ap-south-1',
      endpoint,
      prefix: 'tillpoint/',
      credentials: () => ({ accessKeyId: 'AKID', secretAccessKey: 'x' }),
    });
    const store = createSecretStore(provider, { refreshMs: 60_000, overlapMs: 3_600_000 });
    // (How the banks module binds a bank's secret to such a watch: src/modules/banks/bankSecrets.test.ts.)
    const secret = await store.watch('BANK_AXIS_SECRET', 'BANKS[AXIS].secret_name');
    assert.equal(secret.current(), 'axis-secret-1');
    assert.deepEqual(secret.verifying(), ['axis-secret-1']);
    assert.deepEqual(sm.requests[0].body, { SecretId: 'tillpoint/BANK_AXIS_SECRET', VersionStage: 'AWSCURRENT' });
    assert.deepEqual(sm.requests[1].body, { SecretId: 'tillpoint/BANK_AXIS_SECRET', VersionStage: 'AWSPREVIOUS' });

    // Secrets Manager's rotation moves the labels: new value is AWSCURRENT, old is AWSPREVIOUS.
    sm.secrets['tillpoint/BANK_AXIS_SECRET'].stages = {
      AWSCURRENT: { value: 'axis-secret-2', created: now },
      AWSPREVIOUS: { value: 'axis-secret-1', created: now - 86_400 * 30 },
    };
    const signedByBankWithOld = signRequest('axis-secret-1', '{"a":1}');
    await store.refresh();
    assert.equal(secret.current(), 'axis-secret-2', 'only the current value signs');
    // During the overlap a callback the bank signed with the old secret still verifies…
    assert.deepEqual(secret.verifying(), ['axis-secret-2', 'axis-secret-1']);
    assert.equal(
      checkSignature({
        secrets: secret.verifying(),
        headers: signedByBankWithOld,
        rawBody: '{"a":1}',
        maxAgeSeconds: 300,
      }).ok,
      true,
    );
    // …and once the overlap is over it does not.
    sm.secrets['tillpoint/BANK_AXIS_SECRET'].stages.AWSCURRENT.created = now - 7200;
    await store.refresh();
    assert.deepEqual(secret.verifying(), ['axis-secret-2']);
    assert.equal(
      checkSignature({
        secrets: secret.verifying(),
        headers: signedByBankWithOld,
        rawBody: '{"a":1}',
        maxAgeSeconds: 300,
      }).ok,
      false,
    );

    const missing = createSecretStore(provider, { refreshMs: 60_000, overlapMs: 0 });
    await assert.rejects(
      missing.watch('BANK_NOPE_SECRET', 'BANKS[AXIS].secret_name'),
      /BANKS\[AXIS\]\.secret_name: secret BANK_NOPE_SECRET is not set in aws-secrets-manager/,
    );
  } finally {
    sm.server.close();
  }
});

test('secrets config: provider choice and AWS region are checked', () => {
  assert.equal(parseSecretsConfig({}).provider, 'env');
  assert.throws(() => parseSecretsConfig({ SECRETS_PROVIDER: 'vault' }), /SECRETS_PROVIDER/);
  assert.throws(() => parseSecretsConfig({ SECRETS_PROVIDER: 'aws-secrets-manager' }), /AWS_REGION/);
  assert.equal(parseSecretsConfig({ SECRETS_PROVIDER: 'files', SECRETS_DIR: '/run/s' }).dir, '/run/s');
});
