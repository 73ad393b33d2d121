import { useEffect, useMemo, useState } from 'react';
import { ApiError, api, describeError } from '../api';
import { Chart } from '../Chart';
import { ago, num } from '../format';
import { useStore } from '../store';
import { healthColour } from '../logic';
import type { HistoryReply, SummaryReply } from '../types';
import { usePoll } from '../usePoll';

const RANGES = [
  { hours: 1, label: '1 h' },
  { hours: 24, label: '24 h' },
  { hours: 168, label: '7 d' },
];
const PREFERRED = ['resources.cpu_percent.avg', 'system.health_score', 'nodes.active'];

export function MetricsView() {
  const metrics = useStore((s) => s.metrics);
  const services = metrics ? Object.entries(metrics.data.services ?? {}) : [];
  return (
    <div className="grid">
      <div className="panel wide" data-testid="service-health">
        <div className="panel-head">
          <h2>Service health</h2>
          {metrics && (
            <span className={`chip health-${healthColour(metrics.data.system_health)}`} data-testid="system-health">
              {metrics.data.system_health} · {num(metrics.data.health_score, 0)} %
            </span>
          )}
          <span className="hint">{metrics ? `metrics_update ${ago(metrics.at)}` : 'waiting for metrics_update (every 10 s)'}</span>
        </div>
        {services.length === 0 ? (
          <p className="empty">No service status yet.</p>
        ) : (
          <ul className="services">
            {services.map(([name, status]) => (
              <li key={name} className={`service health-${healthColour(status.status)}`} data-testid={`service-${name}`} data-status={status.status}>
                <span className="dot" aria-hidden="true" />
                <span className="name">{name}</span>
                <span className="status">{status.status}</span>
                <span className="detail">{status.detail ?? ''}{typeof status.latency_ms === 'number' ? ` · ${num(status.latency_ms, 1)} ms` : ''}</span>
              </li>
            ))}
          </ul>
        )}
        <HealthChart />
        {metrics && (
          <div className="facts">
            <span>online nodes <b>{num(metrics.data.active_nodes)}</b></span>
            <span>offline <b>{num(metrics.data.offline_nodes)}</b></span>
            <span>reports/s <b>{num(metrics.data.reports_per_second, 2)}</b></span>
            <span>rejected reports <b>{num(metrics.data.rejected_reports)}</b></span>
          </div>
        )}
      </div>
      <HistoryPanel />
      <RulesPanel />
    </div>
  );
}

/**
 * A metric's history over the last `hours` (GET /api/ws/metrics/history: raw samples and
 * one-minute roll-ups), extended with the live samples that arrived after the last stored one.
 */
function useHistory(metric: string | null, hours: number) {
  const liveSeries = useStore((s) => (metric ? s.live[metric] : undefined));
  const [history, setHistory] = useState<{ key: string; reply: HistoryReply } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [refreshTick, setRefreshTick] = useState(0);
  const key = `${metric}/${hours}`;
  const reply = history && history.key === key ? history.reply : null;
  const empty = reply !== null && reply.samples.length + reply.rollups.length === 0;

  useEffect(() => {
    // A fresh fetch picks up what the aggregator stored meanwhile (sooner while it has nothing).
    const timer = setInterval(() => setRefreshTick((n) => n + 1), empty ? 10_000 : 30_000);
    return () => clearInterval(timer);
  }, [empty]);

  useEffect(() => {
    if (!metric) return undefined;
    let stopped = false;
    api<HistoryReply>(`/api/ws/metrics/history?metric=${encodeURIComponent(metric)}&hours=${hours}`)
      .then((answer) => {
        if (stopped) return;
        setHistory({ key: `${metric}/${hours}`, reply: answer });
        setError(null);
      })
      .catch((e) => {
        if (!stopped) setError(describeError(e));
      });
    return () => {
      stopped = true;
    };
  }, [metric, hours, refreshTick]);

  const data = useMemo(() => {
    const points: [number, number][] = [];
    if (reply) {
      for (const r of reply.rollups) if (r.ts_ms < reply.raw_from_ms) points.push([r.ts_ms, r.avg]);
      for (const sample of reply.samples) points.push([sample.ts_ms, sample.value]);
    }
    const from = Date.now() - hours * 3_600_000;
    const after = points.length ? points[points.length - 1][0] : from;
    for (const [at, value] of liveSeries ?? []) if (at > after) points.push([at, value]);
    points.sort((a, b) => a[0] - b[0]);
    return [points.map((p) => p[0] / 1000), points.map((p) => p[1])];
  }, [reply, liveSeries, hours]);
  const stored = reply ? reply.samples.length + reply.rollups.length : 0;
  return { data, reply, error, liveCount: Math.max(0, data[0].length - stored) };
}

/** Seed 001's health history mini-chart: system.health_score over the last hour. */
function HealthChart() {
  const { data } = useHistory('system.health_score', 1);
  const now = Date.now();
  return (
    <div className="mini-chart">
      <h3>health score, last hour</h3>
      <Chart testid="health-chart" data={data} xRange={[(now - 3_600_000) / 1000, now / 1000]} series={[{ label: 'health %', stroke: '#1f8a4c', width: 2 }]} yRange={[0, 100]} height={110} />
    </div>
  );
}

function HistoryPanel() {
  const summary = usePoll(() => api<SummaryReply>('/api/ws/metrics/summary'), 30_000);
  const live = useStore((s) => s.live);
  const names = useMemo(() => {
    const set = new Set<string>(Object.keys(live));
    for (const m of summary.data?.metrics ?? []) set.add(m.metric);
    return [...set].sort();
  }, [live, summary.data]);
  const [chosen, setChosen] = useState<string | null>(null);
  const metric = chosen ?? PREFERRED.find((name) => names.includes(name)) ?? names[0] ?? null;
  const [hours, setHours] = useState(1);
  const { data, reply, error, liveCount } = useHistory(metric, hours);
  const stats = summary.data?.metrics.find((m) => m.metric === metric);
  const now = Date.now();
  const xRange: [number, number] = [(now - hours * 3_600_000) / 1000, now / 1000];

  return (
    <div className="panel wide" data-testid="metric-history">
      <div className="panel-head">
        <h2>History</h2>
        <select data-testid="metric-picker" value={metric ?? ''} onChange={(e) => setChosen(e.target.value)} aria-label="Metric">
          {names.length === 0 && <option value="">no metrics yet</option>}
          {names.map((name) => <option key={name} value={name}>{name}</option>)}
        </select>
        <div className="segmented" role="group" aria-label="Range">
          {RANGES.map((r) => (
            <button key={r.hours} type="button" data-testid={`range-${r.hours}`} className={hours === r.hours ? 'on' : ''} onClick={() => setHours(r.hours)}>{r.label}</button>
          ))}
        </div>
      </div>
      <div className="panel-meta" data-testid="history-meta">
        {error ? <span className="error">history: {error}</span> : reply ? (
          <>stored: {reply.samples.length} samples and {reply.rollups.length} one-minute roll-ups (/api/ws/metrics/history) · live since: {liveCount}</>
        ) : metric ? 'loading history…' : 'waiting for the first metrics'}
      </div>
      <Chart testid="metric-chart" data={data} xRange={xRange} series={[{ label: metric ?? 'value', stroke: '#1f5fbf', width: 2 }]} height={240} />
      {stats && (
        <table className="mini" data-testid="metric-stats">
          <thead><tr><th>window</th><th className="num">count</th><th className="num">min</th><th className="num">avg</th><th className="num">max</th><th className="num">p95</th></tr></thead>
          <tbody>
            {Object.entries(stats.windows).map(([window, w]) => (
              <tr key={window}><td>{window}</td><td className="num">{num(w.count)}</td><td className="num">{num(w.min, 2)}</td><td className="num">{num(w.avg, 2)}</td><td className="num">{num(w.max, 2)}</td><td className="num">{num(w.p95, 2)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function RulesPanel() {
  const rules = usePoll(() => api<{ rules: Record<string, unknown>[] }>('/api/ws/metrics/rules'), 60_000);
  const missing = rules.errorObject instanceof ApiError && (rules.errorObject.status === 404 || rules.errorObject.status === 405);
  if (missing) return null;
  const list = rules.data?.rules ?? [];
  const columns = [...new Set(list.flatMap((rule) => Object.keys(rule)))];
  return (
    <div className="panel wide" data-testid="metric-rules">
      <div className="panel-head"><h2>Alert rules</h2><span className="hint">read-only · GET /api/ws/metrics/rules</span></div>
      {rules.error ? <p className="error">{rules.error}</p> : list.length === 0 ? <p className="empty">{rules.loading ? 'loading…' : 'No rules.'}</p> : (
        <div className="scroll-x">
          <table className="mini">
            <thead><tr>{columns.map((c) => <th key={c}>{c}</th>)}</tr></thead>
            <tbody>
              {list.map((rule, i) => (
                <tr key={i}>{columns.map((c) => <td key={c}>{typeof rule[c] === 'object' ? JSON.stringify(rule[c]) : String(rule[c] ?? '')}</td>)}</tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
