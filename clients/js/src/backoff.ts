/** Reconnect delays: exponential backoff with full jitter. */

/** Defaults: 1 s doubling to 30 s (seed 003). */
export const DEFAULT_BACKOFF = { initialMs: 1000, maxMs: 30000 } as const;

/**
 * The upper bound of the delay before reconnect attempt `attempt` (1-based):
 * `min(maxMs, initialMs · 2^(attempt−1))`.
 */
export function backoffCeiling(attempt: number, initialMs: number = DEFAULT_BACKOFF.initialMs, maxMs: number = DEFAULT_BACKOFF.maxMs): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 40);
  return Math.min(maxMs, initialMs * 2 ** exponent);
}

/**
 * The delay before reconnect attempt `attempt` with full jitter: uniform in
 * `[0, backoffCeiling(attempt)]`, so a crowd of clients that lost the same gateway spreads out.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number = DEFAULT_BACKOFF.initialMs,
  maxMs: number = DEFAULT_BACKOFF.maxMs,
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeiling(attempt, initialMs, maxMs);
  const draw = Math.min(Math.max(random(), 0), 1);
  return Math.round(draw * ceiling);
}
