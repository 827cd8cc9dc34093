import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { dataDirFromTemplate } from './helpers/cliDb.ts';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { createOperator, signIn } from './helpers/operators.ts';
import { systemClock } from '../src/platform/clock.ts';
import { complianceReport } from '../src/cli/commands/compliance.ts';
import { verifyReportText, renderHtml, type SignedReport } from '../src/modules/compliance/index.ts';
import type { Config } from '../src/platform/config.ts';

// The PCI DSS evidence report against a live installation (a running API over a real database):
// a compliant configuration passes every automated check it can decide, and each control,
// flipped, turns its own row into a failure: an operator without MFA, a key past its
// cryptoperiod, a default secret, TLS off, the audit trail tampered. The signed report
// verifies, and a changed one does not.

const BIN = join(import.meta.dirname, '..', 'bin', 'tillpoint.mjs');

describe('compliance report', () => {
  let t: TestApp;
  let good: Config;

  const report = (config: Config = good) => complianceReport({ config, db: t.db });
  const rowOf = (s: SignedReport, id: string) => {
    const r = s.report.results.find((x) => x.id === id);
    assert.ok(r, `no row ${id}`);
    return r;
  };

  before(async () => {
    t = await startTestApp();
    await t.seedMerchant();
    // An operator with MFA enrolled, in use today.
    const identity = t.app.services.identity;
    const op = await identity.createOperator(null, {
      email: 'asha@example.test',
      name: 'Asha',
      roles: ['security-admin'],
    });
    await t.db.query(`UPDATE identity.operators SET totp_enrolled_at = now(), last_used_at = now() WHERE id = $1`, [
      op.operator.id,
    ]);
    await t.app.services.audit.runJobs();
    await t.app.services.audit.signHead(true);
    // Compliant settings: TLS on the API, bank secrets that are not the development default.
    good = {
      ...t.config,
      tls: { ...t.config.tls, mode: 'files', minVersion: 'TLSv1.2' },
      banks: t.config.banks.map((b) => ({ ...b, secret: 'c9a1f0e2d7b64a8f9e3c5d1b7a2f6e04' })),
    };
  });
  after(async () => t.close());

  test('a compliant installation: every automated check passes or says why it could not look', async () => {
    const s = await report();
    const automated = s.report.results.filter((r) => r.kind === 'automated');
    const failing = automated.filter((r) => r.status === 'fail' || r.status === 'error');
    assert.deepEqual(
      failing.map((r) => r.id),
      [],
    );
    for (const id of [
      '10.3.3-worm-export',
      '3.3.1-sad-refused',
      '3.7.4-key-cryptoperiod',
      '4.2.1-tls',
      '8.4.2-mfa',
      '8.2.6-inactive',
      '8.6.2-no-default-secrets',
      '10.3.4-audit-verified',
      '10.3.4-audit-head-age',
      '10.5.1-retention',
      '6.4.2-rate-limits',
    ]) {
      assert.equal(rowOf(s, id).status, 'pass', `${id}: ${rowOf(s, id).summary}`);
    }
    assert.equal(rowOf(s, '12.aws-evidence').status, 'not_configured');
    assert.equal(rowOf(s, '11.4-pentest').kind, 'manual');
    assert.equal(s.report.summary.ok, true);
    assert.equal(verifyReportText(JSON.stringify(s)).ok, true);
  });

  test('an active operator without MFA fails 8.4.2', async () => {
    const op = await t.app.services.identity.createOperator(null, {
      email: 'ravi@example.test',
      name: 'Ravi',
      roles: ['viewer'],
    });
    try {
      const r = rowOf(await report(), '8.4.2-mfa');
      assert.equal(r.status, 'fail');
      assert.match(r.summary, new RegExp(op.operator.id));
    } finally {
      await t.db.query(`UPDATE identity.operators SET status = 'disabled' WHERE id = $1`, [op.operator.id]);
    }
    assert.equal(rowOf(await report(), '8.4.2-mfa').status, 'pass');
  });

  test('an operator unused past the inactivity limit fails 8.2.6', async () => {
    const op = await t.app.services.identity.createOperator(null, {
      email: 'old@example.test',
      name: 'Old',
      roles: ['viewer'],
    });
    await t.db.query(
      `UPDATE identity.operators SET totp_enrolled_at = now(), last_used_at = now() - interval '120 days', created_at = now() - interval '200 days' WHERE id = $1`,
      [op.operator.id],
    );
    try {
      assert.equal(rowOf(await report(), '8.2.6-inactive').status, 'fail');
    } finally {
      await t.db.query(`UPDATE identity.operators SET status = 'disabled' WHERE id = $1`, [op.operator.id]);
    }
  });

  test('a key past its cryptoperiod fails 3.7.4', async () => {
    const old = { ...good, keys: { ...good.keys, cryptoperiodDays: { ...good.keys.cryptoperiodDays, aead: 0 } } };
    const r = rowOf(await report(old), '3.7.4-key-cryptoperiod');
    assert.equal(r.status, 'fail');
    assert.match(r.summary, /past cryptoperiod: .*aead/);
  });

  test('a default secret fails 8.6.2', async () => {
    const r = rowOf(
      await report({ ...good, banks: t.config.banks.map((b) => ({ ...b, secret: 'dev-only-simulator-secret' })) }),
      '8.6.2-no-default-secrets',
    );
    assert.equal(r.status, 'fail');
    assert.match(r.summary, /BANKS\[SIMBANK\]\.secret/);
  });

  test('TLS off fails 4.2.1', async () => {
    const r = rowOf(await report({ ...good, tls: { ...good.tls, mode: 'off' } }), '4.2.1-tls');
    assert.equal(r.status, 'fail');
    assert.match(r.summary, /plain HTTP/);
  });

  test('over the API: key status without key material, and the live report, signed and verifiable', async () => {
    const keys = await t.request('GET', '/v1/keys');
    assert.equal(keys.status, 200);
    assert.equal(keys.body.kek.provider, 'local');
    assert.ok(keys.body.keys.length > 0);
    for (const k of keys.body.keys) {
      assert.deepEqual(Object.keys(k).sort(), [
        'age_days',
        'created_at',
        'cryptoperiod_days',
        'encrypted_rows',
        'kind',
        'overdue',
        'purpose',
        'state',
        'version',
      ]);
    }
    const r = await t.request('GET', '/v1/compliance/report');
    assert.equal(r.status, 200);
    const verified = verifyReportText(JSON.stringify(r.body));
    assert.equal(verified.ok, true, verified.problems.join('; '));
    assert.ok(r.body.report.results.some((x: { id: string }) => x.id === '8.4.2-mfa'));
  });

  test('the access review over the API: platform operators only, every account with its last use', async () => {
    const r = await t.request('GET', '/v1/access-review');
    assert.equal(r.status, 200);
    assert.ok(r.body.operators.some((o: { email: string }) => o.email === 'asha@example.test'));
    assert.ok(r.body.api_keys.length >= 1);
    for (const k of r.body.api_keys) assert.equal(k.key, undefined, 'no key secret or digest');
    // A merchant's admin may read that merchant's operators, not the platform-wide review.
    const { merchant } = await t.seedMerchant();
    const admin = await createOperator(t, { roles: ['merchant-admin'], merchantId: merchant.id });
    const session = await signIn(t, systemClock, admin);
    assert.equal((await session.req('GET', `/v1/operators`)).status, 200);
    const refused = await session.req('GET', '/v1/access-review');
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'forbidden');
  });

  test('a signed report verifies; a changed one, or one signed by another key, does not; the HTML is self-contained', async () => {
    const s = await report();
    const changed = structuredClone(s);
    changed.report.results[0].status = 'pass';
    changed.report.results[0].summary = 'looks fine';
    assert.equal(verifyReportText(JSON.stringify(changed)).ok, false);
    const evidence = structuredClone(s);
    (evidence.report.results[0] as { evidence: unknown }).evidence = { forged: true };
    assert.match(verifyReportText(JSON.stringify(evidence)).problems.join(' '), /signature|hash/);
    assert.match(
      verifyReportText(JSON.stringify(s), Buffer.alloc(32, 1).toString('base64')).problems.join(' '),
      /not by the expected/,
    );
    const html = renderHtml(s);
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//i, 'no external requests');
    assert.match(html, /Every automated check passed/);
    assert.equal(verifyReportText(html).ok, true);
    assert.equal(verifyReportText(html.replace('10.5.1', '10.5.2')).ok, false);
  });

  // Last: the tampering stays in the trail.
  test('the audit trail tampered fails 10.3.4', async () => {
    const victim = (
      await t.db.query<{ id: string }>(
        `SELECT e.id FROM audit.events e JOIN audit.leaves l ON l.event_id = e.id ORDER BY l.leaf_index LIMIT 1`,
      )
    ).rows[0].id;
    await t.db.tx(async (tx) => {
      await tx.query(`ALTER TABLE audit.events DISABLE TRIGGER USER`);
      await tx.query(
        `UPDATE audit.events SET record = replace(record, '"success"', '"failure"'), outcome = 'failure' WHERE id = $1`,
        [victim],
      );
      await tx.query(`ALTER TABLE audit.events ENABLE TRIGGER USER`);
    });
    const s = await report();
    const r = rowOf(s, '10.3.4-audit-verified');
    assert.equal(r.status, 'fail');
    assert.match(r.summary, /tampering found/);
    assert.equal(s.report.summary.ok, false);
  });
});

describe('tillpoint compliance (command line)', () => {
  test('report --format html --out DIR writes a signed page, exits 1 on a failed check; verify accepts it and refuses an edited copy', async () => {
    // A migrated database (the test template, unpacked: what `tillpoint migrate` made here before).
    const dataDir = await dataDirFromTemplate(mkdtempSync(join(tmpdir(), 'tillpoint-compliance-')));
    const out = join(dataDir, 'reports');
    const env = {
      ...process.env,
      TILLPOINT_DATA_DIR: dataDir,
      DATABASE_URL: '',
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
    };
    const r = spawnSync(process.execPath, [BIN, 'compliance', 'report', '--format', 'html', '--out', out], {
      env,
      encoding: 'utf8',
      timeout: 120_000,
    });
    // Development defaults: TLS off and the simulator's default secret, so automated checks fail.
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /failed/);
    const file = join(out, readdirSync(out).find((f) => f.endsWith('.html'))!);
    const ok = spawnSync(process.execPath, [BIN, 'compliance', 'verify', file], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /report ok: signed by/);
    const edited = join(out, 'edited.html');
    writeFileSync(edited, readFileSync(file, 'utf8').replace('"status":"fail"', '"status":"pass"'));
    const bad = spawnSync(process.execPath, [BIN, 'compliance', 'verify', edited], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /NOT valid/);
  });
});
