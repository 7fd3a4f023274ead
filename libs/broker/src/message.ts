import type { QoS } from '@fleetmq/protocol';

export type UserProperties = Record<string, string | string[]>;

/** MQTT 5 application properties, passed from publisher to subscriber unchanged. */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

/**
 * A published application message as the broker routes it. Immutable once created:
 * the same object is handed to every matching session and to every port.
 */
export interface Message {
  /** Cluster-unique ID given where the message entered (node ID + sequence); used to drop duplicates. */
  readonly id: string;
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties?: MessageProperties | undefined;
  /** Epoch ms after which the message must not be delivered (MQTT 5 message expiry). */
  readonly expiresAt?: number | undefined;
  /** Client ID of the publisher, for No Local; absent for messages the broker makes itself. */
  readonly publisherId?: string | undefined;
  /** Epoch ms when the broker accepted it. */
  readonly createdAt: number;
}

/** Remaining message expiry interval in whole seconds, or undefined when it never expires. */
export function remainingExpirySeconds(msg: Message, now: number): number | undefined {
  if (msg.expiresAt === undefined) return undefined;
  return Math.max(0, Math.ceil((msg.expiresAt - now) / 1000));
}

export function isExpired(msg: Message, now: number): boolean {
  return msg.expiresAt !== undefined && msg.expiresAt <= now;
}

/**
 * Makes cluster-unique message IDs: `<nodeId>-<base36 start time>-<base36 sequence>`.
 * The start time keeps IDs unique across restarts of a node with the same ID.
 */
export class MessageIdFactory {
  private seq = 0;
  private readonly prefix: string;

  constructor(nodeId: string, startedAt = Date.now()) {
    this.prefix = `${nodeId}-${startedAt.toString(36)}-`;
  }

  next(): string {
    return this.prefix + (this.seq++).toString(36);
  }
}
