import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countingDb, createTestDb } from '../../platform/testing.ts';
import { fixedClock } from '../../platform/clock.ts';
import { loadConfig } from '../../config.ts';
import { createMetrics } from '../../metrics.ts';
import { createLogger } from '../../platform/log.ts';
import { newId } from '../../platform/ids.ts';
import type { Principal } from '../../platform/principal.ts';
import { createLedgerService, newJournalId } from '../ledger/index.ts';
import type { BankConnector } from '../banks/index.ts';
import { createTestVault } from '../vault/index.ts';
import { createPaymentsService } from './payments.service.ts';
import { completeSucceededMany, movePendingMany } from './payments.repo.ts';
import { paymentsLedgerSql } from './payments.apply.ts';
import { auditPaymentHooks } from './payments.audit.ts';
import { auditKeysFromSeed, createAuditWriter, verifyTrail } from '../audit/index.ts';
import { randomBytes } from 'node:crypto';
import { PAYER_VPA_FIELD } from './payments.fields.ts';
import type { PaymentHooks } from './payments.types.ts';
import type { ReplayGuard } from '../banks/index.ts';
import { AppError } from '../../platform/errors.ts';
import { rewardsWorld } from '../rewards/testkit.ts';

// The SQL round trips of the payment path, counted (BEGIN and COMMIT included). The deliberate
// exceptions in docs/architecture.md exist for these numbers (bench/PROFILE.md, "Round 2"): a
// change that makes them grow should be measured with `npm run bench:payments` first. A count,
// not a timing: the figures themselves live in the benchmark.

/** A callback's nonce as the banks module hands it to the handler; refuse() throws as it does (and counts). */
function replayGuard(nonce: string) {
  const g = {
    refused: 0,
    guard: {
      scope: 'bank:SIMBANK',
      nonce,
      at: new Date('2026-01-01T00:00:00Z'),
      refuse: async (): Promise<never> => {
        g.refused++;
        throw new AppError('replayed_request', 'replayed');
      },
    } satisfies ReplayGuard,
  };
  return g;
}

async function plainWorld(hooks: PaymentHooks[] = [], checkStatus?: BankConnector['checkStatus']) {
  const real = await createTestDb();
  const sent: string[] = [];
  const db = countingDb(real, sent);
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
    checkStatus: checkStatus ?? (async () => ({ outcome: 'pending', responseCode: '01' })),
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
    config: loadConfig({ NODE_ENV: 'test', STATUS_CHECK_FIRST_AFTER_SECONDS: '0' }),
    metrics: createMetrics(),
    clock: fixedClock('2026-01-01T00:00:00Z'),
    logger: createLogger({ level: 'silent' }),
    hooks,
    payerVpa: (await createTestVault(real, { fields: [PAYER_VPA_FIELD] })).cipher,
  });
  const principal: Principal = { kind: 'api_key', id: 'key_r', merchantId: null, permissions: new Set() };
  const create = () => svc.create(principal, { terminal_id: t, amount: 1000, currency: 'INR', method: 'upi_qr' });
  const count = async (sql: string, params: unknown[]) =>
    (await real.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) x`, params)).rows[0].n;
  return { real, sent, svc, principal, create, count };
}

test('a QR create is 2 round trips (3 the first time) and the bank\'s "paid" callback 1, its nonce included', async () => {
  const w = await plainWorld();
  try {
    for (let i = 0; i < 3; i++) {
      w.sent.length = 0;
      const p = await w.create();
      // First: the context read (terminal, merchant, banks down), the insert (payment, history,
      // audit), created -> pending. Then the context this process read is only compared: the
      // insert happens in the statement that reads it, if it is still the same.
      assert.equal(w.sent.length, i === 0 ? 3 : 2, w.sent.join('\n'));
      assert.equal(p.status, 'pending');
      w.sent.length = 0;
      const r = replayGuard(`nonce-${i}-0123456789abcdef0123456789abcdef`);
      await w.svc.handleCallback(
        'SIMBANK',
        { kind: 'payment', ref: p.txn_ref, result: { outcome: 'success', responseCode: '00', amountPaise: 1000 } },
        r.guard,
      );
      // One statement, no BEGIN/COMMIT: the nonce, the compare-and-set by txnRef (status, history,
      // outbox), the ledger entry.
      assert.equal(w.sent.length, 1, w.sent.join('\n'));
      assert.equal((await w.svc.get(w.principal, p.id)).status, 'succeeded');
      assert.equal(await w.count('SELECT 1 FROM platform.used_nonces WHERE nonce = $1', [r.guard.nonce]), 1);
      assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [p.id]), 1);
      assert.equal(await w.count("SELECT 1 FROM platform.outbox WHERE payload->>'payment_id' = $1", [p.id]), 2);

      // The same callback again (same nonce): refused, and nothing changes.
      const events = await w.count('SELECT 1 FROM payments.payment_events WHERE payment_id = $1', [p.id]);
      await assert.rejects(
        w.svc.handleCallback(
          'SIMBANK',
          { kind: 'payment', ref: p.txn_ref, result: { outcome: 'success', responseCode: '00', amountPaise: 1000 } },
          r.guard,
        ),
        (e: AppError) => e.code === 'replayed_request',
      );
      assert.equal(r.refused, 1);
      assert.equal(await w.count('SELECT 1 FROM payments.payment_events WHERE payment_id = $1', [p.id]), events);
      assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [p.id]), 1);
    }
    assert.deepEqual((await createLedgerService().verify(w.real)).length, 0);

    // The context changes under the process's feet: the remembered one is not used.
    const before = await w.count('SELECT 1 FROM payments.payments', []);
    await w.real.query(`UPDATE merchants.merchants SET status = 'suspended'`);
    w.sent.length = 0;
    await assert.rejects(w.create(), (e: AppError) => e.code === 'merchant_inactive');
    // The guarded insert (wrote nothing, answered with the current context), and no more.
    assert.equal(w.sent.length, 1, w.sent.join('\n'));
    assert.equal(await w.count('SELECT 1 FROM payments.payments', []), before);
    await w.real.query(`UPDATE merchants.merchants SET status = 'active', name = 'R2'`);
    w.sent.length = 0;
    const renamed = await w.create();
    // Decided on the remembered (suspended) context: refused in memory, read again, then written.
    assert.equal(w.sent.length, 3, w.sent.join('\n'));
    assert.match(renamed.upi_uri ?? '', /pn=R2/);
    assert.equal(await w.count('SELECT 1 FROM payments.payments', []), before + 1);
  } finally {
    await w.real.close();
  }
});

test('creates at the same time share their insert and their created → pending statements (group commit), each with its own rows', async () => {
  const keys = auditKeysFromSeed(randomBytes(32));
  const w = await plainWorld([
    auditPaymentHooks(createAuditWriter({ keys, clock: fixedClock('2026-01-01T00:00:00Z') })),
  ]);
  try {
    await w.create(); // the terminal's context is now known: each create below is insert + move
    w.sent.length = 0;
    const created = await Promise.all(Array.from({ length: 6 }, () => w.create()));
    assert.ok(created.every((p) => p.status === 'pending'));
    const inserts = w.sent.filter((s) => s.startsWith('WITH b AS MATERIALIZED ( SELECT * FROM unnest('));
    const moves = w.sent.filter((s) => s.startsWith('WITH b AS ( SELECT * FROM unnest('));
    // Nothing else is sent, and creates that reach the same step while another's statement is
    // being written share the next one: fewer than six of each, however the six interleave.
    assert.equal(inserts.length + moves.length, w.sent.length, w.sent.join('\n'));
    assert.ok(inserts.length >= 1 && inserts.length < 6, `${inserts.length} insert statements for 6 creates`);
    assert.ok(moves.length >= 1 && moves.length < 6, `${moves.length} move statements for 6 creates`);
    assert.equal(
      await w.count("SELECT 1 FROM audit.events WHERE action = 'payment.created' AND resource_id = ANY($1)", [
        created.map((p) => p.id),
      ]),
      6,
    );
    // Each audit record is written whole, with its own MAC: the trail verifies.
    const trail = await verifyTrail(w.real, keys);
    assert.equal(trail.problems.length, 0, JSON.stringify(trail.first));
    assert.equal(trail.records_checked, 7);
    for (const p of created) {
      assert.deepEqual(
        (
          await w.real.query<{ from_status: string | null; to_status: string }>(
            'SELECT from_status, to_status FROM payments.payment_events WHERE payment_id = $1 ORDER BY id',
            [p.id],
          )
        ).rows.map((e) => `${e.from_status}->${e.to_status}`),
        ['null->created', 'created->pending'],
      );
      assert.equal(
        await w.count(
          "SELECT 1 FROM platform.outbox WHERE payload->>'payment_id' = $1 AND payload->>'status' = 'pending' AND key = $2",
          [p.id, p.terminal_id],
        ),
        1,
      );
      assert.equal(await w.count("SELECT 1 FROM payments.payments WHERE id = $1 AND bank_ref = 'BR'", [p.id]), 1);
    }
  } finally {
    await w.real.close();
  }
});

test('in one shared insert, a create whose remembered context went stale is decided again; the others are written', async () => {
  const w = await plainWorld();
  try {
    const [m2, s2, t2] = [newId('merchant'), newId('store'), newId('terminal')];
    await w.real.query(
      `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'Q', 'q@simbank', '5411', 'SIMBANK')`,
      [m2],
    );
    await w.real.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'S')`, [s2, m2]);
    await w.real.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1, $2, $3)`, [t2, m2, s2]);
    const createAt2 = () =>
      w.svc.create(w.principal, { terminal_id: t2, amount: 1000, currency: 'INR', method: 'upi_qr' });
    await Promise.all([w.create(), createAt2()]); // both contexts remembered
    await w.real.query(`UPDATE merchants.merchants SET status = 'suspended' WHERE id = $1`, [m2]);
    const before = await w.count('SELECT 1 FROM payments.payments WHERE terminal_id = $1', [t2]);
    const outcomes = await Promise.allSettled([w.create(), createAt2(), w.create()]);
    assert.equal(outcomes[0].status, 'fulfilled');
    assert.equal(outcomes[2].status, 'fulfilled');
    assert.equal(outcomes[1].status, 'rejected');
    assert.equal(((outcomes[1] as PromiseRejectedResult).reason as AppError).code, 'merchant_inactive');
    assert.equal(await w.count('SELECT 1 FROM payments.payments WHERE terminal_id = $1', [t2]), before);
  } finally {
    await w.real.close();
  }
});

test('two creates under the same client reference in one shared insert: one payment, both answered with it', async () => {
  const w = await plainWorld();
  try {
    await w.create();
    const input = {
      terminal_id: (await w.create()).terminal_id,
      amount: 1000,
      currency: 'INR',
      method: 'upi_qr',
    } as const;
    w.sent.length = 0;
    const [a, b] = await Promise.all([
      w.svc.create(w.principal, input, { clientRef: 'req-1' }),
      w.svc.create(w.principal, input, { clientRef: 'req-1' }),
    ]);
    assert.equal(a.id, b.id);
    assert.equal(w.sent.filter((s) => s.startsWith('WITH b AS MATERIALIZED')).length, 1, w.sent.join('\n'));
    assert.equal(await w.count("SELECT 1 FROM payments.payments WHERE client_ref = 'req-1'", []), 1);
    assert.equal(await w.count('SELECT 1 FROM payments.payment_events WHERE payment_id = $1', [a.id]), 2);
  } finally {
    await w.real.close();
  }
});

test('a move whose payment the callback already took is left alone; the create answers with the payment as it is', async () => {
  const w = await plainWorld();
  try {
    const p = await w.create();
    // As if the bank's callback had completed it between the bank call and the move.
    await w.real.query(`UPDATE payments.payments SET status = 'succeeded' WHERE id = $1`, [p.id]);
    const now = new Date('2026-01-01T00:00:01Z');
    const move = { bank_ref: null, next_check_at: now, detail: null, now, traceparent: null, bankAnswered: true };
    const moved = await movePendingMany(w.real, [{ id: p.id, ...move }]);
    assert.deepEqual(moved, []);
    assert.equal((await w.svc.get(w.principal, p.id)).status, 'succeeded');
  } finally {
    await w.real.close();
  }
});

test('a move commits without waiting for its WAL flush only when every bank in it answered', async () => {
  const w = await plainWorld();
  try {
    const now = new Date('2026-01-01T00:00:01Z');
    const move = (id: string, bankAnswered: boolean) => ({
      id,
      bank_ref: null,
      next_check_at: now,
      detail: bankAnswered ? null : 'bank answer uncertain (timeout); status check scheduled',
      now,
      traceparent: null,
      bankAnswered,
    });
    // Run inside a transaction of our own, to read the setting the statement left for its commit.
    const commitMode = (moves: ReturnType<typeof move>[]) =>
      w.real.tx(async (tx) => {
        const moved = await movePendingMany(tx, moves);
        const mode = (await tx.query<{ s: string }>(`SELECT current_setting('synchronous_commit') AS s`)).rows[0].s;
        return { moved: moved.length, mode };
      });
    const [a, b, c] = [await w.create(), await w.create(), await w.create()];
    // The create path moved them already; back to created for the statement under test.
    await w.real.query(`UPDATE payments.payments SET status = 'created' WHERE id = ANY($1)`, [[a.id, b.id, c.id]]);
    assert.deepEqual(await commitMode([move(a.id, true)]), { moved: 1, mode: 'off' });
    assert.deepEqual(await commitMode([move(b.id, true), move(c.id, false)]), { moved: 2, mode: 'on' });
    assert.equal(
      (await w.real.query<{ s: string }>(`SELECT current_setting('synchronous_commit') AS s`)).rows[0].s,
      'on',
      'the setting ends with the statement’s transaction',
    );
  } finally {
    await w.real.close();
  }
});

test('bank answers at the same time share one completion statement (group commit), each with its own rows; a replay among them fails alone', async () => {
  const w = await plainWorld();
  const paid = { outcome: 'success', responseCode: '00', amountPaise: 1000 } as const;
  const callback = (txnRef: string, nonce: string) => {
    const r = replayGuard(nonce.padEnd(40, '0'));
    return { r, done: w.svc.handleCallback('SIMBANK', { kind: 'payment', ref: txnRef, result: paid }, r.guard) };
  };
  const isMany = (s: string) => s.startsWith('WITH m AS ( SELECT * FROM unnest(');
  const isOne = (s: string) => s.startsWith('WITH p AS ( UPDATE payments.payments SET status = $3');
  try {
    const payments = await Promise.all(Array.from({ length: 6 }, () => w.create()));
    w.sent.length = 0;
    await Promise.all(payments.map((p, i) => callback(p.txn_ref, `n6-${i}-`).done));
    // Completions that reach the database while another's statement is being written share the
    // next one: fewer than six statements, however they interleave, and nothing else is sent.
    assert.equal(w.sent.filter((s) => isMany(s) || isOne(s)).length, w.sent.length, w.sent.join('\n'));
    assert.ok(w.sent.length < 6 && w.sent.some(isMany), w.sent.join('\n'));
    for (const [i, p] of payments.entries()) {
      assert.equal((await w.svc.get(w.principal, p.id)).status, 'succeeded');
      assert.deepEqual(
        (
          await w.real.query<{ t: string }>(
            "SELECT coalesce(from_status, '') || '->' || to_status || ' ' || source AS t FROM payments.payment_events WHERE payment_id = $1 ORDER BY id",
            [p.id],
          )
        ).rows.map((e) => e.t),
        ['->created api', 'created->pending api', 'pending->succeeded callback'],
      );
      assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [p.id]), 1);
      assert.equal(
        await w.count(
          "SELECT 1 FROM platform.outbox WHERE payload->>'payment_id' = $1 AND payload->>'status' = 'succeeded' AND key = $2",
          [p.id, p.terminal_id],
        ),
        1,
      );
      assert.equal(
        await w.count('SELECT 1 FROM platform.used_nonces WHERE nonce = $1', [`n6-${i}-`.padEnd(40, '0')]),
        1,
      );
      assert.equal(
        await w.count(
          "SELECT 1 FROM payments.payments WHERE id = $1 AND response_code = '00' AND completed_at IS NOT NULL AND next_check_at IS NULL",
          [p.id],
        ),
        1,
      );
    }
    assert.equal(await w.count("SELECT 1 FROM ledger.accounts WHERE code LIKE 'merchant_payable:%'", []), 1);

    // Three more, answered together with a replay of an earlier callback (its nonce used) and a
    // second answer for one of them: the shared statement is rolled back, each is written on its
    // own, and only the replay is refused.
    const more = await Promise.all(Array.from({ length: 3 }, () => w.create()));
    const calls = [
      callback(more[0].txn_ref, 'n3-0-'),
      callback(payments[0].txn_ref, 'n6-0-'),
      callback(more[1].txn_ref, 'n3-1-'),
      callback(more[1].txn_ref, 'n3-1b-'),
      callback(more[2].txn_ref, 'n3-2-'),
    ];
    const settled = await Promise.allSettled(calls.map((c) => c.done));
    assert.deepEqual(
      settled.map((s) => (s.status === 'fulfilled' ? 'ok' : (s.reason as AppError).code)),
      ['ok', 'replayed_request', 'ok', 'ok', 'ok'],
    );
    assert.equal(calls[1].r.refused, 1);
    for (const p of more) {
      assert.equal((await w.svc.get(w.principal, p.id)).status, 'succeeded');
      assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [p.id]), 1);
      assert.equal(
        await w.count("SELECT 1 FROM payments.payment_events WHERE payment_id = $1 AND to_status = 'succeeded'", [
          p.id,
        ]),
        1,
      );
    }
    // Nine payments of 1000 paise, each posted once.
    assert.equal(await createLedgerService().balance(w.real, `merchant_payable:${payments[0].merchant_id}`), 9000);
    assert.equal(await createLedgerService().balance(w.real, 'bank_clearing:SIMBANK'), 9000);
    assert.deepEqual((await createLedgerService().verify(w.real)).length, 0);
  } finally {
    await w.real.close();
  }
});

test('completeSucceededMany: each member gets its own row, history and outbox event with its own trace; one no longer pending is answered undefined and left alone', async () => {
  const w = await plainWorld();
  try {
    const [a, b, c] = await Promise.all([w.create(), w.create(), w.create()]);
    await w.real.query(`UPDATE payments.payments SET status = 'failed' WHERE id = $1`, [b.id]);
    const now = new Date('2026-01-01T00:00:05Z');
    const member = (id: string, trace: string | null) => ({
      id,
      u: { completed_at: now, response_code: '00', bank_ref: `BR-${id}`, next_check_at: null },
      now,
      source: 'status_check',
      only: { amount: 1000 },
      journalId: newJournalId(),
      traceparent: trace,
    });
    const traceA = `00-${'a'.repeat(32)}-${'1'.repeat(16)}-01`;
    const out = await completeSucceededMany(w.real, [member(a.id, traceA), member(b.id, null), member(c.id, null)], {
      hooks: [],
      ledgerSql: paymentsLedgerSql,
    });
    assert.deepEqual(
      out.map((r) => r && `${r.id} ${r.status} ${r.bank_ref}`),
      [`${a.id} succeeded BR-${a.id}`, undefined, `${c.id} succeeded BR-${c.id}`],
    );
    assert.equal((await w.svc.get(w.principal, b.id)).status, 'failed');
    assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [b.id]), 0);
    const pushes = await w.real.query<{ id: string; trace: string | null }>(
      "SELECT payload->>'payment_id' AS id, payload->>'traceparent' AS trace FROM platform.outbox WHERE payload->>'status' = 'succeeded' ORDER BY 1",
    );
    assert.deepEqual(
      pushes.rows,
      [
        { id: a.id, trace: traceA },
        { id: c.id, trace: null },
      ].sort((x, y) => x.id.localeCompare(y.id)),
    );
    for (const p of [a, c]) {
      assert.equal(
        await w.count(
          "SELECT 1 FROM payments.payment_events WHERE payment_id = $1 AND from_status = 'pending' AND to_status = 'succeeded' AND source = 'status_check' AND response_code = '00'",
          [p.id],
        ),
        1,
      );
      assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [p.id]), 1);
    }
    assert.deepEqual((await createLedgerService().verify(w.real)).length, 0);
  } finally {
    await w.real.close();
  }
});

test("a status check's success is the same one statement", async () => {
  const w = await plainWorld([], async () => ({ outcome: 'success', responseCode: '00', amountPaise: 1000 }));
  try {
    const p = await w.create();
    w.sent.length = 0;
    assert.equal(await w.svc.runStatusChecks(), 1);
    // The claim (BEGIN, claim, COMMIT), then the completion: one statement.
    assert.deepEqual(
      w.sent.map((x) => x.slice(0, 20)),
      ['BEGIN', 'UPDATE payments.paym', 'COMMIT', 'WITH p AS ( UPDATE p'],
    );
    assert.equal((await w.svc.get(w.principal, p.id)).status, 'succeeded');
    assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [p.id]), 1);
  } finally {
    await w.real.close();
  }
});

test('a hook with work takes the long way; a failing one sinks only its payment and keeps its nonce unused', async () => {
  let failNext = false;
  const earned: string[] = [];
  const hook: PaymentHooks = {
    // Work only for payments of 1000 paise at this merchant: i.e. all of them here.
    succeededSql: (row, param) => `${row}.amount <> ${param(1000)}::bigint`,
    async onSucceeded(tx, payment) {
      if (failNext) throw new AppError('conflict', 'the hook failed');
      await tx.query('SELECT 1');
      earned.push(payment.id);
    },
  };
  const w = await plainWorld([hook]);
  try {
    const a = await w.create();
    const b = await w.create();
    failNext = true;
    const ra = replayGuard('nonce-a-0123456789abcdef0123456789abcdef');
    await assert.rejects(
      w.svc.handleCallback(
        'SIMBANK',
        { kind: 'payment', ref: a.txn_ref, result: { outcome: 'success', responseCode: '00', amountPaise: 1000 } },
        ra.guard,
      ),
      (e: AppError) => e.code === 'conflict',
    );
    // Nothing of a's completion committed, its nonce included: the bank may send it again.
    assert.equal((await w.svc.get(w.principal, a.id)).status, 'pending');
    assert.equal(await w.count('SELECT 1 FROM platform.used_nonces WHERE nonce = $1', [ra.guard.nonce]), 0);
    assert.equal(await w.count('SELECT 1 FROM ledger.entries WHERE reference = $1', [a.id]), 0);
    failNext = false;
    w.sent.length = 0;
    const rb = replayGuard('nonce-b-0123456789abcdef0123456789abcdef');
    await w.svc.handleCallback(
      'SIMBANK',
      { kind: 'payment', ref: b.txn_ref, result: { outcome: 'success', responseCode: '00', amountPaise: 1000 } },
      rb.guard,
    );
    // The one statement (rolled back by the hook's "needs its long way"), then the long way:
    // BEGIN, nonce, compare-and-set, the hook, the ledger entry, COMMIT.
    assert.equal(w.sent.length, 7, w.sent.join('\n'));
    assert.equal(w.sent[1], 'BEGIN');
    assert.deepEqual(earned, [b.id]);
    assert.equal((await w.svc.get(w.principal, b.id)).status, 'succeeded');
    // a's callback sent again with the same nonce: accepted now.
    await w.svc.handleCallback(
      'SIMBANK',
      { kind: 'payment', ref: a.txn_ref, result: { outcome: 'success', responseCode: '00', amountPaise: 1000 } },
      ra.guard,
    );
    assert.equal((await w.svc.get(w.principal, a.id)).status, 'succeeded');
    assert.equal(ra.refused, 0);
    assert.deepEqual((await createLedgerService().verify(w.real)).length, 0);
  } finally {
    await w.real.close();
  }
});

test('with rewards: a merchant in no program completes in one statement; one in a program earns the long way once, then in one statement', async () => {
  const sent: string[] = [];
  const real = await createTestDb();
  const w = await rewardsWorld({ db: countingDb(real, sent) });
  try {
    const plain = await w.seedMerchant();
    const member = await w.seedMerchant();
    await w.program(member.merchantId);
    const p1 = await w.createPayment(plain.terminalId, 5000);
    sent.length = 0;
    await w.succeed(p1.id, 'ravi@okaxis');
    // payments.get() before the callback (1), the callback itself as one statement, then
    // payments.get() of the succeeded payment (2: the row, and what is left to refund of it).
    assert.equal(sent.length, 4, sent.join('\n'));
    assert.equal(sent[1], 'WITH p AS ( UPDATE payments.payments SET status = $3, update', sent.join('\n'));
    // In a program: the first success tries the one statement (rolled back: an earn to do and no
    // program cached), then earns the long way (BEGIN … COMMIT), which caches the program. The
    // next ones earn in the one statement, from the payment's hint and the cached program: the
    // same four statements as the plain merchant's, the customer (new for the third payer)
    // created, the points and their PTS entry written by it.
    const longWay = ['WITH p AS ( UPDATE payments.payments SET status = $3, update', 'BEGIN'];
    for (const [i, vpa, firstTwo, available] of [
      [0, 'ravi@okaxis', longWay, 5],
      [1, 'ravi@okaxis', ['WITH p AS ( UPDATE payments.payments SET status = $3, update'], 10],
      [2, 'meera@okaxis', ['WITH p AS ( UPDATE payments.payments SET status = $3, update'], 5],
    ] as const) {
      const p2 = await w.createPayment(member.terminalId, 5000);
      sent.length = 0;
      const after = await w.succeed(p2.id, vpa);
      assert.equal(after.status, 'succeeded');
      assert.deepEqual(sent.slice(1, 1 + firstTwo.length), firstTwo, sent.join('\n'));
      if (i > 0) assert.equal(sent.length, 4, sent.join('\n'));
      assert.equal((await w.balance(member.merchantId, vpa)).available, available);
      const earned = await w.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ledger.entries WHERE book = 'PTS' AND kind = 'rewards.earned' AND reference = $1`,
        [p2.id],
      );
      assert.equal(earned.rows[0].n, 1);
    }
    await w.assertInvariants();
  } finally {
    await real.close();
  }
});
