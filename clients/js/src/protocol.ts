/**
 * The wire protocol of `/api/ws/connect` as TypeScript types: the control frames in both
 * directions (proto/schemas/*.schema.json) and the room message envelope.
 *
 * `test/types.test.mjs` checks these against proto/schemas: for each type, its keys equal the
 * schema's `properties` and its required keys equal the schema's `required`.
 */

/** Subprotocol of JSON text frames (the default). */
export const SUBPROTOCOL_JSON = 'switchboard.v1.json';
/** Subprotocol of MessagePack binary frames. */
export const SUBPROTOCOL_MSGPACK = 'switchboard.v1.msgpack';

/** Stable error codes (proto/error-codes.md, `common.schema.json#/$defs/error_code`). */
export type ErrorCode =
  | 'invalid_message'
  | 'unknown_type'
  | 'invalid_room'
  | 'invalid_rule'
  | 'message_too_large'
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'token_subject_mismatch'
  | 'forbidden'
  | 'origin_not_allowed'
  | 'rate_limited'
  | 'connection_rate_limited'
  | 'too_many_connections'
  | 'slow_consumer'
  | 'heartbeat_timeout'
  | 'shutting_down'
  | 'node_not_connected'
  | 'device_not_found'
  | 'node_not_found'
  | 'command_timeout'
  | 'unavailable'
  | 'internal';

/** WebSocket close codes the gateway uses (proto/error-codes.md, "Close codes"). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  INVALID_PAYLOAD: 1007,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013,
  BAD_REQUEST: 4400,
  UNAUTHENTICATED: 4401,
  TOKEN_EXPIRED: 4402,
  FORBIDDEN: 4403,
  HEARTBEAT_TIMEOUT: 4408,
  RATE_LIMITED: 4429,
  SLOW_CONSUMER: 4508,
} as const;

/** Priority of a room message (alerts). */
export type Priority = 'critical' | 'warning' | 'info';

// ---------------------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------------------

/** `subscribe` (subscribe.schema.json). */
export interface SubscribeFrame {
  type: 'subscribe';
  rooms: string[];
  /** Last `seq` seen per room, for rooms with history. */
  since?: Record<string, number>;
  /** Per-connection rate (conflation) for these rooms: 0/absent = every message, else 50..60000. */
  min_interval_ms?: number;
}

/** `unsubscribe` (unsubscribe.schema.json). */
export interface UnsubscribeFrame {
  type: 'unsubscribe';
  rooms: string[];
}

/** `ping` (ping.schema.json). */
export interface PingFrame {
  type: 'ping';
}

/** `publish` (publish.schema.json): only where the token's `publish` claim allows the room. */
export interface PublishFrame {
  type: 'publish';
  room: string;
  event: string;
  data?: unknown;
}

/** `refresh` (refresh.schema.json): in-band token renewal. */
export interface RefreshFrame {
  type: 'refresh';
  token: string;
}

/** `ack` (ack.schema.json): a node agent's answer to a `command`. */
export interface AckFrame {
  type: 'ack';
  id: string;
  ok?: boolean;
  result?: unknown;
  error?: string;
}

/** Every frame a browser client sends (node agents also send `node_state`). */
export type ClientFrame = SubscribeFrame | UnsubscribeFrame | PingFrame | PublishFrame | RefreshFrame | AckFrame;

// ---------------------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------------------

/** `connection_established` (connection_established.schema.json): the first frame. */
export interface ConnectionEstablishedFrame {
  type: 'connection_established';
  connection_id: string;
  server_id: string;
  heartbeat_interval_ms: number;
  timestamp: string;
}

/** `subscribed` (subscribed.schema.json). */
export interface SubscribedFrame {
  type: 'subscribed';
  rooms: string[];
  /** Present when the subscribe carried `since`: false when some messages could not be replayed. */
  recovered?: boolean;
}

/** `unsubscribed` (unsubscribed.schema.json); with `reason` when the gateway left the rooms itself. */
export interface UnsubscribedFrame {
  type: 'unsubscribed';
  rooms: string[];
  reason?: ErrorCode;
}

/** `refreshed` (refreshed.schema.json): an accepted `refresh`. */
export interface RefreshedFrame {
  type: 'refreshed';
  /** The new token's expiry, seconds since the Unix epoch. */
  exp: number;
}

/** `pong` (pong.schema.json). */
export interface PongFrame {
  type: 'pong';
  timestamp: string;
}

/** `heartbeat` (heartbeat.schema.json). */
export interface HeartbeatFrame {
  type: 'heartbeat';
  timestamp: string;
  active_streams: number;
}

/** `error` (error.schema.json). */
export interface ErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
  recoverable: boolean;
  room?: string;
  timestamp: string;
}

/** `reconnect` (reconnect.schema.json): sent before a drain; the close (1001) follows. */
export interface ReconnectFrame {
  type: 'reconnect';
  reason: string;
  /** Seconds to wait before reconnecting. */
  retry_after: number;
}

/** `command` (command.schema.json): an operator command to a node agent. */
export interface CommandFrame {
  type: 'command';
  id: string;
  name: string;
  params: unknown;
}

/** Every control frame the gateway sends. */
export type ControlFrame =
  | ConnectionEstablishedFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | RefreshedFrame
  | PongFrame
  | HeartbeatFrame
  | ErrorFrame
  | ReconnectFrame
  | CommandFrame;

/**
 * A room message exactly as the gateway sends it (room_message.schema.json): `type` is the
 * publisher's event name, never a control type.
 */
export interface RoomMessageFrame<T = unknown> {
  type: string;
  room: string;
  data: T;
  timestamp: string;
  seq?: number;
  priority?: Priority;
}

/**
 * A message without a room exactly as the gateway sends it (direct_message.schema.json): to
 * the connection's user (`user`), to the connection (`connection_id`) or to everyone
 * (`broadcast: true`); exactly one of the three is present. No subscription is needed.
 */
export interface DirectMessageFrame<T = unknown> {
  type: string;
  user?: string;
  connection_id?: string;
  broadcast?: true;
  data: T;
  timestamp: string;
}

/**
 * The `type`s of control frames (both directions). Room message types never take these
 * names (`common.schema.json#/$defs/event_name`), so a frame whose `type` is not in this
 * set is a room message.
 */
export const CONTROL_TYPES: ReadonlySet<string> = new Set([
  'connection_established',
  'subscribed',
  'unsubscribed',
  'refreshed',
  'pong',
  'heartbeat',
  'error',
  'reconnect',
  'command',
  'subscribe',
  'unsubscribe',
  'ping',
  'publish',
  'node_state',
  'ack',
  'refresh',
]);
