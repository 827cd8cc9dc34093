import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { Redis } from 'ioredis';
import { createMemoryBucketStore, createRedisBucketStore } from '../src/http/edge/index.ts';
import { freePort, withFreePorts } from '../src/platform/freePort.ts';
import { dataDirFromTemplate } from './helpers/cliDb.ts';

// The Redis-backed limiter against a real Redis (REDIS_TEST_URL; .ci/run starts Debian's
// redis-server): the Lua bucket is atomic under concurrency from many connections, two separate
// API processes draw from one shared limit, and a Redis outage falls back to in-process buckets.

const url = process.env.REDIS_TEST_URL;
const skip = url
  ? false
  : process.env.CI_REQUIRE_GATEWAY === '1'
    ? false
    : 'needs a Redis: set REDIS_TEST_URL (e.g. redis://127.0.0.1:6379); .ci/run starts one';

describe('Redis-backed rate limits', { skip }, () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) c.kill('SIGTERM');
  });

  test('REDIS_TEST_URL is set and answers', async () => {
    assert.ok(url, 'CI_REQUIRE_GATEWAY=1 needs REDIS_TEST_URL (.ci/run starts a redis-server)');
    const r = new Redis(url, { lazyConnect: true });
    await r.connect();
    assert.equal(await r.ping(), 'PONG');
    r.disconnect();
  });

  test('one bucket, 300 concurrent takes over 3 connections: exactly the burst is allowed', async () => {
    // Three stores, three connections, one prefix: one bucket.
    const prefix = `tp:test:${randomBytes(6).toString('hex')}:`;
    const shared = await Promise.all(
      [0, 1, 2].map(() =>
        createRedisBucketStore({
          url: url!,
          fallback: createMemoryBucketStore(),
          prefix,
          commandTimeoutMs: 10_000,
          onError: () => assert.fail('Redis error'),
        }),
      ),
    );
    const spec = { ratePerSecond: 0.001, burst: 50 };
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => shared[i % 3].take('ip:203.0.113.1', spec)),
    );
    assert.equal(results.filter((r) => r.allowed).length, 50);
    const refused = results.find((r) => !r.allowed)!;
    assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 1000 / spec.ratePerSecond);
    for (const s of shared) await s.close();
  });

  test('two API processes with the same REDIS_URL share one limit', async () => {
    const ports = [0, 0];
    // Not about a first start: each process's database is the migrated test template (no initdb
    // and migrations in the two servers, ~5 s of CPU each).
    const dataDirs = await Promise.all(
      ports.map(() => dataDirFromTemplate(mkdtempSync(join(tmpdir(), 'tillpoint-redis-')))),
    );
    const env = (port: number, i: number): NodeJS.ProcessEnv => ({
      ...process.env,
      NODE_ENV: 'test',
      PORT: String(port),
      TILLPOINT_DATA_DIR: dataDirs[i],
      DATABASE_URL: '',
      REDIS_URL: url,
      HTTP_TRUST_PROXY: '127.0.0.1',
      RATE_LIMIT_IP: '1/h',
      RATE_LIMIT_IP_BURST: '10',
      MQTT_PORT: 'off',
      MQTTS_PORT: 'off',
      LOG_LEVEL: 'warn',
    });
    // Each on a fresh port again if its port was taken before it bound it.
    await Promise.all(
      ports.map((_, i) =>
        withFreePorts(1, ([port]) => {
          ports[i] = port;
          return new Promise<void>((resolve, reject) => {
            const c = spawn(process.execPath, ['bin/tillpoint.mjs', 'serve', '--role', 'api'], {
              env: env(port, i),
              stdio: ['ignore', 'pipe', 'pipe'],
            });
            children.push(c);
            let out = '';
            const timer = setTimeout(() => reject(new Error(`API on ${port} did not start: ${out}`)), 60_000);
            const onData = (d: Buffer) => {
              out += d.toString();
              if (out.includes('Tillpoint is running')) {
                clearTimeout(timer);
                resolve();
              }
            };
            c.stdout!.on('data', onData);
            c.stderr!.on('data', onData);
            c.on('exit', (code) => reject(new Error(`API on ${port} exited with ${code}: ${out}`)));
          });
        }),
      ),
    );
    // A client address of its own, so earlier runs' buckets in the same Redis do not matter.
    const client = `198.18.${randomInt(0, 255)}.${randomInt(1, 255)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await fetch(`http://127.0.0.1:${ports[i % 2]}/v1/payments`, { headers: { 'x-forwarded-for': client } });
      statuses.push(r.status);
      await r.arrayBuffer();
    }
    assert.equal(statuses.filter((s) => s === 401).length, 10, `the burst of 10 is shared: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 6);
    assert.deepEqual(
      statuses.slice(10),
      [429, 429, 429, 429, 429, 429],
      'both processes refuse once the shared bucket is empty',
    );
  });

  test('while Redis is unreachable, the in-process buckets keep limiting', async () => {
    let errors = 0;
    const dead = await createRedisBucketStore({
      url: `redis://127.0.0.1:${await freePort()}`,
      fallback: createMemoryBucketStore(),
      onError: () => errors++,
      commandTimeoutMs: 100,
    });
    const spec = { ratePerSecond: 0.001, burst: 2 };
    const r = [await dead.take('k', spec), await dead.take('k', spec), await dead.take('k', spec)];
    assert.deepEqual(
      r.map((x) => x.allowed),
      [true, true, false],
    );
    assert.ok(errors >= 3, 'every fallback is counted');
    await dead.close();
  });
});
