import type { ProtocolVersion, QoS } from '@fleetmq/protocol';
import type { Message, MessageProperties } from './message.js';
import type { SubscriptionOptions } from './subscription.js';

/** A will message as stored with its session, so that any node can publish it. */
export interface WillMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties?: MessageProperties | undefined;
  /** MQTT 5 message expiry interval of the will, seconds. */
  readonly messageExpiryInterval?: number | undefined;
  /** MQTT 5 will delay interval, seconds. */
  readonly delayInterval: number;
}

/** An outgoing QoS 1/2 message sent to the client and not yet completed. */
export interface InflightEntry {
  readonly packetId: number;
  readonly message: Message;
  /** QoS it was sent with (min of message QoS and granted QoS). */
  readonly qos: 1 | 2;
  /** 'publish': waiting for PUBACK/PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP. */
  state: 'publish' | 'pubrel';
  /** Subscription identifiers that matched, for resend. */
  readonly subscriptionIds?: readonly number[] | undefined;
  /** Retain flag as sent. */
  readonly retain: boolean;
}

export const SNAPSHOT_VERSION = 1;

/**
 * A session as plain data: what DynamoDB stores and what nodes hand to each other on
 * takeover. Versioned; readers accept every version up to their own.
 */
export interface SessionSnapshot {
  readonly v: typeof SNAPSHOT_VERSION;
  readonly clientId: string;
  readonly protocolVersion: ProtocolVersion;
  /** Seconds the session outlives its connection; 0xFFFFFFFF never expires. */
  readonly expiryInterval: number;
  readonly subscriptions: ReadonlyArray<readonly [filter: string, options: SubscriptionOptions]>;
  readonly inflight: readonly InflightEntry[];
  /** Messages queued for the client and not yet sent, in order. */
  readonly queue: readonly Message[];
  /** Incoming QoS 2 packet IDs received (PUBREC sent) and awaiting PUBREL. */
  readonly awaitingRel: readonly number[];
  readonly nextPacketId: number;
  readonly will?: WillMessage | undefined;
  /** Epoch ms when the client disconnected; absent while connected. */
  readonly disconnectedAt?: number | undefined;
}

// ---- JSON codec: Buffers as {"$b": base64}, so a snapshot survives any JSON store. ----
// Object keys that start with "$" (client data such as user property names) get one more
// "$" on the way out and lose it on the way in, so no client key can look like a Buffer.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Sets an own property even when the key is "__proto__" (user properties may use any name). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

function encodeValue(v: unknown): Json {
  if (Buffer.isBuffer(v)) return { $b: v.toString('base64') };
  if (Array.isArray(v)) return v.map(encodeValue);
  if (v !== null && typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) {
      if (x !== undefined) setOwn(out, k.startsWith('$') ? `$${k}` : k, encodeValue(x));
    }
    return out;
  }
  return v as Json;
}

function decodeValue(v: Json): unknown {
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v !== null && typeof v === 'object') {
    const b = v['$b'];
    if (typeof b === 'string' && Object.keys(v).length === 1) return Buffer.from(b, 'base64');
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) setOwn(out, k.startsWith('$$') ? k.slice(1) : k, decodeValue(x));
    return out;
  }
  return v;
}

/** Any plain value with Buffers inside as JSON text (node-to-node messages, stores). */
export function encodeJson(value: unknown): string {
  return JSON.stringify(encodeValue(value));
}

export function decodeJson<T>(text: string): T {
  return decodeValue(JSON.parse(text) as Json) as T;
}

export function encodeSnapshot(snapshot: SessionSnapshot): string {
  return JSON.stringify(encodeValue(snapshot));
}

export function decodeSnapshot(text: string): SessionSnapshot {
  const value = decodeValue(JSON.parse(text) as Json) as SessionSnapshot;
  if (value.v !== SNAPSHOT_VERSION) throw new Error(`unsupported session snapshot version ${String(value.v)}`);
  return value;
}

/** Encodes a single message the same way (for stores that keep messages as JSON). */
export function encodeMessage(message: Message): string {
  return JSON.stringify(encodeValue(message));
}

export function decodeMessage(text: string): Message {
  return decodeValue(JSON.parse(text) as Json) as Message;
}
