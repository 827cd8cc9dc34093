import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCipheriv, createDecipheriv, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createTestDb } from '../../../platform/testing.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { createVault } from '../vault.ts';
import { createVaultTransitKeyManager } from './vaultTransit.ts';
import { KmsError } from './types.ts';

// HashiCorp Vault cannot run here, so this is a local HTTP server that follows the transit
// secrets engine's documented HTTP API (Vault API docs, "Transit secrets engine"): the
// X-Vault-Token header, `{"data": {...}}` responses and `{"errors": [...]}` failures,
// "vault:v<N>:<base64>" ciphertexts, key versions, rotate, and min_decryption_version. The key is
// `derived`, as the adapter requires, so each call must carry a base64 `context` and a
// ciphertext only decrypts under the context it was made with. Data keys are really encrypted.

const TOKEN = 'hvs.test-token';

function fakeVault(opts: { derived?: boolean } = {}) {
  const versions: { key: Buffer; at: string }[] = [{ key: randomBytes(32), at: '2025-06-01T00:00:00Z' }];
  let minDecrypt = 1;
  const calls: { path: string; body: Record<string, unknown>; headers: Record<string, unknown> }[] = [];
  const derive = (v: number, ctx: string) =>
    createHmac('sha256', versions[v - 1].key)
      .update(Buffer.from(ctx, 'base64'))
      .digest();
  const enc = (pt: Buffer, ctx: string) => {
    const v = versions.length;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', derive(v, ctx), iv);
    const ct = Buffer.concat([iv, c.update(pt), c.final(), c.getAuthTag()]);
    return { ciphertext: `vault:v${v}:${ct.toString('base64')}`, key_version: v };
  };
  const dec = (ciphertext: string, ctx: string): Buffer | string => {
    const m = /^vault:v(\d+):([A-Za-z0-9+/=]+)$/.exec(ciphertext);
    if (!m) return 'invalid ciphertext: no prefix';
    const v = Number(m[1]);
    if (v < minDecrypt) return 'ciphertext or signature version is disallowed by policy (too old)';
    if (v > versions.length) return 'invalid ciphertext: version is too new';
    const raw = Buffer.from(m[2], 'base64');
    try {
      const d = createDecipheriv('aes-256-gcm', derive(v, ctx), raw.subarray(0, 12));
      d.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
    } catch {
      return 'cipher: message authentication failed';
    }
  };
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const send = (status: number, body?: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(body === undefined ? '' : JSON.stringify(body));
      };
      const data = (d: unknown) =>
        send(200, {
          request_id: randomUUID(),
          lease_id: '',
          renewable: false,
          lease_duration: 0,
          data: d,
          wrap_info: null,
          warnings: null,
          auth: null,
        });
      const errors = (status: number, msg: string) => send(status, { errors: [msg] });
      if (req.headers['x-vault-token'] !== TOKEN) return errors(403, 'permission denied');
      const body = text ? JSON.parse(text) : {};
      const path = req.url ?? '';
      calls.push({ path: `${req.method} ${path}`, body, headers: req.headers });
      if (req.method === 'POST' && text && req.headers['content-type'] !== 'application/json')
        return errors(400, 'content type');
      const needCtx = () => opts.derived !== false && (typeof body.context !== 'string' || body.context === '');
      let m: RegExpExecArray | null;
      if (req.method === 'POST' && (m = /^\/v1\/transit\/datakey\/(plaintext|wrapped)\/tillpoint$/.exec(path))) {
        if (needCtx())
          return errors(
            400,
            "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key",
          );
        if (body.bits !== undefined && ![128, 256, 512].includes(body.bits)) return errors(400, 'invalid bits');
        const pt = randomBytes((body.bits ?? 256) / 8);
        const out = enc(pt, body.context ?? '');
        return data(m[1] === 'plaintext' ? { plaintext: pt.toString('base64'), ...out } : out);
      }
      if (req.method === 'POST' && path === '/v1/transit/decrypt/tillpoint') {
        if (needCtx()) return errors(400, "missing 'context' for key derivation");
        const r = dec(String(body.ciphertext), body.context ?? '');
        return typeof r === 'string' ? errors(400, r) : data({ plaintext: r.toString('base64') });
      }
      if (req.method === 'POST' && path === '/v1/transit/rewrap/tillpoint') {
        const r = dec(String(body.ciphertext), body.context ?? '');
        return typeof r === 'string' ? errors(400, r) : data(enc(r, body.context ?? ''));
      }
      if (req.method === 'POST' && path === '/v1/transit/keys/tillpoint/rotate') {
        versions.push({ key: randomBytes(32), at: new Date().toISOString() });
        return data(null);
      }
      if (req.method === 'POST' && path === '/v1/transit/keys/tillpoint/config') {
        if (typeof body.min_decryption_version !== 'number') return errors(400, 'min_decryption_version');
        minDecrypt = body.min_decryption_version;
        return send(204);
      }
      if (req.method === 'GET' && path === '/v1/transit/keys/tillpoint') {
        const keys: Record<string, number> = {};
        versions.forEach((v, i) => (keys[String(i + 1)] = Math.floor(new Date(v.at).getTime() / 1000)));
        return data({
          name: 'tillpoint',
          type: 'aes256-gcm96',
          derived: opts.derived !== false,
          latest_version: versions.length,
          min_decryption_version: minDecrypt,
          min_encryption_version: 0,
          keys,
          deletion_allowed: false,
          exportable: false,
        });
      }
      return errors(404, `no handler for route "${path}"`);
    });
  });
  return {
    server,
    calls,
    async listen() {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
  };
}

test('Vault transit adapter follows the documented API: datakey, decrypt, rewrap, rotate, min_decryption_version', async () => {
  const vault = fakeVault();
  const address = await vault.listen();
  try {
    const km = createVaultTransitKeyManager({
      address,
      token: () => TOKEN,
      keyName: 'tillpoint',
      namespace: 'payments',
    });
    const ctx = { app: 'tillpoint', purpose: 'payer_vpa', kind: 'aead', version: '1' };
    const dk = await km.generateDataKey(ctx);
    assert.match(dk.wrapped, /^vault:v1:/);
    assert.equal(dk.kekRef, 'vault-transit:tillpoint:v1');
    const call = vault.calls[0];
    assert.equal(call.path, 'POST /v1/transit/datakey/plaintext/tillpoint');
    assert.equal(call.body.bits, 256);
    assert.equal(typeof call.body.context, 'string');
    assert.equal(call.headers['x-vault-namespace'], 'payments');
    assert.deepEqual(await km.unwrap(dk.wrapped, ctx), dk.plaintext);
    await assert.rejects(
      km.unwrap(dk.wrapped, { ...ctx, purpose: 'other' }),
      (e: Error) => e instanceof KmsError && /message authentication failed/.test(e.message),
    );

    const after = await km.rotate();
    assert.equal(after.kekRef, 'vault-transit:tillpoint:v2');
    const re = await km.rewrap(dk.wrapped, ctx);
    assert.match(re.wrapped, /^vault:v2:/);
    assert.equal(re.kekRef, 'vault-transit:tillpoint:v2');
    assert.equal(await km.retireOldVersions(), 1);
    await assert.rejects(
      km.unwrap(dk.wrapped, ctx),
      (e: Error) => e instanceof KmsError && /too old/.test(e.message),
      'v1 no longer decrypts',
    );
    assert.deepEqual(await km.unwrap(re.wrapped, ctx), dk.plaintext);
    const info = await km.describe();
    assert.deepEqual(
      info.versions!.map((v) => [v.version, v.usable]),
      [
        [1, false],
        [2, true],
      ],
    );

    const wrongToken = createVaultTransitKeyManager({ address, token: () => 'nope', keyName: 'tillpoint' });
    await assert.rejects(
      wrongToken.generateDataKey(ctx),
      (e: Error) =>
        e instanceof KmsError && /HTTP 403: permission denied/.test(e.message) && !e.message.includes('nope'),
    );
  } finally {
    vault.server.close();
  }
});

test('Vault transit: a key without derivation is refused at start', async () => {
  const vault = fakeVault({ derived: false });
  const address = await vault.listen();
  try {
    await assert.rejects(
      createVaultTransitKeyManager({ address, token: () => TOKEN, keyName: 'tillpoint' }).describe(),
      /derived=true/,
    );
  } finally {
    vault.server.close();
  }
});

test('the vault runs on Vault transit end to end, including KEK rotation and retirement', async () => {
  const fake = fakeVault();
  const address = await fake.listen();
  const db = await createTestDb();
  try {
    await db.exec(`CREATE SCHEMA vt; CREATE TABLE vt.items (id text PRIMARY KEY, v_ct text)`);
    const field = { table: 'vt.items', idColumn: 'id', column: 'v_ct', purpose: 'vault_test' };
    const vault = createVault({
      db,
      clock: fixedClock('2026-01-01T00:00:00Z'),
      fields: [field],
      vpaPattern: /./,
      kms: createVaultTransitKeyManager({ address, token: () => TOKEN, keyName: 'tillpoint' }),
      config: { cacheTtlMs: 0, rewrapBatchSize: 10, cryptoperiodDays: { kek: 365, aead: 365, hmac: 730 } },
    });
    await vault.init();
    const s = await vault.cipher.seal(field, 'r1', 'HDFC0001234');
    const out = await vault.rotateKek();
    assert.equal(out.kek.kekRef, 'vault-transit:tillpoint:v2');
    assert.equal(out.retired, 1);
    vault.keys.wipe();
    assert.equal(await vault.cipher.open(field, 'r1', s.ciphertext), 'HDFC0001234');
    const status = await vault.status();
    assert.ok(status.kek.ageDays !== null && status.kek.ageDays < 1);
  } finally {
    fake.server.close();
    await db.close();
  }
});
