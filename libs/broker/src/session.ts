import type { ProtocolVersion } from '@fleetmq/protocol';
import { deliveryFor } from './delivery.js';
import type { Message } from './message.js';
import { MessageQueue } from './message-queue.js';
import type { DropPolicy } from './ports/offline-queue.js';
import {
  SNAPSHOT_VERSION,
  type InflightEntry,
  type SessionSnapshot,
  type WillMessage,
} from './session-snapshot.js';
import type { SubscriptionOptions } from './subscription.js';

/** A message waiting in a session's queue with what its subscription granted. */
export interface QueuedDelivery {
  readonly message: Message;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  readonly subscriptionIds?: readonly number[] | undefined;
}

export interface SessionLimits {
  readonly maxQueued: number;
  readonly dropPolicy: DropPolicy;
}

const RECENT_IDS = 512;

/**
 * MQTT session state as plain data (after emqx_session_mem): subscriptions, outgoing
 * inflight, the bounded queue, incoming QoS 2 awaiting PUBREL and the packet ID counter.
 * No I/O: the channel drives it; snapshots move it between nodes and into stores.
 */
export class Session {
  readonly queue: MessageQueue<QueuedDelivery>;
  // made on first use: an idle connection's session never needs them (about 500 bytes)
  private subscriptionMap: Map<string, SubscriptionOptions> | undefined;
  private inflightMap: Map<number, InflightEntry> | undefined;
  private awaitingRelSet: Set<number> | undefined;
  will: WillMessage | undefined;
  expiryInterval: number;
  protocolVersion: ProtocolVersion;
  private nextPacketId = 1;
  /**
   * Recently accepted message IDs (QoS > 0), to deliver a message that arrives twice once;
   * made on first use (an idle connection's session never needs them).
   */
  private recent: Set<string> | undefined;
  private recentOrder: string[] | undefined;
  private recentHead = 0;

  constructor(
    readonly clientId: string,
    protocolVersion: ProtocolVersion,
    expiryInterval: number,
    limits: SessionLimits,
  ) {
    this.protocolVersion = protocolVersion;
    this.expiryInterval = expiryInterval;
    this.queue = new MessageQueue(limits.maxQueued, limits.dropPolicy);
  }

  /** Filter → options of the session's subscriptions. */
  get subscriptions(): Map<string, SubscriptionOptions> {
    return (this.subscriptionMap ??= new Map());
  }

  /** Outgoing QoS 1/2 messages not yet acknowledged, by packet ID. */
  get inflight(): Map<number, InflightEntry> {
    return (this.inflightMap ??= new Map());
  }

  /** Incoming QoS 2 packet IDs awaiting PUBREL. */
  get awaitingRel(): Set<number> {
    return (this.awaitingRelSet ??= new Set());
  }

  /** Whether any outgoing message is unacknowledged (without making the map). */
  get hasInflight(): boolean {
    return this.inflightMap !== undefined && this.inflightMap.size > 0;
  }

  /**
   * Records the message ID; returns false if it was seen recently (a duplicate).
   * Bounded: remembers the last RECENT_IDS IDs.
   */
  markSeen(id: string): boolean {
    const recent = (this.recent ??= new Set());
    const order = (this.recentOrder ??= []);
    if (recent.has(id)) return false;
    if (order.length < RECENT_IDS) {
      order.push(id);
    } else {
      recent.delete(order[this.recentHead]!);
      order[this.recentHead] = id;
      this.recentHead = (this.recentHead + 1) % RECENT_IDS;
    }
    recent.add(id);
    return true;
  }

  /** A packet ID not used by any outgoing inflight message, or undefined if all 65535 are. */
  allocatePacketId(): number | undefined {
    if (this.inflight.size >= 65535) return undefined;
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  toSnapshot(disconnectedAt?: number): SessionSnapshot {
    return {
      v: SNAPSHOT_VERSION,
      clientId: this.clientId,
      protocolVersion: this.protocolVersion,
      expiryInterval: this.expiryInterval,
      // read without making the maps: a persistent session is saved at every CONNECT
      subscriptions: this.subscriptionMap === undefined ? [] : [...this.subscriptionMap],
      inflight: this.inflightMap === undefined ? [] : [...this.inflightMap.values()].map((e) => ({ ...e })),
      queue: this.queue.toArray().map((d) => d.message),
      awaitingRel: this.awaitingRelSet === undefined ? [] : [...this.awaitingRelSet],
      nextPacketId: this.nextPacketId,
      will: this.will,
      disconnectedAt,
    };
  }

  static fromSnapshot(s: SessionSnapshot, limits: SessionLimits): Session {
    const session = new Session(s.clientId, s.protocolVersion, s.expiryInterval, limits);
    for (const [filter, options] of s.subscriptions) session.subscriptions.set(filter, options);
    for (const e of s.inflight) session.inflight.set(e.packetId, { ...e });
    for (const id of s.awaitingRel) session.awaitingRel.add(id);
    session.nextPacketId = s.nextPacketId;
    session.will = s.will;
    for (const message of s.queue) session.enqueueStored(message);
    for (const e of s.inflight) session.markSeen(e.message.id);
    return session;
  }

  /**
   * Queues a message restored from a snapshot or an offline queue, with QoS and flags
   * recomputed from the session's subscriptions. Returns false if it was dropped
   * (a duplicate, or no subscription matches it any more).
   */
  enqueueStored(message: Message): boolean {
    const delivery = deliveryFor(this.subscriptions, message, this.clientId);
    if (delivery === undefined) return false;
    if (delivery.qos > 0 && !this.markSeen(message.id)) return false;
    this.queue.push({ message, qos: delivery.qos, retain: delivery.retain, subscriptionIds: delivery.subscriptionIds });
    return true;
  }
}
