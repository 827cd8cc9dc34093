import type { Principal } from '../../platform/principal.ts';
import type { ApiKeyAuthenticator } from './apiKeys.ts';
import type { IdentityService } from './operators.service.ts';

// One front door for server.ts: a Bearer token is an API key (tp_…) or an operator session
// token (tps_…); a cookie carries a console session, which needs its CSRF token for changes.

export const SESSION_COOKIE = '__Host-tp_session';

export function readCookie(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function sessionCookie(token: string, maxAgeSeconds: number) {
  // __Host-: Secure, Path=/ and no Domain, so no sibling host can set or read it.
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeSeconds}`;
}
export const clearedSessionCookie = () => `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;

export function createAuthenticator(
  apiKeys: ApiKeyAuthenticator,
  identity: Pick<IdentityService, 'authenticateSession'>,
) {
  return {
    bearer(token: string, remoteAddr: string): Promise<Principal | null> {
      if (token.startsWith('tps_'))
        return identity.authenticateSession(token, { ip: remoteAddr, changesState: false, viaCookie: false });
      return apiKeys(token, remoteAddr);
    },
    async cookie(
      header: string,
      req: { ip: string; changesState: boolean; csrfToken?: string },
    ): Promise<Principal | null> {
      const token = readCookie(header, SESSION_COOKIE);
      if (!token) return null;
      return identity.authenticateSession(token, { ...req, viaCookie: true });
    },
  };
}
