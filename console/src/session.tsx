import { createContext, useContext } from 'react';
import type { Session } from './api.ts';

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in page');
  return s;
}

/** The UI shows only what the operator's permissions allow; the server checks every call anyway. */
export function useCan() {
  const s = useContext(SessionContext);
  return (permission: string) => !!s && s.permissions.includes(permission);
}
