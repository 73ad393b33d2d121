// Browser test of the web dashboard against a multi-process cluster, not the embedded engine:
// deploy/local-cluster.sh with two gateways on a real nats-server (JetStream) and redis-server,
// the publisher, aggregator, batch-ingest and device-reader processes, and the demo (three
// node agents spread over the gateways, an ML node, two mock power meters).
//
// The page is served by gateway 2 and signs in with the cluster's admin token, so what it shows
// crosses processes: node agent demo-node-1 is connected to gateway 1, and the command the page
// sends it goes gateway 2 → NATS → gateway 1 → agent and back. The same view checks as the
// embedded run (harness.mjs runViewChecks), with screenshots prefixed `cluster-`.
//
// From the repository root, after building the workspace (debug binaries) and the dashboard:
//     node --test tests/dashboard/cluster.test.mjs
// Needs nats-server and redis-server on PATH (scripts/test.sh installs them).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  DASHBOARD_DIST, REPO, TEST_API_KEY, TEST_HMAC_SECRET, launchBrowser, runViewChecks, startAgent, waitForResourcesWithNodes, withTimeout,
} from './harness.mjs';

const run = promisify(execFile);
const STATE_DIR = path.join(REPO, 'target/dashboard-cluster');
const CLUSTER = path.join(REPO, 'deploy/local-cluster.sh');
const clusterEnv = {
  ...process.env,
  BIN_DIR: process.env.DASHBOARD_CLUSTER_BIN_DIR ?? 'target/debug',
  GATEWAYS: '2',
  DEMO: '1',
  STATE_DIR,
  UP_TIMEOUT: '120',
  SWITCHBOARD_HMAC_SECRET: TEST_HMAC_SECRET,
  SWITCHBOARD_API_KEY: TEST_API_KEY,
  SWITCHBOARD__GATEWAY__DASHBOARD_DIR: DASHBOARD_DIST,
  SWITCHBOARD__TELEMETRY__LOG_FORMAT: 'json',
};

const ctx = { cluster: null, browser: null, agents: [] };

/** The `export KEY='value'` lines local-cluster.sh writes to cluster.env. */
function readClusterEnv() {
  const values = {};
  for (const line of fs.readFileSync(path.join(STATE_DIR, 'cluster.env'), 'utf8').split('\n')) {
    const match = line.match(/^export ([A-Z0-9_]+)='(.*)'$/);
    if (match) values[match[1]] = match[2].replace(/'\\''/g, "'");
  }
  return values;
}

/** The last lines of every process log of the cluster, for a failure message. */
function clusterLogs(lines = 15) {
  const dir = path.join(STATE_DIR, 'logs');
  if (!fs.existsSync(dir)) return '';
  return fs.readdirSync(dir).filter((name) => /^(gateway|publisher|aggregator)/.test(name)).map((name) => {
    const text = fs.readFileSync(path.join(dir, name), 'utf8').trimEnd().split('\n').slice(-lines);
    return `--- ${name} ---\n${text.map((line) => (line.length > 300 ? `${line.slice(0, 300)}…` : line)).join('\n')}`;
  }).join('\n');
}

async function clusterDown() {
  await run(CLUSTER, ['down'], { cwd: REPO, env: clusterEnv, timeout: 90_000 }).catch((error) => {
    console.error(`local-cluster.sh down failed: ${error.stderr ?? error}`);
  });
}

before(async () => {
  await clusterDown(); // a cluster left over by an interrupted run
  const startedAt = Date.now();
  try {
    await run(CLUSTER, ['up'], { cwd: REPO, env: clusterEnv, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    throw new Error(`local-cluster.sh up failed: ${error.stderr ?? error}\n${clusterLogs()}`);
  }
  const env = readClusterEnv();
  const gateways = env.SWITCHBOARD_GATEWAY_URLS.split(',');
  assert.equal(gateways.length, 2, `two gateways: ${env.SWITCHBOARD_GATEWAY_URLS}`);
  assert.ok(env.SWITCHBOARD_DEV_TOKEN, 'cluster.env has an admin token (local-cluster.sh mints it with openssl)');
  ctx.cluster = { gateways, token: env.SWITCHBOARD_DEV_TOKEN, apiKey: env.SWITCHBOARD_API_KEY };
  await waitForResourcesWithNodes(gateways[1], ctx.cluster.token, startedAt, clusterLogs);
  ctx.browser = await launchBrowser();
}, { timeout: 300_000 });

after(async () => {
  for (const agent of ctx.agents) await agent.stop().catch(() => {});
  if (ctx.browser) await withTimeout(ctx.browser.close(), 15_000, 'browser to close').catch(() => {});
  await clusterDown();
}, { timeout: 120_000 });

test('two gateways on NATS and Redis: every view fills, a command crosses gateways', { timeout: 420_000 }, async () => {
  const [gateway1, gateway2] = ctx.cluster.gateways;
  // Both gateways serve the same built dashboard.
  for (const origin of [gateway1, gateway2]) {
    const page = await fetch(`${origin}/`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(page.status, 200, `${origin}/`);
    assert.match(await page.text(), /assets\/app\.js/, `${origin}/ is the built dashboard`);
  }
  const stats = await (await fetch(`${gateway2}/api/ws/stats`, { headers: { Authorization: `Bearer ${ctx.cluster.token}` } })).json();
  assert.equal(stats.live_gateways, 2, `the stats of gateway 2 count both gateways: ${JSON.stringify(stats).slice(0, 400)}`);
  assert.equal(stats.server_id, 'gateway-2');

  const { context } = await runViewChecks({
    browser: ctx.browser,
    origin: gateway2,
    token: ctx.cluster.token,
    apiKey: ctx.cluster.apiKey,
    // Connected to gateway 1: the page's command goes through NATS to the other gateway.
    nodeId: 'demo-node-1',
    prefix: 'cluster',
    changedNodeId: 'cluster-agent-1',
    // A node agent joins on gateway 1 while the page (on gateway 2) shows the topology.
    beforeTopology: async () => {
      ctx.agents.push(startAgent({ origin: gateway1, nodeId: 'cluster-agent-1', layer: 'cluster-test' }));
    },
    log: () => clusterLogs(),
  });
  await context.close();
});
