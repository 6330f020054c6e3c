/**
 * Records every invocation Wharf accepted and, at the end, checks that each reached exactly one
 * final state through its durable record: none lost, runs beyond the first counted (`attempts`),
 * and how long each took from acceptance to its final state.
 */
import type { WharfClient } from '@wharf/client';

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled']);

interface RecordView {
  status: string;
  attempts: number;
  queued_at: string;
  finished_at: string | null;
  error?: { code: string; message: string };
}

export interface CheckReport {
  accepted: number;
  completed: number;
  /** Accepted, and still without a final state (or without a record) at the deadline. */
  lost: string[];
  /** Invocations whose work ran more than once (their `attempts`), and the extra runs in all. */
  duplicated: number;
  extraRuns: number;
  statuses: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
}

export class InvocationChecker {
  private readonly ids = new Set<string>();

  accepted(invocationId: string): void {
    this.ids.add(invocationId);
  }

  get count(): number {
    return this.ids.size;
  }

  /** Waits (up to `timeoutMs`) for every accepted invocation to reach a final state, then reports. */
  async check(client: WharfClient, timeoutMs = 60_000): Promise<CheckReport> {
    const deadline = Date.now() + timeoutMs;
    const finals = new Map<string, RecordView>();
    while (finals.size < this.ids.size && Date.now() < deadline) {
      for (const id of this.ids) {
        if (finals.has(id)) continue;
        const record = await client.getInvocation<RecordView>(id).catch(() => undefined);
        if (record && FINAL.has(record.status)) finals.set(id, record);
      }
      if (finals.size < this.ids.size) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const records = [...finals.values()];
    const latencies = records.map((r) => Date.parse(r.finished_at!) - Date.parse(r.queued_at)).sort((a, b) => a - b);
    const at = (q: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : 0);
    const statuses: Record<string, number> = {};
    for (const r of records) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    return {
      accepted: this.ids.size,
      completed: records.length,
      lost: [...this.ids].filter((id) => !finals.has(id)),
      duplicated: records.filter((r) => r.attempts > 1).length,
      extraRuns: records.reduce((sum, r) => sum + Math.max(0, r.attempts - 1), 0),
      statuses,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
    };
  }
}
