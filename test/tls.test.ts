import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import {
  generateSelfSignedCertificate,
  hardenedServerOptions,
  loadApiTls,
  parseTlsConfig,
  TLS12_CIPHERS,
  TLS13_CIPHERS,
} from '../src/platform/tls.ts';
import { createHttpClient } from '../src/platform/httpClient.ts';
import { freePort } from '../src/platform/freePort.ts';
import { ConfigError } from '../src/platform/config.ts';
import type { BankConfig } from '../src/modules/banks/index.ts';
import { createConnector } from '../src/modules/banks/connectors/index.ts';
import { bankSimulatorPlugin } from '../src/tools/bank-sim/index.ts';
import { AppError } from '../src/platform/errors.ts';

// TLS on the API and on outbound connections. Certificates are generated here at run time.

const tmp = () => mkdtempSync(join(tmpdir(), 'tp-tls-'));

function connect(
  port: number,
  ca: string,
  o: tls.ConnectionOptions,
): Promise<{ ok: true; protocol: string | null; cipher: string } | { ok: false; code: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...o }, () => {
      resolve({ ok: true, protocol: s.getProtocol(), cipher: s.getCipher().name });
      s.end();
    });
    s.on('error', (e: Error & { code?: string }) => resolve({ ok: false, code: e.code ?? e.message }));
  });
}

describe('HTTPS on the API', () => {
  let t: TestApp;
  let cert: string;
  let port: number;
  const refusedByServer: string[] = [];

  before(async () => {
    const dir = tmp();
    const pair = await generateSelfSignedCertificate(['localhost', '127.0.0.1']);
    cert = pair.certPem;
    writeFileSync(join(dir, 'cert.pem'), pair.certPem);
    writeFileSync(join(dir, 'key.pem'), pair.keyPem, { mode: 0o600 });
    t = await startTestApp({ env: { TLS_CERT_FILE: join(dir, 'cert.pem'), TLS_KEY_FILE: join(dir, 'key.pem') } });
    port = Number(new URL(t.url).port);
    t.app.http!.server.on('tlsClientError', (e: Error & { code?: string }) =>
      refusedByServer.push(e.code ?? e.message),
    );
  });
  after(() => t.close());

  test('TLS 1.0 and TLS 1.1 are refused by the server (protocol_version alert)', async () => {
    assert.ok(t.url.startsWith('https://'));
    // The client has to lower its own floor (and OpenSSL's security level) even to offer them.
    const old = { ciphers: 'DEFAULT@SECLEVEL=0' };
    const v10 = await connect(port, cert, { ...old, minVersion: 'TLSv1', maxVersion: 'TLSv1' });
    const v11 = await connect(port, cert, { ...old, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' });
    assert.deepEqual(v10, { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    assert.deepEqual(v11, { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    assert.ok(
      refusedByServer.filter((c) => c === 'ERR_SSL_UNSUPPORTED_PROTOCOL').length >= 2,
      `server-side refusals: ${refusedByServer}`,
    );
  });

  test('an independent client (the openssl binary) is refused on TLS 1.0 and 1.1 too', async (c) => {
    if (spawnSync('openssl', ['version']).status !== 0) return c.skip('openssl binary not installed');
    // Asynchronously: the server answering it runs in this very process.
    const sClient = (flag: string) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(
          'openssl',
          ['s_client', '-connect', `127.0.0.1:${port}`, flag, '-cipher', 'DEFAULT@SECLEVEL=0'],
          { stdio: ['pipe', 'pipe', 'pipe'] },
        );
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.stdin.end();
        const timer = setTimeout(() => p.kill(), 10_000);
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, out });
        });
      });
    for (const flag of ['-tls1', '-tls1_1']) {
      const r = await sClient(flag);
      assert.notEqual(r.code, 0, `${flag} connected:\n${r.out}`);
      assert.match(
        r.out,
        /alert protocol version|no protocols available|unsupported protocol/i,
        `${flag}: ${r.out.slice(0, 400)}`,
      );
    }
    const ok = await sClient('-tls1_2');
    assert.match(ok.out, /Protocol\s*:\s*TLSv1\.2/);
  });

  test('TLS 1.2 offers only ECDHE with AEAD suites; TLS 1.3 is preferred', async () => {
    const v12 = await connect(port, cert, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    assert.equal(v12.ok, true);
    if (v12.ok) assert.ok(TLS12_CIPHERS.includes(v12.cipher), v12.cipher);
    const best = await connect(port, cert, {});
    assert.deepEqual(best.ok && best.protocol, 'TLSv1.3');
    if (best.ok) assert.ok(TLS13_CIPHERS.includes(best.cipher));
    // CBC with SHA-1 MACs, and suites without forward secrecy, are not accepted.
    for (const weak of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'AES128-GCM-SHA256']) {
      const r = await connect(port, cert, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: weak });
      assert.equal(r.ok, false, `${weak} was accepted`);
    }
  });

  test('answers over HTTPS carry HSTS, and the certificate is checked against its name', async () => {
    const res = await new Promise<{ status: number; hsts?: string }>((resolve, reject) => {
      httpsRequest({ host: '127.0.0.1', port, path: '/healthz', ca: cert, servername: 'localhost' }, (r) => {
        r.resume();
        resolve({ status: r.statusCode!, hsts: r.headers['strict-transport-security'] as string | undefined });
      })
        .on('error', reject)
        .end();
    });
    assert.equal(res.status, 200);
    assert.match(res.hsts ?? '', /^max-age=\d{6,}; includeSubDomains/);
    const wrongName = await connect(port, cert, {
      servername: 'api.example.com',
      checkServerIdentity: tls.checkServerIdentity,
    });
    assert.equal(wrongName.ok, false);
  });
});

test('TLS settings: files, self-signed only in development with a warning, bad pairs stop the start', async () => {
  assert.equal(parseTlsConfig({}, 'development').mode, 'off');
  assert.throws(
    () => parseTlsConfig({ TLS_MODE: 'self-signed' }, 'production'),
    (e: Error) => e instanceof ConfigError && /TLS_MODE/.test(e.message),
  );
  assert.throws(() => parseTlsConfig({ TLS_MODE: 'files' }, 'production'), /TLS_CERT_FILE/);
  assert.throws(() => parseTlsConfig({ TLS_MIN_VERSION: 'TLSv1.1' }, 'development'), /TLS_MIN_VERSION/);
  const dataDir = tmp();
  const dev = await loadApiTls(parseTlsConfig({ TLS_MODE: 'self-signed' }, 'development'), { dataDir });
  assert.match(dev!.warning!, /self-signed development certificate/);
  assert.equal(statSync(join(dataDir, 'tls', 'dev-key.pem')).mode & 0o777, 0o600);
  assert.equal(dev!.options.minVersion, 'TLSv1.2');
  // Reused on the next start, not made again.
  const again = await loadApiTls(parseTlsConfig({ TLS_MODE: 'self-signed' }, 'development'), { dataDir });
  assert.equal(again!.certificatePem, dev!.certificatePem);
  // A key that is not the certificate's.
  const a = await generateSelfSignedCertificate(['localhost']);
  const b = await generateSelfSignedCertificate(['localhost']);
  writeFileSync(join(dataDir, 'a.pem'), a.certPem);
  writeFileSync(join(dataDir, 'b.key'), b.keyPem);
  await assert.rejects(
    loadApiTls(
      parseTlsConfig({ TLS_CERT_FILE: join(dataDir, 'a.pem'), TLS_KEY_FILE: join(dataDir, 'b.key') }, 'production'),
      { dataDir },
    ),
    /TLS_KEY_FILE/,
  );
});

describe('outbound: bank connectors verify certificates and can pin a CA', () => {
  let bankPort: number;
  let bankCert: { certPem: string; keyPem: string };
  const close: (() => Promise<unknown>)[] = [];
  const secret = 'pinned-bank-test-secret';

  before(async () => {
    bankCert = await generateSelfSignedCertificate(['127.0.0.1']);
    // The bank simulator, served over TLS as a real bank would be.
    const bank = Fastify({ https: { ...hardenedServerOptions(), cert: bankCert.certPem, key: bankCert.keyPem } });
    await bank.register(bankSimulatorPlugin, { prefix: '/sim', secret, latencyMs: 0, outcomes: { approve: 1 } });
    await bank.listen({ port: 0, host: '127.0.0.1' });
    bankPort = (bank.server.address() as { port: number }).port;
    close.push(() => bank.close());
  });
  after(async () => {
    for (const c of close) await c();
  });

  const intent = () => ({
    txnRef: `TP${Date.now()}${Math.floor(Math.random() * 1e6)}`,
    amountPaise: 14900,
    payeeVpa: 'shop@simbank',
    payeeName: 'Shop',
    mcc: '5411',
    expiresAt: new Date(Date.now() + 300_000),
    callbackUrl: 'https://127.0.0.1:1/v1/banks/PINNED/callbacks',
  });
  const bankConfig = (caFile?: string): BankConfig => ({
    code: 'PINNED',
    connector: 'simbank',
    url: `https://127.0.0.1:${bankPort}/sim`,
    secret,
    caFile,
  });

  test('with the bank CA pinned the call goes through; with another CA, or the system store, it is refused', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'bank-ca.pem'), bankCert.certPem);
    writeFileSync(join(dir, 'other-ca.pem'), (await generateSelfSignedCertificate(['127.0.0.1'])).certPem);
    const opts = { publicUrl: 'https://127.0.0.1:1', timeoutMs: 5000 };
    const pinned = createConnector(bankConfig(join(dir, 'bank-ca.pem')), opts);
    assert.ok((await pinned.registerIntent(intent())).bankRef);
    for (const c of [
      createConnector(bankConfig(join(dir, 'other-ca.pem')), opts),
      createConnector(bankConfig(), opts),
    ]) {
      await assert.rejects(
        c.registerIntent(intent()),
        (e: Error) => e instanceof AppError && e.code === 'bank_unavailable',
      );
    }
  });

  test('the pinned client refuses a certificate for another name, plain http, and TLS below 1.2', async () => {
    const client = createHttpClient({ ca: bankCert.certPem });
    close.push(async () => client.close());
    const f = (url: string, init: { method?: string } = {}) =>
      client.request(url, { method: init.method ?? 'GET', timeoutMs: 5_000 });
    const ok = await f(`https://127.0.0.1:${bankPort}/sim/v1/transactions/none`, { method: 'GET' });
    assert.ok(ok.status >= 400 && ok.status < 500, 'reached the bank (it answered)');
    await assert.rejects(
      f(`https://localhost:${bankPort}/`, {}),
      (e: Error & { cause?: { code?: string } }) =>
        e instanceof TypeError && e.cause?.code === 'ERR_TLS_CERT_ALTNAME_INVALID',
    );
    await assert.rejects(f(`http://127.0.0.1:${bankPort}/`, {}), TypeError);
    const old = tls.createServer(
      {
        cert: bankCert.certPem,
        key: bankCert.keyPem,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
      },
      (s) => s.end(),
    );
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    close.push(() => new Promise((r) => old.close(r)));
    await assert.rejects(f(`https://127.0.0.1:${(old.address() as { port: number }).port}/`, {}), TypeError);
  });
});

// A PostgreSQL server of our own with TLS and password authentication (PostgreSQL's binaries
// are installed in CI; elsewhere this is skipped and says so).
const PG_BIN = (() => {
  const r = spawnSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1'], {
    encoding: 'utf8',
  });
  const dir = r.stdout.trim();
  return dir && existsSync(join(dir, 'initdb')) ? dir : undefined;
})();
const asRoot = process.getuid?.() === 0;

describe('PostgreSQL over TLS (sslmode=verify-full) and a rotated password', {
  skip: PG_BIN ? false : 'PostgreSQL binaries not installed',
}, () => {
  let dir: string;
  let port: number;
  let ca: string;
  const run = (args: string[]) => {
    const r = asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' })
      : spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args[0]} failed: ${r.stderr || r.stdout}`);
    return r.stdout;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tp-pgtls-'));
    if (asRoot) spawnSync('chown', ['postgres', dir]);
    const pair = await generateSelfSignedCertificate(['127.0.0.1', 'localhost']);
    ca = join(dir, 'ca.pem');
    writeFileSync(ca, pair.certPem);
    writeFileSync(join(dir, 'pwfile'), 'superuser-pw\n', { mode: 0o600 });
    if (asRoot) spawnSync('chown', ['postgres', join(dir, 'pwfile')]);
    run([
      join(PG_BIN!, 'initdb'),
      '-D',
      join(dir, 'data'),
      '-U',
      'postgres',
      '-A',
      'scram-sha-256',
      '--pwfile',
      join(dir, 'pwfile'),
      '--no-sync',
    ]);
    writeFileSync(join(dir, 'data', 'server.crt'), pair.certPem);
    writeFileSync(join(dir, 'data', 'server.key'), pair.keyPem, { mode: 0o600 });
    if (asRoot) spawnSync('chown', ['postgres', join(dir, 'data', 'server.crt'), join(dir, 'data', 'server.key')]);
    // TLS only: a connection without it is rejected by the server itself.
    writeFileSync(
      join(dir, 'data', 'pg_hba.conf'),
      'hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all 127.0.0.2/32 scram-sha-256\nhostnossl all all 0.0.0.0/0 reject\nlocal all all scram-sha-256\n',
    );
    if (asRoot) spawnSync('chown', ['postgres', join(dir, 'data', 'pg_hba.conf')]);
    port = await freePort(); // below the ephemeral range, where no client socket sits (platform/freePort.ts)
    run([
      join(PG_BIN!, 'pg_ctl'),
      '-D',
      join(dir, 'data'),
      '-w',
      '-l',
      join(dir, 'log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1,127.0.0.2 -c ssl=on -c ssl_min_protocol_version=TLSv1.2 -c fsync=off`,
      'start',
    ]);
  });
  after(() => {
    if (dir)
      spawnSync(
        asRoot ? 'runuser' : join(PG_BIN!, 'pg_ctl'),
        asRoot
          ? ['-u', 'postgres', '--', join(PG_BIN!, 'pg_ctl'), '-D', join(dir, 'data'), '-m', 'immediate', 'stop']
          : ['-D', join(dir, 'data'), '-m', 'immediate', 'stop'],
      );
  });

  test('verify-full connects over TLS; a wrong CA, a wrong host name and no TLS at all are refused', async () => {
    const { createPgDb } = await import('../src/platform/db.ts');
    const url = (host: string, rootcert: string, mode = 'verify-full') =>
      `postgres://postgres@${host}:${port}/postgres?sslmode=${mode}&sslrootcert=${rootcert}`;
    const db = createPgDb(url('127.0.0.1', ca), 2, { password: () => 'superuser-pw' });
    try {
      const r = await db.query<{ ssl: boolean; version: string }>(
        `SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`,
      );
      assert.equal(r.rows[0].ssl, true);
      assert.match(r.rows[0].version, /^TLSv1\.[23]$/);
    } finally {
      await db.close();
    }
    const otherCa = join(dir, 'other.pem');
    writeFileSync(otherCa, (await generateSelfSignedCertificate(['127.0.0.1'])).certPem);
    for (const [u, re] of [
      [url('127.0.0.1', otherCa), /self.signed|unable to verify|certificate/i],
      [url('127.0.0.2', ca), /altnames|does not match|IP: 127\.0\.0\.2/i],
      [
        `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`,
        /no pg_hba\.conf entry|rejected|no encryption/i,
      ],
    ] as const) {
      const bad = createPgDb(u, 1, { password: () => 'superuser-pw' });
      await assert.rejects(bad.query('SELECT 1'), re, u);
      await bad.close();
    }
  });

  test('a database password from the secrets provider rotates without dropping connections', async () => {
    const { createPgDb } = await import('../src/platform/db.ts');
    const { createSecretStore, createEnvSecrets } = await import('../src/platform/secrets.ts');
    const admin = createPgDb(
      `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=verify-full&sslrootcert=${ca}`,
      1,
      { password: () => 'superuser-pw' },
    );
    await admin.query(`CREATE ROLE app LOGIN PASSWORD 'app-pw-1'`);
    const env: Record<string, string> = { DATABASE_PASSWORD: 'app-pw-1' };
    const store = createSecretStore(createEnvSecrets(env), { refreshMs: 60_000, overlapMs: 0 });
    const secret = await store.watch('DATABASE_PASSWORD', 'DATABASE_PASSWORD_SECRET');
    const url = `postgres://app@127.0.0.1:${port}/postgres?sslmode=verify-full&sslrootcert=${ca}`;
    const db = createPgDb(url, 3, { password: () => secret.current() });
    try {
      const held = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // Rotation: the password changes in the database and in the secret.
      await admin.query(`ALTER ROLE app PASSWORD 'app-pw-2'`);
      env.DATABASE_PASSWORD = 'app-pw-2';
      await store.refresh();
      // The open connection keeps working; new ones log in with the new password.
      assert.equal((await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid, held.rows[0].pid);
      const fresh = createPgDb(url, 1, { password: () => secret.current() });
      assert.equal((await fresh.query<{ u: string }>('SELECT current_user AS u')).rows[0].u, 'app');
      await fresh.close();
      const stale = createPgDb(url, 1, { password: () => 'app-pw-1' });
      await assert.rejects(stale.query('SELECT 1'), /password authentication failed/);
      await stale.close();
    } finally {
      await db.close();
      await admin.close();
    }
  });
});

// CI installs Redis and sets CI_REQUIRE_GATEWAY: there a missing redis-server fails instead of skipping.
const haveRedis = spawnSync('redis-server', ['--version']).status === 0;
describe('Redis over TLS (rediss://)', {
  skip: haveRedis || process.env.CI_REQUIRE_GATEWAY ? false : 'redis-server not installed',
}, () => {
  let port: number;
  let proc: import('node:child_process').ChildProcess;
  let dir: string;
  before(async () => {
    const { spawn } = await import('node:child_process');
    dir = tmp();
    const pair = await generateSelfSignedCertificate(['127.0.0.1']);
    writeFileSync(join(dir, 'cert.pem'), pair.certPem);
    writeFileSync(join(dir, 'key.pem'), pair.keyPem, { mode: 0o600 });
    // Below the ephemeral range (platform/freePort.ts): a random high port could be a client
    // socket's, and redis-server then exits at once (seen in CI: ECONNREFUSED).
    port = await freePort();
    proc = spawn(
      'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--tls-cert-file',
        join(dir, 'cert.pem'),
        '--tls-key-file',
        join(dir, 'key.pem'),
        '--tls-ca-cert-file',
        join(dir, 'cert.pem'),
        '--tls-auth-clients',
        'no',
        '--tls-protocols',
        'TLSv1.2 TLSv1.3',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr?.on('data', (c) => (stderr += c));
    for (let i = 0; ; i++) {
      const up = await connect(port, pair.certPem, { servername: undefined });
      if (up.ok) break;
      if (i >= 200 || proc.exitCode !== null)
        throw new Error(`redis-server did not listen on ${port} (exit ${proc.exitCode}): ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(() => proc?.kill());

  test('ioredis with the configured CA talks to Redis over TLS; another CA is refused', async () => {
    const { Redis } = await import('ioredis');
    const { redisTlsOptions } = await import('../src/platform/tls.ts');
    const url = `rediss://127.0.0.1:${port}`;
    const good = new Redis(url, {
      ...redisTlsOptions(url, { redisCaFile: join(dir, 'cert.pem') }),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    await good.connect();
    assert.equal(await good.ping(), 'PONG');
    good.disconnect();
    const otherCa = join(dir, 'other.pem');
    writeFileSync(otherCa, (await generateSelfSignedCertificate(['127.0.0.1'])).certPem);
    const bad = new Redis(url, {
      ...redisTlsOptions(url, { redisCaFile: otherCa }),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    bad.on('error', () => {});
    await assert.rejects(bad.connect());
    bad.disconnect();
  });

  test("the edge's shared rate-limit store uses the configured CA for rediss://", async () => {
    const { createRedisBucketStore, createMemoryBucketStore } = await import('../src/http/edge/index.ts');
    let errors = 0;
    const store = await createRedisBucketStore({
      url: `rediss://127.0.0.1:${port}`,
      caFile: join(dir, 'cert.pem'),
      fallback: createMemoryBucketStore(),
      onError: () => errors++,
    });
    try {
      const r = await store.take('tls-test', { ratePerSecond: 1, burst: 2 });
      assert.equal(r.allowed, true);
      assert.equal(errors, 0, 'answered by Redis over TLS, not by the in-process fallback');
    } finally {
      await store.close();
    }
  });
});
