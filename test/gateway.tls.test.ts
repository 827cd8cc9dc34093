import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { request } from 'node:https';
import { generateSelfSignedCertificate } from '../src/platform/tls.ts';
import { gatewaySkip, startAppBehindGateway, type GatewayedApp } from './helpers/gateway.ts';

// The gateway terminating TLS (a certificate made at run time): TLS 1.3 and 1.2 with
// forward-secret AEAD suites only, nothing older; HSTS on the gateway's own answers; the WAF
// still in front of the API.

describe('WAF gateway terminating TLS', { skip: gatewaySkip() }, () => {
  let g: GatewayedApp;
  let ca: string;
  let port: number;
  before(async () => {
    const { certPem, keyPem } = await generateSelfSignedCertificate(['127.0.0.1']);
    const dir = mkdtempSync(join(tmpdir(), 'tillpoint-gw-tls-'));
    writeFileSync(join(dir, 'cert.pem'), certPem, { mode: 0o644 });
    writeFileSync(join(dir, 'key.pem'), keyPem, { mode: 0o600 });
    ca = certPem;
    g = await startAppBehindGateway({
      gateway: { tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } },
    });
    port = Number(new URL(g.url).port);
  });
  after(() => g?.close());

  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: any }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path, ca, headers: { authorization: `Bearer ${g.t.adminKey}`, ...headers } },
        (res) => {
          let t = '';
          res.on('data', (d) => (t += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(t) }));
        },
      );
      req.on('error', reject);
      req.end();
    });

  const handshake = (opts: {
    minVersion?: 'TLSv1' | 'TLSv1.2';
    maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    ciphers?: string;
  }) =>
    new Promise<{ protocol: string | null; cipher: string }>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca, servername: undefined, ...opts }, () => {
        const r = { protocol: s.getProtocol(), cipher: s.getCipher().name };
        s.end();
        resolve(r);
      });
      s.on('error', reject);
    });

  test('API answers over TLS 1.3; TLS 1.2 only with ECDHE and AEAD; TLS 1.1 and older refused', async () => {
    const r = await get('/v1/merchants');
    assert.equal(r.status, 200);
    assert.equal((await handshake({})).protocol, 'TLSv1.3');
    const t12 = await handshake({ maxVersion: 'TLSv1.2' });
    assert.equal(t12.protocol, 'TLSv1.2');
    assert.match(t12.cipher, /^ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    await assert.rejects(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }));
    await assert.rejects(
      handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:AES128-SHA' }),
      'no CBC suites',
    );
  });

  test('blocked over TLS: 403 with a request id and HSTS', async () => {
    const r = await get(`/v1/payments?terminal_id=${encodeURIComponent("' OR '1'='1")}`);
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'request_blocked');
    assert.equal(r.headers['x-request-id'], r.body.error.request_id);
    assert.equal(r.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
  });
});
