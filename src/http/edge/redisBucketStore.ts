import type { Redis } from 'ioredis';
import { redisTlsOptions } from '../../platform/tls.ts';
import type { Logger } from 'pino';
import type { BucketSpec, BucketStore, TakeResult } from './tokenBucket.ts';

// Token buckets in Redis, so every replica of the API draws from the same bucket. One Lua
// script reads, refills, takes and writes in a single atomic step (Redis runs a script with
// nothing interleaved), and uses Redis's own clock, so replicas with skewed clocks agree.
// The same arithmetic as step() in tokenBucket.ts.

export const TAKE_TOKEN_LUA = `
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(s[1])
local ts = tonumber(s[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif rate > 0 then
  retry = math.ceil((cost - tokens) / rate)
else
  retry = -1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
-- A bucket that has refilled equals one never used: let Redis drop it then.
local ttl = 60000
if rate > 0 then ttl = math.ceil((burst - tokens) / rate) + 1000 end
redis.call('PEXPIRE', KEYS[1], ttl)
return { allowed, math.floor(tokens), retry }
`;

type TakeTokenCommand = (
  key: string,
  ratePerMs: string,
  burst: string,
  cost: string,
) => Promise<[number, number, number]>;

export interface RedisBucketStoreOptions {
  url: string;
  /** Key prefix, so several deployments can share one Redis. */
  prefix?: string;
  /** Used while Redis cannot answer: limits keep holding, per process. */
  fallback: BucketStore;
  logger?: Logger;
  /** Per-command deadline; past it the fallback answers. */
  commandTimeoutMs?: number;
  onError?: () => void;
  /** For rediss:// URLs: the CA the server's certificate must chain to (REDIS_TLS_CA_FILE); default: system CAs. */
  caFile?: string;
}

/**
 * A Redis outage must not stop payments, so the store fails over to the in-process buckets
 * (limits then hold per replica instead of in total) and counts/logs each failure.
 */
export async function createRedisBucketStore(opts: RedisBucketStoreOptions): Promise<BucketStore & { client: Redis }> {
  const prefix = opts.prefix ?? 'tp:rl:';
  // ioredis loads only when Redis is configured: without REDIS_URL the api process never needs it.
  const { Redis } = await import('ioredis');
  const client = new Redis(opts.url, {
    // rediss://: certificates verified, TLS 1.2 at least, the configured CA (platform/tls.ts).
    ...redisTlsOptions(opts.url, { redisCaFile: opts.caFile }),
    // Fail fast instead of queueing: a queued rate-limit check is a request waiting on Redis.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs ?? 250,
    connectTimeout: 2_000,
    lazyConnect: true,
  });
  client.defineCommand('tillpointTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN_LUA });
  const takeToken = (client as unknown as { tillpointTakeToken: TakeTokenCommand }).tillpointTakeToken.bind(client);

  let lastWarn = 0;
  client.on('error', (err: Error) => warn(err));
  function warn(err: unknown) {
    opts.onError?.();
    if (Date.now() - lastWarn < 10_000) return;
    lastWarn = Date.now();
    const e = err as { name?: string; code?: string };
    opts.logger?.warn(
      { err: { type: e.name, code: e.code } },
      'rate limit store: Redis unavailable, using in-process buckets',
    );
  }

  try {
    await client.connect();
  } catch (err) {
    // Keeps reconnecting in the background; until then the fallback answers.
    warn(err);
  }

  return {
    kind: 'redis',
    client,
    async take(key: string, spec: BucketSpec, cost = 1): Promise<TakeResult> {
      try {
        const [allowed, remaining, retry] = await takeToken(
          prefix + key,
          String(spec.ratePerSecond / 1000),
          String(spec.burst),
          String(cost),
        );
        return { allowed: allowed === 1, remaining, retryAfterMs: retry < 0 ? Number.POSITIVE_INFINITY : retry };
      } catch (err) {
        warn(err);
        return opts.fallback.take(key, spec, cost);
      }
    },
    async close() {
      await opts.fallback.close();
      client.disconnect();
    },
  };
}
