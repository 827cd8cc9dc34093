import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import QRCode from 'qrcode';
import type { Logger } from 'pino';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import { AppError } from '../../platform/errors.ts';
import { newId, isId } from '../../platform/ids.ts';
import { canAccessMerchant, type Principal } from '../../platform/principal.ts';
import { page } from '../../http/pagination.ts';
import { SYSTEM_ACTOR, secretFromConfigOrFile, type Actor, type AuditWriter } from '../audit/index.ts';
import { merchantExists } from '../merchants/index.ts';
import * as repo from './operators.repo.ts';
import type { OperatorRow } from './operators.repo.ts';
import {
  HISTORY_DEPTH,
  assertAcceptablePassword,
  hashPassword,
  matchesAny,
  temporaryPassword,
  verifyNothing,
  verifyPassword,
} from './passwords.ts';
import { MERCHANT_ROLES, ROLES, isRole, permissionsFor, type RoleDef } from './roles.ts';
import { createSecretBox, type SecretBox } from './secretBox.ts';
import { matchTotp, newTotpSecret, otpauthUri } from './totp.ts';
import type { ApprovalsService, ClaimApproval } from './approvals.service.ts';

// Operators: the people who run the platform. Sign-in is two steps, password then TOTP, and
// every step, success or failure, is recorded in the audit trail in the transaction that
// changes the account (counters, locks, sessions).

export interface IdentityDeps {
  db: Db;
  config: Pick<Config, 'mode' | 'dataDir' | 'identity'>;
  clock: Clock;
  audit: AuditWriter;
  logger: Logger;
  secretBox?: SecretBox;
  /** Four eyes: an MFA reset over the API becomes a request another operator approves. */
  approvals?: ApprovalsService;
}

const CHALLENGE_TTL_MS = 5 * 60_000;
const CHALLENGE_MAX_ATTEMPTS = 5;
const RECOVERY_CODES = 10;
const EMAIL_RE = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{2,}$/;

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest();
const token = (prefix: string) => `${prefix}_${randomBytes(32).toString('base64url')}`;
const B32 = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
/** 16 characters from a 32-letter alphabet: 80 bits, shown as XXXX-XXXX-XXXX-XXXX. */
function recoveryCode(): string {
  const b = randomBytes(16);
  let s = '';
  for (let i = 0; i < 16; i++) s += B32[b[i] & 31];
  return s.match(/.{4}/g)!.join('-');
}
const normalizeRecovery = (c: string) => c.toUpperCase().replace(/[^A-Z0-9]/g, '');
const RECOVERY_RE = /^[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}$/;

export function operatorView(r: OperatorRow, now: Date) {
  const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
  return {
    id: r.id,
    email: r.email,
    name: r.name,
    merchant_id: r.merchant_id,
    roles: r.roles,
    status: r.status,
    disabled_reason: r.disabled_reason,
    locked_until: r.locked_until && new Date(r.locked_until) > now ? iso(r.locked_until) : null,
    mfa_enrolled: r.totp_enrolled_at !== null,
    must_change_password: r.must_change_password,
    last_login_at: iso(r.last_login_at),
    last_used_at: iso(r.last_used_at),
    created_at: iso(r.created_at)!,
  };
}
export type OperatorView = ReturnType<typeof operatorView>;

export interface LoginChallenge {
  challenge: string;
  mfa: 'totp' | 'enroll';
  expires_at: string;
  /** Enrollment only: the TOTP secret as a URI and as a QR code (SVG) for an authenticator app. */
  otpauth_uri?: string;
  qr_svg?: string;
}

export interface OpenedSession {
  /** Goes in the HttpOnly cookie only; never in a response body. */
  token: string;
  csrf_token: string;
  session: { id: string; expires_at: string; idle_timeout_seconds: number };
  operator: OperatorView;
  /** Shown once, at enrollment. */
  recovery_codes?: string[];
}

export function createIdentityService(deps: IdentityDeps) {
  const { db, clock, audit } = deps;
  const cfg = deps.config.identity;
  const box =
    deps.secretBox ??
    createSecretBox(
      secretFromConfigOrFile({
        value: cfg.mfaKey,
        setting: 'MFA_ENCRYPTION_KEY',
        mode: deps.config.mode,
        file: join(deps.config.dataDir, 'keys', 'identity-mfa.key'),
      }),
    );
  const cost = cfg.passwordHash;
  const idleMs = cfg.sessionIdleMinutes * 60_000;
  const absoluteMs = cfg.sessionAbsoluteHours * 3_600_000;
  const csrfFor = (sessionId: string) => box.mac('csrf', sessionId).toString('base64url');
  const opActor = (o: OperatorRow): Actor => ({ type: 'operator', id: o.id, merchant_id: o.merchant_id });
  const actorFor = (p: Principal | null): Actor | undefined =>
    p ? undefined : { type: 'cli', id: process.env.USER ?? 'cli', merchant_id: null };
  const res = (o: Pick<OperatorRow, 'id' | 'merchant_id'>) => ({
    type: 'operator',
    id: o.id,
    merchant_id: o.merchant_id,
  });

  function checkRoles(roles: readonly string[], merchantId: string | null) {
    if (roles.length === 0)
      throw new AppError('validation_failed', 'An operator needs at least one role', [
        { field: 'body.roles', problem: 'must not be empty' },
      ]);
    for (const r of roles) {
      if (!isRole(r))
        throw new AppError('validation_failed', `Unknown role "${r}"`, [
          { field: 'body.roles', problem: `must be among ${Object.keys(ROLES).join(', ')}` },
        ]);
      if ((ROLES[r] as RoleDef).platformOnly && merchantId !== null) {
        throw new AppError('validation_failed', `The role "${r}" is for platform staff only`, [
          { field: 'body.roles', problem: `${r} cannot be scoped to a merchant` },
        ]);
      }
    }
  }

  /** A merchant's staff manage only their merchant's staff, with merchant roles; CLI (null) and platform staff manage all. */
  function checkScope(p: Principal | null, merchantId: string | null, roles?: readonly string[]) {
    if (!p || p.merchantId === null) return;
    if (merchantId !== p.merchantId) {
      canAccessMerchant(p, merchantId ?? 'platform');
      throw new AppError('not_found', 'Operator not found');
    }
    if (roles?.some((r) => !MERCHANT_ROLES.includes(r as never)))
      throw new AppError('forbidden', 'Merchant staff can only grant merchant roles');
  }

  async function visible(q: Queryable, p: Principal | null, id: string, lock = false): Promise<OperatorRow> {
    const o = isId('operator', id) ? await repo.getOperator(q, id, lock) : undefined;
    if (!o || o.status === 'deleted') throw new AppError('not_found', 'Operator not found');
    checkScope(p, o.merchant_id);
    return o;
  }

  function notSelf(p: Principal | null, id: string, what: string) {
    // Separation of duties: nobody widens, unlocks or re-enables their own account.
    if (p?.id === id) throw new AppError('forbidden', `You cannot ${what} your own account; ask another administrator`);
  }

  async function newChallenge(tx: Queryable, o: OperatorRow, now: Date): Promise<LoginChallenge> {
    const t = token('tpc');
    const id = newId('mfaChallenge');
    const expires = new Date(now.getTime() + CHALLENGE_TTL_MS);
    if (o.totp_enrolled_at) {
      await repo.insertMfaChallenge(tx, {
        id,
        tokenHash: sha256(t),
        operatorId: o.id,
        kind: 'totp',
        pendingSecret: null,
        expiresAt: expires,
        now,
      });
      return { challenge: t, mfa: 'totp', expires_at: expires.toISOString() };
    }
    // First sign-in: a new secret, kept sealed with the challenge until a first code confirms it.
    const secret = newTotpSecret();
    await repo.insertMfaChallenge(tx, {
      id,
      tokenHash: sha256(t),
      operatorId: o.id,
      kind: 'enroll',
      pendingSecret: box.seal(secret, `challenge:${id}`),
      expiresAt: expires,
      now,
    });
    const uri = otpauthUri(secret, o.email);
    return {
      challenge: t,
      mfa: 'enroll',
      expires_at: expires.toISOString(),
      otpauth_uri: uri,
      qr_svg: await QRCode.toString(uri, { type: 'svg', margin: 2 }),
    };
  }

  /** Counts a failed password or code; locks the account at the threshold (PCI DSS 8.3.4). */
  async function countFailure(
    tx: Queryable,
    o: OperatorRow,
    now: Date,
    action: string,
    reason: string,
  ): Promise<boolean> {
    const failures = o.failed_attempts + 1;
    const lock = failures >= cfg.lockoutThreshold;
    await repo.setFailedAttempts(
      tx,
      o.id,
      lock ? 0 : failures,
      lock ? new Date(now.getTime() + cfg.lockoutMinutes * 60_000) : o.locked_until,
    );
    await audit.record(tx, {
      action,
      outcome: 'failure',
      actor: opActor(o),
      resource: res(o),
      details: { reason, failures },
    });
    if (lock) {
      await audit.record(tx, {
        action: 'operator.locked',
        actor: SYSTEM_ACTOR('identity'),
        resource: res(o),
        details: { failures, minutes: cfg.lockoutMinutes },
      });
      await repo.revokeSessions(tx, o.id, 'locked', now);
    }
    return lock;
  }

  const lockedError = (o: Pick<OperatorRow, 'locked_until'>) =>
    new AppError(
      'account_locked',
      'Too many failed attempts: the account is locked for now; try again later or ask an administrator to unlock it',
      { locked_until: new Date(o.locked_until!).toISOString() },
    );
  const isLocked = (o: OperatorRow, now: Date) => o.locked_until !== null && new Date(o.locked_until) > now;

  async function openSession(
    tx: Queryable,
    o: OperatorRow,
    now: Date,
    ip: string | null,
  ): Promise<Omit<OpenedSession, 'operator' | 'recovery_codes'>> {
    const t = token('tps');
    const id = newId('session');
    const expires = new Date(now.getTime() + absoluteMs);
    const csrf = csrfFor(id);
    await repo.insertSession(tx, {
      id,
      tokenHash: sha256(t),
      csrfHash: sha256(csrf),
      operatorId: o.id,
      now,
      expiresAt: expires,
      ip,
    });
    return {
      token: t,
      csrf_token: csrf,
      session: { id, expires_at: expires.toISOString(), idle_timeout_seconds: idleMs / 1000 },
    };
  }

  async function newRecoveryCodes(tx: Queryable, operatorId: string, now: Date): Promise<string[]> {
    await repo.deleteRecoveryCodes(tx, operatorId);
    const codes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    for (const c of codes) await repo.insertRecoveryCode(tx, operatorId, sha256(normalizeRecovery(c)), now);
    return codes;
  }

  deps.approvals?.registerExecutor('mfa_reset', {
    execute: async (a, approver, claim) => {
      await svc.resetMfa(approver, a.subject_id, { approvalId: a.id, claim });
      return { operator_id: a.subject_id };
    },
    // The account is gone (deleted, or out of the approver's reach): the request cannot succeed.
    finalRefusals: ['not_found'],
  });

  const svc = {
    cost,

    // ---- administration ----

    async createOperator(
      p: Principal | null,
      input: { email: string; name: string; roles: string[]; merchant_id?: string | null; password?: string },
    ) {
      const merchantId = input.merchant_id ?? p?.merchantId ?? null;
      if (!EMAIL_RE.test(input.email))
        throw new AppError('validation_failed', 'The email address is not valid', [
          { field: 'body.email', problem: 'is not an email address' },
        ]);
      checkRoles(input.roles, merchantId);
      checkScope(p, merchantId, input.roles);
      if (merchantId !== null && !(await merchantExists(db, merchantId)))
        throw new AppError('merchant_not_found', 'Merchant not found');
      // A password set by someone else is temporary: it must be changed at first use (8.3.5).
      const password = input.password ?? temporaryPassword();
      if (input.password) assertAcceptablePassword(password, { email: input.email, name: input.name });
      const hash = await hashPassword(password, cost);
      const now = clock.now();
      const id = newId('operator');
      const row = await db.tx(async (tx) => {
        await repo.insertOperator(tx, {
          id,
          email: input.email,
          name: input.name,
          merchant_id: merchantId,
          roles: [...new Set(input.roles)],
          password_hash: hash,
          now,
          created_by: p?.id ?? null,
          must_change_password: input.password === undefined,
        });
        await audit.record(tx, {
          action: 'operator.created',
          actor: actorFor(p),
          resource: res({ id, merchant_id: merchantId }),
          details: { roles: [...new Set(input.roles)] },
        });
        return (await repo.getOperator(tx, id))!;
      });
      return {
        operator: operatorView(row, now),
        temporary_password: input.password === undefined ? password : undefined,
      };
    },

    async listOperators(p: Principal, q: { limit: number; before?: string }) {
      const now = clock.now();
      const rows = await repo.listOperators(db, {
        merchantId: p.merchantId ?? undefined,
        before: q.before,
        limit: q.limit,
      });
      return page(
        rows.map((r) => operatorView(r, now)),
        q.limit,
      );
    },

    async getOperator(p: Principal, id: string) {
      return operatorView(await visible(db, p, id), clock.now());
    },

    async updateOperator(p: Principal | null, id: string, patch: { name?: string; roles?: string[] }) {
      return db.tx(async (tx) => {
        const o = await visible(tx, p, id, true);
        if (patch.roles) {
          notSelf(p, id, 'change the roles of');
          checkRoles(patch.roles, o.merchant_id);
          checkScope(p, o.merchant_id, patch.roles);
        }
        await repo.updateOperator(tx, id, patch.name ?? null, patch.roles ? [...new Set(patch.roles)] : null);
        await audit.record(tx, {
          action: patch.roles ? 'operator.roles_changed' : 'operator.updated',
          actor: actorFor(p),
          resource: res(o),
          details: patch.roles ? { from: o.roles, to: [...new Set(patch.roles)] } : { fields: Object.keys(patch) },
        });
        return operatorView((await repo.getOperator(tx, id))!, clock.now());
      });
    },

    async setStatus(p: Principal | null, id: string, status: 'active' | 'disabled' | 'deleted', reason?: string) {
      return db.tx(async (tx) => {
        const o = await visible(tx, p, id, true);
        notSelf(p, id, status === 'active' ? 're-enable' : status === 'disabled' ? 'disable' : 'delete');
        const now = clock.now();
        // Re-enabling counts as use, or the inactivity job would disable the account again at once.
        await repo.setOperatorStatus(
          tx,
          id,
          status,
          status === 'active' ? null : (reason ?? 'by an administrator'),
          now,
        );
        if (status !== 'active') await repo.revokeSessions(tx, id, status, now);
        await audit.record(tx, {
          action: { active: 'operator.enabled', disabled: 'operator.disabled', deleted: 'operator.deleted' }[status],
          actor: actorFor(p),
          resource: res(o),
          details: { reason: reason ?? null },
        });
        return operatorView((await repo.getOperator(tx, id))!, now);
      });
    },

    async unlock(p: Principal | null, id: string) {
      return db.tx(async (tx) => {
        const o = await visible(tx, p, id, true);
        notSelf(p, id, 'unlock');
        await repo.unlockOperator(tx, id);
        await audit.record(tx, { action: 'operator.unlocked', actor: actorFor(p), resource: res(o) });
        return operatorView((await repo.getOperator(tx, id))!, clock.now());
      });
    },

    /** A new temporary password (shown once); every session ends. */
    async resetPassword(p: Principal | null, id: string) {
      const password = temporaryPassword();
      const hash = await hashPassword(password, cost);
      return db.tx(async (tx) => {
        const o = await visible(tx, p, id, true);
        notSelf(p, id, 'reset the password of');
        const now = clock.now();
        await repo.setPassword(tx, {
          id,
          oldHash: o.password_hash,
          newHash: hash,
          now,
          mustChange: true,
          keep: HISTORY_DEPTH,
        });
        await repo.revokeSessions(tx, id, 'password_reset', now);
        await audit.record(tx, { action: 'operator.password_reset', actor: actorFor(p), resource: res(o) });
        return { operator: operatorView((await repo.getOperator(tx, id))!, now), temporary_password: password };
      });
    },

    /**
     * Forgets the TOTP secret and recovery codes: the next sign-in enrolls again. Directly only
     * from the command line (p null: break-glass for someone with server access) or as the
     * effect of an approved request (`approved`); over the API it is requestMfaReset.
     */
    async resetMfa(p: Principal | null, id: string, approved?: { approvalId: string; claim: ClaimApproval }) {
      if (p && !approved) throw new AppError('forbidden', "An operator's MFA reset needs a second operator's approval");
      return db.tx(async (tx) => {
        const o = await visible(tx, p, id, true);
        notSelf(p, id, 'reset the second factor of');
        const now = clock.now();
        // The approval is claimed in this transaction: the reset happens once, or not at all.
        if (approved) await approved.claim(tx, { operator_id: id });
        await repo.clearTotp(tx, id);
        await repo.deleteRecoveryCodes(tx, id);
        await repo.revokeSessions(tx, id, 'mfa_reset', now);
        await audit.record(tx, {
          action: 'operator.mfa_reset',
          actor: actorFor(p),
          resource: res(o),
          details: approved ? { approval_id: approved.approvalId } : { break_glass: 'cli' },
        });
        return operatorView((await repo.getOperator(tx, id))!, now);
      });
    },

    /** An operator asks for another operator's MFA reset: a request a second operator approves. */
    async requestMfaReset(p: Principal, id: string) {
      if (!deps.approvals) throw new AppError('service_unavailable', 'Approvals are not available here');
      const o = await visible(db, p, id);
      notSelf(p, id, 'reset the second factor of');
      return deps.approvals.file(p, {
        kind: 'mfa_reset',
        subject_type: 'operator',
        subject_id: o.id,
        merchant_id: o.merchant_id,
        payload: { operator_name: o.name },
      });
    },

    // ---- signing in ----

    /** Step one: the password. Answers with a challenge for the second factor, never a session. */
    async login(input: { email: string; password: string }): Promise<LoginChallenge> {
      const now = clock.now();
      const o = typeof input.email === 'string' ? await repo.getOperatorByEmail(db, input.email) : undefined;
      if (o?.status !== 'active') {
        await verifyNothing(String(input.password), cost);
        await audit.record(db, {
          action: 'auth.login',
          outcome: 'failure',
          actor: o ? opActor(o) : { type: 'anonymous', id: null, merchant_id: null },
          resource: o ? res(o) : { type: 'operator' },
          // Which address was tried, without keeping the address itself.
          details: {
            reason: o ? `account_${o.status}` : 'unknown_account',
            email_sha256: o ? undefined : sha256(String(input.email).toLowerCase()).toString('hex').slice(0, 16),
          },
        });
        throw new AppError('invalid_credentials', 'The email or password is not correct');
      }
      if (isLocked(o, now)) {
        await audit.record(db, {
          action: 'auth.login',
          outcome: 'failure',
          actor: opActor(o),
          resource: res(o),
          details: { reason: 'locked' },
        });
        throw lockedError(o);
      }
      const ok = await verifyPassword(o.password_hash, String(input.password));
      if (!ok) {
        const locked = await db.tx(async (tx) =>
          countFailure(tx, (await repo.getOperator(tx, o.id, true))!, now, 'auth.login', 'bad_password'),
        );
        if (locked) throw lockedError({ locked_until: new Date(now.getTime() + cfg.lockoutMinutes * 60_000) });
        throw new AppError('invalid_credentials', 'The email or password is not correct');
      }
      return db.tx(async (tx) => {
        const c = await newChallenge(tx, o, now);
        await audit.record(tx, {
          action: 'auth.password_verified',
          actor: opActor(o),
          resource: res(o),
          details: { next: c.mfa },
        });
        return c;
      });
    },

    /** Step two: a TOTP code (or a recovery code) opens a session. At first sign-in this enrolls the authenticator. */
    async completeMfa(input: { challenge: string; code: string }, ip: string | null): Promise<OpenedSession> {
      const now = clock.now();
      const code = String(input.code ?? '').trim();
      type Outcome = { ok: true; value: OpenedSession } | { ok: false; error: AppError };
      const outcome: Outcome = await db.tx(async (tx): Promise<Outcome> => {
        const ch = await repo.getMfaChallengeForUpdate(tx, sha256(String(input.challenge ?? '')));
        if (!ch || ch.used_at || new Date(ch.expires_at) <= now || ch.attempts >= CHALLENGE_MAX_ATTEMPTS) {
          await audit.record(tx, {
            action: 'auth.mfa',
            outcome: 'failure',
            actor: { type: 'anonymous', id: null, merchant_id: null },
            resource: { type: 'operator', id: ch?.operator_id ?? null },
            details: { reason: ch ? 'challenge_spent' : 'unknown_challenge' },
          });
          return {
            ok: false,
            error: new AppError(
              'invalid_credentials',
              'This sign-in has expired or is unknown; start again with your password',
            ),
          };
        }
        const o = (await repo.getOperator(tx, ch.operator_id, true))!;
        if (o.status !== 'active') {
          await audit.record(tx, {
            action: 'auth.mfa',
            outcome: 'failure',
            actor: opActor(o),
            resource: res(o),
            details: { reason: `account_${o.status}` },
          });
          return {
            ok: false,
            error: new AppError(
              'invalid_credentials',
              'This sign-in has expired or is unknown; start again with your password',
            ),
          };
        }
        if (isLocked(o, now)) return { ok: false, error: lockedError(o) };
        const secret =
          ch.kind === 'enroll'
            ? box.open(ch.pending_secret!, `challenge:${ch.id}`)
            : box.open(o.totp_secret_sealed!, `operator:${o.id}`);
        let step = matchTotp(secret, code, now);
        let usedRecovery = false;
        if (step !== undefined && step <= Number(o.totp_last_step)) step = undefined; // a code works once
        if (step === undefined && ch.kind === 'totp' && RECOVERY_RE.test(code)) {
          usedRecovery = await repo.spendRecoveryCode(tx, o.id, sha256(normalizeRecovery(code)), now);
        }
        if (step === undefined && !usedRecovery) {
          await repo.countMfaChallengeAttempt(tx, ch.id);
          const locked = await countFailure(tx, o, now, 'auth.mfa', 'bad_code');
          return {
            ok: false,
            error: locked
              ? lockedError({ locked_until: new Date(now.getTime() + cfg.lockoutMinutes * 60_000) })
              : new AppError('invalid_credentials', 'The code is not correct'),
          };
        }
        await repo.markMfaChallengeUsed(tx, ch.id, now);
        await repo.recordLogin(tx, o.id, now, step ?? 0);
        let recovery: string[] | undefined;
        if (ch.kind === 'enroll') {
          await repo.setTotpSecret(tx, o.id, box.seal(secret, `operator:${o.id}`), now);
          recovery = await newRecoveryCodes(tx, o.id, now);
          await audit.record(tx, {
            action: 'operator.mfa_enrolled',
            actor: opActor(o),
            resource: res(o),
            details: { recovery_codes: RECOVERY_CODES },
          });
        }
        const s = await openSession(tx, o, now, ip);
        await audit.record(tx, {
          action: 'auth.login',
          actor: { ...opActor(o), session_id: s.session.id },
          resource: res(o),
          details: { factor: usedRecovery ? 'recovery_code' : 'totp', session_id: s.session.id },
        });
        const fresh = (await repo.getOperator(tx, o.id))!;
        return { ok: true, value: { ...s, operator: operatorView(fresh, now), recovery_codes: recovery } };
      });
      // Failures are thrown after their transaction commits, so the counter and the record stay.
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    },

    /**
     * The principal of a session token, or null when the token is unknown. A known session past
     * its idle (15 min) or absolute (12 h) limit is ended and answered with session_expired.
     */
    async authenticateSession(
      t: string,
      opts: { ip: string; changesState: boolean; csrfToken?: string; viaCookie: boolean },
    ): Promise<Principal | null> {
      if (!/^tps_[A-Za-z0-9_-]{43}$/.test(t)) return null;
      const now = clock.now();
      const r = await repo.getSessionByTokenHash(db, sha256(t));
      if (!r) return null;
      const ended = r.revoked_at
        ? 'ended'
        : r.status !== 'active'
          ? 'account_inactive'
          : now.getTime() - new Date(r.last_seen_at).getTime() > idleMs
            ? 'idle'
            : now >= new Date(r.expires_at)
              ? 'absolute'
              : undefined;
      if (ended) {
        if (!r.revoked_at) await repo.endSession(db, r.id, now, ended);
        throw new AppError(
          'session_expired',
          ended === 'idle'
            ? 'The session ended after 15 minutes without use; sign in again'
            : 'The session has ended; sign in again',
          { reason: ended },
        );
      }
      if (opts.viaCookie && opts.changesState) {
        const want = Buffer.from(csrfFor(r.id));
        const got = Buffer.from(opts.csrfToken ?? '');
        if (got.length !== want.length || !timingSafeEqual(got, want)) {
          throw new AppError('csrf_token_invalid', "Send the session's CSRF token in the X-CSRF-Token header");
        }
      }
      await repo.touchSession(db, r.id, now);
      // Last use, for the 90-day inactivity rule; written at most once a minute.
      if (!r.last_used_at || now.getTime() - new Date(r.last_used_at).getTime() > 60_000) {
        await repo.touchOperator(db, r.operator_id, now);
      }
      // Until a temporary password is changed, the session can do nothing else.
      const permissions = r.must_change_password ? new Set(['account:self']) : permissionsFor(r.roles, r.merchant_id);
      return { kind: 'operator', id: r.operator_id, merchantId: r.merchant_id, permissions, sessionId: r.id };
    },

    async session(p: Principal) {
      const o = (await repo.getOperator(db, p.id))!;
      const s = (await repo.getSessionTimes(db, p.sessionId!))!;
      return {
        operator: operatorView(o, clock.now()),
        permissions: [...p.permissions].sort(),
        session: {
          id: p.sessionId!,
          created_at: new Date(s.created_at).toISOString(),
          expires_at: new Date(s.expires_at).toISOString(),
          idle_timeout_seconds: idleMs / 1000,
        },
        csrf_token: csrfFor(p.sessionId!),
      };
    },

    async logout(p: Principal) {
      await db.tx(async (tx) => {
        await repo.endSession(tx, p.sessionId!, clock.now(), 'logout');
        await audit.record(tx, {
          action: 'auth.logout',
          resource: { type: 'operator', id: p.id, merchant_id: p.merchantId },
          details: { session_id: p.sessionId ?? null },
        });
      });
    },

    async changePassword(p: Principal, input: { current_password: string; new_password: string }) {
      const o = (await repo.getOperator(db, p.id))!;
      if (!(await verifyPassword(o.password_hash, input.current_password))) {
        const locked = await db.tx(async (tx) =>
          countFailure(
            tx,
            (await repo.getOperator(tx, o.id, true))!,
            clock.now(),
            'operator.password_changed',
            'bad_current_password',
          ),
        );
        if (locked) throw lockedError({ locked_until: new Date(clock.now().getTime() + cfg.lockoutMinutes * 60_000) });
        throw new AppError('invalid_credentials', 'The current password is not correct');
      }
      assertAcceptablePassword(input.new_password, { email: o.email, name: o.name });
      const history = [o.password_hash, ...(await repo.passwordHistory(db, o.id, HISTORY_DEPTH - 1))];
      if (await matchesAny(input.new_password, history)) {
        throw new AppError('password_rejected', `The password must differ from your last ${HISTORY_DEPTH}`, [
          { field: 'body.new_password', problem: `is one of the last ${HISTORY_DEPTH} passwords` },
        ]);
      }
      const hash = await hashPassword(input.new_password, cost);
      await db.tx(async (tx) => {
        const now = clock.now();
        await repo.setPassword(tx, {
          id: o.id,
          oldHash: o.password_hash,
          newHash: hash,
          now,
          mustChange: false,
          keep: HISTORY_DEPTH,
        });
        // Other sessions end: whoever knew the old password is out.
        await repo.revokeSessions(tx, o.id, 'password_changed', now, p.sessionId);
        await audit.record(tx, { action: 'operator.password_changed', resource: res(o) });
      });
    },

    /** New recovery codes (the old ones stop working); needs a current TOTP code. */
    async regenerateRecoveryCodes(p: Principal, code: string) {
      const now = clock.now();
      const outcome = await db.tx(async (tx) => {
        const o = (await repo.getOperator(tx, p.id, true))!;
        const step = o.totp_secret_sealed
          ? matchTotp(box.open(o.totp_secret_sealed, `operator:${o.id}`), String(code), now)
          : undefined;
        if (step === undefined || step <= Number(o.totp_last_step)) {
          const locked = await countFailure(tx, o, now, 'operator.recovery_codes_regenerated', 'bad_code');
          return {
            error: locked
              ? lockedError({ locked_until: new Date(now.getTime() + cfg.lockoutMinutes * 60_000) })
              : new AppError('invalid_credentials', 'The code is not correct'),
          };
        }
        await repo.setTotpLastStep(tx, o.id, step);
        const codes = await newRecoveryCodes(tx, o.id, now);
        await audit.record(tx, { action: 'operator.recovery_codes_regenerated', resource: res(o) });
        return { codes };
      });
      if ('error' in outcome) throw outcome.error;
      return { recovery_codes: outcome.codes! };
    },

    // ---- housekeeping and review ----

    /** Disables accounts not used for `inactiveDays` (PCI DSS 8.2.6). Run by the worker. */
    async disableInactive(): Promise<number> {
      const now = clock.now();
      const cutoff = new Date(now.getTime() - cfg.inactiveDays * 86_400_000);
      return db.tx(async (tx) => {
        const disabled = await repo.disableInactiveOperators(tx, cutoff);
        for (const o of disabled) {
          await repo.revokeSessions(tx, o.id, 'inactive', now);
          await audit.record(tx, {
            action: 'operator.disabled',
            actor: SYSTEM_ACTOR('worker'),
            resource: res(o),
            details: {
              reason: 'inactive',
              days: cfg.inactiveDays,
              last_used_at: o.last_used_at ? new Date(o.last_used_at).toISOString() : null,
            },
          });
        }
        return disabled.length;
      });
    },

    /** Every account with its roles and last use, for the six-monthly review (PCI DSS 7.2.4). */
    async accessReview() {
      const now = clock.now();
      const ops = await repo.listOperatorsForReview(db);
      const keys = await repo.listLiveApiKeysForReview(db, now);
      const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
      const daysSince = (d: Date | null) =>
        d ? Math.floor((now.getTime() - new Date(d).getTime()) / 86_400_000) : null;
      return {
        generated_at: now.toISOString(),
        operators: ops.map((o) => ({
          ...operatorView(o, now),
          days_since_use: daysSince(o.last_used_at ?? o.created_at),
          permissions: [...permissionsFor(o.roles, o.merchant_id)].sort(),
        })),
        api_keys: keys.map((k) => ({
          id: k.id,
          name: k.name,
          merchant_id: k.merchant_id,
          permissions: k.permissions,
          ip_allowlist: k.ip_allowlist,
          created_at: iso(k.created_at),
          expires_at: iso(k.expires_at),
          last_used_at: iso(k.last_used_at),
          days_since_use: daysSince(k.last_used_at ?? k.created_at),
        })),
      };
    },

    /** Development only: an operator with a known password and TOTP secret, for the demo. */
    async createDemoOperator(input: { email: string; name: string; roles: string[]; password: string }) {
      if (deps.config.mode !== 'development') throw new Error('demo operators exist in development mode only');
      const secret = newTotpSecret();
      const hash = await hashPassword(input.password, cost);
      const now = clock.now();
      const id = newId('operator');
      await db.tx(async (tx) => {
        await repo.insertOperator(tx, {
          id,
          email: input.email,
          name: input.name,
          merchant_id: null,
          roles: input.roles,
          password_hash: hash,
          now,
          created_by: 'demo',
          must_change_password: false,
        });
        await repo.setDemoTotpSecret(tx, id, box.seal(secret, `operator:${id}`), now);
        await audit.record(tx, {
          action: 'operator.created',
          actor: SYSTEM_ACTOR('demo'),
          resource: { type: 'operator', id, merchant_id: null },
          details: { roles: input.roles, demo: true },
        });
      });
      return { id, totpSecret: secret };
    },
  };
  return svc;
}

export type IdentityService = ReturnType<typeof createIdentityService>;
