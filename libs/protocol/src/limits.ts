/** Protocol-level numbers, from the spec. Configurable limits live in the broker's options. */
export const ProtocolLimits = {
  /** Largest remaining length a packet can encode (spec 2.2.3), plus a 5-byte fixed header. */
  maxPacketSize: 268_435_455 + 5,
  maxPacketId: 65535,
  maxTopicAlias: 65535,
  maxKeepAlive: 65535,
  /** Session expiry value that means "never expires" (MQTT 5 3.1.2.11.2). */
  sessionExpiryNever: 0xffffffff,
} as const;

export type ProtocolVersion = 3 | 4 | 5;
export type QoS = 0 | 1 | 2;
