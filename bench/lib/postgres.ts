import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort } from '../../src/platform/freePort.ts';

// The PostgreSQL a benchmark runs against: the server at DATABASE_URL, or a throwaway cluster
// made with initdb/pg_ctl from /usr/lib/postgresql/<version>/bin. Either way the benchmark
// works in a database of its own (created here, dropped at the end), so pgbench's tables and
// the payments it makes never land in someone's real database.

export interface BenchPostgres {
  /** Connection string of the benchmark's own database. */
  url: string;
  source: 'throwaway' | 'DATABASE_URL';
  /** Directory with pgbench (and initdb, pg_ctl for a throwaway cluster), when found. */
  binDir?: string;
  /** server_version, fsync, synchronous_commit, … as the server reports them. */
  settings: Record<string, string>;
  /** Drops the benchmark database; stops and deletes a throwaway cluster. */
  stop(opts?: { keep?: boolean }): Promise<void>;
}

/** Settings reported with every result: durability must be visibly on. */
const REPORTED = [
  'server_version',
  'fsync',
  'synchronous_commit',
  'full_page_writes',
  'wal_sync_method',
  'shared_buffers',
  'max_connections',
];

/** The newest /usr/lib/postgresql/<version>/bin that has initdb, or undefined. */
export function findPgBinDir(root = '/usr/lib/postgresql'): string | undefined {
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

function check(r: SpawnSyncReturns<string>, what: string): string {
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0)
    throw new Error(`${what} exited ${r.status}: ${(r.stderr || r.stdout || '').trim().slice(-2000)}`);
  return r.stdout;
}

/**
 * initdb refuses to run as root, so as root the cluster belongs to the `postgres` user that
 * Debian's packages create, and its commands run through runuser.
 */
export function asClusterOwner(dir: string): (cmd: string, args: string[]) => SpawnSyncReturns<string> {
  if (process.getuid?.() !== 0) return (cmd, args) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  const id = (flag: string) =>
    Number(
      check(
        spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }),
        'id postgres (is the postgres user there?)',
      ).trim(),
    );
  chownSync(dir, id('-u'), id('-g'));
  return (cmd, args) =>
    spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8', timeout: 120_000 });
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function readSettings(url: string): Promise<Record<string, string>> {
  return withClient(url, async (c) => {
    const r = await c.query<{ name: string; setting: string }>(
      `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY($1)`,
      [REPORTED],
    );
    return Object.fromEntries(r.rows.map((x) => [x.name, x.setting]));
  });
}

/** A fresh database on the server at `serverUrl`; returns its URL and a function that drops it. */
async function createBenchDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `tillpoint_bench_${randomBytes(4).toString('hex')}`;
  await withClient(serverUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: () =>
      withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

export async function startBenchPostgres(opts: {
  databaseUrl?: string;
  log: (s: string) => void;
  /** Libraries the throwaway cluster preloads (e.g. pg_stat_statements to count statements). */
  preload?: string[];
}): Promise<BenchPostgres> {
  const binDir = findPgBinDir();
  if (opts.databaseUrl) {
    const db = await createBenchDatabase(opts.databaseUrl);
    opts.log(`using the PostgreSQL at DATABASE_URL (benchmark database ${new URL(db.url).pathname.slice(1)})`);
    return {
      url: db.url,
      source: 'DATABASE_URL',
      binDir,
      settings: await readSettings(db.url),
      stop: async ({ keep = false } = {}) => {
        if (!keep) await db.drop();
      },
    };
  }
  if (!binDir) {
    throw new Error(
      'No PostgreSQL: set DATABASE_URL, or install the server so a throwaway cluster can be started ' +
        '(Debian/Ubuntu: apt-get install -y postgresql)',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'tillpoint-bench-pg-'));
  const run = asClusterOwner(dir);
  const data = join(dir, 'data');
  const port = await freePort();
  opts.log(`starting a throwaway PostgreSQL cluster in ${dir} (port ${port}, ${binDir})`);
  // --no-sync only skips initdb's own flush of the new files; the server below runs with
  // fsync and synchronous_commit on, as in production.
  check(
    run(join(binDir, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']),
    'initdb',
  );
  const serverOpts = [
    `-c port=${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${dir}`,
    '-c fsync=on',
    '-c synchronous_commit=on',
    '-c max_connections=300',
    '-c shared_buffers=256MB',
    ...(opts.preload?.length ? [`-c shared_preload_libraries=${opts.preload.join(',')}`] : []),
  ].join(' ');
  check(
    run(join(binDir, 'pg_ctl'), [
      '-D',
      data,
      '-l',
      join(dir, 'postgres.log'),
      '-w',
      '-t',
      '60',
      '-o',
      serverOpts,
      'start',
    ]),
    'pg_ctl start',
  );
  const serverUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const stopCluster = () => {
    run(join(binDir, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const db = await createBenchDatabase(serverUrl);
    return {
      url: db.url,
      source: 'throwaway',
      binDir,
      settings: await readSettings(db.url),
      stop: async ({ keep = false } = {}) => {
        if (keep) {
          opts.log(`kept the throwaway cluster: ${serverUrl} (stop it with ${join(binDir, 'pg_ctl')} -D ${data} stop)`);
          return;
        }
        stopCluster();
      },
    };
  } catch (e) {
    stopCluster();
    throw e;
  }
}

/** Asks the server to flush dirty pages now, so one phase's checkpoint does not land in the next. */
export async function checkpoint(url: string): Promise<void> {
  await withClient(url, (c) => c.query('CHECKPOINT')).catch(() => undefined);
}

/**
 * A checkpoint, then every dirty page of the machine written out (`sync`): what one phase wrote
 * stays out of the next phase's measurement. Without it, the ~180 MB a peak run leaves in the page
 * cache (PostgreSQL's files grown by it, the logs) is written back by the kernel 30 s after it was
 * dirtied (vm.dirty_expire_centisecs), in one burst that held the WAL's flushes for ~60 ms: inside
 * the half-peak run, which starts ~25 s after the peak does (bench/PROFILE.md, "Session 14").
 */
export async function settle(url: string): Promise<void> {
  await checkpoint(url);
  spawnSync('sync', { timeout: 60_000 });
}

export { withClient };
