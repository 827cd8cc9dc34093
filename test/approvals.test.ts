import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { createOperator, signIn, type Session } from './helpers/operators.ts';
import { systemClock } from '../src/platform/clock.ts';

// Four eyes over HTTP (src/modules/identity/approvals.*): an operator's refund above
// REFUND_APPROVAL_THRESHOLD_PAISE and an operator's MFA reset become requests that a second,
// different operator approves (carried out once) or rejects; nobody approves their own; stale
// requests expire; two pending refunds cannot over-refund; every step is an audit record.

const THRESHOLD = 10_000; // ₹100

describe('four eyes: approval requests', () => {
  let t: TestApp;
  let shop: Awaited<ReturnType<TestApp['seedMerchant']>>;
  let other: Awaited<ReturnType<TestApp['seedMerchant']>>;
  let asha: Session; // refunds, platform
  let bala: Session; // refunds, platform: the second pair of eyes
  let chitra: Session; // refunds, platform: a third
  let viewer: Session; // support: reads payments, decides nothing
  let otherStaff: Session; // refunds, another merchant's staff

  async function paidPayment(amount: number, terminal = shop.terminal.id) {
    const p = await t.request('POST', '/v1/payments', {
      terminal_id: terminal,
      amount,
      currency: 'INR',
      method: 'upi_qr',
    });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await t.payQr(p.body.upi_uri);
    await t.eventually(async () => (await t.request('GET', `/v1/payments/${p.body.id}`)).body.status === 'succeeded');
    return p.body.id as string;
  }
  const refunds = async (paymentId: string) =>
    (await t.request('GET', `/v1/payments/${paymentId}/refunds`)).body.data as { id: string; amount: number }[];
  const auditActions = async (resourceId: string) =>
    (
      await t.db.query<{ action: string; outcome: string }>(
        // The approvals' own records (the HTTP layer also records each refused request as api.request).
        "SELECT action, outcome FROM audit.events WHERE resource_id = $1 AND action LIKE 'approval.%' ORDER BY seq",
        [resourceId],
      )
    ).rows.map((r) => `${r.action}:${r.outcome}`);

  before(async () => {
    t = await startTestApp({
      env: { RATE_LIMIT_ENABLED: 'false', REFUND_APPROVAL_THRESHOLD_PAISE: String(THRESHOLD) },
    });
    shop = await t.seedMerchant('Approvals Shop');
    other = await t.seedMerchant('Other Shop');
    const make = async (roles: string[], name: string, merchantId?: string) =>
      signIn(t, systemClock, await createOperator(t, { roles, name, merchantId }));
    asha = await make(['refunds'], 'Asha');
    bala = await make(['refunds'], 'Bala');
    chitra = await make(['refunds'], 'Chitra');
    viewer = await make(['support'], 'Vikram');
    otherStaff = await make(['refunds'], 'Other staff', other.merchant.id);
  });
  after(async () => {
    await t?.close();
  });

  test('a refund at or below the threshold is made at once; above it becomes a request and no money moves', async () => {
    const pay = await paidPayment(30_000);
    const small = await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: THRESHOLD });
    assert.equal(small.status, 201, JSON.stringify(small.body));

    const big = await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 15_000, reason: 'damaged goods' });
    assert.equal(big.status, 202, JSON.stringify(big.body));
    assert.equal(big.body.error.code, 'approval_required');
    const a = big.body.error.details.approval;
    assert.match(a.id, /^apr_[0-9a-f]{32}$/);
    assert.equal(a.kind, 'refund');
    assert.equal(a.status, 'pending');
    assert.deepEqual(a.subject, { type: 'payment', id: pay });
    assert.deepEqual(a.payload, { amount: 15_000, reason: 'damaged goods' });
    assert.equal(a.requested_by.id, asha.operatorId);
    assert.equal(a.can_decide, false, 'the requester cannot decide their own request');
    // Nothing moved and nothing is reserved: only the small refund exists.
    assert.deepEqual(
      (await refunds(pay)).map((r) => r.amount),
      [THRESHOLD],
    );
    assert.deepEqual(await auditActions(a.id), ['approval.requested:success']);
  });

  test('the requester cannot approve or reject their own; a second operator approves and the refund is made once', async () => {
    const pay = await paidPayment(20_000);
    const filed = await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 12_000 });
    const id = filed.body.error.details.approval.id;

    const self = await asha.req('POST', `/v1/approvals/${id}/approve`);
    assert.equal(self.status, 403);
    assert.equal(self.body.error.code, 'self_approval_forbidden');
    const selfReject = await asha.req('POST', `/v1/approvals/${id}/reject`, { reason: 'changed my mind' });
    assert.equal(selfReject.body.error.code, 'self_approval_forbidden');

    // The second operator sees it as theirs to decide.
    const queue = await bala.req('GET', '/v1/approvals?status=pending&kind=refund');
    const row = queue.body.data.find((x: { id: string }) => x.id === id);
    assert.ok(row, 'the request is in the queue');
    assert.equal(row.can_decide, true);
    assert.equal(row.requested_by.name, 'Asha');

    const ok = await bala.req('POST', `/v1/approvals/${id}/approve`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.status, 'approved');
    assert.equal(ok.body.decided_by.id, bala.operatorId);
    assert.match(ok.body.outcome.refund_id, /^rfd_/);
    assert.equal(ok.body.outcome.amount, 12_000);
    await t.eventually(
      async () => (await t.request('GET', `/v1/payments/${pay}`)).body.status === 'partially_refunded',
    );

    // Again, by the same approver or a third: decided already, nothing more happens.
    const again = await bala.req('POST', `/v1/approvals/${id}/approve`);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'approval_not_pending');
    assert.equal((await chitra.req('POST', `/v1/approvals/${id}/approve`)).body.error.code, 'approval_not_pending');
    assert.deepEqual(
      (await refunds(pay)).map((r) => r.id),
      [ok.body.outcome.refund_id],
    );
    const trail = await auditActions(id);
    assert.deepEqual(trail, [
      'approval.requested:success',
      'approval.approved:failure', // Asha's own attempt, refused and recorded
      'approval.rejected:failure',
      'approval.approved:success',
    ]);
  });

  test('two approvers at once: one refund, one approval_not_pending', async () => {
    const pay = await paidPayment(20_000);
    const id = (await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 15_000 })).body.error.details.approval
      .id;
    const [x, y] = await Promise.all([
      bala.req('POST', `/v1/approvals/${id}/approve`),
      chitra.req('POST', `/v1/approvals/${id}/approve`),
    ]);
    assert.deepEqual([x.status, y.status].sort(), [200, 409], JSON.stringify([x.body, y.body]));
    assert.equal((await refunds(pay)).length, 1);
  });

  test('two pending requests cannot over-refund: the second approval is re-checked and closes as failed', async () => {
    const pay = await paidPayment(20_000);
    const first = (await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 15_000 })).body.error.details
      .approval;
    const second = (await bala.req('POST', `/v1/payments/${pay}/refunds`, { amount: 15_000 })).body.error.details
      .approval;
    // Each alone fits the payment; both would not. Approved at the same moment, in both orders.
    const [x, y] = await Promise.all([
      chitra.req('POST', `/v1/approvals/${first.id}/approve`),
      asha.req('POST', `/v1/approvals/${second.id}/approve`),
    ]);
    const statuses = [x, y].map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409], JSON.stringify([x.body, y.body]));
    const refused = x.status === 409 ? x : y;
    assert.equal(refused.body.error.code, 'refund_exceeds_payment');
    const closed = (await bala.req('GET', `/v1/approvals/${(x.status === 409 ? first : second).id}`)).body;
    assert.equal(closed.status, 'failed');
    assert.deepEqual(closed.outcome, { error: 'refund_exceeds_payment' });
    const made = await refunds(pay);
    assert.equal(made.length, 1);
    assert.ok(made.reduce((s, r) => s + r.amount, 0) <= 20_000);
    assert.ok((await auditActions(closed.id)).includes('approval.failed:failure'));
  });

  test('a rejection needs a reason and does nothing', async () => {
    const pay = await paidPayment(20_000);
    const id = (await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 15_000 })).body.error.details.approval
      .id;
    const bare = await bala.req('POST', `/v1/approvals/${id}/reject`, {});
    assert.equal(bare.status, 400);
    const no = await bala.req('POST', `/v1/approvals/${id}/reject`, { reason: 'customer was refunded in store' });
    assert.equal(no.status, 200, JSON.stringify(no.body));
    assert.equal(no.body.status, 'rejected');
    assert.equal(no.body.reason, 'customer was refunded in store');
    assert.equal((await chitra.req('POST', `/v1/approvals/${id}/approve`)).body.error.code, 'approval_not_pending');
    assert.deepEqual(await refunds(pay), []);
    assert.deepEqual(await auditActions(id), ['approval.requested:success', 'approval.rejected:success']);
  });

  test('a stale request expires: it cannot be approved, and the sweep records it', async () => {
    const pay = await paidPayment(20_000);
    const id = (await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 15_000 })).body.error.details.approval
      .id;
    const id2 = (await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 14_000 })).body.error.details.approval
      .id;
    await t.db.query(
      "UPDATE identity.approval_requests SET expires_at = now() - interval '1 minute' WHERE id = ANY($1)",
      [[id, id2]],
    );
    assert.equal((await bala.req('GET', `/v1/approvals/${id}`)).body.status, 'expired');
    const late = await bala.req('POST', `/v1/approvals/${id}/approve`);
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, 'approval_not_pending');
    assert.equal(await t.app.services.approvals.expireStale(), 0, 'the late approval swept both already');
    assert.deepEqual(await refunds(pay), []);
    assert.deepEqual(await auditActions(id2), ['approval.requested:success', 'approval.expired:success']);
  });

  test('API keys (merchant integrations) are not gated; viewers and other merchants see nothing', async () => {
    const pay = await paidPayment(20_000);
    const viaKey = await t.request('POST', `/v1/payments/${pay}/refunds`, { amount: 15_000 });
    assert.equal(viaKey.status, 201, 'an integration refund above the threshold is made at once');

    const pay2 = await paidPayment(20_000);
    const id = (await asha.req('POST', `/v1/payments/${pay2}/refunds`, { amount: 15_000 })).body.error.details.approval
      .id;
    // A support operator: refunds nothing (403 at the route), decides nothing, sees no request.
    assert.equal((await viewer.req('POST', `/v1/payments/${pay2}/refunds`, { amount: 15_000 })).status, 403);
    assert.equal((await viewer.req('GET', '/v1/approvals')).body.data.length, 0);
    assert.equal((await viewer.req('POST', `/v1/approvals/${id}/approve`)).status, 404);
    // Another merchant's staff with the approve permission: not theirs to see.
    assert.equal((await otherStaff.req('GET', `/v1/approvals/${id}`)).status, 404);
    assert.equal((await otherStaff.req('POST', `/v1/approvals/${id}/approve`)).status, 404);
    assert.equal(
      (await otherStaff.req('GET', '/v1/approvals')).body.data.some((x: { id: string }) => x.id === id),
      false,
    );
    // An API key has no account: the queue is for people.
    assert.equal((await t.request('GET', '/v1/approvals')).status, 403);
    assert.equal((await t.request('POST', `/v1/approvals/${id}/approve`)).status, 403);
  });

  test('the queue pages with a cursor', async () => {
    const pay = await paidPayment(90_000);
    for (let i = 0; i < 3; i++) await asha.req('POST', `/v1/payments/${pay}/refunds`, { amount: 11_000 + i });
    const p1 = await bala.req('GET', `/v1/approvals?subject_id=${pay}&limit=2`);
    assert.equal(p1.body.data.length, 2);
    assert.ok(p1.body.next_cursor);
    const p2 = await bala.req('GET', `/v1/approvals?subject_id=${pay}&limit=2&cursor=${p1.body.next_cursor}`);
    assert.equal(p2.body.data.length, 1);
    assert.equal(p2.body.next_cursor, null);
    assert.deepEqual(
      [...p1.body.data, ...p2.body.data].map((x: { payload: { amount: number } }) => x.payload.amount),
      [11_002, 11_001, 11_000],
    );
  });

  test('an MFA reset over the API is a request a second administrator approves', async () => {
    const admin1 = await signIn(
      t,
      systemClock,
      await createOperator(t, { roles: ['security-admin'], name: 'Sec One' }),
    );
    const admin2 = await signIn(
      t,
      systemClock,
      await createOperator(t, { roles: ['security-admin'], name: 'Sec Two' }),
    );
    const target = await createOperator(t, { roles: ['support'], name: 'Lost Phone' });
    const targetSession = await signIn(t, systemClock, target);

    const asked = await admin1.req('POST', `/v1/operators/${target.id}/reset-mfa`);
    assert.equal(asked.status, 202, JSON.stringify(asked.body));
    assert.equal(asked.body.error.code, 'approval_required');
    const a = asked.body.error.details.approval;
    assert.equal(a.kind, 'mfa_reset');
    assert.deepEqual(a.subject, { type: 'operator', id: target.id });
    // Nothing happened yet: still enrolled, still signed in.
    assert.equal((await admin1.req('GET', `/v1/operators/${target.id}`)).body.mfa_enrolled, true);
    assert.equal((await targetSession.req('GET', '/v1/auth/session')).status, 200);
    // One pending reset per operator.
    assert.equal((await admin2.req('POST', `/v1/operators/${target.id}/reset-mfa`)).status, 409);
    // Nobody asks for their own.
    assert.equal((await admin1.req('POST', `/v1/operators/${admin1.operatorId}/reset-mfa`)).status, 403);

    assert.equal(
      (await admin1.req('POST', `/v1/approvals/${a.id}/approve`)).body.error.code,
      'self_approval_forbidden',
    );
    const ok = await admin2.req('POST', `/v1/approvals/${a.id}/approve`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.status, 'approved');
    assert.equal((await admin1.req('GET', `/v1/operators/${target.id}`)).body.mfa_enrolled, false);
    assert.equal((await targetSession.req('GET', '/v1/auth/session')).status, 401, 'their sessions ended');
    const reset = await t.db.query<{ record: string }>(
      "SELECT record FROM audit.events WHERE action = 'operator.mfa_reset' AND resource_id = $1",
      [target.id],
    );
    assert.equal(reset.rows.length, 1);
    const rec = JSON.parse(reset.rows[0].record);
    assert.equal(rec.details.approval_id, a.id);
    assert.equal(rec.actor.id, admin2.operatorId, 'the approver carried it out');
    // A refunds operator cannot decide MFA resets: not even visible.
    assert.equal((await bala.req('GET', `/v1/approvals/${a.id}`)).status, 404);
  });

  test('OpenAPI documents the queue, the decisions and the 202 of a gated action', async () => {
    const spec = (await (await fetch(`${t.url}/openapi.json`)).json()) as any;
    for (const path of [
      '/v1/approvals',
      '/v1/approvals/{id}',
      '/v1/approvals/{id}/approve',
      '/v1/approvals/{id}/reject',
    ])
      assert.ok(spec.paths[path], `OpenAPI documents ${path}`);
    assert.ok(spec.paths['/v1/payments/{id}/refunds'].post.responses['202'], 'the refund route documents its 202');
    assert.ok(spec.paths['/v1/operators/{id}/reset-mfa'].post.responses['202']);
    const policy = await asha.req('GET', '/v1/payments/refund-policy');
    assert.deepEqual(policy.body, { window_days: 180, approval_threshold_paise: THRESHOLD });
  });

  test('the command line resets MFA directly (break-glass) and records it as such', async () => {
    const target = await createOperator(t, { roles: ['support'], name: 'CLI target' });
    await signIn(t, systemClock, target);
    const v = await t.app.services.identity.resetMfa(null, target.id);
    assert.equal(v.mfa_enrolled, false);
    const rows = await t.db.query<{ record: string }>(
      "SELECT record FROM audit.events WHERE action = 'operator.mfa_reset' AND resource_id = $1",
      [target.id],
    );
    const rec = JSON.parse(rows.rows[0].record);
    assert.equal(rec.actor.type, 'cli');
    assert.equal(rec.details.break_glass, 'cli');
  });
});
