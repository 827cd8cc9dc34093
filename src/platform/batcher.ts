// Group commit for independent one-statement writes: calls that arrive while a flush is running
// wait for the next flush and are written together, as one statement and one commit. There is
// no timer: a lone call is flushed at once (no added latency when the system is quiet), and the
// busier it gets, the more calls share each flush (fewer round trips, commits and WAL flushes
// per call), which is when it matters. This is the batching TigerBeetle and the LMAX disruptor
// call "smart batching".
//
// Every caller still gets its own answer, and only after the statement that wrote its item has
// committed. A failed flush of several items is retried item by item, so one bad member fails
// alone and never sinks the others.

export interface Batcher<I, O> {
  /** Writes `item` with whatever else is waiting; resolves with its own result once committed. */
  submit(item: I): Promise<O>;
}

export interface BatcherOptions {
  /** The most items one flush takes (bounds the statement's size); the rest wait for the next. */
  maxBatch?: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

/**
 * `write(items)` writes the items in one go and returns one result per item, in the same order.
 * At most one flush runs at a time per batcher.
 */
export function createBatcher<I, O>(
  write: (items: readonly I[]) => Promise<readonly O[]>,
  opts: BatcherOptions = {},
): Batcher<I, O> {
  const maxBatch = opts.maxBatch ?? 64;
  const queue: Waiting<I, O>[] = [];
  let flushing = false;

  async function writeOne(w: Waiting<I, O>) {
    try {
      const [o] = await write([w.item]);
      w.resolve(o);
    } catch (e) {
      w.reject(e);
    }
  }

  async function flush() {
    flushing = true;
    while (queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      try {
        const out = await write(batch.map((w) => w.item));
        if (out.length !== batch.length)
          throw new Error(`batch write returned ${out.length} results for ${batch.length} items`);
        batch.forEach((w, i) => w.resolve(out[i]));
      } catch (e) {
        if (batch.length === 1) batch[0].reject(e);
        // One of them may be the cause: each on its own, so only that one fails.
        else for (const w of batch) await writeOne(w);
      }
    }
    flushing = false;
  }

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        // Started after the current microtasks, so calls made in the same turn share the first flush.
        if (!flushing) {
          flushing = true;
          queueMicrotask(() => void flush());
        }
      });
    },
  };
}
