import type { Clock } from '../../platform/clock.ts';

// Each bank's health, measured from its own traffic in this process, and a circuit breaker per
// bank. In memory on purpose: route() runs on every payment and must not add a database round
// trip, and each replica's own traffic is a fair sample of the bank (a bank that fails for one
// replica fails for all of them within seconds). What every replica sees is written to
// banks.bank_health now and then (banks.service.ts), for `banks status`; the operator's
// mark-down / mark-up (banks.bank_status) still overrides every breaker.
//
// What counts: a call that got a readable answer is `ok` for the bank, whatever it says; a
// customer's decline (ZA, Z9, U69, ...) is `declined` and says nothing about the bank, so it is
// counted apart and left out of the rates; a timeout, a 5xx, a reset, an unreadable answer, a
// refusal of our request (4xx) or a deemed answer (the switch timed out) is `technical`.

export type CallClass = 'ok' | 'declined' | 'technical';
export type BreakerState = 'closed' | 'open' | 'half_open';

export interface HealthSettings {
  /** Sliding window the rates are computed over. */
  windowSeconds: number;
  /**
   * The breaker judges the rate over this recent part of the window (a 60 s window full of
   * yesterday's successes would let a hard outage take half a minute of payments first).
   */
  tripWindowSeconds: number;
  /** Calls (ok + technical) in the trip window before the rate may open the breaker. */
  minCalls: number;
  /** Technical failure rate (technical / (ok + technical)) at or above which it opens. */
  failureRateToOpen: number;
  /** This many technical failures in a row open it too, however little traffic the bank has. */
  consecutiveToOpen: number;
  /** How long it stays open before a trickle of probes is let through. */
  openSeconds: number;
  /** Half-open: one in this many payments that would go to the bank is sent as a probe. */
  probeEvery: number;
  /** Half-open: consecutive ok calls that close it again. */
  probesToClose: number;
}

export const DEFAULT_HEALTH: HealthSettings = {
  windowSeconds: 60,
  tripWindowSeconds: 10,
  minCalls: 20,
  failureRateToOpen: 0.5,
  consecutiveToOpen: 10,
  openSeconds: 30,
  probeEvery: 10,
  probesToClose: 5,
};

export interface HealthStats {
  calls: number;
  ok: number;
  declined: number;
  technical: number;
  /** ok / (ok + technical); null without calls. */
  successRate: number | null;
  /** Of the last 256 calls in the window (ms); null without calls. */
  p50Ms: number | null;
  p95Ms: number | null;
}

export interface Transition {
  bank: string;
  from: BreakerState;
  to: BreakerState;
  at: Date;
  stats: HealthStats;
}

interface Bucket {
  second: number;
  ok: number;
  declined: number;
  technical: number;
}

const LATENCIES = 256;

class BankHealth {
  state: BreakerState = 'closed';
  openedAt = 0;
  probeCounter = 0;
  probeOks = 0;
  consecutive = 0;
  private buckets: Bucket[];
  private latencies: { at: number; ms: number }[] = [];

  constructor(private readonly s: HealthSettings) {
    this.buckets = Array.from({ length: s.windowSeconds }, () => ({ second: -1, ok: 0, declined: 0, technical: 0 }));
  }

  private bucket(nowMs: number): Bucket {
    const second = Math.floor(nowMs / 1000);
    const b = this.buckets[second % this.buckets.length];
    if (b.second !== second) {
      b.second = second;
      b.ok = b.declined = b.technical = 0;
    }
    return b;
  }

  add(cls: CallClass, ms: number, nowMs: number) {
    this.bucket(nowMs)[cls]++;
    this.latencies.push({ at: nowMs, ms });
    if (this.latencies.length > LATENCIES) this.latencies.shift();
  }

  reset() {
    for (const b of this.buckets) b.second = -1;
    this.latencies = [];
  }

  stats(nowMs: number, seconds = this.s.windowSeconds): HealthStats {
    const from = Math.floor(nowMs / 1000) - Math.min(seconds, this.s.windowSeconds) + 1;
    let ok = 0;
    let declined = 0;
    let technical = 0;
    for (const b of this.buckets) {
      if (b.second < from || b.second < 0) continue;
      ok += b.ok;
      declined += b.declined;
      technical += b.technical;
    }
    const lat = this.latencies
      .filter((l) => l.at >= from * 1000)
      .map((l) => l.ms)
      .sort((a, b) => a - b);
    const pct = (p: number) =>
      lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]) : null;
    return {
      calls: ok + declined + technical,
      ok,
      declined,
      technical,
      successRate: ok + technical > 0 ? ok / (ok + technical) : null,
      p50Ms: pct(0.5),
      p95Ms: pct(0.95),
    };
  }
}

export interface HealthTracker {
  record(bank: string, cls: CallClass, ms: number): void;
  /**
   * May a new payment go to `bank` now? Closed: yes. Open: no, until openSeconds have passed, when
   * it turns half-open. Half-open: one in probeEvery asks is let through as a probe.
   */
  admit(bank: string): boolean;
  state(bank: string): BreakerState;
  stats(bank: string): HealthStats;
  /** Smoothed success rate for routing: (ok + 1) / (ok + technical + 2). */
  score(bank: string): number;
  readonly settings: HealthSettings;
}

export function createHealthTracker(opts: {
  settings?: Partial<HealthSettings>;
  clock: Clock;
  onTransition?: (t: Transition) => void;
}): HealthTracker {
  const settings: HealthSettings = { ...DEFAULT_HEALTH, ...opts.settings };
  const banks = new Map<string, BankHealth>();
  const get = (code: string) => {
    let h = banks.get(code);
    if (!h) banks.set(code, (h = new BankHealth(settings)));
    return h;
  };
  const nowMs = () => opts.clock.now().getTime();

  function move(code: string, h: BankHealth, to: BreakerState, now: number) {
    const from = h.state;
    if (from === to) return;
    h.state = to;
    if (to === 'open') h.openedAt = now;
    if (to === 'half_open') {
      h.probeCounter = 0;
      h.probeOks = 0;
    }
    const stats = h.stats(now);
    // Closed again: the failures that opened it are history, and must not trip it at once.
    if (to === 'closed') {
      h.reset();
      h.consecutive = 0;
    }
    opts.onTransition?.({ bank: code, from, to, at: new Date(now), stats });
  }

  function tick(code: string, h: BankHealth, now: number) {
    if (h.state === 'open' && now - h.openedAt >= settings.openSeconds * 1000) move(code, h, 'half_open', now);
  }

  return {
    settings,
    record(code, cls, ms) {
      const h = get(code);
      const now = nowMs();
      h.add(cls, ms, now);
      tick(code, h, now);
      if (cls === 'declined') return;
      h.consecutive = cls === 'technical' ? h.consecutive + 1 : 0;
      if (h.state === 'half_open') {
        if (cls === 'technical') move(code, h, 'open', now);
        else if (++h.probeOks >= settings.probesToClose) move(code, h, 'closed', now);
        return;
      }
      if (h.state === 'closed' && cls === 'technical') {
        const s = h.stats(now, settings.tripWindowSeconds);
        const byRate =
          s.ok + s.technical >= settings.minCalls && s.technical / (s.ok + s.technical) >= settings.failureRateToOpen;
        if (byRate || h.consecutive >= settings.consecutiveToOpen) move(code, h, 'open', now);
      }
    },
    admit(code) {
      const h = get(code);
      tick(code, h, nowMs());
      if (h.state === 'closed') return true;
      if (h.state === 'open') return false;
      return h.probeCounter++ % settings.probeEvery === 0;
    },
    state(code) {
      const h = get(code);
      tick(code, h, nowMs());
      return h.state;
    },
    stats: (code) => get(code).stats(nowMs()),
    score(code) {
      const s = get(code).stats(nowMs());
      return (s.ok + 1) / (s.ok + s.technical + 2);
    },
  };
}
