import pg from 'pg';

// What the server's sessions for one database are doing, sampled from pg_stat_activity: running,
// waiting for a lock (a hot row), for the WAL to reach disk, or for the application to send the
// next statement ("idle in transaction" while a transaction is open). Averaged over the samples,
// each figure is how many sessions were in that state at a typical moment.

export interface WaitSampler {
  /** The server process (backend) serving the sampler: the benchmark's, not Tillpoint's, CPU. */
  backendPid: number;
  stop(): Promise<Record<string, number>>;
}

export async function sampleWaits(url: string, everyMs = 100): Promise<WaitSampler> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const backendPid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  const sums = new Map<string, number>();
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const r = await c.query<{ w: string; n: number }>(
        `SELECT state || ' ' || coalesce(wait_event_type || ':' || wait_event, 'on CPU') AS w, count(*)::int AS n
           FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
            AND state <> 'idle'
          GROUP BY 1`,
      );
      samples++;
      for (const row of r.rows) sums.set(row.w, (sums.get(row.w) ?? 0) + row.n);
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    backendPid,
    async stop() {
      stopped = true;
      await loop;
      await c.end();
      const out: Record<string, number> = {};
      for (const [k, v] of [...sums].sort((a, b) => b[1] - a[1]).slice(0, 10))
        out[k] = Math.round((v / Math.max(1, samples)) * 100) / 100;
      return out;
    },
  };
}
