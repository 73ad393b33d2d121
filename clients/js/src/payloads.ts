/**
 * Typed payloads (`data`) of the standard rooms.
 *
 * - The six monitoring streams of seed 001 (`libs/protocol/src/streams.rs`, which has no JSON
 *   schema yet): `test/types.test.mjs` checks every interface's keys, and which are optional,
 *   against the Rust structs' fields.
 * - The instruments of seed 003 (`device_reading`, `device_fault`, `device_status`) and
 *   batch-ingest's `batch_progress`: checked against proto/schemas.
 */

import type { RoomMessage } from './client.js';

// ---------------------------------------------------------------------------------------
// Seed 001's six streams (room → event → payload)
// ---------------------------------------------------------------------------------------

/** Node counts of one layer. */
export interface LayerCounts {
  active: number;
  /** Silent past the timeout (an outage). */
  offline: number;
  /** Stopped cleanly. */
  stopped: number;
}

/** A node's run state: `offline` is silence (an outage), `stopped` a clean stop. */
export type NodeRunState = 'online' | 'offline' | 'stopped';

/** One node's connection figures, as the gateways measure them. */
export interface NodeNetwork {
  connections: number;
  /** Smoothed WebSocket ping round-trip time in ms; null until a pong came back. */
  rtt_ms: number | null;
  messages_in: number;
  messages_out: number;
}

/** Network figures over all nodes of a {@link NodeStatusUpdate}. */
export interface NetworkTotals {
  connections: number;
  /** Mean of the nodes' `rtt_ms`; null when no node has one. */
  avg_rtt_ms: number | null;
  messages_in: number;
  messages_out: number;
}

/** One node in {@link NodeStatusUpdate.nodes}. */
export interface NodeStatus {
  node_id: string;
  layer: string;
  online: boolean;
  state: NodeRunState;
  update_count: number;
  /** When its last report arrived (RFC 3339). */
  last_seen: string;
  last_sync_time?: string;
  last_sync_count: number;
  /** Absent when no gateway reports a connection of the node. */
  network?: NodeNetwork;
}

/** `node_status_update` in room `nodes` (every 5 s). */
export interface NodeStatusUpdate {
  active_nodes: number;
  offline_nodes: number;
  stopped_nodes: number;
  /** `active_nodes + offline_nodes + stopped_nodes`. */
  total_nodes: number;
  total_updates: number;
  reports_received: number;
  layers: Record<string, LayerCounts>;
  nodes: NodeStatus[];
  network: NetworkTotals;
  tick: number;
  lease_epoch: number;
}

/** One task in {@link TaskProgressUpdate.tasks}. */
export interface TaskStatus {
  task_id: string;
  source: string;
  /** `pending`, `running`, `completed` or `failed`. */
  status: string;
  /** 0–100, when reported. */
  progress?: number;
  name?: string;
}

/** `task_progress_update` in room `tasks` (every 2 s). */
export interface TaskProgressUpdate {
  pending: number;
  running: number;
  completed: number;
  failed: number;
  tasks: TaskStatus[];
  tick: number;
  lease_epoch: number;
}

/** One component in {@link MetricsUpdate.services}. */
export interface ServiceStatus {
  /** `up`, `degraded`, `down` or `unknown`. */
  status: string;
  detail?: string;
  /** Live instances, for components made of instances. */
  instances_up?: number;
  /** Instances seen within the last hour (live or silent). */
  instances?: number;
  latency_ms?: number;
}

/** `metrics_update` in room `metrics` (every 10 s). */
export interface MetricsUpdate {
  /** `healthy`, `degraded` or `critical`. */
  system_health: string;
  /** 0–100. */
  health_score: number;
  services: Record<string, ServiceStatus>;
  active_nodes: number;
  offline_nodes: number;
  reports_per_second: number;
  rejected_reports: number;
  tick: number;
  lease_epoch: number;
}

/** Resource figures as node agents report them; a figure no node reports is absent. */
export interface ResourceFigures {
  cpu_percent?: number;
  memory_used_percent?: number;
  disk_used_percent?: number;
  load_1m?: number;
}

/** Disk use of one watched mount (`current_data.storage`). */
export interface StorageUse {
  mount: string;
  used_bytes: number;
  total_bytes: number;
  /** 0–100, as `df` shows it. */
  used_percent: number;
}

/** One node in {@link ResourceUpdate.top} (its figures flattened in). */
export interface NodeResources extends ResourceFigures {
  node_id: string;
  layer: string;
  /** Per watched mount; absent when the node reports none. */
  storage?: StorageUse[];
}

/** `resource_update` in room `resources` (every 15 s). */
export interface ResourceUpdate {
  nodes_reporting: number;
  average: ResourceFigures;
  max: ResourceFigures;
  /** Up to ten nodes, busiest CPU first. */
  top: NodeResources[];
  tick: number;
  lease_epoch: number;
}

/** One change in {@link TopologyChange.changes}. */
export interface NodeChange {
  node_id: string;
  layer: string;
  /** `joined`, `online`, `offline`, `stopped`, `left` or `layer_changed`. */
  change: string;
}

/** `topology_change` in room `topology` (on change). */
export interface TopologyChange {
  changes: NodeChange[];
  /** Online node ids per layer, after the changes. */
  layers: Record<string, string[]>;
  active_nodes: number;
  stopped_nodes: number;
  total_nodes: number;
  lease_epoch: number;
}

/** `alert` in room `alerts` (immediately). */
export interface Alert {
  /** `node_offline`, `node_online`, `threshold_exceeded`, `anomaly_detected`, … */
  type: string;
  /** `critical`, `warning`/`high`/`medium`, or `info`. */
  severity: string;
  message: string;
  node_id?: string;
  metric?: string;
  value?: number;
  /** RFC 3339. */
  timestamp: string;
  lease_epoch?: number;
}

/** `GET /api/ws/nodes/{node_id}` (node_detail.schema.json): one node with what it last reported. */
export interface NodeDetail {
  node_id: string;
  layer: string;
  state: NodeRunState;
  online: boolean;
  /** RFC 3339. */
  last_seen: string;
  update_count: number;
  last_sync_time?: string;
  last_sync_count: number;
  /** The node's `current_data`, as last reported. */
  current_data: unknown;
  /** The node's `operation_log`, as last reported (newest last). */
  operation_log: unknown[];
  network?: NodeNetwork;
}

// ---------------------------------------------------------------------------------------
// Seed 003's instruments and batch-ingest (proto/schemas)
// ---------------------------------------------------------------------------------------

/** `data` of event `data` in room `devices.<device_id>.m<module>` (device_reading.schema.json). */
export interface DeviceReading {
  /** Unix seconds with a fraction. */
  timestamp: number;
  module: number;
  wavelength_nm: number;
  unit: string;
  ch1_power: number;
  ch2_power: number;
  ch3_power: number;
  ch4_power: number;
  device_id: string;
}

/** `data` of event `device_error` in room `devices.<device_id>.m<module>` (device_fault.schema.json). */
export interface DeviceFault {
  message: string;
  /** RFC 3339. */
  timestamp: string;
  recoverable: boolean;
  error_count: number;
  device_id: string;
  module: number;
}

/** `data` of event `device_status` in room `devices`, and `GET /api/ws/devices[/{id}]` (device_status.schema.json). */
export interface DeviceStatus {
  device_id: string;
  driver: string;
  modules: number[];
  interval_ms: number;
  state: 'starting' | 'connected' | 'unavailable' | 'stopped';
  last_reading_at: number | null;
  error_count: number;
  last_error: string | null;
  reader_id: string | null;
}

/** `data` of event `batch_progress` in room `tasks` (`common.schema.json#/$defs/batch_progress`). */
export interface BatchProgress {
  node: string;
  node_num?: number;
  connection: 'stopped' | 'connecting' | 'connected' | 'refused' | 'unregistered';
  stored: { generated: number; validated: number };
  duplicates: number;
  invalid: number;
  received: { websocket: number; http: number };
  last_block_height?: number;
}

// ---------------------------------------------------------------------------------------
// Room and event names
// ---------------------------------------------------------------------------------------

/** Room names of the six streams. */
export const Rooms = {
  NODES: 'nodes',
  TASKS: 'tasks',
  METRICS: 'metrics',
  ALERTS: 'alerts',
  RESOURCES: 'resources',
  TOPOLOGY: 'topology',
  DEVICES: 'devices',
} as const;

/** Event names (room message `type`s) of the standard rooms, and their payloads. */
export interface EventPayloads {
  node_status_update: NodeStatusUpdate;
  task_progress_update: TaskProgressUpdate;
  metrics_update: MetricsUpdate;
  resource_update: ResourceUpdate;
  topology_change: TopologyChange;
  alert: Alert;
  batch_progress: BatchProgress;
  data: DeviceReading;
  device_error: DeviceFault;
  device_status: DeviceStatus;
}

/** A standard event name. */
export type StandardEvent = keyof EventPayloads;

/** The room message of a standard event, with its payload typed. */
export type StandardMessage<E extends StandardEvent> = RoomMessage<EventPayloads[E]> & { type: E };

/** The room of a device module: `devices.<device_id>.m<module>`. */
export function deviceRoom(deviceId: string, module: number): string {
  return `devices.${deviceId}.m${module}`;
}
