/** Which node owns a client ID, and the fencing epoch of that ownership. */
export interface OwnerRecord {
  readonly nodeId: string;
  readonly epoch: number;
}

export interface ClaimResult {
  /** The new epoch: strictly greater than any epoch handed out before for this client ID. */
  readonly epoch: number;
  /** The owner before this claim, if any (possibly this same node). */
  readonly previous: OwnerRecord | null;
}

/**
 * Says which node owns each client ID (Redis in a cluster, in-process alone).
 * A claim increments the epoch atomically; every session write is fenced by that epoch.
 */
export interface SessionOwnership {
  claim(clientId: string, nodeId: string): Promise<ClaimResult>;
  /** Removes ownership if the record still has this epoch; returns whether it did. */
  release(clientId: string, epoch: number): Promise<boolean>;
  owner(clientId: string): Promise<OwnerRecord | null>;
  close(): Promise<void>;
}
