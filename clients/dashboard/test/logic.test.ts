import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eta, healthColour } from '../src/logic';
import { MAX_ALERTS, alertSeverity, clearAlerts, getState, receive, resetStore, severityColour } from '../src/store';
import { ago, bytes, duration, num } from '../src/format';

test('service status colours: up green, degraded amber, down red, unknown grey', () => {
  assert.equal(healthColour('up'), 'green');
  assert.equal(healthColour('degraded'), 'amber');
  assert.equal(healthColour('down'), 'red');
  assert.equal(healthColour('unknown'), 'grey');
  assert.equal(healthColour(undefined), 'grey');
});

test('alert severities: data.severity first, then the priority; seed 001 colours', () => {
  assert.equal(alertSeverity({ severity: 'Critical' }, 'info'), 'critical');
  assert.equal(alertSeverity({}, 'warning'), 'warning');
  assert.equal(alertSeverity({}), 'info');
  for (const [severity, colour] of [['critical', 'red'], ['warning', 'amber'], ['high', 'amber'], ['medium', 'amber'], ['info', 'blue'], ['low', 'blue'], ['odd', 'grey']]) {
    assert.equal(severityColour(severity), colour, severity);
  }
});

test('ETA from progress over time; none without two points or without progress', () => {
  assert.equal(eta(undefined, 0), null);
  assert.equal(eta([{ at: 0, progress: 10 }], 0), null);
  assert.equal(eta([{ at: 0, progress: 10 }, { at: 10_000, progress: 10 }], 10_000), null);
  // 10 % per 10 s from 20 %: 80 % left → 80 s.
  assert.equal(eta([{ at: 0, progress: 10 }, { at: 10_000, progress: 20 }], 10_000), 80);
  // Time since the last report counts down; never below zero.
  assert.equal(eta([{ at: 0, progress: 10 }, { at: 10_000, progress: 20 }], 30_000), 60);
  assert.equal(eta([{ at: 0, progress: 10 }, { at: 10_000, progress: 20 }], 1_000_000), 0);
  // Only the last two minutes count.
  const points = [{ at: 0, progress: 0 }, { at: 200_000, progress: 50 }, { at: 260_000, progress: 80 }];
  assert.equal(eta(points, 260_000), 40);
});

test('alerts: newest first, at most the last 100', () => {
  resetStore();
  for (let i = 0; i < MAX_ALERTS + 5; i += 1) receive('alerts', { type: 'alert', data: { type: 'x', value: i, severity: i % 2 ? 'critical' : 'info' } });
  const { alerts, counts } = getState();
  assert.equal(alerts.length, MAX_ALERTS);
  assert.equal(alerts[0].data.value, MAX_ALERTS + 4);
  assert.equal(alerts[0].severity, 'info');
  assert.equal(alerts[1].severity, 'critical');
  assert.equal(counts.alerts, MAX_ALERTS + 5);
  clearAlerts();
  assert.equal(getState().alerts.length, 0);
  assert.equal(getState().counts.alerts, MAX_ALERTS + 5, 'clearing the feed keeps the room count');
});

test('tasks room: task updates and batch progress are kept apart', () => {
  resetStore();
  receive('tasks', { type: 'task_progress_update', data: { pending: 1, running: 1, completed: 0, failed: 0, tasks: [{ task_id: 't', status: 'running', progress: 10 }] } });
  receive('tasks', { type: 'batch_progress', data: { node: 'ml-1', connection: 'connected', stored: { generated: 3, validated: 1 }, duplicates: 2, invalid: 0, received: { websocket: 5, http: 1 } } });
  receive('tasks', { type: 'task_progress_update', data: { pending: 0, running: 1, completed: 0, failed: 0, tasks: [{ task_id: 't', status: 'running', progress: 30 }] } });
  const state = getState();
  assert.equal(state.tasks?.data.tasks[0].progress, 30);
  assert.deepEqual(state.taskHistory.t.map((p) => p.progress), [10, 30]);
  assert.equal(state.batches['ml-1'].data.duplicates, 2);
  // Progress that goes back starts the task's history again.
  receive('tasks', { type: 'task_progress_update', data: { pending: 0, running: 1, completed: 0, failed: 0, tasks: [{ task_id: 't', status: 'running', progress: 5 }] } });
  assert.deepEqual(getState().taskHistory.t.map((p) => p.progress), [5]);
  assert.equal(getState().live['tasks.running'].length, 3);
});

test('node updates: a joined node is a change once, even when topology_change says it too', () => {
  resetStore();
  const node = (id: string, state = 'online') => ({ node_id: id, layer: 'edge', online: state === 'online', state, update_count: 1, last_seen: new Date().toISOString() });
  const update = (nodes: ReturnType<typeof node>[]) => ({ type: 'node_status_update', data: { active_nodes: nodes.length, offline_nodes: 0, total_nodes: nodes.length, total_updates: 1, reports_received: 1, layers: {}, nodes } });
  receive('nodes', update([node('a')]));
  assert.equal(getState().changes.length, 0, 'the first update is the starting point, not a change');
  receive('topology', { type: 'topology_change', data: { changes: [{ node_id: 'b', layer: 'edge', change: 'joined' }], layers: { edge: ['a', 'b'] }, active_nodes: 2, total_nodes: 2 } });
  receive('nodes', update([node('a'), node('b')]));
  assert.deepEqual(getState().changes.map((c) => `${c.node_id}:${c.change}:${c.source}`), ['b:joined:topology_change']);
  receive('nodes', update([node('a', 'stopped'), node('b')]));
  assert.deepEqual(getState().changes.map((c) => `${c.node_id}:${c.change}`), ['a:stopped', 'b:joined']);
});

test('a message without the expected payload is counted, not fatal', () => {
  resetStore();
  receive('nodes', { type: 'node_status_update', data: null });
  receive('resources', { type: 'resource_update' });
  receive('metrics', { type: 'something_else', data: 1 });
  assert.deepEqual(getState().counts, { nodes: 1, resources: 1, metrics: 1 });
  assert.equal(getState().nodes, undefined);
});

test('formatting', () => {
  assert.equal(num(1234.5, 1), '1,234.5');
  assert.equal(num(undefined), '—');
  assert.equal(bytes(1536), '1.5 KiB');
  assert.equal(duration(90), '1 min 30 s');
  assert.equal(ago(Date.now() - 5_000), '5 s ago');
});
