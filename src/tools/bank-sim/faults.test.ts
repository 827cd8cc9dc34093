import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createTestDb } from '../../platform/testing.ts';
import { loadConfig } from '../../config.ts';
import { createBanksService, type BankCallback } from '../../modules/banks/index.ts';
import { startCallbackReceiver } from '../../modules/banks/testing.ts';
import { startBankSimulator, parseBankSimArgs } from './index.ts';

// The simulator's message faults (faults.ts) and books (control.ts), over real HTTP through the
// simbank connector, with every callback verified as the API verifies it: what each fault sends,
// that the status answers contradict the callbacks, and that the books keep what the bank did.

const SECRET = 'sim-faults-secret';
const ref = () => 'TP' + randomBytes(16).toString('hex').toUpperCase();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('bank-sim --faults: duplicate, early, out-of-order callbacks, contradicting status answers; the books keep the truth', async (t) => {
  assert.equal(parseBankSimArgs(['--faults'], { BANK_SIM_SECRET: 'x' }).faults, true);
  const db = await createTestDb();
  t.after(() => db.close());
  const sim = await startBankSimulator({
    port: 0,
    secret: SECRET,
    latencyMs: 0,
    outcomes: { approve: 1 },
    faults: true,
  });
  t.after(() => sim.close());
  const config = loadConfig({
    NODE_ENV: 'test',
    BANK_SIM_URL: sim.bankUrl,
    BANK_SIM_SECRET: SECRET,
    BANK_TIMEOUT_MS: '5000',
  });
  const banks = createBanksService({ db, config });
  const receiver = await startCallbackReceiver<BankCallback>((path, headers, raw, addr) =>
    banks.verifyCallback(path.slice(1), headers, raw, addr),
  );
  t.after(() => receiver.close());
  const bank = banks.connector('SIMBANK');
  const control = async (method: 'GET' | 'PUT', body?: unknown) => {
    const r = await fetch(`${sim.bankUrl}/v1/faults`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  const intent = (amountPaise = 14_900) => ({
    txnRef: ref(),
    amountPaise,
    payeeVpa: 'corner.store@simbank',
    payeeName: 'Corner Store',
    mcc: '5411',
    expiresAt: new Date(Date.now() + 300_000),
    callbackUrl: `${receiver.url}/SIMBANK`,
  });
  const pay = async (txnRef: string, outcome = 'success', am = '149.00') => {
    const r = await fetch(`${sim.bankUrl}/v1/customer-payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        upi_uri: `upi://pay?pa=corner.store%40simbank&tr=${txnRef}&am=${am}&cu=INR`,
        payer_vpa: 'ravi.k@okbank',
        outcome,
      }),
    });
    return (await r.json()) as any;
  };
  const callbacksFor = (txnRef: string) =>
    receiver.calls.filter((c) => c.result && (c.result as BankCallback).ref === txnRef).map((c) => c.result!);

  assert.equal((await control('PUT', { modes: ['no_such_fault'] })).status, 400);
  assert.deepEqual((await control('GET')).body.modes, []);

  // Duplicates: three verified copies of one success, each with a signature of its own.
  assert.equal((await control('PUT', { modes: ['duplicate_callbacks'] })).status, 200);
  const a = intent();
  await bank.registerIntent(a);
  await pay(a.txnRef);
  await sleep(1500);
  const dup = callbacksFor(a.txnRef);
  assert.equal(dup.length, 3, 'sent three times');
  for (const c of dup) assert.equal(c.result.outcome, 'success');
  assert.equal(receiver.calls.filter((c) => c.error).length, 0, 'every copy verified (no replayed nonce)');

  // Out of order: after the final success, a stale pending and a stale failure.
  await control('PUT', { modes: ['out_of_order_callbacks'] });
  const b = intent();
  await bank.registerIntent(b);
  await pay(b.txnRef);
  await sleep(300);
  assert.deepEqual(
    callbacksFor(b.txnRef).map((c) => c.result.outcome),
    ['success', 'pending', 'failed'],
  );

  // Early: the registration's answer leaves after the customer paid and the callback arrived.
  await control('PUT', { modes: ['early_callbacks'] });
  const c = intent();
  await bank.registerIntent(c);
  assert.deepEqual(
    callbacksFor(c.txnRef).map((x) => x.result.outcome),
    ['success'],
    'the callback was there before the create was answered',
  );

  // Contradicting status: the callback is held, and the status says failed for a success.
  await control('PUT', { modes: ['contradicting_status'], hold_ms: 800 });
  const d = intent();
  await bank.registerIntent(d);
  await pay(d.txnRef);
  assert.equal(callbacksFor(d.txnRef).length, 0, 'held back');
  assert.equal((await bank.checkStatus(d.txnRef)).outcome, 'failed', 'the status contradicts what happened');
  await sleep(1200);
  assert.deepEqual(
    callbacksFor(d.txnRef).map((x) => x.result.outcome),
    ['success'],
  );
  assert.equal((await bank.checkStatus(d.txnRef)).outcome, 'failed', 'and keeps contradicting the callback');
  await control('PUT', { modes: [] });
  const counts = (await control('GET')).body.counts;
  assert.equal(counts.duplicate_callbacks_sent, 2);
  assert.equal(counts.stale_callbacks_sent, 2);
  assert.equal(counts.early_callbacks, 1);
  assert.equal(counts.callbacks_held, 1);
  assert.ok(counts.contradicting_status_answers >= 2);

  // The books: what the bank did, whatever it said: four payments debited, one declined, a refund paid.
  const e = intent();
  await bank.registerIntent(e);
  await pay(e.txnRef, 'decline');
  const rf = await bank.refund({
    refundRef: 'RF' + randomBytes(6).toString('hex'),
    originalTxnRef: a.txnRef,
    amountPaise: 4_900,
    callbackUrl: `${receiver.url}/SIMBANK`,
  });
  assert.equal(rf.outcome, 'success');
  const books = (await (await fetch(`${sim.bankUrl}/v1/books`)).json()) as any;
  const debited = new Map(books.payments.map((p: any) => [p.txn_ref, p.debited]));
  for (const x of [a, b, c, d]) assert.equal(debited.get(x.txnRef), true, x.txnRef);
  assert.equal(debited.get(e.txnRef), false);
  assert.deepEqual(
    books.refunds.map((r: any) => r.amount_paise),
    [4_900],
  );
});
