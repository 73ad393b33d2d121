/**
 * SwitchboardClient: a reconnecting client for `/api/ws/connect`.
 *
 * States (seed 003): `connecting` (the first connection) → `connected` (after the gateway's
 * `connection_established`) → `reconnecting` (waiting for, or making, attempt n) → … ;
 * `disconnected` is where `close()`, an authentication refusal (close 4401/4403, or 4402
 * without `getToken`) and the last of `maxReconnectAttempts` failed attempts end.
 */

import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import { decodeFrame, encodeFrame, subprotocolOf, type Format } from './codec.js';
import {
  CloseCode,
  CONTROL_TYPES,
  type ConnectionEstablishedFrame,
  type ErrorFrame,
  type ReconnectFrame,
  type RefreshedFrame,
  type SubscribeFrame,
  type SubscribedFrame,
  type UnsubscribedFrame,
} from './protocol.js';
import { Conflator } from './throttle.js';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

/** What goes with a state. */
export interface StateDetail {
  /** The reconnect attempt being waited for or made (1-based); 0 when connecting or connected. */
  attempt: number;
  /** `maxReconnectAttempts` (Infinity when unlimited). */
  maxAttempts: number;
  /** Close code of the connection that ended, if one did. */
  code?: number;
  /** Close reason or why the client gave up. */
  reason?: string;
  /** While `reconnecting`: the delay before this attempt, in ms. */
  retryInMs?: number;
  /** The error that ended the connection, if known (the gateway's `error` frame, or a client-side code). */
  error?: { code: string; message: string };
}

/** A room message as the gateway sends it. */
export interface RoomMessage<T = unknown> {
  type: string;
  room: string;
  data: T;
  timestamp?: string;
  seq?: number;
  priority?: string;
  [k: string]: unknown;
}

/**
 * A message without a room, which needs no subscription (direct_message.schema.json): to this
 * client's user (`user`, the token's `sub`), to this connection (`connection_id`), or to every
 * connection (`broadcast: true`). Exactly one of the three is set.
 */
export interface DirectMessage<T = unknown> {
  type: string;
  user?: string;
  connection_id?: string;
  broadcast?: true;
  data: T;
  timestamp?: string;
  [k: string]: unknown;
}

/** What {@link SwitchboardClient.on} handlers receive: a room message or a direct message. */
export type IncomingMessage<T = unknown> = RoomMessage<T> | DirectMessage<T>;

/** Reports whether `message` is a direct message (it has no `room`). */
export function isDirectMessage<T>(message: IncomingMessage<T>): message is DirectMessage<T> {
  return typeof (message as { room?: unknown }).room !== 'string';
}

/** An error reported by {@link SwitchboardClient.onError}. */
export interface SwitchboardError {
  /** The gateway's error code (proto/error-codes.md), or one of the client's own (see README). */
  code: string;
  message: string;
  /** The room it concerns, if any. */
  room?: string;
  /** From a gateway `error` frame: whether the connection stays usable. */
  recoverable?: boolean;
  /** The exception behind a client-side error. */
  cause?: unknown;
}

/** A WebSocket constructor, the browser's or a compatible one (`ws` in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface SwitchboardOptions {
  /** `ws(s)://host:port/api/ws/connect`; in browsers a relative `/api/ws/connect` (or an http(s) URL) resolves against `location`. */
  url: string;
  /** A fixed token (sent as `?token=`). */
  token?: string;
  /** Called before every (re)connect and before each in-band renewal; wins over `token`. */
  getToken?: () => string | Promise<string>;
  /** `json` (default) or `msgpack`: subprotocols switchboard.v1.json / switchboard.v1.msgpack. */
  format?: Format;
  /** Failed attempts in a row before giving up (`disconnected`); default Infinity. */
  maxReconnectAttempts?: number;
  /** Exponential backoff with full jitter; default 1000 → 30000 ms. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** No frame at all for this long → the socket is dropped and the client reconnects; default 60000. */
  heartbeatTimeoutMs?: number;
  /** Protocol `{type:'ping'}` interval while connected; default 25000 (0 disables). */
  pingIntervalMs?: number;
  /** How long an attempt may take to get `connection_established`; default 15000. */
  connectTimeoutMs?: number;
  /** Frames `send()` keeps while offline; the oldest is dropped beyond it (counted). Default 100. */
  offlineQueueLimit?: number;
  /** Renew the token in-band (`refresh`) at 80 % of its lifetime when `getToken` is set; default true. */
  refreshTokens?: boolean;
  /** The largest `min_interval_ms` the gateway accepts (`gateway.max_delivery_interval`); default 60000. */
  maxServerIntervalMs?: number;
  /** WebSocket constructor; default `globalThis.WebSocket`. */
  WebSocket?: any;
  /** Random source for the jitter (tests). */
  random?: () => number;
}

/** Options of {@link SwitchboardClient.subscribe}. */
export interface SubscribeOptions {
  /**
   * At most one message of each event type per `minIntervalMs` to this handler, the newest
   * (never a backlog). The gateway conflates for the connection (`min_interval_ms`, the
   * smallest interval of the room's handlers, when ≥ 50 ms) and the client per handler.
   */
  minIntervalMs?: number;
  /** Resume after this `seq` (rooms with history); later the client tracks the last `seq` itself. */
  since?: string | number;
}

/** Counters for dashboards and tests. */
export interface ClientStats {
  /** Frames waiting in the offline queue. */
  queued: number;
  /** Frames dropped from the full offline queue. */
  dropped: number;
  /** Times a connection was established. */
  connections: number;
  /** Times the heartbeat watchdog gave a silent connection up. */
  watchdogFires: number;
  /** Room messages received. */
  messages: number;
  /** Accepted in-band token renewals. */
  refreshes: number;
}

type Handler = (message: RoomMessage) => void;

interface RoomEntry {
  handler: Handler | undefined;
  minIntervalMs: number;
  conflator: Conflator<RoomMessage> | undefined;
}

interface RoomSubscription {
  entries: Set<RoomEntry>;
  /** The `min_interval_ms` last sent (or to send) for the room; 0 = every message. */
  serverIntervalMs: number;
}

/** The smallest interval the gateway accepts (protocol::message::MIN_DELIVERY_INTERVAL_MS). */
const MIN_SERVER_INTERVAL_MS = 50;
/** Upper bound on a server's `retry_after`. */
const MAX_RETRY_AFTER_MS = 5 * 60_000;
/** How long to wait for the close that follows `reconnect` before dropping the socket. */
const RECONNECT_CLOSE_WAIT_MS = 2_000;
/** Renewal at this share of the token's remaining lifetime (the Rust SDK's 80 %). */
const REFRESH_AT = 0.8;
const OPEN = 1;
const CONNECTING = 0;

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The `exp` claim (seconds) of a JWT, or undefined when the token is no JWT. */
export function tokenExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
    const payload: unknown = JSON.parse(new TextDecoder().decode(bytes));
    const exp = (payload as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** The connect URL with `?token=`, resolving relative and http(s) URLs. */
export function connectUrl(url: string, token: string | undefined): string {
  const location = (globalThis as { location?: { href: string } }).location;
  const parsed = location ? new URL(url, location.href) : new URL(url);
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  if (token !== undefined && token !== '') parsed.searchParams.set('token', token);
  return parsed.toString();
}

export class SwitchboardClient {
  private readonly opts: {
    url: string;
    format: Format;
    maxReconnectAttempts: number;
    initialMs: number;
    maxMs: number;
    heartbeatTimeoutMs: number;
    pingIntervalMs: number;
    connectTimeoutMs: number;
    offlineQueueLimit: number;
    refreshTokens: boolean;
    maxServerIntervalMs: number;
    random: () => number;
  };
  private readonly token: string | undefined;
  private readonly getToken: (() => string | Promise<string>) | undefined;
  private readonly WebSocketCtor: WebSocketConstructor | undefined;

  private _state: ConnectionState = 'disconnected';
  private _detail: StateDetail;
  private _snapshot: { state: ConnectionState; detail: StateDetail };

  /** True between connect() and close() or a final failure. */
  private active = false;
  /** Bumped whenever a pending async open must be abandoned. */
  private generation = 0;
  private attempt = 0;
  private ws: WebSocketLike | null = null;
  private currentToken: string | undefined;
  private pendingRefreshToken: string | undefined;
  private lastErrorFrame: ErrorFrame | null = null;
  private retryAfterMs: number | null = null;
  private lastFrameAt = 0;
  private watchdogLimitMs = 0;
  private _session: ConnectionEstablishedFrame | null = null;

  private readonly timers: {
    reconnect?: ReturnType<typeof setTimeout>;
    ping?: ReturnType<typeof setInterval>;
    watchdog?: ReturnType<typeof setTimeout>;
    refresh?: ReturnType<typeof setTimeout>;
    reconnectClose?: ReturnType<typeof setTimeout>;
  } = {};

  private readonly queue: object[] = [];
  private readonly rooms = new Map<string, RoomSubscription>();
  private readonly lastSeq = new Map<string, number>();
  private readonly eventHandlers = new Map<string, Set<(message: IncomingMessage) => void>>();
  private readonly stateHandlers = new Set<(state: ConnectionState, detail: StateDetail) => void>();
  private readonly errorHandlers = new Set<(error: SwitchboardError) => void>();
  private readonly frameHandlers = new Set<(frame: Record<string, unknown>) => void>();
  private readonly counters = { dropped: 0, connections: 0, watchdogFires: 0, messages: 0, refreshes: 0 };
  private onlineListener: (() => void) | null = null;

  constructor(options: SwitchboardOptions) {
    if (!options || typeof options.url !== 'string' || options.url === '') {
      throw new TypeError('SwitchboardClient: options.url is required');
    }
    const max = options.maxReconnectAttempts ?? Number.POSITIVE_INFINITY;
    this.opts = {
      url: options.url,
      format: options.format ?? 'json',
      maxReconnectAttempts: max >= 0 ? max : Number.POSITIVE_INFINITY,
      initialMs: options.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs,
      maxMs: options.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 60_000,
      pingIntervalMs: options.pingIntervalMs ?? 25_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
      offlineQueueLimit: Math.max(0, options.offlineQueueLimit ?? 100),
      refreshTokens: options.refreshTokens ?? true,
      maxServerIntervalMs: options.maxServerIntervalMs ?? 60_000,
      random: options.random ?? Math.random,
    };
    if (this.opts.format !== 'json' && this.opts.format !== 'msgpack') {
      throw new TypeError(`SwitchboardClient: unknown format ${String(this.opts.format)}`);
    }
    this.token = options.token;
    this.getToken = options.getToken;
    this.WebSocketCtor = (options.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as WebSocketConstructor | undefined;
    this._detail = { attempt: 0, maxAttempts: this.opts.maxReconnectAttempts };
    this._snapshot = { state: this._state, detail: this._detail };
  }

  // -------------------------------------------------------------------------------------
  // Public API
  // -------------------------------------------------------------------------------------

  get state(): ConnectionState {
    return this._state;
  }

  get detail(): StateDetail {
    return this._detail;
  }

  /** `{state, detail}`, the same object until the next change (for `useSyncExternalStore`). */
  getSnapshot(): { state: ConnectionState; detail: StateDetail } {
    return this._snapshot;
  }

  /** The current connection's `connection_established` frame (null when not connected). */
  get session(): ConnectionEstablishedFrame | null {
    return this._session;
  }

  /** The format in use. */
  get format(): Format {
    return this.opts.format;
  }

  get stats(): ClientStats {
    return { queued: this.queue.length, ...this.counters };
  }

  /** Rooms the client keeps subscribed (re-subscribed after every reconnect). */
  get subscribedRooms(): string[] {
    return [...this.rooms.keys()];
  }

  /** Starts connecting (no-op while already active). */
  connect(): void {
    if (this.active) return;
    this.active = true;
    this.attempt = 0;
    this.retryAfterMs = null;
    this.listenForOnline();
    this.setState('connecting', {});
    void this.open();
  }

  /** Closes for good: `disconnected`, no retries. Subscriptions and the offline queue stay for a later `connect()`. */
  close(): void {
    const wasActive = this.active || this._state !== 'disconnected';
    this.active = false;
    this.generation += 1;
    this.clearAllTimers();
    this.dropSocket(CloseCode.NORMAL, 'client closed');
    this.unlistenForOnline();
    if (wasActive) this.setState('disconnected', { reason: 'closed by client' });
  }

  /** While reconnecting: skip the wait and try now (a "reconnect now" button), resetting the backoff. */
  reconnectNow(): void {
    if (!this.active || this._state === 'connected') return;
    this.clearTimer('reconnect');
    this.retryAfterMs = null;
    this.generation += 1;
    this.dropSocket(CloseCode.NORMAL, 'reconnect requested');
    this.attempt = 0;
    this.setState(this.counters.connections === 0 ? 'connecting' : 'reconnecting', { attempt: 0 });
    void this.open();
  }

  /**
   * Handles messages of event `event` (their `type`), or every message with `'*'`: room
   * messages of subscribed rooms, and direct messages (to this user, to this connection, or
   * broadcast), which need no subscription. {@link isDirectMessage} tells them apart.
   */
  on(event: string, handler: (msg: IncomingMessage) => void): () => void {
    let set = this.eventHandlers.get(event);
    if (!set) {
      set = new Set();
      this.eventHandlers.set(event, set);
    }
    const own = (message: IncomingMessage) => handler(message);
    set.add(own);
    return () => {
      const current = this.eventHandlers.get(event);
      current?.delete(own);
      if (current && current.size === 0) this.eventHandlers.delete(event);
    };
  }

  /** State changes (including each new reconnect attempt). */
  onState(handler: (state: ConnectionState, detail: StateDetail) => void): () => void {
    const own = (state: ConnectionState, detail: StateDetail) => handler(state, detail);
    this.stateHandlers.add(own);
    return () => {
      this.stateHandlers.delete(own);
    };
  }

  /** The gateway's `error` frames and client-side failures (handler exceptions, decode errors, …). */
  onError(handler: (err: SwitchboardError) => void): () => void {
    const own = (error: SwitchboardError) => handler(error);
    this.errorHandlers.add(own);
    return () => {
      this.errorHandlers.delete(own);
    };
  }

  /** Every decoded frame, control frames included (debugging, `subscribed.recovered`, `command`). */
  onFrame(handler: (frame: Record<string, unknown>) => void): () => void {
    const own = (frame: Record<string, unknown>) => handler(frame);
    this.frameHandlers.add(own);
    return () => {
      this.frameHandlers.delete(own);
    };
  }

  /**
   * Subscribes to `room`; returns the function that removes this handler. Several handlers
   * of a room share one server subscription, which ends with the last of them.
   */
  subscribe(room: string, handler?: (msg: RoomMessage) => void, opts: SubscribeOptions = {}): () => void {
    if (typeof room !== 'string' || room === '') throw new TypeError('subscribe: room must be a non-empty string');
    const minIntervalMs = Math.max(0, Math.floor(Number(opts.minIntervalMs ?? 0)) || 0);
    let subscription = this.rooms.get(room);
    const isNew = subscription === undefined;
    if (subscription === undefined) {
      subscription = { entries: new Set(), serverIntervalMs: 0 };
      this.rooms.set(room, subscription);
    }
    if (opts.since !== undefined) {
      const since = typeof opts.since === 'number' ? opts.since : Number(opts.since);
      if (Number.isSafeInteger(since) && since >= 0) this.lastSeq.set(room, since);
      else this.reportError({ code: 'invalid_since', message: `since must be a sequence number, got ${String(opts.since)}`, room });
    }
    const entry: RoomEntry = { handler: undefined, minIntervalMs, conflator: undefined };
    if (handler) {
      const call = (message: RoomMessage) => this.safeCall(() => handler(message), room);
      if (minIntervalMs > 0) {
        entry.conflator = new Conflator<RoomMessage>(minIntervalMs, call);
        entry.handler = (message) => entry.conflator?.push(message);
      } else {
        entry.handler = call;
      }
    }
    subscription.entries.add(entry);
    const changed = this.updateServerInterval(subscription);
    if (isNew || changed) this.sendSubscribe([room]);

    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      entry.conflator?.stop();
      const current = this.rooms.get(room);
      if (current !== subscription || !current) return;
      current.entries.delete(entry);
      if (current.entries.size === 0) {
        this.unsubscribe(room);
      } else if (this.updateServerInterval(current)) {
        this.sendSubscribe([room]);
      }
    };
  }

  /** Leaves `room`: every handler of it is removed. */
  unsubscribe(room: string): void {
    const subscription = this.rooms.get(room);
    if (!subscription) return;
    for (const entry of subscription.entries) entry.conflator?.stop();
    this.rooms.delete(room);
    this.lastSeq.delete(room);
    if (this.isOpen()) this.write({ type: 'unsubscribe', rooms: [room] });
  }

  /**
   * Sends a frame; returns true when it was written to the socket now. Offline (or before
   * `connection_established`) it is queued and sent after the next connect; the queue keeps
   * `offlineQueueLimit` frames, dropping (and counting) the oldest.
   */
  send(frame: object): boolean {
    if (this.isOpen() && this.write(frame)) return true;
    this.enqueue(frame);
    return false;
  }

  /** Publishes an event to a room (where the token's `publish` claim allows it). */
  publish(room: string, event: string, data?: unknown): boolean {
    return this.send({ type: 'publish', room, event, data: data ?? null });
  }

  // -------------------------------------------------------------------------------------
  // Connection life
  // -------------------------------------------------------------------------------------

  private isOpen(): boolean {
    return this._state === 'connected' && this.ws !== null && this.ws.readyState === OPEN;
  }

  private async open(): Promise<void> {
    const generation = ++this.generation;
    let token = this.token;
    if (this.getToken) {
      try {
        token = await this.getToken();
      } catch (error) {
        if (generation !== this.generation || !this.active) return;
        this.reportError({ code: 'token_unavailable', message: `getToken failed: ${errorMessage(error)}`, cause: error });
        this.attemptFailed({ reason: 'getToken failed', error: { code: 'token_unavailable', message: errorMessage(error) } });
        return;
      }
      if (generation !== this.generation || !this.active) return;
    }
    this.currentToken = token;
    const Ctor = this.WebSocketCtor;
    if (typeof Ctor !== 'function') {
      this.active = false;
      const error = { code: 'no_websocket', message: 'no WebSocket implementation: pass options.WebSocket' };
      this.reportError(error);
      this.setState('disconnected', { reason: error.message, error });
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new Ctor(connectUrl(this.opts.url, token), subprotocolOf(this.opts.format));
    } catch (error) {
      this.reportError({ code: 'connect_failed', message: `cannot open the WebSocket: ${errorMessage(error)}`, cause: error });
      this.attemptFailed({ reason: 'cannot open the WebSocket', error: { code: 'connect_failed', message: errorMessage(error) } });
      return;
    }
    this.ws = ws;
    this.lastErrorFrame = null;
    this._session = null;
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      // Some implementations have a fixed binary type; decodeFrame takes every kind.
    }
    ws.onopen = () => {};
    ws.onmessage = (event) => this.onSocketMessage(ws, event.data);
    ws.onclose = (event) => this.onSocketClose(ws, event.code, event.reason);
    ws.onerror = () => {
      // A close event follows.
    };
    this.armWatchdog(this.opts.connectTimeoutMs);
  }

  /** Detaches and closes the current socket without running the close handler. */
  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    this._session = null;
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    // Keep an error listener: `ws` in Node throws on an unhandled error event.
    ws.onerror = () => {};
    try {
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.close(code, reason);
    } catch {
      // Already closing.
    }
  }

  private onSocketClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this._session = null;
    this.clearTimer('ping');
    this.clearTimer('watchdog');
    this.clearTimer('refresh');
    this.clearTimer('reconnectClose');
    if (!this.active) return;
    const frame = this.lastErrorFrame;
    const error = frame ? { code: frame.code, message: frame.message } : undefined;
    const authRefused =
      code === CloseCode.UNAUTHENTICATED ||
      code === CloseCode.FORBIDDEN ||
      (code === CloseCode.TOKEN_EXPIRED && this.getToken === undefined);
    if (authRefused) {
      const fallback = {
        code: code === CloseCode.UNAUTHENTICATED ? 'token_invalid' : code === CloseCode.FORBIDDEN ? 'forbidden' : 'token_expired',
        message: reason || `connection refused (close ${code})`,
      };
      if (!frame) this.reportError(fallback);
      this.active = false;
      this.clearAllTimers();
      this.unlistenForOnline();
      this.setState('disconnected', { code, reason, error: error ?? fallback });
      return;
    }
    this.attemptFailed({ code, reason, error });
  }

  /** After a lost connection or a failed attempt: wait and retry, or give up. */
  private attemptFailed(cause: { code?: number; reason?: string; error?: { code: string; message: string } }): void {
    if (!this.active) return;
    this.clearTimer('reconnect');
    this.attempt += 1;
    if (this.attempt > this.opts.maxReconnectAttempts) {
      this.active = false;
      this.attempt -= 1;
      this.clearAllTimers();
      this.unlistenForOnline();
      const error = { code: 'max_reconnect_attempts', message: `gave up after ${this.opts.maxReconnectAttempts} reconnect attempts` };
      this.reportError(error);
      this.setState('disconnected', { ...cause, reason: error.message, error: cause.error ?? error });
      return;
    }
    let delay = backoffDelay(this.attempt, this.opts.initialMs, this.opts.maxMs, this.opts.random);
    if (this.retryAfterMs !== null) {
      delay = Math.max(delay, this.retryAfterMs);
      this.retryAfterMs = null;
    }
    this.setState('reconnecting', { ...cause, retryInMs: delay });
    this.timers.reconnect = setTimeout(() => {
      this.timers.reconnect = undefined;
      void this.open();
    }, delay);
  }

  private onSocketMessage(ws: WebSocketLike, data: unknown): void {
    if (ws !== this.ws) return;
    this.lastFrameAt = Date.now();
    let decoded: unknown;
    try {
      decoded = decodeFrame(data);
    } catch (error) {
      this.reportError({ code: 'decode_failed', message: `a frame could not be decoded: ${errorMessage(error)}`, cause: error });
      return;
    }
    if (decoded === null || typeof decoded !== 'object' || typeof (decoded as { type?: unknown }).type !== 'string') {
      this.reportError({ code: 'decode_failed', message: 'a frame is not an object with a type' });
      return;
    }
    const frame = decoded as Record<string, unknown> & { type: string };
    for (const handler of [...this.frameHandlers]) this.safeCall(() => handler(frame));
    if (!CONTROL_TYPES.has(frame.type)) {
      if (typeof frame.room === 'string') this.dispatchRoomMessage(frame as unknown as RoomMessage);
      else if (typeof frame.user === 'string' || typeof frame.connection_id === 'string' || frame.broadcast === true) {
        this.dispatchDirectMessage(frame as unknown as DirectMessage);
      }
      return;
    }
    switch (frame.type) {
      case 'connection_established':
        this.onEstablished(frame as unknown as ConnectionEstablishedFrame);
        break;
      case 'error':
        this.onErrorFrame(frame as unknown as ErrorFrame);
        break;
      case 'reconnect':
        this.onReconnectFrame(frame as unknown as ReconnectFrame);
        break;
      case 'refreshed':
        this.onRefreshed(frame as unknown as RefreshedFrame);
        break;
      case 'unsubscribed': {
        const unsubscribed = frame as unknown as UnsubscribedFrame;
        if (unsubscribed.reason !== undefined) {
          for (const room of unsubscribed.rooms ?? []) {
            this.reportError({ code: unsubscribed.reason, message: `the gateway left room ${room} (${unsubscribed.reason})`, room });
          }
        }
        break;
      }
      case 'subscribed': {
        const subscribed = frame as unknown as SubscribedFrame;
        if (subscribed.recovered === false) {
          for (const room of subscribed.rooms ?? []) {
            if (this.lastSeq.has(room)) {
              this.reportError({ code: 'history_gap', message: `room ${room}: some messages since the last seen seq could not be replayed`, room, recoverable: true });
            }
          }
        }
        break;
      }
      default:
        // pong, heartbeat, command: signs of life (lastFrameAt), seen by onFrame handlers.
        break;
    }
  }

  private onEstablished(frame: ConnectionEstablishedFrame): void {
    this._session = frame;
    this.attempt = 0;
    this.retryAfterMs = null;
    this.counters.connections += 1;
    this.armWatchdog(this.opts.heartbeatTimeoutMs);
    this.clearTimer('ping');
    if (this.opts.pingIntervalMs > 0) {
      this.timers.ping = setInterval(() => {
        if (this.isOpen()) this.write({ type: 'ping' });
      }, this.opts.pingIntervalMs);
    }
    this.setState('connected', {});
    this.resubscribeAll();
    this.flushQueue();
    this.scheduleRefresh();
  }

  private onErrorFrame(frame: ErrorFrame): void {
    this.lastErrorFrame = frame;
    if (this.pendingRefreshToken !== undefined && frame.room === undefined && String(frame.code).startsWith('token_')) {
      // A refused refresh: the connection stays on its old token; try once more later.
      this.pendingRefreshToken = undefined;
      this.scheduleRefresh(0.5);
    }
    const error: SwitchboardError = { code: frame.code, message: frame.message, recoverable: frame.recoverable };
    if (frame.room !== undefined) error.room = frame.room;
    this.reportError(error);
  }

  private onReconnectFrame(frame: ReconnectFrame): void {
    const seconds = Number(frame.retry_after);
    this.retryAfterMs = Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : null;
    // The gateway closes (1001) right after; should the close not come, stop waiting for it.
    const ws = this.ws;
    this.clearTimer('reconnectClose');
    this.timers.reconnectClose = setTimeout(() => {
      this.timers.reconnectClose = undefined;
      if (ws !== this.ws || !ws) return;
      this.dropSocket(CloseCode.NORMAL, 'server asked to reconnect');
      this.clearTimer('ping');
      this.clearTimer('watchdog');
      this.clearTimer('refresh');
      this.attemptFailed({ code: CloseCode.GOING_AWAY, reason: frame.reason });
    }, RECONNECT_CLOSE_WAIT_MS);
  }

  // -------------------------------------------------------------------------------------
  // Rooms
  // -------------------------------------------------------------------------------------

  /** A message to this user, this connection or everyone: to the `on(type)` and `on('*')` handlers. */
  private dispatchDirectMessage(message: DirectMessage): void {
    this.counters.messages += 1;
    for (const key of [message.type, '*']) {
      const handlers = this.eventHandlers.get(key);
      if (!handlers) continue;
      for (const handler of [...handlers]) this.safeCall(() => handler(message));
    }
  }

  private dispatchRoomMessage(message: RoomMessage): void {
    this.counters.messages += 1;
    if (typeof message.seq === 'number' && this.rooms.has(message.room)) this.lastSeq.set(message.room, message.seq);
    const subscription = this.rooms.get(message.room);
    if (subscription) {
      for (const entry of [...subscription.entries]) entry.handler?.(message);
    }
    for (const key of [message.type, '*']) {
      const handlers = this.eventHandlers.get(key);
      if (!handlers) continue;
      for (const handler of [...handlers]) this.safeCall(() => handler(message), message.room);
    }
  }

  /** Recomputes the room's server-side interval; true when it changed. */
  private updateServerInterval(subscription: RoomSubscription): boolean {
    let smallest = Number.POSITIVE_INFINITY;
    for (const entry of subscription.entries) smallest = Math.min(smallest, entry.minIntervalMs);
    let interval = 0;
    if (Number.isFinite(smallest) && smallest >= MIN_SERVER_INTERVAL_MS) {
      interval = Math.min(smallest, this.opts.maxServerIntervalMs);
    }
    const changed = interval !== subscription.serverIntervalMs;
    subscription.serverIntervalMs = interval;
    return changed;
  }

  /** Sends `subscribe` for `rooms`, one frame per distinct interval, with `since` where known. */
  private sendSubscribe(rooms: string[]): void {
    if (!this.isOpen() || rooms.length === 0) return;
    const byInterval = new Map<number, string[]>();
    for (const room of rooms) {
      const subscription = this.rooms.get(room);
      if (!subscription) continue;
      const list = byInterval.get(subscription.serverIntervalMs) ?? [];
      list.push(room);
      byInterval.set(subscription.serverIntervalMs, list);
    }
    for (const [interval, group] of byInterval) {
      const frame: SubscribeFrame = { type: 'subscribe', rooms: group };
      const since: Record<string, number> = {};
      let hasSince = false;
      for (const room of group) {
        const seq = this.lastSeq.get(room);
        if (seq !== undefined) {
          since[room] = seq;
          hasSince = true;
        }
      }
      if (hasSince) frame.since = since;
      if (interval > 0) frame.min_interval_ms = interval;
      this.write(frame);
    }
  }

  private resubscribeAll(): void {
    this.sendSubscribe([...this.rooms.keys()]);
  }

  // -------------------------------------------------------------------------------------
  // Sending
  // -------------------------------------------------------------------------------------

  private write(frame: object): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(encodeFrame(this.opts.format, frame));
      return true;
    } catch (error) {
      this.reportError({ code: 'send_failed', message: `a frame could not be sent: ${errorMessage(error)}`, cause: error });
      return false;
    }
  }

  private enqueue(frame: object): void {
    if (this.opts.offlineQueueLimit === 0) {
      this.counters.dropped += 1;
      return;
    }
    this.queue.push(frame);
    while (this.queue.length > this.opts.offlineQueueLimit) {
      this.queue.shift();
      this.counters.dropped += 1;
    }
  }

  private flushQueue(): void {
    while (this.queue.length > 0 && this.isOpen()) {
      const frame = this.queue[0] as object;
      if (!this.write(frame)) return;
      this.queue.shift();
    }
  }

  // -------------------------------------------------------------------------------------
  // Token renewal
  // -------------------------------------------------------------------------------------

  /** Plans the next in-band renewal at `share` of the current token's remaining lifetime. */
  private scheduleRefresh(share: number = REFRESH_AT): void {
    this.clearTimer('refresh');
    if (!this.getToken || !this.opts.refreshTokens || this.currentToken === undefined) return;
    const exp = tokenExpiry(this.currentToken);
    if (exp === undefined) return;
    const remaining = exp * 1000 - Date.now();
    if (remaining <= 1000) return; // too late: the 4402 close and a reconnect renew it
    const generation = this.generation;
    this.timers.refresh = setTimeout(() => {
      this.timers.refresh = undefined;
      void this.refreshNow(generation);
    }, Math.floor(remaining * share));
  }

  private async refreshNow(generation: number): Promise<void> {
    if (!this.getToken) return;
    let token: string;
    try {
      token = await this.getToken();
    } catch (error) {
      this.reportError({ code: 'token_unavailable', message: `getToken failed: ${errorMessage(error)}`, cause: error });
      if (generation === this.generation) this.scheduleRefresh(0.5);
      return;
    }
    if (generation !== this.generation || !this.isOpen()) return;
    const currentExp = this.currentToken !== undefined ? tokenExpiry(this.currentToken) : undefined;
    const newExp = tokenExpiry(token);
    if (token === this.currentToken || (currentExp !== undefined && newExp !== undefined && newExp <= currentExp)) {
      // getToken has nothing newer yet: look again later (the 4402 close and reconnect remain the fallback).
      this.scheduleRefresh(0.5);
      return;
    }
    this.pendingRefreshToken = token;
    this.write({ type: 'refresh', token });
  }

  private onRefreshed(_frame: RefreshedFrame): void {
    if (this.pendingRefreshToken !== undefined) {
      this.currentToken = this.pendingRefreshToken;
      this.pendingRefreshToken = undefined;
    }
    this.counters.refreshes += 1;
    this.scheduleRefresh();
  }

  // -------------------------------------------------------------------------------------
  // Timers, state, errors
  // -------------------------------------------------------------------------------------

  /** No frame for `limitMs` → the connection is dead: drop it and reconnect. */
  private armWatchdog(limitMs: number): void {
    this.clearTimer('watchdog');
    this.watchdogLimitMs = limitMs;
    this.lastFrameAt = Date.now();
    if (!(limitMs > 0)) return;
    const check = () => {
      const silentFor = Date.now() - this.lastFrameAt;
      if (silentFor < this.watchdogLimitMs) {
        this.timers.watchdog = setTimeout(check, this.watchdogLimitMs - silentFor);
        return;
      }
      this.timers.watchdog = undefined;
      if (!this.ws || !this.active) return;
      this.counters.watchdogFires += 1;
      const connected = this._session !== null;
      const error = connected
        ? { code: 'heartbeat_timeout', message: `no frame from the gateway for ${this.watchdogLimitMs} ms` }
        : { code: 'connect_timeout', message: `no connection_established within ${this.watchdogLimitMs} ms` };
      this.dropSocket(4000, error.code);
      this.clearTimer('ping');
      this.clearTimer('refresh');
      this.clearTimer('reconnectClose');
      this.reportError(error);
      this.attemptFailed({ reason: error.message, error });
    };
    this.timers.watchdog = setTimeout(check, limitMs);
  }

  private clearTimer(name: keyof SwitchboardClient['timers']): void {
    const id = this.timers[name];
    if (id !== undefined) {
      clearTimeout(id as ReturnType<typeof setTimeout>);
      clearInterval(id as ReturnType<typeof setInterval>);
    }
    this.timers[name] = undefined;
  }

  private clearAllTimers(): void {
    for (const name of ['reconnect', 'ping', 'watchdog', 'refresh', 'reconnectClose'] as const) this.clearTimer(name);
  }

  private setState(state: ConnectionState, extra: Partial<StateDetail>): void {
    const detail: StateDetail = {
      attempt: this.attempt,
      maxAttempts: this.opts.maxReconnectAttempts,
    };
    for (const [key, value] of Object.entries(extra)) {
      if (value !== undefined) (detail as unknown as Record<string, unknown>)[key] = value;
    }
    this._state = state;
    this._detail = detail;
    this._snapshot = { state, detail };
    for (const handler of [...this.stateHandlers]) this.safeCall(() => handler(state, detail));
  }

  /** Runs a user handler; an exception is reported through onError and never escapes. */
  private safeCall(fn: () => void, room?: string): void {
    try {
      fn();
    } catch (error) {
      const report: SwitchboardError = { code: 'handler_error', message: `a handler threw: ${errorMessage(error)}`, cause: error };
      if (room !== undefined) report.room = room;
      this.reportError(report);
    }
  }

  private reportError(error: SwitchboardError): void {
    if (this.errorHandlers.size === 0) {
      if (error.code === 'handler_error') console.error('[switchboard]', error.message, error.cause);
      return;
    }
    for (const handler of [...this.errorHandlers]) {
      try {
        handler(error);
      } catch (thrown) {
        console.error('[switchboard] an onError handler threw:', thrown);
      }
    }
  }

  /** In browsers: when the network comes back, retry at once instead of waiting out the backoff. */
  private listenForOnline(): void {
    const target = globalThis as { addEventListener?: (type: string, fn: () => void) => void; document?: unknown };
    if (this.onlineListener || typeof target.addEventListener !== 'function' || target.document === undefined) return;
    this.onlineListener = () => {
      if (this.active && this._state === 'reconnecting' && this.timers.reconnect !== undefined) {
        this.clearTimer('reconnect');
        this.retryAfterMs = null;
        void this.open();
      }
    };
    target.addEventListener('online', this.onlineListener);
  }

  private unlistenForOnline(): void {
    const target = globalThis as { removeEventListener?: (type: string, fn: () => void) => void };
    if (this.onlineListener && typeof target.removeEventListener === 'function') target.removeEventListener('online', this.onlineListener);
    this.onlineListener = null;
  }
}
