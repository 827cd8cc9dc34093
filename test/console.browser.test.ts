import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { assertNoSeriousAxeViolations } from './helpers/axe.ts';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import jsQRModule from 'jsqr';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { call, createOperator, GOOD_PASSWORD } from './helpers/operators.ts';
import { base32Decode, totp, SESSION_COOKIE } from '../src/modules/identity/index.ts';
import { ensureConsoleBuilt } from '../console/build.mjs';

// The operator console in a real browser (Debian's Chromium through playwright-core), against a
// running api with the embedded bank simulator: sign-in with TOTP enrolment, every page, a QR
// payment made on the virtual terminal and paid by decoding the QR it drew, a refund from the
// payment's page, a proof check in the browser, and a viewer who neither sees nor can make a
// refund. axe-core checks every page; the page's CSP stays on throughout (nothing is bypassed).
// CONSOLE_SCREENSHOTS=1 also writes docs/console/*.png at 1280×800 and at a phone's width.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env.CI && !process.env.CI_REQUIRE_CHROMIUM
    ? `Chromium not found at ${CHROMIUM} (apt-get install -y chromium); set CHROMIUM_PATH`
    : false;
const SHOTS = process.env.CONSOLE_SCREENSHOTS === '1';
// jsqr is CommonJS: its function is module.exports (and, typed, its default export).
const jsQR = ((jsQRModule as unknown as { default?: typeof jsQRModule.default }).default ??
  jsQRModule) as typeof jsQRModule.default;

describe('the operator console in Chromium', { skip }, () => {
  let t: TestApp;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let origin: string;
  let terminalId: string;
  let merchantId: string;
  let paymentId: string;
  const foreignRequests: string[] = [];
  const cspViolations: string[] = [];

  async function openContext(width = 1280, height = 800) {
    const c = await browser.newContext({ viewport: { width, height }, serviceWorkers: 'block' });
    c.on('request', (r) => {
      if (!r.url().startsWith(origin) && !r.url().startsWith('data:') && !r.url().startsWith('blob:'))
        foreignRequests.push(r.url());
    });
    return c;
  }
  async function watch(p: Page) {
    p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    p.on('pageerror', (e) => cspViolations.push('page error: ' + e.message));
  }
  const axe = assertNoSeriousAxeViolations;
  async function shoot(p: Page, name: string) {
    if (!SHOTS) return;
    mkdirSync('docs/console', { recursive: true });
    await p.evaluate(() => window.scrollTo(0, 0));
    await p.screenshot({ path: `docs/console/${name}.png`, fullPage: false });
  }
  async function goto(p: Page, path: string, heading: string | RegExp) {
    await p.goto(origin + '/console' + path);
    await p.getByRole('heading', { level: 1, name: heading }).waitFor();
  }
  async function signInAndEnrol(p: Page, email: string, password: string) {
    await p.goto(origin + '/console/');
    await p.getByLabel('Email').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Continue' }).click();
    const secretText = await p.locator('.enrol .mono').textContent({ timeout: 20_000 });
    const secret = base32Decode(secretText!.trim());
    await p.getByLabel('Authentication code').fill(totp(secret, new Date()));
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByTestId('recovery-codes').waitFor();
    const codes = await p.getByTestId('recovery-codes').locator('li').count();
    assert.equal(codes, 10, 'ten recovery codes are shown once, at enrolment');
    await p.getByRole('button', { name: /continue/ }).click();
  }

  before(async () => {
    await ensureConsoleBuilt({ log: () => {} });
    t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
    origin = t.url.replace('localhost', '127.0.0.1');
    const seeded = await t.seedMerchant('Console Café');
    terminalId = seeded.terminal.id;
    merchantId = seeded.merchant.id;
    // Some traffic for the overview: two paid payments through the simulator, one left pending.
    for (const amount of [14900, 9900, 5000]) {
      const pay = await t.request('POST', '/v1/payments', {
        terminal_id: terminalId,
        amount,
        currency: 'INR',
        method: 'upi_qr',
      });
      if (amount !== 5000) await t.payQr(pay.body.upi_uri);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    ctx = await openContext();
    page = await ctx.newPage();
    await watch(page);
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  test('an operator signs in with a password and enrols TOTP at first sign-in', async () => {
    const op = await createOperator(t, {
      roles: ['support', 'cashier', 'refunds', 'merchant-admin', 'security-admin', 'auditor'],
      name: 'Asha Operator',
    });
    await signInAndEnrol(page, op.email, op.password);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    const cookies = await ctx.cookies();
    const session = cookies.find((c) => c.name === SESSION_COOKIE);
    assert.ok(session, 'the session cookie is set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
  });

  test('overview: the charts draw from the stats endpoint', async () => {
    await goto(page, '/', 'Overview');
    await page.locator('.chart-box[data-drawn="1"] canvas').first().waitFor();
    assert.equal(await page.getByTestId('tile-payments').textContent(), '3');
    assert.equal(await page.getByTestId('tile-pending').textContent(), '1');
    assert.equal(await page.getByTestId('tile-terminals').textContent(), '1');
    await page
      .getByText(/SIMBANK|[A-Z]{4,}/)
      .first()
      .waitFor();
    await axe(page, 'overview');
    await shoot(page, 'overview');
  });

  test('virtual terminal: the QR it draws carries the UPI link; paying it shows "Paid"', async () => {
    await goto(page, '/virtual-terminal', 'Virtual terminal');
    await page.getByRole('combobox', { name: 'Terminal' }).selectOption(terminalId);
    await page.getByLabel('Amount (₹)').fill('149.50');
    await page.getByRole('button', { name: 'Show QR' }).click();
    const canvas = page.getByTestId('upi-qr');
    await canvas.waitFor();
    await page.waitForFunction(
      () => ((document.querySelector('[data-testid="upi-qr"]') as HTMLCanvasElement | null)?.width ?? 0) > 100,
    );
    const img = await canvas.evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height);
      return { w: d.width, h: d.height, data: Array.from(d.data) };
    });
    const decoded = jsQR(Uint8ClampedArray.from(img.data), img.w, img.h);
    assert.ok(decoded, 'the rendered QR decodes');
    const link = new URL(decoded.data);
    assert.equal(link.protocol, 'upi:');
    assert.equal(link.searchParams.get('am'), '149.50');
    assert.equal(link.searchParams.get('cu'), 'INR');
    assert.match(link.searchParams.get('tr') ?? '', /^TP[0-9A-F]{32}$/);
    assert.ok(link.searchParams.get('pa'));
    await axe(page, 'virtual terminal (QR)');
    await shoot(page, 'virtual-terminal');
    // The customer scans and pays: the simulator plays their bank, with the link from the image.
    const paid = await t.payQr(decoded.data);
    assert.ok(paid.status < 300, JSON.stringify(paid.body));
    await page.getByTestId('vt-result').waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId('vt-result').textContent(), 'Paid');
    paymentId = 'pay_' + link.searchParams.get('tr')!.slice(2).toLowerCase();
  });

  test('payments: list, filter and CSV export of the current filter', async () => {
    await goto(page, '/payments', 'Payments');
    await page.locator(`a[href="/console/payments/${paymentId}"]`).waitFor();
    await page.getByLabel('Status').selectOption('pending');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForFunction(
      () => document.querySelectorAll('tbody tr').length === 1 && !document.body.textContent!.includes('Loading'),
    );
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export CSV' }).click();
    const file = await (await download).path();
    const lines = readFileSync(file, 'utf8').trim().split('\r\n');
    assert.equal(lines.length, 2, 'header + the one pending payment');
    assert.match(lines[0], /^id,created_at,/);
    assert.match(lines[1], /"pending"/);
    await axe(page, 'payments');
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.locator(`a[href="/console/payments/${paymentId}"]`).waitFor();
    await shoot(page, 'payments');
  });

  test('payment detail: timeline, ledger entries, audit records with a proof checked in the browser, and a refund', async () => {
    await t.app.services.audit.seal();
    await t.app.services.audit.signHead(true);
    await goto(page, `/payments/${paymentId}`, /Payment ₹149\.50/);
    await page.getByText('pending → succeeded').waitFor();
    await page.getByText('payment.succeeded · INR').waitFor();
    await page
      .getByRole('button', { name: /^Check proof of aud_/ })
      .first()
      .click();
    const result = page.getByTestId('proof-result').first();
    await result.waitFor();
    assert.match((await result.textContent())!, /^✓ Included at position \d+ of \d+/);
    await axe(page, 'payment detail');
    await page.getByLabel('Amount (₹)').fill('49.50');
    await page.getByRole('button', { name: 'Refund', exact: true }).click();
    await page.getByText(/Refund ₹49\.50: (succeeded|pending)/).waitFor();
    await page.getByTestId('payment-status').filter({ hasText: 'partially refunded' }).waitFor({ timeout: 20_000 });
    await page.getByText('refund.succeeded · INR').waitFor({ timeout: 20_000 });
    await shoot(page, 'payment-detail');
  });

  test('terminals, rewards, access, audit, keys and compliance pages work and pass axe', async () => {
    await goto(page, '/terminals', 'Terminals');
    await page.getByText(terminalId).waitFor();
    await page.getByRole('button', { name: 'Certificates and violations' }).first().click();
    await page.getByTestId('terminal-security').getByText('Recent protocol violations').waitFor();
    await axe(page, 'terminals');
    await shoot(page, 'terminals');

    await goto(page, '/rewards', 'Rewards');
    await axe(page, 'rewards');
    await shoot(page, 'rewards');

    await goto(page, '/access', 'Access');
    await page.getByRole('heading', { name: 'API keys' }).waitFor();
    await page.getByLabel('Name', { exact: true }).last().fill('console test key');
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = await page.getByTestId('new-key').textContent();
    assert.match(key!, /^tp_/);
    const withKey = await fetch(t.url + '/v1/payments?limit=1', { headers: { authorization: `Bearer ${key}` } });
    assert.equal(withKey.status, 200, 'the key shown once works');
    await page.getByRole('heading', { name: 'Access review' }).waitFor();
    assert.match(
      (await page.getByTestId('access-review-summary').textContent())!,
      /\d+ operator accounts, \d+ active API keys/,
    );
    await axe(page, 'access');
    await shoot(page, 'access');

    await goto(page, '/audit', 'Audit trail');
    await page.getByTestId('tree-head').waitFor();
    await axe(page, 'audit');
    await shoot(page, 'audit');

    await goto(page, '/keys', 'Keys and compliance');
    await page.getByTestId('kek').waitFor();
    await page.getByRole('button', { name: 'Generate report' }).click();
    const summary = await page.getByTestId('report-summary').textContent({ timeout: 30_000 });
    assert.match(summary!, /\d+ passed, \d+ failed/);
    await page.getByRole('link', { name: /Download the signed report/ }).waitFor();
    await axe(page, 'keys');
    await shoot(page, 'keys');
  });

  test('from the keyboard: the skip link, the navigation and a search work without a mouse', async () => {
    await goto(page, '/', 'Overview');
    await page.locator('body').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    await page.keyboard.press('Tab'); // Overview
    await page.keyboard.press('Tab'); // Payments
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Payments');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Payments' }).waitFor();
    await page.getByLabel('Terminal').focus();
    await page.keyboard.type(terminalId);
    await page.keyboard.press('Enter'); // submits the filter form
    await page.locator(`a[href="/console/payments/${paymentId}"]`).waitFor();
  });

  test("at a phone's width every page still fits", async () => {
    const phone = await openContext(390, 844);
    try {
      await phone.addCookies((await ctx.cookies()).map((c) => ({ ...c })));
      const p = await phone.newPage();
      await watch(p);
      for (const [path, h, name] of [
        ['/', 'Overview', 'overview'],
        ['/payments', 'Payments', 'payments'],
        [`/payments/${paymentId}`, /Payment/, 'payment-detail'],
        ['/virtual-terminal', 'Virtual terminal', 'virtual-terminal'],
        ['/terminals', 'Terminals', 'terminals'],
        ['/access', 'Access', 'access'],
        ['/audit', 'Audit trail', 'audit'],
        ['/rewards', 'Rewards', 'rewards'],
      ] as const) {
        await goto(p, path, h);
        // Nothing wider than the screen except inside a scrolling table wrapper.
        const overflow = await p.evaluate(
          () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
        );
        assert.ok(overflow <= 1, `${path} overflows the phone's width by ${overflow}px`);
        if (SHOTS) {
          await p.evaluate(() => window.scrollTo(0, 0));
          await p.screenshot({ path: `docs/console/phone-${name}.png` });
        }
      }
    } finally {
      await phone.close();
    }
  });

  test('a viewer sees no refund action, cannot reach the pages they lack, and the server refuses the refund (403)', async () => {
    const viewer = await createOperator(t, { roles: ['support'], name: 'Vikram Viewer' });
    const vctx = await openContext();
    try {
      const p = await vctx.newPage();
      await watch(p);
      await signInAndEnrol(p, viewer.email, viewer.password);
      await goto(p, `/payments/${paymentId}`, /Payment/);
      await p.getByText('Ledger entries').waitFor();
      assert.equal(await p.getByRole('form', { name: 'Refund' }).count(), 0);
      assert.equal(await p.getByRole('button', { name: 'Refund', exact: true }).count(), 0);
      assert.equal(await p.getByRole('link', { name: 'Virtual terminal' }).count(), 0);
      assert.equal(await p.getByRole('link', { name: 'Audit' }).count(), 0);
      await p.goto(origin + '/console/virtual-terminal');
      await p.getByRole('heading', { name: 'Not available' }).waitFor();
      // The server enforces it too: the viewer's own session and CSRF token, straight at the API.
      const status = await p.evaluate(async (id) => {
        const s = await (await fetch('/v1/auth/session')).json();
        const r = await fetch(`/v1/payments/${id}/refunds`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token },
          body: JSON.stringify({ amount: 100 }),
        });
        return r.status;
      }, paymentId);
      assert.equal(status, 403);
    } finally {
      await vctx.close();
    }
  });

  test('no request left the origin and the CSP was never violated', () => {
    assert.deepEqual(foreignRequests, []);
    assert.deepEqual(cspViolations, []);
    void GOOD_PASSWORD;
    void call;
    void merchantId;
  });
});
