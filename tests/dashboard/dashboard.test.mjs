// Browser test of the web dashboard (clients/dashboard) served by the embedded `switchboard`.
//
// From the repository root, after building the workspace and the dashboard:
//     cargo build --workspace
//     (cd clients/js && npm ci && npm run build) && (cd clients/dashboard && npm ci && npm run build)
//     (cd tests/dashboard && npm ci)
//     node --test tests/dashboard/
// Needs Debian's Chromium at /usr/bin/chromium (override with CHROMIUM=/path); no browser is
// downloaded. The reusable parts (server start/stop, the view checks) are in harness.mjs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DATA_TIMEOUT_MS, launchBrowser, openDashboard, openTab, runViewChecks, startAgent, startSwitchboard, waitForResourcesWithNodes, waitForState, waitInPage, withTimeout,
} from './harness.mjs';

const ctx = { server: null, browser: null, agents: [] };
const serverLog = () => `--- switchboard log ---\n${ctx.server?.recentLog(40) ?? ''}`;

before(async () => {
  const startedAt = Date.now();
  ctx.server = await startSwitchboard();
  await waitForResourcesWithNodes(ctx.server.origin, ctx.server.token, startedAt, serverLog);
  ctx.browser = await launchBrowser();
}, { timeout: 120_000 });

after(async () => {
  for (const agent of ctx.agents) await agent.stop().catch(() => {});
  if (ctx.browser) await withTimeout(ctx.browser.close(), 15_000, 'browser to close').catch(() => {});
  if (ctx.server) await ctx.server.stop();
}, { timeout: 60_000 });

// Last resort if the runner is torn down before `after` runs.
process.on('exit', () => {
  for (const child of [ctx.server?.child, ...ctx.agents.map((a) => a.child)]) {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

test('every view fills with live data; commands, alerts, charts and phone width', { timeout: 420_000 }, async () => {
  const { origin, token, apiKey } = ctx.server;
  const { context } = await runViewChecks({
    browser: ctx.browser,
    origin,
    token,
    apiKey,
    prefix: 'embedded',
    changedNodeId: 'dash-agent-1',
    // A real node agent joins while the page is open: the topology view highlights it.
    beforeTopology: async () => {
      ctx.agents.push(startAgent({ origin, nodeId: 'dash-agent-1', layer: 'host' }));
    },
    log: serverLog,
  });
  await context.close();
});

test('sign-in: a refused token ends in disconnected with its code; the form signs in', { timeout: 120_000 }, async () => {
  const context = await ctx.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(`${ctx.server.origin}/?token=not-a-token`, { waitUntil: 'domcontentloaded' });
  await waitForState(page, 'disconnected');
  const lastError = await page.locator('[data-testid="last-error"]').innerText();
  assert.match(lastError, /token_invalid/);
  assert.match(lastError, /4401/);
  assert.ok(!page.url().includes('token='), 'the refused token left the address bar too');
  // The way out of a refused token: the sign-in form, with the code that refused it.
  await page.click('[data-testid="sign-in-again"]');
  await page.waitForSelector('[data-testid="signin-form"]');
  assert.match(await page.locator('[data-testid="signin-error"]').innerText(), /token_invalid/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.token')), null);
  await page.fill('[data-testid="signin-token"]', ctx.server.token);
  await page.click('[data-testid="signin-submit"]');
  await waitForState(page, 'connected');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.token')), ctx.server.token);
  // A reload keeps the session (sessionStorage), without the token in the URL.
  await page.reload({ waitUntil: 'domcontentloaded' });
  await waitForState(page, 'connected');
  await page.click('[data-testid="sign-out"]');
  await page.waitForSelector('[data-testid="signin-form"]');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.token')), null);
  assert.deepEqual(errors, []);
  await context.close();
});

test('device badges: Live Data → Reconnecting (n/10) → Live Data across a restart, no reload', { timeout: 240_000 }, async () => {
  const { context, page, pageErrors } = await openDashboard(ctx.browser, ctx.server.origin, ctx.server.token);
  await openTab(page, 'devices');
  await waitInPage(page, () => document.querySelector('[data-device-id="opm-1"] [data-testid="device-stream-badge"]')?.textContent === 'Live Data'
    && document.querySelector('[data-testid="device-readings-opm-1"]')?.dataset.live === 'true', null, 'opm-1 live', DATA_TIMEOUT_MS, serverLog);
  // Record every badge text and whether readings are shown, as they change.
  await page.evaluate(() => {
    window.__pageId = Math.random();
    window.__badges = [];
    const card = document.querySelector('[data-device-id="opm-1"]');
    const note = () => {
      const badge = card.querySelector('[data-testid="device-stream-badge"]')?.textContent ?? '';
      const live = card.querySelector('[data-testid="device-readings-opm-1"]')?.dataset.live ?? '';
      const ch1 = card.querySelector('[data-testid="device-ch1-opm-1"]')?.textContent ?? '';
      const last = window.__badges[window.__badges.length - 1];
      if (!last || last.badge !== badge || last.live !== live || (last.ch1 === '—') !== (ch1 === '—')) window.__badges.push({ badge, live, ch1, at: Date.now() });
    };
    note();
    new MutationObserver(note).observe(card, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const pageId = await page.evaluate(() => window.__pageId);

  const port = ctx.server.port;
  const stopped = await ctx.server.stop();
  assert.ok(stopped.code === 0 || stopped.signal === 'SIGTERM', `switchboard exited cleanly: ${JSON.stringify(stopped)}`);
  await waitInPage(page, () => /^Reconnecting \(\d+\/10\)$/.test(document.querySelector('[data-device-id="opm-1"] [data-testid="device-stream-badge"]')?.textContent ?? ''), null, 'Reconnecting (n/10)');
  await waitForState(page, 'reconnecting');

  ctx.server = await startSwitchboard({ port });
  // The same page (no reload) comes back to Live Data with readings, and its main connection too.
  await waitInPage(page, () => document.querySelector('[data-device-id="opm-1"] [data-testid="device-stream-badge"]')?.textContent === 'Live Data'
    && document.querySelector('[data-testid="device-readings-opm-1"]')?.dataset.live === 'true', null, 'opm-1 live again after the restart', 60_000, serverLog);
  await waitForState(page, 'connected', 60_000);
  assert.equal(await page.evaluate(() => window.__pageId), pageId, 'the page was not reloaded');

  const badges = await page.evaluate(() => window.__badges);
  const firstLive = badges.findIndex((b) => b.badge === 'Live Data');
  const reconnecting = badges.findIndex((b, i) => i > firstLive && /^Reconnecting \((\d+)\/10\)$/.test(b.badge));
  const liveAgain = badges.findIndex((b, i) => i > reconnecting && b.badge === 'Live Data');
  assert.ok(firstLive >= 0 && reconnecting > firstLive && liveAgain > reconnecting, `Live Data → Reconnecting (n/10) → Live Data: ${JSON.stringify(badges)}`);
  // Readings were cleared while the stream was down (seed 003), and came back.
  const down = badges.slice(reconnecting, liveAgain);
  assert.ok(down.every((b) => b.live === 'false' && b.ch1 === '—'), `no readings shown while reconnecting: ${JSON.stringify(down)}`);
  assert.ok(badges.filter((b) => /^Reconnecting/.test(b.badge)).every((b) => Number(b.badge.match(/\((\d+)\//)[1]) >= 1), 'attempt numbers start at 1');
  assert.deepEqual(pageErrors, []);
  await context.close();
});
