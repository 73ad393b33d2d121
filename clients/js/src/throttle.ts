/**
 * Client-side conflation, the same rule as the gateway's `min_interval_ms` (proto/README.md,
 * "Per-connection rate"): at most one message of each event type every `intervalMs`, the
 * first at once, then, after each delivery, the newest held when the interval is over. Values
 * in between are replaced, never queued. `device_error` is never held back, and a value still
 * held, being older than the fault, is dropped.
 */

/** Event types that bypass conflation. */
const NEVER_HELD = 'device_error';

interface Slot<M> {
  lastAt: number;
  held: M | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class Conflator<M extends { type: string }> {
  private readonly slots = new Map<string, Slot<M>>();
  private stopped = false;
  /** Messages replaced by a newer one before delivery. */
  conflated = 0;

  constructor(
    readonly intervalMs: number,
    private readonly deliver: (message: M) => void,
    private readonly now: () => number = Date.now,
  ) {}

  push(message: M): void {
    if (this.stopped) return;
    if (this.intervalMs <= 0) {
      this.deliver(message);
      return;
    }
    if (message.type === NEVER_HELD) {
      for (const slot of this.slots.values()) {
        if (slot.held !== undefined) this.conflated += 1;
        slot.held = undefined;
        if (slot.timer !== undefined) clearTimeout(slot.timer);
        slot.timer = undefined;
      }
      this.deliver(message);
      return;
    }
    let slot = this.slots.get(message.type);
    if (slot === undefined) {
      slot = { lastAt: Number.NEGATIVE_INFINITY, held: undefined, timer: undefined };
      this.slots.set(message.type, slot);
    }
    const now = this.now();
    if (slot.timer === undefined && now - slot.lastAt >= this.intervalMs) {
      slot.lastAt = now;
      this.deliver(message);
      return;
    }
    if (slot.held !== undefined) this.conflated += 1;
    slot.held = message;
    if (slot.timer === undefined) {
      const wait = Math.max(0, slot.lastAt + this.intervalMs - now);
      const target = slot;
      target.timer = setTimeout(() => this.flush(target), wait);
    }
  }

  private flush(slot: Slot<M>): void {
    slot.timer = undefined;
    const message = slot.held;
    slot.held = undefined;
    if (message === undefined || this.stopped) return;
    slot.lastAt = this.now();
    this.deliver(message);
  }

  /** Drops what is held and cancels the timers. */
  stop(): void {
    this.stopped = true;
    for (const slot of this.slots.values()) {
      if (slot.timer !== undefined) clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.held = undefined;
    }
    this.slots.clear();
  }
}
