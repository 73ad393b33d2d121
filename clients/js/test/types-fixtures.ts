// Compile-time key lists of the package's types, checked by `tsc -p tsconfig.test.json`:
// `keys<T>()([...])` only compiles when the list names every key of T and nothing else, and
// `requiredKeys<T>()([...])` when it names exactly T's required keys. test/types.test.mjs
// compares these lists with proto/schemas and with the Rust structs of libs/protocol.

import type {
  AckFrame,
  Alert,
  BatchProgress,
  CommandFrame,
  ConnectionEstablishedFrame,
  DeviceFault,
  DeviceReading,
  DeviceStatus,
  ErrorFrame,
  HeartbeatFrame,
  LayerCounts,
  MetricsUpdate,
  NetworkTotals,
  NodeChange,
  NodeDetail,
  NodeNetwork,
  NodeResources,
  NodeStatus,
  NodeStatusUpdate,
  PingFrame,
  PongFrame,
  PublishFrame,
  ReconnectFrame,
  RefreshedFrame,
  RefreshFrame,
  ResourceFigures,
  ResourceUpdate,
  RoomMessageFrame,
  DirectMessageFrame,
  ServiceStatus,
  SubscribedFrame,
  StorageUse,
  SubscribeFrame,
  TaskProgressUpdate,
  TaskStatus,
  TopologyChange,
  UnsubscribedFrame,
  UnsubscribeFrame,
} from '../dist/index.js';

type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];

/** Accepts an array that lists every member of U, and only members of U. */
function exactly<U extends string>() {
  return <A extends U[]>(list: A & ([U] extends [A[number]] ? unknown : ['missing keys', Exclude<U, A[number]>])): string[] => list;
}
const keys = <T>() => exactly<Extract<keyof T, string>>();
const requiredKeys = <T>() => exactly<Extract<RequiredKeys<T>, string>>();

interface Entry {
  all: string[];
  required: string[];
  /** A stream payload that grows: fields the schema adds later are a diagnostic, not a failure. */
  evolving?: boolean;
}

/** Types with a schema in proto/schemas (file name → type). */
export const schemaTypes: Record<string, Entry> = {
  subscribe: {
    all: keys<SubscribeFrame>()(['type', 'rooms', 'since', 'min_interval_ms']),
    required: requiredKeys<SubscribeFrame>()(['type', 'rooms']),
  },
  unsubscribe: { all: keys<UnsubscribeFrame>()(['type', 'rooms']), required: requiredKeys<UnsubscribeFrame>()(['type', 'rooms']) },
  ping: { all: keys<PingFrame>()(['type']), required: requiredKeys<PingFrame>()(['type']) },
  publish: {
    all: keys<PublishFrame>()(['type', 'room', 'event', 'data']),
    required: requiredKeys<PublishFrame>()(['type', 'room', 'event']),
  },
  refresh: { all: keys<RefreshFrame>()(['type', 'token']), required: requiredKeys<RefreshFrame>()(['type', 'token']) },
  ack: { all: keys<AckFrame>()(['type', 'id', 'ok', 'result', 'error']), required: requiredKeys<AckFrame>()(['type', 'id']) },
  connection_established: {
    all: keys<ConnectionEstablishedFrame>()(['type', 'connection_id', 'server_id', 'heartbeat_interval_ms', 'timestamp']),
    required: requiredKeys<ConnectionEstablishedFrame>()(['type', 'connection_id', 'server_id', 'heartbeat_interval_ms', 'timestamp']),
  },
  subscribed: { all: keys<SubscribedFrame>()(['type', 'rooms', 'recovered']), required: requiredKeys<SubscribedFrame>()(['type', 'rooms']) },
  unsubscribed: { all: keys<UnsubscribedFrame>()(['type', 'rooms', 'reason']), required: requiredKeys<UnsubscribedFrame>()(['type', 'rooms']) },
  refreshed: { all: keys<RefreshedFrame>()(['type', 'exp']), required: requiredKeys<RefreshedFrame>()(['type', 'exp']) },
  pong: { all: keys<PongFrame>()(['type', 'timestamp']), required: requiredKeys<PongFrame>()(['type', 'timestamp']) },
  heartbeat: {
    all: keys<HeartbeatFrame>()(['type', 'timestamp', 'active_streams']),
    required: requiredKeys<HeartbeatFrame>()(['type', 'timestamp', 'active_streams']),
  },
  error: {
    all: keys<ErrorFrame>()(['type', 'code', 'message', 'recoverable', 'room', 'timestamp']),
    required: requiredKeys<ErrorFrame>()(['type', 'code', 'message', 'recoverable', 'timestamp']),
  },
  reconnect: {
    all: keys<ReconnectFrame>()(['type', 'reason', 'retry_after']),
    required: requiredKeys<ReconnectFrame>()(['type', 'reason', 'retry_after']),
  },
  command: {
    all: keys<CommandFrame>()(['type', 'id', 'name', 'params']),
    required: requiredKeys<CommandFrame>()(['type', 'id', 'name', 'params']),
  },
  room_message: {
    all: keys<RoomMessageFrame>()(['type', 'room', 'data', 'timestamp', 'seq', 'priority']),
    required: requiredKeys<RoomMessageFrame>()(['type', 'room', 'data', 'timestamp']),
  },
  direct_message: {
    all: keys<DirectMessageFrame>()(['type', 'user', 'connection_id', 'broadcast', 'data', 'timestamp']),
    required: requiredKeys<DirectMessageFrame>()(['type', 'data', 'timestamp']),
  },
  device_reading: {
    all: keys<DeviceReading>()(['timestamp', 'module', 'wavelength_nm', 'unit', 'ch1_power', 'ch2_power', 'ch3_power', 'ch4_power', 'device_id']),
    required: requiredKeys<DeviceReading>()(['timestamp', 'module', 'wavelength_nm', 'unit', 'ch1_power', 'ch2_power', 'ch3_power', 'ch4_power', 'device_id']),
  },
  device_fault: {
    all: keys<DeviceFault>()(['message', 'timestamp', 'recoverable', 'error_count', 'device_id', 'module']),
    required: requiredKeys<DeviceFault>()(['message', 'timestamp', 'recoverable', 'error_count', 'device_id', 'module']),
  },
  device_status: {
    all: keys<DeviceStatus>()(['device_id', 'driver', 'modules', 'interval_ms', 'state', 'last_reading_at', 'error_count', 'last_error', 'reader_id']),
    required: requiredKeys<DeviceStatus>()(['device_id', 'driver', 'modules', 'interval_ms', 'state', 'last_reading_at', 'error_count', 'last_error', 'reader_id']),
  },
  'common#batch_progress': {
    all: keys<BatchProgress>()(['node', 'node_num', 'connection', 'stored', 'duplicates', 'invalid', 'received', 'last_block_height']),
    required: requiredKeys<BatchProgress>()(['node', 'connection', 'stored', 'duplicates', 'invalid', 'received']),
  },
};

/** The six streams' payloads (Rust struct name in libs/protocol/src/streams.rs → type). */
export const rustTypes: Record<string, Entry> = {
  NodeStatusUpdate: {
    all: keys<NodeStatusUpdate>()(['active_nodes', 'offline_nodes', 'stopped_nodes', 'total_nodes', 'total_updates', 'reports_received', 'layers', 'nodes', 'network', 'tick', 'lease_epoch']),
    required: requiredKeys<NodeStatusUpdate>()(['active_nodes', 'offline_nodes', 'stopped_nodes', 'total_nodes', 'total_updates', 'reports_received', 'layers', 'nodes', 'network', 'tick', 'lease_epoch']),
  },
  LayerCounts: { all: keys<LayerCounts>()(['active', 'offline', 'stopped']), required: requiredKeys<LayerCounts>()(['active', 'offline', 'stopped']) },
  NodeNetwork: {
    all: keys<NodeNetwork>()(['connections', 'rtt_ms', 'messages_in', 'messages_out']),
    required: requiredKeys<NodeNetwork>()(['connections', 'rtt_ms', 'messages_in', 'messages_out']),
  },
  NetworkTotals: {
    all: keys<NetworkTotals>()(['connections', 'avg_rtt_ms', 'messages_in', 'messages_out']),
    required: requiredKeys<NetworkTotals>()(['connections', 'avg_rtt_ms', 'messages_in', 'messages_out']),
  },
  NodeStatus: {
    all: keys<NodeStatus>()(['node_id', 'layer', 'online', 'state', 'update_count', 'last_seen', 'last_sync_time', 'last_sync_count', 'network']),
    required: requiredKeys<NodeStatus>()(['node_id', 'layer', 'online', 'state', 'update_count', 'last_seen', 'last_sync_count']),
  },
  TaskProgressUpdate: {
    all: keys<TaskProgressUpdate>()(['pending', 'running', 'completed', 'failed', 'tasks', 'tick', 'lease_epoch']),
    required: requiredKeys<TaskProgressUpdate>()(['pending', 'running', 'completed', 'failed', 'tasks', 'tick', 'lease_epoch']),
  },
  TaskStatus: {
    all: keys<TaskStatus>()(['task_id', 'source', 'status', 'progress', 'name']),
    required: requiredKeys<TaskStatus>()(['task_id', 'source', 'status']),
  },
  MetricsUpdate: {
    all: keys<MetricsUpdate>()(['system_health', 'health_score', 'services', 'active_nodes', 'offline_nodes', 'reports_per_second', 'rejected_reports', 'tick', 'lease_epoch']),
    required: requiredKeys<MetricsUpdate>()(['system_health', 'health_score', 'services', 'active_nodes', 'offline_nodes', 'reports_per_second', 'rejected_reports', 'tick', 'lease_epoch']),
  },
  ServiceStatus: {
    all: keys<ServiceStatus>()(['status', 'detail', 'instances_up', 'instances', 'latency_ms']),
    required: requiredKeys<ServiceStatus>()(['status']),
  },
  ResourceUpdate: {
    all: keys<ResourceUpdate>()(['nodes_reporting', 'average', 'max', 'top', 'tick', 'lease_epoch']),
    required: requiredKeys<ResourceUpdate>()(['nodes_reporting', 'average', 'max', 'top', 'tick', 'lease_epoch']),
  },
  ResourceFigures: {
    all: keys<ResourceFigures>()(['cpu_percent', 'memory_used_percent', 'disk_used_percent', 'load_1m']),
    required: requiredKeys<ResourceFigures>()([]),
  },
  NodeResources: {
    all: keys<NodeResources>()(['node_id', 'layer', 'cpu_percent', 'memory_used_percent', 'disk_used_percent', 'load_1m', 'storage']),
    required: requiredKeys<NodeResources>()(['node_id', 'layer']),
  },
  StorageUse: {
    all: keys<StorageUse>()(['mount', 'used_bytes', 'total_bytes', 'used_percent']),
    required: requiredKeys<StorageUse>()(['mount', 'used_bytes', 'total_bytes', 'used_percent']),
  },
  TopologyChange: {
    all: keys<TopologyChange>()(['changes', 'layers', 'active_nodes', 'stopped_nodes', 'total_nodes', 'lease_epoch']),
    required: requiredKeys<TopologyChange>()(['changes', 'layers', 'active_nodes', 'stopped_nodes', 'total_nodes', 'lease_epoch']),
  },
  NodeChange: { all: keys<NodeChange>()(['node_id', 'layer', 'change']), required: requiredKeys<NodeChange>()(['node_id', 'layer', 'change']) },
  Alert: {
    all: keys<Alert>()(['type', 'severity', 'message', 'node_id', 'metric', 'value', 'timestamp', 'lease_epoch']),
    required: requiredKeys<Alert>()(['type', 'severity', 'message', 'timestamp']),
  },
};

/** The stream payloads' schemas (`file#/pointer` inside proto/schemas/file.schema.json). */
export const streamSchemaTypes: Record<string, Entry> = {
  node_status_update: { ...rustKeysOf('NodeStatusUpdate'), evolving: true },
  'node_status_update#/$defs/node_status': { ...rustKeysOf('NodeStatus'), evolving: true },
  'node_status_update#/$defs/layer_counts': { ...rustKeysOf('LayerCounts'), evolving: true },
  'node_status_update#/$defs/node_network': { ...rustKeysOf('NodeNetwork'), evolving: true },
  'node_status_update#/$defs/network_totals': { ...rustKeysOf('NetworkTotals'), evolving: true },
  resource_update: { ...rustKeysOf('ResourceUpdate'), evolving: true },
  'resource_update#/$defs/node_resources': { ...rustKeysOf('NodeResources'), evolving: true },
  'resource_update#/$defs/storage_use': { ...rustKeysOf('StorageUse'), evolving: true },
  topology_change: { ...rustKeysOf('TopologyChange'), evolving: true },
  'topology_change#/properties/changes/items': { ...rustKeysOf('NodeChange'), evolving: true },
  node_detail: {
    all: keys<NodeDetail>()(['node_id', 'layer', 'state', 'online', 'last_seen', 'update_count', 'last_sync_time', 'last_sync_count', 'current_data', 'operation_log', 'network']),
    required: requiredKeys<NodeDetail>()(['node_id', 'layer', 'state', 'online', 'last_seen', 'update_count', 'last_sync_count', 'current_data', 'operation_log']),
    evolving: true,
  },
};

function rustKeysOf(name: string): Entry {
  const entry = rustTypes[name];
  if (!entry) throw new Error(`no key list for ${name}`);
  return entry;
}

/** A sample of each schema-backed type, typed (so it has the type's shape), validated against the schema by the test. */
export const samples: Record<string, unknown> = {
  device_reading: {
    timestamp: 1761129000.123,
    module: 4,
    wavelength_nm: 1310,
    unit: 'dBm',
    ch1_power: -17.85,
    ch2_power: -21.56,
    ch3_power: 6.94,
    ch4_power: -60.12,
    device_id: 'opm-1',
  } satisfies DeviceReading,
  device_fault: {
    message: 'Hardware temporarily unavailable',
    timestamp: '2025-10-22T10:30:00.123Z',
    recoverable: true,
    error_count: 2,
    device_id: 'opm-1',
    module: 4,
  } satisfies DeviceFault,
  device_status: {
    device_id: 'opm-2',
    driver: 'scpi-tcp',
    modules: [1],
    interval_ms: 100,
    state: 'unavailable',
    last_reading_at: null,
    error_count: 5,
    last_error: 'timeout',
    reader_id: null,
  } satisfies DeviceStatus,
  error: {
    type: 'error',
    code: 'forbidden',
    message: 'not allowed for this token',
    recoverable: true,
    room: 'admin',
    timestamp: '2025-10-22T10:30:00.123Z',
  } satisfies ErrorFrame,
  subscribe: { type: 'subscribe', rooms: ['alerts'], since: { alerts: 41 }, min_interval_ms: 250 } satisfies SubscribeFrame,
  reconnect: { type: 'reconnect', reason: 'server shutting down', retry_after: 4.2 } satisfies ReconnectFrame,
  node_status_update: {
    active_nodes: 1,
    offline_nodes: 0,
    stopped_nodes: 1,
    total_nodes: 2,
    total_updates: 12,
    reports_received: 30,
    layers: { edge: { active: 1, offline: 0, stopped: 1 } },
    nodes: [
      {
        node_id: 'node-1',
        layer: 'edge',
        online: true,
        state: 'online',
        update_count: 7,
        last_seen: '2025-10-22T10:30:00.123Z',
        last_sync_count: 0,
        network: { connections: 1, rtt_ms: null, messages_in: 10, messages_out: 2 },
      },
      { node_id: 'node-2', layer: 'edge', online: false, state: 'stopped', update_count: 5, last_seen: '2025-10-22T10:29:00.000Z', last_sync_time: '2025-10-22T10:28:00Z', last_sync_count: 3 },
    ],
    network: { connections: 1, avg_rtt_ms: 1.5, messages_in: 10, messages_out: 2 },
    tick: 352425806,
    lease_epoch: 3,
  } satisfies NodeStatusUpdate,
  resource_update: {
    nodes_reporting: 1,
    average: { cpu_percent: 12.5, memory_used_percent: 40 },
    max: { cpu_percent: 12.5 },
    top: [{ node_id: 'node-1', layer: 'edge', cpu_percent: 12.5, storage: [{ mount: '/', used_bytes: 10, total_bytes: 100, used_percent: 10 }] }],
    tick: 1,
    lease_epoch: 1,
  } satisfies ResourceUpdate,
  topology_change: {
    changes: [{ node_id: 'node-2', layer: 'edge', change: 'stopped' }],
    layers: { edge: ['node-1'] },
    active_nodes: 1,
    stopped_nodes: 1,
    total_nodes: 2,
    lease_epoch: 3,
  } satisfies TopologyChange,
};
