import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// Ports for tests and benchmarks, which only listen and connect on the loopback interface.
//
// A port found free is free only until someone else binds it, and the listener that wants it (a
// child process, most often) binds it a second or so later. Two things shrink that window's risk:
// the port comes from below the kernel's ephemeral range, where no outgoing connection (of any
// process on the machine: the suite makes thousands) and no `listen(0)` ever lands; and
// `withFreePorts()` starts the listener again on fresh ports when it still finds its port taken
// (EADDRINUSE), which covers what is left (another test's listener choosing the same port).

/** The low end of the kernel's ephemeral port range (Linux; 32768 elsewhere, below macOS's 49152 too). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 1024) return low;
  } catch {
    /* not Linux */
  }
  return 32768;
}

// Ports [PORT_FLOOR, ephemeral low): a kernel with its range lowered below 20000 leaves too few
// ports there, and then the kernel's own choice (listen(0)) is used.
const PORT_FLOOR = 10_000;
const LOW = ephemeralLow();
const RANGE = LOW - PORT_FLOOR;
// Ports this process handed out recently are not handed out again at once (two callers that
// asked one after the other would otherwise be told the same port before either bound it).
const recent: number[] = [];

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'EADDRINUSE' || e.code === 'EACCES' ? resolve(undefined) : reject(e),
    );
    s.listen(port, '127.0.0.1', () => {
      const bound = (s.address() as { port: number }).port;
      s.close(() => resolve(bound));
    });
  });
}

/** A TCP port free on the loopback interface now, outside the ephemeral range where it can be. */
export async function freePort(): Promise<number> {
  if (RANGE >= 10_000) {
    for (let i = 0; i < 50; i++) {
      const candidate = PORT_FLOOR + Math.floor(Math.random() * RANGE);
      if (recent.includes(candidate)) continue;
      const port = await tryListen(candidate);
      if (port !== undefined) return remember(port);
    }
  }
  for (;;) {
    const port = (await tryListen(0))!;
    if (!recent.includes(port)) return remember(port);
  }
}

function remember(port: number): number {
  recent.push(port);
  if (recent.length > 64) recent.shift();
  return port;
}

/** Whether `e` says one of `ports` was taken when a listener tried to bind it. */
export function portTaken(e: unknown, ports: readonly number[]): boolean {
  const text = e instanceof Error ? `${e.message} ${(e as NodeJS.ErrnoException).code ?? ''}` : String(e);
  if (!/EADDRINUSE|address already in use/i.test(text)) return false;
  // The ports it names ("127.0.0.1:39203", PostgreSQL's "on port 39203"); a message that names
  // none (some servers say only "Address already in use") counts as ours.
  const named = [...text.matchAll(/(?::|\bport )(\d{4,5})\b/g)].map((m) => Number(m[1]));
  const own = (e as { port?: unknown }).port;
  if (typeof own === 'number') named.push(own);
  return named.length === 0 || ports.some((p) => named.includes(p));
}

export interface WithFreePortsOptions {
  /** How many starts to try in all (default 5). */
  attempts?: number;
  /** Where ports come from (default `freePort`); a test hands out a taken port on purpose. */
  freePort?: () => Promise<number>;
}

/**
 * Runs `start` with `count` free ports and returns what it returns. When the start fails because
 * one of those ports was taken in the meantime (its error says EADDRINUSE, or "Address already in
 * use", naming the port), `start` runs again with fresh ports, up to `attempts` times in all;
 * any other failure is thrown at once. `start` must leave nothing running when it throws (a child
 * that fails to bind exits, and `spawnUntil` rejects only then).
 */
export async function withFreePorts<T>(
  count: number,
  start: (ports: number[]) => Promise<T>,
  opts: WithFreePortsOptions = {},
): Promise<T> {
  const attempts = opts.attempts ?? 5;
  const next = opts.freePort ?? freePort;
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    while (ports.length < count) {
      const p = await next();
      if (!ports.includes(p)) ports.push(p);
    }
    try {
      return await start(ports);
    } catch (e) {
      if (attempt >= attempts || !portTaken(e, ports)) throw e;
    }
  }
}
