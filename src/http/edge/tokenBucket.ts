// Token buckets: each key holds up to `burst` tokens, refilled continuously at `ratePerSecond`.
// A request takes one token or is refused with the time until one is back. Two stores share
// this contract: in-process (the embedded default) and Redis (shared by every replica).

export interface BucketSpec {
  /** Tokens added per second (fractions allowed: 0.5 = one every two seconds). */
  ratePerSecond: number;
  /** Bucket size: how many requests may arrive at once after a quiet period. */
  burst: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** When refused: milliseconds until the request would be allowed. 0 when allowed. */
  retryAfterMs: number;
}

export interface BucketStore {
  readonly kind: 'memory' | 'redis';
  take(key: string, spec: BucketSpec, cost?: number): Promise<TakeResult>;
  close(): Promise<void>;
}

interface BucketState {
  tokens: number;
  ts: number;
}

/**
 * One step of the bucket, shared by the in-process store and (as Lua) the Redis store: refill
 * for the time elapsed, then take `cost` tokens if there are enough. Pure, so it is tested alone.
 */
export function step(
  state: BucketState | undefined,
  spec: BucketSpec,
  cost: number,
  nowMs: number,
): { state: BucketState; result: TakeResult } {
  const ratePerMs = spec.ratePerSecond / 1000;
  let tokens = state ? state.tokens : spec.burst;
  let ts = state ? state.ts : nowMs;
  // A clock that steps back refills nothing rather than draining the bucket.
  if (nowMs > ts) {
    tokens = Math.min(spec.burst, tokens + (nowMs - ts) * ratePerMs);
    ts = nowMs;
  }
  if (tokens >= cost) {
    tokens -= cost;
    return { state: { tokens, ts }, result: { allowed: true, remaining: Math.floor(tokens), retryAfterMs: 0 } };
  }
  const retryAfterMs = ratePerMs > 0 ? Math.ceil((cost - tokens) / ratePerMs) : Number.POSITIVE_INFINITY;
  return { state: { tokens, ts }, result: { allowed: false, remaining: Math.floor(tokens), retryAfterMs } };
}

/** True when the bucket has refilled completely: then it equals a bucket never used, and can be dropped. */
function isFull(state: BucketState, spec: BucketSpec, nowMs: number): boolean {
  return state.tokens + Math.max(0, nowMs - state.ts) * (spec.ratePerSecond / 1000) >= spec.burst;
}

/**
 * In-process buckets. Good for one process (the embedded default); with several replicas each
 * holds its own count, so a client gets N times the limit: set REDIS_URL for a shared one.
 * Memory is bounded: past `maxKeys`, full buckets are dropped first, then the least recently used.
 */
export function createMemoryBucketStore(opts: { now?: () => number; maxKeys?: number } = {}): BucketStore {
  const now = opts.now ?? Date.now;
  const maxKeys = opts.maxKeys ?? 100_000;
  const buckets = new Map<string, { state: BucketState; spec: BucketSpec }>();

  function evict(t: number) {
    for (const [k, b] of buckets) if (isFull(b.state, b.spec, t)) buckets.delete(k);
    // Still too many live buckets: drop the least recently used.
    for (const k of buckets.keys()) {
      if (buckets.size <= maxKeys * 0.9) break;
      buckets.delete(k);
    }
  }

  return {
    kind: 'memory',
    async take(key, spec, cost = 1) {
      const t = now();
      const current = buckets.get(key);
      const { state, result } = step(current?.state, spec, cost, t);
      if (current) {
        current.state = state;
        current.spec = spec;
        // Move to the end: the Map's order is then least recently used first.
        buckets.delete(key);
        buckets.set(key, current);
      } else {
        if (buckets.size >= maxKeys) evict(t);
        buckets.set(key, { state, spec });
      }
      return result;
    },
    async close() {
      buckets.clear();
    },
  };
}
