import { test } from 'node:test';
import { KeyObject } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDb } from '../../platform/testing.ts';
import { fixedClock } from '../../platform/clock.ts';
import { DEFAULT_VPA_PATTERN } from '../../platform/mask.ts';
import type { Principal } from '../../platform/principal.ts';
import { createVault, type EncryptedField, VaultError } from './index.ts';
import { createLocalKeyManager, newKeyringJson } from './kms/local.ts';
import { KmsError, type KeyManager } from './kms/types.ts';

// The vault against a real database (PGlite, or PostgreSQL with TEST_DATABASE_URL) and the real
// local keyring. Tamper tests, rotation with background re-encryption and retirement, blind
// indexes across a rotation, tokens and their audit trail.

const ITEMS: EncryptedField = {
  table: 'vt.items',
  idColumn: 'id',
  column: 'secret_ct',
  purpose: 'test_secret',
  blindIndex: { column: 'secret_bidx', normalize: (v) => v.toLowerCase() },
  legacyPlaintextColumn: 'secret_plain',
};
const tmp = () => mkdtempSync(join(tmpdir(), 'tp-vault-'));

async function setup(opts: { cacheTtlMs?: number; batchSize?: number; wrapKms?: (k: KeyManager) => KeyManager } = {}) {
  const db = await createTestDb();
  await db.exec(
    `CREATE SCHEMA vt; CREATE TABLE vt.items (id text PRIMARY KEY, secret_ct text, secret_bidx text, secret_plain text)`,
  );
  const dir = tmp();
  const localKms = createLocalKeyManager({ kind: 'file', path: join(dir, 'keyring.json'), createIfMissing: true });
  const kms = opts.wrapKms ? opts.wrapKms(localKms) : localKms;
  const clock = fixedClock('2026-01-01T00:00:00Z');
  const vault = createVault({
    db,
    kms,
    clock,
    config: {
      cacheTtlMs: opts.cacheTtlMs ?? 0,
      rewrapBatchSize: opts.batchSize ?? 7,
      cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 },
    },
    fields: [ITEMS],
    vpaPattern: new RegExp(DEFAULT_VPA_PATTERN),
  });
  await vault.init();
  async function insert(id: string, value: string) {
    const s = await vault.cipher.seal(ITEMS, id, value);
    await db.query(`INSERT INTO vt.items (id, secret_ct, secret_bidx) VALUES ($1, $2, $3)`, [
      id,
      s.ciphertext,
      s.blindIndex,
    ]);
    return s;
  }
  const row = async (id: string) =>
    (
      await db.query<{ secret_ct: string; secret_bidx: string; secret_plain: string | null }>(
        `SELECT * FROM vt.items WHERE id = $1`,
        [id],
      )
    ).rows[0];
  return { db, vault, kms, clock, dir, insert, row, close: () => db.close() };
}

/** Every failure must be loud and say nothing secret. */
async function rejectsCleanly(p: Promise<unknown>, code: string, secrets: string[]) {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof VaultError, `expected VaultError, got ${e.name}: ${e.message}`);
    assert.equal((e as VaultError).code, code, e.message);
    for (const s of secrets)
      assert.ok(
        !e.message.includes(s) && !String(e.stack).includes(s),
        `error text carries secret material: ${e.message}`,
      );
    return true;
  });
}

test('field encryption: round trip, ciphertext carries purpose and version, nothing in clear', async () => {
  const t = await setup();
  try {
    const s = await t.insert('it_1', 'ravi.kumar@okaxis');
    assert.match(s.ciphertext, /^tp1\.test_secret\.1\.[A-Za-z0-9_-]+$/);
    assert.match(s.blindIndex!, /^v1\.[A-Za-z0-9_-]{43}$/);
    assert.ok(!s.ciphertext.includes('ravi'));
    assert.equal(await t.vault.cipher.open(ITEMS, 'it_1', s.ciphertext), 'ravi.kumar@okaxis');
    // Same value, fresh IV: ciphertexts differ, the blind index is the same (normalized).
    const s2 = await t.vault.cipher.seal(ITEMS, 'it_2', 'RAVI.kumar@okaxis');
    assert.notEqual(s2.ciphertext, s.ciphertext);
    assert.equal(s2.blindIndex, s.blindIndex);
    // DEKs are stored only wrapped.
    const keys = await t.db.query<{ wrapped_key: string }>(`SELECT wrapped_key FROM vault.data_keys`);
    for (const k of keys.rows) assert.match(k.wrapped_key, /^lk1:1:/);
  } finally {
    await t.close();
  }
});

test('unwrapped data keys are held as KeyObjects and the plaintext the KMS handed over is zeroed', async () => {
  const handedOver: Buffer[] = [];
  const t = await setup({
    wrapKms: (k) => ({
      ...k,
      unwrap: async (w, c) => {
        const plain = await k.unwrap(w, c);
        handedOver.push(plain);
        return plain;
      },
    }),
  });
  try {
    const s = await t.insert('it_1', 'ravi.kumar@okaxis');
    assert.equal(await t.vault.cipher.open(ITEMS, 'it_1', s.ciphertext), 'ravi.kumar@okaxis');
    const active = await t.vault.keys.active(ITEMS.purpose, 'aead');
    // A KeyObject: Node 24 takes a Buffer key through two thrown TypeErrors on every call.
    assert.ok(active.key instanceof KeyObject);
    assert.equal(active.key.symmetricKeySize, 32);
    assert.ok(handedOver.length >= 2, 'the encryption key and the index key were unwrapped');
    for (const b of handedOver)
      assert.ok(
        b.every((x) => x === 0),
        'the KMS plaintext is zeroed once held',
      );
  } finally {
    await t.close();
  }
});

test('tamper: flipped byte, truncation, moved row, moved column, altered header all fail loudly without key material', async () => {
  const t = await setup();
  try {
    const s = await t.insert('it_1', 'ravi.kumar@okaxis');
    await t.insert('it_2', 'someone.else@okicici');
    const keyring = readFileSync(join(t.dir, 'keyring.json'), 'utf8');
    const kek = JSON.parse(keyring).keys[0].key as string;
    const payload = s.ciphertext.split('.')[3];
    const secrets = ['ravi.kumar', kek, payload];

    // A flipped bit in every part of the payload: IV, ciphertext, tag.
    const raw = Buffer.from(payload, 'base64url');
    for (const i of [0, 11, 12, raw.length - 17, raw.length - 1]) {
      const b = Buffer.from(raw);
      b[i] ^= 0x01;
      await rejectsCleanly(
        t.vault.cipher.open(ITEMS, 'it_1', `tp1.test_secret.1.${b.toString('base64url')}`),
        'decrypt_failed',
        secrets,
      );
    }
    // Truncated: a few bytes short, and cut below the IV + tag size.
    await rejectsCleanly(
      t.vault.cipher.open(ITEMS, 'it_1', `tp1.test_secret.1.${raw.subarray(0, raw.length - 3).toString('base64url')}`),
      'decrypt_failed',
      secrets,
    );
    await rejectsCleanly(
      t.vault.cipher.open(ITEMS, 'it_1', `tp1.test_secret.1.${raw.subarray(0, 20).toString('base64url')}`),
      'malformed_ciphertext',
      secrets,
    );
    await rejectsCleanly(
      t.vault.cipher.open(ITEMS, 'it_1', s.ciphertext.slice(0, 20)),
      'malformed_ciphertext',
      secrets,
    );
    // Copied into another row, through the database: the other row's value does not open as it.
    await t.db.query(`UPDATE vt.items SET secret_ct = $1 WHERE id = 'it_2'`, [s.ciphertext]);
    await rejectsCleanly(
      t.vault.cipher.open(ITEMS, 'it_2', (await t.row('it_2')).secret_ct),
      'decrypt_failed',
      secrets,
    );
    // Another column or table with the same purpose.
    await rejectsCleanly(
      t.vault.cipher.open({ ...ITEMS, column: 'other_ct' }, 'it_1', s.ciphertext),
      'decrypt_failed',
      secrets,
    );
    // Header edited to claim another version or purpose.
    await rejectsCleanly(
      t.vault.cipher.open(ITEMS, 'it_1', s.ciphertext.replace('.1.', '.2.')),
      'unknown_key_version',
      secrets,
    );
    await rejectsCleanly(
      t.vault.cipher.open(ITEMS, 'it_1', s.ciphertext.replace('test_secret', 'other')),
      'wrong_purpose',
      secrets,
    );
    // And the original still opens.
    assert.equal(await t.vault.cipher.open(ITEMS, 'it_1', s.ciphertext), 'ravi.kumar@okaxis');
  } finally {
    await t.close();
  }
});

test('rotation: the worker re-encrypts in resumable batches, lookups work throughout, the old version is retired and can no longer decrypt', async () => {
  const t = await setup({ cacheTtlMs: 0, batchSize: 7 });
  try {
    const values = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      const id = `it_${String(i).padStart(3, '0')}`;
      values.set(id, `user${i}@okaxis`);
      await t.insert(id, `user${i}@okaxis`);
    }
    // Two rows from before encryption existed: plaintext only.
    await t.db.query(
      `INSERT INTO vt.items (id, secret_plain) VALUES ('it_900', 'legacy.one@oksbi'), ('it_901', 'legacy.two@oksbi')`,
    );
    values.set('it_900', 'legacy.one@oksbi').set('it_901', 'legacy.two@oksbi');
    // The first pass moves them into ciphertext (no rotation needed for that).
    assert.equal(await t.vault.rewrap.runToCompletion(), 2);
    assert.equal((await t.row('it_900')).secret_plain, null);
    assert.equal(await t.vault.cipher.open(ITEMS, 'it_900', (await t.row('it_900')).secret_ct), 'legacy.one@oksbi');
    const oldCt = (await t.row('it_005')).secret_ct;

    const rotated = await t.vault.rotate({ purpose: 'test_secret' });
    assert.deepEqual(rotated.map((r) => `${r.kind}:${r.from}->${r.to}`).sort(), ['aead:1->2', 'hmac:1->2']);
    // New writes use version 2 at once; old rows still decrypt; lookups find both generations.
    const fresh = await t.insert('it_500', 'user7@okaxis');
    assert.match(fresh.ciphertext, /^tp1\.test_secret\.2\./);
    const candidates = await t.vault.cipher.lookupIndexes(ITEMS, 'USER7@okaxis');
    assert.equal(candidates.length, 2);
    const found = await t.db.query<{ id: string }>(
      `SELECT id FROM vt.items WHERE secret_bidx = ANY($1::text[]) ORDER BY id`,
      [candidates],
    );
    assert.deepEqual(
      found.rows.map((r) => r.id),
      ['it_007', 'it_500'],
    );
    values.set('it_500', 'user7@okaxis');

    // The worker waits until every process has seen the rotation (2 x cache TTL + 1 s).
    assert.equal(await t.vault.runWorkerTick(), 0, 'nothing before the safe delay');
    t.clock.advance(1_500);
    // One batch per tick, resumable: the cursor is in the database.
    const first = await t.vault.runWorkerTick();
    assert.ok(first > 0 && first <= 7, `first batch rewrote ${first}`);
    const job = (
      await t.db.query<{ cursor: string }>(`SELECT cursor FROM vault.rewrap_jobs WHERE field = 'vt.items.secret_ct'`)
    ).rows[0];
    assert.equal(job.cursor, 'it_006');
    // A second "worker" (a new vault on the same database) carries on from there.
    const other = createVault({
      db: t.db,
      kms: t.kms,
      clock: t.clock,
      config: { cacheTtlMs: 0, rewrapBatchSize: 7, cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 } },
      fields: [ITEMS],
      vpaPattern: /./,
    });
    await other.rewrap.runToCompletion();

    const status = await t.vault.status();
    const v1 = status.keys.find((k) => k.purpose === 'test_secret' && k.kind === 'aead' && k.version === 1)!;
    const v2 = status.keys.find((k) => k.purpose === 'test_secret' && k.kind === 'aead' && k.version === 2)!;
    assert.equal(v1.state, 'retired');
    assert.equal(v2.state, 'active');
    assert.deepEqual(v2.rows, [{ field: 'vt.items.secret_ct', rows: values.size }]);
    assert.equal(status.plaintextRows.length, 0, 'legacy plaintext moved into ciphertext');
    const retiredRow = (
      await t.db.query<{ wrapped_key: string | null }>(
        `SELECT wrapped_key FROM vault.data_keys WHERE purpose = 'test_secret' AND version = 1 AND kind = 'aead'`,
      )
    ).rows[0];
    assert.equal(retiredRow.wrapped_key, null, 'a retired key is erased, not just flagged');

    // Every row decrypts to what was written; nothing lost.
    const all = await t.db.query<{ id: string; secret_ct: string; secret_bidx: string; secret_plain: string | null }>(
      `SELECT * FROM vt.items ORDER BY id`,
    );
    assert.equal(all.rows.length, values.size);
    for (const r of all.rows) {
      assert.equal(r.secret_plain, null);
      assert.match(r.secret_ct, /^tp1\.test_secret\.2\./);
      assert.match(r.secret_bidx, /^v2\./);
      assert.equal(await t.vault.cipher.open(ITEMS, r.id, r.secret_ct), values.get(r.id));
    }
    // The retired version can no longer decrypt, in this process or a new one.
    await rejectsCleanly(t.vault.cipher.open(ITEMS, 'it_005', oldCt), 'key_retired', ['user5']);
    await rejectsCleanly(other.cipher.open(ITEMS, 'it_005', oldCt), 'key_retired', ['user5']);
    // Lookups now need only the current index key.
    assert.equal((await t.vault.cipher.lookupIndexes(ITEMS, 'user7@okaxis')).length, 1);
  } finally {
    await t.close();
  }
});

test('rotation: a row that does not decrypt is reported, kept, and keeps its key version from being retired', async () => {
  const t = await setup({ cacheTtlMs: 0, batchSize: 50 });
  try {
    await t.insert('it_1', 'a@okaxis');
    await t.insert('it_2', 'b@okaxis');
    const bad = (await t.row('it_1')).secret_ct;
    await t.db.query(`UPDATE vt.items SET secret_ct = $1 WHERE id = 'it_2'`, [bad]); // moved: will not decrypt
    await t.vault.rotate({ purpose: 'test_secret', kind: 'aead' });
    t.clock.advance(1_500);
    await t.vault.rewrap.runToCompletion();
    const keys = await t.vault.keys.list();
    assert.equal(
      keys.find((k) => k.purpose === 'test_secret' && k.kind === 'aead' && k.version === 1)!.state,
      'decrypt_only',
    );
    assert.equal((await t.row('it_2')).secret_ct, bad, 'the undecryptable value is left as it was');
    const job = (
      await t.db.query<{ pass_failures: number }>(
        `SELECT pass_failures FROM vault.rewrap_jobs WHERE field = 'vt.items.secret_ct'`,
      )
    ).rows[0];
    assert.equal(Number(job.pass_failures), 1);
  } finally {
    await t.close();
  }
});

test('KEK rotation: data keys are re-wrapped under the new KEK version, the old one is erased, data still decrypts', async () => {
  const t = await setup();
  try {
    const s = await t.insert('it_1', 'ravi@okaxis');
    const out = await t.vault.rotateKek();
    assert.equal(out.kek.kekRef, 'local:v2');
    assert.ok(out.rewrapped >= 2);
    assert.equal(out.retired, 1);
    const wrapped = await t.db.query<{ wrapped_key: string; kek_ref: string }>(
      `SELECT wrapped_key, kek_ref FROM vault.data_keys`,
    );
    for (const w of wrapped.rows) {
      assert.match(w.wrapped_key, /^lk1:2:/);
      assert.equal(w.kek_ref, 'local:v2');
    }
    const ring = JSON.parse(readFileSync(join(t.dir, 'keyring.json'), 'utf8'));
    assert.equal(
      ring.keys.find((k: { version: number }) => k.version === 1).key,
      undefined,
      'retired KEK material is erased',
    );
    // A fresh process (empty cache) unwraps under v2 and decrypts.
    t.vault.keys.wipe();
    assert.equal(await t.vault.cipher.open(ITEMS, 'it_1', s.ciphertext), 'ravi@okaxis');
  } finally {
    await t.close();
  }
});

test('a replaced keyring stops the start with a clear message instead of failing payments later', async () => {
  const t = await setup();
  try {
    await t.insert('it_1', 'a@okaxis');
    const other = createVault({
      db: t.db,
      clock: t.clock,
      fields: [ITEMS],
      vpaPattern: /./,
      kms: createLocalKeyManager({ kind: 'file', path: join(tmp(), 'keyring.json'), createIfMissing: true }),
      config: { cacheTtlMs: 0, rewrapBatchSize: 10, cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 } },
    });
    await assert.rejects(
      other.init(),
      (e: Error) =>
        e instanceof VaultError &&
        /cannot be unwrapped by the configured key manager/.test(e.message) &&
        /replaced/.test(e.message),
    );
  } finally {
    await t.close();
  }
});

test('local keyring: created with mode 0600, refused when others can read it, bound to its context', async () => {
  const dir = tmp();
  const path = join(dir, 'keyring.json');
  const kms = createLocalKeyManager({ kind: 'file', path, createIfMissing: true });
  const dk = await kms.generateDataKey({ purpose: 'p', version: '1' });
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(await kms.unwrap(dk.wrapped, { purpose: 'p', version: '1' }), dk.plaintext);
  await assert.rejects(
    kms.unwrap(dk.wrapped, { purpose: 'p', version: '2' }),
    (e: Error) => e instanceof KmsError && /authentication/.test(e.message),
  );
  chmodSync(path, 0o644);
  const again = createLocalKeyManager({ kind: 'file', path, createIfMissing: false });
  await assert.rejects(again.describe(), /accessible by other users/);
  // From a secret (production): read-only, cannot rotate itself.
  const fromSecret = createLocalKeyManager({ kind: 'secret', name: 'KEYRING', load: async () => newKeyringJson() });
  assert.equal((await fromSecret.describe()).kekRef, 'local:v1');
  await assert.rejects(fromSecret.rotate(), /comes from the secret "KEYRING"/);
  await assert.rejects(
    createLocalKeyManager({ kind: 'file', path: join(dir, 'missing.json'), createIfMissing: false }).describe(),
    /no keyring/,
  );
});

test('tokens: same value and owner give the same token; detokenize is per owner and always recorded', async () => {
  const t = await setup();
  try {
    const platform: Principal = { kind: 'api_key', id: 'key_platform', merchantId: null, permissions: new Set() };
    const merchantA: Principal = { kind: 'api_key', id: 'key_a', merchantId: 'mer_a', permissions: new Set() };
    const merchantB: Principal = { kind: 'api_key', id: 'key_b', merchantId: 'mer_b', permissions: new Set() };
    const t1 = await t.vault.tokens.tokenize(merchantA, { purpose: 'vpa', value: 'Ravi.Kumar@okaxis' });
    const t2 = await t.vault.tokens.tokenize(merchantA, { purpose: 'vpa', value: 'ravi.kumar@okaxis' });
    const t3 = await t.vault.tokens.tokenize(merchantB, { purpose: 'vpa', value: 'ravi.kumar@okaxis' });
    assert.match(t1.token, /^tok_[A-Za-z0-9_-]{24}$/);
    assert.equal(t1.token, t2.token);
    assert.notEqual(t1.token, t3.token, 'tokens do not link customers across merchants');
    assert.equal(t1.masked, 'ra****@okaxis');
    const pan = await t.vault.tokens.tokenize(platform, { purpose: 'pan', value: '4111 1111 1111 1111' });
    assert.equal(pan.masked, '411111******1111');
    await assert.rejects(
      t.vault.tokens.tokenize(platform, { purpose: 'pan', value: '4111111111111112' }),
      /not a valid pan/,
    );

    assert.deepEqual(
      await t.vault.tokens.detokenize(
        merchantA,
        { token: t1.token, reason: 'refund to customer' },
        { requestId: 'req_1' },
      ),
      {
        token: t1.token,
        purpose: 'vpa',
        value: 'ravi.kumar@okaxis',
      },
    );
    await assert.rejects(
      t.vault.tokens.detokenize(merchantB, { token: t1.token, reason: 'curious' }),
      /Token not found/,
    );
    await assert.rejects(
      t.vault.tokens.detokenize(merchantA, { token: 'tok_' + 'x'.repeat(24), reason: 'guess' }),
      /Token not found/,
    );
    assert.equal(
      (await t.vault.tokens.detokenize(platform, { token: pan.token, reason: 'chargeback' })).value,
      '4111111111111111',
    );
    const log = await t.db.query<{ actor: string; outcome: string; reason: string; request_id: string | null }>(
      `SELECT actor, outcome, reason, request_id FROM vault.access_log ORDER BY id`,
    );
    assert.deepEqual(
      log.rows.map((r) => `${r.actor} ${r.outcome} ${r.reason}`),
      [
        'api_key:key_a allowed refund to customer',
        'api_key:key_b denied curious',
        'api_key:key_a not_found guess',
        'api_key:key_platform allowed chargeback',
      ],
    );
    assert.equal(log.rows[0].request_id, 'req_1');
    // Nothing in the token table is readable.
    const stored = await t.db.query<{ value_ct: string }>(`SELECT value_ct FROM vault.tokens`);
    for (const r of stored.rows) assert.ok(!/ravi|4111/.test(r.value_ct));
  } finally {
    await t.close();
  }
});

test('tokens: a failing audit hook refuses the detokenization (fail closed)', async () => {
  const t = await setup();
  try {
    const events: string[] = [];
    const vault = createVault({
      db: t.db,
      kms: t.kms,
      clock: t.clock,
      fields: [ITEMS],
      vpaPattern: new RegExp(DEFAULT_VPA_PATTERN),
      config: { cacheTtlMs: 0, rewrapBatchSize: 10, cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 } },
      audit: {
        async recordDetokenize(_tx, e) {
          events.push(e.outcome);
          if (e.reason === 'audit down') throw new Error('audit store unavailable');
        },
      },
    });
    const p: Principal = { kind: 'api_key', id: 'key_p', merchantId: null, permissions: new Set() };
    const tok = await vault.tokens.tokenize(p, { purpose: 'phone', value: '98765 43210' });
    assert.equal(tok.masked, '******3210');
    assert.equal((await vault.tokens.detokenize(p, { token: tok.token, reason: 'callback' })).value, '+919876543210');
    await assert.rejects(
      vault.tokens.detokenize(p, { token: tok.token, reason: 'audit down' }),
      /audit store unavailable/,
    );
    assert.deepEqual(events, ['allowed', 'allowed']);
  } finally {
    await t.close();
  }
});

test('status reports key age against the cryptoperiod, and the alarm metric follows it', async () => {
  const { Registry } = await import('prom-client');
  const t = await setup();
  try {
    const registry = new Registry();
    const vault = createVault({
      db: t.db,
      kms: t.kms,
      clock: t.clock,
      fields: [ITEMS],
      vpaPattern: /./,
      registry,
      config: { cacheTtlMs: 0, rewrapBatchSize: 10, cryptoperiodDays: { kek: 365, aead: 30, hmac: 730 } },
    });
    await vault.updateMetrics();
    const metric = async () =>
      (await registry.getSingleMetric('tillpoint_vault_key_cryptoperiod_exceeded')!.get()).values;
    assert.equal(
      (await metric()).find((v) => v.labels.purpose === 'test_secret' && v.labels.kind === 'aead')!.value,
      0,
    );
    t.clock.advance(31 * 86_400_000);
    await vault.updateMetrics();
    assert.equal(
      (await metric()).find((v) => v.labels.purpose === 'test_secret' && v.labels.kind === 'aead')!.value,
      1,
    );
    assert.equal(
      (await metric()).find((v) => v.labels.purpose === 'test_secret' && v.labels.kind === 'hmac')!.value,
      0,
    );
    const s = await vault.status();
    assert.ok(s.keys.find((k) => k.kind === 'aead' && k.purpose === 'test_secret')!.overdue);
  } finally {
    await t.close();
  }
});
