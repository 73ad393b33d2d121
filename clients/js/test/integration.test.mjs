// Integration tests of @switchboard/client against a real `switchboard` process (the embedded
// run: every service in one process), started on a free port with a fixed HMAC secret and API
// key so tokens can be minted here and a restarted process accepts them.
//
// Needs ../../target/debug/switchboard (`cargo build -p switchboard-standalone`); without it
// every test fails saying so. Run: npm run test:integration (or npm test).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';

import { SwitchboardClient, isDirectMessage, tokenExpiry } from '../dist/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BINARY = process.env.SWITCHBOARD_BIN ?? path.resolve(here, '../../../target/debug/switchboard');
const SECRET = randomBytes(32).toString('hex');
const API_KEY = randomBytes(16).toString('hex');
const STARTUP_TIMEOUT_MS = 30_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(20);
  }
}

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

/** An HS256 JWT signed with the servers' secret (claims as in libs/auth/src/claims.rs). */
function mintToken({ sub, ttlSeconds = 3600, rooms = ['>'], role = 'viewer', secret = SECRET, ...rest }) {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = encode({ alg: 'HS256', typ: 'JWT' });
  const body = encode({ sub, iat: now, exp: now + ttlSeconds, rooms, role, ...rest });
  const signature = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

const servers = new Set();

/** Starts `switchboard` on `port`; resolves once it printed its access banner. */
async function startServer(port, extraEnv = {}) {
  if (!fs.existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: build it first (cargo build -p switchboard-standalone --all-features); the integration tests need a real switchboard process`);
  }
  const child = spawn(BINARY, [], {
    env: {
      ...process.env,
      SWITCHBOARD__GATEWAY__LISTEN: `127.0.0.1:${port}`,
      SWITCHBOARD__AUTH__HMAC_SECRET: SECRET,
      SWITCHBOARD__AUTH__API_KEY: API_KEY,
      // Reconnect storms of many tests share a few subjects.
      SWITCHBOARD__GATEWAY__CONNECTIONS_PER_USER_PER_MINUTE: '1000',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { child, port, log: [], exited: once(child, 'exit').then(([code, signal]) => ({ code, signal })) };
  servers.add(server);
  server.exited.then(() => servers.delete(server));
  const recent = () => server.log.slice(-30).join('\n');
  let stdout = '';
  const ready = new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      server.log.push(...chunk.split('\n').filter(Boolean));
      if (/^ {2}publish:/m.test(stdout)) resolve();
    });
    child.on('exit', (code, signal) => reject(new Error(`switchboard exited early (code ${code}, signal ${signal})\n${recent()}`)));
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    server.log.push(...chunk.split('\n').filter(Boolean));
    if (server.log.length > 2000) server.log.splice(0, 1000);
  });
  let timer;
  await Promise.race([
    ready,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`switchboard did not start within ${STARTUP_TIMEOUT_MS} ms\n${recent()}`)), STARTUP_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
  server.origin = `http://127.0.0.1:${port}`;
  server.wsUrl = `ws://127.0.0.1:${port}/api/ws/connect`;
  return server;
}

async function stopServer(server, signal = 'SIGTERM') {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return server.exited;
  server.child.kill(signal);
  const result = await Promise.race([server.exited, sleep(15_000).then(() => null)]);
  if (result === null) {
    server.child.kill('SIGKILL');
    return server.exited;
  }
  return result;
}

after(async () => {
  await Promise.all([...servers].map((server) => stopServer(server, 'SIGKILL')));
});
process.on('exit', () => {
  for (const server of servers) server.child.kill('SIGKILL');
});

async function publish(server, room, type, data) {
  const response = await fetch(`${server.origin}/api/ws/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ room, type, data }),
    signal: AbortSignal.timeout(5_000),
  });
  const body = await response.text();
  assert.equal(response.status, 202, `publish to ${room}: ${response.status} ${body}`);
}

/** The `ws` constructor, recording each socket, when it was made, and whether its frames were binary. */
function recordingWebSocket() {
  const sockets = [];
  class Recorded extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.createdAt = Date.now();
      this.frames = { text: 0, binary: 0 };
      this.on('message', (_data, isBinary) => {
        this.frames[isBinary ? 'binary' : 'text'] += 1;
      });
      sockets.push(this);
    }
  }
  return { WebSocket: Recorded, sockets };
}

/** A client with recorded states, errors and frames; closed by `done()`. */
function makeClient(options) {
  const recorder = recordingWebSocket();
  const client = new SwitchboardClient({ WebSocket: recorder.WebSocket, backoff: { initialMs: 200, maxMs: 1000 }, ...options });
  const states = [];
  const errors = [];
  const frames = [];
  client.onState((state, detail) => states.push({ state, at: Date.now(), ...detail }));
  client.onError((error) => errors.push(error));
  client.onFrame((frame) => frames.push({ at: Date.now(), ...frame }));
  clients.add(client);
  return { client, states, errors, frames, sockets: recorder.sockets };
}
const clients = new Set();
after(() => {
  for (const client of clients) client.close();
});

/** Resolves with the next room message of `type` in `room` whose data matches `marker`. */
function nextMessage(client, room, type, marker) {
  return new Promise((resolve) => {
    const off = client.on(type, (message) => {
      if (message.room === room && message.data?.marker === marker) {
        off();
        resolve(message);
      }
    });
  });
}

/** Publishes until the client receives it (the server-side subscribe may still be in flight). */
async function publishUntilReceived(server, client, room, type, marker, timeout = 10_000) {
  const received = nextMessage(client, room, type, marker);
  let got = null;
  received.then((message) => {
    got = message;
  });
  const deadline = Date.now() + timeout;
  while (got === null) {
    if (Date.now() > deadline) throw new Error(`message ${marker} in ${room} not received within ${timeout} ms`);
    await publish(server, room, type, { marker, sentAt: Date.now() });
    await Promise.race([received, sleep(250)]);
  }
  return got;
}

test('publish over HTTP reaches JSON and MessagePack clients as the same message; msgpack frames are binary', { timeout: 60_000 }, async () => {
  const server = await startServer(await freePort());
  try {
    const json = makeClient({ url: server.wsUrl, token: mintToken({ sub: 'it-json' }), pingIntervalMs: 200 });
    const msgpack = makeClient({ url: server.wsUrl, token: mintToken({ sub: 'it-msgpack' }), format: 'msgpack' });
    const room = 'it.publish';
    for (const { client } of [json, msgpack]) {
      client.subscribe(room);
      client.connect();
    }
    await until(() => json.client.state === 'connected' && msgpack.client.state === 'connected', 'both connected');
    await until(() => json.frames.some((f) => f.type === 'subscribed') && msgpack.frames.some((f) => f.type === 'subscribed'), 'both subscribed');

    const viaJson = nextMessage(json.client, room, 'hello_event', 'm-1');
    const viaMsgpack = nextMessage(msgpack.client, room, 'hello_event', 'm-1');
    await publish(server, room, 'hello_event', { marker: 'm-1', nested: { list: [1, 2.5, 'x', null, true] }, big: 1761129000123 });
    const [a, b] = await Promise.all([viaJson, viaMsgpack]);
    assert.deepEqual(b, a, 'MessagePack decodes to the same room message as JSON');
    assert.equal(a.type, 'hello_event');
    assert.equal(a.room, room);
    assert.deepEqual(a.data, { marker: 'm-1', nested: { list: [1, 2.5, 'x', null, true] }, big: 1761129000123 });
    assert.match(a.timestamp, /^\d{4}-\d\d-\d\dT/);

    const [jsonSocket] = json.sockets;
    const [msgpackSocket] = msgpack.sockets;
    assert.equal(jsonSocket.protocol, 'switchboard.v1.json');
    assert.equal(msgpackSocket.protocol, 'switchboard.v1.msgpack');
    assert.equal(msgpackSocket.frames.text, 0, 'no text frames on the msgpack connection');
    assert.ok(msgpackSocket.frames.binary >= 3, 'greeting, subscribed and the message came as binary frames');
    assert.equal(jsonSocket.frames.binary, 0);

    // The six standard rooms carry typed payloads: the publisher's node_status_update arrives.
    json.client.subscribe('nodes');
    const status = await new Promise((resolve) => {
      const off = json.client.on('node_status_update', (m) => {
        off();
        resolve(m);
      });
    });
    assert.equal(status.room, 'nodes');
    for (const key of ['active_nodes', 'offline_nodes', 'total_nodes', 'layers', 'nodes', 'tick', 'lease_epoch']) {
      assert.ok(key in status.data, `node_status_update has ${key}`);
    }
    await until(() => json.frames.some((f) => f.type === 'pong'), 'a pong: the protocol pings are answered', 5000);
    assert.deepEqual(json.errors, []);
    assert.deepEqual(msgpack.errors, []);
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});

test('embedded engine: a personal message reaches both connections of its user and nobody else; a broadcast reaches every client once', { timeout: 60_000 }, async () => {
  const server = await startServer(await freePort());
  try {
    const first = makeClient({ url: server.wsUrl, token: mintToken({ sub: 'it-dana@example.com' }) });
    const second = makeClient({ url: server.wsUrl, token: mintToken({ sub: 'it-dana@example.com' }), format: 'msgpack' });
    const other = makeClient({ url: server.wsUrl, token: mintToken({ sub: 'it-eve' }) });
    const seen = new Map();
    for (const [name, { client }] of [['first', first], ['second', second], ['other', other]]) {
      seen.set(name, []);
      client.on('*', (message) => {
        if (isDirectMessage(message)) seen.get(name).push(message);
      });
      client.connect();
    }
    await until(() => [first, second, other].every(({ client }) => client.state === 'connected'), 'all connected');

    const post = async (body) => {
      const response = await fetch(`${server.origin}/api/ws/publish`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(5_000),
      });
      return response.status;
    };
    assert.equal(await post({ user: 'it-dana@example.com', type: 'invoice_ready', data: { id: 7 } }), 202);
    await until(() => seen.get('first').length === 1 && seen.get('second').length === 1, 'both of dana\'s connections got it');
    for (const name of ['first', 'second']) {
      const [message] = seen.get(name);
      assert.equal(message.type, 'invoice_ready');
      assert.equal(message.user, 'it-dana@example.com');
      assert.deepEqual(message.data, { id: 7 });
    }

    assert.equal(await post({ broadcast: true, type: 'maintenance', data: { at: '22:00Z' } }), 202);
    await until(() => [...seen.values()].every((list) => list.some((m) => m.type === 'maintenance')), 'every client got the broadcast');
    await sleep(300);
    assert.deepEqual(seen.get('other').map((m) => m.type), ['maintenance'], 'eve: the broadcast only, once');
    assert.deepEqual(seen.get('first').map((m) => m.type), ['invoice_ready', 'maintenance']);
    assert.deepEqual(seen.get('second').map((m) => m.type), ['invoice_ready', 'maintenance']);
    assert.equal(await post({ user: 'it-eve', broadcast: true, type: 'x' }), 400, 'two targets are refused');
    for (const { errors } of [first, second, other]) assert.deepEqual(errors, []);
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});

test('a token the gateway refuses (4401) ends in disconnected without retries', { timeout: 40_000 }, async () => {
  const server = await startServer(await freePort());
  try {
    const bad = mintToken({ sub: 'it-bad', secret: 'another-secret-another-secret-xx' });
    const { client, states, errors, sockets } = makeClient({ url: server.wsUrl, token: bad });
    client.connect();
    await until(() => client.state === 'disconnected', 'disconnected');
    assert.equal(client.detail.code, 4401);
    assert.equal(client.detail.error.code, 'token_invalid');
    assert.equal(errors[0].code, 'token_invalid');
    await sleep(1500);
    assert.equal(sockets.length, 1, 'no second attempt');
    assert.deepEqual(states.map((s) => s.state), ['connecting', 'disconnected']);
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});

test('gateway restart: reconnecting → connected on the restarted process, rooms resubscribed, getToken called again', { timeout: 90_000 }, async () => {
  const port = await freePort();
  let server = await startServer(port);
  try {
    let tokens = 0;
    const { client, states, frames } = makeClient({
      url: server.wsUrl,
      getToken: async () => {
        tokens += 1;
        return mintToken({ sub: 'it-restart', publish: ['it.>'] });
      },
      maxReconnectAttempts: 50,
    });
    const received = [];
    client.subscribe('it.restart', (m) => received.push(m.data.marker));
    client.connect();
    await until(() => client.state === 'connected', 'connected');
    const firstServer = client.session.server_id;
    await publishUntilReceived(server, client, 'it.restart', 'restart_probe', 'before');

    await stopServer(server, 'SIGKILL');
    await until(() => client.state === 'reconnecting', 'reconnecting after the kill');
    await sleep(1500); // a few failed attempts against the dead port
    assert.ok(states.some((s) => s.state === 'reconnecting' && s.attempt >= 2), 'failed attempts while the gateway was down');
    assert.notEqual(client.state, 'connected');
    // Sent while offline: queued, and published once connected again (after the resubscribe).
    assert.equal(client.publish('it.restart', 'restart_probe', { marker: 'queued-offline' }), false);
    assert.equal(client.stats.queued, 1);

    server = await startServer(port);
    await until(() => client.state === 'connected', 'connected to the restarted gateway', 20_000);
    assert.notEqual(client.session.server_id, firstServer, 'a new gateway process');
    await publishUntilReceived(server, client, 'it.restart', 'restart_probe', 'after');
    // The new process knew nothing of the old subscriptions: the client subscribed again.
    const subscribedAgain = frames.filter((f) => f.type === 'subscribed' && f.rooms.includes('it.restart'));
    assert.equal(subscribedAgain.length, 2, 'subscribed once on each process');
    assert.deepEqual(received.filter((m, i, all) => all.indexOf(m) === i), ['before', 'queued-offline', 'after']);
    assert.equal(client.stats.queued, 0);
    assert.ok(tokens >= 3, `getToken before every attempt (called ${tokens} times)`);
    const sequence = states.map((s) => s.state).filter((s, i, all) => s !== all[i - 1]);
    assert.deepEqual(sequence, ['connecting', 'connected', 'reconnecting', 'connected']);
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});

test('SIGTERM drain: the client gets reconnect {retry_after} and waits at least that long', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const drainEnv = { SWITCHBOARD__GATEWAY__RECONNECT_DELAY_MIN: '2s', SWITCHBOARD__GATEWAY__RECONNECT_DELAY_MAX: '3s' };
  let server = await startServer(port, drainEnv);
  try {
    const { client, states, frames, sockets } = makeClient({
      url: server.wsUrl,
      token: mintToken({ sub: 'it-drain' }),
      backoff: { initialMs: 100, maxMs: 200 }, // far below retry_after: the floor must win
    });
    client.subscribe('it.drain');
    client.connect();
    await until(() => client.state === 'connected', 'connected');
    const socketsBefore = sockets.length;

    const exited = stopServer(server, 'SIGTERM');
    const reconnect = await until(() => frames.find((f) => f.type === 'reconnect'), 'the reconnect frame');
    assert.equal(reconnect.reason, 'server shutting down');
    assert.ok(reconnect.retry_after >= 2 && reconnect.retry_after <= 3, `retry_after ${reconnect.retry_after}`);
    await until(() => client.state === 'reconnecting', 'reconnecting');
    const waiting = states.find((s) => s.state === 'reconnecting');
    assert.equal(waiting.code, 1001, 'the gateway closed with 1001 after the reconnect frame');
    assert.ok(waiting.retryInMs >= reconnect.retry_after * 1000, `waits ${waiting.retryInMs} ms ≥ retry_after`);
    const result = await exited;
    assert.equal(result.code, 0, 'clean drain');

    server = await startServer(port, drainEnv);
    await until(() => client.state === 'connected', 'connected again', 20_000);
    const nextSocket = sockets[socketsBefore];
    const waited = nextSocket.createdAt - reconnect.at;
    assert.ok(waited >= reconnect.retry_after * 1000 - 5, `the next attempt came ${waited} ms after reconnect (retry_after ${reconnect.retry_after} s)`);
    await until(() => frames.filter((f) => f.type === 'subscribed' && f.rooms.includes('it.drain')).length === 2, 'subscribed again on the new process');
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});

test('token renewal: in-band refresh before expiry keeps the connection; without it, 4402 and a reconnect with a fresh token from getToken', { timeout: 60_000 }, async () => {
  const server = await startServer(await freePort());
  try {
    // 1. refresh: tokens live 4 s; the client refreshes at 80 % and the connection outlives them.
    let issued = 0;
    const getToken = () => {
      issued += 1;
      return mintToken({ sub: 'it-renew', ttlSeconds: 4 });
    };
    const renewing = makeClient({ url: server.wsUrl, getToken });
    renewing.client.subscribe('it.renew');
    renewing.client.connect();
    await until(() => renewing.client.state === 'connected', 'connected');
    const connectionId = renewing.client.session.connection_id;
    const firstExp = tokenExpiry(new URL(renewing.sockets[0].url).searchParams.get('token'));
    await until(() => Date.now() / 1000 > firstExp + 2, 'past the first token\'s expiry', 15_000);
    assert.equal(renewing.client.state, 'connected');
    assert.equal(renewing.client.session.connection_id, connectionId, 'the same connection');
    assert.ok(renewing.client.stats.refreshes >= 1, 'refreshed at least once');
    assert.ok(renewing.frames.some((f) => f.type === 'refreshed' && f.exp > firstExp));
    assert.equal(renewing.sockets.length, 1);
    assert.ok(issued >= 2);
    await publishUntilReceived(server, renewing.client, 'it.renew', 'renew_probe', 'still-here');

    // 2. no in-band refresh: the gateway ends the connection at exp (4402); getToken renews it on reconnect.
    let plainIssued = 0;
    const plain = makeClient({
      url: server.wsUrl,
      refreshTokens: false,
      getToken: () => {
        plainIssued += 1;
        return mintToken({ sub: 'it-renew-plain', ttlSeconds: 3 });
      },
    });
    plain.client.connect();
    await until(() => plain.client.state === 'connected', 'connected');
    const firstConnection = plain.client.session.connection_id;
    await until(() => plain.states.some((s) => s.state === 'reconnecting' && s.code === 4402), 'closed with 4402 at exp', 10_000);
    assert.ok(plain.errors.some((e) => e.code === 'token_expired'));
    await until(() => plain.client.state === 'connected' && plain.client.session.connection_id !== firstConnection, 'reconnected', 10_000);
    assert.ok(plainIssued >= 2, 'getToken called again for the reconnect');
    const urls = plain.sockets.map((s) => new URL(s.url).searchParams.get('token'));
    assert.notEqual(urls[0], urls.at(-1), 'a fresh token on the new connection');
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});

test('a frozen gateway (SIGSTOP): the heartbeat watchdog gives the silent connection up; SIGCONT: connected again', { timeout: 60_000 }, async () => {
  const server = await startServer(await freePort());
  try {
    const { client, states, errors } = makeClient({
      url: server.wsUrl,
      token: mintToken({ sub: 'it-frozen' }),
      heartbeatTimeoutMs: 1500,
      pingIntervalMs: 300, // pongs keep a healthy connection busy well within the timeout
      connectTimeoutMs: 1000,
      backoff: { initialMs: 100, maxMs: 300 },
    });
    client.subscribe('it.frozen');
    client.connect();
    await until(() => client.state === 'connected', 'connected');
    await sleep(2500);
    assert.equal(client.state, 'connected', 'pings and pongs keep it alive past the timeout');
    assert.equal(client.stats.watchdogFires, 0);

    server.child.kill('SIGSTOP'); // the TCP connection stays open; nothing comes back
    const frozenAt = Date.now();
    try {
      await until(() => client.state === 'reconnecting', 'the watchdog', 5000);
      const gaveUpAfter = Date.now() - frozenAt;
      assert.ok(gaveUpAfter >= 1200, `not before the timeout (${gaveUpAfter} ms)`);
      assert.ok(errors.some((e) => e.code === 'heartbeat_timeout'));
      await sleep(1500); // attempts time out against the frozen process (connectTimeoutMs)
    } finally {
      server.child.kill('SIGCONT');
    }
    await until(() => client.state === 'connected', 'connected after SIGCONT', 15_000);
    await publishUntilReceived(server, client, 'it.frozen', 'frozen_probe', 'thawed');
    assert.ok(client.stats.watchdogFires >= 1);
    assert.ok(states.filter((s) => s.state === 'reconnecting').length >= 1);
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});

test('per-room minimum interval: the gateway conflates a device room to the asked rate', { timeout: 60_000 }, async () => {
  const server = await startServer(await freePort());
  try {
    const room = 'devices.opm-1.m4';
    const every = makeClient({ url: server.wsUrl, token: mintToken({ sub: 'it-rate-all' }) });
    const slow = makeClient({ url: server.wsUrl, token: mintToken({ sub: 'it-rate-slow' }) });
    const all = [];
    const sampled = [];
    every.client.subscribe(room, (m) => m.type === 'data' && all.push(m));
    slow.client.subscribe(room, (m) => m.type === 'data' && sampled.push(m), { minIntervalMs: 500 });
    every.client.connect();
    slow.client.connect();
    await until(() => all.length > 0 && sampled.length > 0, 'readings on both connections', 15_000);
    all.length = 0;
    sampled.length = 0;
    const start = Date.now();
    await sleep(3000);
    const seconds = (Date.now() - start) / 1000;
    const sent = slow.sockets[0];
    assert.ok(sent, 'socket');
    assert.ok(all.length >= 10, `the device room is busy (${all.length} readings in ${seconds} s)`);
    assert.ok(sampled.length <= Math.ceil(seconds / 0.5) + 1, `at most one reading per 500 ms (${sampled.length} in ${seconds} s)`);
    assert.ok(sampled.length >= 3, `still readings (${sampled.length})`);
    for (let i = 1; i < sampled.length; i += 1) {
      const gap = sampled[i].data.timestamp - sampled[i - 1].data.timestamp;
      assert.ok(gap >= 0.35, `readings ${gap.toFixed(3)} s apart`);
    }
  } finally {
    await stopServer(server, 'SIGKILL');
  }
});
