import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { assertNoSeriousAxeViolations } from './helpers/axe.ts';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { createOperator } from './helpers/operators.ts';
import { base32Decode, totp } from '../src/modules/identity/index.ts';
import { ensureConsoleBuilt } from '../console/build.mjs';

// Four eyes in the console, in Debian's Chromium (playwright-core): operator A refunds above the
// approval threshold and the page says it went for approval; operator B, in a browser context
// of their own with their own TOTP, approves it on the Approvals page and the payment shows the
// refund; A cannot approve their own (no button, and 403 from the API); a viewer has no refund
// action and gets 403 from the API; an MFA reset asked on the Access page is approved by a
// second administrator. axe-core finds no serious or critical violation on the new views.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env.CI && !process.env.CI_REQUIRE_CHROMIUM
    ? `Chromium not found at ${CHROMIUM} (apt-get install -y chromium); set CHROMIUM_PATH`
    : false;
const THRESHOLD = 10_000; // ₹100.00
// CONSOLE_SCREENSHOTS=1 also writes docs/console/approvals.png (1280×800), as the main browser test does for its pages.
const SHOTS = process.env.CONSOLE_SCREENSHOTS === '1';

describe('four eyes in the console (Chromium)', { skip }, () => {
  let t: TestApp;
  let browser: Browser;
  let origin: string;
  let paymentId: string;
  let approvalId: string;
  const contexts: BrowserContext[] = [];
  const cspViolations: string[] = [];

  async function newPage(): Promise<Page> {
    const c = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
    contexts.push(c);
    const p = await c.newPage();
    p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    p.on('pageerror', (e) => cspViolations.push('page error: ' + e.message));
    return p;
  }
  const axe = assertNoSeriousAxeViolations;
  async function goto(p: Page, path: string, heading: string | RegExp) {
    await p.goto(origin + '/console' + path);
    await p.getByRole('heading', { level: 1, name: heading }).waitFor();
  }
  /** Each operator signs in in their own browser context with their own authenticator. */
  async function signIn(p: Page, who: { email: string; password: string }) {
    await p.goto(origin + '/console/');
    await p.getByLabel('Email').fill(who.email);
    await p.getByLabel('Password').fill(who.password);
    await p.getByRole('button', { name: 'Continue' }).click();
    const secretText = await p.locator('.enrol .mono').textContent({ timeout: 20_000 });
    const secret = base32Decode(secretText!.trim());
    await p.getByLabel('Authentication code').fill(totp(secret, new Date()));
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByTestId('recovery-codes').waitFor();
    await p.getByRole('button', { name: /continue/ }).click();
    await p.getByRole('navigation', { name: 'Console' }).waitFor();
  }
  /** The signed-in page's own session and CSRF token, straight at the API. */
  const apiFromPage = (p: Page, method: string, path: string, body?: unknown) =>
    p.evaluate(
      async ({ method, path, body }) => {
        const s = await (await fetch('/v1/auth/session')).json();
        const r = await fetch(path, {
          method,
          headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: r.status, body: await r.json().catch(() => null) };
      },
      { method, path, body },
    );

  const enrolled = async (operatorId: string) =>
    (
      await t.db.query<{ totp_enrolled_at: Date | null }>(
        'SELECT totp_enrolled_at FROM identity.operators WHERE id = $1',
        [operatorId],
      )
    ).rows[0].totp_enrolled_at !== null;

  before(async () => {
    await ensureConsoleBuilt({ log: () => {} });
    t = await startTestApp({
      env: { RATE_LIMIT_ENABLED: 'false', REFUND_APPROVAL_THRESHOLD_PAISE: String(THRESHOLD) },
    });
    origin = t.url.replace('localhost', '127.0.0.1');
    const seeded = await t.seedMerchant('Four Eyes Café');
    const pay = await t.request('POST', '/v1/payments', {
      terminal_id: seeded.terminal.id,
      amount: 50_000,
      currency: 'INR',
      method: 'upi_qr',
    });
    await t.payQr(pay.body.upi_uri);
    paymentId = pay.body.id;
    await t.eventually(async () => (await t.request('GET', `/v1/payments/${paymentId}`)).body.status === 'succeeded');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  let pageA: Page;
  let pageB: Page;

  test('operator A refunds above the threshold: the form says so and the request waits', async () => {
    const a = await createOperator(t, { roles: ['support', 'refunds'], name: 'Asha Requester' });
    pageA = await newPage();
    await signIn(pageA, a);
    await goto(pageA, `/payments/${paymentId}`, /Payment ₹500\.00/);
    // The form starts at the whole refundable amount, above the threshold.
    await pageA
      .getByTestId('refund-approval-note')
      .filter({ hasText: 'this refund needs a second approver' })
      .waitFor();
    await pageA.getByLabel('Amount (₹)').fill('50.00');
    await pageA
      .getByTestId('refund-approval-note')
      .filter({ hasText: 'Refunds above ₹100.00 need a second approver' })
      .waitFor();
    await pageA.getByLabel('Amount (₹)').fill('150.00');
    await pageA
      .getByTestId('refund-approval-note')
      .filter({ hasText: 'this refund needs a second approver' })
      .waitFor();
    await pageA.getByLabel('Reason (optional)').fill('damaged on delivery');
    await pageA.getByRole('button', { name: 'Refund', exact: true }).click();
    const filed = await pageA.getByTestId('approval-filed').textContent({ timeout: 20_000 });
    approvalId = /apr_[0-9a-f]{32}/.exec(filed!)![0];
    await pageA.getByTestId('pending-approvals').getByText('(not yours to decide)').waitFor();
    await pageA.getByText('No refunds.').waitFor();
    await axe(pageA, 'payment detail with a pending approval');

    // A cannot approve their own: the Approvals page offers no button, and the API says 403.
    await goto(pageA, '/approvals', 'Approvals');
    const mine = pageA.getByTestId(`approval-${approvalId}`);
    await mine.getByText('Waiting for another operator').waitFor();
    assert.equal(await mine.getByRole('button', { name: 'Approve' }).count(), 0);
    const self = await apiFromPage(pageA, 'POST', `/v1/approvals/${approvalId}/approve`, {});
    assert.equal(self.status, 403);
    assert.equal(self.body.error.code, 'self_approval_forbidden');
    await axe(pageA, 'approvals (own request)');
  });

  test('operator B, in their own browser with their own TOTP, approves; the payment shows the refund', async () => {
    const b = await createOperator(t, { roles: ['support', 'refunds'], name: 'Bala Approver' });
    pageB = await newPage();
    await signIn(pageB, b);
    await pageB.getByRole('link', { name: 'Approvals' }).click();
    await pageB.getByRole('heading', { level: 1, name: 'Approvals' }).waitFor();
    const item = pageB.getByTestId(`approval-${approvalId}`);
    await item.getByText('Refund ₹150.00').waitFor();
    await item.getByText('asked by Asha Requester', { exact: false }).waitFor();
    await axe(pageB, 'approvals (to decide)');
    if (SHOTS) {
      mkdirSync('docs/console', { recursive: true });
      await pageB.screenshot({ path: 'docs/console/approvals.png' });
    }
    // At a phone's width the request and its decisions still fit.
    await pageB.setViewportSize({ width: 390, height: 844 });
    const overflow = await pageB.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert.ok(overflow <= 1, `the Approvals page overflows the phone's width by ${overflow}px`);
    await pageB.setViewportSize({ width: 1280, height: 800 });
    await item.getByRole('button', { name: 'Approve' }).click();
    await item.waitFor({ state: 'detached', timeout: 20_000 }); // no longer pending
    await goto(pageB, `/payments/${paymentId}`, /Payment/);
    await pageB.getByText(/₹150\.00\s+(succeeded|pending)/).waitFor({ timeout: 20_000 });
    await pageB.getByTestId('payment-status').filter({ hasText: 'partially refunded' }).waitFor({ timeout: 20_000 });
    const refunds = (await t.request('GET', `/v1/payments/${paymentId}/refunds`)).body.data;
    assert.equal(refunds.length, 1, 'the approved refund was made exactly once');
    assert.equal(refunds[0].amount, 15_000);
    // The decided request is listed as approved, by B.
    await goto(pageB, '/approvals', 'Approvals');
    await pageB.getByLabel('Show').selectOption('approved');
    await pageB.getByTestId(`approval-${approvalId}`).getByText('decided by Bala Approver', { exact: false }).waitFor();
  });

  test('a viewer sees no refund action and no approvals, and the API refuses both (403)', async () => {
    const v = await createOperator(t, { roles: ['support'], name: 'Vikram Viewer' });
    const p = await newPage();
    await signIn(p, v);
    await goto(p, `/payments/${paymentId}`, /Payment/);
    await p.getByText('Ledger entries').waitFor();
    assert.equal(await p.getByRole('form', { name: 'Refund' }).count(), 0);
    assert.equal(await p.getByRole('link', { name: 'Approvals' }).count(), 0);
    const refund = await apiFromPage(p, 'POST', `/v1/payments/${paymentId}/refunds`, { amount: 20_000 });
    assert.equal(refund.status, 403);
    const pay2 = (await t.request('GET', `/v1/payments/${paymentId}`)).body;
    assert.equal(pay2.refunded_amount, 15_000, 'nothing more was refunded');
  });

  test('an MFA reset asked on the Access page is approved by a second administrator', async () => {
    const target = await createOperator(t, { roles: ['support'], name: 'Lost Phone' });
    const tp = await newPage();
    await signIn(tp, target); // enrolled
    const s1 = await createOperator(t, { roles: ['security-admin'], name: 'Sec One' });
    const s2 = await createOperator(t, { roles: ['security-admin'], name: 'Sec Two' });
    const p1 = await newPage();
    await signIn(p1, s1);
    await goto(p1, '/access', 'Access');
    await p1.getByRole('button', { name: 'Reset MFA of Lost Phone' }).click();
    await p1.getByTestId(`mfa-reset-${target.id}`).waitFor();
    await axe(p1, 'access with a reset requested');
    assert.equal(await enrolled(target.id), true, 'not yet');

    const p2 = await newPage();
    await signIn(p2, s2);
    await goto(p2, '/approvals', 'Approvals');
    const item = p2.locator('li', { hasText: 'MFA reset of Lost Phone' });
    await item.waitFor();
    await axe(p2, 'approvals (MFA reset)');
    await item.getByRole('button', { name: 'Approve' }).click();
    await item.waitFor({ state: 'detached', timeout: 20_000 });
    assert.equal(await enrolled(target.id), false);
    await goto(p2, '/access', 'Access');
    await p2
      .getByRole('row', { name: /Lost Phone/ })
      .getByText('not yet')
      .waitFor();
  });

  test('no CSP violation or page error anywhere', async () => {
    for (const c of contexts) await c.close();
    assert.deepEqual(cspViolations, []);
  });
});
