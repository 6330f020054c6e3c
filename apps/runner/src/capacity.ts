/**
 * A runner's `WHARF_RUNNER_SLOTS`, shared by its two queues. Calls routed to it (its own queue)
 * come only for advertised warm slots, and no more are advertised than the slots left free; the
 * shared queue's worker takes at most the slots routed calls leave. Two calls can still cross
 * (a slot advertised as the shared worker fills it), so a runner may briefly run a slot or two
 * over, never more than its free warm instance slots.
 */
export class Capacity {
  running = 0;
  private routed = 0;

  constructor(readonly slots: number) {}

  started(routed: boolean): void {
    this.running += 1;
    if (routed) this.routed += 1;
  }

  ended(routed: boolean): void {
    this.running -= 1;
    if (routed) this.routed -= 1;
  }

  get free(): number {
    return Math.max(0, this.slots - this.running);
  }

  /** The shared queue's worker concurrency: what routed calls leave (BullMQ takes at least one). */
  get sharedConcurrency(): number {
    return Math.max(1, this.slots - this.routed);
  }
}
