import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from '../../../../test/helpers/harness.ts';
import type { Db } from '../../../platform/db.ts';
import { createLogger } from '../../../platform/log.ts';
import { createRequestHandler } from './handlers.ts';

// Every request but payment.create checks that its terminal is still active. The checks of
// requests that arrive together share one read of merchants.terminals (the platform's batcher):
// each request still gets its own terminal's answer, a disabled or unknown terminal is refused
// whatever else is in the batch, and nothing is cached (a terminal disabled between two requests
// is refused on the second).

describe('terminal status checks', { timeout: 60_000 }, () => {
  let t: TestApp;
  let merchantId: string;
  let storeId: string;
  before(async () => {
    t = await startTestApp();
    const s = await t.seedMerchant('Kirana on Status Street');
    merchantId = s.merchant.id;
    storeId = s.store.id;
  });
  after(async () => t.close());

  async function newTerminal(): Promise<string> {
    const r = await t.request('POST', '/v1/terminals', { store_id: storeId, label: 'Till' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id;
  }
  const disable = async (id: string) =>
    assert.equal((await t.request('PATCH', `/v1/terminals/${id}`, { status: 'disabled' })).status, 200);

  /** The app's database, counting the statements that read merchants.terminals. */
  function counting(db: Db) {
    const seen = { terminalReads: 0 };
    const q: Db = {
      ...db,
      driver: db.driver,
      query: (sql, params, opts) => {
        if (/FROM merchants\.terminals/.test(sql)) seen.terminalReads++;
        return db.query(sql, params, opts);
      },
      tx: (fn) => db.tx(fn),
      exec: (sql) => db.exec(sql),
      close: () => db.close(),
    };
    return { db: q, seen };
  }

  const ping = (id: number) => Buffer.from(JSON.stringify({ v: 1, id: `p-${id}`, type: 'ping', body: {} }));

  test('requests that arrive together share one status read, each answered for its own terminal', async () => {
    const active = await Promise.all(Array.from({ length: 12 }, () => newTerminal()));
    const disabled = await newTerminal();
    await disable(disabled);
    const unknown = 'trm_0000000000000000000000000000dead';
    const { db, seen } = counting(t.db);
    const handler = createRequestHandler({
      db,
      payments: t.app.services.payments,
      audit: t.app.services.audit,
      logger: createLogger({ level: 'silent' }),
      maxPayloadBytes: 16 * 1024,
    });

    const who = [...active, disabled, unknown, active[0]];
    const out = await Promise.all(who.map((id, i) => handler.handle(id, ping(i), { merchantId })));

    for (const [i, id] of who.entries()) {
      const msg = JSON.parse(out[i].response!);
      assert.equal(msg.id, `p-${i}`);
      if (id === disabled) assert.equal(msg.error?.code, 'terminal_inactive', JSON.stringify(msg));
      else if (id === unknown) assert.equal(msg.error?.code, 'terminal_not_found', JSON.stringify(msg));
      else {
        assert.equal(msg.ok, true, JSON.stringify(msg));
        assert.equal(msg.body.terminal_id, id);
      }
    }
    // 15 requests from 14 terminals: one read (two if the first flush had already begun).
    assert.ok(seen.terminalReads <= 2, `${seen.terminalReads} reads of merchants.terminals`);

    // Not cached: a terminal disabled after its answer is refused on its next request.
    await disable(active[1]);
    const again = JSON.parse((await handler.handle(active[1], ping(99), { merchantId })).response!);
    assert.equal(again.error?.code, 'terminal_inactive');
  });

  test('a failed read refuses the requests in it and the next ones are read again', async () => {
    const id = await newTerminal();
    let fail = true;
    const { db } = counting(t.db);
    const flaky: Db = {
      ...db,
      query: (sql, params, opts) => {
        if (fail && /FROM merchants\.terminals/.test(sql)) return Promise.reject(new Error('connection reset'));
        return db.query(sql, params, opts);
      },
    };
    const handler = createRequestHandler({
      db: flaky,
      payments: t.app.services.payments,
      audit: t.app.services.audit,
      logger: createLogger({ level: 'silent' }),
      maxPayloadBytes: 16 * 1024,
    });
    const first = JSON.parse((await handler.handle(id, ping(1), { merchantId })).response!);
    assert.equal(first.ok, false);
    assert.equal(first.error.code, 'internal_error');
    fail = false;
    const second = JSON.parse((await handler.handle(id, ping(2), { merchantId })).response!);
    assert.equal(second.ok, true, JSON.stringify(second));
  });
});
