import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

// PostgreSQL's own bank-transaction benchmark, the reference the payment path is measured
// against: `pgbench -i -s <scale>` then the default TPC-B-like script (UPDATE an account, SELECT
// its balance, UPDATE a teller and a branch, INSERT into history: one transaction, one commit).

export interface PgbenchResult {
  tps: number;
  latency_avg_ms: number | null;
  transactions: number;
  failed: number;
  scale: number;
  clients: number;
  threads: number;
  duration_s: number;
}

/** pgbench beside the cluster's binaries, else the one on PATH (Debian's wrapper). */
export function findPgbench(binDir?: string): string | undefined {
  if (binDir && existsSync(join(binDir, 'pgbench'))) return join(binDir, 'pgbench');
  const r = spawnSync('pgbench', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'pgbench' : undefined;
}

function run(bin: string, args: string[], url: string, timeoutMs: number) {
  const r = spawnSync(bin, [...args, url], { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw new Error(`pgbench: ${r.error.message}`);
  if (r.status !== 0)
    throw new Error(`pgbench ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r.stdout + r.stderr;
}

export function pgbenchInit(bin: string, url: string, scale: number) {
  // -q: quiet progress; the tables are made fresh (-i drops old ones) in the benchmark's own database.
  run(bin, ['-i', '-q', '-s', String(scale)], url, 300_000);
}

/** Parses pgbench's report. Exported for the README's worked example and for reuse. */
export function parsePgbench(out: string) {
  const tps = /^tps = ([\d.]+) \(without initial connection time\)/m.exec(out) ?? /^tps = ([\d.]+)/m.exec(out);
  if (!tps) throw new Error(`pgbench printed no tps:\n${out.slice(-2000)}`);
  const lat = /^latency average = ([\d.]+) ms/m.exec(out);
  const done = /^number of transactions actually processed: (\d+)/m.exec(out);
  const failed = /^number of failed transactions: (\d+)/m.exec(out);
  return {
    tps: Number(tps[1]),
    latency_avg_ms: lat ? Number(lat[1]) : null,
    transactions: done ? Number(done[1]) : 0,
    failed: failed ? Number(failed[1]) : 0,
  };
}

export function pgbenchRun(
  bin: string,
  url: string,
  o: { clients: number; threads: number; seconds: number; scale: number },
): PgbenchResult {
  const out = run(
    bin,
    ['-c', String(o.clients), '-j', String(o.threads), '-T', String(o.seconds)],
    url,
    (o.seconds + 120) * 1000,
  );
  return { ...parsePgbench(out), scale: o.scale, clients: o.clients, threads: o.threads, duration_s: o.seconds };
}
