import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, statSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import pg from 'pg';
import 'reflect-metadata';
import { X509Crl } from '@peculiar/x509';
import { createPgDb, type Db } from '../src/platform/db.ts';
import { createPgliteTestDb } from '../src/platform/testing.ts';
import { migrate } from '../src/platform/migrate.ts';
import { newId } from '../src/platform/ids.ts';

// The pki and terminals commands as an operator runs them: `tillpoint pki init`, `terminals
// enroll`, `terminals revoke`, `pki crl`, against PGlite in a data directory or a fresh database
// on the PostgreSQL at TEST_DATABASE_URL.

const BIN = join(import.meta.dirname, '..', 'bin', 'tillpoint.mjs');
const cli = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'development', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });

async function database(dataDir: string): Promise<{ db: Db; env: Record<string, string>; drop(): Promise<void> }> {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) {
    const db = await createPgliteTestDb({ dataDir: join(dataDir, 'pglite') });
    return { db, env: { DATABASE_URL: '' }, drop: async () => {} };
  }
  const name = `tp_cli_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(base);
  u.pathname = `/${name}`;
  return {
    db: createPgDb(u.toString(), 2),
    env: { DATABASE_URL: u.toString() },
    async drop() {
      const a = new pg.Client({ connectionString: base });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

test('pki init, terminals enroll, revoke and the CRL, from the command line', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tp-cli-'));
  const { db, env: dbEnv, drop } = await database(dataDir);
  const terminalId = newId('terminal');
  try {
    await migrate(db);
    const m = newId('merchant');
    const s = newId('store');
    await db.query(
      `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'CLI Store', $2, '5411', 'SIMBANK')`,
      [m, `cli${randomBytes(3).toString('hex')}@simbank`],
    );
    await db.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'Main')`, [s, m]);
    await db.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1, $2, $3)`, [
      terminalId,
      m,
      s,
    ]);
  } finally {
    await db.close(); // PGlite: one process at a time on a data directory
  }
  const env = { TILLPOINT_DATA_DIR: dataDir, ...dbEnv };
  try {
    const init = cli(['pki', 'init', '--hostnames', 'gw.local,127.0.0.1'], env);
    assert.equal(init.status, 0, init.stderr);
    assert.equal(statSync(join(dataDir, 'pki', 'ca.key')).mode & 0o777, 0o600);
    assert.match(init.stderr, /Keep .*ca\.key secret/);

    const out = join(dataDir, 'bundle');
    const enroll = cli(['terminals', 'enroll', terminalId, '--out', out, '--days', '30'], env);
    assert.equal(enroll.status, 0, enroll.stderr);
    const result = JSON.parse(enroll.stdout);
    assert.equal(result.terminal_id, terminalId);
    for (const f of ['client.crt', 'client.key', 'ca.crt', 'terminal.json']) assert.ok(existsSync(join(out, f)), f);
    assert.equal(statSync(join(out, 'client.key')).mode & 0o777, 0o600);
    const cert = new X509Certificate(readFileSync(join(out, 'client.crt')));
    assert.equal(cert.subject, `CN=${terminalId}`);
    assert.equal(cert.serialNumber.toLowerCase(), result.serial);

    const bad = cli(['terminals', 'enroll', 'trm_nope'], env);
    assert.equal(bad.status, 2, 'a malformed id is a usage error');
    assert.match(bad.stderr, /terminal_id/);

    const revoke = cli(['terminals', 'revoke', terminalId, '--reason', 'lost'], env);
    assert.equal(revoke.status, 0, revoke.stderr);
    assert.deepEqual(JSON.parse(revoke.stdout).revoked_certificates, [result.serial]);

    const crl = cli(['pki', 'crl'], env);
    assert.equal(crl.status, 0, crl.stderr);
    const parsed = new X509Crl(crl.stdout);
    assert.deepEqual(
      parsed.entries.map((e) => e.serialNumber.toLowerCase()),
      [result.serial],
    );
  } finally {
    await drop();
  }
});
