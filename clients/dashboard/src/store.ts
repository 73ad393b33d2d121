// What the views show, kept outside React so that every room message is counted (several in
// one frame would be lost to a "last message" state) and switching views loses nothing.
// One subscription per room on the shared client; the views read slices with useStore.

import { useSyncExternalStore } from 'react';
import type {
  AlertData, BatchProgress, MetricsUpdate, NodeChange, NodeStatusUpdate, ResourceUpdate, TaskProgressUpdate, TopologyChange,
} from './types';

export interface Received<T> { data: T; at: number; timestamp?: string }

export interface AlertEntry { id: number; data: AlertData; severity: string; at: number; timestamp: string }

export interface ChangeEntry extends NodeChange { at: number; source: 'topology_change' | 'node_status_update' }

export interface Rate { messagesIn?: number; messagesOut?: number; updates?: number }

export interface DashboardState {
  counts: Record<string, number>;
  nodes?: Received<NodeStatusUpdate>;
  /** Per node: rates between the last two node_status_updates, per second. */
  nodeRates: Record<string, Rate>;
  tasks?: Received<TaskProgressUpdate>;
  /** Per task: (time, progress) observations, for the ETA. */
  taskHistory: Record<string, { at: number; progress: number }[]>;
  batches: Record<string, Received<BatchProgress>>;
  metrics?: Received<MetricsUpdate>;
  /** Live samples per metric name, derived from the room messages (same names as the aggregator's). */
  live: Record<string, [number, number][]>;
  alerts: AlertEntry[];
  resources?: Received<ResourceUpdate>;
  topology?: Received<TopologyChange>;
  changes: ChangeEntry[];
}

export const MAX_ALERTS = 100;
const MAX_LIVE = 2_000;
const MAX_CHANGES = 50;
const TASK_HISTORY_MS = 10 * 60_000;
const DEDUP_MS = 30_000;

let state: DashboardState = {
  counts: {}, nodeRates: {}, taskHistory: {}, batches: {}, live: {}, alerts: [], changes: [],
};
const listeners = new Set<() => void>();
let alertSeq = 0;

function set(next: Partial<DashboardState>): void {
  state = { ...state, ...next };
  for (const listener of listeners) listener();
}

export function useStore<T>(select: (state: DashboardState) => T): T {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => select(state),
  );
}

export function getState(): DashboardState {
  return state;
}

function count(room: string): Record<string, number> {
  return { ...state.counts, [room]: (state.counts[room] ?? 0) + 1 };
}

function addLive(live: Record<string, [number, number][]>, at: number, values: Record<string, number | null | undefined>): Record<string, [number, number][]> {
  const next = { ...live };
  for (const [metric, value] of Object.entries(values)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    const series = (next[metric] ?? []).concat([[at, value]]);
    next[metric] = series.length > MAX_LIVE ? series.slice(series.length - MAX_LIVE) : series;
  }
  return next;
}

function when(timestamp: string | undefined): number {
  const parsed = timestamp ? Date.parse(timestamp) : NaN;
  return Number.isFinite(parsed) ? parsed : Date.now();
}

/** An alert's severity: its data's `severity`, else the envelope's `priority`, else info. */
export function alertSeverity(data: AlertData, priority?: string): string {
  const severity = typeof data?.severity === 'string' && data.severity ? data.severity : priority;
  return (severity ?? 'info').toLowerCase();
}

/** Colour class of a severity: critical red; warning/high/medium amber; info/low blue. */
export function severityColour(severity: string): 'red' | 'amber' | 'blue' | 'grey' {
  switch (severity) {
    case 'critical': case 'error': return 'red';
    case 'warning': case 'high': case 'medium': return 'amber';
    case 'info': case 'low': return 'blue';
    default: return 'grey';
  }
}

export interface IncomingMessage { type: string; room?: string; data?: unknown; timestamp?: string; priority?: string }

export function receive(room: string, message: IncomingMessage): void {
  const now = Date.now();
  const timestamp = message.timestamp;
  switch (`${room}/${message.type}`) {
    case 'nodes/node_status_update': {
      const data = message.data as NodeStatusUpdate;
      if (!data || !Array.isArray(data.nodes)) return set({ counts: count(room) });
      const previous = state.nodes;
      const nodeRates: Record<string, Rate> = {};
      const changes: ChangeEntry[] = [];
      const before = new Map((previous?.data.nodes ?? []).map((node) => [node.node_id, node]));
      for (const node of data.nodes) {
        const old = before.get(node.node_id);
        const seconds = previous ? (now - previous.at) / 1000 : 0;
        if (old && seconds > 0.5) {
          const rate = (a?: number, b?: number) => (typeof a === 'number' && typeof b === 'number' && a >= b ? (a - b) / seconds : undefined);
          nodeRates[node.node_id] = {
            messagesIn: rate(node.network?.messages_in, old.network?.messages_in),
            messagesOut: rate(node.network?.messages_out, old.network?.messages_out),
            updates: rate(node.update_count, old.update_count),
          };
        } else if (state.nodeRates[node.node_id]) {
          nodeRates[node.node_id] = state.nodeRates[node.node_id];
        }
        const stateOf = (n: typeof node) => n.state ?? (n.online ? 'online' : 'offline');
        if (previous && !old) changes.push({ node_id: node.node_id, layer: node.layer, change: 'joined', at: now, source: 'node_status_update' });
        else if (old && stateOf(old) !== stateOf(node)) changes.push({ node_id: node.node_id, layer: node.layer, change: stateOf(node), at: now, source: 'node_status_update' });
        else if (old && old.layer !== node.layer) changes.push({ node_id: node.node_id, layer: node.layer, change: 'layer_changed', at: now, source: 'node_status_update' });
      }
      // A change the publisher already announced in a topology_change is not listed twice.
      const fresh = changes.filter((c) => !state.changes.some((k) => k.node_id === c.node_id && k.change === c.change && now - k.at < DEDUP_MS));
      return set({
        counts: count(room),
        nodes: { data, at: now, timestamp },
        nodeRates,
        changes: fresh.length ? [...fresh.reverse(), ...state.changes].slice(0, MAX_CHANGES) : state.changes,
        live: addLive(state.live, when(timestamp), {
          'nodes.active': data.active_nodes,
          'nodes.offline': data.offline_nodes,
          'nodes.total': data.total_nodes,
          'nodes.updates_total': data.total_updates,
        }),
      });
    }
    case 'tasks/task_progress_update': {
      const data = message.data as TaskProgressUpdate;
      if (!data) return set({ counts: count(room) });
      const taskHistory: Record<string, { at: number; progress: number }[]> = {};
      for (const [id, points] of Object.entries(state.taskHistory)) {
        const kept = points.filter((point) => now - point.at < TASK_HISTORY_MS);
        if (kept.length) taskHistory[id] = kept;
      }
      for (const task of data.tasks ?? []) {
        if (typeof task.progress !== 'number' || !Number.isFinite(task.progress)) continue;
        const points = taskHistory[task.task_id] ?? [];
        const last = points[points.length - 1];
        // Progress that went back means the task restarted: start its history again.
        const base = last && task.progress < last.progress ? [] : points;
        taskHistory[task.task_id] = [...base, { at: now, progress: task.progress }].slice(-120);
      }
      return set({
        counts: count(room),
        tasks: { data, at: now, timestamp },
        taskHistory,
        live: addLive(state.live, when(timestamp), {
          'tasks.pending': data.pending, 'tasks.running': data.running, 'tasks.completed': data.completed, 'tasks.failed': data.failed,
        }),
      });
    }
    case 'tasks/batch_progress': {
      const data = message.data as BatchProgress;
      if (!data || typeof data.node !== 'string') return set({ counts: count(room) });
      return set({ counts: count(room), batches: { ...state.batches, [data.node]: { data, at: now, timestamp } } });
    }
    case 'metrics/metrics_update': {
      const data = message.data as MetricsUpdate;
      if (!data) return set({ counts: count(room) });
      return set({
        counts: count(room),
        metrics: { data, at: now, timestamp },
        live: addLive(state.live, when(timestamp), {
          'system.health_score': data.health_score,
          'ingest.reports_per_second': data.reports_per_second,
          'store.latency_ms': data.services?.store?.latency_ms,
        }),
      });
    }
    case 'alerts/alert': {
      const data = (message.data ?? {}) as AlertData;
      const severity = alertSeverity(data, message.priority);
      const entry: AlertEntry = { id: ++alertSeq, data, severity, at: now, timestamp: data.timestamp ?? timestamp ?? new Date(now).toISOString() };
      return set({ counts: count(room), alerts: [entry, ...state.alerts].slice(0, MAX_ALERTS) });
    }
    case 'resources/resource_update': {
      const data = message.data as ResourceUpdate;
      if (!data) return set({ counts: count(room) });
      const values: Record<string, number | null | undefined> = {};
      for (const field of ['cpu_percent', 'memory_used_percent', 'disk_used_percent', 'load_1m'] as const) {
        values[`resources.${field}.avg`] = data.average?.[field];
        values[`resources.${field}.max`] = data.max?.[field];
      }
      return set({ counts: count(room), resources: { data, at: now, timestamp }, live: addLive(state.live, when(timestamp), values) });
    }
    case 'topology/topology_change': {
      const data = message.data as TopologyChange;
      if (!data) return set({ counts: count(room) });
      const changes: ChangeEntry[] = (data.changes ?? []).map((change) => ({ ...change, at: now, source: 'topology_change' as const }));
      // The publisher's word replaces what the dashboard derived from node_status_update.
      const kept = state.changes.filter((k) => !(k.source === 'node_status_update' && now - k.at < DEDUP_MS && changes.some((c) => c.node_id === k.node_id && c.change === k.change)));
      return set({ counts: count(room), topology: { data, at: now, timestamp }, changes: [...changes, ...kept].slice(0, MAX_CHANGES) });
    }
    default:
      return set({ counts: count(room) });
  }
}

/** Empties the alert feed (seed 001's clearAlerts). */
export function clearAlerts(): void {
  set({ alerts: [] });
}

/** Forgets everything (sign-out). */
export function resetStore(): void {
  set({ counts: {}, nodes: undefined, nodeRates: {}, tasks: undefined, taskHistory: {}, batches: {}, metrics: undefined, live: {}, alerts: [], resources: undefined, topology: undefined, changes: [] });
}
