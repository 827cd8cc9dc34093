import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import v8 from 'node:v8';
import type { Db, Queryable, QueryResult } from './queryable.ts';

// One process owns an embedded (PGlite) data directory. PGlite is PostgreSQL running inside one
// process: a second process that opened the same files would read a stale copy, and whatever it
// wrote would be overwritten by the owner (or would overwrite the owner's acknowledged writes) at
// the next checkpoint. So:
//
//   - The owner holds `<data dir>/pglite.lock` (its PID, the PID's start time, what it is), made
//     with O_EXCL. A lock whose process is gone (SIGKILL, power loss) is stale and taken over.
//   - A server (`tillpoint serve`) also listens on a Unix socket in `<data dir>/admin/` (directory
//     0700, socket 0600, plus a random token in a 0600 file): other `tillpoint` processes send it
//     their SQL and transactions, so a command run beside the server is one more client of the
//     same database, exactly as it is beside a server on PostgreSQL.
//   - A process that finds the directory owned by something it cannot work through (another
//     server starting, or a command) stops at once, naming the owner's PID.

export const LOCK_FILE = 'pglite.lock';
const ADMIN_DIR = 'admin';
const TOKEN_FILE = 'token';
const SOCKET_FILE = 'socket';
/** Longest Unix socket path Linux and macOS accept (sun_path is 108 and 104 bytes). */
const MAX_SOCKET_PATH = 100;
/** A transaction opened through the socket is rolled back after this long without a statement. */
const TX_IDLE_MS = 10_000;
/** How long a command waits for a server that holds the lock to open its socket (start-up, migrations). */
const CONNECT_WAIT_MS = 60_000;
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export interface LockInfo {
  pid: number;
  /** The PID's start time (Linux /proc), so a reused PID is not mistaken for the owner. */
  proc_start: string | null;
  /** `serve …` for a server, else the command that holds the directory. */
  command: string;
  started_at: string;
  /** True for a server (`tillpoint serve`): other processes work through its admin socket. */
  server: boolean;
  /** The server's admin socket, once it listens (null while it starts, and for a command). */
  socket: string | null;
}

/** The data directory is owned by a live process this one cannot work through. */
export class EmbeddedDbBusyError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockInfo,
  ) {
    const server = holder.server;
    super(
      `the embedded database in ${dataDir} is in use by process ${holder.pid} (tillpoint ${holder.command}, since ${holder.started_at}). ` +
        (server
          ? 'Only one server may run on a data directory: stop that one first (kill ' +
            holder.pid +
            '), or give this one another TILLPOINT_DATA_DIR, or use PostgreSQL (DATABASE_URL).'
          : 'Wait for that command to finish, then run this again.'),
    );
    this.name = 'EmbeddedDbBusyError';
  }
}

/** A command that reads the database was pointed at a data directory that has none. */
export class NoEmbeddedDbError extends Error {
  constructor(readonly dataDir: string) {
    super(
      `no database in ${resolve(dataDir)}: start the server first (npm start), or set TILLPOINT_DATA_DIR to the server's data directory ` +
        '(or DATABASE_URL to its PostgreSQL). Nothing was created.',
    );
    this.name = 'NoEmbeddedDbError';
  }
}

/** True when the data directory holds a PGlite database (PostgreSQL writes PG_VERSION first). */
export function embeddedDbExists(dataDir: string): boolean {
  return existsSync(join(dataDir, 'pglite', 'PG_VERSION'));
}

function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); the command name (field 2) may hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

const heldHere = new Set<string>();

/** Whether the process named in a lock file is still the one that wrote it. */
export function lockHolderAlive(lock: LockInfo): boolean {
  if (lock.pid === process.pid) return false; // a restarted container's PID 1, say: not us unless heldHere
  try {
    process.kill(lock.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: gone
  }
  const now = procStart(lock.pid);
  return !(lock.proc_start && now && now !== lock.proc_start);
}

/** The current lock of a data directory, or null when there is none (or it is unreadable). */
export function readLock(dataDir: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')) as LockInfo;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function writeLockFile(path: string, info: LockInfo, exclusive: boolean) {
  const fd = openSync(path, exclusive ? 'wx' : 'w', 0o644);
  try {
    writeSync(fd, JSON.stringify(info) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Takes the data directory's lock for this process, or throws EmbeddedDbBusyError naming the live
 * owner. Returns a release function (also run at process exit; a SIGKILLed owner leaves a stale
 * lock, which the next process takes over).
 */
export async function acquireLock(
  dataDir: string,
  command: string,
  server: boolean,
): Promise<{ info: LockInfo; release(): void; setSocket(socket: string): void }> {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  const key = resolve(path);
  if (heldHere.has(key)) throw new EmbeddedDbBusyError(dataDir, { ...readLock(dataDir)!, pid: process.pid });
  const info: LockInfo = {
    pid: process.pid,
    proc_start: procStart(process.pid),
    command,
    started_at: new Date().toISOString(),
    server,
    socket: null,
  };
  for (let attempt = 0; ; attempt++) {
    try {
      writeLockFile(path, info, true);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const current = readLock(dataDir);
    if (current === null) {
      // Being written right now, or torn by a crash mid-write: give a writer a moment.
      let age = Infinity;
      try {
        age = Date.now() - statSync(path).mtimeMs;
      } catch {}
      if (age < 2000 && attempt < 50) {
        await sleep(50);
        continue;
      }
    } else if (lockHolderAlive(current)) {
      throw new EmbeddedDbBusyError(dataDir, current);
    }
    // Stale. Two processes may find it stale at once: the takeover file makes them take turns, and
    // the lock is removed only if it is still the stale one read above.
    const takeover = `${path}.takeover`;
    try {
      closeSync(openSync(takeover, 'wx', 0o600));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let age = Infinity;
      try {
        age = Date.now() - statSync(takeover).mtimeMs;
      } catch {}
      if (age > 10_000) rmSync(takeover, { force: true });
      await sleep(50);
      continue;
    }
    try {
      const again = readLock(dataDir);
      if (JSON.stringify(again) === JSON.stringify(current)) rmSync(path, { force: true });
    } finally {
      rmSync(takeover, { force: true });
    }
    if (attempt > 50) throw new Error(`could not take over the stale lock ${path}`);
  }
  heldHere.add(key);
  const release = () => {
    if (!heldHere.delete(key)) return;
    const now = readLock(dataDir);
    if (now?.pid === process.pid) rmSync(path, { force: true });
  };
  process.once('exit', release);
  return {
    info,
    release,
    setSocket(s: string) {
      info.socket = s;
      const tmp = `${path}.${process.pid}.tmp`;
      writeLockFile(tmp, info, false);
      renameSync(tmp, path);
    },
  };
}

// ---- the wire: length-prefixed frames of v8-serialized messages (Dates, Buffers and JSON values
// survive as they are, as they would through the pg driver) ----

type Request =
  | { id: number; op: 'hello'; token: string }
  | { id: number; op: 'query'; sql: string; params?: unknown[] }
  | { id: number; op: 'exec'; sql: string }
  | { id: number; op: 'begin' | 'commit' | 'rollback' };
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
type Answer = { ok: true; rows?: unknown[]; rowCount?: number } | { ok: false; error: Record<string, unknown> };
type Reply = Answer & { id: number };

function sendFrame(socket: Socket, msg: unknown) {
  const body = v8.serialize(msg);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  socket.write(Buffer.concat([head, body]));
}

function onFrames(socket: Socket, handle: (msg: unknown) => void) {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME_BYTES) {
        socket.destroy(new Error('frame too large'));
        return;
      }
      if (buf.length < 4 + len) break;
      const body = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      let msg: unknown;
      try {
        msg = v8.deserialize(body);
      } catch {
        socket.destroy(new Error('unreadable frame'));
        return;
      }
      handle(msg);
    }
  });
}

/** The fields of a database error worth carrying across (the SQLSTATE above all), as plain data. */
function errorToWire(e: unknown): Record<string, unknown> {
  const err = e as Record<string, unknown> & { message?: string };
  const out: Record<string, unknown> = { message: err?.message ?? String(e) };
  for (const k of ['code', 'detail', 'hint', 'constraint', 'table', 'schema', 'column', 'severity', 'routine']) {
    if (typeof err?.[k] === 'string') out[k] = err[k];
  }
  return out;
}

function errorFromWire(w: Record<string, unknown>): Error {
  const e = new Error(String(w.message)) as Error & Record<string, unknown>;
  for (const [k, v] of Object.entries(w)) if (k !== 'message') e[k] = v;
  return e;
}

// ---- the server side ----

export interface AdminServer {
  socket: string;
  close(): Promise<void>;
}

/**
 * Lets other `tillpoint` processes use `db` through a Unix socket. Each connection is one client
 * session: statements run as they come; `begin` opens a transaction on the owner's database that
 * the session's statements then run in, until `commit` or `rollback` (or the connection closing,
 * or TX_IDLE_MS without a statement, which roll back).
 */
export async function serveAdminSocket(db: Db, dataDir: string): Promise<AdminServer> {
  const dir = join(dataDir, ADMIN_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const token = randomBytes(32).toString('base64url');
  const tokenFile = join(dir, TOKEN_FILE);
  rmSync(tokenFile, { force: true });
  writeFileSync(tokenFile, token + '\n', { mode: 0o600, flag: 'wx' });
  let socketDir = dir;
  let socketPath = resolve(dir, SOCKET_FILE);
  if (socketPath.length > MAX_SOCKET_PATH) {
    // A deep data directory: the socket goes in a private directory of its own (mkdtemp: 0700).
    socketDir = mkdtempSync(join(tmpdir(), 'tillpoint-admin-'));
    socketPath = join(socketDir, SOCKET_FILE);
  }
  rmSync(socketPath, { force: true }); // left by a killed server
  const sessions = new Set<Socket>();
  const closing = new Set<Promise<void>>();
  const expected = Buffer.from(token);

  const server: Server = createServer((socket) => {
    sessions.add(socket);
    let authed = false;
    let tx: { t: Queryable; finish(commit: boolean): void; done: Promise<void>; idle?: NodeJS.Timeout } | null = null;
    let chain = Promise.resolve();
    const endTx = async (commit: boolean) => {
      const open = tx;
      tx = null;
      if (!open) return;
      clearTimeout(open.idle);
      open.finish(commit);
      await open.done;
    };
    const armIdle = () => {
      if (!tx) return;
      clearTimeout(tx.idle);
      tx.idle = setTimeout(() => socket.destroy(), TX_IDLE_MS);
    };
    socket.on('close', () => {
      sessions.delete(socket);
      // An open transaction of a command that went away (or idled too long) is rolled back.
      const ended = chain.then(() => endTx(false)).catch(() => {});
      closing.add(ended);
      void ended.finally(() => closing.delete(ended));
    });
    socket.on('error', () => {});
    const handle = async (m: Request): Promise<Answer> => {
      if (!authed) {
        const given = Buffer.from(m.op === 'hello' && typeof m.token === 'string' ? m.token : '');
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          setImmediate(() => socket.destroy());
          return { ok: false, error: { message: 'admin socket: bad token' } };
        }
        authed = true;
        return { ok: true };
      }
      switch (m.op) {
        case 'query': {
          const r: QueryResult<unknown> = await (tx?.t ?? db).query(m.sql, m.params);
          armIdle();
          return { ok: true, rows: r.rows, rowCount: r.rowCount };
        }
        case 'exec':
          await (tx?.t ?? db).exec(m.sql);
          armIdle();
          return { ok: true };
        case 'begin': {
          if (tx) throw new Error('admin socket: a transaction is already open');
          let finish!: (commit: boolean) => void;
          const decided = new Promise<boolean>((r) => (finish = r));
          let begun!: (t: Queryable) => void;
          const started = new Promise<Queryable>((r) => (begun = r));
          let runs = 0;
          const done = db.tx(async (t) => {
            // db.tx retries on serialization failures; a remote transaction cannot be replayed here
            // (the client replays it), so a second run fails instead.
            if (++runs > 1) throw new Error('admin socket: transaction must be retried by the client');
            begun(t);
            if (!(await decided)) throw new RemoteRollback();
          });
          const failed = done.then(
            () => null,
            (e) => e,
          );
          const t = await Promise.race([
            started,
            failed.then((e) => Promise.reject(e ?? new Error('transaction ended'))),
          ]);
          tx = { t, finish, done: done.catch((e) => (e instanceof RemoteRollback ? undefined : Promise.reject(e))) };
          armIdle();
          return { ok: true };
        }
        case 'commit':
          if (!tx) throw new Error('admin socket: no open transaction');
          await endTx(true);
          return { ok: true };
        case 'rollback':
          await endTx(false);
          return { ok: true };
        default:
          throw new Error(`admin socket: unknown operation`);
      }
    };
    onFrames(socket, (msg) => {
      const m = msg as Request;
      // One statement at a time per session, in order, as on a PostgreSQL connection.
      chain = chain.then(async () => {
        let reply: Answer;
        try {
          reply = await handle(m);
        } catch (e) {
          reply = { ok: false, error: errorToWire(e) };
        }
        if (!socket.destroyed) sendFrame(socket, { id: m.id, ...reply });
      });
    });
  });

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(socketPath, () => {
      server.off('error', fail);
      ok();
    });
  });
  chmodSync(socketPath, 0o600);
  return {
    socket: socketPath,
    async close() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions) s.destroy();
      await closed;
      await Promise.all([...closing]); // every session's transaction has ended before the database closes
      rmSync(tokenFile, { force: true });
      if (socketDir !== dir) rmSync(socketDir, { recursive: true, force: true });
      else rmSync(socketPath, { force: true });
    },
  };
}

class RemoteRollback extends Error {}

// ---- the client side ----

class Session {
  private socket?: Socket;
  private next = 1;
  private pending = new Map<number, { ok(r: Reply): void; fail(e: Error): void }>();
  private ready?: Promise<void>;
  constructor(
    private readonly socketPath: string,
    private readonly token: string,
  ) {}

  private open(): Promise<void> {
    this.ready ??= new Promise<void>((ok, fail) => {
      const s = connect(this.socketPath);
      s.once('connect', () => {
        this.socket = s;
        this.call({ op: 'hello', token: this.token }).then(() => ok(), fail);
      });
      s.on('error', (e) => {
        if (!this.socket) fail(e);
      });
      s.on('close', () => {
        for (const p of this.pending.values()) p.fail(new Error('the tillpoint server closed the admin connection'));
        this.pending.clear();
      });
      onFrames(s, (msg) => {
        const r = msg as Reply;
        const p = this.pending.get(r.id);
        this.pending.delete(r.id);
        p?.ok(r);
      });
    });
    return this.ready;
  }

  async request(m: DistributiveOmit<Request, 'id'>): Promise<Reply & { ok: true }> {
    await this.open();
    return this.call(m);
  }

  private call(m: object): Promise<Reply & { ok: true }> {
    const id = this.next++;
    if (this.socket!.destroyed) return Promise.reject(new Error('the tillpoint server closed the admin connection'));
    return new Promise((ok, fail) => {
      this.pending.set(id, {
        ok: (r) => (r.ok ? ok(r) : fail(errorFromWire(r.error))),
        fail,
      });
      sendFrame(this.socket!, { id, ...m });
    });
  }

  close() {
    this.socket?.end();
    this.socket?.destroy();
  }
}

/** True when a server's admin socket accepts connections (it may still be starting). */
function reachable(socketPath: string): Promise<boolean> {
  return new Promise((r) => {
    const s = connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

/**
 * A Db that runs everything on the server that owns `dataDir`, through its admin socket. Waits
 * while the server is starting; throws EmbeddedDbBusyError if the owner is not a server.
 */
export async function connectToOwner(dataDir: string, owner: LockInfo): Promise<Db> {
  if (!owner.server) throw new EmbeddedDbBusyError(dataDir, owner);
  const deadline = Date.now() + CONNECT_WAIT_MS;
  let lock = owner;
  while (!lock.socket || !(await reachable(lock.socket))) {
    if (!lockHolderAlive(lock))
      throw new Error(
        `the tillpoint server (process ${lock.pid}) that owned ${dataDir} has stopped; run the command again`,
      );
    if (Date.now() > deadline)
      throw new Error(
        `the tillpoint server (process ${lock.pid}) does not answer on ${lock.socket}; is it still starting?`,
      );
    await sleep(200);
    const now = readLock(dataDir);
    if (now && now.pid === owner.pid) lock = now; // the socket is written into the lock once it listens
  }
  const tokenFile = join(dataDir, ADMIN_DIR, TOKEN_FILE);
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (e) {
    throw new Error(
      `cannot read ${tokenFile} (${(e as NodeJS.ErrnoException).code}): run this command as the user that runs the server`,
    );
  }
  const socketPath = lock.socket;
  const main = new Session(socketPath, token);
  const query = async <T>(sql: string, params?: unknown[]) => {
    const r = await main.request({ op: 'query', sql, params });
    return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
  };
  return {
    driver: 'pglite',
    query,
    exec: async (sql: string) => {
      await main.request({ op: 'exec', sql });
    },
    async tx<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      // Its own session: the transaction holds the owner's database until commit or rollback.
      const s = new Session(socketPath, token);
      try {
        await s.request({ op: 'begin' });
        let out: T;
        try {
          out = await fn({
            query: async <R>(sql: string, params?: unknown[]) => {
              const r = await s.request({ op: 'query', sql, params });
              return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
            },
            exec: async (sql: string) => {
              await s.request({ op: 'exec', sql });
            },
          });
        } catch (e) {
          await s.request({ op: 'rollback' }).catch(() => {});
          throw e;
        }
        await s.request({ op: 'commit' });
        return out;
      } finally {
        s.close();
      }
    },
    close: async () => main.close(),
  };
}

/** Where a server's admin socket and token live (for docs and tests). */
export const adminPaths = (dataDir: string) => ({
  dir: join(dataDir, ADMIN_DIR),
  token: join(dataDir, ADMIN_DIR, TOKEN_FILE),
  socket: join(dataDir, ADMIN_DIR, SOCKET_FILE),
});
