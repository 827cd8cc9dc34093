// bench:audit — what the audit trail and operator security cost. Run against a real
// PostgreSQL: TEST_DATABASE_URL=postgres://… npm run bench:audit (a fresh database is made
// and dropped on it; without the variable PGlite is used and the numbers mean little).
//   1. argon2id hash and verify at the production cost (19 MiB, 2 passes);
//   2. one-row business transactions per second, without and with an audit record in them;
//   3. sealing (leaf + tree nodes) and `audit verify` throughput, records per second.
import { randomBytes } from 'node:crypto';
import { createTestDb, usingRealPostgres } from '../src/platform/testing.ts';
import { systemClock } from '../src/platform/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/platform/log.ts';
import { auditKeysFromSeed, createAuditService } from '../src/modules/audit/index.ts';
import { hashPassword, verifyPassword } from '../src/modules/identity/index.ts';
import { headerUsage } from './lib/usage.ts';

if (process.argv.includes('--help')) {
  process.stdout.write(headerUsage(import.meta.url));
  process.exit(0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(label: string, seconds: number, clients: number, fn: () => Promise<void>) {
  const end = Date.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < end) {
        await fn();
        n++;
      }
    }),
  );
  const rate = n / seconds;
  console.log(`${label.padEnd(48)} ${rate.toFixed(0).padStart(7)} /s  (${clients} clients, ${seconds} s)`);
  return rate;
}

const db = await createTestDb();
try {
  console.log(
    `database: ${usingRealPostgres() ? 'PostgreSQL (TEST_DATABASE_URL)' : 'PGlite (set TEST_DATABASE_URL for real numbers)'}`,
  );
  const cost = { memoryKib: 19_456, timeCost: 2 };
  const hashes: number[] = [];
  const verifies: number[] = [];
  let h = '';
  for (let i = 0; i < 15; i++) {
    let t = performance.now();
    h = await hashPassword(`bench-password-${i}x`, cost);
    hashes.push(performance.now() - t);
    t = performance.now();
    await verifyPassword(h, `bench-password-${i}x`);
    verifies.push(performance.now() - t);
  }
  console.log(
    `argon2id 19 MiB, t=2: hash median ${median(hashes).toFixed(1)} ms, verify median ${median(verifies).toFixed(1)} ms (15 runs)`,
  );

  const config = loadConfig({ NODE_ENV: 'test', AUDIT_EXPORT: 'off' });
  const audit = createAuditService({
    db,
    config,
    clock: systemClock,
    logger: createLogger({ level: 'silent' }),
    keys: auditKeysFromSeed(randomBytes(32)),
    store: null,
  });
  await db.exec(`CREATE TABLE public.bench_changes (id bigserial PRIMARY KEY, v text NOT NULL)`);
  const clients = usingRealPostgres() ? 8 : 1;
  const plain = await timed('transactions, one change', 5, clients, async () => {
    await db.tx(async (tx) => {
      await tx.query(`INSERT INTO public.bench_changes (v) VALUES ($1)`, ['x']);
    });
  });
  const withAudit = await timed('transactions, one change + its audit record', 5, clients, async () => {
    await db.tx(async (tx) => {
      await tx.query(`INSERT INTO public.bench_changes (v) VALUES ($1)`, ['x']);
      await audit.record(tx, {
        action: 'merchant.updated',
        resource: { type: 'merchant', id: 'mer_bench', merchant_id: 'mer_bench' },
        details: { fields: ['name'] },
      });
    });
  });
  console.log(`audit record overhead: ${((1 - withAudit / plain) * 100).toFixed(1)}% fewer transactions per second`);

  const total = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit.events`)).rows[0].n;
  let t = performance.now();
  let sealed = 0;
  for (;;) {
    const r = await audit.seal();
    sealed += r.sealed;
    if (r.sealed === 0) break;
  }
  const sealMs = performance.now() - t;
  await audit.signHead(true);
  console.log(
    `sealing: ${sealed} of ${total} records in ${(sealMs / 1000).toFixed(2)} s = ${(sealed / (sealMs / 1000)).toFixed(0)} records/s`,
  );
  t = performance.now();
  const v = await audit.verify();
  const vMs = performance.now() - t;
  console.log(
    `audit verify: ${v.records_checked} records in ${(vMs / 1000).toFixed(2)} s = ${(v.records_checked / (vMs / 1000)).toFixed(0)} records/s, ok=${v.ok}`,
  );
} finally {
  await db.close();
}
