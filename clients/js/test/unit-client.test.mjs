// Unit tests of SwitchboardClient against a scripted fake WebSocket (test/fake-ws.mjs).

import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';

import { SwitchboardClient, backoffCeiling, backoffDelay, tokenExpiry, connectUrl, isDirectMessage } from '../dist/index.js';
import { FakeGateway, fakeJwt, roomMessage, sleep, until } from './fake-ws.mjs';

/** Every client a test made: closed after each test, so a failed assertion leaves no timers behind. */
const clients = [];
const track = (client) => {
  clients.push(client);
  return client;
};
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** A client on a fake gateway that records every state change and error. */
function setup(options = {}, gateway = new FakeGateway()) {
  const client = track(new SwitchboardClient({
    url: 'ws://gateway.test/api/ws/connect',
    token: 't0',
    WebSocket: gateway.WebSocket,
    backoff: { initialMs: 10, maxMs: 40 },
    ...options,
  }));
  const states = [];
  const errors = [];
  client.onState((state, detail) => states.push({ state, ...detail }));
  client.onError((error) => errors.push(error));
  return { client, gateway, states, errors };
}

test('backoff: full jitter within [0, min(30 s, 1 s · 2^(n−1))] over many draws', () => {
  for (let attempt = 1; attempt <= 12; attempt += 1) {
    const ceiling = Math.min(30000, 1000 * 2 ** (attempt - 1));
    assert.equal(backoffCeiling(attempt), ceiling);
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    const draws = 5000;
    for (let i = 0; i < draws; i += 1) {
      const delay = backoffDelay(attempt);
      assert.ok(delay >= 0 && delay <= ceiling, `attempt ${attempt}: ${delay} outside [0, ${ceiling}]`);
      min = Math.min(min, delay);
      max = Math.max(max, delay);
      sum += delay;
    }
    // Full jitter: the draws spread over the whole range, not around the ceiling.
    assert.ok(min < ceiling * 0.05, `attempt ${attempt}: smallest draw ${min}`);
    assert.ok(max > ceiling * 0.95, `attempt ${attempt}: largest draw ${max}`);
    const mean = sum / draws;
    assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `attempt ${attempt}: mean ${mean} vs ${ceiling / 2}`);
  }
  assert.equal(backoffCeiling(50), 30000, 'capped at maxMs');
  assert.equal(backoffDelay(3, 1000, 30000, () => 1), 4000);
  assert.equal(backoffDelay(3, 1000, 30000, () => 0), 0);
  assert.equal(backoffCeiling(4, 200, 1000), 1000);
});

test('the client waits a jittered backoff between attempts, within the configured bounds', async () => {
  const draws = [0.5, 1, 0.25, 1, 1];
  const { client, gateway, states } = setup({ backoff: { initialMs: 20, maxMs: 50 }, maxReconnectAttempts: 5, random: () => draws.shift() ?? 1 });
  gateway.onConnect = (socket) => socket.serverClose(1006, '');
  client.connect();
  await until(() => client.state === 'disconnected', 'giving up');
  const waits = states.filter((s) => s.state === 'reconnecting').map((s) => s.retryInMs);
  // ceilings 20, 40, 50 (capped), 50, 50 times the draws
  assert.deepEqual(waits, [10, 40, 13, 50, 50]);
  // The sockets were really opened that far apart (timers are never early).
  for (let i = 1; i < gateway.sockets.length; i += 1) {
    const gap = gateway.sockets[i].openedAt - gateway.sockets[i - 1].openedAt;
    assert.ok(gap >= waits[i - 1] - 2, `attempt ${i}: opened after ${gap} ms, wait was ${waits[i - 1]}`);
  }
});

test('state machine: connecting → connected, and the URL carries the token and the subprotocol', async () => {
  const { client, gateway, states } = setup();
  assert.equal(client.state, 'disconnected');
  client.connect();
  assert.equal(client.state, 'connecting');
  await until(() => client.state === 'connected', 'connected');
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'connected']);
  assert.equal(gateway.last.url, 'ws://gateway.test/api/ws/connect?token=t0');
  assert.equal(gateway.last.protocols, 'switchboard.v1.json');
  assert.equal(gateway.last.binaryType, 'arraybuffer');
  assert.equal(client.session.server_id, 'gw-test');
  assert.equal(client.detail.maxAttempts, Infinity);
  client.close();
  assert.equal(client.state, 'disconnected');
  assert.deepEqual(gateway.last.closedByClient, { code: 1000, reason: 'client closed' });
  await sleep(60);
  assert.equal(gateway.sockets.length, 1, 'close() never reconnects');
});

test('maxReconnectAttempts: after the last failed attempt the client is disconnected and stops', async () => {
  const { client, gateway, states, errors } = setup({ maxReconnectAttempts: 3 });
  gateway.onConnect = (socket) => socket.serverClose(1006, '');
  client.connect();
  await until(() => client.state === 'disconnected', 'disconnected');
  assert.deepEqual(
    states.map((s) => `${s.state}:${s.attempt}/${s.maxAttempts}`),
    ['connecting:0/3', 'reconnecting:1/3', 'reconnecting:2/3', 'reconnecting:3/3', 'disconnected:3/3'],
  );
  assert.equal(gateway.sockets.length, 4, 'the first connection and three reconnects');
  assert.equal(client.detail.error.code, 'max_reconnect_attempts');
  assert.ok(errors.some((e) => e.code === 'max_reconnect_attempts'));
  await sleep(100);
  assert.equal(gateway.sockets.length, 4, 'nothing after giving up');
});

test('a successful connection resets the attempt count', async () => {
  const { client, gateway, states } = setup({ maxReconnectAttempts: 3 });
  let n = 0;
  // Fail, fail, accept; then (after the drop) fail, fail, accept: 4 failures in all, more than
  // maxReconnectAttempts, yet never 3 in a row.
  gateway.onConnect = (socket) => (++n % 3 === 0 ? socket.accept() : socket.serverClose(1006, ''));
  client.connect();
  await until(() => client.state === 'connected', 'first connection');
  gateway.last.serverClose(1006, '');
  await until(() => client.state === 'connected' && gateway.sockets.length === 6, 'second connection');
  assert.deepEqual(
    states.map((s) => `${s.state}:${s.attempt}`),
    ['connecting:0', 'reconnecting:1', 'reconnecting:2', 'connected:0', 'reconnecting:1', 'reconnecting:2', 'reconnecting:3', 'connected:0'],
  );
  client.close();
});

for (const [code, errorCode] of [[4401, 'token_invalid'], [4403, 'origin_not_allowed']]) {
  test(`no retry after close ${code}: disconnected with the gateway's error`, async () => {
    const { client, gateway, errors } = setup();
    gateway.onConnect = (socket) => {
      socket.readyState = 1;
      socket.deliver({ type: 'error', code: errorCode, message: 'refused', recoverable: false, timestamp: new Date().toISOString() });
      socket.serverClose(code, errorCode);
    };
    client.connect();
    await until(() => client.state === 'disconnected', 'disconnected');
    assert.equal(client.detail.code, code);
    assert.deepEqual(client.detail.error, { code: errorCode, message: 'refused' });
    assert.equal(errors[0].code, errorCode);
    await sleep(100);
    assert.equal(gateway.sockets.length, 1, `no reconnect after ${code}`);
  });
}

test('close 4402 (token expired): reconnects with a fresh token from getToken, gives up without getToken', async () => {
  let calls = 0;
  const { client, gateway } = setup({ token: undefined, getToken: async () => `tok-${++calls}` });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  assert.match(gateway.last.url, /token=tok-1$/);
  gateway.last.deliver({ type: 'error', code: 'token_expired', message: 'token has expired', recoverable: false, timestamp: 'x' });
  gateway.last.serverClose(4402, 'token_expired');
  assert.equal(client.state, 'reconnecting');
  await until(() => client.state === 'connected' && gateway.sockets.length === 2, 'reconnected');
  assert.match(gateway.last.url, /token=tok-2$/);
  assert.equal(calls, 2, 'getToken before every connect');
  client.close();

  const fixed = setup();
  fixed.client.connect();
  await until(() => fixed.client.state === 'connected', 'connected');
  fixed.gateway.last.serverClose(4402, 'token_expired');
  assert.equal(fixed.client.state, 'disconnected');
  assert.equal(fixed.client.detail.error.code, 'token_expired');
});

test('a failing getToken counts as a failed attempt and is reported', async () => {
  let calls = 0;
  const { client, gateway, errors } = setup({
    token: undefined,
    getToken: () => {
      calls += 1;
      if (calls < 3) throw new Error('issuer down');
      return 'good';
    },
  });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  assert.equal(gateway.sockets.length, 1, 'no socket without a token');
  assert.equal(errors.filter((e) => e.code === 'token_unavailable').length, 2);
  client.close();
});

test('reconnect {retry_after}: the next attempt waits at least that long', async () => {
  const { client, gateway, states } = setup({ random: () => 0 });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const first = gateway.last;
  first.deliver({ type: 'reconnect', reason: 'server shutting down', retry_after: 0.3 });
  const closedAt = Date.now();
  first.serverClose(1001, 'shutting_down');
  const waiting = states[states.length - 1];
  assert.equal(waiting.state, 'reconnecting');
  assert.equal(waiting.code, 1001);
  assert.equal(waiting.retryInMs, 300, 'retry_after is the floor (the jittered backoff drew 0)');
  await until(() => gateway.sockets.length === 2, 'second socket');
  assert.ok(gateway.last.openedAt - closedAt >= 295, `reopened after ${gateway.last.openedAt - closedAt} ms`);
  await until(() => client.state === 'connected', 'connected again');
  // Used once: the next loss is back to plain backoff.
  gateway.last.serverClose(1006, '');
  assert.equal(states[states.length - 1].retryInMs, 0);
  client.close();
});

test('reconnect without the close that should follow: the client drops the socket itself', async () => {
  const { client, gateway, states } = setup({ random: () => 0 });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  gateway.last.deliver({ type: 'reconnect', reason: 'drain', retry_after: 0.05 });
  await until(() => gateway.sockets.length === 2, 'reconnected after the wait', 4000);
  assert.ok(gateway.sockets[0].closedByClient, 'the old socket was closed by the client');
  assert.ok(states.some((s) => s.state === 'reconnecting' && s.retryInMs >= 50));
  client.close();
});

test('handler exceptions are isolated: other handlers still run, the client stays up, onError hears of it', async () => {
  const { client, gateway, errors } = setup();
  const seen = [];
  client.on('alert', () => {
    throw new Error('boom in on()');
  });
  client.on('alert', (m) => seen.push(`on:${m.data.n}`));
  client.on('*', (m) => seen.push(`*:${m.data.n}`));
  client.subscribe('alerts', () => {
    throw new Error('boom in subscribe()');
  });
  client.subscribe('alerts', (m) => seen.push(`sub:${m.data.n}`));
  client.onState(() => {
    throw new Error('boom in onState()');
  });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  gateway.last.deliver(roomMessage('alerts', 'alert', { n: 1 }));
  gateway.last.deliver(roomMessage('alerts', 'alert', { n: 2 }));
  assert.deepEqual(seen, ['sub:1', 'on:1', '*:1', 'sub:2', 'on:2', '*:2']);
  const handlerErrors = errors.filter((e) => e.code === 'handler_error');
  assert.ok(handlerErrors.length >= 4, `reported: ${JSON.stringify(handlerErrors.map((e) => e.message))}`);
  assert.ok(handlerErrors.some((e) => e.message.includes('boom in on()')));
  assert.ok(handlerErrors.some((e) => e.message.includes('boom in subscribe()') && e.room === 'alerts'));
  assert.equal(client.state, 'connected');
  client.close();
});

test('direct messages (to the user, to the connection, broadcast) reach on(type) and on(*) with no subscription', async () => {
  const { client, gateway, errors } = setup();
  const seen = [];
  client.on('invoice_ready', (m) => seen.push(`on:${m.user}:${isDirectMessage(m)}`));
  client.on('*', (m) => seen.push(`*:${m.type}:${m.user ?? m.connection_id ?? (m.broadcast ? 'all' : 'room')}`));
  client.subscribe('alerts', (m) => seen.push(`sub:${m.type}`));
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const at = new Date().toISOString();
  gateway.last.deliver({ type: 'invoice_ready', user: 'alice', data: { id: 7 }, timestamp: at });
  gateway.last.deliver({ type: 'just_you', connection_id: 'c-1', data: {}, timestamp: at });
  gateway.last.deliver({ type: 'maintenance', broadcast: true, data: {}, timestamp: at });
  gateway.last.deliver(roomMessage('alerts', 'alert', { n: 1 }));
  // Neither a room nor a target: not a message the client knows, handed to nobody.
  gateway.last.deliver({ type: 'stray', data: {}, timestamp: at });
  assert.deepEqual(seen, [
    'on:alice:true',
    '*:invoice_ready:alice',
    '*:just_you:c-1',
    '*:maintenance:all',
    'sub:alert',
    '*:alert:room',
  ]);
  assert.equal(client.stats.messages, 4);
  assert.deepEqual(errors, []);
  // Subscribing was never needed for them: only `alerts` was asked for.
  const subscribes = gateway.last.sent.filter((frame) => frame.type === 'subscribe');
  assert.deepEqual(subscribes.flatMap((frame) => frame.rooms), ['alerts']);
  client.close();
});

test('an onError handler that throws does not break the client', async () => {
  const { client, gateway } = setup();
  client.onError(() => {
    throw new Error('error handler broken');
  });
  const seen = [];
  client.on('x', () => {
    throw new Error('first');
  });
  client.on('x', (m) => seen.push(m.data));
  const original = console.error;
  console.error = () => {};
  try {
    client.connect();
    await until(() => client.state === 'connected', 'connected');
    gateway.last.deliver(roomMessage('r', 'x', 7));
  } finally {
    console.error = original;
  }
  assert.deepEqual(seen, [7]);
  client.close();
});

test('offline queue: bounded, oldest dropped and counted, flushed in order after connecting', async () => {
  const { client, gateway } = setup({ offlineQueueLimit: 100 });
  for (let i = 1; i <= 150; i += 1) assert.equal(client.send({ type: 'publish', room: 'r', event: 'e', data: i }), false);
  assert.deepEqual({ queued: client.stats.queued, dropped: client.stats.dropped }, { queued: 100, dropped: 50 });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const published = gateway.last.framesOf('publish').map((f) => f.data);
  assert.deepEqual(published, Array.from({ length: 100 }, (_, i) => i + 51));
  assert.equal(client.stats.queued, 0);
  assert.equal(client.send({ type: 'publish', room: 'r', event: 'e', data: 'now' }), true, 'sent at once when connected');
  assert.equal(gateway.last.sent.at(-1).data, 'now');
  client.close();
  assert.equal(client.send({ type: 'ping' }), false);
  assert.equal(client.stats.queued, 1);
});

test('offlineQueueLimit 0 drops everything sent offline', () => {
  const { client } = setup({ offlineQueueLimit: 0 });
  client.send({ type: 'ping' });
  client.send({ type: 'ping' });
  assert.deepEqual({ queued: client.stats.queued, dropped: client.stats.dropped }, { queued: 0, dropped: 2 });
});

test('resubscribe after reconnect: every room, its rate, and since where a seq was seen', async () => {
  const { client, gateway } = setup({ random: () => 0 });
  client.subscribe('nodes');
  client.subscribe('devices.opm-1.m4', () => {}, { minIntervalMs: 250 });
  client.subscribe('alerts', () => {}, { since: 41 });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const firstFrames = gateway.last.framesOf('subscribe');
  assert.deepEqual(firstFrames, [
    { type: 'subscribe', rooms: ['nodes', 'alerts'], since: { alerts: 41 } },
    { type: 'subscribe', rooms: ['devices.opm-1.m4'], min_interval_ms: 250 },
  ]);
  gateway.last.deliver(roomMessage('nodes', 'node_status_update', {}, { seq: 9 }));
  gateway.last.deliver(roomMessage('alerts', 'alert', {}, { seq: 43 }));
  gateway.last.serverClose(1006, '');
  await until(() => client.state === 'connected' && gateway.sockets.length === 2, 'reconnected');
  assert.deepEqual(gateway.last.framesOf('subscribe'), [
    { type: 'subscribe', rooms: ['nodes', 'alerts'], since: { nodes: 9, alerts: 43 } },
    { type: 'subscribe', rooms: ['devices.opm-1.m4'], min_interval_ms: 250 },
  ]);
  // Without any seq (no room with history), nothing extra is sent.
  client.unsubscribe('nodes');
  client.unsubscribe('alerts');
  client.subscribe('metrics');
  assert.deepEqual(gateway.last.sent.at(-1), { type: 'subscribe', rooms: ['metrics'] });
  client.close();
});

test('subscribed {recovered: false} for a room resumed with since is reported as a history gap', async () => {
  const { client, gateway, errors } = setup();
  client.subscribe('alerts', () => {}, { since: 5 });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  gateway.last.deliver({ type: 'subscribed', rooms: ['alerts'], recovered: false });
  assert.equal(errors.find((e) => e.code === 'history_gap')?.room, 'alerts');
  client.close();
});

test('several handlers share one server subscription; the last one out unsubscribes', async () => {
  const { client, gateway } = setup();
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const a = [];
  const b = [];
  const offA = client.subscribe('nodes', (m) => a.push(m.data));
  const offB = client.subscribe('nodes', (m) => b.push(m.data));
  assert.equal(gateway.last.framesOf('subscribe').length, 1);
  gateway.last.deliver(roomMessage('nodes', 'node_status_update', 1));
  offA();
  offA();
  assert.equal(gateway.last.framesOf('unsubscribe').length, 0);
  gateway.last.deliver(roomMessage('nodes', 'node_status_update', 2));
  offB();
  assert.deepEqual(gateway.last.framesOf('unsubscribe'), [{ type: 'unsubscribe', rooms: ['nodes'] }]);
  gateway.last.deliver(roomMessage('nodes', 'node_status_update', 3));
  assert.deepEqual(a, [1]);
  assert.deepEqual(b, [1, 2]);
  assert.deepEqual(client.subscribedRooms, []);
  // on() handlers and their unsubscribe
  const seen = [];
  const off = client.on('*', (m) => seen.push(m.type));
  gateway.last.deliver(roomMessage('x', 'one'));
  off();
  gateway.last.deliver(roomMessage('x', 'two'));
  assert.deepEqual(seen, ['one']);
  client.close();
});

test('minimum interval: the server is asked for min_interval_ms and the handler gets the newest at most once per interval', async () => {
  const { client, gateway } = setup();
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const slow = [];
  const fast = [];
  client.subscribe('devices.opm-1.m4', (m) => slow.push(`${m.type}:${m.data}`), { minIntervalMs: 120 });
  assert.deepEqual(gateway.last.sent.at(-1), { type: 'subscribe', rooms: ['devices.opm-1.m4'], min_interval_ms: 120 });
  // A second handler without a rate: the server must send every message again.
  const offFast = client.subscribe('devices.opm-1.m4', (m) => fast.push(m.data));
  assert.deepEqual(gateway.last.sent.at(-1), { type: 'subscribe', rooms: ['devices.opm-1.m4'] });
  const start = Date.now();
  for (let i = 1; i <= 10; i += 1) gateway.last.deliver(roomMessage('devices.opm-1.m4', 'data', i));
  gateway.last.deliver(roomMessage('devices.opm-1.m4', 'device_status', 's1'));
  assert.deepEqual(slow, ['data:1', 'device_status:s1'], 'first of each type at once; types never replace each other');
  assert.equal(fast.length, 11);
  await until(() => slow.length === 3, 'the held newest value', 1000);
  assert.equal(slow[2], 'data:10', 'values in between were replaced, not queued');
  assert.ok(Date.now() - start >= 115);
  // device_error is never held, and drops the value still held.
  gateway.last.deliver(roomMessage('devices.opm-1.m4', 'data', 11));
  gateway.last.deliver(roomMessage('devices.opm-1.m4', 'device_error', 'fault'));
  assert.deepEqual(slow.slice(3), ['device_error:fault']);
  await sleep(200);
  assert.deepEqual(slow.slice(3), ['device_error:fault'], 'the held reading, older than the fault, was dropped');
  offFast();
  assert.deepEqual(gateway.last.sent.at(-1), { type: 'subscribe', rooms: ['devices.opm-1.m4'], min_interval_ms: 120 }, 'rate restored');
  client.close();
});

test('a minimum interval below the gateway floor (50 ms) is applied on the client only', async () => {
  const { client, gateway } = setup();
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const got = [];
  client.subscribe('r', (m) => got.push(m.data), { minIntervalMs: 30 });
  assert.deepEqual(gateway.last.sent.at(-1), { type: 'subscribe', rooms: ['r'] });
  for (let i = 1; i <= 5; i += 1) gateway.last.deliver(roomMessage('r', 'e', i));
  assert.deepEqual(got, [1]);
  await until(() => got.length === 2, 'the newest', 500);
  assert.deepEqual(got, [1, 5]);
  client.subscribe('q', () => {}, { minIntervalMs: 120000 });
  assert.deepEqual(gateway.last.sent.at(-1), { type: 'subscribe', rooms: ['q'], min_interval_ms: 60000 }, 'clamped to the gateway maximum');
  client.close();
});

test('heartbeat watchdog: a silent connection is dropped and replaced', async () => {
  const { client, gateway, errors } = setup({ heartbeatTimeoutMs: 300, pingIntervalMs: 0, random: () => 0 });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  // Frames keep it alive (for well over the timeout)...
  const start = Date.now();
  while (Date.now() - start < 700) {
    await sleep(40);
    gateway.last.deliver({ type: 'heartbeat', timestamp: 'x', active_streams: 0 });
  }
  assert.equal(gateway.sockets.length, 1, 'no reconnect while frames arrive');
  // ...silence does not.
  const silentFrom = Date.now();
  await until(() => gateway.sockets.length === 2, 'a new socket after the watchdog', 3000);
  assert.ok(Date.now() - silentFrom >= 290, 'not before the timeout');
  assert.equal(client.stats.watchdogFires, 1);
  assert.ok(errors.some((e) => e.code === 'heartbeat_timeout'));
  assert.equal(gateway.sockets[0].closedByClient.code, 4000);
  client.close();
});

test('connect timeout: no connection_established in time counts as a failed attempt', async () => {
  const { client, gateway, errors } = setup({ connectTimeoutMs: 60, maxReconnectAttempts: 1 });
  gateway.onConnect = (socket) => {
    socket.readyState = 1; // open, but never greets
  };
  client.connect();
  await until(() => client.state === 'disconnected', 'gave up', 2000);
  assert.equal(gateway.sockets.length, 2);
  assert.ok(errors.some((e) => e.code === 'connect_timeout'));
});

test('pings: {type: ping} every pingIntervalMs while connected', async () => {
  const { client, gateway } = setup({ pingIntervalMs: 25 });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  await until(() => gateway.last.framesOf('ping').length >= 3, 'three pings', 1000);
  client.close();
  const count = gateway.last.framesOf('ping').length;
  await sleep(80);
  assert.equal(gateway.last.framesOf('ping').length, count, 'no pings after close');
});

test('MessagePack: binary frames both ways, decoded to the same messages as JSON', async () => {
  const got = {};
  for (const format of ['json', 'msgpack']) {
    const { client, gateway } = setup({ format });
    const messages = [];
    client.subscribe('nodes', (m) => messages.push(m));
    client.connect();
    await until(() => client.state === 'connected', `connected (${format})`);
    assert.equal(gateway.last.protocols, `switchboard.v1.${format}`);
    const raw = gateway.last.rawSent[0];
    assert.equal(typeof raw === 'string', format === 'json', `${format} frames are ${format === 'json' ? 'text' : 'binary'}`);
    gateway.last.deliver(roomMessage('nodes', 'node_status_update', { active_nodes: 3, layers: { edge: { active: 2, offline: 1 } }, ratio: 0.5 }, { timestamp: '2025-10-22T10:30:00.123Z', seq: 7 }));
    got[format] = messages;
    client.close();
  }
  assert.equal(got.json.length, 1);
  assert.deepEqual(got.msgpack, got.json);
});

test('decode failures are reported and the connection survives', async () => {
  const { client, gateway, errors } = setup();
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  gateway.last.onmessage({ data: '{not json' });
  gateway.last.onmessage({ data: '[1,2]' });
  assert.equal(errors.filter((e) => e.code === 'decode_failed').length, 2);
  assert.equal(client.state, 'connected');
  client.close();
});

test('gateway error frames reach onError with room and recoverable', async () => {
  const { client, gateway, errors } = setup();
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  gateway.last.deliver({ type: 'error', code: 'forbidden', message: 'not allowed for this token', recoverable: true, room: 'admin', timestamp: 'x' });
  assert.deepEqual(errors.at(-1), { code: 'forbidden', message: 'not allowed for this token', recoverable: true, room: 'admin' });
  gateway.last.deliver({ type: 'unsubscribed', rooms: ['secret'], reason: 'forbidden' });
  assert.equal(errors.at(-1).room, 'secret');
  client.close();
});

test('token renewal: refresh with a newer token from getToken at 80 % of the lifetime', async () => {
  const now = Math.floor(Date.now() / 1000);
  let issued = 0;
  const getToken = () => fakeJwt({ sub: 'u1', exp: now + 3 + issued++ * 10 });
  const { client, gateway } = setup({ token: undefined, getToken });
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const refresh = await until(() => gateway.last.framesOf('refresh')[0], 'a refresh frame', 6000);
  assert.equal(tokenExpiry(refresh.token), now + 13);
  gateway.last.deliver({ type: 'refreshed', exp: now + 13 });
  assert.equal(client.stats.refreshes, 1);
  client.close();
});

test('tokenExpiry and connectUrl', () => {
  assert.equal(tokenExpiry(fakeJwt({ sub: 'ü', exp: 1761131000 })), 1761131000);
  assert.equal(tokenExpiry('not-a-jwt'), undefined);
  assert.equal(connectUrl('ws://h:1/api/ws/connect', 'a b'), 'ws://h:1/api/ws/connect?token=a+b');
  assert.equal(connectUrl('https://h/api/ws/connect?x=1', 't'), 'wss://h/api/ws/connect?x=1&token=t');
  globalThis.location = { href: 'https://dash.example:8443/app/' };
  try {
    assert.equal(connectUrl('/api/ws/connect', 't'), 'wss://dash.example:8443/api/ws/connect?token=t');
  } finally {
    delete globalThis.location;
  }
});

test('no WebSocket implementation: disconnected with a clear error', () => {
  const client = track(new SwitchboardClient({ url: 'ws://h/api/ws/connect', WebSocket: undefined }));
  const errors = [];
  client.onError((e) => errors.push(e));
  if (globalThis.WebSocket === undefined) {
    client.connect();
    return until(() => client.state === 'disconnected' && errors.length === 1, 'disconnected').then(() => {
      assert.equal(errors[0].code, 'no_websocket');
    });
  }
  return undefined;
});

test('reconnectNow skips a long wait and starts the count again', async () => {
  const { client, gateway, states } = setup({ backoff: { initialMs: 60_000, maxMs: 60_000 }, random: () => 1 });
  let n = 0;
  gateway.onConnect = (socket) => (++n === 1 ? socket.serverClose(1006, '') : socket.accept());
  client.connect();
  await until(() => client.state === 'reconnecting', 'reconnecting');
  assert.equal(client.detail.retryInMs, 60_000);
  client.reconnectNow();
  await until(() => client.state === 'connected', 'connected at once', 1000);
  assert.equal(gateway.sockets.length, 2);
  // Never connected yet, so the retry shows as 'connecting' again.
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'reconnecting', 'connecting', 'connected']);
});

test('close() while getToken is pending: no socket is opened afterwards', async () => {
  let release;
  const { client, gateway } = setup({ token: undefined, getToken: () => new Promise((resolve) => { release = resolve; }) });
  client.connect();
  await until(() => release, 'getToken called');
  client.close();
  release('late-token');
  await sleep(30);
  assert.equal(gateway.sockets.length, 0);
  assert.equal(client.state, 'disconnected');
});
