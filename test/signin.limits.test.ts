import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from './helpers/harness.ts';
import { call, uniqueEmail } from './helpers/operators.ts';

// Sign-in carries its own rate limits (per IP, per account), set so that for a single account
// the PCI DSS 8.3.4 lockout after 10 failures acts first; the limit only slows what follows.
test('sign-in: the lockout after 10 failures comes before the rate limit, which then answers 429', async () => {
  const t = await startTestApp({ env: { RATE_LIMIT_SIGNIN_ACCOUNT: '20/h', RATE_LIMIT_SIGNIN_ACCOUNT_BURST: '12' } });
  try {
    const { operator } = await t.app.services.identity.createOperator(null, {
      email: uniqueEmail('limits'),
      name: 'Ravi Iyer',
      roles: ['viewer'],
    });
    const codes: string[] = [];
    for (let i = 0; i < 14; i++) {
      const r = await call(t, 'POST', '/v1/auth/login', { email: operator.email, password: `wrong-password-${i}x` });
      codes.push(
        r.status === 429
          ? `429:${r.headers.get('retry-after') ? 'retry-after' : 'none'}`
          : String(r.body?.error?.code ?? r.status),
      );
    }
    const firstLocked = codes.indexOf('account_locked');
    const firstLimited = codes.findIndex((c) => c.startsWith('429'));
    assert.ok(firstLocked >= 0 && firstLocked <= 10, `locked by the 11th attempt: ${codes.join(',')}`);
    assert.ok(firstLimited > firstLocked, `the rate limit acts only after the lockout: ${codes.join(',')}`);
    assert.equal(codes[firstLimited], '429:retry-after');
  } finally {
    await t.close();
  }
});
