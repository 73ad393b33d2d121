// Payloads the dashboard reads. The stream, device, batch and node-detail types are the JS
// client's (`@switchboard/client`, checked there against proto/schemas and the Rust structs);
// what is here is only what the client package does not describe: alerts as anyone may
// publish them, and the HTTP API's answers the dashboard polls.

export type {
  BatchProgress,
  DeviceFault,
  DeviceReading,
  DeviceStatus,
  LayerCounts,
  MetricsUpdate,
  NodeChange,
  NodeDetail,
  NodeNetwork,
  NodeResources,
  NodeStatus,
  NodeStatusUpdate,
  ResourceFigures,
  ResourceUpdate,
  ServiceStatus,
  StorageUse,
  TaskProgressUpdate,
  TaskStatus,
  TopologyChange,
} from '@switchboard/client';

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

export interface CommandAck { id: string; ok: boolean; result?: unknown; error?: string }
