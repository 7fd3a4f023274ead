import type { QoS } from '@fleetmq/protocol';
import type { DropPolicy } from './ports/offline-queue.js';

/** The broker's MQTT limits and capabilities (the `mqtt` section of the config). */
export interface BrokerOptions {
  /** Largest packet accepted from a client, bytes; advertised as Maximum Packet Size. */
  readonly maxPacketSize: number;
  /** Incoming QoS 2 messages awaiting PUBREL per client; advertised as Receive Maximum. */
  readonly receiveMaximum: number;
  readonly maxQueuedMessages: number;
  readonly queueDropPolicy: DropPolicy;
  readonly topicAliasMaximum: number;
  readonly maxKeepAlive: number;
  readonly maxSessionExpiryInterval: number;
  readonly retainAvailable: boolean;
  readonly maximumQoS: QoS;
  readonly wildcardSubscriptionAvailable: boolean;
  readonly subscriptionIdentifierAvailable: boolean;
  readonly sharedSubscriptionAvailable: boolean;
  readonly maxClientIdLength: number;
}

export const defaultBrokerOptions: BrokerOptions = {
  maxPacketSize: 1_048_576,
  receiveMaximum: 32,
  maxQueuedMessages: 1000,
  queueDropPolicy: 'drop-oldest',
  topicAliasMaximum: 100,
  maxKeepAlive: 65535,
  maxSessionExpiryInterval: 0xffffffff,
  retainAvailable: true,
  maximumQoS: 2,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifierAvailable: true,
  sharedSubscriptionAvailable: true,
  maxClientIdLength: 65535,
};
