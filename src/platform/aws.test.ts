import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signV4, createAwsJsonClient, AwsError } from './aws.ts';

// AWS's published SigV4 test suite ("aws-sig-v4-test-suite", the vectors in AWS's General
// Reference): credentials AKIDEXAMPLE, region us-east-1, service "service", 2015-08-30T12:36:00Z.
const SUITE = {
  region: 'us-east-1',
  service: 'service',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  now: new Date('2015-08-30T12:36:00Z'),
};
const cred = 'Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request';

const vectors: {
  name: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: string;
  authz: string;
}[] = [
  {
    name: 'get-vanilla',
    method: 'GET',
    url: 'https://example.amazonaws.com/',
    authz: `AWS4-HMAC-SHA256 ${cred}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31`,
  },
  {
    name: 'post-vanilla',
    method: 'POST',
    url: 'https://example.amazonaws.com/',
    authz: `AWS4-HMAC-SHA256 ${cred}, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b`,
  },
  {
    name: 'get-vanilla-query-order-key-case',
    method: 'GET',
    url: 'https://example.amazonaws.com/?Param2=value2&Param1=value1',
    authz: `AWS4-HMAC-SHA256 ${cred}, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500`,
  },
  {
    name: 'get-header-value-trim',
    method: 'GET',
    url: 'https://example.amazonaws.com/',
    headers: { 'My-Header1': ' value1 ', 'My-Header2': ' "a   b   c" ' },
    authz: `AWS4-HMAC-SHA256 ${cred}, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736`,
  },
  {
    name: 'post-x-www-form-urlencoded',
    method: 'POST',
    url: 'https://example.amazonaws.com/',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'Param1=value1',
    authz: `AWS4-HMAC-SHA256 ${cred}, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a`,
  },
  {
    name: 'get-utf8',
    method: 'GET',
    url: 'https://example.amazonaws.com/\u1234',
    authz: `AWS4-HMAC-SHA256 ${cred}, SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85`,
  },
];

for (const v of vectors) {
  test(`SigV4 reproduces AWS's published test vector ${v.name}`, () => {
    // The suite's requests predate double encoding of non-S3 paths, so sign the path as given.
    const s = signV4({
      ...SUITE,
      method: v.method,
      url: v.url,
      headers: v.headers,
      body: v.body,
      doubleEncodePath: false,
    });
    assert.equal(s.headers.Authorization, v.authz);
    assert.equal(s.headers['X-Amz-Date'], '20150830T123600Z');
  });
}

test("SigV4 reproduces the S3 GetObject example from AWS's documentation", () => {
  // "Authenticating Requests: Using the Authorization Header" (Amazon S3 API reference).
  const s = signV4({
    method: 'GET',
    url: 'https://examplebucket.s3.amazonaws.com/test.txt',
    headers: {
      Range: 'bytes=0-9',
      'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    },
    region: 'us-east-1',
    service: 's3',
    credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
    now: new Date('2013-05-24T00:00:00Z'),
  });
  assert.equal(s.signature, 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
  assert.match(s.headers.Authorization, /SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,/);
});

test('SigV4: a session token is sent and signed', () => {
  const s = signV4({
    ...SUITE,
    method: 'GET',
    url: 'https://example.amazonaws.com/',
    credentials: { ...SUITE.credentials, sessionToken: 'tok' },
  });
  assert.equal(s.headers['X-Amz-Security-Token'], 'tok');
  assert.match(s.headers.Authorization, /SignedHeaders=host;x-amz-date;x-amz-security-token,/);
});

test('AWS JSON 1.1 client: target header, content type, signature, and error mapping', async () => {
  const seen: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      if (req.headers['x-amz-target'] === 'TrentService.Fail') {
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'com.amazonaws.kms#NotFoundException', message: 'Key does not exist' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ Echo: JSON.parse(body) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const call = createAwsJsonClient({
      service: 'kms',
      targetPrefix: 'TrentService',
      region: 'ap-south-1',
      endpoint,
      credentials: () => SUITE.credentials,
    });
    const out = await call<{ Echo: unknown }>('Ping', { A: 1 });
    assert.deepEqual(out.Echo, { A: 1 });
    const h = seen[0].headers;
    assert.equal(h['x-amz-target'], 'TrentService.Ping');
    assert.equal(h['content-type'], 'application/x-amz-json-1.1');
    assert.match(
      String(h.authorization),
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/ap-south-1\/kms\/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=[0-9a-f]{64}$/,
    );
    await assert.rejects(
      call('Fail', {}),
      (e: Error) => e instanceof AwsError && e.type === 'NotFoundException' && e.status === 400,
    );
  } finally {
    server.close();
  }
});
