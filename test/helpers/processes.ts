import { spawn, type ChildProcess } from 'node:child_process';

// Starting a real process in a test and waiting for the line that says it is ready: one copy of
// the bookkeeping (output kept for the failure message, a timeout that kills what half-started,
// an early exit reported with the output) for every test that runs the platform as processes.

export interface StartedProcess {
  child: ChildProcess;
  /** Everything the process wrote so far, stdout and stderr together. */
  out: () => string;
}

export interface SpawnUntilOptions {
  env: NodeJS.ProcessEnv;
  /** The child's working directory (default: this process's). */
  cwd?: string;
  /**
   * The output that says the process is ready, or, for a process that says nothing when it is
   * (Prometheus), a check polled every 100 ms until it returns true (a check that throws: not yet).
   */
  ready: RegExp | (() => Promise<boolean>);
  /** How long to wait; generous by default: a start on a loaded 2-core CI machine has taken ~60 s. */
  timeoutMs?: number;
  /** Called with the child at once, so the caller can register it for clean-up. */
  onSpawn?: (child: ChildProcess) => void;
}

export function spawnUntil(cmd: string, args: string[], opts: SpawnUntilOptions): Promise<StartedProcess> {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  opts.onSpawn?.(child);
  let out = '';
  const tail = () => out.slice(-4000);
  let settled = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      settled = true;
      child.kill('SIGKILL'); // never leave a half-started server behind
      reject(new Error(`${cmd} ${args.join(' ')}: timed out waiting for ${opts.ready}: ${tail()}`));
    }, opts.timeoutMs ?? 180_000);
    const ready = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ child, out: () => out });
    };
    const { ready: isReady } = opts;
    const onData = (d: Buffer) => {
      out += d;
      if (isReady instanceof RegExp && isReady.test(out)) ready();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      settled = true;
      // After it was ready this rejects a settled promise, which is a no-op.
      reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${tail()}`));
    });
    if (typeof isReady === 'function') {
      void (async () => {
        while (!settled) {
          if (await isReady().catch(() => false)) ready();
          else await new Promise((r) => setTimeout(r, 100));
        }
      })();
    }
  });
}

/** Stops a child with `signal` (SIGTERM: a graceful stop) and waits until it has exited. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await gone;
}

/** `tillpoint bank-sim` arguments for a simulator on `port` that approves every payment at once. */
export function bankSimArgs(port: string | number): string[] {
  return [
    'bank-sim',
    '--port',
    String(port),
    '--latency-ms',
    '0',
    '--approve',
    '1',
    '--decline',
    '0',
    '--pending',
    '0',
    '--timeout',
    '0',
  ];
}
