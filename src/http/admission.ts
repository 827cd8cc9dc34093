import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { AppError } from '../platform/errors.ts';
import { admissionMetrics } from './admission.metrics.ts';

// Admission: how many requests this process works on at once, and how long the rest may wait.
//
// Without it every accepted request starts at once and queues inside the process (for a database
// connection above all): under a backlog requests waited 25 s in an api's pool queue, and a
// graceful stop had to wait for all of them, overran SHUTDOWN_TIMEOUT_SECONDS and exited with
// requests still in flight (bench/README.md, the chaos run). Now:
//   - at most `maxInFlight` requests run (from the first hook to the answer); the others wait here,
//     first come first served (banks' callbacks ahead of the rest), at most `maxQueue` of them
//     and each at most `queueTimeoutMs`;
//   - a request whose client goes away while it waits is dropped (nothing ran, nobody waits);
//   - a request that cannot be admitted (queue full, waited too long) or that is still waiting when
//     the stop begins (Fastify's preClose) is answered 503 `service_unavailable` with `Retry-After`
//     and `X-Tillpoint-Not-Processed: 1`: nothing of it ran, so the balancer or the client sends it
//     to another replica (with its Idempotency-Key, which this request never claimed);
//   - a request already admitted has begun (it may have written, or called a bank) and is never cut
//     short: it finishes, and the stop waits only for those, at most `maxInFlight` of them.
// Probes and scrapes (/healthz, /readyz, /metrics) are never queued: a backlog must not make a
// healthy process look dead or unready.

export interface AdmissionOptions {
  maxInFlight: number;
  maxQueue: number;
  queueTimeoutMs: number;
  registry?: Registry;
}

/** The header that says a 503 was answered before any work began (safe to send elsewhere). */
export const NOT_PROCESSED_HEADER = 'x-tillpoint-not-processed';

const UNGATED = new Set(['/healthz', '/readyz', '/metrics']);
/**
 * Banks' callbacks wait ahead of other requests: each one finishes a payment or refund already
 * taken (cheap, and without it a backlog makes the bank give up and the worker ask instead),
 * while a new request only adds work.
 */
const CALLBACK_RE = /^\/v1\/(?:[a-z]+\/)?banks\/[^/]+\/callbacks$/;

type Refusal = 'queue_full' | 'queue_timeout' | 'stopping' | 'client_gone';

interface Waiter {
  admit(): void;
  refuse(reason: Refusal): void;
}

export function createAdmission(opts: AdmissionOptions) {
  let inFlight = 0;
  let closing = false;
  const queue: Waiter[] = [];
  /** Waiters that go ahead of ordinary requests (bank callbacks). */
  const firsts = new WeakSet<Waiter>();
  const m = opts.registry ? admissionMetrics(opts.registry) : undefined;
  m?.inFlight.set(0);
  m?.queued.set(0);

  const update = () => {
    m?.inFlight.set(inFlight);
    m?.queued.set(queue.length);
  };
  const release = () => {
    inFlight--;
    const next = queue.shift();
    if (next) next.admit();
    update();
  };

  /**
   * Resolves with a release function once the request may run; rejects with the reason it may not.
   * `onGone` is given a function to call if the client goes away: a request still waiting is then
   * dropped (a caller that gave up, a bank that will resend its callback, must not hold a place).
   */
  function enter(onGone?: (drop: () => void) => void, first = false): Promise<() => void> {
    const once = () => {
      let done = false;
      return () => {
        if (done) return;
        done = true;
        release();
      };
    };
    if (closing) return Promise.reject(refusal('stopping'));
    if (inFlight < opts.maxInFlight && queue.length === 0) {
      inFlight++;
      update();
      return Promise.resolve(once());
    }
    if (queue.length >= opts.maxQueue) return Promise.reject(refusal('queue_full'));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        admit() {
          clearTimeout(timer);
          inFlight++;
          resolve(once());
        },
        refuse(reason) {
          clearTimeout(timer);
          reject(refusal(reason));
        },
      };
      const leave = (reason: Refusal) => {
        const i = queue.indexOf(w);
        if (i < 0) return; // admitted or refused already
        queue.splice(i, 1);
        update();
        w.refuse(reason);
      };
      const timer = setTimeout(() => leave('queue_timeout'), opts.queueTimeoutMs);
      if (first) {
        // Ahead of every ordinary request, behind the other firsts (in their order).
        const i = queue.findIndex((q) => !firsts.has(q));
        firsts.add(w);
        queue.splice(i < 0 ? queue.length : i, 0, w);
      } else queue.push(w);
      update();
      onGone?.(() => leave('client_gone'));
    });
  }

  function refusal(reason: Refusal) {
    m?.shed.inc({ reason });
    const e = new AppError(
      'service_unavailable',
      reason === 'stopping'
        ? 'This replica is stopping; send the request again'
        : 'The service is busy; send the request again',
    );
    (e as AppError & { notProcessed?: string }).notProcessed = reason;
    return e;
  }

  return {
    enter,
    /** The stop has begun: every request still waiting is refused, and so is every new one. */
    close() {
      closing = true;
      for (const w of queue.splice(0)) w.refuse('stopping');
      update();
    },
    get inFlight() {
      return inFlight;
    },
    get queued() {
      return queue.length;
    },
  };
}

export type Admission = ReturnType<typeof createAdmission>;

/** Registers the gate; call before the edge and authentication hooks, so nothing waits for them first. */
export function registerAdmission(app: FastifyInstance, admission: Admission) {
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (UNGATED.has(req.url.split('?')[0])) return;
    let release: () => void;
    try {
      release = await admission.enter((drop) => reply.raw.once('close', drop), CALLBACK_RE.test(req.url.split('?')[0]));
    } catch (e) {
      const why = (e as { notProcessed?: string }).notProcessed;
      if (why === 'client_gone') {
        reply.hijack(); // nobody to answer: the connection is gone
        return reply;
      }
      reply.header('retry-after', '1');
      reply.header(NOT_PROCESSED_HEADER, '1');
      // A stopping replica closes the connection, so the client's next request opens one elsewhere.
      if (why === 'stopping') reply.header('connection', 'close');
      throw e;
    }
    // The slot is the request's until its answer is written or its connection goes away.
    if (reply.raw.writableFinished || reply.raw.destroyed) release();
    else reply.raw.once('close', release);
  });
  // preClose: Fastify has begun to close (new requests on open connections get its own 503); the
  // requests still waiting here have not begun, so they go elsewhere rather than hold the stop.
  app.addHook('preClose', (done) => {
    admission.close();
    done();
  });
}
