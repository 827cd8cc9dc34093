import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../../platform/db.ts';
import type { Mode } from '../../platform/config.ts';
import { AppError } from '../../platform/errors.ts';
import { issueMqttSecretsBatch, loadEnrollment, loadPki } from '../terminals/index.ts';
import * as repo from './onboarding.repo.ts';

// Credentials for the terminals an import created, for the provisioning team:
//   - secrets: development MQTT secrets (plain listener), one CSV (mode 0600) with each
//     terminal's username and password; only digests stay in the database;
//   - certificates: a client certificate per terminal from the terminal CA (keys generated here),
//     one encrypted bundle per store (AES-256-GCM under a key derived with scrypt from
//     IMPORT_BUNDLE_PASSPHRASE), plus the CA certificate and its current revocation list.
// Issuing again rotates: the previous secret is revoked; certificates are added (revoke old ones
// with `tillpoint terminals revoke`). The values are shown only in these files, never logged.

export interface CredentialDelivery {
  kind: 'secrets' | 'certificates';
  terminals: number;
  stores: number;
  files: string[];
}

const PAGE = 500;
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

function secretFile(path: string) {
  const fd = openSync(path, 'w', 0o600);
  chmodSync(path, 0o600);
  return fd;
}

const csvCell = (v: string | null) => (v === null ? '' : /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

export function sealBundle(plaintext: string, passphrase: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = scryptSync(passphrase, salt, 32, SCRYPT);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return `${JSON.stringify({
    v: 1,
    alg: 'aes-256-gcm',
    kdf: { name: 'scrypt', N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p },
    salt: salt.toString('base64'),
    iv: iv.toString('base64'),
    tag: c.getAuthTag().toString('base64'),
    ciphertext: ct.toString('base64'),
  })}\n`;
}

/** Opens a store bundle (for the provisioning tool, and the tests). Throws when the passphrase is wrong or the file altered. */
export function openStoreBundle(
  file: string,
  passphrase: string,
): {
  store_id: string;
  ca_pem: string;
  terminals: { terminal_id: string; external_ref: string; cert_pem: string; key_pem: string; serial: string }[];
} {
  const b = JSON.parse(readFileSync(file, 'utf8'));
  if (b.v !== 1 || b.alg !== 'aes-256-gcm' || b.kdf?.name !== 'scrypt') throw new Error('not a Tillpoint store bundle');
  const key = scryptSync(passphrase, Buffer.from(b.salt, 'base64'), 32, {
    N: b.kdf.N,
    r: b.kdf.r,
    p: b.kdf.p,
    maxmem: SCRYPT.maxmem,
  });
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(b.iv, 'base64'));
  d.setAuthTag(Buffer.from(b.tag, 'base64'));
  return JSON.parse(Buffer.concat([d.update(Buffer.from(b.ciphertext, 'base64')), d.final()]).toString('utf8'));
}

export async function deliverTerminalCredentials(
  db: Db,
  o: {
    importId: string;
    kind: 'secrets' | 'certificates';
    outDir: string;
    mode: Mode;
    pkiDir: string;
    mqttUrl?: string | null;
    passphrase?: string;
    days?: number;
    onProgress?: (done: number) => void;
  },
): Promise<CredentialDelivery> {
  if (o.kind === 'certificates' && (!o.passphrase || o.passphrase.length < 16))
    throw new AppError(
      'validation_failed',
      'Certificate bundles are encrypted: set IMPORT_BUNDLE_PASSPHRASE (16 characters or more)',
      [{ field: 'IMPORT_BUNDLE_PASSPHRASE', problem: 'missing or shorter than 16 characters' }],
    );
  mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
  const files: string[] = [];
  let terminals = 0;
  const stores = new Set<string>();
  let after = { storeId: '', terminalId: '' };
  if (o.kind === 'secrets') {
    const path = join(o.outDir, `terminal-credentials-${o.importId}.csv`);
    const fd = secretFile(path);
    try {
      writeSync(fd, 'terminal_id,external_ref,merchant_id,store_id,mqtt_username,mqtt_password,mqtt_url\n');
      for (;;) {
        const page = await repo.importedTerminals(db, o.importId, after, PAGE);
        if (page.length === 0) break;
        const issued = await issueMqttSecretsBatch(
          db,
          page.map((t) => t.terminal_id),
          o.mode,
        );
        const lines = page.map((t, i) =>
          [
            t.terminal_id,
            t.external_ref,
            t.merchant_id,
            t.store_id,
            issued[i].username,
            issued[i].password,
            o.mqttUrl ?? null,
          ]
            .map(csvCell)
            .join(','),
        );
        writeSync(fd, `${lines.join('\n')}\n`);
        for (const t of page) stores.add(t.store_id);
        terminals += page.length;
        o.onProgress?.(terminals);
        const last = page[page.length - 1];
        after = { storeId: last.store_id, terminalId: last.terminal_id };
      }
    } finally {
      closeSync(fd);
    }
    files.push(path);
  } else {
    const { loadCa } = await loadPki();
    const { enrollTerminal } = await loadEnrollment();
    const ca = await loadCa(o.pkiDir); // fails early, naming `pki init`, when there is no CA
    let current: { storeId: string; items: unknown[] } | undefined;
    const flush = () => {
      if (!current) return;
      const path = join(o.outDir, `${current.storeId}.bundle`);
      const fd = secretFile(path);
      writeSync(
        fd,
        sealBundle(
          JSON.stringify({ store_id: current.storeId, ca_pem: ca.certPem, terminals: current.items }),
          o.passphrase!,
        ),
      );
      closeSync(fd);
      files.push(path);
    };
    for (;;) {
      const page = await repo.importedTerminals(db, o.importId, after, PAGE);
      if (page.length === 0) break;
      for (const t of page) {
        if (current?.storeId !== t.store_id) {
          flush();
          current = { storeId: t.store_id, items: [] };
          stores.add(t.store_id);
        }
        const b = await enrollTerminal(db, { pkiDir: o.pkiDir, terminalId: t.terminal_id, days: o.days });
        current.items.push({
          terminal_id: t.terminal_id,
          external_ref: t.external_ref,
          cert_pem: b.certPem,
          key_pem: b.keyPem,
          serial: b.serial,
          not_after: b.notAfter.toISOString(),
        });
        terminals++;
        o.onProgress?.(terminals);
      }
      const last = page[page.length - 1];
      after = { storeId: last.store_id, terminalId: last.terminal_id };
    }
    flush();
  }
  // The CA's revocation list, current as of now, for brokers that check one (Mosquitto's crlfile).
  const { pkiFiles } = await loadPki();
  if (existsSync(pkiFiles(o.pkiDir).caCert) && existsSync(pkiFiles(o.pkiDir).caKey)) {
    const { currentCrl } = await loadEnrollment();
    const crl = join(o.outDir, 'crl.pem');
    writeFileSync(crl, await currentCrl(db, o.pkiDir));
    const caOut = join(o.outDir, 'ca.crt');
    writeFileSync(caOut, readFileSync(pkiFiles(o.pkiDir).caCert));
    files.push(crl, caOut);
  }
  return { kind: o.kind, terminals, stores: stores.size, files };
}
