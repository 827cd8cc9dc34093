import { httpJson, type TestApp, type Res } from './harness.ts';
import type { Clock } from '../../src/platform/clock.ts';
import { base32Decode, totp, SESSION_COOKIE } from '../../src/modules/identity/index.ts';

// Operators in tests: accounts made through the identity service, signed in over HTTP exactly
// as the console does it (password, TOTP, session cookie, CSRF token).

let n = 0;
export const uniqueEmail = (tag = 'op') => `${tag}.${Date.now().toString(36)}${(n++).toString(36)}@example.com`;
export const GOOD_PASSWORD = 'correct-Horse-battery-9';

export async function createOperator(
  t: TestApp,
  o: { roles: string[]; merchantId?: string | null; email?: string; password?: string; name?: string },
) {
  const email = o.email ?? uniqueEmail(o.roles[0]);
  const r = await t.app.services.identity.createOperator(null, {
    email,
    name: o.name ?? 'Test Operator',
    roles: o.roles,
    merchant_id: o.merchantId ?? null,
    password: o.password ?? GOOD_PASSWORD,
  });
  return { id: r.operator.id, email, password: o.password ?? GOOD_PASSWORD, temporaryPassword: r.temporary_password };
}

/** A request without the admin key (operators carry their session instead). */
export const call = <T = any>(
  t: TestApp,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Res<T>> =>
  body === undefined
    ? httpJson<T>(t.url + path, method, undefined, headers)
    : httpJson<T>(t.url + path, method, JSON.stringify(body), { ...headers, 'content-type': 'application/json' });

export interface Session {
  operatorId: string;
  token: string;
  csrf: string;
  secret: Buffer;
  body: any;
  /** A request with the session cookie (and the CSRF token unless `csrf: false`). */
  req<T = any>(method: string, path: string, body?: unknown, opts?: { csrf?: boolean }): Promise<Res<T>>;
}

export function sessionTokenFrom(res: Res): string | undefined {
  const c = res.headers.get('set-cookie') ?? '';
  return new RegExp(`${SESSION_COOKIE.replace(/[-]/g, '\\-')}=([^;]+)`).exec(c)?.[1];
}

/** Signs in with password and TOTP (enrolling at first sign-in). Pass `secret` after the first time. */
export async function signIn(
  t: TestApp,
  clock: Clock,
  who: { email: string; password: string; secret?: Buffer },
): Promise<Session> {
  const login = await call(t, 'POST', '/v1/auth/login', { email: who.email, password: who.password });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`);
  const secret = who.secret ?? base32Decode(new URL(login.body.otpauth_uri).searchParams.get('secret')!);
  const mfa = await call(t, 'POST', '/v1/auth/mfa', {
    challenge: login.body.challenge,
    code: totp(secret, clock.now()),
  });
  if (mfa.status !== 200) throw new Error(`mfa: ${mfa.status} ${JSON.stringify(mfa.body)}`);
  const token = sessionTokenFrom(mfa)!;
  const csrf = mfa.body.csrf_token as string;
  return {
    operatorId: mfa.body.operator.id,
    token,
    csrf,
    secret,
    body: mfa.body,
    req: (method, path, body, opts) =>
      call(t, method, path, body, {
        cookie: `${SESSION_COOKIE}=${token}`,
        ...(opts?.csrf === false ? {} : { 'x-csrf-token': csrf }),
      }),
  };
}
