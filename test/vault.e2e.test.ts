import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { createApiKey } from '../src/modules/identity/index.ts';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { PAYER_VPA_FIELD } from '../src/modules/payments/index.ts';
import type { Db } from '../src/platform/db.ts';

// Cardholder and personal data through the real API (PGlite, or PostgreSQL with
// TEST_DATABASE_URL): encrypted at rest, masked in answers, searchable by blind index, absent from
// logs; sensitive authentication data refused and found nowhere; tokens; tampering; and a key
// rotation while payments run.

/** Every row of every table, as text: what someone with a copy of the database would see. */
async function dumpDatabase(db: Db): Promise<string> {
  const tables = await db.query<{ s: string; t: string }>(
    `SELECT table_schema AS s, table_name AS t FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
  );
  const parts: string[] = [];
  for (const { s, t } of tables.rows) {
    const rows = await db.query<{ r: string }>(`SELECT x::text AS r FROM "${s}"."${t}" x`);
    parts.push(...rows.rows.map((r) => `${s}.${t}: ${r.r}`));
  }
  return parts.join('\n');
}

describe('sensitive data through the API', () => {
  let t: TestApp;
  const logLines: string[] = [];
  let terminalId: string;
  let merchantId: string;
  const VPA = 'lakshmi.narayanan@okicici';
  const PHONE = '9812345670';
  const PAN = '5500005555555559';
  const ACCOUNT = '001234567890123';

  before(async () => {
    t = await startTestApp({ logLines });
    const s = await t.seedMerchant('Narayanan Traders');
    terminalId = s.terminal.id;
    merchantId = s.merchant.id;
  });
  after(() => t.close());

  test('payer VPA: masked in answers, only ciphertext and a blind index in the table, found by VPA', async () => {
    const c = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 2599,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'Lakshmi.Narayanan@okicici',
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    assert.equal(c.body.payer_vpa, 'la****@okicici');
    const q = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 1500,
      currency: 'INR',
      method: 'upi_qr',
    });
    await t.payQr(q.body.upi_uri, VPA, 'success');
    const paid = await t.eventually(async () => {
      const g = await t.request('GET', `/v1/payments/${q.body.id}`);
      return g.body.status === 'succeeded' ? g : undefined;
    });
    assert.equal(paid!.body.payer_vpa, 'la****@okicici');

    const rows = await t.db.query<{
      id: string;
      payer_vpa: string | null;
      payer_vpa_ct: string;
      payer_vpa_bidx: string;
    }>(`SELECT id, payer_vpa, payer_vpa_ct, payer_vpa_bidx FROM payments.payments WHERE id = ANY($1)`, [
      [c.body.id, q.body.id],
    ]);
    for (const r of rows.rows) {
      assert.equal(r.payer_vpa, null, 'no plaintext column value');
      assert.match(r.payer_vpa_ct, /^tp1\.payer_vpa\.\d+\./);
      assert.equal(await t.app.services.vault.cipher.open(PAYER_VPA_FIELD, r.id, r.payer_vpa_ct), VPA);
    }
    assert.equal(rows.rows[0].payer_vpa_bidx, rows.rows[1].payer_vpa_bidx, 'same payer, same blind index');
    const byPayer = await t.request('GET', `/v1/payments?payer_vpa=${encodeURIComponent('LAKSHMI.narayanan@okicici')}`);
    assert.deepEqual(byPayer.body.data.map((p: { id: string }) => p.id).sort(), [c.body.id, q.body.id].sort());
    const other = await t.request('GET', `/v1/payments?payer_vpa=${encodeURIComponent('someone@okicici')}`);
    assert.deepEqual(other.body.data, []);
  });

  test('a ciphertext moved to another payment fails loudly: 500, generic message, nothing secret', async () => {
    const a = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 100,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'first.payer@okaxis',
    });
    const b = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 100,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'second.payer@okaxis',
    });
    // Let the simulator's approvals land first: a success re-seals the payer VPA, which would
    // overwrite the swapped ciphertext if it raced the UPDATE below.
    for (const id of [a.body.id, b.body.id]) {
      assert.ok(
        await t.eventually(async () => (await t.request('GET', `/v1/payments/${id}`)).body.status === 'succeeded'),
        'collect approved',
      );
    }
    await t.db.query(
      `UPDATE payments.payments SET payer_vpa_ct = (SELECT payer_vpa_ct FROM payments.payments WHERE id = $1) WHERE id = $2`,
      [a.body.id, b.body.id],
    );
    const before = logLines.length;
    const g = await t.request('GET', `/v1/payments/${b.body.id}`);
    assert.equal(g.status, 500);
    assert.equal(g.body.error.code, 'internal_error');
    assert.ok(!JSON.stringify(g.body).includes('first.payer') && !JSON.stringify(g.body).includes('tp1.'));
    const logged = logLines.slice(before).join('');
    assert.match(logged, /VaultError/);
    assert.ok(!logged.includes('first.payer') && !logged.includes('second.payer'));
    // The untouched one still reads.
    assert.equal((await t.request('GET', `/v1/payments/${a.body.id}`)).body.payer_vpa, 'fi****@okaxis');
    await t.db.query(`DELETE FROM payments.payment_events WHERE payment_id = $1`, [b.body.id]);
    await t.db.query(`DELETE FROM platform.outbox WHERE payload->>'payment_id' = $1`, [b.body.id]);
    await t.db.query(`DELETE FROM payments.payments WHERE id = $1`, [b.body.id]); // keep later scans clean
  });

  test('sensitive authentication data is refused and ends up nowhere: database, logs, answers', async () => {
    const CVV = '739';
    const PIN_BLOCK = '041234FEDCBA9876';
    const TRACK2 = `;${PAN}=28121010000012345678?`;
    const TRACK1 = `%B${PAN}^NARAYANAN/LAKSHMI^2812101000000000000000?`;
    const bodies: [string, string, unknown, Record<string, string>?][] = [
      ['POST', '/v1/payments', { terminal_id: terminalId, amount: 500, currency: 'INR', method: 'upi_qr', cvv: CVV }],
      [
        'POST',
        '/v1/payments',
        {
          terminal_id: terminalId,
          amount: 500,
          currency: 'INR',
          method: 'upi_qr',
          card: { number: PAN, pin_block: PIN_BLOCK },
        },
        { 'idempotency-key': 'sad-attempt-1' },
      ],
      [
        'POST',
        '/v1/payments',
        { terminal_id: terminalId, amount: 500, currency: 'INR', method: 'upi_qr', note: TRACK2.slice(0, 50) },
      ],
      ['POST', '/v1/vault/tokens', { purpose: 'pan', value: TRACK1 }],
      [
        'POST',
        '/v1/merchants',
        { name: 'X', vpa: 'x@simbank', mcc: '5411', acquiring_bank: 'SIMBANK', extra: [{ CVV2: CVV }] },
      ],
      ['GET', `/v1/payments?cvc=${CVV}`, undefined],
    ];
    const answers: string[] = [];
    for (const [method, path, body, headers] of bodies) {
      const r = await t.request(method, path, body, headers);
      answers.push(JSON.stringify(r.body));
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'sensitive_data_refused');
    }
    assert.match(answers[0], /"field":"body.cvv"/);
    assert.match(answers[1], /"field":"body.card.pin_block"/);
    const db = await dumpDatabase(t.db);
    const logs = logLines.join('');
    // A 3-digit CVV can occur inside ids or timestamps by chance; look for it standing alone.
    const holds = (hay: string, secret: string) =>
      secret === CVV ? new RegExp(`(?<![0-9A-Za-z.:])${CVV}(?![0-9A-Za-z])`).test(hay) : hay.includes(secret);
    for (const secret of [CVV, PIN_BLOCK, TRACK2.slice(1, 30), PAN, '^NARAYANAN/LAKSHMI^']) {
      assert.ok(!holds(db, secret), `the database holds ${secret}`);
      assert.ok(!holds(logs, secret), `the logs hold ${secret}`);
      for (const a of answers) assert.ok(!holds(a, secret), `an answer holds ${secret}`);
    }
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /tillpoint_sensitive_auth_data_refused_total \d+/);
  });

  test('the whole payment and rewards flow leaves no VPA, phone or PAN in the logs', async () => {
    const prog = await t.request('POST', '/v1/rewards/programs', {
      merchant_id: merchantId,
      name: 'Points',
      point_value_paise: 50,
      earn: { points: 1, per_amount_paise: 1000, rounding: 'down' },
    });
    assert.equal(prog.status, 201, JSON.stringify(prog.body));
    const p = await t.request('POST', '/v1/payments', {
      terminal_id: terminalId,
      amount: 25_000,
      currency: 'INR',
      method: 'upi_qr',
      rewards: { phone: PHONE },
    });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await t.payQr(p.body.upi_uri, VPA, 'success');
    await t.eventually(async () => (await t.request('GET', `/v1/payments/${p.body.id}`)).body.status === 'succeeded');
    const bal = await t.request('GET', `/v1/rewards/balance?merchant_id=${merchantId}&phone=${PHONE}`);
    assert.equal(bal.body.available, 25, JSON.stringify(bal.body));
    const refund = await t.request('POST', `/v1/payments/${p.body.id}/refunds`, {
      amount: 5000,
      reason: `customer ${VPA} asked`,
    });
    assert.equal(refund.status, 201);
    const tok = await t.request('POST', '/v1/vault/tokens', { purpose: 'pan', value: PAN });
    assert.equal(tok.status, 201);
    await t.request('POST', '/v1/vault/tokens', { purpose: 'phone', value: PHONE });
    await t.request('POST', '/v1/vault/detokenize', { token: tok.body.token, reason: 'chargeback evidence' });
    await t.worker.runOnce();
    const logs = logLines.join('');
    assert.ok(logLines.length > 10, 'the flow was logged');
    for (const raw of [VPA, PHONE, PAN]) assert.ok(!logs.includes(raw), `a log line carries ${raw}`);
  });

  test('tokens over HTTP: detokenize needs its own permission, is audited, and merchants see only their own', async () => {
    const t1 = await t.request('POST', '/v1/vault/tokens', { purpose: 'bank_account', value: ACCOUNT });
    assert.ok([200, 201].includes(t1.status), JSON.stringify(t1.body));
    assert.equal(t1.body.masked, '***********0123');
    const again = await t.request('POST', '/v1/vault/tokens', { purpose: 'bank_account', value: ACCOUNT });
    assert.equal(again.status, 200);
    assert.equal(again.body.token, t1.body.token);
    const readOnly = await createApiKey(t.db, {
      name: 'no detokenize',
      merchantId: null,
      permissions: ['payments:read', 'vault:tokenize'],
    });
    const denied = await t.request(
      'POST',
      '/v1/vault/detokenize',
      { token: t1.body.token, reason: 'curious' },
      { authorization: `Bearer ${readOnly.key}` },
    );
    assert.equal(denied.status, 403);
    const merchantKey = await createApiKey(t.db, {
      name: 'merchant',
      merchantId,
      permissions: ['vault:tokenize', 'vault:detokenize'],
    });
    const notTheirs = await t.request(
      'POST',
      '/v1/vault/detokenize',
      { token: t1.body.token, reason: 'curious' },
      { authorization: `Bearer ${merchantKey.key}` },
    );
    assert.equal(notTheirs.status, 404);
    assert.equal(notTheirs.body.error.code, 'token_not_found');
    const ok = await t.request('POST', '/v1/vault/detokenize', { token: t1.body.token, reason: 'settlement check' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.value, ACCOUNT);
    const audit = await t.db.query<{ action: string; outcome: string }>(
      `SELECT action, outcome FROM audit.events WHERE action = 'vault.detokenize' ORDER BY occurred_at`,
    );
    assert.deepEqual(audit.rows.map((r) => r.outcome).slice(-2), ['failure', 'success']);
    const local = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM vault.access_log WHERE token = $1`, [
      t1.body.token,
    ]);
    assert.equal(local.rows[0].n, 2);
  });

  test('merchant settlement account: stored encrypted, shown masked, opened only by the settlement path', async () => {
    const m = await t.request('POST', '/v1/merchants', {
      name: 'Bank Test',
      vpa: 'banktest@simbank',
      mcc: '5411',
      acquiring_bank: 'SIMBANK',
      settlement_account: { account_number: ACCOUNT, ifsc: 'HDFC0001234' },
    });
    assert.equal(m.status, 201, JSON.stringify(m.body));
    assert.deepEqual(m.body.settlement_account, { account_number: '******0123', ifsc: 'HDFC*******' });
    const bad = await t.request('POST', '/v1/merchants', {
      name: 'Bad',
      vpa: 'bad@simbank',
      mcc: '5411',
      acquiring_bank: 'SIMBANK',
      settlement_account: { account_number: '12', ifsc: 'nope' },
    });
    assert.equal(bad.status, 400);
    const row = (
      await t.db.query<Record<string, string>>(`SELECT * FROM merchants.merchants WHERE id = $1`, [m.body.id])
    ).rows[0];
    assert.ok(!JSON.stringify(row).includes(ACCOUNT) && !JSON.stringify(row).includes('HDFC0001234'));
    assert.deepEqual(await t.app.services.merchants.getSettlementAccount(m.body.id, 'payout test'), {
      account_number: ACCOUNT,
      ifsc: 'HDFC0001234',
    });
    const upd = await t.request('PATCH', `/v1/merchants/${m.body.id}`, {
      settlement_account: { account_number: '998877665544', ifsc: 'ICIC0000001' },
    });
    assert.deepEqual(upd.body.settlement_account, { account_number: '******5544', ifsc: 'ICIC*******' });
  });
});

describe('key rotation while payments run', () => {
  let t: TestApp;
  before(async () => {
    // A short key cache: every process sees a rotation within 0.2 s, so re-encryption may start after 1.4 s.
    t = await startTestApp({ env: { KEY_CACHE_SECONDS: '0.2', KEY_REWRAP_BATCH_SIZE: '7' } });
  });
  after(() => t.close());

  test('rotate during load: every row decrypts afterwards, nothing is lost, old versions retire, the ledger verifies', async () => {
    const vault = t.app.services.vault;
    const { terminal } = await t.seedMerchant('Rotation Mart');
    const expected = new Map<string, string>();
    let rotated = false;
    async function payer(i: number) {
      const vpa = `payer${i}@okaxis`;
      const r = await t.request('POST', '/v1/payments', {
        terminal_id: terminal.id,
        amount: 100 + i,
        currency: 'INR',
        method: i % 2 ? 'upi_collect' : 'upi_qr',
        ...(i % 2 ? { payer_vpa: vpa } : {}),
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      if (!(i % 2)) assert.equal((await t.payQr(r.body.upi_uri, vpa, 'success')).status, 200);
      expected.set(r.body.id, vpa);
    }
    // Four concurrent streams of payments; the rotation lands in the middle of them.
    const streams = [0, 1, 2, 3].map(async (s) => {
      for (let k = 0; k < 10; k++) {
        await payer(s * 10 + k);
        if (s === 0 && k === 4) {
          await vault.rotate();
          rotated = true;
        }
      }
    });
    // The worker runs its re-encryption ticks alongside the load, as in production.
    let stop = false;
    const worker = (async () => {
      while (!stop) {
        await vault.runWorkerTick();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await Promise.all(streams);
    assert.ok(rotated);
    await t.eventually(async () => {
      const open = await t.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM payments.payments WHERE status IN ('created', 'pending') AND method = 'upi_qr'`,
      );
      return open.rows[0].n === 0;
    });
    // Past the safe delay, the job finishes and the old versions retire.
    await t.eventually(
      async () => (await vault.keys.list()).every((k) => k.purpose !== 'payer_vpa' || k.state !== 'decrypt_only'),
      15_000,
    );
    stop = true;
    await worker;

    const keys = (await vault.keys.list()).filter((k) => k.purpose === 'payer_vpa');
    assert.deepEqual(keys.map((k) => `${k.kind} v${k.version} ${k.state}`).sort(), [
      'aead v1 retired',
      'aead v2 active',
      'hmac v1 retired',
      'hmac v2 active',
    ]);
    const rows = await t.db.query<{ id: string; payer_vpa_ct: string; payer_vpa_bidx: string }>(
      `SELECT id, payer_vpa_ct, payer_vpa_bidx FROM payments.payments WHERE terminal_id = $1 ORDER BY id`,
      [terminal.id],
    );
    assert.equal(rows.rows.length, 40, 'every payment is there');
    for (const r of rows.rows) {
      assert.match(r.payer_vpa_ct, /^tp1\.payer_vpa\.2\./);
      assert.match(r.payer_vpa_bidx, /^v2\./);
      assert.equal(await vault.cipher.open(PAYER_VPA_FIELD, r.id, r.payer_vpa_ct), expected.get(r.id));
    }
    // And through the API: answers masked, lookups by VPA on the new index.
    const one = [...expected.entries()][7];
    assert.deepEqual(
      (await t.request('GET', `/v1/payments?payer_vpa=${one[1]}`)).body.data.map((p: { id: string }) => p.id),
      [one[0]],
    );
    const report = await runLedgerVerify(t.db);
    assert.equal(report.ok, true, JSON.stringify(report.violations?.[0]));
  });
});
