import { ago, duration, num } from '../format';
import { useStore } from '../store';
import { eta } from '../logic';

const STATUSES = ['pending', 'running', 'completed', 'failed'] as const;

export function TasksView() {
  const tasks = useStore((s) => s.tasks);
  const history = useStore((s) => s.taskHistory);
  const data = tasks?.data;
  const total = data ? STATUSES.reduce((sum, s) => sum + (data[s] ?? 0), 0) : 0;
  const list = [...(data?.tasks ?? [])].sort((a, b) => Number(b.status === 'running') - Number(a.status === 'running'));
  const now = Date.now();
  return (
    <div className="grid">
      <div className="panel wide" data-testid="tasks-panel">
        <div className="panel-head">
          <h2>Tasks</h2>
          <span className="hint">{tasks ? `task_progress_update ${ago(tasks.at)} · tick ${data?.tick ?? '—'}` : 'waiting for task_progress_update (every 2 s)'}</span>
        </div>
        <div className="breakdown" data-testid="task-breakdown">
          {STATUSES.map((status) => (
            <div key={status} className={`status-box task-${status}`}>
              <b data-testid={`tasks-${status}`}>{num(data?.[status])}</b>
              <span>{status}</span>
            </div>
          ))}
        </div>
        {total > 0 && (
          <div className="stacked" aria-label="Status breakdown">
            {STATUSES.map((status) => (data?.[status] ?? 0) > 0 && (
              <span key={status} className={`task-${status}`} style={{ width: `${((data?.[status] ?? 0) / total) * 100}%` }} title={`${status}: ${data?.[status]}`} />
            ))}
          </div>
        )}
        {list.length === 0 ? (
          <p className="empty">{tasks ? 'No individual tasks reported (nodes report them in current_data.tasks).' : 'Waiting…'}</p>
        ) : (
          <ul className="task-list" data-testid="task-list">
            {list.map((task) => {
              const progress = typeof task.progress === 'number' ? Math.max(0, Math.min(100, task.progress)) : null;
              const left = task.status === 'running' ? eta(history[task.task_id], now) : null;
              return (
                <li key={`${task.source ?? ''}/${task.task_id}`} data-task-id={task.task_id} data-status={task.status}>
                  <div className="task-head">
                    <span className="task-name">{task.name ?? task.task_id}</span>
                    <span className={`chip task-${task.status}`}>{task.status}</span>
                    {task.source && <span className="hint">on {task.source}</span>}
                    <span className="task-eta" data-testid={`task-eta-${task.task_id}`}>
                      {task.status === 'running' ? (left === null ? 'ETA: measuring…' : `ETA ${duration(left)}`) : ''}
                    </span>
                  </div>
                  <div className="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={progress ?? undefined}>
                    <span style={{ width: `${progress ?? 0}%` }} />
                    <em>{progress === null ? 'no progress reported' : `${progress.toFixed(1)} %`}</em>
                  </div>
                </li>
              );
            })}
          </ul>
        )}
      </div>
    </div>
  );
}
