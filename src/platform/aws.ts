import { createHash, createHmac } from 'node:crypto';

// AWS Signature Version 4 and a small client for AWS's JSON 1.1 protocol (KMS, Secrets Manager).
// Written against AWS's published algorithm ("Create a signed AWS API request") with node:crypto
// rather than pulling in the AWS SDK: two services, four operations, and the signature is the
// only subtle part. aws.test.ts checks it against AWS's own SigV4 test-suite vectors.

import type { AwsCredentials } from './awsCredentials.ts';
export type { AwsCredentials };

export interface SignInput {
  method: string;
  /** Full URL; the path and query are canonicalized from it. */
  url: string;
  /** Headers to send and sign. Host and X-Amz-Date are added. */
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  region: string;
  service: string;
  credentials: AwsCredentials;
  now?: Date;
  /** S3 signs the path as given; every other service URI-encodes each path segment twice. */
  doubleEncodePath?: boolean;
}

const sha256Hex = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ is %XX (upper case). */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** 20150830T123600Z */
export function amzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function canonicalPath(pathname: string, doubleEncode: boolean): string {
  if (pathname === '' || pathname === '/') return '/';
  // URL.pathname is already percent-encoded once; decode, then encode each segment as SigV4 says.
  const segments = pathname.split('/').map((seg) => uriEncode(decodeURIComponent(seg)));
  const once = segments.join('/');
  return doubleEncode
    ? once
        .split('/')
        .map((seg) => uriEncode(seg))
        .join('/')
    : once;
}

function canonicalQuery(search: URLSearchParams): string {
  const pairs: [string, string][] = [];
  for (const [k, v] of search) pairs.push([uriEncode(k), uriEncode(v)]);
  // Sorted by encoded name, then by encoded value (code point order, not locale).
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

export function signingKey(secretAccessKey: string, day: string, region: string, service: string): Buffer {
  const kDate = hmac(`AWS4${secretAccessKey}`, day);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

export interface Signed {
  /** Every header to send, including Authorization, Host and X-Amz-Date. */
  headers: Record<string, string>;
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
}

/** Signs a request with SigV4 (header form). */
export function signV4(input: SignInput): Signed {
  const url = new URL(input.url);
  const now = input.now ?? new Date();
  const date = amzDate(now);
  const day = date.slice(0, 8);
  const body = input.body ?? '';
  const headers: Record<string, string> = { ...(input.headers ?? {}) };
  const has = (name: string) => Object.keys(headers).some((k) => k.toLowerCase() === name);
  if (!has('host')) headers.Host = url.host;
  headers['X-Amz-Date'] = date;
  if (input.credentials.sessionToken) headers['X-Amz-Security-Token'] = input.credentials.sessionToken;

  // Canonical headers: lower-case names, values trimmed with inner runs of spaces collapsed,
  // sorted by name; repeated names joined with commas.
  const byName = new Map<string, string[]>();
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    const value = String(v).trim().replace(/\s+/g, ' ');
    byName.set(name, [...(byName.get(name) ?? []), value]);
  }
  const names = [...byName.keys()].sort();
  const canonicalHeaders = names.map((n) => `${n}:${byName.get(n)!.join(',')}\n`).join('');
  const signedHeaders = names.join(';');

  const canonicalRequest = [
    input.method.toUpperCase(),
    canonicalPath(url.pathname, input.doubleEncodePath ?? input.service !== 's3'),
    canonicalQuery(url.searchParams),
    canonicalHeaders,
    signedHeaders,
    sha256Hex(body),
  ].join('\n');
  const scope = `${day}/${input.region}/${input.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', date, scope, sha256Hex(canonicalRequest)].join('\n');
  const signature = createHmac(
    'sha256',
    signingKey(input.credentials.secretAccessKey, day, input.region, input.service),
  )
    .update(stringToSign, 'utf8')
    .digest('hex');
  headers.Authorization = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { headers, canonicalRequest, stringToSign, signature };
}

/** An error answered by an AWS service: the exception name (`__type`) and its message. */
export class AwsError extends Error {
  constructor(
    readonly service: string,
    readonly operation: string,
    readonly type: string,
    readonly status: number,
    message: string,
  ) {
    super(`${service} ${operation} failed: ${type}${message ? `: ${message}` : ''}`);
    this.name = 'AwsError';
  }
}

export interface AwsJsonClientOptions {
  service: string;
  /** The X-Amz-Target prefix, e.g. "TrentService" (KMS) or "secretsmanager". */
  targetPrefix: string;
  region: string;
  /** Default: https://<service>.<region>.amazonaws.com. Set for VPC endpoints, FIPS endpoints or tests. */
  endpoint?: string;
  credentials: () => AwsCredentials | Promise<AwsCredentials>;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => Date;
}

/** AWS JSON 1.1: POST / with X-Amz-Target naming the operation, a JSON body, SigV4. */
export function createAwsJsonClient(o: AwsJsonClientOptions) {
  const endpoint = (o.endpoint ?? `https://${o.service}.${o.region}.amazonaws.com`).replace(/\/$/, '') + '/';
  const doFetch = o.fetch ?? fetch;
  return async function call<T>(operation: string, payload: unknown): Promise<T> {
    const body = JSON.stringify(payload);
    const signed = signV4({
      method: 'POST',
      url: endpoint,
      headers: { 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': `${o.targetPrefix}.${operation}` },
      body,
      region: o.region,
      service: o.service,
      credentials: await o.credentials(),
      now: o.now?.(),
    });
    let res: Response;
    try {
      res = await doFetch(endpoint, {
        method: 'POST',
        headers: signed.headers,
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
    } catch (e) {
      throw new AwsError(
        o.service,
        operation,
        (e as Error).name === 'TimeoutError' ? 'Timeout' : 'NetworkError',
        0,
        '',
      );
    }
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new AwsError(o.service, operation, 'UnreadableResponse', res.status, '');
    }
    if (!res.ok) {
      // "__type" may carry a namespace ("com.amazonaws.kms#NotFoundException"); keep the name.
      const rawType = String(parsed.__type ?? res.headers.get('x-amzn-errortype') ?? 'UnknownError');
      const type = rawType.split('#').pop()!.split(':')[0];
      // AWS messages describe the request, never key material; still, keep them short.
      const message = String(parsed.message ?? parsed.Message ?? '').slice(0, 200);
      throw new AwsError(o.service, operation, type, res.status, message);
    }
    return parsed as T;
  };
}

// Where credentials come from (static environment keys, else IRSA web identity): awsCredentials.ts.
export {
  awsCredentials,
  hasAwsCredentials,
  webIdentityCredentials,
  AwsCredentialsError,
  type AwsCredentialsProvider,
} from './awsCredentials.ts';
