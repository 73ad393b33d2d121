// A scripted stand-in for the WebSocket constructor, with the gateway's side in the test's hands.

import { decode, encode } from '@msgpack/msgpack';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 5 ms until truthy, or fails after `timeout` ms. */
export async function until(condition, what, timeout = 3000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * The fake gateway: every socket the client opens lands in `sockets`; `onConnect(socket)`
 * decides what happens (default: accept and greet).
 */
export class FakeGateway {
  constructor() {
    this.sockets = [];
    this.onConnect = (socket) => socket.accept();
    const gateway = this;
    this.WebSocket = class FakeWebSocket {
      static CONNECTING = 0;
      static OPEN = 1;
      static CLOSING = 2;
      static CLOSED = 3;
      constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.readyState = 0;
        this.binaryType = 'blob';
        this.onopen = null;
        this.onmessage = null;
        this.onclose = null;
        this.onerror = null;
        this.sent = [];
        this.rawSent = [];
        this.openedAt = Date.now();
        this.closedByClient = null;
        gateway.sockets.push(this);
        setTimeout(() => {
          if (this.readyState === 0) gateway.onConnect(this);
        }, 1);
      }

      get format() {
        const list = Array.isArray(this.protocols) ? this.protocols : [this.protocols];
        return list.includes('switchboard.v1.msgpack') ? 'msgpack' : 'json';
      }

      send(data) {
        if (this.readyState !== 1) throw new Error('not open');
        this.rawSent.push(data);
        this.sent.push(typeof data === 'string' ? JSON.parse(data) : decode(data));
      }

      close(code, reason) {
        if (this.readyState === 3) return;
        this.closedByClient = { code, reason };
        this.readyState = 3;
      }

      // --- the gateway's side ---

      accept(greeting = {}) {
        this.readyState = 1;
        this.onopen?.({});
        this.deliver({
          type: 'connection_established',
          connection_id: `c${gateway.sockets.indexOf(this)}`,
          server_id: 'gw-test',
          heartbeat_interval_ms: 30000,
          timestamp: new Date().toISOString(),
          ...greeting,
        });
      }

      /** Sends a frame to the client in the negotiated format. */
      deliver(frame) {
        if (this.readyState !== 1) return;
        const data = this.format === 'msgpack' ? new Uint8Array(encode(frame)).buffer : JSON.stringify(frame);
        this.onmessage?.({ data });
      }

      /** Ends the connection from the server's side (or a refused / lost connection). */
      serverClose(code = 1006, reason = '') {
        if (this.readyState === 3) return;
        this.readyState = 3;
        this.onclose?.({ code, reason });
      }

      /** Frames of `type` the client sent on this socket. */
      framesOf(type) {
        return this.sent.filter((frame) => frame.type === type);
      }
    };
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }
}

/** A room message as the gateway sends it. */
export function roomMessage(room, type, data = {}, extra = {}) {
  return { type, room, data, timestamp: new Date().toISOString(), ...extra };
}

/** An unsigned JWT-shaped token with the given claims (the fake gateway does not verify). */
export function fakeJwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.c2ln`;
}
