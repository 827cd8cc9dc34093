import type { Logger } from 'pino';
import type { Db } from '../../platform/db.ts';
import { PROTOCOL_VERSION } from './protocol/schemas.ts';
import { isTerminalId, eventTopic } from './topics.ts';
import { SpanKind, extractTraceContext, tracingEnabled, withSpan } from '../../platform/tracing.ts';

// The outbox relay: payments write a `payment.updated` row into platform.outbox in the same
// transaction as each state change (key = terminal id). This publishes those rows to the
// terminal's /evt topic after they committed, and marks them published. A rolled-back change
// never had a row; a committed one is published at least once:
//   - rows are claimed with FOR UPDATE SKIP LOCKED, so replicas never take the same row at once;
//   - a row is marked published in the same transaction that held it, after the broker accepted
//     the message; if the broker or the process fails first, the transaction rolls back and the
//     row is sent again later (terminals drop the duplicate by `seq`).

export const RELAYED_TOPICS = ['payment.updated'] as const;

export interface OutboxRelayDeps {
  db: Db;
  logger: Logger;
  publish(topic: string, payload: string): Promise<void>;
  batchSize: number;
  pollMs: number;
  /** Longest a batch may wait on the broker before it is rolled back and retried. */
  publishTimeoutMs?: number;
  onPublished?(n: number): void;
}

interface OutboxRow {
  id: number;
  key: string;
  /** `traceparent`: the trace of the change that wrote the row, while tracing is on (platform/tracing.ts). */
  payload: { payment_id?: string; status?: string; amount?: number; at?: string; traceparent?: string };
}

/** The event a terminal receives for an outbox row. */
export function paymentUpdatedEvent(row: OutboxRow): string {
  const p = row.payload;
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    type: 'payment.updated',
    seq: Number(row.id),
    body: { payment_id: p.payment_id, status: p.status, amount: p.amount, at: p.at },
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`broker did not accept the batch within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * The push to the terminal, as a span of the trace that changed the payment (the callback's or
 * the worker's): the outbox row carries that trace's context across the commit.
 */
function publishTraced(row: OutboxRow, publish: () => Promise<void>): Promise<void> {
  if (!tracingEnabled() || !row.payload.traceparent) return publish();
  return withSpan(
    'terminal push payment.updated',
    {
      'messaging.system': 'mqtt',
      'tillpoint.terminal_id': row.key,
      'tillpoint.payment_id': row.payload.payment_id ?? '',
    },
    publish,
    { kind: SpanKind.PRODUCER, parent: extractTraceContext({ traceparent: row.payload.traceparent }) },
  );
}

export function createOutboxRelay(deps: OutboxRelayDeps) {
  const { db, logger, batchSize, pollMs } = deps;
  const timeoutMs = deps.publishTimeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = true;

  /** Publishes one batch. Returns how many rows it published. */
  async function runOnce(): Promise<number> {
    return db.tx(async (tx) => {
      const { rows } = await tx.query<OutboxRow>(
        `SELECT id, key, payload FROM platform.outbox
          WHERE published_at IS NULL AND topic = ANY($1::text[])
          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [RELAYED_TOPICS, batchSize],
      );
      if (rows.length === 0) return 0;
      const deliverable = rows.filter((r) => isTerminalId(r.key));
      if (deliverable.length < rows.length)
        logger.warn(
          { skipped: rows.length - deliverable.length },
          'outbox rows with no terminal id; marked published without sending',
        );
      // Published in id order on one connection: a terminal sees its events in commit order
      // within a batch. Across replicas, `seq` lets it put them back in order.
      await withTimeout(
        Promise.all(
          deliverable.map((r) => publishTraced(r, () => deps.publish(eventTopic(r.key), paymentUpdatedEvent(r)))),
        ),
        timeoutMs,
      );
      await tx.query(`UPDATE platform.outbox SET published_at = now() WHERE id = ANY($1::bigint[])`, [
        rows.map((r) => r.id),
      ]);
      return rows.length;
    });
  }

  let failures = 0;
  async function loop() {
    if (stopped) return;
    let n = 0;
    try {
      n = await runOnce();
      if (n > 0) deps.onPublished?.(n);
      if (failures > 0) logger.info({ after_failures: failures }, 'outbox relay publishing again');
      failures = 0;
    } catch (e) {
      // Broker or database down: back off (up to 5 s) rather than hammer it and flood the log.
      if (failures++ === 0 || failures % 10 === 0) {
        logger.warn(
          { err: { type: (e as Error).name, message: (e as Error).message }, failures },
          'outbox relay batch failed; will retry',
        );
      }
    }
    if (stopped) return;
    // A full batch means more may be waiting: go again at once.
    const wait = failures > 0 ? Math.min(5000, pollMs * 2 ** Math.min(failures, 10)) : n >= batchSize ? 0 : pollMs;
    timer = setTimeout(() => (running = loop()), wait);
  }

  return {
    runOnce,
    start() {
      if (!stopped) return;
      stopped = false;
      running = loop();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
