import { createTestDb } from '../src/platform/testing.ts';
import pg from 'pg';
import { movePendingMany } from '../src/modules/payments/payments.repo.ts';

const base = await createTestDb();
const db = base;
let seq = 0;
async function insertPayments(n: number, status: string): Promise<string[]> {
  const first = seq; seq += n;
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status, bank_code, expires_at)
     SELECT 'pay_plan_' || lpad(g::text, 8, '0'), 'TPLAN' || g, 'mer_plan', 'sto_plan', 'ter_plan_' || (g % 50), 'upi_qr', 100, 'INR', $3, 'SIMBANK', now() + interval '10 minutes'
       FROM generate_series($1::int, $2::int) g RETURNING id`, [first, first + n - 1, status]);
  return rows.map((r) => r.id);
}
await db.query(`INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ('mer_plan','M','m@x','5411','SIMBANK') ON CONFLICT DO NOTHING`).catch((e) => console.log('m', e.message));
await db.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ('sto_plan','mer_plan','S') ON CONFLICT DO NOTHING`).catch((e) => console.log('s', e.message));
for (let i = 0; i < 50; i++) await db.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1,'mer_plan','sto_plan') ON CONFLICT DO NOTHING`, ['ter_plan_' + i]).catch((e) => console.log('t', e.message));
await insertPayments(20000, 'succeeded');
const open = await insertPayments(400, 'created');
await db.query('ANALYZE payments.payments');
// Grab the SQL text the repo sends: capture it through a fake Queryable.
let captured: { sql: string; params: unknown[] } | undefined;
const fake = { query: async (sql: string, params: unknown[]) => { captured = { sql, params }; return { rows: [], rowCount: 0 }; } } as any;
const c = new pg.Client({ connectionString: base.url });
await c.connect();
const move = (id: string) => ({ id, bank_ref: null, next_check_at: new Date(Date.now() + 60000), detail: null, now: new Date(), traceparent: null, bankAnswered: true });
let k = 0;
for (let i = 0; i < 40; i++) {
  await movePendingMany(fake, [move(open[k++]), move(open[k++])]);
  const t0 = performance.now();
  await c.query({ name: 'mv', text: captured!.sql, values: captured!.params });
  if (i % 10 === 9) console.log('call', i + 1, (performance.now() - t0).toFixed(2), 'ms');
}
console.log((await c.query(`SELECT name, generic_plans, custom_plans FROM pg_prepared_statements`)).rows);
await c.query(`SET plan_cache_mode = force_generic_plan`);
await c.query({ name: 'mv2', text: captured!.sql + ' ', values: captured!.params.map((x) => x) }).catch((e) => console.log(e.message));
await c.end();
await base.close();
