import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

// Tillpoint processes for a benchmark, started as an operator would start them
// (`node bin/tillpoint.mjs …`). Their output goes straight to a log file, not through this
// process: at thousands of requests a second the load generator must not also be a log pipe.

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'tillpoint.mjs');

export interface BenchProc {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

const running = new Set<BenchProc>();

/** Kills whatever is still running (used on errors and signals). */
export function killAll() {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL');
}

export async function startTillpoint(opts: {
  name: string;
  args: string[];
  env: Record<string, string>;
  /** Text in the log that says the process is ready. */
  ready: RegExp;
  logDir: string;
  nodeFlags?: string[];
  timeoutMs?: number;
}): Promise<BenchProc> {
  const logFile = join(opts.logDir, `${opts.name}.log`);
  const fd = openSync(logFile, 'a');
  // A restarted process appends to its log: only what this start writes says it is ready.
  const offset = statSync(logFile).size;
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), BIN, ...opts.args], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const proc: BenchProc = {
    name: opts.name,
    pid: child.pid!,
    child,
    logFile,
    stop: (graceMs = 15_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
      return new Promise((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', (code) => {
          clearTimeout(kill);
          running.delete(proc);
          resolve(code);
        });
        child.kill('SIGTERM');
      });
    },
  };
  running.add(proc);
  const log = () => readFileSync(logFile).subarray(offset).toString('utf8');
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (opts.ready.test(log())) return proc;
    if (child.exitCode !== null)
      throw new Error(`${opts.name} exited ${child.exitCode} before it was ready:\n${log().slice(-3000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${opts.name} was not ready in time:\n${log().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs a tillpoint CLI command to completion. */
export function runTillpoint(args: string[], env: Record<string, string>, timeoutMs = 120_000) {
  return spawnSync(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
}

/** Resident memory of a process from /proc (Linux): current and peak (VmHWM), in MB. */
export function memoryMb(pid: number): { rss: number; peak: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** The fields of /proc/<pid>/stat after the command name (which is in parentheses and may contain spaces). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
// Indexes into statFields(): ppid, utime, stime, cutime, cstime.
const PPID = 1;
const UTIME = 11;
const STIME = 12;
const CUTIME = 13;
const CSTIME = 14;
const ticks = (f: string[], a: number, b: number) => (Number(f[a]) + Number(f[b])) / CLOCK_TICKS;

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export function cpuSeconds(pid: number): number | undefined {
  try {
    return ticks(statFields(pid), UTIME, STIME);
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of the whole machine, from /proc/stat (Linux): busy (steal included) and total, and
 * of those idle ones the cores spent waiting on the disk (iowait), and the busy ones the
 * hypervisor took (steal).
 */
export function machineCpuSeconds(): { busy: number; total: number; iowait: number; steal: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = v[3] + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return {
      busy: (total - idle) / CLOCK_TICKS,
      total: total / CLOCK_TICKS,
      iowait: (v[4] ?? 0) / CLOCK_TICKS,
      steal: (v[7] ?? 0) / CLOCK_TICKS,
    };
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

const ppidOf = (pid: number) => Number(statFields(pid)[PPID]);

/** The postmaster of a local PostgreSQL server, from one of its backends' pid; undefined if not local. */
export function postmasterOf(backendPid: number): number | undefined {
  try {
    const pm = ppidOf(backendPid);
    return /postgres|postmaster/.test(readFileSync(`/proc/${pm}/cmdline`, 'utf8')) ? pm : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds used so far by a process and its children, ended ones included (PostgreSQL: the
 * server's backends). Without the ended ones the figure would fall whenever a backend exits (a
 * pool closing an idle connection), and the CPU it used would vanish from a difference of two
 * readings.
 */
export function treeCpuSeconds(pid: number): number | undefined {
  let sum: number;
  try {
    const own = statFields(pid);
    sum = ticks(own, UTIME, STIME) + ticks(own, CUTIME, CSTIME);
  } catch {
    return undefined;
  }
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const f = statFields(Number(name));
      if (Number(f[PPID]) === pid) sum += ticks(f, UTIME, STIME);
    } catch {
      // exited while we looked
    }
  }
  return sum;
}
