import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname, join, parse as parsePath } from 'node:path';
import { eventFromAuditLine, followLines } from '../securityEvents.ts';
import { locatePrerequisites, type GatewayPrerequisites, type PrerequisiteOverrides } from './prerequisites.ts';
import { GATEWAY_FILES, renderGatewayConfig, writeGatewayFiles, type GatewaySettings } from './render.ts';

// Runs the gateway: renders the configuration, has nginx check it, starts nginx in the
// foreground as a child process (`daemon off`), waits until it answers, and follows
// ModSecurity's audit log, appending one security event per entry to security-events.jsonl.
// Stopping sends nginx SIGQUIT (finish the requests in flight, then exit).

export interface StartGatewayOptions extends GatewaySettings {
  prerequisites?: PrerequisiteOverrides;
  /** Lines nginx prints (startup notices, errors), and the supervisor's own warnings. */
  log?: (line: string) => void;
  readyTimeoutMs?: number;
}

export interface RunningGateway {
  url: string;
  dir: string;
  pid: number;
  prerequisites: GatewayPrerequisites;
  auditLog: string;
  eventsFile: string;
  workerUser?: string;
  /** Resolves with nginx's exit code when it exits, for whatever reason. */
  exited: Promise<number | null>;
  /** Converts whatever the audit log holds right now (tests call it instead of waiting). */
  flushEvents(): void;
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** Two gateways from one directory would overwrite each other's configuration and logs. */
function refuseIfRunning(dir: string) {
  const pidFile = join(dir, GATEWAY_FILES.pid);
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
    throw new Error(
      `A gateway is already running from ${dir} (nginx pid ${pid}). Stop it first (kill -QUIT ${pid}) or use another data directory.`,
    );
  }
}

interface WorkerAccount {
  name: string;
  uid: number;
  gid: number;
}

function lookupAccount(name: string): WorkerAccount | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    /* no /etc/passwd */
  }
  return undefined;
}

function groupName(gid: number): string | undefined {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (Number(f[2]) === gid) return f[0];
    }
  } catch {
    /* no /etc/group */
  }
  return undefined;
}

/** True when another user can reach `dir` (every directory on the way is world-searchable). */
function searchableByOthers(dir: string): boolean {
  let d = dir;
  const root = parsePath(dir).root;
  for (;;) {
    // A directory not made yet will be made world-searchable (writeGatewayFiles).
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return false;
    if (d === root) return true;
    d = dirname(d);
  }
}

/**
 * Started as root, nginx drops its workers to an unprivileged account (Debian's www-data) as
 * long as that account can reach the gateway directory; otherwise they keep root, with a
 * warning (give --user or a world-searchable data directory to avoid it).
 */
function chooseWorkerAccount(
  dir: string,
  requested: string | undefined,
  log: (l: string) => void,
): WorkerAccount | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  if (requested) {
    const a = lookupAccount(requested);
    if (!a) throw new Error(`gateway: no such user "${requested}"`);
    return a;
  }
  const a = lookupAccount('www-data') ?? lookupAccount('nobody');
  if (a && searchableByOthers(dir)) return a;
  log(
    `warning: nginx workers run as root because ${dir} is not reachable by an unprivileged user; pass --user or use a world-searchable data directory`,
  );
  return { name: 'root', uid: 0, gid: 0 };
}

function probe(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const u = new URL('/_gateway/health', url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      // Our own listener, checked for liveness only: its certificate may be self-signed.
      { method: 'GET', timeout: timeoutMs, rejectUnauthorized: false },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
    req.end();
  });
}

export function gatewayUrl(s: Pick<GatewaySettings, 'listen' | 'tls'>): string {
  let host = s.listen.host;
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `${s.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${s.listen.port}`;
}

export async function startGateway(opts: StartGatewayOptions): Promise<RunningGateway> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const pre = locatePrerequisites(opts.prerequisites);
  const dir = opts.dir;
  refuseIfRunning(dir);

  const account = chooseWorkerAccount(dir, opts.workerUser, log);
  const workerUser = account ? `${account.name} ${groupName(account.gid) ?? account.gid}` : undefined;
  const files = renderGatewayConfig({ ...opts, workerUser }, pre);
  writeGatewayFiles(dir, files, account && account.uid !== 0 ? account : undefined);

  const conf = join(dir, GATEWAY_FILES.nginxConf);
  const prefixArgs = ['-p', dir + '/', '-c', conf];
  const check = spawnSync(pre.nginxBin, ['-t', '-q', ...prefixArgs], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error(
      `nginx refused the generated configuration (${conf}):\n${(check.stderr || check.stdout || '').trim()}`,
    );
  }

  // Audit log -> security events. Resumes where the previous run stopped, so nothing is lost
  // or counted twice across restarts.
  const auditLog = join(dir, GATEWAY_FILES.auditLog);
  const eventsFile = join(dir, GATEWAY_FILES.events);
  const offsetFile = join(dir, GATEWAY_FILES.offset);
  let saved: { ino?: number; offset?: number } = {};
  try {
    saved = JSON.parse(readFileSync(offsetFile, 'utf8')) as { ino?: number; offset?: number };
  } catch {
    /* first run */
  }
  const follower = followLines(
    auditLog,
    (line) => {
      const event = eventFromAuditLine(line);
      if (event) appendFileSync(eventsFile, JSON.stringify(event) + '\n', { mode: 0o600 });
    },
    {
      startAt: typeof saved.offset === 'number' ? saved.offset : 'start',
      ino: saved.ino,
      intervalMs: 100,
      onOffset: (ino, offset) => writeFileSync(offsetFile, JSON.stringify({ ino, offset }), { mode: 0o600 }),
    },
  );

  const child = spawn(pre.nginxBin, [...prefixArgs, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderrTail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
    for (const l of chunk.split('\n')) if (l.trim()) log(`nginx: ${l.trim()}`);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  const url = gatewayUrl(opts);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (hasExited) {
      follower.stop();
      throw new Error(
        `nginx exited during start-up:\n${stderrTail.trim() || '(no output; see ' + join(dir, GATEWAY_FILES.errorLog) + ')'}`,
      );
    }
    if ((await probe(url, 1000)) === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      follower.stop();
      throw new Error(
        `the gateway did not answer on ${url} within ${(opts.readyTimeoutMs ?? 15_000) / 1000} s; see ${join(dir, GATEWAY_FILES.errorLog)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let stopping: Promise<void> | undefined;
  return {
    url,
    dir,
    pid: child.pid!,
    prerequisites: pre,
    auditLog,
    eventsFile,
    workerUser,
    exited,
    flushEvents: () => follower.poll(),
    stop() {
      stopping ??= (async () => {
        if (!hasExited) {
          child.kill('SIGQUIT');
          const escalate = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(escalate);
        }
        follower.poll();
        follower.stop();
      })();
      return stopping;
    },
  };
}
