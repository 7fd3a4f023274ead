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
  /**
   * Claims a client ID only while `expectedNode` owns it (compare and claim): how live nodes
   * adopt the sessions of a dead node exactly once. Null, and no change, when another node
   * (or nobody) owns it by now.
   */
  claimFrom(clientId: string, nodeId: string, expectedNode: string): Promise<ClaimResult | null>;
  /** Removes ownership if the record still has this epoch; returns whether it did. */
  release(clientId: string, epoch: number): Promise<boolean>;
  owner(clientId: string): Promise<OwnerRecord | null>;
  /**
   * A page of the client IDs a node owns (or owned: an entry may be stale, so check `owner`
   * or use `claimFrom`), for adopting what a dead node held. Start with cursor '0'; the
   * returned cursor is '0' when the listing is complete. Pages hold about `count` IDs.
   */
  ownedBy(nodeId: string, cursor: string, count: number): Promise<{ clientIds: string[]; cursor: string }>;
  close(): Promise<void>;
}
