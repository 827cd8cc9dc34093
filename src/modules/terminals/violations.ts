import type { Logger } from 'pino';
import type { Db } from '../../platform/db.ts';
import { insertViolations, type Violation } from './terminals.repo.ts';

// Refused connects, publishes and subscriptions are recorded (PCI DSS 10.2.1.2: invalid access
// attempts). They are logged at once and written to terminals.violations in batches, so a flood
// of bad packets costs one INSERT a second, not one per packet; beyond `maxBuffered` waiting
// rows, further ones are counted and logged but not stored until the buffer drains.

export function createViolationRecorder(o: {
  db: Db;
  logger: Logger;
  onRecord?(kind: string): void;
  flushMs?: number;
  maxBuffered?: number;
}) {
  const flushMs = o.flushMs ?? 1000;
  const maxBuffered = o.maxBuffered ?? 5000;
  let buffer: Violation[] = [];
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;

  async function flush() {
    if (flushing) await flushing;
    if (buffer.length === 0) return;
    const batch = buffer;
    buffer = [];
    flushing = (async () => {
      try {
        for (let i = 0; i < batch.length; i += 500) await insertViolations(o.db, batch.slice(i, i + 500));
        if (dropped > 0) {
          o.logger.warn({ dropped }, 'terminal violations not stored (buffer full)');
          dropped = 0;
        }
      } catch (e) {
        o.logger.error(
          { err: { type: (e as Error).name, code: (e as { code?: string }).code }, lost: batch.length },
          'could not store terminal violations',
        );
      } finally {
        flushing = undefined;
      }
    })();
    await flushing;
  }

  return {
    record(v: Violation) {
      o.onRecord?.(v.kind);
      o.logger.warn(
        {
          terminal_id: v.terminalId ?? undefined,
          kind: v.kind,
          detail: v.detail,
          remote_addr: v.remoteAddr ?? undefined,
        },
        'terminal access refused or protocol violated',
      );
      if (buffer.length >= maxBuffered) {
        dropped++;
        return;
      }
      buffer.push(v);
      timer ??= setTimeout(() => {
        timer = undefined;
        void flush();
      }, flushMs);
    },
    flush,
    async close() {
      clearTimeout(timer);
      timer = undefined;
      await flush();
    },
  };
}

export type ViolationRecorder = ReturnType<typeof createViolationRecorder>;
