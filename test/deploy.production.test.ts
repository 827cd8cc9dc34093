import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import { withFreePorts } from '../src/platform/freePort.ts';
import { spawnUntil } from './helpers/processes.ts';
import { generateSelfSignedCertificate, hardenedServerOptions } from '../src/platform/tls.ts';
import { bankSimulatorPlugin } from '../src/tools/bank-sim/index.ts';
import { mosquittoForTests, type TestMosquitto } from '../src/modules/terminals/testkit.ts';
import { connectTerminal, type PaymentUpdated } from '../src/tools/terminal-sdk/index.ts';
import { gatewayCertFiles, pkiFiles } from '../src/modules/terminals/pki.ts';

// Production mode as it runs in Kubernetes: NODE_ENV=production, the three roles as separate
// processes, PostgreSQL over TLS (verify-full, password from a file that the app re-reads),
// Redis, Mosquitto with mutual TLS, the API on HTTPS only, a bank over HTTPS with a pinned CA,
// every secret from files (the layout of a Kubernetes Secret volume), no default accepted.
// A payment goes end to end: a terminal on Mosquitto asks for it, the customer pays at the bank,
// the terminal hears "succeeded". Then each refusal production promises is shown to stop the
// process with a message naming the setting. The servers are started here (or CI's are used).

const BIN = join(import.meta.dirname, '..', 'bin', 'tillpoint.mjs');
const PG_BIN = (() => {
  const r = spawnSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1'], {
    encoding: 'utf8',
  });
  const dir = r.stdout.trim();
  return dir && existsSync(join(dir, 'initdb')) ? dir : undefined;
})();
const REDIS = spawnSync('redis-server', ['--version']).status === 0;
// CI runs the suite twice (.ci/run); this file, which brings up its own servers, runs once: in
// the pass on Node 24, the image's runtime (the one with TEST_DATABASE_URL).
const otherPass =
  process.env.CI && !process.env.TEST_DATABASE_URL ? 'CI runs the production smoke test in its Node 24 pass' : false;
const broker = otherPass ? { skip: otherPass } : await mosquittoForTests();
const missing = [
  !PG_BIN && 'PostgreSQL',
  !REDIS && 'redis-server',
  !otherPass && 'skip' in broker && 'Mosquitto',
].filter(Boolean);
if (missing.length && process.env.CI)
  throw new Error(`production smoke test cannot run in CI: ${missing.join(', ')} not installed`);
const skip =
  otherPass || (missing.length ? `${missing.join(', ')} not installed (Debian packages); CI installs them` : false);
const asRoot = process.getuid?.() === 0;

describe('production mode: three roles, TLS everywhere, secrets from files', { skip, timeout: 600_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tp-prod-'));
  const secrets = join(dir, 'secrets');
  const stops: (() => Promise<unknown> | unknown)[] = [];
  const procs: ChildProcess[] = [];
  let env: Record<string, string>;
  let apiUrl: string;
  let apiCa: string;
  let adminKey: string;
  let mq: TestMosquitto;
  let bankUrl: string;
  let dispatcher: Agent;

  const run = (args: string[]) => {
    const r = asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' })
      : spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args[0]} failed: ${r.stderr || r.stdout}`);
  };
  const cli = (args: string[], extra: Record<string, string> = {}) =>
    spawnSync(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH!, ...env, ...extra },
      encoding: 'utf8',
      timeout: 120_000,
    });

  /** `cli`, without blocking: the refusals below run side by side. */
  const cliAsync = (args: string[], extra: Record<string, string>) =>
    new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: { PATH: process.env.PATH!, ...env, ...extra },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('error', reject);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stderr });
      });
    });

  async function start(role: string): Promise<ChildProcess> {
    const env2 = { PATH: process.env.PATH!, ...env, ...(role === 'api' ? {} : { HEALTH_PORT: '0' }) };
    const started = await spawnUntil(process.execPath, [BIN, 'serve', '--role', role], {
      env: env2,
      ready: /Tillpoint is running/,
      timeoutMs: 120_000,
      onSpawn: (c) => procs.push(c),
    });
    return started.child;
  }

  before(async () => {
    mkdirSync(secrets, { mode: 0o700 });
    mq = broker as TestMosquitto;
    stops.push(() => mq.stop());

    // PostgreSQL: TLS only (hostssl), SCRAM password, verify-full against our CA.
    const pgDir = mkdtempSync(join(tmpdir(), 'tp-prod-pg-'));
    if (asRoot) spawnSync('chown', ['postgres', pgDir]);
    const pgCert = await generateSelfSignedCertificate(['127.0.0.1', 'localhost']);
    const dbPassword = randomBytes(18).toString('hex');
    writeFileSync(join(pgDir, 'pwfile'), `${dbPassword}\n`, { mode: 0o600 });
    if (asRoot) spawnSync('chown', ['postgres', join(pgDir, 'pwfile')]);
    run([
      join(PG_BIN!, 'initdb'),
      '-D',
      join(pgDir, 'data'),
      '-U',
      'postgres',
      '-A',
      'scram-sha-256',
      '--pwfile',
      join(pgDir, 'pwfile'),
      '--no-sync',
    ]);
    writeFileSync(join(pgDir, 'data', 'server.crt'), pgCert.certPem);
    writeFileSync(join(pgDir, 'data', 'server.key'), pgCert.keyPem, { mode: 0o600 });
    writeFileSync(
      join(pgDir, 'data', 'pg_hba.conf'),
      'hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 0.0.0.0/0 reject\nlocal all all scram-sha-256\n',
    );
    if (asRoot) spawnSync('chown', ['-R', 'postgres', join(pgDir, 'data')]);
    // On a fresh port again when the one found free was taken before PostgreSQL bound it (the
    // reason is in the server's log, not pg_ctl's output).
    const pgPort = await withFreePorts(1, async ([port]) => {
      const log = join(pgDir, `log-${port}`);
      try {
        run([
          join(PG_BIN!, 'pg_ctl'),
          '-D',
          join(pgDir, 'data'),
          '-w',
          '-l',
          log,
          '-o',
          `-p ${port} -k ${pgDir} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_min_protocol_version=TLSv1.2 -c max_connections=100`,
          'start',
        ]);
      } catch (e) {
        const said = existsSync(log) ? readFileSync(log, 'utf8') : '';
        throw new Error(`${(e as Error).message}\n${said}`);
      }
      return port;
    });
    stops.push(() => {
      run([join(PG_BIN!, 'pg_ctl'), '-D', join(pgDir, 'data'), '-m', 'fast', 'stop']);
      rmSync(pgDir, { recursive: true, force: true });
    });
    const pgCa = join(dir, 'pg-ca.pem');
    writeFileSync(pgCa, pgCert.certPem);
    const dbUrl = `postgres://postgres@127.0.0.1:${pgPort}/postgres?sslmode=verify-full&sslrootcert=${pgCa}`;

    // Redis on a private port.
    let redisPort = 0;
    const redis = await withFreePorts(1, ([port]) => {
      redisPort = port;
      return spawnUntil(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        { env: process.env, ready: /Ready to accept connections/, timeoutMs: 60_000 },
      );
    });
    stops.push(() => redis.child.kill('SIGTERM'));

    // The bank: the simulator behind HTTPS, its certificate pinned by the connector (ca_file).
    const bankSecret = randomBytes(32).toString('hex');
    const bankCert = await generateSelfSignedCertificate(['127.0.0.1']);
    writeFileSync(join(dir, 'bank-ca.pem'), bankCert.certPem);
    const bank: FastifyInstance = Fastify({
      https: { ...hardenedServerOptions(), cert: bankCert.certPem, key: bankCert.keyPem },
    });
    await bank.register(bankSimulatorPlugin, {
      prefix: '/sim',
      secret: bankSecret,
      latencyMs: 0,
      outcomes: { approve: 1 },
    });
    await bank.listen({ port: 0, host: '127.0.0.1' });
    bankUrl = `https://127.0.0.1:${(bank.server.address() as { port: number }).port}/sim`;
    stops.push(() => bank.close());

    // The API's certificate.
    const apiCert = await generateSelfSignedCertificate(['127.0.0.1', 'localhost']);
    apiCa = apiCert.certPem;
    writeFileSync(join(dir, 'api.crt'), apiCert.certPem);
    writeFileSync(join(dir, 'api.key'), apiCert.keyPem, { mode: 0o600 });

    // Every secret is a file, as a Kubernetes Secret volume lays them out.
    const secret = (name: string, value: string) => writeFileSync(join(secrets, name), value, { mode: 0o600 });
    secret('DATABASE_PASSWORD', dbPassword);
    secret('BANK_PRIMARY_SECRET', bankSecret);
    secret('AUDIT_SIGNING_KEY', randomBytes(32).toString('base64'));
    secret('MFA_ENCRYPTION_KEY', randomBytes(32).toString('base64'));
    secret('REWARDS_CUSTOMER_KEY', randomBytes(32).toString('base64'));
    secret('REDIS_URL', `redis://127.0.0.1:${redisPort}`);
    secret('DATABASE_URL', dbUrl.replace('postgres@', `postgres:${dbPassword}@`));
    const keyring = spawnSync(process.execPath, [BIN, 'keys', 'keyring-new'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH!, NODE_ENV: 'test' },
    });
    assert.equal(keyring.status, 0, keyring.stderr);
    secret('KEYRING', keyring.stdout.trim());

    const gw = gatewayCertFiles(mq.pkiDir);
    env = {
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      // The api role's ports: set where it starts (below).
      PORT: '',
      PUBLIC_URL: '',
      HEALTH_PORT: '',
      TILLPOINT_DATA_DIR: join(dir, 'data'),
      TLS_CERT_FILE: join(dir, 'api.crt'),
      TLS_KEY_FILE: join(dir, 'api.key'),
      DATABASE_URL: dbUrl,
      SECRETS_PROVIDER: 'files',
      SECRETS_DIR: secrets,
      DATABASE_PASSWORD_SECRET: 'DATABASE_PASSWORD',
      AUDIT_SIGNING_KEY_FILE: join(secrets, 'AUDIT_SIGNING_KEY'),
      MFA_ENCRYPTION_KEY_FILE: join(secrets, 'MFA_ENCRYPTION_KEY'),
      REWARDS_CUSTOMER_KEY_FILE: join(secrets, 'REWARDS_CUSTOMER_KEY'),
      REDIS_URL_FILE: join(secrets, 'REDIS_URL'),
      KMS_PROVIDER: 'local',
      KEYRING_SECRET: 'KEYRING',
      AUDIT_EXPORT: 'off',
      BANKS: JSON.stringify([
        {
          code: 'SIMBANK',
          connector: 'simbank',
          url: bankUrl,
          secret_name: 'BANK_PRIMARY_SECRET',
          ca_file: join(dir, 'bank-ca.pem'),
          vpa_handle: 'simbank',
        },
      ]),
      EMBEDDED_BANK_SIM: 'true', // asked for, and ignored: production never serves the simulator
      STATUS_CHECK_FIRST_AFTER_SECONDS: '0',
      WORKER_INTERVAL_MS: '200',
      MQTT_URL: mq.url,
      MQTT_SHARE_GROUP: `prod${randomBytes(4).toString('hex')}`,
      MQTT_CA_FILE: pkiFiles(mq.pkiDir).caCert,
      MQTT_CLIENT_CERT_FILE: gw.cert,
      MQTT_CLIENT_KEY_FILE: gw.key,
      MQTTS_PORT: 'off',
      TERMINAL_PKI_DIR: mq.pkiDir,
    };
    dispatcher = new Agent({ connect: { ca: apiCa } });
    stops.push(() => dispatcher.close());

    // The migration Job's way: DATABASE_URL (with its password) from a file.
    const m = cli(['migrate'], { DATABASE_URL: '', DATABASE_URL_FILE: join(secrets, 'DATABASE_URL') });
    assert.equal(m.status, 0, m.stderr + m.stdout);
    const k = cli(['api-keys', 'create', '--name', 'smoke-test partner'], {
      DATABASE_URL: '',
      DATABASE_URL_FILE: join(secrets, 'DATABASE_URL'),
    });
    assert.equal(k.status, 0, k.stderr);
    adminKey = JSON.parse(k.stdout).api_key;

    // The api role's two ports, fresh again if either was taken before it bound them.
    await withFreePorts(2, ([apiPort, healthPort]) => {
      Object.assign(env, {
        PORT: String(apiPort),
        PUBLIC_URL: `https://127.0.0.1:${apiPort}`,
        HEALTH_PORT: String(healthPort),
      });
      return start('api');
    });
    await Promise.all([start('worker'), start('terminal-gateway')]);
    apiUrl = env.PUBLIC_URL;
  });

  after(async () => {
    for (const p of procs) {
      if (p.exitCode === null) {
        const done = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await done;
      }
    }
    for (const s of stops.reverse()) await Promise.resolve(s()).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(apiUrl + path, {
      method,
      dispatcher,
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    } as RequestInit);
    return { status: r.status, body: (await r.json()) as any };
  };

  test('a payment end to end: terminal over Mosquitto (mTLS), bank over HTTPS, the three roles, HTTPS only', async () => {
    assert.match(apiUrl, /^https:/);
    await assert.rejects(fetch(apiUrl.replace('https:', 'http:') + '/healthz'), 'no plain HTTP on the API port');
    assert.equal(
      (await fetch(`${apiUrl}/sim/v1/customer-payments`, { method: 'POST', dispatcher } as RequestInit)).status,
      404,
      'no embedded simulator in production',
    );
    const health = await fetch(`http://127.0.0.1:${env.HEALTH_PORT}/readyz`);
    assert.equal(health.status, 200, 'the api role is ready on its health port');

    const m = await api('POST', '/v1/merchants', {
      name: 'Prod Smoke Stores',
      vpa: `prodsmoke${randomBytes(3).toString('hex')}@simbank`,
      mcc: '5411',
      acquiring_bank: 'SIMBANK',
    });
    assert.equal(m.status, 201, JSON.stringify(m.body));
    const s = await api('POST', `/v1/merchants/${m.body.id}/stores`, { name: 'Main', city: 'Pune' });
    const t = await api('POST', '/v1/terminals', { store_id: s.body.id, label: 'Till 1' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    // Plain MQTT secrets are refused in production: terminals get certificates.
    assert.equal((await api('POST', `/v1/terminals/${t.body.id}/mqtt-secret`)).status >= 400, true);
    const out = join(dir, 'terminal');
    const e = cli(['terminals', 'enroll', t.body.id, '--out', out], {
      DATABASE_URL: '',
      DATABASE_URL_FILE: join(secrets, 'DATABASE_URL'),
    });
    assert.equal(e.status, 0, e.stderr);

    const term = await connectTerminal({
      url: mq.url,
      terminalId: t.body.id,
      cert: readFileSync(join(out, 'client.crt'), 'utf8'),
      key: readFileSync(join(out, 'client.key'), 'utf8'),
      ca: readFileSync(join(out, 'ca.crt'), 'utf8'),
      requestTimeoutMs: 20_000,
    });
    try {
      const events: PaymentUpdated[] = [];
      term.on('payment.updated', (ev) => events.push(ev));
      const p = await term.createPayment({ method: 'upi_qr', amount: 24900, currency: 'INR' });
      assert.equal(p.status, 'pending');
      const paid = await fetch(`${bankUrl}/v1/customer-payments`, {
        method: 'POST',
        dispatcher: new Agent({ connect: { ca: readFileSync(join(dir, 'bank-ca.pem'), 'utf8') } }),
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ upi_uri: p.upi_uri, payer_vpa: 'asha.rao@oksbi', outcome: 'success' }),
      } as RequestInit);
      assert.equal(paid.status, 200, await paid.text());
      const end = Date.now() + 60_000;
      while (!events.some((ev) => ev.body.payment_id === p.id && ev.body.status === 'succeeded') && Date.now() < end)
        await new Promise((r) => setTimeout(r, 200));
      assert.ok(
        events.some((ev) => ev.body.payment_id === p.id && ev.body.status === 'succeeded'),
        'the terminal hears that the payment succeeded',
      );
      const got = await api('GET', `/v1/payments/${p.id}`);
      assert.equal(got.body.status, 'succeeded');
      assert.equal(got.body.amount, 24900);
    } finally {
      await term.close();
    }
    const verify = cli(['ledger', 'verify'], { DATABASE_URL: '', DATABASE_URL_FILE: join(secrets, 'DATABASE_URL') });
    assert.equal(verify.status, 0, verify.stderr);
    assert.match(verify.stdout, /ledger ok/);
  });

  test('each refusal production promises stops the process with a clear message', async () => {
    const refusals: [string, Record<string, string>, RegExp][] = [
      ['PGlite', { DATABASE_URL: '' }, /DATABASE_URL: required in production \(PGlite is for development\)/],
      ['plain MQTT', { MQTT_PORT: '1883' }, /MQTT_PORT: plain MQTT is refused in production/],
      ['a plain MQTT broker', { MQTT_URL: mq.url.replace('mqtts:', 'mqtt:') }, /MQTT_URL: must use TLS/],
      ['the embedded simulator (no real bank)', { BANKS: '' }, /BANKS: required in production/],
      [
        'a bank without TLS',
        {
          BANKS: JSON.stringify([
            {
              code: 'SIMBANK',
              connector: 'simbank',
              url: 'http://127.0.0.1:1/sim',
              secret_name: 'BANK_PRIMARY_SECRET',
            },
          ]),
        },
        /BANKS: entry 0: url must be https:\/\/ in production/,
      ],
      [
        'a missing secret file',
        { AUDIT_SIGNING_KEY_FILE: join(secrets, 'NOT_THERE') },
        /AUDIT_SIGNING_KEY_FILE: cannot read .*ENOENT/,
      ],
      [
        'no audit signing key (no default)',
        { AUDIT_SIGNING_KEY_FILE: '' },
        /AUDIT_SIGNING_KEY.*required in production/,
      ],
      ['no MFA key (no default)', { MFA_ENCRYPTION_KEY_FILE: '' }, /MFA_ENCRYPTION_KEY.*required in production/],
      [
        'no customer key (no default)',
        { REWARDS_CUSTOMER_KEY_FILE: '' },
        /REWARDS_CUSTOMER_KEY.*required in production/,
      ],
      [
        'a missing bank secret',
        {
          BANKS: JSON.stringify([
            { code: 'SIMBANK', connector: 'simbank', url: bankUrl, secret_name: 'NO_SUCH_SECRET' },
          ]),
        },
        /NO_SUCH_SECRET/,
      ],
      [
        'a self-signed API certificate',
        { TLS_CERT_FILE: '', TLS_KEY_FILE: '', TLS_MODE: 'self-signed' },
        /TLS_MODE: self-signed is for development/,
      ],
    ];
    // Side by side, and through the test run's compiled command when there is one (the start
    // above ran from source, as an operator's does; these stop while reading the configuration,
    // before anything that differs between the two loaders).
    const results = await Promise.all(
      refusals.map(([, extra]) =>
        cliAsync(['serve', '--role', 'api'], {
          ...extra,
          PORT: '0',
          HEALTH_PORT: '0',
          ...(process.env.TEST_TILLPOINT_CLI ? { TEST_TILLPOINT_CLI: process.env.TEST_TILLPOINT_CLI } : {}),
        }),
      ),
    );
    refusals.forEach(([what, , message], i) => {
      const r = results[i];
      assert.notEqual(r.status, 0, `${what}: the process stopped`);
      assert.match(r.stderr, message, `${what}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: a message, not a stack trace`);
    });
  });
});
