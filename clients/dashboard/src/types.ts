// Payloads the dashboard reads (libs/protocol/src/streams.rs, device.rs, batch/progress.rs).
// Fields other services add over time are optional here: the views render them when present
// and never depend on them.

export interface LayerCounts { active: number; offline: number; stopped?: number }

export interface NodeNetwork { connections?: number; rtt_ms?: number | null; messages_in?: number; messages_out?: number }

export interface NodeStatus {
  node_id: string;
  layer: string;
  online: boolean;
  /** `online`, `offline` or `stopped` (newer publishers). */
  state?: string;
  update_count: number;
  last_seen: string;
  last_sync_time?: string;
  last_sync_count?: number;
  network?: NodeNetwork | null;
}

export interface NodeStatusUpdate {
  active_nodes: number;
  offline_nodes: number;
  stopped_nodes?: number;
  total_nodes: number;
  total_updates: number;
  reports_received: number;
  layers: Record<string, LayerCounts>;
  nodes: NodeStatus[];
  network?: { connections?: number; avg_rtt_ms?: number | null; messages_in?: number; messages_out?: number } | null;
  tick?: number;
}

export interface TaskStatus { task_id: string; source?: string; status: string; progress?: number | null; name?: string | null }

export interface TaskProgressUpdate {
  pending: number; running: number; completed: number; failed: number;
  tasks: TaskStatus[];
  tick?: number;
}

export interface ServiceStatus { status: string; detail?: string | null; latency_ms?: number | null }

export interface MetricsUpdate {
  system_health: string;
  health_score: number;
  services: Record<string, ServiceStatus>;
  active_nodes: number;
  offline_nodes: number;
  reports_per_second: number;
  rejected_reports: number;
  tick?: number;
}

export interface ResourceFigures { cpu_percent?: number | null; memory_used_percent?: number | null; disk_used_percent?: number | null; load_1m?: number | null }

export interface StorageUse { mount: string; used_bytes?: number; total_bytes?: number; used_percent?: number }

export interface NodeResources extends ResourceFigures { node_id: string; layer: string; storage?: StorageUse[] | null }

export interface ResourceUpdate {
  nodes_reporting: number;
  average: ResourceFigures;
  max: ResourceFigures;
  top: NodeResources[];
  tick?: number;
}

export interface NodeChange { node_id: string; layer: string; change: string }

export interface TopologyChange {
  changes: NodeChange[];
  layers: Record<string, string[]>;
  active_nodes: number;
  total_nodes: number;
}

/** An alert as the publisher (`Alert`) or the aggregator (`MetricAlert`) sends it, or as anyone publishes it. */
export interface AlertData {
  type?: string;
  severity?: string;
  message?: string;
  node_id?: string;
  metric?: string;
  value?: number;
  threshold?: number;
  z_score?: number;
  comparison?: string;
  labels?: Record<string, string>;
  timestamp?: string;
  [key: string]: unknown;
}

export interface BatchProgress {
  node: string;
  node_num?: number;
  connection: string;
  stored: { generated: number; validated: number };
  duplicates: number;
  invalid: number;
  received: { websocket: number; http: number };
  last_block_height?: number;
}

export interface DeviceReading {
  timestamp: number;
  module: number;
  wavelength_nm: number;
  unit: string;
  ch1_power: number; ch2_power: number; ch3_power: number; ch4_power: number;
  device_id: string;
}

export interface DeviceFault { message: string; timestamp: string; recoverable: boolean; error_count: number; device_id: string; module: number }

export interface DeviceStatus {
  device_id: string;
  driver: string;
  modules: number[];
  interval_ms: number;
  state: string;
  last_reading_at: number | null;
  error_count: number;
  last_error: string | null;
  reader_id: string | null;
}

export interface Stats {
  total_connections?: number;
  active_connections?: number;
  total_messages?: number;
  rooms_created?: number;
  rooms?: Record<string, number>;
  gateways?: unknown[];
  live_gateways?: number | null;
  publishers_active?: number;
  server_id?: string;
  degraded?: boolean;
}

export interface HistoryReply {
  metric: string;
  from_ms: number;
  to_ms: number;
  raw_from_ms: number;
  samples: { ts_ms: number; value: number }[];
  rollups: { ts_ms: number; count: number; min: number; max: number; avg: number; stddev: number }[];
}

export interface WindowStats { count: number; min?: number | null; max?: number | null; avg?: number | null; median?: number | null; stddev?: number | null; p95?: number | null }

export interface MetricSummary { metric: string; latest_value: number; latest_ts_ms: number; windows: Record<string, WindowStats>; owner?: string; updated_ms?: number }

export interface SummaryReply { generated_at_ms: number; metrics: MetricSummary[] }

export interface NodeDetail {
  node_id: string;
  layer: string;
  state?: string;
  online?: boolean;
  last_seen?: string;
  update_count?: number;
  current_data?: unknown;
  operation_log?: unknown[];
  network?: NodeNetwork | null;
}

export interface CommandAck { id: string; ok: boolean; result?: unknown; error?: string }
