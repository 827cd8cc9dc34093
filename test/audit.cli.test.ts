import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cliWithDb } from './helpers/cliDb.ts';
import { migrate } from '../src/platform/migrate.ts';
import { systemClock } from '../src/platform/clock.ts';
import { auditKeysFromSeed, createAuditWriter } from '../src/modules/audit/index.ts';

// The commands as an operator or an outsider runs them: `tillpoint audit seal|verify|prove|
// check-proof`, `tillpoint access review` and `tillpoint operators create`, as processes
// against the same database (a PGlite directory, or the PostgreSQL at TEST_DATABASE_URL).

test('audit, access and operators commands', async () => {
  const seed = randomBytes(32);
  const { dataDir, open, done, cli, close } = await cliWithDb('tp-audit-cli-', {
    AUDIT_SIGNING_KEY: seed.toString('base64'),
    PASSWORD_HASH_MEMORY_KIB: '1024',
    PASSWORD_HASH_TIME_COST: '1',
  });

  try {
    let db = await open(true);
    await migrate(db);
    const writer = createAuditWriter({ keys: auditKeysFromSeed(seed), clock: systemClock });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        await db.tx((tx) =>
          writer.record(tx, { action: 'terminal.created', resource: { type: 'terminal', id: `trm_${i}` } }),
        ),
      );
    await done(db);

    const created = cli(
      'operators',
      'create',
      '--email',
      'first.admin@example.com',
      '--name',
      'First Admin',
      '--roles',
      'security-admin',
    );
    assert.equal(created.status, 0, created.stderr);
    const op = JSON.parse(created.stdout);
    assert.match(op.temporary_password, /^[A-Za-z0-9]{20}$/);
    assert.equal(op.operator.must_change_password, true);

    const sealed = cli('audit', 'seal');
    assert.equal(sealed.status, 0, sealed.stderr);
    assert.ok(JSON.parse(sealed.stdout).tree_size >= 6, "five records and the operator's creation");

    const ok = cli('audit', 'verify');
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /audit trail ok: \d+ records/);

    const proof = cli('audit', 'prove', ids[2]);
    assert.equal(proof.status, 0, proof.stderr);
    const file = join(dataDir, 'proof.json');
    writeFileSync(file, proof.stdout);
    const check = cli('audit', 'check-proof', file);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /proof ok/);
    const p = JSON.parse(proof.stdout);
    writeFileSync(file, JSON.stringify({ ...p, record: p.record.replace('trm_2', 'trm_9') }));
    assert.equal(cli('audit', 'check-proof', file).status, 1, 'a doctored record fails the check');

    const review = cli('access', 'review', '--json');
    assert.equal(review.status, 0, review.stderr);
    assert.ok(
      JSON.parse(review.stdout).operators.some(
        (o: { email: string; roles: string[] }) =>
          o.email === 'first.admin@example.com' && o.roles.includes('security-admin'),
      ),
    );
    const table = cli('access', 'review');
    assert.match(table.stdout, /first\.admin@example\.com\s+platform\s+security-admin/);

    db = await open();
    await db.tx(async (tx) => {
      await tx.query(`ALTER TABLE audit.events DISABLE TRIGGER USER`);
      await tx.query(`UPDATE audit.events SET record = replace(record, 'trm_3', 'trm_7') WHERE id = $1`, [ids[3]]);
      await tx.query(`ALTER TABLE audit.events ENABLE TRIGGER USER`);
    });
    await done(db);
    const bad = cli('audit', 'verify');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, new RegExp(`audit verify FAILED: record ${ids[3]} \\(leaf 3\\) was changed`));

    db = await open();
    const verifications = await db.query<{ outcome: string }>(
      `SELECT outcome FROM audit.events WHERE action = 'audit.verified' ORDER BY seq`,
    );
    assert.deepEqual(
      verifications.rows.map((r) => r.outcome),
      ['success', 'failure'],
      'each verification is itself recorded',
    );
    await done(db);
  } finally {
    await close();
  }
});
