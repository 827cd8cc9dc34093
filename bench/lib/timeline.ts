import { writeFileSync } from 'node:fs';
import { cpuSeconds, machineCpuSeconds, treeCpuSeconds } from './procs.ts';
import { Recorder, now, round } from './load.ts';

// A run's timeline (`bench:payments -- --timeline FILE`): the creates that started in each
// 250 ms bucket (count, p50, p99, max) beside what every process used of the CPU in that bucket,
// so that a tail made of bursts can be laid against the process that was busy then (the worker's
// periodic jobs, a tool's garbage collection, PostgreSQL). Sampled from /proc, whose CPU counters
// tick every 10 ms: a bucket's CPU figures are good to about 4 % of a core. The sampling's own CPU
// (a few /proc reads four times a second) counts as the load generator's.

export interface TimelineProcs {
  api: number;
  worker: number;
  sim: number;
  /** The postmaster: its children are PostgreSQL's backends. */
  postgres?: number;
}

interface Sample {
  at: number;
  api: number;
  worker: number;
  sim: number;
  postgres: number;
  bench: number;
  machine: { busy: number; iowait: number; steal: number };
}

export interface TimelineBucket {
  /** Seconds from the start of the timeline to the bucket's start, and that moment's wall-clock time (to read logs by). */
  t: number;
  wall: string;
  creates: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  /** Share of one core used in the bucket. */
  cpu_pct: {
    api: number;
    worker: number;
    bank_sim: number;
    postgres: number;
    load_generator: number;
    machine: number;
    /** Cores idle while waiting on the disk, and taken by the hypervisor. */
    iowait: number;
    steal: number;
  };
}

export function startTimeline(procs: TimelineProcs, bucketMs = 250) {
  const start = now();
  const wallStart = Date.now();
  const creates: { at: number; ms: number }[] = [];
  const samples: Sample[] = [];
  const sample = () => {
    const cpu = process.cpuUsage();
    samples.push({
      at: now(),
      api: cpuSeconds(procs.api) ?? 0,
      worker: cpuSeconds(procs.worker) ?? 0,
      sim: cpuSeconds(procs.sim) ?? 0,
      postgres: procs.postgres === undefined ? 0 : (treeCpuSeconds(procs.postgres) ?? 0),
      bench: (cpu.user + cpu.system) / 1e6,
      machine: machineCpuSeconds() ?? { busy: 0, iowait: 0, steal: 0 },
    });
  };
  sample();
  const timer = setInterval(sample, bucketMs);

  return {
    /** A create that started at `startedAt` (performance.now() time) and took `ms`. */
    addCreate(startedAt: number, ms: number) {
      creates.push({ at: startedAt - start, ms });
    },
    /** Stops sampling; the buckets in time order. */
    stop(): TimelineBucket[] {
      clearInterval(timer);
      sample();
      const buckets: TimelineBucket[] = [];
      for (let i = 1; i < samples.length; i++) {
        const a = samples[i - 1];
        const b = samples[i];
        const wall = (b.at - a.at) / 1000;
        const pct = (x: number) => round((x / wall) * 100, 0);
        const from = a.at - start;
        const to = b.at - start;
        const rec = new Recorder();
        for (const c of creates) if (c.at >= from && c.at < to) rec.add(c.ms);
        buckets.push({
          t: round(from / 1000, 2),
          wall: new Date(wallStart + from).toISOString(),
          creates: rec.count,
          p50_ms: rec.percentile(50),
          p99_ms: rec.percentile(99),
          max_ms: rec.percentile(100),
          cpu_pct: {
            api: pct(b.api - a.api),
            worker: pct(b.worker - a.worker),
            bank_sim: pct(b.sim - a.sim),
            postgres: pct(b.postgres - a.postgres),
            load_generator: pct(b.bench - a.bench),
            machine: pct(b.machine.busy - a.machine.busy),
            iowait: pct(b.machine.iowait - a.machine.iowait),
            steal: pct(b.machine.steal - a.machine.steal),
          },
        });
      }
      return buckets;
    },
  };
}

/** Writes the buckets as JSON lines and returns a few lines of text: the buckets with the slowest creates. */
export function saveTimeline(file: string, buckets: TimelineBucket[], worst = 5): string {
  writeFileSync(file, buckets.map((b) => JSON.stringify(b)).join('\n') + '\n');
  const slowest = [...buckets].sort((a, b) => (b.max_ms ?? 0) - (a.max_ms ?? 0)).slice(0, worst);
  return slowest
    .map((b) => {
      const c = b.cpu_pct;
      return `t=${b.t}s: ${b.creates} creates, p50 ${b.p50_ms} max ${b.max_ms} ms; CPU % api ${c.api} PostgreSQL ${c.postgres} worker ${c.worker} bank-sim ${c.bank_sim} load ${c.load_generator} machine ${c.machine} (iowait ${c.iowait}, steal ${c.steal})`;
    })
    .join('\n');
}
