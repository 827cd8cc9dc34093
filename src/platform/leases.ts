import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Queryable } from './db.ts';

// A lease: the right, for a bounded time, to be the one process doing some work (the audit
// trail's signer). A row in platform.leases names the holder and when the lease expires; taking
// and renewing it is one compare-and-set statement, so of two processes asking at once exactly one
// wins. A holder that dies stops renewing and another takes the lease once it has expired; a
// holder that stops cleanly releases it, and the next one takes it at its next tick.
//
// Why a table and not a PostgreSQL advisory lock held on a session: a session lock needs one
// connection kept out of the pool for the life of the process (and does not exist on PGlite or
// through a transaction-pooling PgBouncer); a holder that hangs, or is cut off by the network
// without its socket closing, keeps a session lock until TCP gives up (minutes), while a lease
// ends at a known time whatever happened to the holder. Expiry is measured on the database's clock,
// never the replicas'.

export interface Lease {
  readonly name: string;
  /** Who this process is, as written in the lease row (host, pid and a random part). */
  readonly holder: string;
  /** Takes or renews the lease; true while this process holds it. Never throws on a conflict. */
  acquire(q: Queryable): Promise<boolean>;
  /** Gives the lease up (clean stop), so another process takes it at once. */
  release(q: Queryable): Promise<void>;
  /** True when the last acquire succeeded and the lease has not run out since (local clock). */
  held(): boolean;
}

export function processHolderId(): string {
  return `${hostname().slice(0, 60)}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

export function createLease(name: string, opts: { ttlSeconds: number; holder?: string }): Lease {
  const holder = opts.holder ?? processHolderId();
  // Held until this local time: the lease's length counted from before the statement was sent,
  // so a slow round trip only shortens what we believe we hold.
  let heldUntil = 0;
  return {
    name,
    holder,
    async acquire(q) {
      const asked = performance.now();
      const r = await q.query<{ holder: string }>(
        `INSERT INTO platform.leases AS l (name, holder, acquired_at, renewed_at, expires_at)
         VALUES ($1, $2, clock_timestamp(), clock_timestamp(), clock_timestamp() + make_interval(secs => $3))
         ON CONFLICT (name) DO UPDATE
            SET holder = EXCLUDED.holder,
                acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
                renewed_at = EXCLUDED.renewed_at,
                expires_at = EXCLUDED.expires_at
          WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
         RETURNING holder`,
        [name, holder, opts.ttlSeconds],
      );
      heldUntil = r.rows.length === 1 ? asked + opts.ttlSeconds * 1000 : 0;
      return heldUntil > 0;
    },
    async release(q) {
      heldUntil = 0;
      await q.query(`DELETE FROM platform.leases WHERE name = $1 AND holder = $2`, [name, holder]);
    },
    held: () => performance.now() < heldUntil,
  };
}
