// The React binding: the room store it is built on, a real client-side render in jsdom
// (react-dom/client + act) driven by the fake gateway, and a server render.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { JSDOM } from 'jsdom';

import { SwitchboardClient, createRoomStore } from '../dist/index.js';
import { FakeGateway, roomMessage, until } from './fake-ws.mjs';

let React;
let act;
let createRoot;
let renderToString;
let binding;
let dom;

before(async () => {
  dom = new JSDOM('<!doctype html><div id="root"></div>');
  globalThis.window = dom.window;
  globalThis.document = dom.window.document;
  if (globalThis.navigator === undefined) globalThis.navigator = dom.window.navigator;
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  React = await import('react');
  act = React.act;
  ({ createRoot } = await import('react-dom/client'));
  ({ renderToString } = await import('react-dom/server'));
  binding = await import('../dist/react.js');
});

after(() => {
  delete globalThis.window;
  delete globalThis.document;
  delete globalThis.IS_REACT_ACT_ENVIRONMENT;
  dom?.window.close();
});

const clients = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

function newClient(gateway = new FakeGateway()) {
  const client = new SwitchboardClient({ url: 'ws://gateway.test/api/ws/connect', token: 't', WebSocket: gateway.WebSocket, backoff: { initialMs: 5, maxMs: 10 } });
  clients.push(client);
  return { client, gateway };
}

test('room store: one client subscription for many listeners, stable snapshots, keep, event filter, clear', async () => {
  const { client, gateway } = newClient();
  client.connect();
  await until(() => client.state === 'connected', 'connected');
  const store = createRoomStore(client, 'nodes', { keep: 2, event: 'node_status_update' });
  const empty = store.getSnapshot();
  assert.deepEqual(empty, { last: null, messages: [] });
  let calls = 0;
  const offA = store.subscribe(() => calls++);
  const offB = store.subscribe(() => calls++);
  assert.equal(gateway.last.framesOf('subscribe').length, 1, 'one server subscription');
  assert.equal(store.getSnapshot(), empty, 'same object until a message');
  for (const n of [1, 2, 3]) gateway.last.deliver(roomMessage('nodes', 'node_status_update', { n }));
  gateway.last.deliver(roomMessage('nodes', 'other_event', { n: 99 }));
  const snap = store.getSnapshot();
  assert.equal(snap, store.getSnapshot(), 'stable between messages');
  assert.equal(snap.last.data.n, 3);
  assert.deepEqual(snap.messages.map((m) => m.data.n), [3, 2]);
  assert.equal(calls, 6, 'both listeners told of each matching message');
  offA();
  assert.equal(gateway.last.framesOf('unsubscribe').length, 0);
  offB();
  assert.deepEqual(gateway.last.framesOf('unsubscribe'), [{ type: 'unsubscribe', rooms: ['nodes'] }]);
  store.clear();
  assert.deepEqual(store.getSnapshot(), { last: null, messages: [] });

  // clearOnDisconnect: a lost connection empties the store (no stale readings shown as live).
  const live = createRoomStore(client, 'devices.opm-1.m4', { clearOnDisconnect: true });
  const kept = createRoomStore(client, 'devices.opm-1.m4');
  const offLive = live.subscribe(() => {});
  const offKept = kept.subscribe(() => {});
  gateway.last.deliver(roomMessage('devices.opm-1.m4', 'data', { ch1_power: -1 }));
  assert.equal(live.getSnapshot().last.data.ch1_power, -1);
  gateway.onConnect = () => {};
  gateway.last.serverClose(1006, '');
  assert.equal(live.getSnapshot().last, null);
  assert.equal(kept.getSnapshot().last.data.ch1_power, -1);
  offLive();
  offKept();
  client.close();
});

test('hooks in a real render: connection state and room messages update the component; unmount unsubscribes', async () => {
  const { client, gateway } = newClient();
  const h = React.createElement;
  const renders = { status: 0 };
  function Status() {
    renders.status += 1;
    const { state, detail } = binding.useConnectionState();
    return h('p', { id: 'state' }, `${state}:${detail.attempt}`);
  }
  function Nodes() {
    const { last, messages } = binding.useRoom('nodes', { keep: 3, event: 'node_status_update' });
    return h('p', { id: 'nodes' }, `${last ? last.data.n : 'none'}|${messages.map((m) => m.data.n).join(',')}`);
  }
  function Same() {
    // useSwitchboard returns the provider's client.
    return h('p', { id: 'same' }, String(binding.useSwitchboard() === client));
  }
  const container = document.getElementById('root');
  const root = createRoot(container);
  const text = (id) => container.querySelector(`#${id}`).textContent;
  await act(async () => {
    root.render(h(binding.SwitchboardProvider, { client }, h(Status), h(Nodes), h(Same)));
  });
  assert.equal(text('state'), 'disconnected:0');
  assert.equal(text('nodes'), 'none|');
  assert.equal(text('same'), 'true');

  await act(async () => {
    client.connect();
  });
  await act(async () => {
    await until(() => client.state === 'connected', 'connected');
  });
  assert.equal(text('state'), 'connected:0');
  assert.deepEqual(gateway.last.framesOf('subscribe'), [{ type: 'subscribe', rooms: ['nodes'] }], 'useRoom subscribed once');

  await act(async () => {
    for (const n of [1, 2, 3, 4]) gateway.last.deliver(roomMessage('nodes', 'node_status_update', { n }));
    gateway.last.deliver(roomMessage('nodes', 'something_else', { n: 0 }));
  });
  assert.equal(text('nodes'), '4|4,3,2');

  await act(async () => {
    gateway.onConnect = (socket) => socket.serverClose(1006, '');
    gateway.last.serverClose(1006, 'lost');
  });
  assert.match(text('state'), /^reconnecting:\d+$/);

  await act(async () => root.unmount());
  assert.deepEqual(gateway.sockets[0].framesOf('unsubscribe'), [], 'nothing sent on a dead socket');
  assert.deepEqual(client.subscribedRooms, [], 'unmount removed the subscription');
  client.close();
});

test('useSwitchboardEvent calls the latest handler while mounted', async () => {
  const { client, gateway } = newClient();
  const h = React.createElement;
  const seen = [];
  function Listener({ tag }) {
    binding.useSwitchboardEvent('alert', (m) => seen.push(`${tag}:${m.data.n}`));
    return null;
  }
  const container = document.createElement('div');
  const root = createRoot(container);
  await act(async () => root.render(h(binding.SwitchboardProvider, { client }, h(Listener, { tag: 'a' }))));
  client.connect();
  await act(async () => {
    await until(() => client.state === 'connected', 'connected');
  });
  await act(async () => gateway.last.deliver(roomMessage('alerts', 'alert', { n: 1 })));
  await act(async () => root.render(h(binding.SwitchboardProvider, { client }, h(Listener, { tag: 'b' }))));
  await act(async () => gateway.last.deliver(roomMessage('alerts', 'alert', { n: 2 })));
  await act(async () => root.unmount());
  gateway.last.deliver(roomMessage('alerts', 'alert', { n: 3 }));
  assert.deepEqual(seen, ['a:1', 'b:2']);
  client.close();
});

test('server render: the hooks render the client state without a DOM event loop; no provider is an error', () => {
  const { client } = newClient();
  const h = React.createElement;
  function View() {
    const { state } = binding.useConnectionState();
    const { last } = binding.useRoom('alerts');
    return h('span', null, `${state}/${last === null ? 'no alert' : 'alert'}`);
  }
  const html = renderToString(h(binding.SwitchboardProvider, { client }, h(View)));
  assert.equal(html, '<span>disconnected/no alert</span>');
  const original = console.error;
  console.error = () => {};
  try {
    assert.throws(() => renderToString(h(View)), /no <SwitchboardProvider/);
  } finally {
    console.error = original;
  }
});
