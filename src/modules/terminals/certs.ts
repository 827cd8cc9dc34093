import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { join } from 'node:path';

// Where the terminal CA's files live, and what the gateway reads from a presented certificate.
// Only node:crypto here: the gateway loads this on every start, while pki.ts (issuance, with
// @peculiar/x509) is loaded only by the commands that issue certificates.

export const TERMINAL_URI_PREFIX = 'urn:tillpoint:terminal:';
export const GATEWAY_COMMON_NAME = 'tillpoint-gateway';
/** Gateway replicas on an external broker each get their own certificate: tillpoint-gateway, tillpoint-gateway-2, … */
export const isGatewayName = (s: string) => /^tillpoint-gateway(-[a-z0-9][a-z0-9-]{0,39})?$/.test(s);

/** Where a gateway's client certificate and key are written (gateway.crt for the default name). */
export function gatewayCertFiles(dir: string, name = GATEWAY_COMMON_NAME): { cert: string; key: string } {
  const base = name === GATEWAY_COMMON_NAME ? 'gateway' : name;
  return { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
}

export interface PkiFiles {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  gatewayCert: string;
  gatewayKey: string;
}

export function pkiFiles(dir: string): PkiFiles {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    gatewayCert: join(dir, 'gateway.crt'),
    gatewayKey: join(dir, 'gateway.key'),
  };
}

/** SHA-256 of a certificate's DER encoding, lowercase hex: how the gateway recognises a certificate. */
export function certificateFingerprint(pemOrDer: string | Buffer): string {
  const der = typeof pemOrDer === 'string' ? new NodeX509(pemOrDer).raw : pemOrDer;
  return createHash('sha256').update(der).digest('hex');
}

/** What the gateway reads out of a presented client certificate. */
export function describePeerCertificate(der: Buffer): { commonName?: string; serial: string; fingerprint: string } {
  const c = new NodeX509(der);
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(c.subject)?.[1];
  return {
    commonName: cn,
    serial: c.serialNumber.toLowerCase(),
    fingerprint: createHash('sha256').update(der).digest('hex'),
  };
}
