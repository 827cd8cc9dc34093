import type { Logger } from 'pino';
import type { Db } from '../../platform/db.ts';
import { upsertPresence, type PresenceWrite } from './presence.repo.ts';

// Presence: whether each terminal is connected, and when it was last heard from (README.md,
// "Presence"). Status changes come from the broker: on an external broker, the terminal's own
// retained "online" at connect and its MQTT will "offline" (published by the broker when the
// connection dies), consumed through the gateways' shared subscription; on the embedded broker,
// the broker's own connect and disconnect. Requests refresh last_seen.
//
// Nothing here writes per message: changes are merged in memory per terminal (the latest status
// by its ordering key, the latest last_seen) and written in one statement a second, and a
// terminal's last_seen is written at most once per `lastSeenEveryMs` for its requests. At fleet
// scale the database sees one statement per gateway replica per second, with one row per terminal
// that changed in that second.

export const STATUS_MAX_BYTES = 256;
/** A terminal clock this far ahead of the gateway's is clamped, so it cannot pin its state. */
const MAX_CLOCK_AHEAD_MS = 60_000;

export interface StatusMessage {
  online: boolean;
  /** The connection's start, ms since the epoch, as the terminal counts it. */
  since: number;
}

/**
 * A status message: `{"v":1,"status":"online"|"offline","since":<ms>}` (docs/terminal-protocol.md).
 * Returns undefined for anything else.
 */
export function parseStatus(payload: Buffer): StatusMessage | undefined {
  if (payload.length === 0 || payload.length > STATUS_MAX_BYTES) return undefined;
  let m: unknown;
  try {
    m = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const { v, status, since } = m as Record<string, unknown>;
  if (v !== 1 || (status !== 'online' && status !== 'offline')) return undefined;
  if (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0) return undefined;
  return { online: status === 'online', since };
}

/** The status message a terminal publishes (retained) for itself, and the same as its will. */
export const statusPayload = (online: boolean, since: number) =>
  JSON.stringify({ v: 1, status: online ? 'online' : 'offline', since });

export interface PresenceWriterOptions {
  db: Db;
  logger: Logger;
  source: 'embedded' | 'external';
  /** How often the merged changes are written. Default 1000 ms. */
  flushMs?: number;
  /** A terminal's last_seen is written at most this often for its requests. Default 60 s. */
  lastSeenEveryMs?: number;
  /** Terminals waiting to be written beyond which new ones are dropped (and counted) until a write succeeds. */
  maxBuffered?: number;
  now?: () => number;
  onFlush?(rows: number, ms: number): void;
}

const order = (online: boolean, since: number) => since * 2 + (online ? 0 : 1);

export function createPresenceWriter(o: PresenceWriterOptions) {
  const flushMs = o.flushMs ?? 1000;
  const lastSeenEveryMs = o.lastSeenEveryMs ?? 60_000;
  const maxBuffered = o.maxBuffered ?? 200_000;
  const now = o.now ?? Date.now;
  let pending = new Map<string, PresenceWrite>();
  /** When each terminal's last_seen was last queued: touches within lastSeenEveryMs are skipped. */
  let seenQueued = new Map<string, number>();
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  let closed = false;

  function entry(terminalId: string, t: number): PresenceWrite | undefined {
    let e = pending.get(terminalId);
    if (!e) {
      if (pending.size >= maxBuffered) {
        dropped++;
        return undefined;
      }
      e = { terminalId, online: null, sinceMs: -1, at: new Date(t), seenAt: new Date(t) };
      pending.set(terminalId, e);
    }
    timer ??= closed ? undefined : setTimeout(tick, flushMs);
    return e;
  }

  function tick() {
    timer = undefined;
    void flush();
  }

  async function flush(): Promise<void> {
    while (flushing) await flushing;
    if (pending.size === 0) return;
    const batch = [...pending.values()];
    pending = new Map();
    const t = now();
    // Forget touches older than the interval: the map holds only terminals active in the last one.
    if (seenQueued.size > 0) {
      const fresh = new Map<string, number>();
      for (const [id, at] of seenQueued) if (t - at < lastSeenEveryMs) fresh.set(id, at);
      seenQueued = fresh;
    }
    flushing = (async () => {
      const started = performance.now();
      try {
        for (let i = 0; i < batch.length; i += 5000) await upsertPresence(o.db, batch.slice(i, i + 5000), o.source);
        o.onFlush?.(batch.length, performance.now() - started);
        if (dropped > 0) {
          o.logger.warn({ dropped }, 'terminal presence updates dropped (buffer full)');
          dropped = 0;
        }
      } catch (e) {
        // Put the batch back under what arrived since (newer wins), to be written next time.
        for (const w of batch) merge(w);
        timer ??= closed ? undefined : setTimeout(tick, flushMs);
        o.logger.warn(
          { err: { type: (e as Error).name, code: (e as { code?: string }).code }, rows: batch.length },
          'could not write terminal presence; retrying',
        );
      } finally {
        flushing = undefined;
      }
    })();
    await flushing;
  }

  function merge(w: PresenceWrite) {
    const e = pending.get(w.terminalId);
    if (!e) {
      pending.set(w.terminalId, w);
      return;
    }
    if (w.online !== null && (e.online === null || order(w.online, w.sinceMs) > order(e.online, e.sinceMs))) {
      e.online = w.online;
      e.sinceMs = w.sinceMs;
      e.at = w.at;
    }
    if (w.seenAt > e.seenAt) e.seenAt = w.seenAt;
  }

  return {
    /**
     * A status for the connection that started at `sinceMs`. Applied (here and in the database)
     * only if later than what is known: an old connection's will never undoes a newer "online".
     */
    status(terminalId: string, online: boolean, sinceMs: number) {
      const t = now();
      const since = Math.min(sinceMs, t + MAX_CLOCK_AHEAD_MS);
      seenQueued.set(terminalId, t);
      merge({ terminalId, online, sinceMs: since, at: new Date(t), seenAt: new Date(t) });
      timer ??= closed ? undefined : setTimeout(tick, flushMs);
      if (pending.size > maxBuffered) {
        pending.delete(terminalId);
        dropped++;
      }
    },
    /** The terminal was heard from (a request): last_seen, at most once per interval per terminal. */
    seen(terminalId: string) {
      const t = now();
      const last = seenQueued.get(terminalId);
      if (last !== undefined && t - last < lastSeenEveryMs) return;
      const e = entry(terminalId, t);
      if (!e) return;
      seenQueued.set(terminalId, t);
      e.seenAt = new Date(t);
    },
    /** Terminals with changes not yet written. */
    pendingCount: () => pending.size,
    flush,
    async close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await flush();
    },
  };
}

export type PresenceWriter = ReturnType<typeof createPresenceWriter>;
