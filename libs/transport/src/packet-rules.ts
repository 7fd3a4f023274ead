import type { Packet } from 'mqtt-packet';
import { ReasonCode, isWellFormedString, type ProtocolVersion } from '@fleetmq/protocol';

/** Why a parsed packet may not go on to the channel, and the reason code that says so. */
export interface PacketViolation {
  readonly reasonCode: number;
  readonly reason: string;
}

/**
 * Rules of well-formedness that mqtt-packet's parser does not enforce: it accepts these
 * packets and hands them on. The channel then checks what is semantic (topic names,
 * aliases, state); this is only about the shape of a packet.
 */
export function checkPacket(packet: Packet, version: ProtocolVersion): PacketViolation | undefined {
  switch (packet.cmd) {
    case 'connect':
      return checkConnect(packet);
    case 'publish': {
      // [MQTT-3.3.1-2] no DUP on QoS 0; [MQTT-2.3.1-1, MQTT-2.2.1-3] a non-zero packet identifier on QoS > 0
      if (packet.qos === 0 && packet.dup) return malformed('DUP set on a QoS 0 PUBLISH');
      if (packet.qos > 0 && !validPacketId(packet.messageId)) return malformed('PUBLISH without a packet identifier');
      if (!isWellFormedString(packet.topic)) return malformed('topic name is not well-formed UTF-8');
      return checkProperties(packet.properties, 'publish');
    }
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp': {
      // exactly a packet identifier on 3.x; at least one on 5.0 (3.4.2 and following)
      const length = packet.length ?? 0;
      if (version === 5 ? length < 2 : length !== 2) return malformed(`${packet.cmd} of remaining length ${length}`);
      return checkProperties(packet.properties, 'ack');
    }
    case 'subscribe': {
      if (!validPacketId(packet.messageId)) return malformed('SUBSCRIBE without a packet identifier');
      for (const sub of packet.subscriptions) {
        if (!isWellFormedString(sub.topic)) return malformed('topic filter is not well-formed UTF-8');
      }
      return checkProperties(packet.properties, 'subscribe');
    }
    case 'unsubscribe': {
      if (!validPacketId(packet.messageId)) return malformed('UNSUBSCRIBE without a packet identifier');
      for (const filter of packet.unsubscriptions) {
        if (!isWellFormedString(filter)) return malformed('topic filter is not well-formed UTF-8');
      }
      return checkProperties(packet.properties, 'unsubscribe');
    }
    case 'pingreq':
      // 3.12: no variable header, no payload
      return (packet.length ?? 0) !== 0 ? malformed('PINGREQ with a body') : undefined;
    case 'disconnect':
      // 3.1.1 3.14: no variable header, no payload
      if (version !== 5 && (packet.length ?? 0) !== 0) return malformed('DISCONNECT with a body');
      return checkProperties(packet.properties, 'disconnect');
    case 'auth':
      return checkProperties(packet.properties, 'auth');
    default:
      return undefined;
  }
}

function checkConnect(packet: Extract<Packet, { cmd: 'connect' }>): PacketViolation | undefined {
  const version = packet.protocolVersion ?? 4;
  // [MQTT-1.5.3-1, MQTT-1.5.3-2 / MQTT-1.5.4-1, MQTT-1.5.4-2]
  if (!isWellFormedString(packet.clientId)) return malformed('client identifier is not well-formed UTF-8');
  if (packet.username !== undefined && !isWellFormedString(packet.username)) {
    return malformed('user name is not well-formed UTF-8');
  }
  // [MQTT-3.1.2-22] 3.1.1: a password needs a user name (5.0 dropped the rule)
  if (version === 4 && packet.password !== undefined && packet.username === undefined) {
    return malformed('password without user name');
  }
  const will = packet.will;
  if (will !== undefined) {
    // [MQTT-3.1.2-14] 3.1.1; 5.0 3.1.2.6: Will QoS 3 is a Malformed Packet
    if ((will.qos ?? 0) > 2) return malformed('will QoS 3');
    if (!isWellFormedString(will.topic)) return malformed('will topic is not well-formed UTF-8');
    const v = checkProperties(will.properties, 'will');
    if (v !== undefined) return v;
  }
  const props = packet.properties;
  const v = checkProperties(props, 'connect');
  if (v !== undefined) return v;
  if (props?.authenticationData !== undefined && props.authenticationMethod === undefined) {
    // 3.1.2.11.10
    return protocolError('authentication data without authentication method');
  }
  return undefined;
}

type Where = 'connect' | 'will' | 'publish' | 'ack' | 'subscribe' | 'unsubscribe' | 'disconnect' | 'auth';

/** The properties a client may send in each packet (MQTT 5 table 2.2.2.2, client to server). */
const ALLOWED: Record<Where, ReadonlySet<string>> = {
  connect: new Set([
    'sessionExpiryInterval',
    'receiveMaximum',
    'maximumPacketSize',
    'topicAliasMaximum',
    'requestResponseInformation',
    'requestProblemInformation',
    'userProperties',
    'authenticationMethod',
    'authenticationData',
  ]),
  will: new Set([
    'willDelayInterval',
    'payloadFormatIndicator',
    'messageExpiryInterval',
    'contentType',
    'responseTopic',
    'correlationData',
    'userProperties',
  ]),
  // the Subscription Identifier is the channel's to refuse [MQTT-3.3.4-6]
  publish: new Set([
    'payloadFormatIndicator',
    'messageExpiryInterval',
    'topicAlias',
    'responseTopic',
    'correlationData',
    'userProperties',
    'subscriptionIdentifier',
    'contentType',
  ]),
  ack: new Set(['reasonString', 'userProperties']),
  subscribe: new Set(['subscriptionIdentifier', 'userProperties']),
  unsubscribe: new Set(['userProperties']),
  disconnect: new Set(['sessionExpiryInterval', 'reasonString', 'userProperties', 'serverReference']),
  auth: new Set(['authenticationMethod', 'authenticationData', 'reasonString', 'userProperties']),
};

/**
 * 2.2.2.2: an identifier not valid for the packet is a Malformed Packet; a property given
 * twice (mqtt-packet collects repeats into an array) is a Protocol Error; strings must be
 * well-formed UTF-8 [MQTT-1.5.4-1, MQTT-1.5.4-2].
 */
function checkProperties(properties: object | undefined, where: Where): PacketViolation | undefined {
  if (properties === undefined) return undefined;
  const allowed = ALLOWED[where];
  for (const [name, value] of Object.entries(properties) as [string, unknown][]) {
    if (!allowed.has(name)) return malformed(`${name} is not a ${where} property`);
    if (name === 'userProperties') {
      for (const [key, values] of Object.entries(value as Record<string, string | string[]>)) {
        if (!isWellFormedString(key)) return malformed('user property name is not well-formed UTF-8');
        for (const s of Array.isArray(values) ? values : [values]) {
          if (!isWellFormedString(s)) return malformed('user property value is not well-formed UTF-8');
        }
      }
      continue;
    }
    if (Array.isArray(value)) return protocolError(`${name} more than once`);
    if (typeof value === 'string' && !isWellFormedString(value)) return malformed(`${name} is not well-formed UTF-8`);
  }
  return undefined;
}

function validPacketId(id: number | undefined): boolean {
  return id !== undefined && id >= 1 && id <= 65535;
}

function malformed(reason: string): PacketViolation {
  return { reasonCode: ReasonCode.MalformedPacket, reason };
}

function protocolError(reason: string): PacketViolation {
  return { reasonCode: ReasonCode.ProtocolError, reason };
}
