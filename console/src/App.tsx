import { lazy, Suspense, useEffect } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, get, post, setCsrfToken, setOnUnauthenticated, type Session } from './api.ts';
import { Link, navigate, useLocation } from './router.tsx';
import { SessionContext } from './session.tsx';
import { ChangePassword, SignIn } from './pages/SignIn.tsx';
import { Overview } from './pages/Overview.tsx';
import { Payments } from './pages/Payments.tsx';
import { PaymentDetail } from './pages/PaymentDetail.tsx';
import { Terminals } from './pages/Terminals.tsx';
import { Access } from './pages/Access.tsx';
import { Rewards } from './pages/Rewards.tsx';

// Pages that pull in their own libraries (the QR encoder, WebCrypto proof checks) load on first visit.
const VirtualTerminal = lazy(() => import('./pages/VirtualTerminal.tsx'));
const Audit = lazy(() => import('./pages/Audit.tsx'));
const Keys = lazy(() => import('./pages/Keys.tsx'));
const Reconciliation = lazy(() => import('./pages/Reconciliation.tsx'));
const Settlement = lazy(() => import('./pages/Settlement.tsx'));
const Approvals = lazy(() => import('./pages/Approvals.tsx'));

interface Page {
  path: string;
  label: string;
  needs: string[];
}
// A page is listed when the operator holds any of the permissions it needs.
const PAGES: Page[] = [
  { path: '/', label: 'Overview', needs: ['payments:read'] },
  { path: '/payments', label: 'Payments', needs: ['payments:read'] },
  { path: '/virtual-terminal', label: 'Virtual terminal', needs: ['payments:write'] },
  { path: '/terminals', label: 'Terminals', needs: ['terminals:read'] },
  { path: '/rewards', label: 'Rewards', needs: ['rewards:read'] },
  { path: '/access', label: 'Access', needs: ['operators:read', 'api_keys:read'] },
  { path: '/approvals', label: 'Approvals', needs: ['refunds:approve', 'operators:approve', 'compensations:approve'] },
  { path: '/audit', label: 'Audit', needs: ['audit:read'] },
  { path: '/keys', label: 'Keys and compliance', needs: ['compliance:read'] },
  { path: '/reconciliation', label: 'Reconciliation', needs: ['recon:read'] },
  { path: '/settlement', label: 'Settlement', needs: ['settlement:read'] },
];

export function App() {
  const qc = useQueryClient();
  const session = useQuery({
    queryKey: ['session'],
    queryFn: async () => {
      try {
        return await get<Session>('/v1/auth/session');
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return null;
        throw e;
      }
    },
    staleTime: 60_000,
    retry: false,
  });
  useEffect(
    () =>
      setOnUnauthenticated(() => {
        setCsrfToken(undefined);
        qc.setQueryData(['session'], null);
      }),
    [qc],
  );
  const s = session.data;
  // Set while rendering, not in an effect: the pages below may send a change on their first render.
  setCsrfToken(s?.csrf_token);

  if (session.isPending)
    return (
      <p className="loading" role="status">
        Loading…
      </p>
    );
  if (session.isError)
    return (
      <main className="signin" id="main">
        <p role="alert" className="error">
          The server could not be reached: {String(session.error.message)}
        </p>
      </main>
    );
  // A new identity: drop every cached answer of the previous one, then ask who is signed in.
  const refresh = () => {
    qc.removeQueries({ predicate: (q) => q.queryKey[0] !== 'session' });
    void session.refetch();
  };
  if (!s) return <SignIn onSignedIn={refresh} />;
  if (s.operator.must_change_password)
    return (
      <SessionContext.Provider value={s}>
        <ChangePassword onDone={refresh} />
      </SessionContext.Provider>
    );

  const signOut = async () => {
    await post('/v1/auth/logout').catch(() => undefined);
    setCsrfToken(undefined);
    qc.clear();
    qc.setQueryData(['session'], null);
    navigate('/', { replace: true });
  };
  return (
    <SessionContext.Provider value={s}>
      <Shell session={s} onSignOut={signOut} />
    </SessionContext.Provider>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { path } = useLocation();
  const can = (p: Page) => p.needs.some((n) => session.permissions.includes(n));
  const pages = PAGES.filter(can);
  const active = (p: Page) => (p.path === '/' ? path === '/' : path === p.path || path.startsWith(p.path + '/'));
  const current = PAGES.find(active);
  useEffect(() => {
    document.title = `${current?.label ?? 'Tillpoint'} · Tillpoint console`;
  }, [current]);
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Tillpoint</span>
        <nav aria-label="Console">
          <ul>
            {pages.map((p) => (
              <li key={p.path}>
                <Link to={p.path} aria-current={active(p) ? 'page' : undefined}>
                  {p.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span title={session.operator.email}>{session.operator.name}</span>
          <button type="button" className="link" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p role="status">Loading…</p>}>{route(path, session, pages)}</Suspense>
      </main>
    </div>
  );
}

function route(path: string, session: Session, pages: Page[]) {
  const allowed = (p: string) => pages.some((x) => x.path === p);
  const m = /^\/payments\/(pay_[0-9a-f]{32})$/.exec(path);
  if (m && allowed('/payments')) return <PaymentDetail id={m[1]} />;
  if (/^\/settlement\/(payouts|reversals)$/.test(path) && allowed('/settlement')) return <Settlement path={path} />;
  if (!pages.some((p) => p.path === path)) {
    if (path === '/' && pages.length) return <Landing pages={pages} name={session.operator.name} />;
    return <NotAllowed />;
  }
  switch (path) {
    case '/':
      return <Overview />;
    case '/payments':
      return <Payments />;
    case '/virtual-terminal':
      return <VirtualTerminal />;
    case '/terminals':
      return <Terminals />;
    case '/rewards':
      return <Rewards />;
    case '/access':
      return <Access />;
    case '/approvals':
      return <Approvals />;
    case '/audit':
      return <Audit />;
    case '/keys':
      return <Keys />;
    case '/reconciliation':
      return <Reconciliation />;
    case '/settlement':
      return <Settlement path={path} />;
  }
  return <NotAllowed />;
}

function Landing({ pages, name }: { pages: Page[]; name: string }) {
  return (
    <section>
      <h1>Welcome, {name}</h1>
      <p>Your roles give you these pages:</p>
      <ul>
        {pages.map((p) => (
          <li key={p.path}>
            <Link to={p.path}>{p.label}</Link>
          </li>
        ))}
      </ul>
    </section>
  );
}

function NotAllowed() {
  return (
    <section>
      <h1>Not available</h1>
      <p>This page does not exist, or your roles do not include it.</p>
    </section>
  );
}
