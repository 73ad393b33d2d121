import { ago, clock } from '../format';
import { useStore } from '../store';
import { nodeState } from './Nodes';

const RECENT_MS = 60_000;

export function TopologyView() {
  const nodes = useStore((s) => s.nodes);
  const topology = useStore((s) => s.topology);
  const changes = useStore((s) => s.changes);
  const now = Date.now();
  // Per layer: every known node with its state (node_status_update), else the online ids of
  // the last topology_change, so the view fills whichever arrives first.
  const layers = new Map<string, { id: string; state: string }[]>();
  if (nodes) {
    for (const node of nodes.data.nodes) {
      const list = layers.get(node.layer) ?? [];
      list.push({ id: node.node_id, state: nodeState(node) });
      layers.set(node.layer, list);
    }
  } else if (topology) {
    for (const [layer, ids] of Object.entries(topology.data.layers ?? {})) layers.set(layer, ids.map((id) => ({ id, state: 'online' })));
  }
  const recent = new Map<string, string>();
  for (const change of [...changes].reverse()) if (now - change.at < RECENT_MS) recent.set(change.node_id, change.change);
  const online = [...layers.values()].flat().filter((n) => n.state === 'online').length;
  const total = [...layers.values()].flat().length;
  return (
    <div className="grid">
      <div className="panel wide" data-testid="topology-panel">
        <div className="panel-head">
          <h2>Topology</h2>
          <span className="hint">{total ? `${online} of ${total} nodes online in ${layers.size} layers` : 'waiting for nodes'}{topology ? ` · last topology_change ${ago(topology.at)}` : ''}</span>
        </div>
        {layers.size === 0 ? <p className="empty">Waiting for node_status_update or topology_change…</p> : (
          <div className="layers-map" data-testid="topology-layers">
            {[...layers.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([layer, list]) => (
              <div key={layer} className="layer" data-layer={layer}>
                <h3>{layer} <span className="hint">{list.filter((n) => n.state === 'online').length}/{list.length} online</span></h3>
                <div className="layer-nodes">
                  {list.sort((a, b) => a.id.localeCompare(b.id)).map((n) => (
                    <span key={n.id} className={`topo-node state-${n.state}${recent.has(n.id) ? ' changed' : ''}`} data-node-id={n.id} data-state={n.state} title={recent.has(n.id) ? `recently: ${recent.get(n.id)}` : n.state}>
                      {n.id}
                      {recent.has(n.id) && <em>{recent.get(n.id)}</em>}
                    </span>
                  ))}
                </div>
              </div>
            ))}
          </div>
        )}
      </div>
      <div className="panel wide" data-testid="topology-changes">
        <div className="panel-head"><h2>Recent changes</h2><span className="hint">highlighted for a minute</span></div>
        {changes.length === 0 ? <p className="empty">No changes since this page opened.</p> : (
          <ol className="changes">
            {changes.map((c, i) => (
              <li key={`${c.at}-${c.node_id}-${i}`} className={now - c.at < RECENT_MS ? 'recent' : ''} data-change={c.change}>
                <time>{clock(c.at)}</time> <b>{c.node_id}</b> <span className={`chip change-${c.change}`}>{c.change}</span> <span className="hint">{c.layer} · {c.source}</span>
              </li>
            ))}
          </ol>
        )}
      </div>
    </div>
  );
}
