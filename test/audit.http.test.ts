import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { call, createOperator, signIn, type Session } from './helpers/operators.ts';
import { fixedClock } from '../src/platform/clock.ts';
import { checkInclusionProof, type AuditRecord } from '../src/modules/audit/index.ts';

// What the running platform records, and who may read it: each change is recorded in the
// transaction that makes it, reads of personal data are recorded before the data leaves,
// and the trail is readable by auditors only, each read recorded too.

const clock = fixedClock(new Date());

async function recordsFor(t: TestApp, resourceId: string): Promise<AuditRecord[]> {
  const r = await t.db.query<{ record: string }>(
    `SELECT record FROM audit.events WHERE resource_id = $1 ORDER BY seq`,
    [resourceId],
  );
  return r.rows.map((x) => JSON.parse(x.record));
}

describe('the audit trail of a running platform', () => {
  let t: TestApp;
  let auditor: Session;
  let support: Session;
  before(async () => {
    t = await startTestApp({ clock, env: { RATE_LIMIT_ENABLED: 'false' } });
    auditor = await signIn(t, clock, await createOperator(t, { roles: ['auditor'] }));
    support = await signIn(t, clock, await createOperator(t, { roles: ['support', 'merchant-admin'] }));
  });
  after(() => t.close());

  test('creating merchants, stores and terminals is recorded with who, what, when, where and the outcome', async () => {
    const m = await support.req('POST', '/v1/merchants', {
      name: 'Chai Point',
      vpa: 'chai.point@simbank',
      mcc: '5812',
      acquiring_bank: 'SIMBANK',
    });
    assert.equal(m.status, 201);
    const [rec] = await recordsFor(t, m.body.id);
    assert.equal(rec.action, 'merchant.created');
    assert.equal(rec.outcome, 'success');
    assert.equal(rec.actor.type, 'operator');
    assert.equal(rec.actor.id, support.operatorId);
    assert.equal(rec.actor.session_id, support.body.session.id);
    assert.equal(rec.origin.request_id, m.headers.get('x-request-id'));
    assert.match(String(rec.origin.ip), /127\.0\.0\.1/);
    assert.equal(rec.origin.route, '/v1/merchants');
    assert.equal(rec.resource.type, 'merchant');
    assert.match(rec.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'UTC');
    assert.ok(!JSON.stringify(rec).includes('chai.point@simbank'), 'no VPA in the trail');
    const s = await support.req('POST', `/v1/merchants/${m.body.id}/stores`, { name: 'Koramangala' });
    const tm = await support.req('POST', '/v1/terminals', { store_id: s.body.id });
    assert.deepEqual(
      (await recordsFor(t, tm.body.id)).map((r) => r.action),
      ['terminal.created'],
    );
    await support.req('PATCH', `/v1/terminals/${tm.body.id}`, { status: 'disabled' });
    assert.deepEqual(
      (await recordsFor(t, tm.body.id)).map((r) => `${r.action}/${r.details.status ?? ''}`),
      ['terminal.created/', 'terminal.updated/disabled'],
    );
  });

  test('a change that fails leaves no success record, and the failure is recorded', async () => {
    const before = (await t.db.query(`SELECT count(*)::int AS n FROM audit.events WHERE action = 'merchant.created'`))
      .rows[0] as { n: number };
    const dup = await support.req('POST', '/v1/merchants', {
      name: 'Chai Point again',
      vpa: 'chai.point@simbank',
      mcc: '5812',
      acquiring_bank: 'SIMBANK',
    });
    assert.equal(dup.status, 409, 'the VPA is taken');
    const after = (await t.db.query(`SELECT count(*)::int AS n FROM audit.events WHERE action = 'merchant.created'`))
      .rows[0] as { n: number };
    assert.equal(after.n, before.n, 'the record rolled back with the insert');
    const fail = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE record::jsonb -> 'origin' ->> 'request_id' = $1`,
      [dup.headers.get('x-request-id')],
    );
    assert.equal(fail.rows.length, 1);
    const r = JSON.parse(fail.rows[0].record);
    assert.deepEqual([r.action, r.outcome, r.details.code], ['api.request', 'failure', 'conflict']);
  });

  test('payments and refunds are recorded in their transactions; reading payments is recorded before the answer', async () => {
    const { terminal } = await t.seedMerchant();
    const p = await t.request('POST', '/v1/payments', {
      terminal_id: terminal.id,
      amount: 5000,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'meera.s@okicici',
    });
    assert.equal(p.status, 201);
    await t.eventually(async () => (await t.request('GET', `/v1/payments/${p.body.id}`)).body.status === 'succeeded');
    const created = await recordsFor(t, p.body.id);
    assert.equal(created[0].action, 'payment.created');
    assert.equal(created[0].origin.terminal_id, terminal.id);
    assert.ok(
      created.some((r) => r.action === 'data.read' && (r.details.ids as string[]).includes(p.body.id)),
      'the reads were recorded',
    );
    const rf = await support.req('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 1000 });
    assert.equal(rf.status, 403, 'support reads payments but cannot refund');
    const refunder = await signIn(t, clock, await createOperator(t, { roles: ['refunds'] }));
    const ok = await refunder.req('POST', `/v1/payments/${p.body.id}/refunds`, { amount: 1000 });
    assert.equal(ok.status, 201);
    const refundRecs = await recordsFor(t, ok.body.id);
    assert.deepEqual(refundRecs.map((r) => r.action).slice(0, 1), ['refund.requested']);
    assert.equal(refundRecs[0].actor.id, refunder.operatorId);
    const list = await support.req('GET', '/v1/payments?limit=5');
    assert.equal(list.status, 200);
    assert.equal(
      list.body.data[0].payer_vpa === null || list.body.data[0].payer_vpa.includes('****'),
      true,
      'support sees payer VPAs masked',
    );
    const read = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE record::jsonb -> 'origin' ->> 'request_id' = $1`,
      [list.headers.get('x-request-id')],
    );
    const r = JSON.parse(read.rows[0].record);
    assert.equal(r.action, 'data.read');
    assert.equal(r.details.permission, 'payments:read');
    assert.deepEqual(
      r.details.ids,
      list.body.data.map((x: { id: string }) => x.id),
    );
  });

  test('only auditors read the trail; every read of it is itself recorded; proofs check out', async () => {
    assert.equal((await support.req('GET', '/v1/audit/events')).status, 403);
    assert.equal((await t.request('GET', '/v1/payments')).status, 200);
    assert.equal((await auditor.req('GET', '/v1/payments')).status, 403, 'an auditor reads the trail and nothing else');
    const page = await auditor.req('GET', `/v1/audit/events?actor_id=${support.operatorId}&limit=10`);
    assert.equal(page.status, 200);
    assert.ok(page.body.data.length > 0 && page.body.data.every((e: AuditRecord) => e.actor.id === support.operatorId));
    const reads = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE record::jsonb -> 'origin' ->> 'request_id' = $1`,
      [page.headers.get('x-request-id')],
    );
    const rr = JSON.parse(reads.rows[0].record);
    assert.deepEqual([rr.action, rr.actor.id, rr.details.permission], ['data.read', auditor.operatorId, 'audit:read']);
    // Seal and sign (the worker's job), then prove a record over the API and check it offline.
    await t.app.services.audit.seal();
    await t.app.services.audit.signHead(true);
    const id = page.body.data[0].id;
    const proof = await auditor.req('GET', `/v1/audit/events/${id}/proof`);
    assert.equal(proof.status, 200, JSON.stringify(proof.body));
    assert.deepEqual(checkInclusionProof(proof.body), { ok: true });
    const head = await auditor.req('GET', '/v1/audit/head');
    assert.equal(head.body.public_key, proof.body.public_key);
    assert.deepEqual(checkInclusionProof(proof.body, head.body.public_key), { ok: true });
    const v = await t.app.services.audit.verify();
    assert.equal(v.ok, true, JSON.stringify(v.first));
  });

  test('the service start is recorded; the worker seals and signs on its tick', async () => {
    const started = await t.db.query(`SELECT 1 FROM audit.events WHERE action = 'service.started'`);
    assert.ok(started.rows.length >= 1);
    await t.db.tx((tx) => t.app.services.audit.record(tx, { action: 'merchant.updated', details: { n: 1 } }));
    clock.advance(61_000);
    const r = await t.app.services.audit.runJobs();
    assert.ok(r.sealed >= 1);
    assert.ok(r.signed && r.signed >= 1);
  });

  test('sign-in failures are recorded once each, with the account tried', async () => {
    const op = await createOperator(t, { roles: ['viewer'] });
    const bad = await call(t, 'POST', '/v1/auth/login', { email: op.email, password: 'not-the-password-1' });
    assert.equal(bad.status, 401);
    const recs = await t.db.query<{ record: string }>(
      `SELECT record FROM audit.events WHERE record::jsonb -> 'origin' ->> 'request_id' = $1`,
      [bad.headers.get('x-request-id')],
    );
    assert.equal(recs.rows.length, 1);
    const r = JSON.parse(recs.rows[0].record);
    assert.deepEqual(
      [r.action, r.outcome, r.resource.id, r.details.reason],
      ['auth.login', 'failure', op.id, 'bad_password'],
    );
    const unknown = await call(t, 'POST', '/v1/auth/login', {
      email: 'nobody@example.com',
      password: 'whatever-123456',
    });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.error.message, bad.body.error.message, 'an unknown account looks the same from outside');
  });
});
