// Browser test of the web dashboard served by the standalone `switchboard` binary.
//
// Run from the repository root after `cargo build --workspace`:
//     node --test tests/dashboard/
// Needs `npm ci` in tests/dashboard (playwright-core only) and Debian's Chromium at
// /usr/bin/chromium (override with CHROMIUM=/path); no browser is downloaded.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BINARY = path.resolve(here, '../../target/debug/switchboard');
const SCREENSHOTS = path.join(here, 'screenshots');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync',
];
const STARTUP_TIMEOUT_MS = 30_000;
const UI_TIMEOUT_MS = 15_000;

/** Shared across the steps, which run in order. */
const ctx = {
  server: null,       // child process
  exited: null,       // promise of {code, signal}
  log: [],            // stdout + stderr lines, for diagnostics
  origin: null,       // http://127.0.0.1:PORT
  dashboardUrl: null,
  token: null,
  apiKey: null,
  browser: null,
  context: null,
  page: null,
  pageErrors: [],
};

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function recentLog(lines = 40) {
  return ctx.log.slice(-lines).join('\n');
}

/** Starts the binary and resolves once it printed the dashboard URL and the publish command. */
async function startServer() {
  assert.ok(fs.existsSync(BINARY), `${BINARY} is missing: run \`cargo build --workspace\` first`);
  const port = await freePort();
  const child = spawn(BINARY, [], {
    env: { ...process.env, SWITCHBOARD__GATEWAY__LISTEN: `127.0.0.1:${port}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ctx.server = child;
  ctx.exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }));

  let stdout = '';
  const found = new Promise((resolve, reject) => {
    const check = () => {
      const dashboard = stdout.match(/^ {2}dashboard:\s+(http:\/\/\S+\/\?token=\S+)\s*$/m);
      const publish = stdout.match(/^ {2}publish:\s+curl .*-H 'Authorization: Bearer ([^']+)'/m);
      if (dashboard && publish) resolve({ dashboardUrl: dashboard[1], apiKey: publish[1] });
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      ctx.log.push(...chunk.split('\n').filter(Boolean).map((line) => `[stdout] ${line}`));
      check();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => reject(new Error(`switchboard exited early (code ${code}, signal ${signal})\n${recentLog()}`)));
  });
  // stderr must be drained, or a chatty server blocks on a full pipe.
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => ctx.log.push(...chunk.split('\n').filter(Boolean).map((line) => `[stderr] ${line}`)));

  const { dashboardUrl, apiKey } = await withTimeout(found, STARTUP_TIMEOUT_MS, 'switchboard to print its dashboard URL');
  const url = new URL(dashboardUrl);
  ctx.dashboardUrl = dashboardUrl;
  ctx.origin = url.origin;
  ctx.token = url.searchParams.get('token');
  ctx.apiKey = apiKey;
  assert.ok(ctx.token && ctx.token.split('.').length === 3, `dev token looks like a JWT: ${ctx.token}`);
}

async function stopServer() {
  const child = ctx.server;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  try {
    await withTimeout(ctx.exited, 15_000, 'switchboard to exit after SIGTERM');
  } catch {
    child.kill('SIGKILL');
    await withTimeout(ctx.exited, 5_000, 'switchboard to exit after SIGKILL').catch(() => {});
  }
}

// Last resort if the runner is torn down before `after` runs.
process.on('exit', () => {
  if (ctx.server && ctx.server.exitCode === null && ctx.server.signalCode === null) ctx.server.kill('SIGKILL');
});

async function publish(room, type, data, extra = {}) {
  const response = await fetch(`${ctx.origin}/api/ws/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${ctx.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ room, type, data, ...extra }),
    signal: AbortSignal.timeout(5_000),
  });
  const body = await response.text();
  assert.equal(response.status, 202, `publish to ${room} answered ${response.status}: ${body}`);
  return JSON.parse(body);
}

const text = (page, testid) => page.locator(`[data-testid="${testid}"]`).first().innerText({ timeout: UI_TIMEOUT_MS });

/** Polls the page until `predicate(arg)` is truthy; on timeout, says what was expected and what is there. */
async function waitInPage(page, predicate, arg, what, timeout = UI_TIMEOUT_MS) {
  try {
    await page.waitForFunction(predicate, arg, { timeout });
  } catch (error) {
    const state = await page.evaluate(() => ({
      state: document.querySelector('[data-testid="connection-state"]')?.textContent,
      info: document.querySelector('[data-testid="reconnect-info"]')?.textContent,
      error: document.querySelector('[data-testid="last-error"]')?.textContent,
    })).catch(() => ({}));
    throw new Error(`${what}: not seen within ${timeout} ms (page: ${JSON.stringify(state)}; page errors: ${JSON.stringify(ctx.pageErrors)})\n${error.message}\n--- server log ---\n${recentLog()}`);
  }
}

function waitForState(page, state, timeout = UI_TIMEOUT_MS) {
  return waitInPage(
    page,
    (wanted) => document.querySelector('[data-testid="connection-state"]')?.textContent.trim() === wanted,
    state,
    `connection-state "${state}"`,
    timeout,
  );
}

/** Polls a Node-side condition (every 25 ms) until it returns something truthy. */
async function until(condition, what, timeout = UI_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function count(page, room) {
  return Number(await text(page, `count-${room}`));
}

async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name), timeout: UI_TIMEOUT_MS });
}

before(async () => {
  await startServer();
  ctx.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  ctx.context = await ctx.browser.newContext({ viewport: { width: 1280, height: 800 } });
  ctx.context.setDefaultTimeout(UI_TIMEOUT_MS);
}, { timeout: 70_000 });

after(async () => {
  try {
    if (ctx.browser) await withTimeout(ctx.browser.close(), 10_000, 'browser to close').catch(() => {});
  } finally {
    await stopServer();
  }
}, { timeout: 35_000 });

test('the dashboard connects and subscribes to the six rooms', { timeout: 30_000 }, async () => {
  const page = await ctx.context.newPage();
  ctx.page = page;
  page.on('pageerror', (error) => ctx.pageErrors.push(String(error)));
  const response = await page.goto(ctx.dashboardUrl, { waitUntil: 'domcontentloaded' });
  assert.equal(response.status(), 200);

  await waitForState(page, 'connected');
  assert.match(await text(page, 'server-id'), /\S/);
  assert.notEqual(await text(page, 'server-id'), '—');
  assert.notEqual(await text(page, 'connection-id'), '—');

  for (const room of ['nodes', 'tasks', 'metrics', 'alerts', 'resources', 'topology']) {
    assert.equal(await page.locator(`[data-testid="room-${room}"]`).count(), 1, `panel for ${room}`);
  }
  // Live delivery is at most once: publish only after the server confirmed the subscriptions.
  await waitInPage(
    page,
    () => ['nodes', 'tasks', 'metrics', 'alerts', 'resources', 'topology']
      .every((room) => document.querySelector(`[data-testid="sub-${room}"]`)?.textContent.includes('live')),
    null,
    'all six rooms subscribed',
  );
  // Before any node data, the nodes panel says what it waits for.
  if ((await count(page, 'nodes')) === 0) {
    assert.match(await text(page, 'room-nodes'), /waiting for node_status_update/);
  }
  await screenshot(page, '00-connected-empty.png');
  assert.deepEqual(ctx.pageErrors, []);
});

test('a published alert and node status appear in their panels', { timeout: 30_000 }, async () => {
  const page = ctx.page;
  assert.ok(page, 'the first step opened the page');
  const alertsBefore = await count(page, 'alerts');
  const nodesBefore = await count(page, 'nodes');

  const accepted = await publish('alerts', 'alert', {
    type: 'threshold_exceeded', metric: 'cpu_usage', value: 95, threshold: 90, severity: 'critical',
  });
  assert.equal(accepted.room, 'alerts');
  const now = new Date();
  await publish('nodes', 'node_status_update', {
    active_nodes: 2,
    offline_nodes: 1,
    nodes: [
      { node_id: 'dash-test-edge-1', layer: 'edge', online: true, update_count: 42, last_seen: now.toISOString() },
      { node_id: 'dash-test-edge-2', layer: 'edge', online: true, update_count: 17, last_seen: now.toISOString() },
      { node_id: 'dash-test-core-1', layer: 'core', online: false, update_count: 3, last_seen: new Date(now - 120_000).toISOString() },
    ],
  });

  await waitInPage(
    page,
    () => [...document.querySelectorAll('[data-testid="alert-list"] li')].some((li) =>
      li.dataset.severity === 'critical' && li.classList.contains('sev-red')
      && li.textContent.includes('threshold_exceeded') && li.textContent.includes('cpu_usage')
      && li.textContent.includes('95') && li.textContent.includes('90')),
    null,
    'the critical cpu_usage alert in red',
  );
  // Polls on every animation frame, so it sees the table even if a real publisher replaces it later.
  await waitInPage(
    page,
    () => {
      const table = document.querySelector('[data-testid="node-table"]');
      const row = (id) => table?.querySelector(`tr[data-node-id="${id}"]`)?.textContent ?? '';
      return row('dash-test-edge-1').includes('edge') && row('dash-test-edge-1').includes('online') && row('dash-test-edge-1').includes('42')
        && row('dash-test-edge-2').includes('17')
        && row('dash-test-core-1').includes('core') && row('dash-test-core-1').includes('offline')
        && document.querySelector('[data-testid="active-nodes"]')?.textContent.includes('2')
        && document.querySelector('[data-testid="offline-nodes"]')?.textContent.includes('1');
    },
    null,
    'the node table with 2 active and 1 offline node',
  );
  // Severity from data.severity, else from the envelope's priority; newest first.
  await publish('alerts', 'alert', { type: 'anomaly_detected', metric: 'memory_usage', value: 81, z_score: 3.4, severity: 'warning' });
  await publish('alerts', 'alert', { message: 'dashboard test finished publishing' }, { priority: 'info' });
  await waitInPage(
    page,
    () => {
      const items = [...document.querySelectorAll('[data-testid="alert-list"] li')];
      const info = items.findIndex((li) => li.dataset.severity === 'info' && li.classList.contains('sev-blue'));
      const warning = items.findIndex((li) => li.dataset.severity === 'warning' && li.classList.contains('sev-amber'));
      const critical = items.findIndex((li) => li.dataset.severity === 'critical');
      return info >= 0 && warning > info && critical > warning;
    },
    null,
    'info (blue), warning (amber) and critical alerts, newest first',
  );
  // A room without a special view shows its data as JSON.
  await publish('tasks', 'task_progress_update', {
    queue: { pending: 4, running: 2, completed: 118, failed: 1 },
    tasks: [{ task_id: 'dash-test-task', progress: 0.42, status: 'running' }],
  });
  await waitInPage(
    page,
    () => {
      const pre = document.querySelector('[data-testid="data-tasks"]')?.textContent ?? '';
      return pre.includes('"dash-test-task"') && pre.includes('"completed": 118');
    },
    null,
    'the tasks panel showing the published data as JSON',
  );
  assert.ok((await count(page, 'alerts')) >= alertsBefore + 3, 'alerts count increased');
  assert.ok((await count(page, 'nodes')) >= nodesBefore + 1, 'nodes count increased');
  assert.match(await text(page, 'last-type-alerts'), /^alert$/);
  assert.match(await text(page, 'last-type-nodes'), /^node_status_update$/);

  // The alert colour is really red (critical), not just a class name.
  const border = await page.locator('[data-testid="alert-list"] li[data-severity="critical"]').first()
    .evaluate((li) => getComputedStyle(li).borderLeftColor);
  const [r, g, b] = border.match(/\d+/g).map(Number);
  assert.ok(r > 150 && g < 80 && b < 80, `critical alert border is red: ${border}`);
});

test('the stats strip shows at least one active connection', { timeout: 30_000 }, async () => {
  const page = ctx.page;
  assert.ok(page, 'the first step opened the page');
  // Refreshed every 5 s; the first fetch may predate the connection.
  await waitInPage(
    page,
    () => Number(document.querySelector('[data-testid="stat-active-connections"]')?.textContent.replace(/,/g, '')) >= 1,
    null,
    'stats: active_connections >= 1',
    20_000,
  );
  const stats = await text(page, 'stats');
  assert.match(stats, /Active connections/i);
  assert.match(await text(page, 'stat-total-messages'), /^[\d,]+$/);
  await screenshot(page, '01-live-data.png');
  assert.deepEqual(ctx.pageErrors, []);
});

test('a bad token ends in disconnected with token_invalid and no retries', { timeout: 30_000 }, async () => {
  const page = await ctx.context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(`${ctx.origin}/?token=bad`, { waitUntil: 'domcontentloaded' });
  await waitForState(page, 'disconnected');
  const lastError = await text(page, 'last-error');
  assert.match(lastError, /token_invalid/);
  assert.match(lastError, /4401/);
  // Terminal: no reconnect is scheduled.
  assert.equal(await page.evaluate(() => window.switchboard.timers.reconnect), null);
  assert.equal(await page.evaluate(() => window.switchboard.stopped), true);
  await screenshot(page, '02-bad-token.png');
  assert.deepEqual(errors, []);
  await page.close();
});

test('client: watchdog, resubscribe, error frames and retry_after (mocked socket)', { timeout: 30_000 }, async () => {
  // The page comes from the real server; its websocket is answered by Playwright instead, so
  // the test can go silent, send errors and ask for a reconnect on cue.
  const page = await ctx.context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  const connections = [];
  await page.routeWebSocket(/\/api\/ws\/connect/, (ws) => {
    const conn = { ws, openedAt: Date.now(), received: [] };
    connections.push(conn);
    ws.onMessage((frame) => conn.received.push(JSON.parse(frame)));
    ws.send(JSON.stringify({
      type: 'connection_established', connection_id: `mock-${connections.length}`, server_id: 'gw-mock',
      heartbeat_interval_ms: 400, timestamp: new Date().toISOString(),
    }));
  });
  const subscribedRooms = async (index) => {
    const subscribe = await until(
      () => connections[index]?.received.find((message) => message.type === 'subscribe'),
      `a subscribe on mocked connection ${index + 1}`,
    );
    return [...subscribe.rooms].sort();
  };
  const sixRooms = ['alerts', 'metrics', 'nodes', 'resources', 'tasks', 'topology'];

  await page.goto(`${ctx.origin}/?token=mock`, { waitUntil: 'domcontentloaded' });
  await waitForState(page, 'connected');
  assert.equal(await text(page, 'server-id'), 'gw-mock');
  assert.deepEqual(await subscribedRooms(0), sixRooms);

  // An error frame is shown with its code and message; the connection stays up.
  connections[0].ws.send(JSON.stringify({
    type: 'error', code: 'rate_limited', message: 'message rate limit exceeded', recoverable: true, timestamp: new Date().toISOString(),
  }));
  await waitInPage(
    page,
    () => /rate_limited: message rate limit exceeded/.test(document.querySelector('[data-testid="last-error"]')?.textContent ?? ''),
    null,
    'the error frame in last-error',
  );

  // Mock 1 never sends another frame: after 2 × 400 ms the watchdog declares it dead.
  await until(() => connections.length >= 2, 'a second connection after the watchdog');
  assert.equal(await page.evaluate(() => window.switchboard.watchdogFires), 1);
  await waitForState(page, 'connected');
  assert.deepEqual(await subscribedRooms(1), sixRooms, 'all rooms re-subscribed after the reconnect');
  assert.match(await text(page, 'connection-id'), /^mock-2$/);

  // The server asks to come back after 0.8 s and closes with 1001: the client waits that long.
  const before = connections.length;
  const askedAt = Date.now();
  connections[before - 1].ws.send(JSON.stringify({ type: 'reconnect', reason: 'test drain', retry_after: 0.8 }));
  connections[before - 1].ws.close({ code: 1001, reason: 'shutting_down' });
  await waitForState(page, 'reconnecting');
  assert.match(await text(page, 'reconnect-info'), /server asked to reconnect \(test drain, retry_after 0\.8 s\)/);
  await waitForState(page, 'connected');
  const waited = connections[before].openedAt - askedAt;
  assert.ok(waited >= 700, `reconnected after ${waited} ms, retry_after was 800 ms`);
  assert.deepEqual(await subscribedRooms(before), sixRooms);
  assert.deepEqual(errors, []);
  await page.close();
});

test('SIGTERM: the server asks to reconnect and the dashboard goes to reconnecting', { timeout: 45_000 }, async () => {
  const page = ctx.page;
  assert.ok(page, 'the first step opened the page');
  await waitForState(page, 'connected');
  ctx.server.kill('SIGTERM');

  await waitForState(page, 'reconnecting');
  // The `reconnect {reason, retry_after}` frame was read and is being honoured.
  await waitInPage(
    page,
    () => /server asked to reconnect .*retry_after/.test(document.querySelector('[data-testid="reconnect-info"]')?.textContent ?? ''),
    null,
    'reconnect-info naming the server request',
  );
  await screenshot(page, '03-reconnecting.png');
  const { code, signal } = await withTimeout(ctx.exited, 15_000, 'switchboard to exit after SIGTERM');
  assert.ok(code === 0 || signal === 'SIGTERM', `switchboard exited cleanly (code ${code}, signal ${signal})`);

  // With the server gone, the client keeps backing off instead of giving up.
  await waitInPage(
    page,
    () => window.switchboard.attempt >= 2 && window.switchboard.state === 'reconnecting',
    null,
    'a second reconnect attempt after retry_after',
    20_000,
  );
  assert.equal(await text(page, 'connection-state'), 'reconnecting');
  assert.deepEqual(ctx.pageErrors, []);
});
