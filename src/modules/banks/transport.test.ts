import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { webcrypto } from 'node:crypto';
import { generateSelfSignedCertificate } from '../../platform/tls.ts';
import { createTransport } from './transport.ts';
import { BankCallError } from './types.ts';

// Mutual TLS through the shared transport, against a local HTTPS server that demands a client
// certificate: the bank's CA pinned, our certificate presented; without it the handshake fails
// before anything is sent.

/** A self-signed client certificate (clientAuth), the server trusting it directly. */
async function clientCertificate() {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=tillpoint-client',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: `${cert.toString('pem')}\n`, keyPem: `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n` };
}

test('mutual TLS: the pinned bank is reached with our client certificate, and refused without it', async (t) => {
  const server = await generateSelfSignedCertificate(['localhost', '127.0.0.1']);
  const client = await clientCertificate();
  const seen: (string | undefined)[] = [];
  const https = createServer(
    { key: server.keyPem, cert: server.certPem, ca: [client.certPem], requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      seen.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
      req.resume();
      req.on('end', () => res.end('{"ok":true}'));
    },
  );
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => https.close(() => r())));
  const baseUrl = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  const req = { op: 'check_status', path: '/status', build: () => ({ headers: {}, body: '{}' }), idempotent: true };
  const read = (r: { body: Buffer }) => JSON.parse(r.body.toString()) as { ok: boolean };

  const mtls = createTransport({
    bank: 'MTLS',
    baseUrl,
    timeoutMs: 5_000,
    tls: { ca: server.certPem, cert: client.certPem, key: client.keyPem },
  });
  assert.deepEqual(await mtls.call(req, read), { ok: true });
  assert.deepEqual(seen, ['tillpoint-client']);

  const without = createTransport({ bank: 'MTLS', baseUrl, timeoutMs: 5_000, tls: { ca: server.certPem } });
  await assert.rejects(
    without.call(req, read),
    (e: unknown) => e instanceof BankCallError && e.delivery !== 'rejected',
  );
  const unpinned = createTransport({
    bank: 'MTLS',
    baseUrl,
    timeoutMs: 5_000,
    tls: { cert: client.certPem, key: client.keyPem },
  });
  await assert.rejects(unpinned.call(req, read), (e: unknown) => e instanceof BankCallError);
  assert.equal(seen.length, 1, 'nothing reached the bank without both');
});
