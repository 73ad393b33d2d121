import { ago, num } from '../format';
import { useStore } from '../store';

export function BatchesView() {
  const batches = useStore((s) => s.batches);
  const list = Object.values(batches).sort((a, b) => a.data.node.localeCompare(b.data.node));
  const totals = list.reduce(
    (t, { data }) => ({
      generated: t.generated + (data.stored?.generated ?? 0),
      validated: t.validated + (data.stored?.validated ?? 0),
      duplicates: t.duplicates + (data.duplicates ?? 0),
      invalid: t.invalid + (data.invalid ?? 0),
      websocket: t.websocket + (data.received?.websocket ?? 0),
      http: t.http + (data.received?.http ?? 0),
    }),
    { generated: 0, validated: 0, duplicates: 0, invalid: 0, websocket: 0, http: 0 },
  );
  return (
    <div className="grid">
      <div className="panel wide" data-testid="batches-panel">
        <div className="panel-head">
          <h2>ML-node batches</h2>
          <span className="hint">batch_progress events from batch-ingest in room tasks</span>
        </div>
        {list.length === 0 ? <p className="empty">Waiting for batch_progress…</p> : (
          <>
            <div className="counters">
              <div className="counter ok"><b data-testid="batches-stored">{num(totals.generated + totals.validated)}</b>stored</div>
              <div className="counter"><b>{num(totals.generated)}</b>generated</div>
              <div className="counter"><b>{num(totals.validated)}</b>validated</div>
              <div className="counter"><b data-testid="batches-duplicates">{num(totals.duplicates)}</b>duplicates</div>
              <div className="counter"><b>{num(totals.invalid)}</b>invalid</div>
              <div className="counter"><b>{num(totals.websocket)}</b>via WebSocket</div>
              <div className="counter"><b>{num(totals.http)}</b>via HTTP</div>
            </div>
            <div className="scroll-x">
              <table className="table cards" data-testid="batch-table">
                <thead>
                  <tr><th>ML node</th><th>connection</th><th className="num">generated</th><th className="num">validated</th><th className="num">duplicates</th><th className="num">invalid</th><th>per path</th><th className="num">block</th><th>updated</th></tr>
                </thead>
                <tbody>
                  {list.map(({ data, at }) => {
                    const ws = data.received?.websocket ?? 0;
                    const http = data.received?.http ?? 0;
                    const all = ws + http;
                    return (
                      <tr key={data.node} data-node={data.node}>
                        <td data-label="ML node">{data.node}{typeof data.node_num === 'number' ? <span className="hint"> #{data.node_num}</span> : null}</td>
                        <td data-label="connection"><span className={`state conn-${data.connection}`}>{data.connection}</span></td>
                        <td data-label="generated" className="num">{num(data.stored?.generated)}</td>
                        <td data-label="validated" className="num">{num(data.stored?.validated)}</td>
                        <td data-label="duplicates" className="num">{num(data.duplicates)}</td>
                        <td data-label="invalid" className="num">{num(data.invalid)}</td>
                        <td data-label="per path" className="paths">
                          <div className="split" title={`WebSocket ${ws} · HTTP ${http}`}>
                            <span className="ws" style={{ width: all ? `${(ws / all) * 100}%` : '0%' }} />
                            <span className="http" style={{ width: all ? `${(http / all) * 100}%` : '0%' }} />
                          </div>
                          <small>WS {num(ws)} · HTTP {num(http)}</small>
                        </td>
                        <td data-label="block" className="num">{num(data.last_block_height)}</td>
                        <td data-label="updated">{ago(at)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          </>
        )}
      </div>
    </div>
  );
}
