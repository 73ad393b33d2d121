import { useState } from 'react';
import { clock, num } from '../format';
import { MAX_ALERTS, clearAlerts, severityColour, useStore } from '../store';

const FILTERS = [
  { id: 'all', label: 'All', match: () => true },
  { id: 'critical', label: 'Critical', match: (c: string) => c === 'red' },
  { id: 'warning', label: 'Warning', match: (c: string) => c === 'amber' },
  { id: 'info', label: 'Info', match: (c: string) => c === 'blue' || c === 'grey' },
] as const;

export function AlertsView() {
  const alerts = useStore((s) => s.alerts);
  const [filter, setFilter] = useState<(typeof FILTERS)[number]['id']>('all');
  const match = FILTERS.find((f) => f.id === filter)?.match ?? (() => true);
  const shown = alerts.filter((a) => match(severityColour(a.severity)));
  return (
    <div className="grid">
      <div className="panel wide" data-testid="alerts-panel">
        <div className="panel-head">
          <h2>Alerts</h2>
          <span className="hint" data-testid="alert-count">{alerts.length} of the last {MAX_ALERTS}</span>
          <div className="segmented" role="group" aria-label="Severity filter">
            {FILTERS.map((f) => (
              <button key={f.id} type="button" data-testid={`alert-filter-${f.id}`} className={filter === f.id ? 'on' : ''} onClick={() => setFilter(f.id)}>{f.label}</button>
            ))}
          </div>
          <button type="button" data-testid="alerts-clear" disabled={alerts.length === 0} onClick={clearAlerts}>Clear</button>
        </div>
        {shown.length === 0 ? <p className="empty">{alerts.length ? 'No alerts of this severity.' : 'No alerts since this page opened.'}</p> : (
          <ol className="alerts" data-testid="alert-list">
            {shown.map((alert) => {
              const colour = severityColour(alert.severity);
              const d = alert.data;
              const details: [string, string][] = [];
              if (d.node_id) details.push(['node', d.node_id]);
              if (d.metric) details.push(['metric', d.metric]);
              if (typeof d.value === 'number') details.push(['value', num(d.value, 2)]);
              if (typeof d.threshold === 'number') details.push(['threshold', `${d.comparison ? `${d.comparison} ` : ''}${num(d.threshold, 2)}`]);
              if (typeof d.z_score === 'number') details.push(['z-score', num(d.z_score, 2)]);
              for (const [k, v] of Object.entries(d.labels ?? {})) details.push([k, String(v)]);
              return (
                <li key={alert.id} className={`sev-${colour}`} data-severity={alert.severity} data-testid="alert-item">
                  <span className="sev">{alert.severity}</span>
                  <span className="title">{d.type ?? 'alert'}{d.message ? <span className="detail">{d.message}</span> : null}</span>
                  <time dateTime={alert.timestamp}>{clock(alert.timestamp)}</time>
                  {details.length > 0 && (
                    <dl className="alert-details">
                      {details.map(([k, v]) => <div key={k}><dt>{k}</dt><dd>{v}</dd></div>)}
                    </dl>
                  )}
                </li>
              );
            })}
          </ol>
        )}
      </div>
    </div>
  );
}
