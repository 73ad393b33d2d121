/**
 * @switchboard/client: the browser and Node client of Switchboard's WebSocket protocol.
 * The React binding is the separate entry point `@switchboard/client/react`.
 */

export {
  SwitchboardClient,
  connectUrl,
  isDirectMessage,
  tokenExpiry,
  type ClientStats,
  type ConnectionState,
  type DirectMessage,
  type IncomingMessage,
  type RoomMessage,
  type StateDetail,
  type SubscribeOptions,
  type SwitchboardError,
  type SwitchboardOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from './client.js';
export { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export { decodeFrame, encodeFrame, subprotocolOf, type Format } from './codec.js';
export { Conflator } from './throttle.js';
export { createRoomStore, type RoomSnapshot, type RoomStore, type RoomStoreOptions } from './room-store.js';
export * from './protocol.js';
export * from './payloads.js';
