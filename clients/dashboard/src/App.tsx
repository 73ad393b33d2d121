import { useCallback, useEffect, useMemo, useState } from 'react';
import { SwitchboardClient } from '@switchboard/client';
import { SwitchboardProvider, useConnectionState } from '@switchboard/client/react';
import { setApiToken, socketUrl } from './api';
import { MAX_RECONNECT_ATTEMPTS } from './limits';
import { storeToken, tokenClaims } from './auth';
import { receive, resetStore, useStore, type IncomingMessage } from './store';
import { SignIn } from './SignIn';
import { StatsStrip } from './views/StatsStrip';
import { MetricsView } from './views/Metrics';
import { NodesView } from './views/Nodes';
import { TasksView } from './views/Tasks';
import { BatchesView } from './views/Batches';
import { AlertsView } from './views/Alerts';
import { ResourcesView } from './views/Resources';
import { TopologyView } from './views/Topology';
import { DevicesView } from './views/Devices';

export const ROOMS = ['nodes', 'tasks', 'metrics', 'alerts', 'resources', 'topology'] as const;

const VIEWS = [
  { id: 'metrics', title: 'Live metrics', room: 'metrics' },
  { id: 'nodes', title: 'Nodes', room: 'nodes' },
  { id: 'tasks', title: 'Tasks', room: 'tasks' },
  { id: 'batches', title: 'ML batches', room: 'tasks' },
  { id: 'alerts', title: 'Alerts', room: 'alerts' },
  { id: 'resources', title: 'Resources', room: 'resources' },
  { id: 'topology', title: 'Topology', room: 'topology' },
  { id: 'devices', title: 'Devices', room: null },
] as const;
type ViewId = (typeof VIEWS)[number]['id'];

/** Close codes and error codes after which a new token, not a retry, is what helps. */
const TOKEN_PROBLEMS = new Set(['token_missing', 'token_invalid', 'token_expired', 'forbidden']);

export function App({ initialToken }: { initialToken: string | null }) {
  const [token, setToken] = useState<string | null>(initialToken);
  const [signInError, setSignInError] = useState<string | null>(null);
  setApiToken(token);

  const signIn = useCallback((next: string) => {
    storeToken(next);
    setSignInError(null);
    setToken(next);
  }, []);
  const signOut = useCallback((why: string | null) => {
    storeToken(null);
    resetStore();
    setSignInError(why);
    setToken(null);
  }, []);

  if (!token) return <SignIn onSignIn={signIn} error={signInError} />;
  return <Connected key={token} token={token} onSignOut={signOut} />;
}

function Connected({ token, onSignOut }: { token: string; onSignOut: (why: string | null) => void }) {
  const client = useMemo(
    // maxReconnectAttempts 10 as in seeds 001 and 003; after that, a "Reconnect" button.
    () => new SwitchboardClient({ url: socketUrl('/api/ws/connect'), getToken: () => token, format: 'json', maxReconnectAttempts: MAX_RECONNECT_ATTEMPTS }),
    [token],
  );
  useEffect(() => {
    const unsubscribes = ROOMS.map((room) => client.subscribe(room, (message) => receive(room, message as IncomingMessage)));
    client.connect();
    return () => {
      for (const unsubscribe of unsubscribes) unsubscribe();
      client.close();
    };
  }, [client]);
  return (
    <SwitchboardProvider client={client}>
      <Shell client={client} token={token} onSignOut={onSignOut} />
    </SwitchboardProvider>
  );
}

function useHashView(): [ViewId, (view: ViewId) => void] {
  const read = (): ViewId => {
    const hash = window.location.hash.replace(/^#/, '');
    return (VIEWS.find((view) => view.id === hash)?.id ?? 'metrics') as ViewId;
  };
  const [view, setView] = useState<ViewId>(read);
  useEffect(() => {
    const onHash = () => setView(read());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const go = useCallback((next: ViewId) => {
    window.history.replaceState(window.history.state, '', `#${next}`);
    setView(next);
  }, []);
  return [view, go];
}

function Shell({ client, token, onSignOut }: { client: SwitchboardClient; token: string; onSignOut: (why: string | null) => void }) {
  const { state, detail } = useConnectionState();
  const [ids, setIds] = useState<{ server?: string; connection?: string }>({});
  const [lastError, setLastError] = useState<string | null>(null);
  const [view, setView] = useHashView();
  const counts = useStore((s) => s.counts);
  const alertCount = useStore((s) => s.alerts.length);
  const claims = useMemo(() => tokenClaims(token), [token]);

  useEffect(() => {
    const offEstablished = client.onFrame((frame) => {
      if (frame.type !== 'connection_established') return;
      setIds({ server: String(frame.server_id ?? ''), connection: String(frame.connection_id ?? '') });
    });
    const offError = client.onError((error) => setLastError(`${error.code}: ${error.message}`));
    return () => {
      offEstablished();
      offError();
    };
  }, [client]);

  const closeNote = detail?.code ? ` (close ${detail.code}${detail.reason ? ` ${detail.reason}` : ''})` : '';
  const detailError = detail?.error ? `${detail.error.code}: ${detail.error.message}` : null;
  const shownError = (detailError ?? lastError) ? `${detailError ?? lastError}${state === 'disconnected' ? closeNote : ''}` : null;
  const tokenProblem = state === 'disconnected' && (
    (detail?.error && TOKEN_PROBLEMS.has(detail.error.code)) || [4401, 4402, 4403].includes(detail?.code ?? 0)
  );

  let info = '';
  if (state === 'connecting') info = 'connecting…';
  else if (state === 'reconnecting') {
    const retry = typeof detail?.retryInMs === 'number' ? `, next try in ${(detail.retryInMs / 1000).toFixed(1)} s` : '';
    const attempts = detail?.maxAttempts && Number.isFinite(detail.maxAttempts) ? `${detail.attempt}/${detail.maxAttempts}` : `${detail?.attempt ?? 0}`;
    info = `reconnecting: attempt ${attempts}${retry}${detail?.reason ? ` (${detail.reason})` : ''}`;
  } else if (state === 'disconnected') info = tokenProblem ? 'the gateway refused the token: sign in again' : `disconnected${closeNote}`;

  return (
    <div className="app" data-state={state}>
      <header className="topbar">
        <div className="brand">Switchboard<small>dashboard</small></div>
        <span className="badge" data-testid="connection-state" data-state={state}>{state}</span>
        <div className="ids">
          <span>server <code data-testid="server-id">{ids.server ?? '—'}</code></span>
          <span>connection <code data-testid="connection-id">{ids.connection ?? '—'}</code></span>
          <span>signed in as <code data-testid="user">{claims.sub ?? '?'}{claims.role ? ` (${claims.role})` : ''}</code></span>
        </div>
        <button type="button" className="signout" data-testid="sign-out" onClick={() => onSignOut(null)}>Sign out</button>
      </header>
      {(state !== 'connected' || shownError) && (
        <div className="banner" role="status" data-state={state}>
          <span className="reconnect-info" data-testid="reconnect-info">{info}</span>
          {shownError && <span className="last-error" data-testid="last-error">{shownError}</span>}
          {tokenProblem && <button type="button" data-testid="sign-in-again" onClick={() => onSignOut(shownError)}>Sign in again</button>}
          {state === 'disconnected' && !tokenProblem && <button type="button" onClick={() => client.connect()}>Reconnect</button>}
          {state === 'reconnecting' && <button type="button" data-testid="reconnect-now" onClick={() => client.reconnectNow()}>Reconnect now</button>}
        </div>
      )}
      <StatsStrip />
      <nav className="tabs" role="tablist" aria-label="Views">
        {VIEWS.map((v) => (
          <button
            key={v.id}
            type="button"
            role="tab"
            aria-selected={view === v.id}
            data-testid={`tab-${v.id}`}
            className={view === v.id ? 'tab active' : 'tab'}
            onClick={() => setView(v.id)}
          >
            {v.title}
            {v.id === 'alerts' && alertCount > 0 && <span className="pill">{alertCount}</span>}
            {v.room && v.id !== 'alerts' && <span className="pill quiet" title={`${counts[v.room] ?? 0} messages in room ${v.room}`}>{counts[v.room] ?? 0}</span>}
          </button>
        ))}
      </nav>
      <main>
        <section hidden={view !== 'metrics'} data-testid="view-metrics"><MetricsView /></section>
        <section hidden={view !== 'nodes'} data-testid="view-nodes"><NodesView token={token} /></section>
        <section hidden={view !== 'tasks'} data-testid="view-tasks"><TasksView /></section>
        <section hidden={view !== 'batches'} data-testid="view-batches"><BatchesView /></section>
        <section hidden={view !== 'alerts'} data-testid="view-alerts"><AlertsView /></section>
        <section hidden={view !== 'resources'} data-testid="view-resources"><ResourcesView /></section>
        <section hidden={view !== 'topology'} data-testid="view-topology"><TopologyView /></section>
        <section hidden={view !== 'devices'} data-testid="view-devices"><DevicesView /></section>
      </main>
    </div>
  );
}
