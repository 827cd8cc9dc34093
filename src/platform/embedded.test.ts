import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgliteTestDb } from './testing.ts';
import {
  acquireLock,
  connectToOwner,
  EmbeddedDbBusyError,
  LOCK_FILE,
  lockHolderAlive,
  readLock,
  serveAdminSocket,
  type LockInfo,
} from './embedded.ts';

// The lock that gives an embedded data directory one owner, and the admin socket through which
// other processes use the owner's database (src/platform/embedded.ts). Across real processes:
// test/embedded.test.ts.

const dir = () => mkdtempSync(join(tmpdir(), 'tp-lock-'));
const lockOf = (pid: number, extra: Partial<LockInfo> = {}): LockInfo => ({
  pid,
  proc_start: null,
  command: 'serve --role all',
  started_at: new Date().toISOString(),
  server: true,
  socket: null,
  ...extra,
});

describe('the data directory lock', () => {
  test('refuses while the owner lives, naming its PID; released on close', async () => {
    const d = dir();
    writeFileSync(join(d, LOCK_FILE), JSON.stringify(lockOf(process.ppid))); // our parent: alive, not us
    await assert.rejects(
      acquireLock(d, 'ledger verify', false),
      (e: unknown) =>
        e instanceof EmbeddedDbBusyError &&
        e.message.includes(`in use by process ${process.ppid}`) &&
        /Only one server/.test(e.message),
    );
    assert.equal(readLock(d)!.pid, process.ppid, "the live owner's lock is untouched");
  });

  test('a lock whose process is gone, or whose PID now belongs to another process, is taken over', async () => {
    const d = dir();
    writeFileSync(join(d, LOCK_FILE), JSON.stringify(lockOf(2 ** 22 + 12345))); // no such PID
    const l = await acquireLock(d, 'migrate', false);
    assert.equal(readLock(d)!.pid, process.pid);
    assert.equal(readLock(d)!.command, 'migrate');
    await assert.rejects(acquireLock(d, 'again', false), EmbeddedDbBusyError, 'one owner per process too');
    l.release();
    assert.ok(!existsSync(join(d, LOCK_FILE)));

    if (existsSync(`/proc/${process.ppid}/stat`)) {
      // The parent is alive, but started at another time than the lock says: a reused PID.
      assert.equal(lockHolderAlive(lockOf(process.ppid, { proc_start: '1' })), false);
      writeFileSync(join(d, LOCK_FILE), JSON.stringify(lockOf(process.ppid, { proc_start: '1' })));
      (await acquireLock(d, 'x', false)).release();
    }
    // Our own PID in a lock we do not hold: a restarted container's PID 1, say.
    assert.equal(lockHolderAlive(lockOf(process.pid)), false);
  });

  test('a torn lock file (crash mid-write) is stale once it is old', async () => {
    const d = dir();
    writeFileSync(join(d, LOCK_FILE), '{"pid":');
    const { utimesSync } = await import('node:fs');
    utimesSync(join(d, LOCK_FILE), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    (await acquireLock(d, 'x', false)).release();
  });
});

describe('the admin socket', () => {
  test("statements and transactions run on the owner's database; values keep their types; errors keep their SQLSTATE", async () => {
    const d = dir();
    const owner = await createPgliteTestDb({ migrate: false });
    const lock = await acquireLock(d, 'serve --role all', true);
    const admin = await serveAdminSocket(owner, d);
    lock.setSocket(admin.socket);
    const client = await connectToOwner(d, readLock(d)!);
    try {
      await client.exec(`CREATE TABLE t (id int PRIMARY KEY, b bytea, at timestamptz, j jsonb, n bigint)`);
      const at = new Date('2026-01-02T03:04:05.678Z');
      await client.query(`INSERT INTO t VALUES (1, $1, $2, $3, $4)`, [
        Buffer.from([0, 1, 255]),
        at,
        JSON.stringify({ a: [1, 'x'] }),
        9_007_199_254_740_991,
      ]);
      const row = (await owner.query<any>(`SELECT * FROM t`)).rows[0];
      assert.deepEqual([...row.b], [0, 1, 255]);
      const back = (await client.query<any>(`SELECT * FROM t`)).rows[0];
      assert.deepEqual([...back.b], [0, 1, 255]);
      assert.equal(back.at.toISOString(), at.toISOString());
      assert.deepEqual(back.j, { a: [1, 'x'] });
      assert.equal(back.n, 9_007_199_254_740_991);

      await assert.rejects(
        client.query(`INSERT INTO t (id) VALUES (1)`),
        (e: any) => e.code === '23505' && e.constraint === 't_pkey',
      );

      // Committed work is the owner's at once; a failed transaction leaves nothing.
      assert.equal(await client.tx(async (tx) => (await tx.query(`INSERT INTO t (id) VALUES (2)`)).rowCount), 1);
      await assert.rejects(
        client.tx(async (tx) => {
          await tx.query(`INSERT INTO t (id) VALUES (3)`);
          throw new Error('changed my mind');
        }),
        /changed my mind/,
      );
      assert.deepEqual(
        (await owner.query<{ id: number }>(`SELECT id FROM t ORDER BY id`)).rows.map((r) => r.id),
        [1, 2],
      );

      // The owner's own work waits for a command's open transaction, and goes on after it.
      let release!: () => void;
      const held = client.tx(async (tx) => {
        await tx.query(`INSERT INTO t (id) VALUES (4)`);
        await new Promise<void>((r) => (release = r));
      });
      // Until the command's transaction holds (a fixed 100 ms was not always enough on a loaded machine).
      while (!release) await new Promise((r) => setTimeout(r, 10));
      const ownerWrite = owner.query(`INSERT INTO t (id) VALUES (5)`);
      release();
      await held;
      await ownerWrite;
      assert.deepEqual(
        (await owner.query<{ id: number }>(`SELECT id FROM t ORDER BY id`)).rows.map((r) => r.id),
        [1, 2, 4, 5],
      );
    } finally {
      await client.close();
      await admin.close();
      await owner.close();
      lock.release();
    }
  });

  test('a wrong token is refused; the socket and token are owner-only', async () => {
    const d = dir();
    const owner = await createPgliteTestDb({ migrate: false });
    const admin = await serveAdminSocket(owner, d);
    try {
      const { statSync } = await import('node:fs');
      assert.equal(statSync(admin.socket).mode & 0o777, 0o600);
      assert.equal(statSync(join(d, 'admin', 'token')).mode & 0o777, 0o600);
      writeFileSync(join(d, 'admin', 'token'), 'not-the-token\n');
      const client = await connectToOwner(d, lockOf(process.ppid, { socket: admin.socket }));
      await assert.rejects(client.query('SELECT 1'), /bad token/);
      await client.close();
    } finally {
      await admin.close();
      await owner.close();
    }
    assert.ok(!existsSync(join(d, 'admin', 'token')) && !existsSync(admin.socket), 'closing removes socket and token');
  });
});
