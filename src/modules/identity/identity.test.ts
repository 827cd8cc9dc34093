import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from '../../../test/helpers/harness.ts';
import {
  call,
  createOperator,
  signIn,
  sessionTokenFrom,
  GOOD_PASSWORD,
  uniqueEmail,
} from '../../../test/helpers/operators.ts';
import { fixedClock } from '../../platform/clock.ts';
import { base32Decode, totp } from './totp.ts';
import { passwordProblem } from './passwords.ts';

// Operators over HTTP: first sign-in with enrollment, the password rules, lockout, session
// limits, CSRF, single-use codes, recovery codes, inactivity, and API key management.

const clock = fixedClock('2025-03-03T09:00:00.000Z');
const step = () => clock.advance(30_000); // a new TOTP time step

async function auditActions(t: TestApp, resourceId: string): Promise<string[]> {
  const r = await t.db.query<{ action: string; outcome: string }>(
    `SELECT action, outcome FROM audit.events WHERE resource_id = $1 ORDER BY seq`,
    [resourceId],
  );
  return r.rows.map((x) => `${x.action}:${x.outcome}`);
}

describe('operators', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ clock, env: { RATE_LIMIT_ENABLED: 'false' } });
  });
  after(() => t.close());

  test('password rules: length, letters and digits, common passwords, own name', () => {
    assert.match(passwordProblem('short1')!, /12 characters/);
    assert.match(passwordProblem('onlyletterslong')!, /letters and digits/);
    assert.match(passwordProblem('123456789012345')!, /letters and digits/);
    assert.match(passwordProblem('Password1234')!, /common/);
    assert.match(passwordProblem('qwerty123456')!, /common/);
    assert.match(passwordProblem('!!Welcome2025!!')!, /common word/);
    assert.match(passwordProblem('asha.kumar-2025x', { email: 'asha.kumar@example.com' })!, /name or email/);
    assert.equal(passwordProblem(GOOD_PASSWORD), undefined);
  });

  test('first sign-in: temporary password, TOTP enrollment with URI and QR, recovery codes, then a forced password change', async () => {
    // Created the way an administrator does it: no password given, a temporary one comes back.
    const created = await t.app.services.identity.createOperator(null, {
      email: uniqueEmail('first'),
      name: 'Asha Rao',
      roles: ['viewer'],
    });
    const { id, email } = created.operator;
    const temporaryPassword = created.temporary_password!;
    assert.match(temporaryPassword, /^[A-Za-z0-9]{20}$/);
    const login = await call(t, 'POST', '/v1/auth/login', { email, password: temporaryPassword });
    assert.equal(login.status, 200);
    assert.equal(login.body.mfa, 'enroll');
    assert.match(login.body.otpauth_uri, /^otpauth:\/\/totp\/Tillpoint:.*\?secret=[A-Z2-7]{32}&issuer=Tillpoint/);
    assert.match(login.body.qr_svg, /^<svg /);
    assert.equal(login.body.session, undefined, 'a password alone opens no session');
    const secret = base32Decode(new URL(login.body.otpauth_uri).searchParams.get('secret')!);
    const bad = await call(t, 'POST', '/v1/auth/mfa', { challenge: login.body.challenge, code: '000000' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error.code, 'invalid_credentials');
    const mfa = await call(t, 'POST', '/v1/auth/mfa', {
      challenge: login.body.challenge,
      code: totp(secret, clock.now()),
    });
    assert.equal(mfa.status, 200);
    const cookie = mfa.headers.get('set-cookie')!;
    assert.match(
      cookie,
      /^__Host-tp_session=tps_[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Strict; Max-Age=43200$/,
    );
    assert.ok(!JSON.stringify(mfa.body).includes(sessionTokenFrom(mfa)!), 'the session token is in the cookie only');
    assert.equal(mfa.body.recovery_codes.length, 10);
    assert.equal(mfa.body.operator.must_change_password, true);
    const stored = await t.db.query<{ totp_secret_sealed: Buffer }>(
      `SELECT totp_secret_sealed FROM identity.operators WHERE id = $1`,
      [id],
    );
    assert.ok(!stored.rows[0].totp_secret_sealed.includes(secret), 'the TOTP secret is stored sealed');
    const codes = await t.db.query<{ code_hash: Buffer }>(
      `SELECT code_hash FROM identity.recovery_codes WHERE operator_id = $1`,
      [id],
    );
    assert.equal(codes.rows.length, 10);
    assert.ok(
      !codes.rows.some((c) => c.code_hash.toString().includes(mfa.body.recovery_codes[0])),
      'recovery codes are stored hashed',
    );

    const s = {
      req: (m: string, p: string, b?: unknown) =>
        call(t, m, p, b, { cookie: `__Host-tp_session=${sessionTokenFrom(mfa)}`, 'x-csrf-token': mfa.body.csrf_token }),
    };
    assert.equal(
      (await s.req('GET', '/v1/merchants')).status,
      403,
      'nothing but a password change until the temporary password is replaced',
    );
    const weak = await s.req('POST', '/v1/auth/password', {
      current_password: temporaryPassword,
      new_password: 'password2024',
    });
    assert.equal(weak.status, 422);
    assert.equal(weak.body.error.code, 'password_rejected');
    const same = await s.req('POST', '/v1/auth/password', {
      current_password: temporaryPassword,
      new_password: temporaryPassword,
    });
    assert.equal(same.status, 422, 'not the current one either');
    assert.equal(
      (await s.req('POST', '/v1/auth/password', { current_password: temporaryPassword, new_password: GOOD_PASSWORD }))
        .status,
      204,
    );
    assert.equal((await s.req('GET', '/v1/merchants')).status, 200, 'a viewer reads merchants');
    assert.equal((await s.req('GET', '/v1/payments')).status, 403, 'but not payments');
    const acts = await auditActions(t, id);
    for (const a of [
      'operator.created:success',
      'auth.password_verified:success',
      'auth.mfa:failure',
      'operator.mfa_enrolled:success',
      'auth.login:success',
      'operator.password_changed:success',
    ]) {
      assert.ok(acts.includes(a), `audit has ${a}: ${acts.join(', ')}`);
    }
  });

  test('a TOTP code works once; recovery codes work once', async () => {
    const op = await createOperator(t, { roles: ['viewer'] });
    step();
    const first = await signIn(t, clock, op);
    const login = await call(t, 'POST', '/v1/auth/login', { email: op.email, password: op.password });
    const replay = await call(t, 'POST', '/v1/auth/mfa', {
      challenge: login.body.challenge,
      code: totp(first.secret, clock.now()),
    });
    assert.equal(replay.status, 401, 'the same code in the same time step is refused');
    const recovery = first.body.recovery_codes[0];
    const withRecovery = await call(t, 'POST', '/v1/auth/mfa', { challenge: login.body.challenge, code: recovery });
    assert.equal(withRecovery.status, 200);
    const again = await call(t, 'POST', '/v1/auth/login', { email: op.email, password: op.password });
    assert.equal(
      (await call(t, 'POST', '/v1/auth/mfa', { challenge: again.body.challenge, code: recovery })).status,
      401,
      'a recovery code is spent',
    );
    step();
    assert.equal(
      (
        await call(t, 'POST', '/v1/auth/mfa', {
          challenge: again.body.challenge,
          code: totp(first.secret, clock.now()),
        })
      ).status,
      200,
    );
    assert.ok((await auditActions(t, op.id)).includes('auth.login:success'));
  });

  test('ten failures lock the account for 30 minutes; the lock answers account_locked', async () => {
    const op = await createOperator(t, { roles: ['viewer'] });
    step();
    const s = await signIn(t, clock, op);
    for (let i = 1; i <= 9; i++) {
      const r = await call(t, 'POST', '/v1/auth/login', { email: op.email, password: `wrong-password-${i}` });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'invalid_credentials');
    }
    const tenth = await call(t, 'POST', '/v1/auth/login', { email: op.email, password: 'wrong-password-10' });
    assert.equal(tenth.status, 423);
    assert.equal(tenth.body.error.code, 'account_locked');
    const right = await call(t, 'POST', '/v1/auth/login', { email: op.email, password: op.password });
    assert.equal(right.status, 423, 'even the right password is refused while locked');
    assert.equal((await s.req('GET', '/v1/auth/session')).status, 401, 'the lock ended open sessions');
    const acts = await auditActions(t, op.id);
    assert.equal(acts.filter((a) => a === 'auth.login:failure').length, 11);
    assert.ok(acts.includes('operator.locked:success'));
    clock.advance(29 * 60_000);
    assert.equal((await call(t, 'POST', '/v1/auth/login', { email: op.email, password: op.password })).status, 423);
    clock.advance(2 * 60_000);
    const after = await signIn(t, clock, { ...op, secret: s.secret });
    assert.equal((await after.req('GET', '/v1/auth/session')).status, 200);
  });

  test('sessions end after 15 idle minutes and after 12 hours in any case', async () => {
    const op = await createOperator(t, { roles: ['viewer'] });
    step();
    const s = await signIn(t, clock, op);
    clock.advance(14 * 60_000);
    assert.equal((await s.req('GET', '/v1/merchants')).status, 200);
    clock.advance(15 * 60_000 + 1000);
    const idle = await s.req('GET', '/v1/merchants');
    assert.equal(idle.status, 401);
    assert.equal(idle.body.error.code, 'session_expired');
    step();
    const s2 = await signIn(t, clock, { ...op, secret: s.secret });
    for (let i = 0; i < 12 * 6; i++) {
      clock.advance(10 * 60_000);
      const r = await s2.req('GET', '/v1/auth/session');
      if (i < 12 * 6 - 1) assert.equal(r.status, 200, `still open after ${(i + 1) * 10} minutes`);
      else assert.equal(r.body.error.code, 'session_expired', 'closed at 12 hours though never idle');
    }
  });

  test('cookie sessions need the CSRF token to change anything; a Bearer session token does not', async () => {
    const op = await createOperator(t, { roles: ['security-admin'] });
    step();
    const s = await signIn(t, clock, op);
    const body = { email: uniqueEmail('csrf'), name: 'New Person', roles: ['viewer'] };
    const noToken = await s.req('POST', '/v1/operators', body, { csrf: false });
    assert.equal(noToken.status, 403);
    assert.equal(noToken.body.error.code, 'csrf_token_invalid');
    const wrong = await call(t, 'POST', '/v1/operators', body, {
      cookie: `__Host-tp_session=${s.token}`,
      'x-csrf-token': 'x'.repeat(43),
    });
    assert.equal(wrong.status, 403);
    assert.equal((await s.req('GET', '/v1/operators', undefined, { csrf: false })).status, 200, 'reads need no token');
    const ok = await s.req('POST', '/v1/operators', body);
    assert.equal(ok.status, 201);
    assert.match(ok.body.temporary_password, /^[A-Za-z0-9]{20}$/);
    const bearer = await call(t, 'GET', '/v1/auth/session', undefined, { authorization: `Bearer ${s.token}` });
    assert.equal(bearer.status, 200);
    assert.equal(bearer.body.csrf_token, s.csrf, 'the console can fetch its CSRF token again after a reload');
  });

  test('a new password differs from the last four', async () => {
    const op = await createOperator(t, { roles: ['viewer'] });
    step();
    const s = await signIn(t, clock, op);
    const pw = (i: number) => `Rotating-pass-${i}x`;
    let current = op.password;
    for (let i = 1; i <= 4; i++) {
      clock.advance(1000);
      assert.equal(
        (await s.req('POST', '/v1/auth/password', { current_password: current, new_password: pw(i) })).status,
        204,
      );
      current = pw(i);
    }
    // The last four: pw(4) (current), pw(3), pw(2), pw(1). The first one is old enough again.
    for (const old of [pw(1), pw(3), pw(4)]) {
      const r = await s.req('POST', '/v1/auth/password', { current_password: current, new_password: old });
      assert.equal(r.status, 422, old);
      assert.match(r.body.error.message, /last 4/);
    }
    clock.advance(1000);
    assert.equal(
      (await s.req('POST', '/v1/auth/password', { current_password: current, new_password: op.password })).status,
      204,
    );
    const hashes = await t.db.query<{ password_hash: string }>(
      `SELECT password_hash FROM identity.password_history WHERE operator_id = $1`,
      [op.id],
    );
    assert.ok(
      hashes.rows.every((h) => h.password_hash.startsWith('$argon2id$')),
      'argon2id, also in the history',
    );
  });

  test('accounts unused for 90 days are disabled by the worker job', async () => {
    const op = await createOperator(t, { roles: ['viewer'] });
    step();
    const s = await signIn(t, clock, op);
    clock.advance(89 * 86_400_000);
    await t.app.services.identity.disableInactive();
    const at89 = await t.db.query<{ status: string }>(`SELECT status FROM identity.operators WHERE id = $1`, [op.id]);
    assert.equal(at89.rows[0].status, 'active', 'not yet at 89 days');
    step();
    const fresh = await signIn(t, clock, { ...op, secret: s.secret });
    clock.advance(91 * 86_400_000);
    assert.ok((await t.app.services.identity.disableInactive()) >= 1);
    const row = await t.db.query<{ status: string; disabled_reason: string }>(
      `SELECT status, disabled_reason FROM identity.operators WHERE id = $1`,
      [op.id],
    );
    assert.deepEqual(row.rows[0], { status: 'disabled', disabled_reason: 'inactive' });
    assert.equal((await fresh.req('GET', '/v1/auth/session')).status, 401);
    assert.equal((await call(t, 'POST', '/v1/auth/login', { email: op.email, password: op.password })).status, 401);
    assert.ok((await auditActions(t, op.id)).includes('operator.disabled:success'));
  });

  test('access review lists every account with roles and last use', async () => {
    const review = await t.app.services.identity.accessReview();
    assert.ok(review.operators.length >= 5);
    for (const o of review.operators) {
      assert.ok(Array.isArray(o.roles) && o.roles.length > 0);
      assert.ok('last_used_at' in o && 'days_since_use' in o);
      assert.ok(o.permissions.includes('account:self'));
    }
    assert.ok(review.api_keys.some((k) => k.name === 'test admin'));
  });
});

describe('API keys', () => {
  let t: TestApp;
  let admin: Awaited<ReturnType<typeof signIn>>;
  let adminOp: Awaited<ReturnType<typeof createOperator>>;
  before(async () => {
    t = await startTestApp({ clock, env: { RATE_LIMIT_ENABLED: 'false' } });
    adminOp = await createOperator(t, { roles: ['security-admin'] });
    step();
    admin = await signIn(t, clock, adminOp);
  });
  after(() => t.close());

  const use = (key: string, path = '/v1/merchants') =>
    call(t, 'GET', path, undefined, { authorization: `Bearer ${key}` });

  test('shown once, stored hashed, scoped, listed without the secret, revoked at once', async () => {
    const c = await admin.req('POST', '/v1/api-keys', { name: 'partner A', permissions: ['merchants:read'] });
    assert.equal(c.status, 201);
    assert.match(c.body.key, /^tp_[A-Za-z0-9_-]{43}$/);
    assert.equal(c.body.status, 'active');
    assert.ok(c.body.expires_at, 'keys expire (a year by default)');
    const row = await t.db.query<{ key_hash: Buffer }>(`SELECT key_hash FROM identity.api_keys WHERE id = $1`, [
      c.body.id,
    ]);
    assert.ok(!row.rows[0].key_hash.toString('utf8').includes(c.body.key.slice(3)), 'only a digest is stored');
    const list = await admin.req('GET', '/v1/api-keys');
    assert.ok(list.body.data.some((k: any) => k.id === c.body.id));
    assert.ok(!JSON.stringify(list.body).includes(c.body.key), 'the key is never shown again');
    assert.equal((await use(c.body.key)).status, 200);
    assert.equal((await use(c.body.key, '/v1/payments')).status, 403, 'scoped to its permissions');
    const rv = await admin.req('POST', `/v1/api-keys/${c.body.id}/revoke`, { reason: 'leaked in a ticket' });
    assert.equal(rv.body.status, 'revoked');
    assert.equal((await use(c.body.key)).status, 401);
    const bad = await admin.req('POST', '/v1/api-keys', { name: 'x', permissions: ['operators:write'] });
    assert.equal(bad.status, 400, 'people-only permissions cannot go on a key');
  });

  test('rotation: the old key works during the overlap, then expires', async () => {
    const c = await admin.req('POST', '/v1/api-keys', { name: 'partner B', permissions: ['merchants:read'] });
    const r = await admin.req('POST', `/v1/api-keys/${c.body.id}/rotate`, { overlap_hours: 2 });
    assert.equal(r.status, 201);
    assert.notEqual(r.body.key, c.body.key);
    assert.equal(r.body.rotated_from, c.body.id);
    assert.deepEqual(r.body.permissions, ['merchants:read']);
    assert.equal((await use(c.body.key)).status, 200);
    assert.equal((await use(r.body.key)).status, 200);
    clock.advance(2 * 3_600_000 + 1000);
    assert.equal((await use(c.body.key)).status, 401, 'the old key expired after the overlap');
    assert.equal((await use(r.body.key)).status, 200);
    step();
    admin = await signIn(t, clock, { ...adminOp, secret: admin.secret }); // the clock jump ended the idle session
  });

  test('IP allowlist per key (CIDR)', async () => {
    const far = await admin.req('POST', '/v1/api-keys', {
      name: 'office only',
      permissions: ['merchants:read'],
      ip_allowlist: ['10.20.0.0/16'],
    });
    const here = await admin.req('POST', '/v1/api-keys', {
      name: 'loopback',
      permissions: ['merchants:read'],
      ip_allowlist: ['127.0.0.0/8', '::1'],
    });
    assert.equal(far.status, 201);
    const refused = await use(far.body.key);
    assert.equal(refused.status, 401);
    assert.match(refused.body.error.message, /address/);
    assert.equal((await use(here.body.key)).status, 200);
    assert.deepEqual(here.body.ip_allowlist, ['127.0.0.0/8', '::1']);
    assert.equal(
      (
        await admin.req('POST', '/v1/api-keys', {
          name: 'bad',
          permissions: ['merchants:read'],
          ip_allowlist: ['10.0.0.0/33'],
        })
      ).status,
      400,
    );
  });

  test('merchant staff manage keys of their own merchant only', async () => {
    const a = await t.seedMerchant('Shop A');
    const b = await t.seedMerchant('Shop B');
    const staff = await createOperator(t, { roles: ['merchant-admin'], merchantId: a.merchant.id });
    step();
    const s = await signIn(t, clock, staff);
    const own = await s.req('POST', '/v1/api-keys', { name: 'till app', permissions: ['payments:write'] });
    assert.equal(own.status, 201);
    assert.equal(own.body.merchant_id, a.merchant.id, 'scoped to their merchant without asking');
    const other = await s.req('POST', '/v1/api-keys', {
      name: 'x',
      merchant_id: b.merchant.id,
      permissions: ['payments:write'],
    });
    assert.equal(other.status, 404);
    const partner = await admin.req('POST', '/v1/api-keys', { name: 'partner', permissions: ['merchants:read'] });
    assert.equal(
      (await s.req('GET', `/v1/api-keys/${partner.body.id}`)).status,
      404,
      'platform keys are invisible to merchant staff',
    );
    const list = await s.req('GET', '/v1/api-keys');
    assert.ok(list.body.data.every((k: any) => k.merchant_id === a.merchant.id));
    const acts = await auditActions(t, own.body.id);
    assert.deepEqual(acts, ['api_key.created:success']);
  });
});
