/** What a node says about itself when it registers. */
export interface NodeInfo {
  /** When this incarnation of the node started (ms since the Unix epoch, the node's clock). */
  readonly startedAt: number;
  /** Where other nodes (or a load balancer's server reference, MQTT 5 0x9C) can reach it. */
  readonly address?: string;
}

/** A node the registry knows: live, or expired and not yet forgotten. */
export interface NodeRecord extends NodeInfo {
  readonly nodeId: string;
  /** Its heartbeat has not expired. */
  readonly live: boolean;
  /**
   * When its heartbeat expires (live) or expired (dead), in ms since the Unix epoch on the
   * registry's clock (Redis `TIME` in a cluster), not necessarily the caller's.
   */
  readonly expiresAt: number;
}

/**
 * Which edge nodes are alive (Redis in a cluster, in-process alone), so that live nodes can
 * find the ones that died and adopt their detached sessions (DESIGN.md, node lifecycle).
 *
 * Contract:
 * - `register` makes a node live for `ttlMs`; registering again refreshes its info and
 *   deadline (and brings back a node that had expired: a new incarnation).
 * - `heartbeat` extends a live node's deadline by `ttlMs` from now and resolves true. It
 *   never brings back a node that expired or deregistered: it resolves false, and the node
 *   must assume that others are adopting its detached sessions (their claims fence it), then
 *   `register` again. Nodes should beat every `ttlMs / 3` or so.
 * - A node whose deadline passed is *expired*: not in `liveNodes`, listed by `expiredNodes`
 *   for `retainExpiredMs` after its deadline (so every live node polling more often than that
 *   sees it), then forgotten. `expiresAt` tells one death of a node ID from a later one.
 * - `deregister` (a drained node, which handed its sessions over itself) removes the node at
 *   once: neither live nor expired. Idempotent.
 * - Lists are sorted by node ID (code-unit order).
 * - After `close`, or while the backend is unreachable, calls reject with
 *   BackendUnavailableError and `ready` is false.
 *
 * How a node uses it: each poll, it takes `liveNodes()` and, for every `expiredNodes()` record
 * it has not handled yet (key: nodeId + expiresAt), adopts the detached sessions of that node
 * whose `rendezvousOwner(clientId, liveNodes)` is itself, claiming each with SessionOwnership
 * (the epoch fences any other adopter). A node that just got its backend back after an
 * outage longer than the TTL sees every peer expired until they beat again: it should let
 * about one TTL pass after its own first successful heartbeat before acting on expiries.
 */
export interface NodeRegistry {
  /** How long a heartbeat keeps a node live (ms). */
  readonly ttlMs: number;
  /** How long an expired node stays listed by `expiredNodes` after its deadline (ms). */
  readonly retainExpiredMs: number;
  /** True while the registry can be read and written. */
  readonly ready: boolean;
  register(nodeId: string, info: NodeInfo): Promise<void>;
  /** Extends a live node's deadline; false (and no effect) when it is not live. */
  heartbeat(nodeId: string): Promise<boolean>;
  deregister(nodeId: string): Promise<void>;
  /** IDs of the nodes whose heartbeat has not expired, sorted. */
  liveNodes(): Promise<string[]>;
  /** Nodes whose heartbeat expired within the last `retainExpiredMs`, sorted by node ID. */
  expiredNodes(): Promise<NodeRecord[]>;
  /** A live or retained expired node; null when unknown, deregistered or forgotten. */
  node(nodeId: string): Promise<NodeRecord | null>;
  close(): Promise<void>;
}
