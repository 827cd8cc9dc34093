import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { awsCredentials, hasAwsCredentials, webIdentityCredentials, AwsCredentialsError } from './awsCredentials.ts';

// AWS STS cannot be reached from this machine, so this server plays STS with the wire format
// AWS documents for AssumeRoleWithWebIdentity (Query API 2011-06-15: a form-encoded POST, an
// XML <AssumeRoleWithWebIdentityResponse>, errors as <ErrorResponse><Error><Code/><Message/>).
// The request is not signed: the web identity token is the proof of identity.

const ROLE = 'arn:aws:iam::111122223333:role/tillpoint-prod-api';
const dir = mkdtempSync(join(tmpdir(), 'tp-irsa-'));
const tokenFile = join(dir, 'token');

interface Seen {
  params: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  method: string;
  url: string;
}
const seen: Seen[] = [];
let nextExpiration = () => new Date(Date.now() + 3600_000);
let refuse: { status: number; code: string; message: string } | undefined;
let release: Promise<void> = Promise.resolve();
let server: Server;
let endpoint: string;
let issued = 0;

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

before(async () => {
  server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const params = new URLSearchParams(body);
    seen.push({ params, headers: req.headers, method: req.method!, url: req.url! });
    await release;
    if (refuse) {
      res.writeHead(refuse.status, { 'Content-Type': 'text/xml' });
      res.end(
        `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${refuse.code}</Code><Message>${xmlEscape(refuse.message)}</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>`,
      );
      return;
    }
    issued++;
    res.writeHead(200, { 'Content-Type': 'text/xml' });
    res.end(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:tillpoint:tillpoint-api</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::111122223333:assumed-role/tillpoint-prod-api/${params.get('RoleSessionName')}</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:${params.get('RoleSessionName')}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>session-token-${issued}+/&amp;=</SessionToken>
      <SecretAccessKey>secret-${issued}</SecretAccessKey>
      <Expiration>${nextExpiration()
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z')}</Expiration>
      <AccessKeyId>ASIAEXAMPLE${issued}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::111122223333:oidc-provider/oidc.eks.ap-south-1.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

function reset() {
  seen.length = 0;
  refuse = undefined;
  release = Promise.resolve();
  nextExpiration = () => new Date(Date.now() + 3600_000);
}

test('static environment keys come first, read on each call, and STS is not asked', async () => {
  reset();
  const env: Record<string, string | undefined> = {
    AWS_ACCESS_KEY_ID: 'AKIDSTATIC',
    AWS_SECRET_ACCESS_KEY: 'static-secret',
    AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
    AWS_ROLE_ARN: ROLE,
    AWS_STS_ENDPOINT: endpoint,
  };
  const creds = awsCredentials(env);
  assert.deepEqual(await creds(), {
    accessKeyId: 'AKIDSTATIC',
    secretAccessKey: 'static-secret',
    sessionToken: undefined,
  });
  env.AWS_SESSION_TOKEN = 'tok';
  assert.equal((await creds()).sessionToken, 'tok');
  assert.equal(seen.length, 0);
  assert.equal(hasAwsCredentials(env), true);
});

test('no keys and no web identity: a clear error', async () => {
  assert.equal(hasAwsCredentials({}), false);
  await assert.rejects(
    awsCredentials({})(),
    (e: unknown) =>
      e instanceof AwsCredentialsError &&
      e.code === 'CredentialsMissing' &&
      /AWS_WEB_IDENTITY_TOKEN_FILE/.test(e.message),
  );
});

test('web identity: the documented AssumeRoleWithWebIdentity request, credentials cached until shortly before expiry', async () => {
  reset();
  const token = `eyJ${randomBytes(24).toString('base64url')}.payload.sig`;
  writeFileSync(tokenFile, token + '\n');
  const env = {
    AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
    AWS_ROLE_ARN: ROLE,
    AWS_ROLE_SESSION_NAME: 'api-pod-1',
    AWS_STS_ENDPOINT: endpoint,
  };
  assert.equal(hasAwsCredentials(env), true);
  const creds = awsCredentials(env);
  const first = await creds();
  assert.equal(seen.length, 1);
  const r = seen[0];
  assert.equal(r.method, 'POST');
  assert.equal(r.url, '/');
  assert.match(String(r.headers['content-type']), /^application\/x-www-form-urlencoded/);
  assert.equal(r.headers.authorization, undefined, 'the request is not signed');
  assert.equal(r.params.get('Action'), 'AssumeRoleWithWebIdentity');
  assert.equal(r.params.get('Version'), '2011-06-15');
  assert.equal(r.params.get('RoleArn'), ROLE);
  assert.equal(r.params.get('RoleSessionName'), 'api-pod-1');
  assert.equal(r.params.get('WebIdentityToken'), token, 'the token as in the file, without the newline');
  assert.match(first.accessKeyId, /^ASIAEXAMPLE\d+$/);
  assert.match(first.secretAccessKey, /^secret-\d+$/);
  assert.match(first.sessionToken!, /^session-token-\d+\+\/&=$/, 'XML entities decoded');

  // Cached: an hour left, well beyond the 5-minute refresh margin.
  assert.deepEqual(await creds(), first);
  assert.deepEqual(await creds(), first);
  assert.equal(seen.length, 1);
});

test('refresh a few minutes before Expiration, re-reading the rotated token file', async () => {
  reset();
  writeFileSync(tokenFile, 'token-one');
  let now = new Date('2026-12-01T10:00:00Z');
  nextExpiration = () => new Date(now.getTime() + 3600_000);
  const creds = webIdentityCredentials({ tokenFile, roleArn: ROLE, stsEndpoint: endpoint, now: () => now });
  const a = await creds();
  assert.equal(seen.length, 1);
  assert.match(seen[0].params.get('RoleSessionName')!, /^tillpoint-\d+$/, 'a default session name');

  writeFileSync(tokenFile, 'token-two'); // the kubelet rotated the projected token
  now = new Date('2026-12-01T10:54:00Z'); // 6 minutes left: still cached
  assert.deepEqual(await creds(), a);
  assert.equal(seen.length, 1);

  now = new Date('2026-12-01T10:56:00Z'); // 4 minutes left: refreshed
  const b = await creds();
  assert.equal(seen.length, 2);
  assert.equal(seen[1].params.get('WebIdentityToken'), 'token-two');
  assert.notEqual(b.accessKeyId, a.accessKeyId);
});

test('concurrent callers share one refresh', async () => {
  reset();
  writeFileSync(tokenFile, 'token-concurrent');
  let open!: () => void;
  release = new Promise<void>((r) => (open = r));
  const creds = webIdentityCredentials({ tokenFile, roleArn: ROLE, stsEndpoint: endpoint });
  const pending = Array.from({ length: 20 }, () => creds());
  // Wait until STS has the request, then let it answer.
  while (seen.length === 0) await new Promise((r) => setTimeout(r, 10));
  open();
  const all = await Promise.all(pending);
  assert.equal(seen.length, 1);
  for (const c of all) assert.deepEqual(c, all[0]);
});

test('STS refusal: its code and message, never the token', async () => {
  reset();
  const token = `secret-jwt-${randomBytes(16).toString('hex')}`;
  writeFileSync(tokenFile, token);
  refuse = { status: 400, code: 'InvalidIdentityToken', message: 'Incorrect token audience' };
  const creds = webIdentityCredentials({ tokenFile, roleArn: ROLE, stsEndpoint: endpoint });
  await assert.rejects(creds(), (e: unknown) => {
    assert.ok(e instanceof AwsCredentialsError);
    assert.equal(e.code, 'InvalidIdentityToken');
    assert.match(e.message, /refused: 400 InvalidIdentityToken: Incorrect token audience/);
    assert.match(e.message, new RegExp(ROLE.replace(/[/:]/g, '.')));
    assert.ok(!e.message.includes(token) && !String(e.stack).includes(token));
    return true;
  });
  refuse = { status: 403, code: 'AccessDenied', message: 'Not authorized to perform sts:AssumeRoleWithWebIdentity' };
  await assert.rejects(creds(), (e: unknown) => e instanceof AwsCredentialsError && e.code === 'AccessDenied');
  // Not cached: the next call asks again and succeeds.
  refuse = undefined;
  assert.match((await creds()).accessKeyId, /^ASIA/);
});

test('a failed early refresh keeps the still-valid credentials; once expired the error surfaces', async () => {
  reset();
  writeFileSync(tokenFile, 'token-x');
  let now = new Date('2026-12-01T10:00:00Z');
  nextExpiration = () => new Date(now.getTime() + 3600_000);
  const creds = webIdentityCredentials({ tokenFile, roleArn: ROLE, stsEndpoint: endpoint, now: () => now });
  const a = await creds();
  refuse = { status: 503, code: 'ServiceUnavailable', message: '' };
  now = new Date('2026-12-01T10:57:00Z');
  assert.deepEqual(await creds(), a);
  assert.equal(seen.length, 2, 'it did try');
  now = new Date('2026-12-01T11:00:30Z');
  await assert.rejects(creds(), (e: unknown) => e instanceof AwsCredentialsError && e.code === 'ServiceUnavailable');
});

test('missing token file, unreachable STS and an unreadable answer are clear errors', async () => {
  reset();
  const missing = webIdentityCredentials({ tokenFile: join(dir, 'absent'), roleArn: ROLE, stsEndpoint: endpoint });
  await assert.rejects(
    missing(),
    (e: unknown) =>
      e instanceof AwsCredentialsError && e.code === 'TokenFileUnreadable' && /absent.*ENOENT/.test(e.message),
  );
  assert.equal(seen.length, 0);

  writeFileSync(tokenFile, 'token-net');
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const unreachable = webIdentityCredentials({ tokenFile, roleArn: ROLE, stsEndpoint: `http://127.0.0.1:${port}` });
  await assert.rejects(
    unreachable(),
    (e: unknown) => e instanceof AwsCredentialsError && e.code === 'StsUnreachable' && !e.message.includes('token-net'),
  );

  const garbled = webIdentityCredentials({
    tokenFile,
    roleArn: ROLE,
    fetch: async () => new Response('<html>proxy</html>', { status: 200 }),
  });
  await assert.rejects(garbled(), (e: unknown) => e instanceof AwsCredentialsError && e.code === 'UnreadableResponse');
});

test('the regional STS endpoint by default', async () => {
  writeFileSync(tokenFile, 'token-region');
  let asked = '';
  const creds = awsCredentials(
    { AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ROLE_ARN: ROLE, AWS_REGION: 'ap-south-1' },
    {
      fetch: async (url) => {
        asked = String(url);
        return new Response(
          '<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>',
          { status: 403 },
        );
      },
    },
  );
  await assert.rejects(creds());
  assert.equal(asked, 'https://sts.ap-south-1.amazonaws.com/');
});
