import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Mode } from '../../platform/config.ts';
import { AppError } from '../../platform/errors.ts';
import { getTerminalContext } from '../merchants/index.ts';
import * as repo from './terminals.repo.ts';
import { isTerminalId } from './topics.ts';

// Who a terminal is. Two kinds of credential:
//   - an X.509 client certificate from the terminal CA (port 8883, mutual TLS; production);
//   - a per-terminal secret, username = terminal id (port 1883, development only).
// Both are checked against the database at every connect, so revoking one, or disabling the
// terminal, takes effect on every gateway replica at the next connect (and live sessions are
// closed by the gateway's revocation sweep).

export const SECRET_PREFIX = 'tpmq_';

export const hashSecret = (secret: string | Buffer) => createHash('sha256').update(secret).digest();

async function activeTerminal(q: Queryable, terminalId: string) {
  const ctx = isTerminalId(terminalId) ? await getTerminalContext(q, terminalId) : undefined;
  if (!ctx) throw new AppError('terminal_not_found', `No terminal ${terminalId}`);
  if (ctx.terminal_status !== 'active') throw new AppError('terminal_inactive', `Terminal ${terminalId} is disabled`);
  return ctx;
}

/** Issues (or rotates) the terminal's development MQTT secret. Shown once; only its digest is kept. */
export async function issueMqttSecret(
  db: Db,
  terminalId: string,
  mode: Mode,
): Promise<{ username: string; password: string }> {
  if (mode === 'production') {
    throw new AppError(
      'forbidden',
      'MQTT secrets are for the development listener only; in production terminals use client certificates',
    );
  }
  const password = SECRET_PREFIX + randomBytes(32).toString('base64url');
  await db.tx(async (tx) => {
    await activeTerminal(tx, terminalId);
    await repo.replaceMqttSecret(tx, terminalId, hashSecret(password));
  });
  return { username: terminalId, password };
}

export type AuthResult =
  | {
      ok: true;
      terminalId: string;
      /** The terminal's merchant, from the record read for this check: requests on the connection act for it. */
      merchantId: string;
      credential: { kind: 'secret'; id: number } | { kind: 'certificate'; fingerprint: string; serial: string };
    }
  | { ok: false; reason: string };

/** Username/password login on the development listener. */
export async function verifyMqttSecret(
  q: Queryable,
  username: string | undefined,
  password: Buffer | undefined,
): Promise<AuthResult> {
  if (!username || !isTerminalId(username)) return { ok: false, reason: 'username is not a terminal id' };
  if (!password || password.length === 0 || password.length > 256) return { ok: false, reason: 'no password' };
  const [live, ctx] = await Promise.all([repo.getLiveMqttSecret(q, username), getTerminalContext(q, username)]);
  if (!ctx) return { ok: false, reason: 'unknown terminal' };
  if (!live || !timingSafeEqual(live.secret_hash, hashSecret(password))) return { ok: false, reason: 'wrong secret' };
  if (ctx.terminal_status !== 'active') return { ok: false, reason: 'terminal disabled' };
  return { ok: true, terminalId: username, merchantId: ctx.merchant_id, credential: { kind: 'secret', id: live.id } };
}

/**
 * A client certificate that already passed the TLS handshake (so it chains to the terminal CA).
 * It must also be one we issued and recorded, bound to the terminal it names, unexpired and not
 * revoked; and the terminal must be active.
 */
export async function verifyClientCertificate(
  q: Queryable,
  peer: { commonName?: string; fingerprint: string; serial: string },
  now: Date,
): Promise<AuthResult> {
  const row = await repo.getCertificateByFingerprint(q, peer.fingerprint);
  if (!row) return { ok: false, reason: 'certificate not issued by this platform' };
  if (row.terminal_id !== peer.commonName)
    return { ok: false, reason: 'certificate subject does not match its record' };
  if (row.revoked_at) return { ok: false, reason: 'certificate revoked' };
  if (row.not_after <= now || row.not_before > now)
    return { ok: false, reason: 'certificate outside its validity period' };
  const ctx = await getTerminalContext(q, row.terminal_id);
  if (ctx?.terminal_status !== 'active') return { ok: false, reason: 'terminal disabled' };
  return {
    ok: true,
    terminalId: row.terminal_id,
    merchantId: ctx.merchant_id,
    credential: { kind: 'certificate', fingerprint: row.fingerprint, serial: row.serial },
  };
}

/** Records a certificate the CA just issued for `terminalId`. */
export async function recordCertificate(
  db: Db,
  terminalId: string,
  c: { serial: string; fingerprint: string; notBefore: Date; notAfter: Date },
) {
  await db.tx(async (tx) => {
    await activeTerminal(tx, terminalId);
    await repo.insertCertificate(tx, { terminalId, ...c });
  });
}

/** Revokes the terminal's certificates (one, by serial, or all) and its MQTT secret. */
export async function revokeTerminalCredentials(
  db: Db,
  terminalId: string,
  opts: { serial?: string; reason?: string } = {},
) {
  if (!isTerminalId(terminalId)) throw new AppError('terminal_not_found', `No terminal ${terminalId}`);
  return db.tx((tx) => revokeCredentialsIn(tx, terminalId, opts));
}

/** The same, inside the caller's transaction (the HTTP route writes its audit record in it). */
export async function revokeCredentialsIn(
  tx: Queryable,
  terminalId: string,
  opts: { serial?: string; reason?: string } = {},
) {
  const serials = await repo.revokeCertificates(
    tx,
    terminalId,
    opts.reason ?? 'unspecified',
    opts.serial?.toLowerCase(),
  );
  const secrets = opts.serial ? 0 : await repo.revokeMqttSecrets(tx, terminalId);
  return { certificates: serials, secrets };
}

/** Development secrets for the demo terminals (`npm start` writes them to demo.json). Disabled terminals are left out. */
export async function issueDemoTerminalSecrets(db: Db, terminalIds: string[]) {
  const out: { id: string; mqtt_username: string; mqtt_password: string }[] = [];
  for (const id of terminalIds) {
    try {
      const c = await issueMqttSecret(db, id, 'development');
      out.push({ id, mqtt_username: c.username, mqtt_password: c.password });
    } catch (e) {
      if ((e as AppError).code !== 'terminal_inactive') throw e;
    }
  }
  return out;
}

/**
 * Development MQTT secrets for a batch of terminals (bulk onboarding), in one transaction: each
 * shown once to the caller, only digests kept. Refused in production, like issueMqttSecret.
 */
export async function issueMqttSecretsBatch(
  db: Db,
  terminalIds: string[],
  mode: Mode,
): Promise<{ terminal_id: string; username: string; password: string }[]> {
  if (mode === 'production') {
    throw new AppError(
      'forbidden',
      'MQTT secrets are for the development listener only; in production terminals use client certificates',
    );
  }
  const out = terminalIds.map((id) => ({
    terminal_id: id,
    username: id,
    password: SECRET_PREFIX + randomBytes(32).toString('base64url'),
  }));
  await db.tx(async (tx) => {
    const active = await repo.activeTerminalIds(tx, terminalIds);
    const missing = terminalIds.find((id) => !active.has(id));
    if (missing) throw new AppError('terminal_inactive', `Terminal ${missing} is missing or disabled`);
    await repo.replaceMqttSecretsBatch(
      tx,
      out.map((c) => ({ terminalId: c.terminal_id, hash: hashSecret(c.password) })),
    );
  });
  return out;
}
