import { BackendUnavailableError } from '@fleetmq/protocol';
import type { Lease } from '@fleetmq/broker';

export interface MemoryLeaseOptions {
  /** The lease clock (default `Date.now`); tests pass a manual one. */
  readonly now?: () => number;
}

interface Entry {
  readonly holder: string;
  deadline: number;
}

function positiveTtl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number of ms, got ${ttlMs}`);
  return ttlMs;
}

/**
 * The in-process Lease, for a node alone (embedded mode) and for tests: the same contract as
 * the Redis one within one process. Expiry is computed from the clock on every call; no
 * timers run. One entry per lease name the process uses (a handful of bridges).
 */
export class MemoryLease implements Lease {
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(options: MemoryLeaseOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  acquire(name: string, holder: string, ttlMs: number): Promise<boolean> {
    if (this.closed) return this.unavailable();
    const deadline = this.now() + positiveTtl(ttlMs);
    const current = this.current(name);
    if (current !== undefined && current.holder !== holder) return Promise.resolve(false);
    this.entries.set(name, { holder, deadline });
    return Promise.resolve(true);
  }

  renew(name: string, holder: string, ttlMs: number): Promise<boolean> {
    if (this.closed) return this.unavailable();
    const deadline = this.now() + positiveTtl(ttlMs);
    const current = this.current(name);
    if (current === undefined || current.holder !== holder) return Promise.resolve(false);
    current.deadline = deadline;
    return Promise.resolve(true);
  }

  release(name: string, holder: string): Promise<boolean> {
    if (this.closed) return this.unavailable();
    const current = this.current(name);
    if (current === undefined || current.holder !== holder) return Promise.resolve(false);
    this.entries.delete(name);
    return Promise.resolve(true);
  }

  holder(name: string): Promise<string | null> {
    if (this.closed) return this.unavailable();
    return Promise.resolve(this.current(name)?.holder ?? null);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** The live entry of a lease; an expired one is forgotten. */
  private current(name: string): Entry | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined) return undefined;
    if (entry.deadline > this.now()) return entry;
    this.entries.delete(name);
    return undefined;
  }

  private unavailable(): Promise<never> {
    return Promise.reject(new BackendUnavailableError('redis', 'lease is closed'));
  }
}
