/**
 * A framework-free store of one room's latest messages, with the `subscribe`/`getSnapshot`
 * shape of React's `useSyncExternalStore` (the React binding's `useRoom` is built on it, and
 * any other framework can use it too).
 */

import type { RoomMessage, SwitchboardClient } from './client.js';

export interface RoomStoreOptions {
  /** Keep only messages of this event type. */
  event?: string;
  /** Per-room minimum interval (see `SwitchboardClient.subscribe`). */
  minIntervalMs?: number;
  /** How many messages to keep, newest first; default 1. */
  keep?: number;
  /** Forget the kept messages whenever the connection is lost (stale readings must not show as live). */
  clearOnDisconnect?: boolean;
}

export interface RoomSnapshot<T = unknown> {
  /** The newest message, or null before the first. */
  last: RoomMessage<T> | null;
  /** Newest first, at most `keep`. */
  messages: RoomMessage<T>[];
}

export interface RoomStore<T = unknown> {
  /** Adds a listener; the room is subscribed while at least one listener is attached. */
  subscribe(listener: () => void): () => void;
  /** The current snapshot: the same object until the next message. */
  getSnapshot(): RoomSnapshot<T>;
  /** Forgets the messages kept so far (e.g. when a stream closes). */
  clear(): void;
}

const EMPTY: RoomSnapshot<never> = Object.freeze({ last: null, messages: Object.freeze([]) as unknown as never[] });

export function createRoomStore<T = unknown>(client: SwitchboardClient, room: string, options: RoomStoreOptions = {}): RoomStore<T> {
  const keep = Math.max(1, Math.floor(options.keep ?? 1));
  const listeners = new Set<() => void>();
  let snapshot: RoomSnapshot<T> = EMPTY as RoomSnapshot<T>;
  let release: (() => void) | null = null;
  let releaseState: (() => void) | null = null;

  const notify = () => {
    for (const listener of [...listeners]) listener();
  };

  const clear = () => {
    if (snapshot === EMPTY) return;
    snapshot = EMPTY as RoomSnapshot<T>;
    notify();
  };

  const onMessage = (message: RoomMessage) => {
    if (options.event !== undefined && message.type !== options.event) return;
    const typed = message as RoomMessage<T>;
    snapshot = { last: typed, messages: [typed, ...snapshot.messages].slice(0, keep) };
    notify();
  };

  return {
    subscribe(listener) {
      listeners.add(listener);
      if (release === null) {
        const subscribeOptions = options.minIntervalMs !== undefined ? { minIntervalMs: options.minIntervalMs } : {};
        release = client.subscribe(room, onMessage, subscribeOptions);
        if (options.clearOnDisconnect) {
          releaseState = client.onState((state) => {
            if (state !== 'connected') clear();
          });
        }
      }
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && release !== null) {
          release();
          release = null;
          releaseState?.();
          releaseState = null;
        }
      };
    },
    getSnapshot() {
      return snapshot;
    },
    clear,
  };
}
