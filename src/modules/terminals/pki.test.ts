import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate, generateKeyPairSync, createPrivateKey, webcrypto } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { initPki, loadCa, issueClientCertificate, buildCrl, pkiFiles } from './pki.ts';
import { describePeerCertificate } from './certs.ts';

// The terminal CA, checked with node:crypto's own X.509 parser (and OpenSSL underneath it), not
// with the library that issued the certificates.

const dir = () => mkdtempSync(join(tmpdir(), 'tillpoint-pki-test-'));

test('pki init creates a CA that may sign only end-entity certificates, and a server certificate', async () => {
  const d = dir();
  const written = await initPki(d, { hostnames: ['gw.example.in', '10.0.0.5'] });
  const f = pkiFiles(d);
  assert.deepEqual(written, [f.caCert, f.caKey, f.serverCert, f.serverKey]);
  assert.equal(statSync(f.caKey).mode & 0o777, 0o600, 'the CA key is readable by its owner only');
  assert.equal(statSync(f.serverKey).mode & 0o777, 0o600);
  const ca = new X509Certificate(readFileSync(f.caCert));
  assert.equal(ca.ca, true);
  assert.ok(ca.verify(ca.publicKey), 'self-signed');
  const server = new X509Certificate(readFileSync(f.serverCert));
  assert.ok(server.checkIssued(ca) && server.verify(ca.publicKey));
  assert.equal(server.subjectAltName, 'DNS:gw.example.in, IP Address:10.0.0.5');
  assert.ok(server.checkHost('gw.example.in'));
  assert.ok(server.checkIP('10.0.0.5'));
  assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'server authentication only');
  assert.deepEqual(await initPki(d), [], 'a second init changes nothing');
});

test('a client certificate names its terminal, is valid from a little before now, and never outlives the CA', async () => {
  const d = dir();
  await initPki(d, { caDays: 30 });
  const authority = await loadCa(d);
  const now = new Date();
  const c = await issueClientCertificate(authority, {
    commonName: 'trm_0123456789abcdef0123456789abcdef',
    uri: 'urn:tillpoint:terminal:trm_0123456789abcdef0123456789abcdef',
    days: 365,
    now,
  });
  const cert = new X509Certificate(c.certPem);
  assert.equal(cert.subject, 'CN=trm_0123456789abcdef0123456789abcdef');
  assert.ok(new Date(cert.validFrom) < now);
  assert.ok(new Date(cert.validTo) <= new Date(authority.cert.notAfter), 'capped at the CA expiry');
  assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'client authentication only');
  assert.equal(cert.ca, false);
  const peer = describePeerCertificate(cert.raw);
  assert.equal(peer.commonName, 'trm_0123456789abcdef0123456789abcdef');
  assert.equal(peer.fingerprint, c.fingerprint);
  assert.equal(peer.serial, c.serial);
  assert.ok(createPrivateKey(c.keyPem!), 'a usable PKCS#8 key came with it');
  const other = await issueClientCertificate(authority, { commonName: 'x', days: 1 });
  assert.notEqual(other.serial, c.serial, 'serials are random');
});

test('with a CSR the device keeps its key: only its public key is certified, under the name the CA chooses', async () => {
  const d = dir();
  await initPki(d);
  const authority = await loadCa(d);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=somebody-else',
    keys,
    signingAlgorithm: alg,
  });
  const c = await issueClientCertificate(authority, {
    commonName: 'trm_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    days: 30,
    csrPem: csr.toString('pem'),
  });
  assert.equal(c.keyPem, undefined);
  const cert = new X509Certificate(c.certPem);
  assert.equal(cert.subject, 'CN=trm_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  assert.deepEqual(cert.publicKey.export({ type: 'spki', format: 'der' }), spki);

  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const weakKeys = {
    privateKey: await webcrypto.subtle.importKey(
      'pkcs8',
      weak.privateKey.export({ type: 'pkcs8', format: 'der' }),
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      true,
      ['sign'],
    ),
    publicKey: await webcrypto.subtle.importKey(
      'spki',
      weak.publicKey.export({ type: 'spki', format: 'der' }),
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      true,
      ['verify'],
    ),
  };
  const weakCsr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=x',
    keys: weakKeys,
    signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as Algorithm,
  });
  await assert.rejects(
    issueClientCertificate(authority, { commonName: 'x', days: 1, csrPem: weakCsr.toString('pem') }),
    /at least 2048/,
  );
  await assert.rejects(issueClientCertificate(authority, { commonName: 'x', days: 1, csrPem: 'not a csr' }), /PKCS#10/);
});

test('the CRL lists revoked serials and is signed by the CA', async () => {
  const d = dir();
  await initPki(d);
  const authority = await loadCa(d);
  const c = await issueClientCertificate(authority, { commonName: 'x', days: 1 });
  const pem = await buildCrl(authority, [{ serial: c.serial, revokedAt: new Date() }]);
  const crl = new x509.X509Crl(pem);
  assert.ok(await crl.verify({ publicKey: authority.cert.publicKey }));
  assert.deepEqual(
    crl.entries.map((e) => e.serialNumber.toLowerCase()),
    [c.serial],
  );
});
