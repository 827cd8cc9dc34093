import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPgDb, createPgliteDb, type Db } from './db.ts';
import { migrate } from './migrate.ts';

// Test databases: PGlite in memory by default; with TEST_DATABASE_URL set (as .ci/run sets it),
// a fresh database on that real PostgreSQL server for each call, dropped on close.

export const usingRealPostgres = () => Boolean(process.env.TEST_DATABASE_URL);

export async function createTestDb(opts: { migrate?: boolean } = {}): Promise<Db & { url?: string }> {
  const base = process.env.TEST_DATABASE_URL;
  let db: Db & { url?: string };
  if (!base) {
    db = await createPgliteDb();
  } else {
    const name = `tp_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(base);
    url.pathname = `/${name}`;
    const inner = createPgDb(url.toString(), 20);
    db = {
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
  if (opts.migrate !== false) await migrate(db);
  return db;
}
