import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMetrics } from '../../../../metrics.ts';
import { signRequest } from '../../../../platform/signing.ts';
import { createConnector } from '../index.ts';
import { BankCallError, type BankCallFailureKind } from '../../types.ts';

// The connector's failure handling, against small local servers that misbehave on purpose.

const bank = (url: string) => ({ code: 'SIMBANK', connector: 'simbank', url, secret: 's' });

async function server(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const s = createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/sim`;
}

const intent = {
  txnRef: 'TP1',
  amountPaise: 100,
  payeeVpa: 'shop@simbank',
  payeeName: 'Shop',
  mcc: '5411',
  expiresAt: new Date(Date.now() + 60_000),
  callbackUrl: 'http://127.0.0.1:1/cb',
};

function unavailable(timeout: boolean, delivery: BankCallFailureKind = 'uncertain') {
  return (e: unknown) => {
    assert.ok(e instanceof BankCallError, String(e));
    assert.equal(e.code, 'bank_unavailable');
    assert.equal(e.delivery, delivery);
    assert.equal((e.details as { timeout: boolean }).timeout, timeout);
    return true;
  };
}

test('a bank that never answers: every operation fails as bank_unavailable with timeout:true', async (t) => {
  const url = await server(t, () => {
    /* hold the request open */
  });
  const metrics = createMetrics();
  const c = createConnector(bank(url), { publicUrl: 'http://x', timeoutMs: 100, metrics });
  await assert.rejects(c.registerIntent(intent), unavailable(true));
  await assert.rejects(c.sendCollect({ ...intent, payerVpa: 'a.b@okbank' }), unavailable(true));
  await assert.rejects(
    c.refund({ refundRef: 'r1', originalTxnRef: 'TP1', amountPaise: 1, callbackUrl: 'http://x/cb' }),
    unavailable(true),
  );
  await assert.rejects(c.checkStatus('TP1'), unavailable(true));
  await assert.rejects(c.checkRefundStatus('r1'), unavailable(true));
  const text = await metrics.registry.getSingleMetricAsString('tillpoint_bank_call_duration_seconds');
  assert.match(text, /_count\{bank="SIMBANK",op="register_intent",outcome="timeout"\} 1/);
});

test('an unreachable bank: bank_unavailable, timeout:false, known not to have been sent', async (t) => {
  const probe = await server(t, () => {});
  const port = new URL(probe).port;
  // A port nothing listens on.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  assert.notEqual(String(deadPort), port);
  const c = createConnector(bank(`http://127.0.0.1:${deadPort}/sim`), { publicUrl: 'http://x', timeoutMs: 1000 });
  await assert.rejects(c.checkStatus('TP1'), unavailable(false, 'not_sent'));
});

test('5xx and unreadable answers are uncertain bank_unavailable; 409 and 400 are rejected', async (t) => {
  let mode = 500;
  const url = await server(t, (req, res) => {
    req.resume();
    req.on('end', () => {
      if (mode === 0) {
        res.setHeader('content-type', 'application/json');
        res.end('<html>oops</html>');
      } else if (mode === 1) {
        res.end(JSON.stringify({ txn_ref: 'TP1' }));
      } else {
        res.statusCode = mode;
        res.end('{}');
      }
    });
  });
  const c = createConnector(bank(url), { publicUrl: 'http://x', timeoutMs: 1000 });
  await assert.rejects(c.checkStatus('TP1'), unavailable(false));
  mode = 0;
  await assert.rejects(c.checkStatus('TP1'), unavailable(false));
  mode = 1;
  await assert.rejects(c.checkStatus('TP1'), unavailable(false));
  mode = 409;
  await assert.rejects(
    c.registerIntent(intent),
    (e: unknown) => e instanceof BankCallError && e.code === 'conflict' && e.delivery === 'rejected',
  );
  mode = 400;
  await assert.rejects(
    c.registerIntent(intent),
    (e: unknown) => e instanceof BankCallError && e.code === 'internal_error' && e.delivery === 'rejected',
  );
});

test('a connection reset after the request was read is uncertain: the bank may have acted', async (t) => {
  let read = 0;
  const url = await server(t, (req) => {
    req.resume();
    req.on('end', () => {
      read++;
      req.socket.resetAndDestroy();
    });
  });
  const c = createConnector(bank(url), { publicUrl: 'http://x', timeoutMs: 2000 });
  await assert.rejects(
    c.refund({ refundRef: 'r1', originalTxnRef: 'TP1', amountPaise: 1, callbackUrl: 'http://x/cb' }),
    unavailable(false),
  );
  assert.equal(read, 1, 'the bank read the whole request before the reset');
});

test('requests are signed, JSON, with rupee amounts', async (t) => {
  let seen: { headers: IncomingMessage['headers']; body: string; path?: string } | undefined;
  const url = await server(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen = { headers: req.headers, body: Buffer.concat(chunks).toString(), path: req.url };
      res.end(JSON.stringify({ txn_ref: 'TP1', bank_ref: '111122223333', status: 'registered' }));
    });
  });
  const c = createConnector(bank(url), { publicUrl: 'http://x', timeoutMs: 1000 });
  assert.deepEqual(await c.registerIntent({ ...intent, amountPaise: 14_905 }), { bankRef: '111122223333' });
  assert.equal(seen?.path, '/sim/v1/intents');
  assert.match(String(seen?.headers['x-tillpoint-signature']), /^v1=[0-9a-f]{64}$/);
  const body = JSON.parse(seen!.body);
  assert.equal(body.amount, '149.05');
  assert.equal(body.currency, 'INR');
});

test('verifyCallback reads the two callback kinds and refuses garbage, after the signature', () => {
  const c = createConnector(bank('http://127.0.0.1:1/sim'), { publicUrl: 'http://x', timeoutMs: 100 });
  const signed = (body: unknown, secret = 's') => {
    const raw = typeof body === 'string' ? body : JSON.stringify(body);
    return [Buffer.from(raw), signRequest(secret, raw)] as const;
  };
  const v = c.verifyCallback(
    ...signed({ type: 'refund', refund_ref: 'rfd_1', original_txn_ref: 'TP1', amount: '1.00', response_code: '00' }),
  );
  assert.ok(v.ok);
  assert.deepEqual(v.callback, {
    kind: 'refund',
    ref: 'rfd_1',
    result: { outcome: 'success', responseCode: '00', message: 'success', amountPaise: 100 },
  });
  for (const junk of [
    'null',
    '"x"',
    '{}',
    '{"a":',
    { type: 'payment', response_code: '00' },
    { type: 'other', txn_ref: 'a', response_code: '00' },
    { type: 'payment', txn_ref: 'TP1', response_code: '<script>' },
    { type: 'payment', txn_ref: 'TP1', amount: '-1', response_code: '00' },
  ]) {
    assert.deepEqual(c.verifyCallback(...signed(junk)), { ok: false, reason: 'malformed_body' }, String(junk));
  }
  const forged = c.verifyCallback(...signed({ type: 'payment', txn_ref: 'TP1', response_code: '00' }, 'other'));
  assert.deepEqual(forged, { ok: false, reason: 'bad_signature' });
});

test('unknown connector names are refused', () => {
  assert.throws(
    () => createConnector({ ...bank('http://x'), connector: 'toString' }, { publicUrl: 'http://x', timeoutMs: 1 }),
    /unknown connector/,
  );
});
