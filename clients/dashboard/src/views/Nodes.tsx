import { useState } from 'react';
import { api, describeError } from '../api';
import { ago, clock, json, num } from '../format';
import { useStore } from '../store';
import type { CommandAck, NodeDetail, NodeStatus } from '../types';
import { usePoll } from '../usePoll';

export function nodeState(node: { state?: string; online?: boolean }): string {
  return node.state ?? (node.online ? 'online' : 'offline');
}

export function NodesView({ token }: { token: string }) {
  const nodes = useStore((s) => s.nodes);
  const rates = useStore((s) => s.nodeRates);
  const [selected, setSelected] = useState<string | null>(null);
  const data = nodes?.data;
  const list = data?.nodes ?? [];
  const stopped = data?.stopped_nodes ?? list.filter((n) => nodeState(n) === 'stopped').length;
  return (
    <div className="grid">
      <div className="panel wide" data-testid="nodes-panel">
        <div className="panel-head">
          <h2>Node status</h2>
          <span className="hint">{nodes ? `node_status_update ${ago(nodes.at)}` : 'waiting for node_status_update (every 5 s)'}</span>
        </div>
        <div className="counters">
          <Counter label="online" value={data?.active_nodes} testid="active-nodes" tone="ok" />
          <Counter label="offline" value={data?.offline_nodes} testid="offline-nodes" tone={data?.offline_nodes ? 'bad' : undefined} />
          <Counter label="stopped" value={data ? stopped : undefined} testid="stopped-nodes" />
          <Counter label="total" value={data?.total_nodes} testid="total-nodes" />
          <Counter label="updates" value={data?.total_updates} testid="total-updates" />
          {data?.network && <Counter label="connections" value={data.network.connections} testid="node-connections" />}
          {typeof data?.network?.avg_rtt_ms === 'number' && <Counter label="avg RTT ms" value={data.network.avg_rtt_ms} digits={1} testid="node-avg-rtt" />}
          {typeof data?.network?.messages_in === 'number' && <Counter label="messages in" value={data.network.messages_in} testid="node-messages-in" />}
          {typeof data?.network?.messages_out === 'number' && <Counter label="messages out" value={data.network.messages_out} testid="node-messages-out" />}
        </div>
        {data && Object.keys(data.layers ?? {}).length > 0 && (
          <div className="layers" data-testid="layer-counts">
            {Object.entries(data.layers).map(([layer, c]) => (
              <span key={layer} className="layer-count"><b>{layer}</b> {c.active} online · {c.offline} offline{typeof c.stopped === 'number' ? ` · ${c.stopped} stopped` : ''}</span>
            ))}
          </div>
        )}
        {list.length === 0 ? <p className="empty">{nodes ? 'No nodes have reported.' : 'Waiting for node_status_update…'}</p> : (
          <div className="scroll-x">
            <table className="table nodes cards" data-testid="node-table">
              <thead>
                <tr><th>node</th><th>layer</th><th>state</th><th>last seen</th><th className="num">updates</th><th className="num">throughput</th><th className="num">RTT</th><th>commands</th></tr>
              </thead>
              <tbody>
                {list.map((node) => (
                  <NodeRow key={node.node_id} node={node} rate={rates[node.node_id]} selected={selected === node.node_id} onSelect={() => setSelected(node.node_id)} token={token} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </div>
      {selected && <NodeDetailPanel nodeId={selected} onClose={() => setSelected(null)} />}
    </div>
  );
}

function Counter({ label, value, testid, tone, digits = 0 }: { label: string; value: number | undefined | null; testid: string; tone?: 'ok' | 'bad'; digits?: number }) {
  return <div className={`counter${tone ? ` ${tone}` : ''}`}><b data-testid={testid}>{num(value ?? undefined, digits)}</b>{label}</div>;
}

function NodeRow({ node, rate, selected, onSelect, token }: { node: NodeStatus; rate?: { messagesIn?: number; messagesOut?: number; updates?: number }; selected: boolean; onSelect: () => void; token: string }) {
  const state = nodeState(node);
  const throughput: string[] = [];
  if (rate?.messagesIn !== undefined || rate?.messagesOut !== undefined) throughput.push(`${num(rate?.messagesIn, 1)} in / ${num(rate?.messagesOut, 1)} out msg/s`);
  if (rate?.updates !== undefined) throughput.push(`${num(rate.updates * 60, 1)} reports/min`);
  return (
    <tr data-node-id={node.node_id} data-state={state} className={selected ? 'selected' : ''}>
      <td data-label="node"><button type="button" className="link" data-testid={`node-open-${node.node_id}`} onClick={onSelect}>{node.node_id}</button></td>
      <td data-label="layer">{node.layer}</td>
      <td data-label="state"><span className={`state state-${state}`}>{state}</span></td>
      <td data-label="last seen" title={node.last_seen}>{ago(node.last_seen)}</td>
      <td data-label="updates" className="num">{num(node.update_count)}</td>
      <td data-label="throughput" className="num" data-testid={`node-throughput-${node.node_id}`}>
        {throughput.length ? throughput.map((t) => <div key={t}>{t}</div>) : '—'}
        {node.network && (typeof node.network.messages_in === 'number' || typeof node.network.messages_out === 'number') && (
          <div className="sub">{num(node.network.messages_in)} in · {num(node.network.messages_out)} out total</div>
        )}
      </td>
      <td data-label="RTT" className="num">{typeof node.network?.rtt_ms === 'number' ? `${num(node.network.rtt_ms, 1)} ms` : '—'}</td>
      <td data-label="commands"><Commands nodeId={node.node_id} token={token} /></td>
    </tr>
  );
}

/** ping / report_now / set_interval through POST /api/ws/nodes/{id}/commands; shows the ack or the error code. */
function Commands({ nodeId }: { nodeId: string; token: string }) {
  const [seconds, setSeconds] = useState('5');
  const [busy, setBusy] = useState<string | null>(null);
  const [result, setResult] = useState<{ ok: boolean; text: string; name: string } | null>(null);
  const send = async (name: string, params: unknown) => {
    setBusy(name);
    setResult(null);
    try {
      const ack = await api<CommandAck>(`/api/ws/nodes/${encodeURIComponent(nodeId)}/commands`, { method: 'POST', body: { name, params, timeout_ms: 5_000 }, timeoutMs: 15_000 });
      setResult({ ok: ack.ok !== false, name, text: ack.ok !== false ? `ack ${json(ack.result ?? null).replace(/\s+/g, ' ')}` : `ack error: ${ack.error ?? 'failed'}` });
    } catch (error) {
      setResult({ ok: false, name, text: describeError(error) });
    } finally {
      setBusy(null);
    }
  };
  return (
    <div className="commands">
      <button type="button" data-testid={`cmd-ping-${nodeId}`} disabled={busy !== null} onClick={() => send('ping', {})}>ping</button>
      <button type="button" data-testid={`cmd-report_now-${nodeId}`} disabled={busy !== null} onClick={() => send('report_now', {})}>report now</button>
      <span className="interval">
        <input type="number" min="0.1" step="0.1" value={seconds} aria-label={`report interval of ${nodeId} in seconds`} data-testid={`cmd-interval-${nodeId}`} onChange={(e) => setSeconds(e.target.value)} />
        <button type="button" data-testid={`cmd-set_interval-${nodeId}`} disabled={busy !== null || !(Number(seconds) > 0)} onClick={() => send('set_interval', { seconds: Number(seconds) })}>set interval</button>
      </span>
      {busy && <div className="cmd-result pending">{busy}…</div>}
      {result && (
        <div className={`cmd-result ${result.ok ? 'ok' : 'error'}`} data-testid={`cmd-result-${nodeId}`} data-status={result.ok ? 'ok' : 'error'} data-command={result.name}>
          {result.name}: {result.text}
        </div>
      )}
    </div>
  );
}

function NodeDetailPanel({ nodeId, onClose }: { nodeId: string; onClose: () => void }) {
  const detail = usePoll(() => api<NodeDetail>(`/api/ws/nodes/${encodeURIComponent(nodeId)}`), 5_000, nodeId);
  const d = detail.data && detail.data.node_id === nodeId ? detail.data : null;
  const log = Array.isArray(d?.operation_log) ? [...d.operation_log].reverse() : [];
  return (
    <div className="panel wide" data-testid="node-detail" data-node-id={nodeId}>
      <div className="panel-head">
        <h2>Node {nodeId}</h2>
        {d && <span className={`state state-${nodeState(d)}`}>{nodeState(d)}</span>}
        <span className="hint">{d ? `${d.layer} · last seen ${ago(d.last_seen)} · ${num(d.update_count)} updates` : ''}</span>
        <button type="button" className="close" onClick={onClose} aria-label="Close the node detail">×</button>
      </div>
      {detail.error && <p className="error" data-testid="node-detail-error">GET /api/ws/nodes/{nodeId}: {detail.error}</p>}
      {!d && !detail.error && <p className="empty">loading…</p>}
      {d && (
        <div className="detail-grid">
          <div>
            <h3>current_data</h3>
            <pre className="json" data-testid="node-current-data">{json(d.current_data ?? null)}</pre>
            {d.network && (
              <>
                <h3>network</h3>
                <pre className="json">{json(d.network)}</pre>
              </>
            )}
          </div>
          <div>
            <h3>operation_log <span className="hint">newest first</span></h3>
            {log.length === 0 ? <p className="empty">empty</p> : (
              <ol className="oplog" data-testid="node-operation-log">
                {log.slice(0, 100).map((entry, i) => <OperationEntry key={i} entry={entry} />)}
              </ol>
            )}
          </div>
        </div>
      )}
    </div>
  );
}

/** One operation_log entry: its time and operation first, the rest as compact JSON. */
function OperationEntry({ entry }: { entry: unknown }) {
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return <li><code>{json(entry)}</code></li>;
  const { timestamp, operation, ...rest } = entry as Record<string, unknown>;
  const ok = rest.ok;
  return (
    <li className={ok === false ? 'failed' : ''}>
      {typeof timestamp === 'string' && <time dateTime={timestamp}>{clock(timestamp)}</time>}{' '}
      <b>{typeof operation === 'string' ? operation : 'entry'}</b>{' '}
      {Object.keys(rest).length > 0 && <code>{JSON.stringify(rest)}</code>}
    </li>
  );
}
