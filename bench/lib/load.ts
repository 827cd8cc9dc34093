import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

// The load generator: undici connection pools, closed-loop clients (each sends its next request
// when the last one is answered: finds the peak), an open-loop arrival schedule (requests start
// on the clock whether or not earlier ones finished: latency at a given rate, with no
// coordinated omission), and a latency recorder.

export const now = () => performance.now();

/** Latency samples in milliseconds. Exact percentiles: a run has at most a few hundred thousand. */
export class Recorder {
  private buf = new Float64Array(1024);
  private n = 0;
  add(ms: number) {
    if (this.n === this.buf.length) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = ms;
  }
  get count() {
    return this.n;
  }
  /** Nearest-rank percentile, p in [0, 100]; null when there are no samples. */
  percentile(p: number): number | null {
    if (this.n === 0) return null;
    const s = this.buf.slice(0, this.n).sort();
    const rank = Math.min(this.n, Math.max(1, Math.ceil((p / 100) * this.n)));
    return round(s[rank - 1]);
  }
  summary() {
    return { count: this.n, p50_ms: this.percentile(50), p99_ms: this.percentile(99), max_ms: this.percentile(100) };
  }
}

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Counts failures by a short label, e.g. "create 503 bank_unavailable". */
export class Errors {
  readonly counts: Record<string, number> = {};
  add(label: string) {
    this.counts[label] = (this.counts[label] ?? 0) + 1;
  }
  get total() {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}

export interface HttpResult<T = any> {
  status: number;
  body: T;
}

/** A keep-alive pool to one origin (loopback only) with a tiny JSON request helper. */
export class Http {
  readonly pool: Pool;
  /** The headers of a request with a JSON body, made once: the load generator's CPU is charged to the run. */
  private readonly jsonHeaders: Record<string, string>;
  constructor(
    readonly origin: string,
    connections: number,
    private readonly headers: Record<string, string> = {},
  ) {
    const u = new URL(origin);
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname))
      throw new Error(`benchmarks only target loopback, not ${u.hostname}`);
    // Keep-alive connections, one request at a time on each (a closed-loop client waits for its answer).
    this.pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
    this.jsonHeaders = { ...headers, 'content-type': 'application/json' };
  }
  async request<T = any>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<HttpResult<T>> {
    const r = await this.pool.request({
      method,
      path,
      headers: body === undefined ? this.headers : this.jsonHeaders,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.body.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: kept as text for the error label
    }
    return { status: r.statusCode, body: parsed as T };
  }
  close() {
    return this.pool.close();
  }
}

/** `clients` loops, each running `fn` back to back until `untilMs` (performance.now() time). */
export async function closedLoop(
  clients: number,
  untilMs: number,
  fn: (client: number) => Promise<void>,
): Promise<void> {
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      while (now() < untilMs) await fn(i);
    }),
  );
}

/**
 * Starts `fn` `ratePerS` times a second for `durationMs`, each with its intended start time, and
 * waits for all of them. At most `maxInflight` run at once; arrivals beyond that are counted as
 * dropped (the system fell behind the offered rate) rather than queued silently.
 */
export async function openLoop(
  ratePerS: number,
  durationMs: number,
  maxInflight: number,
  fn: (intendedStart: number) => Promise<void>,
): Promise<{ started: number; dropped: number }> {
  const start = now();
  const interval = 1000 / ratePerS;
  const total = Math.floor((durationMs / 1000) * ratePerS);
  const inflight = new Set<Promise<void>>();
  let started = 0;
  let dropped = 0;
  for (let k = 0; k < total; k++) {
    const due = start + k * interval;
    const wait = due - now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (inflight.size >= maxInflight) {
      dropped++;
      continue;
    }
    started++;
    const p = fn(due).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  return { started, dropped };
}
