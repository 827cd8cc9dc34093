import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../../platform/testing.ts';
import { fixedClock } from '../../platform/clock.ts';
import { loadConfig } from '../../config.ts';
import { createMetrics } from '../../metrics.ts';
import { createLogger } from '../../platform/log.ts';
import { newId } from '../../platform/ids.ts';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Principal } from '../../platform/principal.ts';
import { createLedgerService } from '../ledger/index.ts';
import type { BankConnector } from '../banks/index.ts';
import { createTestVault } from '../vault/index.ts';
import { createPaymentsService } from './payments.service.ts';
import { PAYER_VPA_FIELD } from './payments.fields.ts';

// The SQL round trips of the payment path, counted (BEGIN and COMMIT included). The deliberate
// exceptions in docs/architecture.md exist for these numbers (bench/PROFILE.md, "Round 2"): a
// change that makes them grow should be measured with `npm run bench:payments` first. A count,
// not a timing: the figures themselves live in the benchmark.

test('a QR create is 3 round trips and the bank\'s "paid" callback 4', async () => {
  const real = await createTestDb();
  try {
    const sent: string[] = [];
    const counting = (q: Queryable): Queryable => ({
      query: (sql, params) => {
        sent.push(sql.replace(/\s+/g, ' ').trim().slice(0, 60));
        return q.query(sql, params);
      },
      exec: (sql) => q.exec(sql),
    });
    const db: Db = {
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
    const [m, s, t] = [newId('merchant'), newId('store'), newId('terminal')];
    await real.query(
      `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'R', 'r@simbank', '5411', 'SIMBANK')`,
      [m],
    );
    await real.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'S')`, [s, m]);
    await real.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1, $2, $3)`, [t, m, s]);
    const connector: BankConnector = {
      code: 'SIMBANK',
      registerIntent: async () => ({ bankRef: 'BR' }),
      sendCollect: async () => ({ outcome: 'pending', responseCode: '01' }),
      checkStatus: async () => ({ outcome: 'pending', responseCode: '01' }),
      refund: async () => ({ outcome: 'success', responseCode: '00' }),
      checkRefundStatus: async () => ({ outcome: 'pending', responseCode: '01' }),
      parseCallback: () => {
        throw new Error('unused');
      },
    };
    const svc = createPaymentsService({
      db,
      ledger: createLedgerService(),
      banks: { route: async () => connector, connector: () => connector },
      config: loadConfig({ NODE_ENV: 'test' }),
      metrics: createMetrics(),
      clock: fixedClock('2026-01-01T00:00:00Z'),
      logger: createLogger({ level: 'silent' }),
      payerVpa: (await createTestVault(real, { fields: [PAYER_VPA_FIELD] })).cipher,
    });
    const principal: Principal = { kind: 'api_key', id: 'key_r', merchantId: null, permissions: new Set() };
    for (let i = 0; i < 2; i++) {
      sent.length = 0;
      const p = await svc.create(principal, { terminal_id: t, amount: 1000, currency: 'INR', method: 'upi_qr' });
      // The context read (terminal, merchant, banks down), the insert (payment, history, audit), created -> pending.
      assert.equal(sent.length, 3, sent.join('\n'));
      assert.equal(p.status, 'pending');
      sent.length = 0;
      await svc.handleCallback('SIMBANK', {
        kind: 'payment',
        ref: p.txn_ref,
        result: { outcome: 'success', responseCode: '00', amountPaise: 1000 },
      });
      // The compare-and-set by txnRef (status, history, outbox) and the ledger entry, in one transaction.
      assert.equal(sent.length, 4, sent.join('\n'));
      assert.equal((await svc.get(principal, p.id)).status, 'succeeded');
    }
  } finally {
    await real.close();
  }
});
