// Seed 003's device panel: per device the four channel powers with a live trace, wavelength
// and unit, a module selector, and the seed's badges. The readings come over the dashboard's
// one connection (a connection per device would soon meet the gateway's per-user connection
// rate), whose client has maxReconnectAttempts 10 as in seeds 001 and 003, so the badge counts
// "Reconnecting (n/10)".

import { useEffect, useMemo, useState } from 'react';
import type { ConnectionState, StateDetail } from '@switchboard/client';
import { useConnectionState, useSwitchboard } from '@switchboard/client/react';
import { api } from '../api';
import { Chart } from '../Chart';
import { ago, num } from '../format';
import type { DeviceFault, DeviceReading, DeviceStatus } from '../types';
import { usePoll } from '../usePoll';
import { MAX_RECONNECT_ATTEMPTS } from '../limits';

export const DEVICE_MAX_RECONNECT_ATTEMPTS = MAX_RECONNECT_ATTEMPTS;
const TRACE_SECONDS = 60;
const DELIVERY_INTERVAL_MS = 250;
const EMPTY_TRACE: [number, number, number, number, number][] = [];
const CHANNEL_COLOURS = ['#1f5fbf', '#c0262d', '#1f8a4c', '#a86400'];

export function DevicesView() {
  const devices = usePoll(() => api<DeviceStatus[]>('/api/ws/devices'), 10_000);
  const [known, setKnown] = useState<string[]>([]);
  useEffect(() => {
    if (!devices.data) return;
    const ids = devices.data.map((d) => d.device_id).sort();
    setKnown((previous) => (previous.join() === ids.join() ? previous : ids));
  }, [devices.data]);
  const modules = useMemo(() => new Map((devices.data ?? []).map((d) => [d.device_id, d.modules])), [devices.data]);
  return (
    <div className="grid">
      {known.length === 0 && (
        <div className="panel wide" data-testid="devices-empty">
          <div className="panel-head"><h2>Devices</h2>
            <span className={`badge-seed ${devices.error ? 'red' : 'gray'}`}>{devices.error ? 'Service Unavailable' : devices.loading ? 'Checking…' : 'No devices'}</span>
          </div>
          <p className="empty">{devices.error ? `GET /api/ws/devices: ${devices.error}` : devices.loading ? 'Asking the device reader…' : 'The device reader has no devices.'}</p>
        </div>
      )}
      {known.map((id) => <DeviceCard key={id} deviceId={id} modules={modules.get(id) ?? []} />)}
    </div>
  );
}

function DeviceCard({ deviceId, modules }: { deviceId: string; modules: number[] }) {
  const status = usePoll(() => api<DeviceStatus>(`/api/ws/devices/${encodeURIComponent(deviceId)}`), 5_000, deviceId);
  const [module, setModule] = useState<number | null>(null);
  const current = module ?? modules[0] ?? null;
  const client = useSwitchboard();
  const stream = useConnectionState();
  const [lastReading, setReading] = useState<DeviceReading | null>(null);
  const [trace, setTrace] = useState<[number, number, number, number, number][]>([]);
  const [fault, setFault] = useState<DeviceFault | null>(null);

  // Seed 003: the readings are cleared when the stream closes.
  useEffect(() => {
    if (stream.state !== 'connected') {
      setReading(null);
      setTrace([]);
    }
  }, [stream.state]);

  useEffect(() => {
    if (current === null) return undefined;
    setReading(null);
    setTrace([]);
    setFault(null);
    const room = `devices.${deviceId}.m${current}`;
    return client.subscribe(room, (message) => {
      const m = message as unknown as { type: string; data: unknown };
      if (m.type === 'data') {
        const r = m.data as DeviceReading;
        if (typeof r?.ch1_power !== 'number') return;
        setReading(r);
        setFault(null);
        setTrace((previous) => {
          const next = previous.concat([[r.timestamp, r.ch1_power, r.ch2_power, r.ch3_power, r.ch4_power]]);
          const from = r.timestamp - TRACE_SECONDS;
          const start = next.findIndex((p) => p[0] >= from);
          return start > 0 ? next.slice(start) : next;
        });
      } else if (m.type === 'device_error') {
        setFault(m.data as DeviceFault);
      }
    }, { minIntervalMs: DELIVERY_INTERVAL_MS });
  }, [client, deviceId, current]);

  // Nothing of a closed stream is shown, not even for the render before the effect above.
  const live = stream.state === 'connected';
  const reading = live ? lastReading : null;
  const shownTrace = live ? trace : EMPTY_TRACE;
  const chartData = useMemo(() => [0, 1, 2, 3, 4].map((i) => shownTrace.map((p) => p[i])), [shownTrace]);
  const s = status.data && status.data.device_id === deviceId ? status.data : null;
  // The trace's window ends at the newest reading (the instrument's clock).
  const newest = shownTrace.length ? shownTrace[shownTrace.length - 1][0] : null;
  const xRange: [number, number] | undefined = newest === null ? undefined : [newest - TRACE_SECONDS, newest];
  const lastReadingAt = reading ? reading.timestamp : s?.last_reading_at ?? null;
  const channels = reading ? [reading.ch1_power, reading.ch2_power, reading.ch3_power, reading.ch4_power] : [null, null, null, null];

  return (
    <div className="panel wide device" data-testid={`device-${deviceId}`} data-device-id={deviceId}>
      <div className="panel-head">
        <h2>{deviceId}</h2>
        <span className="badges">
          <StatusBadges status={s} loading={status.loading && !status.data && !status.error} error={status.error} />
          <StreamBadge state={stream.state} detail={stream.detail} />
        </span>
        <label className="module-select">module{' '}
          <select data-testid={`device-module-${deviceId}`} value={current ?? ''} onChange={(e) => setModule(Number(e.target.value))}>
            {modules.map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
        </label>
      </div>
      <div className="device-body">
        <div className="readings" data-testid={`device-readings-${deviceId}`} data-live={reading ? 'true' : 'false'} data-module={reading ? String(reading.module) : ''}>
          {channels.map((value, i) => (
            <div key={i} className="channel" style={{ borderColor: CHANNEL_COLOURS[i] }}>
              <span className="k">ch{i + 1}</span>
              <span className="v" data-testid={`device-ch${i + 1}-${deviceId}`}>{value === null ? '—' : num(value, 2)}</span>
              <span className="u">{reading?.unit ?? ''}</span>
            </div>
          ))}
          <div className="channel meta">
            <span className="k">wavelength</span>
            <span className="v" data-testid={`device-wavelength-${deviceId}`}>{reading ? `${num(reading.wavelength_nm, 1)} nm` : '—'}</span>
            <span className="u">{reading ? `unit ${reading.unit}` : ''}</span>
          </div>
        </div>
        <Chart testid={`device-chart-${deviceId}`} data={chartData} xRange={xRange} series={[1, 2, 3, 4].map((n, i) => ({ label: `ch${n}`, stroke: CHANNEL_COLOURS[i] }))} height={180} yLabel={reading?.unit ?? ''} />
        <div className="device-foot">
          {s && <span>{s.driver} · every {s.interval_ms} ms · {s.state}{lastReadingAt ? ` · last reading ${ago(lastReadingAt * 1000)}` : ''}{s.reader_id ? ` · reader ${s.reader_id}` : ''}</span>}
          {(fault || s?.last_error) && <span className="error" data-testid={`device-fault-${deviceId}`}>{fault ? `${fault.message} (${fault.recoverable ? 'recoverable' : 'not recoverable'}, ${fault.error_count} in a row)` : s?.last_error}</span>}
        </div>
      </div>
    </div>
  );
}

/** Seed 003: Checking… / Service Unavailable / Connected / Disconnected, from the device status. */
function StatusBadges({ status, loading, error }: { status: DeviceStatus | null; loading: boolean; error: string | null }) {
  let label: string;
  let colour: string;
  if (loading) [label, colour] = ['Checking…', 'gray'];
  else if (error || !status) [label, colour] = ['Service Unavailable', 'red'];
  else if (status.state === 'connected') [label, colour] = ['Connected', 'green'];
  else [label, colour] = ['Disconnected', 'red'];
  return <span className={`badge-seed ${colour}`} data-testid="device-status-badge" title={error ?? status?.state ?? ''}>{label}</span>;
}

/** Seed 003: Live Data / Reconnecting (n/10), from the connection the readings come over. */
function StreamBadge({ state, detail }: { state: ConnectionState; detail?: StateDetail }) {
  if (state === 'connected') return <span className="badge-seed blue" data-testid="device-stream-badge" data-state={state}>Live Data</span>;
  if (state === 'reconnecting') {
    return <span className="badge-seed orange" data-testid="device-stream-badge" data-state={state}>Reconnecting ({detail?.attempt ?? 0}/{DEVICE_MAX_RECONNECT_ATTEMPTS})</span>;
  }
  if (state === 'disconnected') return <span className="badge-seed red" data-testid="device-stream-badge" data-state={state}>Disconnected</span>;
  return <span className="badge-seed gray" data-testid="device-stream-badge" data-state={state}>Checking…</span>;
}
