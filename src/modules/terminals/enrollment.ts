import { writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { getTerminalContext } from '../merchants/index.ts';
import { issueClientCertificate, loadCa, buildCrl, TERMINAL_URI_PREFIX, GATEWAY_COMMON_NAME } from './pki.ts';
import { gatewayCertFiles, isGatewayName } from './certs.ts';
import { recordCertificate } from './credentials.ts';
import { listRevokedCertificates } from './terminals.repo.ts';
import { isTerminalId } from './topics.ts';

// Enrollment: the terminal CA certifies a terminal and the certificate is recorded, bound to
// the terminal id (its subject CN, and a URI SAN urn:tillpoint:terminal:<id>). Needs the CA's
// private key, so it runs where the CA lives (`tillpoint terminals enroll`), not in the gateway.

export interface EnrollmentBundle {
  terminalId: string;
  certPem: string;
  /** Only when no CSR was given: the key generated for the device. Hand it over once, then delete it. */
  keyPem?: string;
  caPem: string;
  serial: string;
  fingerprint: string;
  notAfter: Date;
}

export async function enrollTerminal(
  db: Db,
  o: { pkiDir: string; terminalId: string; days?: number; csrPem?: string },
): Promise<EnrollmentBundle> {
  const ctx = isTerminalId(o.terminalId) ? await getTerminalContext(db, o.terminalId) : undefined;
  if (!ctx) throw new AppError('terminal_not_found', `No terminal ${o.terminalId}`);
  if (ctx.terminal_status !== 'active') throw new AppError('terminal_inactive', `Terminal ${o.terminalId} is disabled`);
  const ca = await loadCa(o.pkiDir);
  const cert = await issueClientCertificate(ca, {
    commonName: o.terminalId,
    uri: TERMINAL_URI_PREFIX + o.terminalId,
    days: o.days ?? 730,
    csrPem: o.csrPem,
  });
  await recordCertificate(db, o.terminalId, cert);
  return {
    terminalId: o.terminalId,
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    caPem: ca.certPem,
    serial: cert.serial,
    fingerprint: cert.fingerprint,
    notAfter: cert.notAfter,
  };
}

/** Writes a device bundle: <dir>/client.crt, client.key (0600, if generated here), ca.crt. */
export function writeBundle(dir: string, b: EnrollmentBundle): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = [join(dir, 'client.crt'), join(dir, 'ca.crt')];
  writeFileSync(files[0], b.certPem + '\n');
  writeFileSync(files[1], b.caPem + '\n');
  if (b.keyPem) {
    const key = join(dir, 'client.key');
    writeFileSync(key, b.keyPem, { mode: 0o600 });
    chmodSync(key, 0o600);
    files.push(key);
  }
  writeFileSync(
    join(dir, 'terminal.json'),
    JSON.stringify(
      {
        terminal_id: b.terminalId,
        serial: b.serial,
        fingerprint_sha256: b.fingerprint,
        not_after: b.notAfter.toISOString(),
      },
      null,
      2,
    ) + '\n',
  );
  files.push(join(dir, 'terminal.json'));
  return files;
}

/**
 * A gateway replica's own client certificate for an external broker, written into the PKI
 * directory. One name per replica (tillpoint-gateway, tillpoint-gateway-2, …): brokers that pin
 * the client id to the certificate name (as our Mosquitto config does) allow one connection per name.
 */
export async function issueGatewayCertificate(
  pkiDir: string,
  days = 825,
  name = GATEWAY_COMMON_NAME,
): Promise<{ cert: string; key: string }> {
  if (!isGatewayName(name))
    throw new Error(`a gateway name is tillpoint-gateway or tillpoint-gateway-<suffix>, not "${name}"`);
  const ca = await loadCa(pkiDir);
  const c = await issueClientCertificate(ca, { commonName: name, days });
  const f = gatewayCertFiles(pkiDir, name);
  writeFileSync(f.key, c.keyPem!, { mode: 0o600 });
  chmodSync(f.key, 0o600);
  writeFileSync(f.cert, c.certPem + '\n');
  return f;
}

/** A CRL of every revoked, still-unexpired terminal certificate, for brokers that check one. */
export async function currentCrl(db: Db, pkiDir: string): Promise<string> {
  const ca = await loadCa(pkiDir);
  const revoked = await listRevokedCertificates(db);
  return buildCrl(
    ca,
    revoked.map((r) => ({ serial: r.serial, revokedAt: r.revoked_at })),
  );
}
