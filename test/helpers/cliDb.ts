import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createPgliteDb, type Db } from '../../src/platform/db.ts';
import { createPgliteTestDb, createTestDb } from '../../src/platform/testing.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tillpoint.mjs');

/**
 * A database this test shares with `tillpoint` commands it runs as processes: a PGlite directory,
 * or a fresh database on the PostgreSQL at TEST_DATABASE_URL. PGlite is one process's database,
 * so a test writes, `done()`s (closes it), lets the command have it, then `open()`s it again; on
 * PostgreSQL both are no-ops. The first `open(true)` unpacks the migrated test template into the
 * data directory (no initdb). `env` is what the commands run with (`extraEnv` overrides it).
 */
export async function cliWithDb(prefix: string, extraEnv: Record<string, string> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    TILLPOINT_DATA_DIR: dataDir,
    AUDIT_SIGNING_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  const real = process.env.TEST_DATABASE_URL ? await createTestDb() : undefined;
  if (real) env.DATABASE_URL = real.url!;
  const open = async (first = false): Promise<Db> =>
    real ??
    (first
      ? await createPgliteTestDb({ dataDir: join(dataDir, 'pglite') })
      : await createPgliteDb(join(dataDir, 'pglite')));
  const done = async (db: Db) => {
    if (!real) await db.close();
  };
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 90_000 });
  /** Closes the PostgreSQL database, if there is one (a PGlite directory needs nothing). */
  const close = async () => {
    await real?.close();
  };
  return { dataDir, env, open, done, cli, close };
}

/**
 * A data directory whose PGlite database is the migrated test template (no initdb, no migrations:
 * about 5 s of CPU less in the first command or server started on it), for tests of processes
 * that are not about a first start. Tests about a first start (`processes`' npm start, `readme`,
 * `deploy.production`, `vault.cli`'s `migrate`) leave the directory empty on purpose.
 */
export async function dataDirFromTemplate(dataDir: string): Promise<string> {
  await (await createPgliteTestDb({ dataDir: join(dataDir, 'pglite') })).close();
  return dataDir;
}
