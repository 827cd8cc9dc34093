import { useState, type FormEvent } from 'react';
import { ApiError, post } from '../api.ts';

// The operator sign-in: password, then a TOTP code (or a recovery code). At first sign-in the
// server sends the TOTP enrolment (an otpauth link and its QR) and, once the first code is
// accepted, ten recovery codes that are shown here once.

interface Challenge {
  challenge: string;
  mfa: 'totp' | 'enroll';
  otpauth_uri?: string;
  qr_svg?: string;
}
interface Opened {
  recovery_codes?: string[];
}

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [challenge, setChallenge] = useState<Challenge>();
  const [recovery, setRecovery] = useState<string[]>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function run(f: () => Promise<void>) {
    setBusy(true);
    setError(undefined);
    try {
      await f();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Could not reach the server');
    } finally {
      setBusy(false);
    }
  }
  const submitPassword = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      setChallenge(await post<Challenge>('/v1/auth/login', { email, password }));
      setPassword('');
    });
  };
  const submitCode = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const opened = await post<Opened>('/v1/auth/mfa', { challenge: challenge!.challenge, code: code.trim() });
      if (opened.recovery_codes?.length) setRecovery(opened.recovery_codes);
      else onSignedIn();
    });
  };

  return (
    <main className="signin" id="main">
      <div className="card signin-card">
        <h1>Tillpoint console</h1>
        {recovery ? (
          <section aria-labelledby="rc">
            <h2 id="rc">Your recovery codes</h2>
            <p>
              Each code signs you in once if you lose your authenticator. They are shown only now: store them somewhere
              safe.
            </p>
            <ul className="codes" data-testid="recovery-codes">
              {recovery.map((c) => (
                <li key={c}>
                  <code>{c}</code>
                </li>
              ))}
            </ul>
            <button type="button" onClick={onSignedIn}>
              I have stored them — continue
            </button>
          </section>
        ) : !challenge ? (
          <form onSubmit={submitPassword} aria-label="Sign in">
            <label>
              Email
              <input
                type="email"
                autoComplete="username"
                required
                value={email}
                onChange={(e) => setEmail(e.target.value)}
              />
            </label>
            <label>
              Password
              <input
                type="password"
                autoComplete="current-password"
                required
                value={password}
                onChange={(e) => setPassword(e.target.value)}
              />
            </label>
            <button type="submit" disabled={busy}>
              Continue
            </button>
          </form>
        ) : (
          <form onSubmit={submitCode} aria-label="Second factor">
            {challenge.mfa === 'enroll' && (
              <div className="enrol">
                <p>
                  Scan this with your authenticator app (or enter the key from the link), then type the 6-digit code it
                  shows.
                </p>
                {challenge.qr_svg && (
                  <img
                    className="enrol-qr"
                    alt="QR code of your authenticator enrolment"
                    src={'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(challenge.qr_svg)}
                  />
                )}
                {challenge.otpauth_uri && (
                  <p className="mono small">{new URL(challenge.otpauth_uri).searchParams.get('secret')}</p>
                )}
              </div>
            )}
            <label>
              Authentication code
              <input
                inputMode="numeric"
                autoComplete="one-time-code"
                required
                value={code}
                onChange={(e) => setCode(e.target.value)}
                aria-describedby="code-help"
              />
            </label>
            <p id="code-help" className="small muted">
              The 6 digits from your authenticator app, or one of your recovery codes.
            </p>
            <button type="submit" disabled={busy}>
              Sign in
            </button>
          </form>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </div>
    </main>
  );
}

export function ChangePassword({ onDone }: { onDone: () => void }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      await post('/v1/auth/password', { current_password: current, new_password: next });
      onDone();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : 'Could not reach the server');
    }
  };
  return (
    <main className="signin" id="main">
      <form className="card signin-card" onSubmit={submit} aria-label="Choose a new password">
        <h1>Choose a new password</h1>
        <p>Your account has a temporary password. At least 12 characters, with letters and digits.</p>
        <label>
          Temporary password
          <input
            type="password"
            autoComplete="current-password"
            required
            value={current}
            onChange={(e) => setCurrent(e.target.value)}
          />
        </label>
        <label>
          New password
          <input
            type="password"
            autoComplete="new-password"
            required
            minLength={12}
            value={next}
            onChange={(e) => setNext(e.target.value)}
          />
        </label>
        <button type="submit">Save</button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
