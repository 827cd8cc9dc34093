import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { assertNoSeriousAxeViolations } from './helpers/axe.ts';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import type { MqttClient } from 'mqtt';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { startAppGateway, type TestGateway } from './helpers/terminals.ts';
import { createOperator } from './helpers/operators.ts';
import { base32Decode, totp } from '../src/modules/identity/index.ts';
import { ensureConsoleBuilt } from '../console/build.mjs';
import { connectTerminal, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';
import { issueMqttSecret } from '../src/modules/terminals/index.ts';

// The console's Terminals page against a real gateway (embedded broker): a terminal connects
// through the SDK and the page shows it online with a last-seen time; its socket dies and the page
// shows it offline; the Connection filter finds it; the Overview counts it while it is online.
// axe-core finds no serious or critical violation. Debian's Chromium through playwright-core, the
// page's CSP on; skipped (saying why) without Chromium unless CI requires it.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env.CI && !process.env.CI_REQUIRE_CHROMIUM
    ? `Chromium not found at ${CHROMIUM} (apt-get install -y chromium); set CHROMIUM_PATH`
    : false;

describe('console: terminals online and offline', { skip, timeout: 120_000 }, () => {
  let t: TestApp;
  let gw: TestGateway;
  let browser: Browser;
  let page: Page;
  let origin: string;
  let terminalId: string;
  let storeId: string;
  let term: TerminalClient | undefined;
  const pageErrors: string[] = [];

  const axe = assertNoSeriousAxeViolations;
  const row = () => page.getByRole('row').filter({ hasText: terminalId });
  /**
   * Waits for what the page shows after refreshing itself (its list refetches every 10 s): the
   * page's clock (Playwright's, installed before the console loaded) is moved on by the 10 s each
   * second instead of waiting them out, within the 20 s the test allowed before. No reload and no
   * navigation: the page's own timer fetches.
   */
  async function afterRefresh(what: Locator): Promise<void> {
    const end = Date.now() + 20_000;
    for (;;) {
      try {
        await what.waitFor({ timeout: 1_000 });
        return;
      } catch (e) {
        if (Date.now() > end) throw e;
      }
      await page.clock.fastForward(10_000);
    }
  }

  before(async () => {
    await ensureConsoleBuilt({ log: () => {} });
    t = await startTestApp({ env: { RATE_LIMIT_ENABLED: 'false' } });
    gw = await startAppGateway(t);
    origin = t.url.replace('localhost', '127.0.0.1');
    const seeded = await t.seedMerchant('Presence Kirana');
    terminalId = seeded.terminal.id;
    storeId = seeded.store.id;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
    page = await ctx.newPage();
    // Fake timers in the page (they run at the real pace until moved on, see afterRefresh).
    await page.clock.install();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
    });

    // Sign in (TOTP enrolment at the first sign-in) as an operator who may read terminals and payments.
    const op = await createOperator(t, { roles: ['support', 'merchant-admin'], name: 'Ravi Fleet' });
    await page.goto(origin + '/console/');
    await page.getByLabel('Email').fill(op.email);
    await page.getByLabel('Password').fill(op.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    const secret = base32Decode((await page.locator('.enrol .mono').textContent({ timeout: 20_000 }))!.trim());
    await page.getByLabel('Authentication code').fill(totp(secret, new Date()));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('recovery-codes').waitFor();
    await page.getByRole('button', { name: /continue/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  });
  after(async () => {
    await term?.close().catch(() => {});
    await browser?.close();
    await gw?.stop();
    await t?.close();
  });

  test('a terminal never connected is offline, "never" seen', async () => {
    await page.goto(origin + '/console/terminals');
    await page.getByRole('heading', { level: 1, name: 'Terminals' }).waitFor();
    await row().waitFor();
    assert.match((await row().textContent())!, /offline/);
    assert.match((await row().textContent())!, /never/);
  });

  test('it connects: the page shows it online with a last-seen time, the filter and the Overview find it', async () => {
    const secret = await issueMqttSecret(t.db, terminalId, 'test');
    term = await connectTerminal({
      url: gw.plainUrl!,
      terminalId,
      password: secret.password,
      reconnectPeriodMs: 0,
    });
    // The page refreshes itself (every 10 s): no reload.
    await afterRefresh(row().getByText('online', { exact: true }));
    assert.doesNotMatch((await row().textContent())!, /never/);
    await axe(page, 'terminals, a terminal online');

    await page.getByLabel('Connection').selectOption('online');
    await row().waitFor();
    await page.getByLabel('Connection').selectOption('offline');
    await page
      .getByText('No terminals.')
      .or(page.getByRole('row').filter({ hasNotText: terminalId }).nth(1))
      .first()
      .waitFor();
    assert.equal(await row().count(), 0, 'not among the offline ones');
    await page.getByLabel('Connection').selectOption('');
    await page.getByLabel('Store').fill(storeId);
    await row().waitFor();

    // The server reuses a presence count for 5 s (COUNTS_TTL_MS), and the Overview shown at sign-in
    // counted none online: once the count says it is online, the Overview must show that count.
    await t.eventually(async () => (await t.request('GET', '/v1/terminals/presence')).body.online >= 1, 20_000);
    await page.goto(origin + '/console/');
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.waitForFunction(() =>
      /^\d+$/.test(document.querySelector('[data-testid="tile-terminals-online"]')?.textContent ?? ''),
    );
    const online = await page.getByTestId('tile-terminals-online').textContent();
    const api = await t.request('GET', '/v1/terminals/presence');
    assert.equal(online, String(api.body.online));
    assert.ok(api.body.online >= 1);
  });

  test('its socket dies: the page shows it offline', async () => {
    await page.goto(origin + '/console/terminals');
    await row().getByText('online', { exact: true }).waitFor();
    (term as unknown as { mqtt: MqttClient }).mqtt.stream.destroy();
    await afterRefresh(row().getByText('offline', { exact: true }));
    assert.doesNotMatch((await row().textContent())!, /never/, 'it was seen');
    await axe(page, 'terminals, a terminal offline');
    assert.deepEqual(pageErrors, []);
  });

  test('revoke from the console: its credentials are revoked, its live session closed, the page shows it offline', async () => {
    const secret = await issueMqttSecret(t.db, terminalId, 'test');
    term = await connectTerminal({ url: gw.plainUrl!, terminalId, password: secret.password, reconnectPeriodMs: 0 });
    await page.goto(origin + '/console/terminals');
    await row().getByText('online', { exact: true }).waitFor({ timeout: 20_000 });
    await row().getByRole('button', { name: 'Certificates and violations' }).click();
    const panel = page.getByTestId('terminal-security');
    await panel.getByRole('button', { name: 'Revoke credentials…' }).click();
    await panel.getByLabel('Reason').selectOption('lost_or_stolen');
    await axe(page, 'terminals, revoke confirmation');
    await panel.getByRole('button', { name: 'Revoke every certificate and the MQTT secret' }).click();
    assert.match((await panel.getByTestId('revoked').textContent())!, /1 secret/);
    await afterRefresh(row().getByText('offline', { exact: true }));
    assert.equal(term.connected, false, 'the gateway closed the session');
    const audit = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit.events WHERE action = 'terminal.credentials_revoked' AND resource_id = $1`,
      [terminalId],
    );
    assert.equal(audit.rows[0].n, 1);
    assert.deepEqual(pageErrors, []);
  });
});
