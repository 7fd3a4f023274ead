import type { Message } from '../message.js';

export type BusHandler = (message: Message) => void;

export interface BusSubscribeOptions {
  /**
   * Queue group: among all bus subscriptions with the same group and filter, across all
   * nodes, each message goes to exactly one (MQTT shared subscriptions).
   */
  readonly group?: string;
}

export interface BusSubscription {
  /** Stops delivery to this subscription. Idempotent. */
  unsubscribe(): Promise<void>;
}

/**
 * Carries published messages between nodes (NATS in a cluster, in-process alone).
 *
 * Contract:
 * - `publish` resolves once the bus has accepted the message (it will reach every
 *   subscription that was active when it resolved); it rejects with
 *   BackendUnavailableError when it cannot, and the caller must then not acknowledge.
 * - A handler is called once per matching subscription: a node holding two filters that
 *   both match a topic receives the message twice and deduplicates itself.
 * - Matching follows MQTT semantics ('#' matches the parent level, '$' topics are not
 *   matched by a leading wildcard), though a node re-checks what it receives.
 * - `subscribe` resolves once interest is active: messages published after that reach it.
 * - `sync` resolves once every message the bus had routed to this node before the call has
 *   been handed to its handlers. A node that learns by another path (a takeover-end request
 *   from a peer) that a peer now holds a session calls it before it lets go: what the bus
 *   carried to it before the peer's own subscription took effect is then in hand, not still
 *   on its way to a subscription about to be dropped.
 */
export interface MessageBus {
  publish(message: Message): Promise<void>;
  subscribe(filter: string, handler: BusHandler, options?: BusSubscribeOptions): Promise<BusSubscription>;
  /** See the contract; rejects with BackendUnavailableError when the bus is down. */
  sync(): Promise<void>;
  /** True while the bus can accept publishes. */
  readonly ready: boolean;
  close(): Promise<void>;
}
