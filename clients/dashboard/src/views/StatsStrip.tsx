import { api } from '../api';
import { num } from '../format';
import type { Stats } from '../types';
import { usePoll } from '../usePoll';

export function StatsStrip() {
  const stats = usePoll(() => api<Stats>('/api/ws/stats'), 5_000);
  const s = stats.data;
  const rooms = s?.rooms ? Object.entries(s.rooms).sort((a, b) => b[1] - a[1]) : [];
  const gateways = s?.live_gateways ?? (Array.isArray(s?.gateways) ? s?.gateways.length : undefined);
  return (
    <div className={`stats${stats.error ? ' stale' : ''}`} data-testid="stats" data-loaded={s ? 'true' : 'false'}>
      <Stat label="Connections" testid="stat-connections" value={num(s?.active_connections)} note={s?.total_connections !== undefined ? `${num(s.total_connections)} total` : undefined} />
      <Stat label="Rooms" testid="stat-rooms" value={num(s?.rooms_created ?? rooms.length)} note={rooms.slice(0, 4).map(([room, n]) => `${room} ${n}`).join(' · ')} />
      <Stat label="Messages" testid="stat-messages" value={num(s?.total_messages)} />
      <Stat label="Gateways" testid="stat-gateways" value={num(gateways ?? undefined)} note={s?.degraded ? 'store unreachable: this gateway only' : undefined} />
      {s?.publishers_active !== undefined && <Stat label="Publishers" testid="stat-publishers" value={num(s.publishers_active)} />}
      <div className="stat-note" data-testid="stats-updated">{stats.error ? `stats: ${stats.error}` : s ? `every 5 s · ${s.server_id ?? ''}` : 'loading stats…'}</div>
    </div>
  );
}

function Stat({ label, value, testid, note }: { label: string; value: string; testid: string; note?: string }) {
  return (
    <div className="stat">
      <div className="k">{label}</div>
      <div className="v" data-testid={testid}>{value}</div>
      {note ? <div className="n" title={note}>{note}</div> : null}
    </div>
  );
}
