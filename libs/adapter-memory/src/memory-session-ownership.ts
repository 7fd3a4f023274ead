import { BackendUnavailableError } from '@fleetmq/protocol';
import type { ClaimResult, OwnerRecord, SessionOwnership } from '@fleetmq/broker';

/**
 * The in-process SessionOwnership, standing in for Redis on a node that runs alone.
 * Epochs are per client ID and never go back, not even after a release.
 */
export class MemorySessionOwnership implements SessionOwnership {
  private readonly owners = new Map<string, OwnerRecord>();
  /** Highest epoch handed out per client ID; kept after release so epochs never repeat. */
  private readonly epochs = new Map<string, number>();
  private closed = false;

  claim(clientId: string, nodeId: string): Promise<ClaimResult> {
    if (this.closed) return this.unavailable();
    const epoch = (this.epochs.get(clientId) ?? 0) + 1;
    this.epochs.set(clientId, epoch);
    const previous = this.owners.get(clientId) ?? null;
    this.owners.set(clientId, Object.freeze({ nodeId, epoch }));
    return Promise.resolve({ epoch, previous });
  }

  release(clientId: string, epoch: number): Promise<boolean> {
    if (this.closed) return this.unavailable();
    const current = this.owners.get(clientId);
    if (current === undefined || current.epoch !== epoch) return Promise.resolve(false);
    this.owners.delete(clientId);
    return Promise.resolve(true);
  }

  owner(clientId: string): Promise<OwnerRecord | null> {
    if (this.closed) return this.unavailable();
    return Promise.resolve(this.owners.get(clientId) ?? null);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private unavailable(): Promise<never> {
    return Promise.reject(new BackendUnavailableError('redis', 'session ownership is closed'));
  }
}
