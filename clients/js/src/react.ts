/**
 * The React binding (`@switchboard/client/react`): a provider holding one client, and hooks
 * built on `useSyncExternalStore`. React (>= 18) is an optional peer dependency: only this
 * entry point imports it.
 */

import { createContext, createElement, useContext, useEffect, useMemo, useRef, useSyncExternalStore, type ReactNode } from 'react';

import type { ConnectionState, IncomingMessage, RoomMessage, StateDetail, SwitchboardClient } from './client.js';
import { createRoomStore, type RoomSnapshot, type RoomStoreOptions } from './room-store.js';

const ClientContext = createContext<SwitchboardClient | null>(null);

/** Makes `client` available to the hooks below it. The caller owns the client (connect/close). */
export function SwitchboardProvider(props: { client: SwitchboardClient; children?: ReactNode }) {
  return createElement(ClientContext.Provider, { value: props.client }, props.children);
}

/** The client of the nearest {@link SwitchboardProvider}. */
export function useSwitchboard(): SwitchboardClient {
  const client = useContext(ClientContext);
  if (client === null) throw new Error('useSwitchboard: no <SwitchboardProvider client={…}> above this component');
  return client;
}

/** The connection state and its detail; re-renders on every change (each reconnect attempt too). */
export function useConnectionState(): { state: ConnectionState; detail: StateDetail } {
  const client = useSwitchboard();
  return useSyncExternalStore(
    (onChange) => client.onState(() => onChange()),
    () => client.getSnapshot(),
    () => client.getSnapshot(),
  );
}

/**
 * Subscribes to `room` while the component is mounted. `last` is the newest message
 * (`event` filters by type), `messages` the newest `keep` (default 1), newest first.
 * With `clearOnDisconnect`, both are emptied whenever the connection is lost.
 */
export function useRoom<T = unknown>(
  room: string,
  opts: RoomStoreOptions = {},
): { last: RoomMessage<T> | null; messages: RoomMessage<T>[] } {
  const client = useSwitchboard();
  const { event, minIntervalMs, keep, clearOnDisconnect } = opts;
  const store = useMemo(() => {
    const options: RoomStoreOptions = {};
    if (event !== undefined) options.event = event;
    if (minIntervalMs !== undefined) options.minIntervalMs = minIntervalMs;
    if (keep !== undefined) options.keep = keep;
    if (clearOnDisconnect !== undefined) options.clearOnDisconnect = clearOnDisconnect;
    return createRoomStore<T>(client, room, options);
  }, [client, room, event, minIntervalMs, keep, clearOnDisconnect]);
  const snapshot: RoomSnapshot<T> = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  return snapshot;
}

/**
 * Handles messages of `event` (or `'*'`) while mounted, room and direct messages alike (see
 * `SwitchboardClient.on`); the latest `handler` is always called.
 */
export function useSwitchboardEvent(event: string, handler: (message: IncomingMessage) => void): void {
  const client = useSwitchboard();
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => client.on(event, (message) => latest.current(message)), [client, event]);
}

export type { ConnectionState, DirectMessage, IncomingMessage, RoomMessage, StateDetail, SwitchboardClient } from './client.js';
export type { RoomSnapshot, RoomStoreOptions } from './room-store.js';
