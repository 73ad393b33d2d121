// Pure rules the views share (unit-tested in test/logic.test.ts).

/** Colour of a component's status: up green, degraded amber, down red, anything else grey. */
export function healthColour(status: string | undefined): 'green' | 'amber' | 'red' | 'grey' {
  switch (status) {
    case 'up': case 'healthy': return 'green';
    case 'degraded': return 'amber';
    case 'down': case 'critical': return 'red';
    default: return 'grey';
  }
}

/** Seconds until 100 % at the progress rate seen over the last two minutes; null without a rate. */
export function eta(points: { at: number; progress: number }[] | undefined, now: number): number | null {
  if (!points || points.length < 2) return null;
  const last = points[points.length - 1];
  const first = points.find((p) => last.at - p.at <= 120_000) ?? points[0];
  const seconds = (last.at - first.at) / 1000;
  const gained = last.progress - first.progress;
  if (seconds < 0.5 || gained <= 0) return null;
  const remaining = Math.max(0, 100 - last.progress) / (gained / seconds);
  return Math.max(0, remaining - (now - last.at) / 1000);
}
