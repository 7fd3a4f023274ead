import { BackendUnavailableError } from '@fleetmq/protocol';
import type { NodeInfo, NodeRecord, NodeRegistry } from '@fleetmq/broker';

export interface MemoryNodeRegistryOptions {
  /** How long a heartbeat keeps a node live (default 10 000 ms). */
  readonly ttlMs?: number;
  /** How long an expired node stays listed (default 600 000 ms). */
  readonly retainExpiredMs?: number;
  /** The registry's clock (default `Date.now`); tests pass a manual one. */
  readonly now?: () => number;
}

interface Entry {
  readonly info: NodeInfo;
  deadline: number;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number of ms, got ${value}`);
  return value;
}

/**
 * The in-process NodeRegistry, standing in for Redis on a node that runs alone (where it
 * only ever lists itself) and in tests. Expiry is computed from the clock on every call;
 * no timers run.
 */
export class MemoryNodeRegistry implements NodeRegistry {
  readonly ttlMs: number;
  readonly retainExpiredMs: number;
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(options: MemoryNodeRegistryOptions = {}) {
    this.ttlMs = positive('ttlMs', options.ttlMs ?? 10_000);
    this.retainExpiredMs = positive('retainExpiredMs', options.retainExpiredMs ?? 600_000);
    this.now = options.now ?? Date.now;
  }

  get ready(): boolean {
    return !this.closed;
  }

  register(nodeId: string, info: NodeInfo): Promise<void> {
    if (this.closed) return this.unavailable();
    const copy: NodeInfo = info.address === undefined ? { startedAt: info.startedAt } : { startedAt: info.startedAt, address: info.address };
    this.entries.set(nodeId, { info: copy, deadline: this.now() + this.ttlMs });
    return Promise.resolve();
  }

  heartbeat(nodeId: string): Promise<boolean> {
    if (this.closed) return this.unavailable();
    const now = this.now();
    const entry = this.entries.get(nodeId);
    if (entry === undefined || entry.deadline <= now) return Promise.resolve(false);
    entry.deadline = now + this.ttlMs;
    return Promise.resolve(true);
  }

  deregister(nodeId: string): Promise<void> {
    if (this.closed) return this.unavailable();
    this.entries.delete(nodeId);
    return Promise.resolve();
  }

  liveNodes(): Promise<string[]> {
    if (this.closed) return this.unavailable();
    return Promise.resolve(this.records().filter((r) => r.live).map((r) => r.nodeId));
  }

  expiredNodes(): Promise<NodeRecord[]> {
    if (this.closed) return this.unavailable();
    return Promise.resolve(this.records().filter((r) => !r.live));
  }

  node(nodeId: string): Promise<NodeRecord | null> {
    if (this.closed) return this.unavailable();
    return Promise.resolve(this.records().find((r) => r.nodeId === nodeId) ?? null);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Every known node, sorted by ID, after forgetting those expired for longer than the retention. */
  private records(): NodeRecord[] {
    const now = this.now();
    const out: NodeRecord[] = [];
    for (const [nodeId, entry] of this.entries) {
      if (entry.deadline + this.retainExpiredMs <= now) {
        this.entries.delete(nodeId);
        continue;
      }
      out.push(Object.freeze({ nodeId, ...entry.info, live: entry.deadline > now, expiresAt: entry.deadline }));
    }
    return out.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  private unavailable(): Promise<never> {
    return Promise.reject(new BackendUnavailableError('redis', 'node registry is closed'));
  }
}
