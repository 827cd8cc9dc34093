import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { signV4, type AwsCredentials } from '../../platform/aws.ts';

// Write-once storage for sealed segments of the trail (PCI DSS 10.3.3). An object, once
// written, is never overwritten: writing the same key again with the same bytes is a no-op,
// with other bytes an error.

export interface WormStore {
  readonly target: 'local' | 's3';
  /** Stores `body` under `key`, locked until `retainUntil`. Returns where it went. */
  put(key: string, body: Buffer, retainUntil: Date): Promise<string>;
  /** Every key under `prefix` (`audit verify` reads what was exported, whatever the database says). */
  list(prefix: string): Promise<string[]>;
  /** The object's first `maxBytes` bytes (all of it when omitted). */
  read(key: string, maxBytes?: number): Promise<Buffer>;
}

export class WormConflictError extends Error {
  constructor(location: string) {
    super(`${location} already exists with different content; write-once storage is never overwritten`);
    this.name = 'WormConflictError';
  }
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * A local directory: each file is written to a temporary name, flushed, made read-only
 * (0444), then hard-linked to its final name, which fails if the name exists: the final file
 * appears complete or not at all, and is never replaced.
 */
export function localWorm(dir: string): WormStore & { expire(olderThan: Date): string[] } {
  const pathOf = (key: string) => {
    if (!/^[A-Za-z0-9._/-]+$/.test(key) || key.includes('..')) throw new Error(`bad object key ${key}`);
    return join(dir, key);
  };
  return {
    target: 'local',
    async list(prefix) {
      const keys: string[] = [];
      const walk = (rel: string) => {
        const d = join(dir, rel);
        if (!existsSync(d)) return;
        for (const e of readdirSync(d, { withFileTypes: true })) {
          const k = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory()) walk(k);
          // Temporary names of a put in progress are not objects yet.
          else if (e.isFile() && !k.endsWith('.tmp') && k.startsWith(prefix)) keys.push(k);
        }
      };
      walk(prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '');
      return keys.sort();
    },
    async read(key, maxBytes) {
      const path = pathOf(key);
      if (maxBytes === undefined) return readFileSync(path);
      const fd = openSync(path, 'r');
      try {
        const buf = Buffer.alloc(maxBytes);
        const n = readSync(fd, buf, 0, maxBytes, 0);
        return buf.subarray(0, n);
      } finally {
        closeSync(fd);
      }
    },
    async put(key, body) {
      const final = pathOf(key);
      mkdirSync(join(final, '..'), { recursive: true });
      if (existsSync(final)) {
        if (sha256(readFileSync(final)) === sha256(body)) return final;
        throw new WormConflictError(final);
      }
      const tmp = `${final}.${process.pid}.${Date.now()}.tmp`;
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeSync(fd, body);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      chmodSync(tmp, 0o444);
      try {
        linkSync(tmp, final);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (sha256(readFileSync(final)) !== sha256(body)) throw new WormConflictError(final);
      } finally {
        unlinkSync(tmp);
      }
      return final;
    },
    /** Removes segment files older than the retention period (never rewrites one). */
    expire(olderThan) {
      const removed: string[] = [];
      const walk = (d: string) => {
        if (!existsSync(d)) return;
        for (const name of readdirSync(d)) {
          const p = join(d, name);
          const st = statSync(p);
          if (st.isDirectory()) walk(p);
          else if (name.endsWith('.jsonl') && st.mtime < olderThan) {
            chmodSync(p, 0o600);
            unlinkSync(p);
            removed.push(p);
          }
        }
      };
      walk(dir);
      return removed;
    },
  };
}

export interface S3WormOptions {
  bucket: string;
  region: string;
  /** Path-style endpoint (MinIO, a VPC endpoint, a test server); default: virtual-hosted AWS S3. */
  endpoint?: string;
  prefix: string;
  /** Fixed credentials, or a provider asked before each request (awsCredentials: env keys or IRSA). */
  credentials: AwsCredentials | (() => AwsCredentials | Promise<AwsCredentials>);
  fetch?: typeof fetch;
  now?: () => Date;
}

/**
 * Amazon S3 with Object Lock in compliance mode: until the retain-until date nobody, the
 * root account included, can delete or overwrite the object version. The bucket must have
 * Object Lock enabled. Request format: PutObject (x-amz-object-lock-mode,
 * x-amz-object-lock-retain-until-date, Content-MD5, which S3 requires with Object Lock) and
 * If-None-Match: * so an existing key is never replaced (S3 answers 412).
 */
export function s3Worm(o: S3WormOptions): WormStore {
  const doFetch = o.fetch ?? fetch;
  const base = o.endpoint
    ? `${o.endpoint.replace(/\/$/, '')}/${o.bucket}/`
    : `https://${o.bucket}.s3.${o.region}.amazonaws.com/`;
  const objectUrl = (key: string) => base + `${o.prefix}${key}`.split('/').map(encodeURIComponent).join('/');
  const credentials = async () => (typeof o.credentials === 'function' ? o.credentials() : o.credentials);
  const sign = async (method: string, url: string, headers: Record<string, string> = {}) =>
    signV4({
      method,
      url,
      headers: { 'x-amz-content-sha256': sha256(Buffer.alloc(0)), ...headers },
      region: o.region,
      service: 's3',
      credentials: await credentials(),
      now: o.now?.(),
    }).headers;
  const failure = async (what: string, res: Response) => {
    const code = /<Code>([^<]+)<\/Code>/.exec((await res.text()).slice(0, 300))?.[1] ?? 'UnknownError';
    return new Error(`S3 ${what} failed: ${res.status} ${code}`);
  };
  return {
    target: 's3',
    /** ListObjectsV2, page by page (1,000 keys a page). */
    async list(prefix) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const q = new URLSearchParams({ 'list-type': '2', prefix: `${o.prefix}${prefix}` });
        if (token) q.set('continuation-token', token);
        const url = `${base}?${q.toString().replace(/\+/g, '%20')}`;
        const res = await doFetch(url, {
          method: 'GET',
          headers: await sign('GET', url),
          signal: AbortSignal.timeout(30_000),
        });
        if (!res.ok) throw await failure(`ListObjectsV2 ${o.bucket}/${o.prefix}${prefix}`, res);
        const xml = await res.text();
        for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(xmlText(m[1]).slice(o.prefix.length));
        token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
          ? xmlText(/<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1] ?? '')
          : undefined;
      } while (token);
      return keys.sort();
    },
    /** GetObject, with a Range header when only the start is wanted. */
    async read(key, maxBytes) {
      const url = objectUrl(key);
      const res = await doFetch(url, {
        method: 'GET',
        headers: await sign('GET', url, maxBytes === undefined ? {} : { Range: `bytes=0-${maxBytes - 1}` }),
        signal: AbortSignal.timeout(30_000),
      });
      if (!res.ok) throw await failure(`GetObject ${o.bucket}/${o.prefix}${key}`, res);
      const body = Buffer.from(await res.arrayBuffer());
      return maxBytes === undefined ? body : body.subarray(0, maxBytes);
    },
    async put(key, body, retainUntil) {
      const url = objectUrl(key);
      const md5 = createHash('md5').update(body).digest();
      const signed = signV4({
        method: 'PUT',
        url,
        headers: {
          'Content-Type': 'application/x-ndjson',
          'Content-MD5': md5.toString('base64'),
          'If-None-Match': '*',
          'x-amz-content-sha256': sha256(body),
          'x-amz-object-lock-mode': 'COMPLIANCE',
          // Whole seconds: S3 takes an ISO 8601 timestamp.
          'x-amz-object-lock-retain-until-date': retainUntil.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        },
        body,
        region: o.region,
        service: 's3',
        credentials: await credentials(),
        now: o.now?.(),
      });
      const res = await doFetch(url, {
        method: 'PUT',
        headers: signed.headers,
        body: new Uint8Array(body),
        signal: AbortSignal.timeout(30_000),
      });
      if (res.ok) return url;
      if (res.status === 412) {
        // Already there: fine if it is the same bytes (a single-part ETag is the MD5).
        const h = await doFetch(url, {
          method: 'HEAD',
          headers: await sign('HEAD', url),
          signal: AbortSignal.timeout(30_000),
        });
        if (h.ok && (h.headers.get('etag') ?? '').replace(/"/g, '') === md5.toString('hex')) return url;
        throw new WormConflictError(url);
      }
      const text = (await res.text()).slice(0, 300);
      const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? 'UnknownError';
      throw new Error(`S3 PutObject ${o.bucket}/${o.prefix}${key} failed: ${res.status} ${code}`);
    },
  };
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const xmlText = (s: string) => s.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => XML_ENTITIES[e]);
