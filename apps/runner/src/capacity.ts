/**
 * A runner's `WHARF_RUNNER_SLOTS`, shared by its two queues: no job starts (nor stops counting
 * against its queue bounds) without a slot. Calls routed here come for advertised warm slots, of
 * which no more are advertised than slots are free, and the shared queue's worker takes at most
 * the slots routed calls leave; when the two cross (a warm slot taken as the shared worker fills
 * the last runner slot), the later job waits here for a slot, holding its lock.
 */
export class Capacity {
  running = 0;
  private routed = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly slots: number) {}

  async acquire(routed: boolean): Promise<void> {
    if (routed) this.routed += 1;
    // A slot freed while jobs wait is handed to the first of them, still counted as running.
    if (this.running < this.slots) this.running += 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(routed: boolean): void {
    if (routed) this.routed -= 1;
    const next = this.waiting.shift();
    if (next) next();
    else this.running -= 1;
  }

  /** Slots neither running nor promised to a job waiting for one. */
  get free(): number {
    return Math.max(0, this.slots - this.running - this.waiting.length);
  }

  /** The shared queue's worker concurrency: what routed calls leave (BullMQ takes at least one). */
  get sharedConcurrency(): number {
    return Math.max(1, this.slots - this.routed);
  }
}
