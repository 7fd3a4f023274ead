/** A token bucket's settings: sustained events per second, and how many may come at once. */
export interface PublishRate {
  readonly perSecond: number;
  readonly burst: number;
}

/**
 * Policy limits applied to every client of the broker (the `limits` section of the config).
 * The maximum QoS is `BrokerOptions.maximumQoS`, because CONNACK advertises it.
 */
export interface ClientLimits {
  /**
   * `allowed`: retained messages work as usual. `stripped`: the retain flag of a PUBLISH (and
   * of a will) is removed and the message is routed as an ordinary one, as IBM Watson IoT
   * does, rather than refused; Retain Available stays advertised, so clients are not refused.
   */
  readonly retain: 'allowed' | 'stripped';
  /**
   * Largest application payload a client may publish, bytes (undefined: no limit beneath
   * `maxPacketSize`). Larger messages are refused one by one: 5.0 PUBACK/PUBREC 0x97 Quota
   * exceeded (QoS 0: dropped); 3.x acknowledged and dropped, as Mosquitto's message_size_limit.
   * A will over it refuses the CONNECT (0x95 Packet too large; 3.x return code 3).
   */
  readonly maxPayloadSize: number | undefined;
  /**
   * PUBLISH packets per client (a token bucket, any QoS); over it the connection is closed:
   * 5.0 DISCONNECT 0x96 Message rate too high, 3.x a plain close. Undefined: no limit.
   */
  readonly publishRate: PublishRate | undefined;
}

export const defaultClientLimits: ClientLimits = {
  retain: 'allowed',
  maxPayloadSize: undefined,
  publishRate: undefined,
};
