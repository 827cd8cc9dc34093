import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BankConfig } from '../banks.settings.ts';
import { loadConfig } from '../../../config.ts';
import type { Db } from '../../../platform/db.ts';
import { AppError } from '../../../platform/errors.ts';
import { createBanksService } from '../banks.service.ts';
import { BankCallError, type BankOutcome, type BankCallFailureKind } from '../types.ts';
import { createConnector } from './index.ts';
import type { Connector } from './contract.ts';

// The contract suite every connector must pass (README.md, "Adding a bank"), run against a
// scripted bank: a local HTTP server speaking the connector's wire format whose answers each test
// sets. A connector's folder provides a ContractFixture (its `contract.fixture.ts`): how to build
// its BankConfig, how its bank answers, its codes and its callbacks. The real bank's API cannot run
// here; the fixture is written from the bank's documented wire format, and says so.

export type Op =
  | 'register_intent'
  | 'send_collect'
  | 'check_status'
  | 'refund'
  | 'check_refund_status'
  | 'push_credit'
  | 'check_push_credit_status';

/** What the scripted bank does with the next request. `native` is in the bank's own terms. */
export type Answer =
  | { kind: 'answer'; native: string }
  | { kind: 'http'; status: number }
  | { kind: 'garbage' }
  | { kind: 'hang' }
  | { kind: 'reset' };

export interface ScriptedRequest {
  op: Op | 'unknown';
  /** The request as the bank read it (decrypted / verified), in the fixture's terms. */
  fields: Record<string, unknown>;
  /** False when the fixture could not authenticate it (bad signature, wrong key). */
  authentic: boolean;
}

export interface WireReply {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export interface ContractFixture {
  /** The connector name, as in CONNECTOR_NAMES. */
  connector: string;
  /** A BankConfig for a bank at `url`, code `code`. */
  bank(code: string, url: string): BankConfig;
  /** Reads a request as the bank would: which operation, its fields, whether it is authentic. */
  readRequest(path: string, headers: IncomingHttpHeaders, body: Buffer): ScriptedRequest;
  /** The bank's answer `native` to `req`, on its wire. */
  reply(req: ScriptedRequest, native: string, now: Date): WireReply;
  /** How the bank's codes map, for transaction answers (intent aside) and callbacks. */
  txnCodes: { native: string; outcome: BankOutcome }[];
  /** How its status answers map (they may speak in other terms than the callback). */
  statusCodes: { native: string; outcome: BankOutcome }[];
  /** A code the bank has never documented: it must come out `deemed`. */
  unknownTxnCode: string;
  unknownStatusCode: string;
  /** The native code for pending (collect answers). */
  pending: string;
  /** A callback as the bank sends it. `forge`: signed by somebody else's key. */
  callback(o: {
    kind: 'payment' | 'refund';
    ref: string;
    native: string;
    amountPaise: number;
    at: Date;
    forge?: boolean;
  }): { body: Buffer; headers: Record<string, string> };
  /** A callback that is authentic as far as its signature goes (where the signature is outside the body) but unreadable. */
  malformedCallback(at: Date): { body: Buffer; headers: Record<string, string> };
  /** Its field names for the transaction reference and amount in a decoded request. */
  refField: string;
  amountField: string;
  /** Its field names for a push credit's reference, payee VPA and amount in a decoded request. */
  credit: { refField: string; vpaField: string; amountField: string };
}

interface ScriptedBank {
  url: string;
  requests: ScriptedRequest[];
  next(...answers: Answer[]): void;
  close(): Promise<void>;
}

export async function startScriptedBank(f: ContractFixture): Promise<ScriptedBank> {
  const queue: Answer[] = [];
  const requests: ScriptedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = f.readRequest((req.url ?? '/').replace(/^\/bank/, ''), req.headers, Buffer.concat(chunks));
      requests.push(r);
      const a = queue.shift() ?? { kind: 'answer', native: f.pending };
      if (a.kind === 'hang') return;
      if (a.kind === 'reset') return req.socket.resetAndDestroy();
      if (a.kind === 'http') {
        res.statusCode = a.status;
        return res.end('{"error":"scripted"}');
      }
      if (a.kind === 'garbage') {
        res.setHeader('content-type', 'application/json');
        return res.end('<html>gateway error</html>');
      }
      if (!r.authentic) {
        res.statusCode = 401;
        return res.end('{"error":"bad signature"}');
      }
      const w = f.reply(r, a.native, new Date());
      res.statusCode = w.status;
      for (const [k, v] of Object.entries(w.headers ?? {})) res.setHeader(k, v);
      res.end(w.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bank`,
    requests,
    next: (...answers) => queue.push(...answers),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const intent = (ref: string) => ({
  txnRef: ref,
  amountPaise: 14_905,
  payeeVpa: 'shop@simbank',
  payeeName: 'Shop',
  mcc: '5411',
  expiresAt: new Date(Date.now() + 5 * 60_000),
  callbackUrl: 'http://127.0.0.1:1/v1/banks/CONTRACT/callbacks',
});
const refundReq = (ref: string) => ({
  refundRef: ref,
  originalTxnRef: 'TPORIG1',
  amountPaise: 4_900,
  callbackUrl: 'http://127.0.0.1:1/v1/banks/CONTRACT/callbacks',
});

const creditReq = (ref: string) => ({
  creditRef: ref,
  payeeVpa: 'ravi.kumar@okaxis',
  amountPaise: 10_000,
  note: 'RBI compensation, 1 day of delay',
  relatedTxnRef: 'TPORIG1',
});

function failsAs(delivery: BankCallFailureKind, extra: (e: BankCallError) => boolean = () => true) {
  return (e: unknown) => {
    assert.ok(e instanceof BankCallError, `expected a BankCallError, got ${String(e)}`);
    assert.equal(e.delivery, delivery, e.message);
    return extra(e);
  };
}

/**
 * Registers the contract's tests for one connector. `test` is node:test's; `db` makes a database
 * (PGlite, or PostgreSQL with TEST_DATABASE_URL) for the callback checks.
 */
export function contractSuite(
  f: ContractFixture,
  t: { describe: typeof import('node:test').describe; test: typeof import('node:test').test },
  db: () => Promise<Db>,
) {
  const { describe, test } = t;
  describe(`connector contract: ${f.connector}`, () => {
    let bank: ScriptedBank;
    let c: Connector;
    // One retry of idempotent operations, to show which ones the connector marks idempotent.
    const make = (url: string, timeoutMs = 2_000) => {
      const b = f.bank('CONTRACT', url);
      return createConnector(
        { ...b, settings: { ...b.settings, retries: 1 } },
        { publicUrl: 'http://x', timeoutMs, callbackMaxAgeSeconds: 300 },
      );
    };

    test('set up a scripted bank', async () => {
      bank = await startScriptedBank(f);
      c = make(bank.url);
    });

    test('intent: registered, the request authentic and in the bank’s terms (amount in rupees)', async () => {
      bank.next({ kind: 'answer', native: f.pending });
      const r = await c.registerIntent(intent('TPCONTRACT1'));
      assert.equal(typeof r, 'object');
      const req = bank.requests.at(-1)!;
      assert.equal(req.op, 'register_intent');
      assert.ok(req.authentic, 'the bank could authenticate the request');
      assert.equal(req.fields[f.refField], 'TPCONTRACT1');
      assert.equal(req.fields[f.amountField], '149.05');
    });

    test('collect: answers pending; the payer is in the request', async () => {
      bank.next({ kind: 'answer', native: f.pending });
      const r = await c.sendCollect({ ...intent('TPCONTRACT2'), payerVpa: 'ravi@okaxis' });
      assert.equal(r.outcome, 'pending');
      assert.equal(bank.requests.at(-1)!.op, 'send_collect');
      assert.ok(bank.requests.at(-1)!.authentic);
    });

    test('refund: each documented code maps to its outcome', async () => {
      for (const { native, outcome } of f.txnCodes) {
        bank.next({ kind: 'answer', native });
        const r = await c.refund(refundReq(`rfd_${native}`));
        assert.equal(r.outcome, outcome, `refund answered ${native}`);
        assert.equal(bank.requests.at(-1)!.op, 'refund');
      }
    });

    test('push credit: authentic, to the VPA in rupees; each documented code maps to its outcome', async () => {
      for (const { native, outcome } of f.txnCodes) {
        bank.next({ kind: 'answer', native });
        const r = await c.pushCredit(creditReq(`CP${native}`));
        assert.equal(r.outcome, outcome, `push credit answered ${native}`);
        const req = bank.requests.at(-1)!;
        assert.equal(req.op, 'push_credit');
        assert.ok(req.authentic, 'the bank could authenticate the credit');
        assert.equal(req.fields[f.credit.refField], `CP${native}`);
        assert.equal(req.fields[f.credit.vpaField], 'ravi.kumar@okaxis');
        assert.equal(req.fields[f.credit.amountField], '100.00');
      }
      for (const { native, outcome } of f.statusCodes) {
        bank.next({ kind: 'answer', native });
        assert.equal((await c.checkPushCreditStatus('CP1')).outcome, outcome, `credit status answered ${native}`);
        assert.equal(bank.requests.at(-1)!.op, 'check_push_credit_status');
      }
      bank.next({ kind: 'answer', native: f.unknownTxnCode });
      assert.equal((await c.pushCredit(creditReq('CPUNKNOWN'))).outcome, 'deemed');
    });

    test('push credit failures: 5xx and timeout uncertain, 4xx rejected, never retried; its status is', async () => {
      const before = bank.requests.length;
      bank.next({ kind: 'http', status: 503 });
      await assert.rejects(c.pushCredit(creditReq('CPF1')), failsAs('uncertain'));
      assert.equal(bank.requests.length - before, 1, 'the credit was sent once');
      bank.next({ kind: 'http', status: 400 });
      await assert.rejects(c.pushCredit(creditReq('CPF2')), failsAs('rejected'));
      const quick = make(bank.url, 300);
      bank.next({ kind: 'hang' });
      await assert.rejects(quick.pushCredit(creditReq('CPF3')), failsAs('uncertain'));
      const mid = bank.requests.length;
      bank.next({ kind: 'http', status: 503 }, { kind: 'answer', native: f.statusCodes[0].native });
      assert.equal((await c.checkPushCreditStatus('CPF1')).outcome, f.statusCodes[0].outcome);
      assert.equal(bank.requests.length - mid, 2, 'the credit status query was retried once');
    });

    test('status: each documented answer maps to its outcome, for payments and refunds', async () => {
      for (const { native, outcome } of f.statusCodes) {
        bank.next({ kind: 'answer', native });
        assert.equal((await c.checkStatus('TPCONTRACT3')).outcome, outcome, `status answered ${native}`);
        bank.next({ kind: 'answer', native });
        assert.equal((await c.checkRefundStatus('rfd_1')).outcome, outcome, `refund status answered ${native}`);
      }
    });

    test('an unknown code means reconcile (deemed), never failed: answers, status and callbacks', async () => {
      bank.next({ kind: 'answer', native: f.unknownTxnCode });
      assert.equal((await c.sendCollect({ ...intent('TPCONTRACT4'), payerVpa: 'ravi@okaxis' })).outcome, 'deemed');
      bank.next({ kind: 'answer', native: f.unknownTxnCode });
      assert.equal((await c.refund(refundReq('rfd_unknown'))).outcome, 'deemed');
      bank.next({ kind: 'answer', native: f.unknownStatusCode });
      assert.equal((await c.checkStatus('TPCONTRACT4')).outcome, 'deemed');
      const cb = f.callback({
        kind: 'payment',
        ref: 'TPCONTRACT4',
        native: f.unknownTxnCode,
        amountPaise: 100,
        at: new Date(),
      });
      const v = c.verifyCallback(cb.body, cb.headers);
      assert.ok(v.ok);
      assert.equal(v.callback.result.outcome, 'deemed');
    });

    test('failure classes: timeout, 5xx, reset and garbage are uncertain; 4xx rejected; 409 conflict', async () => {
      const quick = make(bank.url, 300);
      bank.next({ kind: 'hang' });
      await assert.rejects(
        quick.sendCollect({ ...intent('TPF1'), payerVpa: 'a.b@okaxis' }),
        failsAs('uncertain', (e) => (e.details as { timeout?: boolean }).timeout === true),
      );
      bank.next({ kind: 'http', status: 502 });
      await assert.rejects(c.refund(refundReq('rfd_f2')), failsAs('uncertain'));
      bank.next({ kind: 'reset' });
      await assert.rejects(c.registerIntent(intent('TPF3')), failsAs('uncertain'));
      bank.next({ kind: 'garbage' });
      await assert.rejects(c.sendCollect({ ...intent('TPF4'), payerVpa: 'a.b@okaxis' }), failsAs('uncertain'));
      bank.next({ kind: 'http', status: 400 });
      await assert.rejects(c.registerIntent(intent('TPF5')), failsAs('rejected'));
      bank.next({ kind: 'http', status: 409 });
      await assert.rejects(
        c.registerIntent(intent('TPF6')),
        failsAs('rejected', (e) => e.code === 'conflict'),
      );
    });

    test('only idempotent operations are retried: a status query once more, a refund never', async () => {
      const before = bank.requests.length;
      bank.next({ kind: 'http', status: 503 });
      await assert.rejects(c.refund(refundReq('rfd_r1')), failsAs('uncertain'));
      assert.equal(bank.requests.length - before, 1, 'the refund was sent once');
      bank.next({ kind: 'http', status: 503 }, { kind: 'answer', native: f.statusCodes[0].native });
      assert.equal((await c.checkStatus('TPR1')).outcome, f.statusCodes[0].outcome);
      assert.equal(bank.requests.length - before, 3, 'the status query was retried once');
    });

    test('a bank that cannot be reached: not_sent', async () => {
      const dead = createServer();
      await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
      const port = (dead.address() as AddressInfo).port;
      await new Promise<void>((r) => dead.close(() => r()));
      await assert.rejects(make(`http://127.0.0.1:${port}/bank`).registerIntent(intent('TPN1')), failsAs('not_sent'));
    });

    test('callbacks through the service: valid once; forged, stale, replayed, malformed refused and recorded', async () => {
      const d = await db();
      try {
        const b = f.bank('CONTRACT', bank.url);
        const svc = createBanksService({
          db: d,
          config: {
            ...loadConfig({ NODE_ENV: 'test' }),
            banks: [b],
            bankFallbackOrder: ['CONTRACT'],
          },
        });
        const paid = f.txnCodes.find((x) => x.outcome === 'success')!.native;
        const valid = f.callback({ kind: 'payment', ref: 'TPCB1', native: paid, amountPaise: 14_905, at: new Date() });
        const cb = await svc.verifyCallback('CONTRACT', valid.headers, valid.body, '127.0.0.1');
        assert.deepEqual(
          { kind: cb.kind, ref: cb.ref, outcome: cb.result.outcome, amount: cb.result.amountPaise },
          { kind: 'payment', ref: 'TPCB1', outcome: 'success', amount: 14_905 },
        );
        const refund = f.callback({ kind: 'refund', ref: 'rfd_cb1', native: paid, amountPaise: 4_900, at: new Date() });
        const rcb = await svc.verifyCallback('CONTRACT', refund.headers, refund.body);
        assert.deepEqual([rcb.kind, rcb.ref, rcb.result.outcome], ['refund', 'rfd_cb1', 'success']);

        const refused = async (body: Buffer, headers: Record<string, string>, code: string) =>
          assert.rejects(svc.verifyCallback('CONTRACT', headers, body), (e: unknown) => {
            assert.ok(e instanceof AppError, String(e));
            assert.equal(e.code, code);
            return true;
          });
        const forged = f.callback({
          kind: 'payment',
          ref: 'TPCB2',
          native: paid,
          amountPaise: 1,
          at: new Date(),
          forge: true,
        });
        await refused(forged.body, forged.headers, 'invalid_signature');
        const stale = f.callback({
          kind: 'payment',
          ref: 'TPCB3',
          native: paid,
          amountPaise: 1,
          at: new Date(Date.now() - 10 * 60_000),
        });
        await refused(stale.body, stale.headers, 'invalid_signature');
        await refused(valid.body, valid.headers, 'replayed_request');
        const malformed = f.malformedCallback(new Date());
        await refused(malformed.body, malformed.headers, 'malformed_json');
        // Tampered: one byte of a valid callback changed.
        const fresh = f.callback({ kind: 'payment', ref: 'TPCB4', native: paid, amountPaise: 1, at: new Date() });
        const tampered = Buffer.from(fresh.body);
        tampered[Math.floor(tampered.length / 2)] ^= 0x01;
        await assert.rejects(svc.verifyCallback('CONTRACT', fresh.headers, tampered));
        const rows = await d.query<{ reason: string }>(
          `SELECT reason FROM platform.rejected_calls WHERE scope = 'bank:CONTRACT' ORDER BY id`,
        );
        const reasons = rows.rows.map((r) => r.reason);
        assert.deepEqual(reasons.slice(0, 4), ['bad_signature', 'stale_timestamp', 'replayed_nonce', 'malformed_body']);
        assert.equal(reasons.length, 5, 'the tampered one is recorded too');
      } finally {
        await d.close();
      }
    });

    test('tear down the scripted bank', async () => {
      await bank.close();
    });
  });
}
