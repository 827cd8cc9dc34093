import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { AppError, ERROR_STATUS, isAppError } from '../../platform/errors.ts';
import { ConfigError, loadConfig } from '../../config.ts';
import { createMemoryBucketStore } from './tokenBucket.ts';
import { createEdgeMetrics } from './metrics.ts';
import { createRateLimiter, registerRateLimits, signInRateLimits, apiKeyBucketId } from './rateLimit.ts';

// The named limits that sign-in and MFA routes attach, on a bare Fastify app with the default
// configuration: the per-account burst lets the PCI DSS 8.3.4 lockout (10 failures) act first.

async function signInApp() {
  const config = loadConfig({ NODE_ENV: 'test' }).rateLimits;
  const app = Fastify();
  app.setErrorHandler((e, _req, reply) => {
    const err = isAppError(e) ? e : new AppError('internal_error', String(e));
    reply.status(ERROR_STATUS[err.code]).send({ error: { code: err.code, details: err.details } });
  });
  registerRateLimits(
    app,
    config,
    createRateLimiter({ config, store: createMemoryBucketStore(), metrics: createEdgeMetrics(new Registry()) }),
  );
  app.post(
    '/sign-in',
    { config: { rateLimits: signInRateLimits((req) => (req.body as { email?: string }).email) } },
    async () => ({ ok: false }),
  );
  await app.ready();
  const attempt = async (email: string, ip = '10.0.0.1') =>
    (await app.inject({ method: 'POST', url: '/sign-in', payload: { email }, remoteAddress: ip })).json() as {
      ok?: boolean;
      error?: { code: string; details: { limit: string } };
    };
  return { app, config, attempt };
}

test('sign-in: more attempts per account than the lockout threshold, then 429 for that account only', async () => {
  const { app, config, attempt } = await signInApp();
  const burst = config.limits.signin_account.burst;
  assert.ok(burst > 10, 'the lockout after 10 failures acts before the limit');
  for (let i = 0; i < burst; i++)
    assert.equal((await attempt(i % 2 ? 'Asha@Example.com' : 'asha@example.com ', `10.0.1.${i}`)).ok, false);
  const refused = await attempt('asha@example.com', '10.0.2.1');
  assert.equal(refused.error?.code, 'rate_limited');
  assert.equal(
    refused.error?.details.limit,
    'signin_account',
    'the account is normalised: case and spaces do not make new buckets',
  );
  assert.equal((await attempt('ravi@example.com', '10.0.2.2')).ok, false, 'another account is not affected');
  await app.close();
});

test('sign-in: one address trying many accounts hits the per-IP limit', async () => {
  const { app, config, attempt } = await signInApp();
  for (let i = 0; i < config.limits.signin_ip.burst; i++) await attempt(`user${i}@example.com`, '10.9.9.9');
  const refused = await attempt('one.more@example.com', '10.9.9.9');
  assert.equal(refused.error?.details.limit, 'signin_ip');
  await app.close();
});

test('a per-account burst at or below the lockout threshold is a configuration error', () => {
  assert.throws(
    () => loadConfig({ NODE_ENV: 'test', RATE_LIMIT_SIGNIN_ACCOUNT_BURST: '10' }),
    (e) => e instanceof ConfigError && e.setting === 'RATE_LIMIT_SIGNIN_ACCOUNT_BURST',
  );
  assert.throws(
    () => loadConfig({ NODE_ENV: 'test', RATE_LIMIT_IP: 'fast' }),
    (e) => e instanceof ConfigError && e.setting === 'RATE_LIMIT_IP',
  );
  assert.equal(loadConfig({ NODE_ENV: 'test', RATE_LIMIT_IP: '30/m' }).rateLimits.limits.ip.ratePerSecond, 0.5);
});

test('a route naming an unknown limit does not register; keys are bucketed by digest', () => {
  const config = loadConfig({ NODE_ENV: 'test' }).rateLimits;
  const app = Fastify();
  registerRateLimits(
    app,
    config,
    createRateLimiter({ config, store: createMemoryBucketStore(), metrics: createEdgeMetrics(new Registry()) }),
  );
  assert.throws(
    () => app.get('/x', { config: { rateLimits: [{ limit: 'nope' as 'ip', key: () => 'a' }] } }, async () => 'x'),
    /unknown rate limit "nope"/,
  );
  const id = apiKeyBucketId('Bearer tp_secretsecretsecret')!;
  assert.equal(id.length, 22);
  assert.ok(!id.includes('secret'));
  assert.equal(apiKeyBucketId('Basic abc'), undefined);
});
