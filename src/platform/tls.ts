import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { join, resolve } from 'node:path';
import { isIP } from 'node:net';
import { Type } from '@sinclair/typebox';
import { ConfigError, defineSettings, type Mode } from './settings.ts';

// TLS in one place: the API's HTTPS listener (TLS 1.2 at least, 1.3 preferred, only ECDHE +
// AEAD suites), a self-signed pair for development, and the client side for outbound calls that
// pin a CA (banks) or connect to Redis over TLS. PostgreSQL takes its TLS settings from
// DATABASE_URL (`sslmode=verify-full&sslrootcert=/path/ca.pem`), which the pg driver reads itself.
//
// PCI DSS 4.2.1 names no versions; it forbids SSL and early TLS and defers to NIST SP 800-52r2:
// TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305, or TLS 1.3.

export interface TlsConfig {
  /** off: plain HTTP (behind a TLS-terminating proxy); files: TLS_CERT_FILE + TLS_KEY_FILE; self-signed: development only. */
  mode: 'off' | 'files' | 'self-signed';
  certFile?: string;
  keyFile?: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** CA for rediss:// connections when the Redis server's certificate is not from a public CA. */
  redisCaFile?: string;
}

/** TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only; no CBC, no RSA key exchange, no SHA-1 MACs. */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
];
/** TLS 1.3 defines only AEAD suites; all three are fine. */
export const TLS13_CIPHERS = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];

type Env = Record<string, string | undefined>;

export function parseTlsConfig(env: Env, mode: Mode): TlsConfig {
  const certFile = env.TLS_CERT_FILE ? resolve(env.TLS_CERT_FILE) : undefined;
  const keyFile = env.TLS_KEY_FILE ? resolve(env.TLS_KEY_FILE) : undefined;
  const tlsMode = (env.TLS_MODE || (certFile || keyFile ? 'files' : 'off')) as TlsConfig['mode'];
  if (!['off', 'files', 'self-signed'].includes(tlsMode))
    throw new ConfigError('TLS_MODE', `must be off, files or self-signed, got "${tlsMode}"`);
  if (tlsMode === 'files') {
    if (!certFile) throw new ConfigError('TLS_CERT_FILE', 'required with TLS_MODE=files (PEM certificate chain)');
    if (!keyFile) throw new ConfigError('TLS_KEY_FILE', 'required with TLS_MODE=files (PEM private key)');
  }
  if (tlsMode === 'self-signed' && mode === 'production') {
    throw new ConfigError(
      'TLS_MODE',
      'self-signed is for development; in production give TLS_CERT_FILE and TLS_KEY_FILE',
    );
  }
  const minVersion = (env.TLS_MIN_VERSION || 'TLSv1.2') as TlsConfig['minVersion'];
  if (!['TLSv1.2', 'TLSv1.3'].includes(minVersion))
    throw new ConfigError('TLS_MIN_VERSION', 'must be TLSv1.2 or TLSv1.3 (older versions are refused)');
  return {
    mode: tlsMode,
    certFile,
    keyFile,
    minVersion,
    redisCaFile: env.REDIS_TLS_CA_FILE ? resolve(env.REDIS_TLS_CA_FILE) : undefined,
  };
}

/** HTTPS on the API, and the CA for Redis over TLS. */
export const tlsSettings = defineSettings({
  title: 'TLS',
  source: 'src/platform/tls.ts',
  schema: Type.Object({
    TLS_MODE: Type.Union([Type.Literal('off'), Type.Literal('files'), Type.Literal('self-signed')], {
      defaultText: '`off` (`files` when `TLS_CERT_FILE` or `TLS_KEY_FILE` is set)',
      description:
        'HTTPS on the API: `off` (plain HTTP behind a TLS-terminating proxy), `files`, or `self-signed` (development only).',
    }),
    TLS_CERT_FILE: Type.String({ description: 'PEM certificate chain of the API (`TLS_MODE=files`).' }),
    TLS_KEY_FILE: Type.String({ description: 'PEM private key of the API (`TLS_MODE=files`).' }),
    TLS_MIN_VERSION: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], {
      default: 'TLSv1.2',
      description: 'Lowest TLS version the API accepts; older versions are refused.',
    }),
    REDIS_TLS_CA_FILE: Type.String({
      defaultText: 'system CAs',
      description: "CA the Redis server's certificate must chain to, for `rediss://` URLs.",
    }),
  }),
  load: (env, ctx) => ({ tls: parseTlsConfig(env, ctx.mode) }),
});

/** The scheme the API is reached with, for PUBLIC_URL's default. */
export const tlsScheme = (env: Env) =>
  (env.TLS_MODE || (env.TLS_CERT_FILE ? 'files' : 'off')) === 'off' ? 'http' : 'https';

/** Options for Node's TLS server that hold whatever the certificate. */
export function hardenedServerOptions(minVersion: TlsConfig['minVersion'] = 'TLSv1.2') {
  return {
    minVersion,
    maxVersion: 'TLSv1.3' as const,
    ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':'),
    // Our order, not the client's: the strongest suite both support.
    honorCipherOrder: true,
    ecdhCurve: 'X25519:P-256:P-384',
  };
}

export interface ApiTls {
  options: HttpsServerOptions;
  /** When the certificate stops being valid. */
  notAfter: Date;
  /** For the start-up banner: what is being served and any warning. */
  warning?: string;
  certificatePem: string;
}

/**
 * The HTTPS options of the API, or undefined for plain HTTP. Files are checked now (the key
 * matches the certificate, it is valid) so a bad pair stops the start instead of the first client.
 */
export async function loadApiTls(
  cfg: TlsConfig,
  o: { dataDir: string; hostnames?: string[]; now?: Date },
): Promise<ApiTls | undefined> {
  if (cfg.mode === 'off') return undefined;
  let certPem: string;
  let keyPem: string;
  let warning: string | undefined;
  if (cfg.mode === 'files') {
    const read = (setting: string, file: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (e) {
        throw new ConfigError(setting, `cannot read ${file} (${(e as { code?: string }).code ?? 'error'})`);
      }
    };
    certPem = read('TLS_CERT_FILE', cfg.certFile!);
    keyPem = read('TLS_KEY_FILE', cfg.keyFile!);
  } else {
    const pair = await devCertificate(o.dataDir, o.hostnames ?? ['localhost', '127.0.0.1', '::1'], o.now);
    certPem = pair.certPem;
    keyPem = pair.keyPem;
    warning = `TLS: serving a self-signed development certificate (${pair.file}); clients will not trust it. Never use TLS_MODE=self-signed outside development.`;
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new ConfigError('TLS_CERT_FILE', 'is not a PEM certificate');
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('mismatch');
  } catch {
    throw new ConfigError('TLS_KEY_FILE', 'is not the private key of the certificate in TLS_CERT_FILE');
  }
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= (o.now ?? new Date()).getTime())
    throw new ConfigError('TLS_CERT_FILE', `the certificate expired on ${notAfter.toISOString()}`);
  return {
    options: { ...hardenedServerOptions(cfg.minVersion), cert: certPem, key: keyPem },
    notAfter,
    warning,
    certificatePem: certPem,
  };
}

/**
 * A self-signed ECDSA P-256 certificate for `hostnames`. Uses @peculiar/x509 (already the
 * project's X.509 library, for the terminal PKI): node:crypto parses certificates but cannot
 * issue them.
 */
export async function generateSelfSignedCertificate(
  hostnames: string[],
  days = 30,
  now = new Date(),
): Promise<{ certPem: string; keyPem: string }> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const serial = Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)));
  serial[0] = (serial[0] & 0x7f) | 0x01;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: `CN=${hostnames[0]}, O=Tillpoint development`,
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + days * 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      // CA:true so a client can pin this very certificate as its trust anchor.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        hostnames.map((h) => ({ type: isIP(h) ? 'ip' : 'dns', value: h }) as const),
      ),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n' };
}

/** The development pair under <data dir>/tls, made once and reused until a week before it expires. */
async function devCertificate(dataDir: string, hostnames: string[], now = new Date()) {
  const dir = join(dataDir, 'tls');
  const certFile = join(dir, 'dev-cert.pem');
  const keyFile = join(dir, 'dev-key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const certPem = readFileSync(certFile, 'utf8');
    const valid = new Date(new X509Certificate(certPem).validTo).getTime() > now.getTime() + 7 * 86_400_000;
    if (valid) return { certPem, keyPem: readFileSync(keyFile, 'utf8'), file: certFile };
  }
  const pair = await generateSelfSignedCertificate(hostnames, 90, now);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, pair.keyPem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, pair.certPem);
  return { ...pair, file: certFile };
}

/** ioredis options for a rediss:// URL: certificate checks on, TLS 1.2+, and the CA when one is configured. */
export function redisTlsOptions(
  url: string,
  cfg: Pick<TlsConfig, 'redisCaFile'>,
): { tls?: { ca?: Buffer; minVersion: 'TLSv1.2'; rejectUnauthorized: true; servername?: string } } {
  if (!url.startsWith('rediss://')) return {};
  const host = new URL(url).hostname;
  return {
    tls: {
      ...(cfg.redisCaFile ? { ca: readFileSync(cfg.redisCaFile) } : {}),
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ...(isIP(host) ? {} : { servername: host }),
    },
  };
}

/** True when DATABASE_URL asks the pg driver for full certificate and host-name verification. */
export function databaseUrlVerifiesTls(url: string | undefined): boolean {
  if (!url) return false;
  try {
    return new URL(url).searchParams.get('sslmode') === 'verify-full';
  } catch {
    return false;
  }
}
