import { BackendUnavailableError } from '@fleetmq/protocol';
import type { ClaimResult, OwnerRecord, SessionOwnership } from '@fleetmq/broker';

/** Marks a cursor of ownedBy (never '0', whatever the ID after it). */
const AFTER = '>';

/**
 * The in-process SessionOwnership, standing in for Redis on a node that runs alone.
 * Epochs come from one counter for the process: they only grow for each client ID, across
 * releases too, and nothing is kept for a client ID once it is released (a storm of
 * distinct client IDs leaves no trace).
 */
export class MemorySessionOwnership implements SessionOwnership {
  private readonly owners = new Map<string, OwnerRecord>();
  /** The last epoch handed out, to any client ID. */
  private lastEpoch = 0;
  /** Client IDs per owning node. */
  private readonly byNode = new Map<string, Set<string>>();
  private closed = false;

  claim(clientId: string, nodeId: string): Promise<ClaimResult> {
    if (this.closed) return this.unavailable();
    return Promise.resolve(this.take(clientId, nodeId));
  }

  claimFrom(clientId: string, nodeId: string, expectedNode: string): Promise<ClaimResult | null> {
    if (this.closed) return this.unavailable();
    if (this.owners.get(clientId)?.nodeId !== expectedNode) return Promise.resolve(null);
    return Promise.resolve(this.take(clientId, nodeId));
  }

  release(clientId: string, epoch: number): Promise<boolean> {
    if (this.closed) return this.unavailable();
    const current = this.owners.get(clientId);
    if (current === undefined || current.epoch !== epoch) return Promise.resolve(false);
    this.owners.delete(clientId);
    this.unindex(clientId, current.nodeId);
    return Promise.resolve(true);
  }

  /**
   * Pages in the order of the IDs (code units): the cursor is the last ID returned, so an ID
   * present for the whole listing is returned exactly once, whatever is claimed or released
   * between pages (as Redis SSCAN guarantees at least once).
   */
  ownedBy(nodeId: string, cursor: string, count: number): Promise<{ clientIds: string[]; cursor: string }> {
    if (this.closed) return this.unavailable();
    if (cursor !== '0' && !cursor.startsWith(AFTER)) {
      return Promise.reject(new TypeError(`ownedBy: cursor must be '0' or one this method returned, not ${JSON.stringify(cursor)}`));
    }
    const after = cursor === '0' ? undefined : cursor.slice(AFTER.length);
    const rest = [...(this.byNode.get(nodeId) ?? [])].filter((id) => after === undefined || id > after).sort();
    const page = rest.slice(0, Math.max(1, count));
    const next = page.length < rest.length ? AFTER + page[page.length - 1]! : '0';
    return Promise.resolve({ clientIds: page, cursor: next });
  }

  private take(clientId: string, nodeId: string): ClaimResult {
    const epoch = ++this.lastEpoch;
    const previous = this.owners.get(clientId) ?? null;
    this.owners.set(clientId, Object.freeze({ nodeId, epoch }));
    if (previous !== null) this.unindex(clientId, previous.nodeId);
    let owned = this.byNode.get(nodeId);
    if (owned === undefined) this.byNode.set(nodeId, (owned = new Set()));
    owned.add(clientId);
    return { epoch, previous };
  }

  private unindex(clientId: string, nodeId: string): void {
    const owned = this.byNode.get(nodeId);
    owned?.delete(clientId);
    if (owned?.size === 0) this.byNode.delete(nodeId);
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
