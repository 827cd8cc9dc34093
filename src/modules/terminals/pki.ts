// tsyringe (inside @peculiar/x509) needs the Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { isIP } from 'node:net';
import { pkiFiles } from './certs.ts';

export {
  pkiFiles,
  gatewayCertFiles,
  certificateFingerprint,
  TERMINAL_URI_PREFIX,
  GATEWAY_COMMON_NAME,
  type PkiFiles,
} from './certs.ts';

// The terminal CA: a private certificate authority that issues one client certificate per
// terminal, the embedded broker's server certificate and the gateway's own client certificate.
// node:crypto verifies and parses certificates but cannot issue them, so issuance uses
// @peculiar/x509 over node:crypto's WebCrypto (keys and signatures still come from node:crypto).
// README.md beside this file says why this library and not the openssl binary.

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
/** Devices' clocks drift; a certificate valid from a few minutes ago is not refused for that. */
const BACKDATE_MS = 5 * 60_000;

export interface CertificateAuthority {
  certPem: string;
  cert: x509.X509Certificate;
  privateKey: CryptoKey;
}

export interface IssuedCertificate {
  certPem: string;
  /** Present when the key was generated here (no CSR given). */
  keyPem?: string;
  serial: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
}

/** 128 random bits, top bit clear so the DER integer is positive; RFC 5280 allows up to 20 octets. */
const newSerial = () => {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 0x01; // no leading zero octet: the hex stays the DER value
  return b.toString('hex');
};

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

const generateKeys = () => webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;

function writeSecret(path: string, data: string) {
  writeFileSync(path, data, { mode: 0o600 });
  chmodSync(path, 0o600); // an existing file keeps its mode on overwrite otherwise
}

async function issue(
  ca: CertificateAuthority,
  o: { subject: string; publicKey: x509.PublicKeyType; days: number; extensions: x509.Extension[]; now?: Date },
): Promise<x509.X509Certificate> {
  const now = o.now ?? new Date();
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(now.getTime() + o.days * DAY);
  // Never valid past the CA itself: a chain that outlives its root fails at an awkward moment.
  const capped = notAfter > ca.cert.notAfter ? ca.cert.notAfter : notAfter;
  return x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: o.subject,
    issuer: ca.cert.subject,
    notBefore,
    notAfter: capped,
    publicKey: o.publicKey,
    signingKey: ca.privateKey,
    signingAlgorithm: SIGN,
    extensions: [
      ...o.extensions,
      await x509.SubjectKeyIdentifierExtension.create(o.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
}

function described(cert: x509.X509Certificate, keyPem?: string): IssuedCertificate {
  const certPem = cert.toString('pem');
  return {
    certPem,
    keyPem,
    serial: cert.serialNumber.toLowerCase(),
    fingerprint: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** A distinguished-name value with RFC 4514 special characters escaped. */
const dnValue = (s: string) => s.replace(/([,+"\\<>;=#])/g, '\\$1');

/** Creates the CA (and server certificate) unless present. Returns the files it wrote. */
export async function initPki(
  dir: string,
  opts: { hostnames?: string[]; force?: boolean; caDays?: number; serverDays?: number; organization?: string } = {},
): Promise<string[]> {
  const f = pkiFiles(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  if (opts.force || !existsSync(f.caCert) || !existsSync(f.caKey)) {
    const keys = await generateKeys();
    const now = Date.now();
    const org = dnValue(opts.organization ?? 'Tillpoint');
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: newSerial(),
      name: `CN=${org} Terminal CA ${new Date(now).toISOString().slice(0, 10)}, O=${org}`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + (opts.caDays ?? 3650) * DAY),
      keys,
      signingAlgorithm: SIGN,
      extensions: [
        // pathLen 0: this CA signs end-entity certificates only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    writeSecret(f.caKey, await exportKeyPem(keys.privateKey));
    writeFileSync(f.caCert, cert.toString('pem') + '\n');
    written.push(f.caCert, f.caKey);
  }
  if (written.length > 0 || !existsSync(f.serverCert) || !existsSync(f.serverKey)) {
    const ca = await loadCa(dir);
    const server = await issueServerCertificate(
      ca,
      opts.hostnames ?? ['localhost', '127.0.0.1', '::1'],
      opts.serverDays ?? 825,
    );
    writeSecret(f.serverKey, server.keyPem!);
    writeFileSync(f.serverCert, server.certPem + '\n');
    written.push(f.serverCert, f.serverKey);
  }
  return written;
}

export async function loadCa(dir: string): Promise<CertificateAuthority> {
  const f = pkiFiles(dir);
  if (!existsSync(f.caCert) || !existsSync(f.caKey)) {
    throw new Error(`no terminal CA in ${dir}: run "tillpoint pki init" first`);
  }
  const certPem = readFileSync(f.caCert, 'utf8');
  const cert = new x509.X509Certificate(certPem);
  const keyDer = x509.PemConverter.decodeFirst(readFileSync(f.caKey, 'utf8'));
  const privateKey = await webcrypto.subtle.importKey('pkcs8', keyDer, EC, false, ['sign']);
  return { certPem: certPem.trim(), cert, privateKey };
}

export async function issueServerCertificate(
  ca: CertificateAuthority,
  hostnames: string[],
  days = 825,
): Promise<IssuedCertificate> {
  if (hostnames.length === 0) throw new Error('a server certificate needs at least one host name or address');
  const keys = await generateKeys();
  const names = hostnames.map((h) => ({ type: isIP(h) ? 'ip' : 'dns', value: h }) as x509.JsonGeneralName);
  const cert = await issue(ca, {
    subject: `CN=${dnValue(hostnames[0])}`,
    publicKey: keys.publicKey,
    days,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  });
  return described(cert, await exportKeyPem(keys.privateKey));
}

/**
 * A client certificate bound to `commonName` (a terminal id, or the gateway's name). With a CSR,
 * the device keeps its private key and only the public key is certified (the CSR's own subject is
 * ignored: the CA decides who the certificate names); without one, a key pair is generated here.
 */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  o: { commonName: string; uri?: string; days: number; csrPem?: string; now?: Date },
): Promise<IssuedCertificate> {
  let publicKey: x509.PublicKeyType;
  let keyPem: string | undefined;
  if (o.csrPem) {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(o.csrPem);
    } catch {
      throw new Error('the CSR is not a PEM or DER PKCS#10 request');
    }
    if (!(await csr.verify())) throw new Error('the CSR signature does not verify');
    const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
    const strongEc = alg.name === 'ECDSA' && ['P-256', 'P-384'].includes(alg.namedCurve ?? '');
    const strongRsa = alg.name.startsWith('RSA') && (alg.modulusLength ?? 0) >= 2048;
    if (!strongEc && !strongRsa) throw new Error('the CSR key must be ECDSA P-256/P-384 or RSA of at least 2048 bits');
    publicKey = csr.publicKey;
  } else {
    const keys = await generateKeys();
    publicKey = keys.publicKey;
    keyPem = await exportKeyPem(keys.privateKey);
  }
  const cert = await issue(ca, {
    subject: `CN=${dnValue(o.commonName)}`,
    publicKey,
    days: o.days,
    now: o.now,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ...(o.uri ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: o.uri }])] : []),
    ],
  });
  return described(cert, keyPem);
}

/** A CRL of the given revoked serials, signed by the CA, for brokers that check one (Mosquitto's crlfile). */
export async function buildCrl(
  ca: CertificateAuthority,
  revoked: { serial: string; revokedAt: Date }[],
  nextUpdateDays = 7,
): Promise<string> {
  const now = new Date();
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + nextUpdateDays * DAY),
    signingKey: ca.privateKey,
    signingAlgorithm: SIGN,
    entries: revoked.map((r) => ({ serialNumber: r.serial, revocationDate: r.revokedAt })),
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert)],
  });
  return crl.toString('pem') + '\n';
}
