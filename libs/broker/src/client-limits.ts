import type { QoS } from '@fleetmq/protocol';
import type { ClientIdentity } from './auth.js';
import type { ConnectionInfo } from './channel.js';

/** A token bucket's settings: sustained events per second, and how many may come at once. */
export interface PublishRate {
  readonly perSecond: number;
  readonly burst: number;
}

/** A token bucket's settings (publish rate per client, connection rate per listener). */
export type RateLimit = PublishRate;

/**
 * Policy limits of one client: the `limits` section of the config, or the policy that
 * matched the client at CONNECT merged over it. Resolved once per connection; the channel
 * never looks them up per message. The `mqtt` section's values (BrokerOptions) stay the
 * ceilings: a policy may lower them, never raise them.
 */
export interface ClientLimits {
  /**
   * Highest QoS of a PUBLISH (above it: DISCONNECT 0x9B, 3.x close, as Azure IoT Hub closes
   * on QoS 2) and of a subscription (granted at it). The lower of this and
   * `BrokerOptions.maximumQoS` is advertised in CONNACK.
   */
  readonly maximumQoS: QoS;
  /**
   * `allowed`: retained messages work as usual. `stripped`: the retain flag of a PUBLISH (and
   * of a will) is removed and the message is routed as an ordinary one, as IBM Watson IoT
   * does, rather than refused; Retain Available stays advertised, so clients are not refused.
   */
  readonly retain: 'allowed' | 'stripped';
  /**
   * Largest packet the client may send, bytes (undefined: `BrokerOptions.maxPacketSize`).
   * Advertised as Maximum Packet Size; a larger packet closes the connection (5.0 0x95).
   */
  readonly maxPacketSize: number | undefined;
  /**
   * Largest application payload a client may publish, bytes (undefined: no limit beneath
   * `maxPacketSize`). Larger messages are refused one by one: 5.0 PUBACK/PUBREC 0x97 Quota
   * exceeded (QoS 0: dropped); 3.x acknowledged and dropped, as Mosquitto's message_size_limit.
   * A will over it refuses the CONNECT (0x95 Packet too large; 3.x return code 5).
   */
  readonly maxPayloadSize: number | undefined;
  /**
   * PUBLISH packets per client (a token bucket, any QoS); over it the connection is closed:
   * 5.0 DISCONNECT 0x96 Message rate too high, 3.x a plain close. Undefined: no limit.
   */
  readonly publishRate: PublishRate | undefined;
  /**
   * QoS 1/2 messages in flight each way (undefined: the client's Receive Maximum outward,
   * `BrokerOptions.receiveMaximum` inward): outgoing messages beyond it wait in the session's
   * queue; the Receive Maximum advertised to a 5.0 client is capped by it, and one more
   * unreleased QoS 2 PUBLISH closes the connection (0x93).
   */
  readonly maxInflight: number | undefined;
  /**
   * Messages the session's queue holds while they wait for an inflight slot or for the client
   * (undefined: `BrokerOptions.maxQueuedMessages`); beyond it the queue's drop policy applies.
   * The offline queue in the store keeps the node-wide limit.
   */
  readonly maxQueued: number | undefined;
}

export const defaultClientLimits: ClientLimits = {
  maximumQoS: 2,
  retain: 'allowed',
  maxPacketSize: undefined,
  maxPayloadSize: undefined,
  publishRate: undefined,
  maxInflight: undefined,
  maxQueued: undefined,
};

/**
 * Picks a client's limits at CONNECT, once authentication said who it is (`@fleetmq/auth`
 * PolicyTable matches listener, user, group and client ID).
 */
export interface LimitPolicy {
  limitsFor(identity: ClientIdentity | undefined, clientId: string, info: ConnectionInfo): ClientLimits;
}

/**
 * Connection limits of one listener. Over either, the connection's CONNECT is read and
 * answered (5.0 CONNACK 0x97 Quota exceeded / 0x9F Connection rate exceeded; 3.x return code 3
 * Server unavailable), then it is closed.
 */
export interface ListenerLimits {
  /** Connections open at once on the listener, counted from accept to close. */
  readonly maxConnections?: number | undefined;
  /** New connections per second (a token bucket) on the listener. */
  readonly connectionRate?: RateLimit | undefined;
}

/** Throws a RangeError naming `key` when a limit is unusable; the config schema prevents it. */
export function checkClientLimits(limits: ClientLimits, key = 'limits'): void {
  const { publishRate } = limits;
  if (publishRate !== undefined) checkRate(publishRate, `${key}.publishRate`);
  checkCount(limits.maxPayloadSize, `${key}.maxPayloadSize`, 0);
  checkCount(limits.maxPacketSize, `${key}.maxPacketSize`, 2);
  checkCount(limits.maxInflight, `${key}.maxInflight`, 1);
  checkCount(limits.maxQueued, `${key}.maxQueued`, 0);
  if (![0, 1, 2].includes(limits.maximumQoS)) throw new RangeError(`${key}.maximumQoS must be 0, 1 or 2, got ${limits.maximumQoS}`);
}

export function checkListenerLimits(limits: ListenerLimits, key: string): void {
  checkCount(limits.maxConnections, `${key}.maxConnections`, 1);
  if (limits.connectionRate !== undefined) checkRate(limits.connectionRate, `${key}.connectionRate`);
}

function checkRate(rate: RateLimit, key: string): void {
  if (!(rate.perSecond > 0) || !Number.isFinite(rate.perSecond)) throw new RangeError(`${key}.perSecond must be a positive finite number, got ${rate.perSecond}`);
  if (!(rate.burst >= 1) || !Number.isFinite(rate.burst)) throw new RangeError(`${key}.burst must be a finite number >= 1, got ${rate.burst}`);
}

function checkCount(value: number | undefined, key: string, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min)) throw new RangeError(`${key} must be an integer >= ${min}, got ${value}`);
}
