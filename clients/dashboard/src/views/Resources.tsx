import { ago, bytes, num, pct } from '../format';
import { useStore } from '../store';
import type { NodeResources } from '../types';

function Bar({ label, value, testid, note }: { label: string; value: number | null | undefined; testid?: string; note?: string }) {
  const known = typeof value === 'number' && Number.isFinite(value);
  const v = known ? Math.max(0, Math.min(100, value as number)) : 0;
  const tone = !known ? 'none' : v >= 90 ? 'red' : v >= 75 ? 'amber' : 'green';
  return (
    <div className="meter" data-testid={testid} data-value={known ? String(value) : ''}>
      <span className="meter-label">{label}</span>
      <div className={`bar tone-${tone}`}><span style={{ width: `${v}%` }} /><em>{known ? pct(value) : '—'}</em></div>
      {note && <small className="meter-note">{note}</small>}
    </div>
  );
}

function storageOf(node: NodeResources): { label: string; value: number | null | undefined; note?: string }[] {
  if (Array.isArray(node.storage) && node.storage.length > 0) {
    return node.storage.map((s) => ({
      label: `disk ${s.mount}`,
      value: s.used_percent ?? (s.total_bytes ? ((s.used_bytes ?? 0) / s.total_bytes) * 100 : undefined),
      note: s.total_bytes ? `${bytes(s.used_bytes)} of ${bytes(s.total_bytes)}` : undefined,
    }));
  }
  return [{ label: 'storage', value: node.disk_used_percent }];
}

export function ResourcesView() {
  const resources = useStore((s) => s.resources);
  const data = resources?.data;
  return (
    <div className="grid">
      <div className="panel wide" data-testid="resources-average">
        <div className="panel-head">
          <h2>Averages</h2>
          <span className="hint">{resources ? `resource_update ${ago(resources.at)} · ${num(data?.nodes_reporting)} nodes reporting` : 'waiting for resource_update (every 15 s)'}</span>
        </div>
        {data ? (
          <div className="meters">
            <Bar label="CPU" value={data.average?.cpu_percent} testid="avg-cpu" note={`max ${pct(data.max?.cpu_percent)}`} />
            <Bar label="memory" value={data.average?.memory_used_percent} testid="avg-memory" note={`max ${pct(data.max?.memory_used_percent)}`} />
            <Bar label="storage" value={data.average?.disk_used_percent} testid="avg-storage" note={`max ${pct(data.max?.disk_used_percent)}`} />
            <div className="facts"><span>load (1 min) avg <b>{num(data.average?.load_1m, 2)}</b></span><span>max <b>{num(data.max?.load_1m, 2)}</b></span></div>
          </div>
        ) : <p className="empty">Waiting for resource_update…</p>}
      </div>
      <div className="panel wide" data-testid="resources-top">
        <div className="panel-head"><h2>Top 10 nodes</h2><span className="hint">busiest CPU first</span></div>
        {!data || data.top.length === 0 ? <p className="empty">{data ? 'No node reports resource figures.' : 'Waiting…'}</p> : (
          <ol className="resource-nodes" data-testid="resource-list">
            {data.top.slice(0, 10).map((node) => (
              <li key={node.node_id} data-node-id={node.node_id}>
                <div className="rn-head"><b>{node.node_id}</b><span className="hint">{node.layer}</span>{typeof node.load_1m === 'number' && <span className="hint">load {num(node.load_1m, 2)}</span>}</div>
                <Bar label="CPU" value={node.cpu_percent} testid={`cpu-${node.node_id}`} />
                <Bar label="memory" value={node.memory_used_percent} testid={`memory-${node.node_id}`} />
                {storageOf(node).map((s) => <Bar key={s.label} label={s.label} value={s.value} note={s.note} testid={`storage-${node.node_id}`} />)}
              </li>
            ))}
          </ol>
        )}
      </div>
    </div>
  );
}
