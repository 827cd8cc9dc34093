import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createPgDb, createPgliteDb, type Db, type Queryable } from './db.ts';
import { listMigrations, migrate } from './migrate.ts';

// Test databases: PGlite in memory by default; with TEST_DATABASE_URL set (as .ci/run sets it),
// a fresh database on that real PostgreSQL server for each call, dropped on close.
//
// Every call still gets a database of its own, but none pays for initdb and the migrations any
// more: those ran once into a template, and each test database is a copy of it. Starting PGlite
// from a dumped data directory costs about a third of the CPU of initdb + migrate (docs/testing.md),
// and a PostgreSQL database copied from a migrated TEMPLATE skips the migrations' DDL. The
// template's name carries a digest of the migrations (and of PGlite's version), so a new or edited
// migration makes a new template, never a stale one.

export const usingRealPostgres = () => Boolean(process.env.TEST_DATABASE_URL);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE_DIR = join(ROOT, 'node_modules/.cache/tillpoint-tests');

function templateKey(migrated: boolean): string {
  const h = createHash('sha256');
  const pgliteVersion = (
    JSON.parse(readFileSync(join(ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  h.update(`pglite ${pgliteVersion}\n`);
  h.update('template: without template0 and template1, shared_buffers 16MB\n'); // see pgliteTemplate()
  if (migrated) for (const m of listMigrations()) h.update(`${m.name}\n${m.sql}\n`);
  return `${migrated ? 'migrated' : 'empty'}-${h.digest('hex').slice(0, 16)}`;
}

// One template per process and kind, read from the cache directory, or made (and written there
// for the next process) when it is missing. Written to a temporary name and renamed, so two
// processes making it at once each write a whole file and a reader never sees half of one.
const pgliteTemplates = new Map<string, Promise<Blob>>();

function pgliteTemplate(migrated: boolean): Promise<Blob> {
  const key = templateKey(migrated);
  let t = pgliteTemplates.get(key);
  if (!t) {
    t = (async () => {
      const file = join(CACHE_DIR, `pglite-${key}.tar`);
      try {
        return new Blob([readFileSync(file)]);
      } catch {
        /* not made yet */
      }
      const db = await createPgliteDb();
      try {
        if (migrated) await migrate(db);
        // The tests use the database `postgres` only; template0 and template1 were a third of the
        // tar each and every test database paid to unpack them: 0.65 s of CPU per PGlite test
        // database instead of 0.85-0.98 s (docs/testing.md). A test database made from this
        // template cannot CREATE DATABASE, which no test does on PGlite.
        await db.exec(
          "UPDATE pg_database SET datistemplate = false, datallowconn = false WHERE datname IN ('template0', 'template1')",
        );
        await db.exec('DROP DATABASE template0');
        await db.exec('DROP DATABASE template1');
        // PostgreSQL's default 128 MB of shared buffers is memory every test database's start
        // allocated and cleared in WebAssembly (0.2-0.3 s of CPU each); a test database holds a few
        // megabytes, and with PGlite every "disk" read is a read from memory anyway. Test databases
        // only: a PGlite data directory of the platform's own keeps PostgreSQL's default.
        await db.exec("ALTER SYSTEM SET shared_buffers = '16MB'");
        await db.exec('CHECKPOINT');
        const blob = await db.dumpDataDir();
        mkdirSync(CACHE_DIR, { recursive: true });
        const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
        writeFileSync(tmp, Buffer.from(await blob.arrayBuffer()));
        renameSync(tmp, file);
        return blob;
      } finally {
        await db.close();
      }
    })();
    pgliteTemplates.set(key, t);
    t.catch(() => pgliteTemplates.delete(key));
  }
  return t;
}

const pgTemplates = new Map<string, Promise<string>>();
const TEMPLATE_LOCK = 7_341_922_002; // arbitrary, fixed: "tillpoint test templates"

/** The name of a migrated template database on the server at `base`, made once per server and migrations. */
function pgTemplate(base: string): Promise<string> {
  const name = `tp_tpl_${templateKey(true).replace(/^migrated-/, '')}`;
  let t = pgTemplates.get(name);
  if (!t) {
    t = (async () => {
      const admin = new pg.Client({ connectionString: base });
      await admin.connect();
      try {
        // Test processes start side by side: one makes the template, the others wait for it.
        await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK]);
        const have = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        if (have.rowCount === 0) {
          const building = `${name}_${randomBytes(3).toString('hex')}`;
          await admin.query(`CREATE DATABASE ${building}`);
          const url = new URL(base);
          url.pathname = `/${building}`;
          const db = createPgDb(url.toString(), 1);
          try {
            await migrate(db);
          } finally {
            await db.close();
          }
          // Renamed only once migrated: a template by that name is always complete.
          await admin.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
        }
      } finally {
        await admin.query('SELECT pg_advisory_unlock($1)', [TEMPLATE_LOCK]).catch(() => {});
        await admin.end();
      }
      return name;
    })();
    pgTemplates.set(name, t);
    t.catch(() => pgTemplates.delete(name));
  }
  return t;
}

/**
 * A PGlite database from the template, on PGlite whatever TEST_DATABASE_URL says: for the tests
 * that are about PGlite itself (the embedded admin socket) or that hand a PGlite data directory to
 * the commands they run (`dataDir`: the template is unpacked into that directory, as a first start
 * would have made it, without paying for initdb). Migrated unless `migrate: false`.
 */
export async function createPgliteTestDb(opts: { dataDir?: string; migrate?: boolean } = {}) {
  return createPgliteDb(opts.dataDir, { loadDataDir: await pgliteTemplate(opts.migrate !== false) });
}

export async function createTestDb(opts: { migrate?: boolean } = {}): Promise<Db & { url?: string }> {
  const base = process.env.TEST_DATABASE_URL;
  const migrated = opts.migrate !== false;
  if (!base) return createPgliteDb(undefined, { loadDataDir: await pgliteTemplate(migrated) });
  const template = migrated ? await pgTemplate(base) : undefined;
  const name = `tp_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  const inner = createPgDb(url.toString(), 20);
  return {
    ...inner,
    url: url.toString(),
    async close() {
      await inner.close();
      const a = new pg.Client({ connectionString: base });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/**
 * One test database for the tests of a file or a describe block: made in a before() hook, closed
 * in an after() hook. The object stands for the database from the first test on (calling it
 * outside a test, at import or in describe's body, throws), so a test file needs no `let db` and
 * no hooks of its own.
 */
export function useTestDb(opts: { migrate?: boolean } = {}): Db & { readonly url?: string } {
  let inner: (Db & { url?: string }) | undefined;
  before(async () => {
    inner = await createTestDb(opts);
  });
  after(async () => {
    await inner?.close();
    inner = undefined;
  });
  const db = () => {
    if (!inner) throw new Error('useTestDb(): the database exists only while the tests run');
    return inner;
  };
  return {
    get driver() {
      return db().driver;
    },
    get url() {
      return db().url;
    },
    query: (sql, params, opts) => db().query(sql, params, opts),
    exec: (sql) => db().exec(sql),
    tx: (fn) => db().tx(fn),
    close: () => db().close(),
  };
}

/**
 * `real`, with every statement it is sent (BEGIN and COMMIT included) noted in `sent` (its first
 * `width` characters, whitespace folded): for tests that count a path's round trips.
 */
export function countingDb(real: Db, sent: string[], width = 60): Db {
  const counting = (q: Queryable): Queryable => ({
    query: (sql, params, opts) => {
      sent.push(sql.replace(/\s+/g, ' ').trim().slice(0, width));
      return q.query(sql, params, opts);
    },
    exec: (sql) => q.exec(sql),
  });
  return {
    ...counting(real),
    driver: real.driver,
    close: () => real.close(),
    tx: (fn) =>
      real.tx(async (tx) => {
        sent.push('BEGIN');
        const v = await fn(counting(tx));
        sent.push('COMMIT');
        return v;
      }),
  };
}
