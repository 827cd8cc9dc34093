import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { assertNoSeriousAxeViolations } from './helpers/axe.ts';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { middayIst, startTestApp, type TestApp } from './helpers/harness.ts';
import { createOperator } from './helpers/operators.ts';
import { base32Decode, totp } from '../src/modules/identity/index.ts';
import { cycleOf, parseCycleKey } from '../src/modules/settlement/index.ts';
import type { Clock } from '../src/platform/clock.ts';
import { ensureConsoleBuilt } from '../console/build.mjs';

// The console's reconciliation and settlement pages in a real browser (Debian's Chromium through
// playwright-core), against a running api with the embedded bank simulator: a day of payments,
// the simulator's settlement file with every discrepancy it can make, ingested; exceptions
// resolved one at a time (from the keyboard) and in bulk; a write-off asked for by operator A and
// approved by operator B in a second browser; the cycle, the payout and the reversals shown with
// the figures the API holds; a week later, what is overdue said so. axe-core checks every page,
// at 1280×800 and at a phone's width; a role without the permissions sees no entry and gets 403.
// CONSOLE_SCREENSHOTS=1 also writes docs/console/{reconciliation,settlement-*}.png.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env.CI && !process.env.CI_REQUIRE_CHROMIUM
    ? `Chromium not found at ${CHROMIUM} (apt-get install -y chromium); set CHROMIUM_PATH`
    : false;
const SHOTS = process.env.CONSOLE_SCREENSHOTS === '1';
const inr = new Intl.NumberFormat('en-IN', { style: 'currency', currency: 'INR', minimumFractionDigits: 2 });
const rupees = (paise: number) => inr.format(paise / 100);
const signed = (paise: number) => (paise > 0 ? '+' : '') + rupees(paise);

// Real time, moved on purpose: to noon IST first (a cycle is an Indian date: near midnight IST
// the day's payments and the cycle they were looked for in could fall on two dates), then past
// the cycle's cut-off, then a week on.
let offsetMs = middayIst().getTime() - Date.now();
const clock: Clock = { now: () => new Date(Date.now() + offsetMs) };

describe('reconciliation and settlement in the console (Chromium)', { skip }, () => {
  let t: TestApp;
  let browser: Browser;
  let ctxA: BrowserContext;
  let pageA: Page;
  let origin: string;
  let merchantId: string;
  let cycleKey: string;
  const secrets = new Map<string, Buffer>();
  const problems: string[] = [];
  const paid: { id: string; amount: number }[] = [];
  let declinedId: string;
  let report: { file_id: string; credit_paise: number; debit_paise: number; outcomes: Record<string, number> };
  let opA: { email: string; password: string };
  let opB: { email: string; password: string };

  async function openContext(width = 1280, height = 800) {
    const c = await browser.newContext({ viewport: { width, height }, serviceWorkers: 'block' });
    c.on('request', (r) => {
      if (!r.url().startsWith(origin) && !/^(data|blob):/.test(r.url())) problems.push('foreign request ' + r.url());
    });
    return c;
  }
  async function watch(p: Page) {
    p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) problems.push(m.text());
    });
    p.on('pageerror', (e) => problems.push('page error: ' + e.message));
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
  /** Password, then TOTP (enrolling at the first sign-in, with the app's clock). */
  async function signIn(p: Page, who: { email: string; password: string }) {
    await p.goto(origin + '/console/');
    await p.getByLabel('Email').fill(who.email);
    await p.getByLabel('Password').fill(who.password);
    await p.getByRole('button', { name: 'Continue' }).click();
    if (!secrets.has(who.email)) {
      const text = await p.locator('.enrol .mono').textContent({ timeout: 20_000 });
      secrets.set(who.email, base32Decode(text!.trim()));
    }
    await p.getByLabel('Authentication code').fill(totp(secrets.get(who.email)!, clock.now()));
    await p.getByRole('button', { name: 'Sign in' }).click();
    // First sign-in: the recovery codes, shown once; later ones go straight to the console.
    const codes = p.getByTestId('recovery-codes');
    const nav = p.getByRole('navigation', { name: 'Console' });
    // The losing wait is caught: it times out later, unobserved.
    const quiet = (w: Promise<void>) => w.catch(() => undefined);
    await Promise.race([quiet(codes.waitFor()), quiet(nav.waitFor())]);
    if (await codes.isVisible()) await p.getByRole('button', { name: /continue/ }).click();
    await nav.waitFor();
  }
  /** The queue's row of one exception kind (each kind appears once in this test's file). */
  const rowOf = (p: Page, text: string) =>
    p
      .getByRole('region', { name: /Reconciliation exceptions/ })
      .locator('tbody tr')
      .filter({ hasText: text });

  before(async () => {
    await ensureConsoleBuilt({ log: () => {} });
    // One settlement cycle a day, cut off ten minutes from now (IST): today's payments are in it.
    const cutoff = new Date(clock.now().getTime() + 10 * 60_000 + 330 * 60_000).toISOString().slice(11, 16);
    t = await startTestApp({
      clock,
      simulator: { clock },
      env: { RATE_LIMIT_ENABLED: 'false', SETTLEMENT_CYCLE_CUTOFFS: cutoff },
    });
    origin = t.url.replace('localhost', '127.0.0.1');
    const seeded = await t.seedMerchant('Ledger Lane Stores');
    merchantId = seeded.merchant.id;
    const pay = async (amount: number, outcome: 'success' | 'decline') => {
      const r = await t.request('POST', '/v1/payments', {
        terminal_id: seeded.terminal.id,
        amount,
        currency: 'INR',
        method: 'upi_qr',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await t.payQr(r.body.upi_uri, 'ravi.kumar@okaxis', outcome);
      const want = outcome === 'success' ? 'succeeded' : 'failed';
      const done = await t.eventually(async () => {
        const g = await t.request('GET', `/v1/payments/${r.body.id}`);
        return g.body.status === want ? g.body : undefined;
      }, 15_000);
      assert.ok(done, `payment ${want}`);
      return { id: r.body.id as string, amount };
    };
    // A day of payments: six paid, one declined at the bank (which its file will show as paid).
    for (const amount of [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]) paid.push(await pay(amount, 'success'));
    declinedId = (await pay(7_500, 'decline')).id;

    const cutoffs = t.app.services.settlement.cycles.cutoffs;
    cycleKey = cycleOf(clock.now(), cutoffs).key;
    const sim = await fetch(
      `${t.url}/sim/v1/settlement-files?bank=SIMBANK&cycle=${cycleKey}&missing=1&extra=1&amount_off=1&duplicate=1&late_success=1`,
    );
    assert.equal(sim.status, 200);
    const file = (await sim.json()) as { file_name: string; content: string };
    const ing = await t.request('POST', '/v1/recon/files', {
      bank_code: 'SIMBANK',
      file_name: file.file_name,
      content: file.content,
    });
    assert.equal(ing.status, 201, JSON.stringify(ing.body));
    report = ing.body;
    assert.deepEqual(report.outcomes, { matched: 4, amount_mismatch: 1, duplicate: 1, unknown: 1, late_success: 1 });

    // The merchant has ₹50 in dispute: kept back from its payout. Then past the cut-off, the cycle closes.
    const terms = await t.request('PATCH', `/v1/settlement/merchants/${merchantId}/terms`, { disputed_hold: 5_000 });
    assert.equal(terms.status, 200, JSON.stringify(terms.body));
    offsetMs = parseCycleKey(cycleKey, cutoffs)!.endsAt.getTime() + 60_000 - Date.now();
    const closed = await t.request('POST', `/v1/settlement/cycles/${cycleKey}/close`);
    assert.equal(closed.status, 200, JSON.stringify(closed.body));

    opA = await createOperator(t, { roles: ['reconciliation', 'settlement'], name: 'Anita Reconciler' });
    opB = await createOperator(t, { roles: ['reconciliation', 'settlement'], name: 'Bala Approver' });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    ctxA = await openContext();
    pageA = await ctxA.newPage();
    await watch(pageA);
    await signIn(pageA, opA);
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  test('the navigation lists both pages; the overview shows the open exceptions against their deadlines', async () => {
    const nav = pageA.getByRole('navigation', { name: 'Console' });
    await nav.getByRole('link', { name: 'Reconciliation' }).waitFor();
    await nav.getByRole('link', { name: 'Settlement' }).waitFor();
    await goto(pageA, '/', 'Overview');
    const card = pageA.getByTestId('recon-aging');
    await card.waitFor();
    // amount over, duplicate, unknown (the bank's lines) and the payment missing from the file;
    // the late success was sent for reversal at once. All opened today: T + 5 is days away.
    await pageA.getByTestId('aging-later').filter({ hasText: '4' }).waitFor();
    assert.equal(await pageA.getByTestId('aging-overdue').textContent(), '0');
    assert.equal(await pageA.getByTestId('aging-due_24h').textContent(), '0');
    await axe(pageA, 'overview with the exceptions card');
  });

  test('the exception queue: files and runs with their counts; filters; one exception resolved from the keyboard', async () => {
    await goto(pageA, '/reconciliation', 'Reconciliation');
    for (const kind of ['amount over', 'duplicate', 'unknown', 'missing']) await rowOf(pageA, kind).first().waitFor();
    assert.equal(await pageA.locator('tbody').first().locator('tr').count(), 4);
    // Each exception's age and the time left to its deadline (end of T + 5, IST).
    assert.match((await rowOf(pageA, 'duplicate').textContent())!, /\d+ d( \d+ h)? left/);
    // Bank files and runs, with their counts.
    const fileRow = pageA.getByRole('region', { name: /Bank settlement files/ }).locator('tbody tr');
    await fileRow.filter({ hasText: cycleKey }).waitFor();
    const ft = (await fileRow.first().textContent())!;
    assert.ok(ft.includes(rupees(report.credit_paise)), ft);
    assert.match(ft, /matched 4/);
    assert.match(ft, /duplicate 1/);
    await pageA
      .getByRole('region', { name: /Matching runs/ })
      .locator('tbody tr')
      .first()
      .waitFor();
    await axe(pageA, 'reconciliation');
    await shoot(pageA, 'reconciliation');

    // Filters: by kind, and by bank (typed, submitted with Enter).
    await pageA.getByLabel('Kind').selectOption('duplicate');
    await pageA.getByLabel('Bank', { exact: true }).focus();
    await pageA.keyboard.type('simbank');
    await pageA.keyboard.press('Enter');
    await pageA.waitForFunction(() => document.querySelector('tbody')!.querySelectorAll('tr').length === 1);
    await rowOf(pageA, 'duplicate').waitFor();
    await pageA.getByLabel('Kind').selectOption('late_success');
    await pageA.getByRole('combobox', { name: /^Status/ }).selectOption('resolved');
    await pageA.getByRole('button', { name: 'Search' }).click();
    await rowOf(pageA, 'late success').filter({ hasText: 'Reverse' }).waitFor();
    await pageA.getByLabel('Deadline').selectOption('overdue');
    await pageA.getByRole('button', { name: 'Search' }).click();
    await pageA.getByText('No exceptions match.').waitFor();
    await pageA.getByRole('button', { name: 'Clear' }).click();
    await rowOf(pageA, 'unknown').waitFor();

    // The duplicate debit: the customer is refunded, all from the keyboard.
    await rowOf(pageA, 'duplicate')
      .getByRole('button', { name: /^Resolve/ })
      .focus();
    await pageA.keyboard.press('Enter');
    const form = pageA.getByRole('form', { name: /^Resolve exception rce_/ });
    await form.waitFor();
    await form.getByLabel('Resolution').focus();
    await pageA.keyboard.press('ArrowDown'); // accept → refund the customer
    assert.equal(await form.getByLabel('Resolution').inputValue(), 'refund_customer');
    await form.getByLabel('Reason').focus();
    await pageA.keyboard.type('customer debited twice');
    await pageA.keyboard.press('Tab');
    assert.equal(await pageA.evaluate(() => document.activeElement?.textContent), 'Submit resolution');
    await pageA.keyboard.press('Enter');
    await pageA.getByTestId('recon-note').filter({ hasText: 'resolved, Refund the customer' }).waitFor();
    await pageA.waitForFunction(() => !document.querySelector('tbody')!.textContent!.includes('duplicate'));
    const dup = await t.request('GET', '/v1/recon/exceptions?kind=duplicate&limit=5');
    assert.equal(dup.body.data[0].status, 'resolved');
    assert.equal(dup.body.data[0].resolution, 'refund_customer');
    assert.ok(dup.body.data[0].reversal_id, 'a reversal was asked of settlement');
  });

  test('bulk: the selected exceptions are resolved in one go', async () => {
    await goto(pageA, '/reconciliation', 'Reconciliation');
    await rowOf(pageA, 'missing').getByRole('checkbox').check();
    await rowOf(pageA, 'amount over').getByRole('checkbox').check();
    const bar = pageA.getByRole('form', { name: 'Resolve the selected exceptions' });
    await bar.getByText('2 selected').waitFor();
    await bar.getByLabel('Reason for all').fill('bank confirmed, our record stands');
    await bar.getByRole('button', { name: 'Apply to selected' }).click();
    await bar.getByRole('alert').filter({ hasText: 'comma' }).waitFor(); // the bulk format has no quoting
    await bar.getByLabel('Reason for all').fill('bank confirmed; our record stands');
    await bar.getByRole('button', { name: 'Apply to selected' }).click();
    await pageA.getByTestId('recon-note').filter({ hasText: '2 exceptions: 2 resolved' }).waitFor();
    await pageA.waitForFunction(() => document.querySelector('tbody')!.querySelectorAll('tr').length === 1);
    await rowOf(pageA, 'unknown').waitFor();
  });

  test('four eyes: a write-off asked for by A is pending for B, who approves it in another browser', async () => {
    const row = rowOf(pageA, 'unknown');
    await row.getByRole('button', { name: /^Resolve/ }).click();
    const form = pageA.getByRole('form', { name: /^Resolve exception rce_/ });
    await form.getByLabel('Resolution').selectOption('write_off');
    await form.getByLabel('Reason').fill('bank error, noted with the bank');
    await form.getByRole('button', { name: 'Submit resolution' }).click();
    await pageA.getByTestId('recon-note').filter({ hasText: 'waits for a second operator' }).waitFor();
    await row.filter({ hasText: 'pending approval' }).waitFor();
    await row.getByText('asked by you').waitFor();
    await row.getByText('waiting for another operator').waitFor();
    assert.equal(await row.getByRole('button', { name: /^Approve/ }).count(), 0, 'the requester has no Approve');
    const id = (await row.locator('.mono').first().getAttribute('title'))!;
    // The server refuses the requester too: A's own session and CSRF token, straight at the API.
    const own = await pageA.evaluate(async (exceptionId) => {
      const s = await (await fetch('/v1/auth/session')).json();
      const r = await fetch(`/v1/recon/exceptions/${exceptionId}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token },
        body: JSON.stringify({ decision: 'approve' }),
      });
      return r.status;
    }, id);
    assert.equal(own, 403);

    const ctxB = await openContext();
    try {
      const pageB = await ctxB.newPage();
      await watch(pageB);
      await signIn(pageB, opB);
      await goto(pageB, '/reconciliation', 'Reconciliation');
      await pageB.getByRole('combobox', { name: /^Status/ }).selectOption('pending_approval');
      await pageB.getByRole('button', { name: 'Search' }).click();
      const rowB = rowOf(pageB, 'unknown').filter({ hasText: 'Write off, asked by' });
      await rowB.waitFor();
      await axe(pageB, 'reconciliation (pending approval)');
      await rowB.getByRole('button', { name: /^Approve/ }).click();
      await pageB.getByTestId('recon-note').filter({ hasText: 'approved, Write off' }).waitFor();
      await pageB.getByText('No exceptions match.').waitFor();
    } finally {
      await ctxB.close();
    }
    const done = await t.request('GET', `/v1/recon/exceptions/${id}`);
    assert.equal(done.body.status, 'resolved');
    assert.equal(done.body.resolution, 'write_off');
    assert.notEqual(done.body.approved_by, done.body.requested_by);
  });

  test('settlement: the cycle per bank, expected against the bank file, and the difference', async () => {
    const api = (await t.request('GET', `/v1/settlement/cycles/${cycleKey}`)).body;
    const sb = api.banks.find((b: any) => b.bank_code === 'SIMBANK');
    // Expected credit: the six paid, and the late success's money (owed back, so received).
    const paidTotal = paid.reduce((a, p) => a + p.amount, 0);
    assert.equal(sb.expected.credit, paidTotal + 7_500);
    assert.equal(sb.file.credit, report.credit_paise);
    assert.equal(sb.status, 'difference');
    assert.equal(sb.difference.credit, report.credit_paise - sb.expected.credit);

    await pageA.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Settlement' }).click();
    await pageA.getByRole('heading', { level: 1, name: 'Settlement' }).waitFor();
    await pageA.getByRole('combobox', { name: 'Bank' }).selectOption('SIMBANK');
    const row = pageA
      .getByRole('region', { name: /Settlement cycles per bank/ })
      .locator('tbody tr')
      .filter({ hasText: cycleKey });
    await row.waitFor();
    assert.equal(await row.count(), 1, 'one row: the bank filter applies');
    const text = (await row.textContent())!;
    for (const s of [rupees(sb.expected.credit), rupees(sb.file.credit), signed(sb.difference.credit), 'difference'])
      assert.ok(text.includes(s), `${s} in ${text}`);
    const diffs = pageA
      .getByRole('region', { name: /Open differences/ })
      .locator('tbody tr')
      .filter({ hasText: cycleKey });
    await diffs.filter({ hasText: signed(sb.difference.credit) }).waitFor();
    await axe(pageA, 'settlement cycles');
    await shoot(pageA, 'settlement-cycles');
  });

  test('settlement: the payout and its hold; reversals with their deadlines', async () => {
    const po = (await t.request('GET', `/v1/settlement/payouts?merchant_id=${merchantId}&cycle_key=${cycleKey}`)).body
      .data[0];
    const paidTotal = paid.reduce((a, p) => a + p.amount, 0);
    assert.deepEqual(
      { payments: po.payments, count: po.payments_count, held: po.held, net: po.net, status: po.status },
      { payments: paidTotal, count: 6, held: 5_000, net: paidTotal - 5_000, status: 'scheduled' },
    );
    await pageA.getByRole('link', { name: 'Payouts' }).click();
    await pageA.getByLabel('Merchant').fill(merchantId);
    await pageA.getByRole('button', { name: 'Search' }).click();
    const row = pageA.locator('tbody tr').filter({ hasText: cycleKey });
    await row.waitFor();
    const text = (await row.textContent())!;
    for (const s of [`${rupees(paidTotal)} (6)`, rupees(5_000), rupees(paidTotal - 5_000), 'scheduled'])
      assert.ok(text.includes(s), `${s} in ${text}`);
    await pageA.getByLabel('Status').selectOption('paid');
    await pageA.getByRole('button', { name: 'Search' }).click();
    await pageA.getByText('No payouts match.').waitFor();
    await axe(pageA, 'settlement payouts');
    await shoot(pageA, 'settlement-payouts');

    await pageA.getByRole('link', { name: 'Reversals' }).click();
    const late = pageA.locator('tbody tr').filter({ hasText: 'late success' });
    await late.waitFor();
    assert.ok((await late.textContent())!.includes(rupees(7_500)));
    assert.match((await late.textContent())!, /scheduled.*\d+ d( \d+ h)? left/);
    await pageA.locator('tbody tr').filter({ hasText: 'duplicate debit' }).waitFor();
    assert.equal(await pageA.locator('[data-overdue="1"]').count(), 0);
    await axe(pageA, 'settlement reversals');
    await shoot(pageA, 'settlement-reversals');
  });

  test('a week later: the reversals past T + 5 are overdue and said so; the exceptions were resolved in time', async () => {
    offsetMs += 7 * 86_400_000;
    // The session went idle meanwhile: sign in again (TOTP at the new time).
    await signIn(pageA, opA);
    await goto(pageA, '/settlement/reversals', 'Settlement');
    await pageA.locator('tbody tr').filter({ hasText: 'late success' }).filter({ hasText: 'overdue' }).waitFor();
    assert.equal(await pageA.locator('[data-overdue="1"]').count(), 2);
    await pageA.getByLabel('Overdue only').check();
    await pageA.waitForFunction(() => document.querySelector('tbody')!.querySelectorAll('tr').length === 2);
    await axe(pageA, 'settlement reversals (overdue)');
    // The resolved exceptions were resolved in time; the queue's overdue filter finds none open.
    await goto(pageA, '/reconciliation', 'Reconciliation');
    await pageA.getByRole('combobox', { name: /^Status/ }).selectOption('resolved');
    await pageA.getByRole('button', { name: 'Search' }).click();
    await rowOf(pageA, 'duplicate').getByText('in time').waitFor();
  });

  test("at a phone's width the pages fit", async () => {
    const phone = await openContext(390, 844);
    try {
      await phone.addCookies(await ctxA.cookies());
      const p = await phone.newPage();
      await watch(p);
      for (const [path, h] of [
        ['/', 'Overview'],
        ['/reconciliation', 'Reconciliation'],
        ['/settlement', 'Settlement'],
        ['/settlement/payouts', 'Settlement'],
        ['/settlement/reversals', 'Settlement'],
      ] as const) {
        await goto(p, path, h);
        await p.locator('tbody tr').first().waitFor();
        const overflow = await p.evaluate(
          () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
        );
        // Name the first element that sticks out, so a failure says where.
        const culprit = await p.evaluate(() => {
          const w = document.documentElement.clientWidth;
          const out = [...document.querySelectorAll('body *')].find((e) => e.getBoundingClientRect().right > w + 1);
          return out ? `${out.tagName}.${out.className} ${out.textContent?.slice(0, 60)}` : '';
        });
        assert.ok(overflow <= 1, `${path} overflows the phone's width by ${overflow}px: ${culprit}`);
        await axe(p, `${path} at 390 px`);
        if (SHOTS)
          await p.screenshot({
            path: `docs/console/phone-${path === '/' ? 'overview-recon' : path.slice(1).replace('/', '-')}.png`,
          });
      }
    } finally {
      await phone.close();
    }
  });

  test('a role without the permissions: no navigation entry, "Not available", and 403 from the API', async () => {
    const viewer = await createOperator(t, { roles: ['support'], name: 'Vikram Viewer' });
    const vctx = await openContext();
    try {
      const p = await vctx.newPage();
      await watch(p);
      await signIn(p, viewer);
      const nav = p.getByRole('navigation', { name: 'Console' });
      await nav.getByRole('link', { name: 'Payments' }).waitFor();
      assert.equal(await nav.getByRole('link', { name: 'Reconciliation' }).count(), 0);
      assert.equal(await nav.getByRole('link', { name: 'Settlement' }).count(), 0);
      await goto(p, '/', 'Overview');
      assert.equal(await p.getByTestId('recon-aging').count(), 0);
      for (const path of ['/reconciliation', '/settlement/payouts']) {
        await p.goto(origin + '/console' + path);
        await p.getByRole('heading', { name: 'Not available' }).waitFor();
      }
      const statuses = await p.evaluate(async () => {
        const s = await (await fetch('/v1/auth/session')).json();
        const h = { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token };
        const out: number[] = [];
        for (const u of [
          '/v1/recon/queue',
          '/v1/recon/aging',
          '/v1/recon/exceptions',
          '/v1/settlement/cycles',
          '/v1/settlement/payouts',
          '/v1/settlement/reversals',
        ])
          out.push((await fetch(u)).status);
        out.push(
          (
            await fetch('/v1/recon/exceptions/bulk-resolve', {
              method: 'POST',
              headers: h,
              body: JSON.stringify({ csv: 'x' }),
            })
          ).status,
        );
        return out;
      });
      assert.deepEqual(statuses, [403, 403, 403, 403, 403, 403, 403]);
    } finally {
      await vctx.close();
    }
  });

  test('no request left the origin, no CSP violation, no page error', () => {
    assert.deepEqual(problems, []);
    void declinedId;
  });
});
