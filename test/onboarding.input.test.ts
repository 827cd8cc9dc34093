import { createPrivateKey } from 'node:crypto';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLedgerVerify } from '../src/modules/ledger/index.ts';
import { runRewardsVerify } from '../src/modules/rewards/index.ts';
import { verifyMqttSecret, loadPki } from '../src/modules/terminals/index.ts';
import { deliverTerminalCredentials, openStoreBundle } from '../src/modules/onboarding/index.ts';
import { onboardingWorld } from './helpers/onboarding.ts';

// Bad input gets clear answers (malformed CSV, wrong types, fractional paise, an oversized header,
// text that is not UTF-8); an import stopped part way resumes from its checkpoint without
// duplicates; terminals get their credentials in bulk with the CA's revocation list.

let w: Awaited<ReturnType<typeof onboardingWorld>>;
before(async () => {
  w = await onboardingWorld();
});
after(async () => {
  await w.close();
});

const merchantsCsv = (n: number, from = 0, prefix = 'R') =>
  `external_ref,name,vpa,mcc,acquiring_bank\n${Array.from(
    { length: n },
    (_, i) => `${prefix}-${from + i},Shop ${from + i},${prefix.toLowerCase()}shop${from + i}@okaxis,5411,SIMBANK`,
  ).join('\n')}\n`;

test('a quote never closed stops the import at the line it opened on, after the rows before it', async () => {
  const text = `${merchantsCsv(2, 0, 'Q')}Q-9,"Unclosed Shop,q9@okaxis,5411,SIMBANK\nQ-10,Next,q10@okaxis,5411,SIMBANK\n`;
  const r = await w.importFile('merchants', { text });
  assert.equal(r.status, 'failed');
  assert.match(r.error ?? '', /^line 4: a quoted field is never closed/);
});

test('a stray quote or a wrong number of fields rejects that row only', async () => {
  const text =
    'external_ref,name,vpa,mcc,acquiring_bank\nS-1,Shop "One",s1@okaxis,5411,SIMBANK\nS-2,Shop Two,s2@okaxis,5411\nS-3,"Shop ""Three""",s3@okaxis,5411,SIMBANK\n';
  const r = await w.importFile('merchants', { text });
  assert.equal(r.status, 'completed');
  assert.equal(r.created, 1);
  const rj = await w.onboarding.rejects(r.import_id, { limit: 10 });
  assert.deepEqual(
    rj.map((x) => [Number(x.line), x.reason.slice(0, 40)]),
    [
      [2, 'malformed CSV: a quote inside an unquote'],
      [3, 'has 4 fields, the header has 5'],
    ],
  );
  const m = await w.db.query<{ name: string }>(`SELECT name FROM merchants.merchants WHERE vpa = 's3@okaxis'`);
  assert.equal(m.rows[0].name, 'Shop "Three"');
});

test('wrong types in JSON lines and fractional paise are rejected with the field named', async () => {
  const text = [
    '{"external_ref":"J-1","name":42,"vpa":"j1@okaxis","mcc":"5411","acquiring_bank":"SIMBANK"}',
    '{"external_ref":"J-2","name":"Ok","vpa":"j2@okaxis","mcc":5411,"acquiring_bank":"SIMBANK"}',
    '{"external_ref":"J-3","name":"Ok","vpa":"j3@okaxis","mcc":"5411","acquiring_bank":"SIMBANK","mcc":"5412"}',
    '["not","an","object"]',
    '{"external_ref":"J-5","name":"Fine","vpa":"j5@okaxis","mcc":"5411","acquiring_bank":"SIMBANK"}',
  ].join('\n');
  const r = await w.importFile('merchants', { text, format: 'jsonl' });
  assert.equal(r.created, 1);
  const rj = await w.onboarding.rejects(r.import_id, { limit: 10 });
  assert.deepEqual(
    rj.map((x) => [Number(x.line), x.field, x.reason]),
    [
      [1, 'name', 'must be text, not number'],
      [2, 'mcc', 'must be text, not number'],
      [3, null, rj[2].reason],
      [4, null, 'a line must be one JSON object'],
    ],
  );
  assert.match(rj[2].reason, /not valid JSON/);

  // Amounts: whole paise only, never rounded.
  const bal = [
    '{"external_ref":"P-1","merchant_id":"mer_00000000000000000000000000000000","vpa":"aa@okaxis","value_paise":"1050.5"}',
    '{"external_ref":"P-2","merchant_id":"mer_00000000000000000000000000000000","vpa":"aa@okaxis","value_paise":-5}',
    '{"external_ref":"P-3","merchant_id":"mer_00000000000000000000000000000000","vpa":"aa@okaxis","points":1e300}',
  ].join('\n');
  const b = await w.importFile('reward-balances', { text: bal, format: 'jsonl' });
  assert.deepEqual(
    (await w.onboarding.rejects(b.import_id, { limit: 10 })).map((x) => [Number(x.line), x.field, x.reason]),
    [
      [1, 'value_paise', 'has a fraction of a paisa (amounts are whole paise)'],
      [2, 'value_paise', 'must be greater than zero'],
      [3, 'points', 'is too large'],
    ],
  );
});

test('an oversized header, a file that is not UTF-8, an empty file and a missing column stop with a clear error', async () => {
  const huge = `${'x'.repeat(20_000)},b\n1,2\n`;
  const r1 = await w.importFile('merchants', { text: huge });
  assert.equal(r1.status, 'failed');
  assert.match(r1.error ?? '', /header is longer than 16384 bytes/);

  const latin1 = Buffer.concat([
    Buffer.from('external_ref,name,vpa,mcc,acquiring_bank\nL-1,Caf'),
    Buffer.from([0xe9]),
    Buffer.from(',l1@okaxis,5411,SIMBANK\n'),
  ]);
  const r2 = await w.importFile(
    'merchants',
    { text: latin1.toString('latin1') },
    {
      open: () => [latin1],
      bytes: latin1.length,
    },
  );
  assert.equal(r2.status, 'failed');
  assert.match(r2.error ?? '', /not UTF-8/);

  const r3 = await w.importFile('merchants', { text: '' });
  assert.equal(r3.status, 'failed');
  assert.match(r3.error ?? '', /empty/);

  const r4 = await w.importFile(
    'merchants',
    {
      text: 'MerchantCode,LegalName\nX,Y\n',
    },
    { mappingName: 'legacy-sqlserver-merchants' },
  );
  assert.equal(r4.status, 'failed');
  assert.match(r4.error ?? '', /no column "UpiVpa"/);
  assert.equal(r4.created, 0);
});

test('an import stopped part way resumes from its checkpoint and creates each row once', async () => {
  const text = merchantsCsv(25, 0, 'Z');
  // The first run dies after its second batch (as a killed process would: the job stays running).
  await assert.rejects(
    w.importFile(
      'merchants',
      { text },
      {
        batchSize: 5,
        afterBatch: (n) => {
          if (n === 2) throw new Error('power cut');
        },
      },
    ),
    /power cut/,
  );
  const mid = await w.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM merchants.merchants WHERE vpa LIKE 'zshop%'`,
  );
  assert.equal(mid.rows[0].n, 10);
  // Stopped on purpose (Ctrl-C): the job is interrupted at its checkpoint.
  const stop = new AbortController();
  const r2 = await w.importFile(
    'merchants',
    { text },
    {
      batchSize: 5,
      signal: stop.signal,
      afterBatch: () => stop.abort(),
    },
  );
  assert.equal(r2.status, 'interrupted');
  assert.equal(r2.resumed_from_line, 11);
  const r3 = await w.importFile('merchants', { text }, { batchSize: 5 });
  assert.equal(r3.status, 'completed');
  assert.equal(r3.import_id, r2.import_id);
  assert.equal(r3.resumed_from_line, 16);
  assert.equal(r3.created, 25);
  assert.equal(r3.unchanged, 0);
  const all = await w.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM merchants.merchants WHERE vpa LIKE 'zshop%'`,
  );
  assert.equal(all.rows[0].n, 25);
  assert.equal(r3.reconciliation?.matched, 25);
});

test('reward balances in many batches and programs keep both verifies green', async () => {
  const mer = await w.importFile(
    'merchants',
    { text: merchantsCsv(3, 0, 'RB') },
    { constants: { program_id: w.coalition.id } },
  );
  assert.equal(mer.created, 3);
  const lines = Array.from({ length: 240 }, (_, i) =>
    JSON.stringify({
      external_ref: `RB-BAL-${i}`,
      merchant_ref: `RB-${i % 3}`,
      vpa: `cust${i % 130}@okaxis`,
      points: 1 + (i % 17),
      expires_at: '2030-01-01',
    }),
  );
  const r = await w.importFile('reward-balances', { text: lines.join('\n'), format: 'jsonl' }, { batchSize: 100 });
  assert.equal(r.created, 240);
  assert.equal(r.reconciliation?.matched, 3);
  assert.equal((await runLedgerVerify(w.db)).ok, true);
  assert.deepEqual((await runRewardsVerify(w.db)).violations, []);
  const entries = await w.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ledger.entries WHERE kind = 'rewards.opening_balance'`,
  );
  assert.ok(entries.rows[0].n >= 3, 'at most 99 customers per entry');
});

test('terminal credentials in bulk: MQTT secrets that verify, encrypted certificate bundles per store, the CRL', async () => {
  const base = 'external_ref,name,vpa,mcc,acquiring_bank\nTC-1,Cred Shop,credshop@okaxis,5411,SIMBANK\n';
  await w.importFile('merchants', { text: base });
  await w.importFile('stores', { text: 'external_ref,merchant_ref,name\nTS-1,TC-1,One\nTS-2,TC-1,Two\n' });
  const t = await w.importFile('terminals', {
    text: 'external_ref,merchant_ref,store_ref,label\nTT-1,TC-1,TS-1,A\nTT-2,TC-1,TS-1,B\nTT-3,TC-1,TS-2,C\n',
  });
  assert.equal(t.created, 3);
  const pkiDir = mkdtempSync(join(tmpdir(), 'tp-pki-'));
  await (await loadPki()).initPki(pkiDir);
  const out = mkdtempSync(join(tmpdir(), 'tp-creds-'));
  const d = await deliverTerminalCredentials(w.db, {
    importId: t.import_id,
    kind: 'secrets',
    outDir: out,
    mode: 'development',
    pkiDir,
    mqttUrl: 'mqtt://127.0.0.1:1883',
  });
  assert.equal(d.terminals, 3);
  assert.equal(d.stores, 2);
  const csv = readFileSync(d.files[0], 'utf8').trim().split('\n');
  assert.equal(csv.length, 4);
  assert.equal(statSync(d.files[0]).mode & 0o777, 0o600);
  const [tid, , , , user, pass] = csv[1].split(',');
  const ok = await verifyMqttSecret(w.db, user, Buffer.from(pass));
  assert.equal(ok.ok, true);
  assert.equal(tid, user);
  // The secret itself is nowhere in the database: only its digest.
  const dump = await w.db.query<{ t: string }>(`SELECT x::text AS t FROM terminals.mqtt_secrets x`);
  assert.ok(!dump.rows.some((r) => r.t.includes(pass)));

  const certs = mkdtempSync(join(tmpdir(), 'tp-bundles-'));
  await assert.rejects(
    deliverTerminalCredentials(w.db, {
      importId: t.import_id,
      kind: 'certificates',
      outDir: certs,
      mode: 'development',
      pkiDir,
    }),
    /IMPORT_BUNDLE_PASSPHRASE/,
  );
  const pass2 = 'correct horse battery staple';
  const c = await deliverTerminalCredentials(w.db, {
    importId: t.import_id,
    kind: 'certificates',
    outDir: certs,
    mode: 'development',
    pkiDir,
    passphrase: pass2,
  });
  assert.equal(c.stores, 2);
  const bundles = readdirSync(certs).filter((f) => f.endsWith('.bundle'));
  assert.equal(bundles.length, 2);
  const opened = bundles.map((f) => openStoreBundle(join(certs, f), pass2));
  assert.deepEqual(opened.map((b) => b.terminals.length).sort(), [1, 2]);
  assert.match(opened[0].terminals[0].cert_pem, /BEGIN CERTIFICATE/);
  // The terminal's key, generated at run time by the import (no key material is committed): it parses as one.
  assert.equal(createPrivateKey(opened[0].terminals[0].key_pem).type, 'private');
  assert.throws(() => openStoreBundle(join(certs, bundles[0]), 'wrong passphrase!!'));
  assert.match(readFileSync(join(certs, 'crl.pem'), 'utf8'), /BEGIN (X509 )?CRL/);
  const recorded = await w.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM terminals.certificates`);
  assert.equal(recorded.rows[0].n, 3);
});
