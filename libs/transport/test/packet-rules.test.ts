import { describe, expect, it } from 'vitest';
import mqtt, { type Packet } from 'mqtt-packet';
import { ReasonCode } from '@fleetmq/protocol';
import { fixed, props, u16, u32, utf8 } from '@fleetmq/testkit';
import { checkPacket } from '../src/packet-rules.js';

/** Parses bytes as a server would after a CONNECT of `version`. */
function parse(bytes: Buffer, version: 4 | 5): Packet {
  const parser = mqtt.parser({ protocolVersion: version });
  const packets: Packet[] = [];
  parser.on('packet', (p: Packet) => packets.push(p));
  parser.on('error', (err: Error) => {
    throw err;
  });
  parser.parse(bytes);
  expect(packets).toHaveLength(1);
  return packets[0]!;
}

const roundTrip = (packet: Packet, version: 4 | 5): Packet => parse(mqtt.generate(packet, { protocolVersion: version }), version);

/** Client-to-server packets as well-behaved clients send them, every allowed property set. */
const valid: [string, 4 | 5, Packet][] = [
  ['CONNECT 3.1.1 with will, user name and password', 4, {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 30,
    username: 'u', password: Buffer.from('p'), will: { topic: 'w', payload: Buffer.from('x'), qos: 2, retain: true },
  }],
  ['CONNECT 5.0 with every CONNECT and will property', 5, {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'c', clean: false, keepalive: 30,
    properties: {
      sessionExpiryInterval: 60, receiveMaximum: 10, maximumPacketSize: 1000, topicAliasMaximum: 5,
      requestResponseInformation: true, requestProblemInformation: false, userProperties: { a: 'b', c: ['d', 'e'] },
      authenticationMethod: 'm', authenticationData: Buffer.from([1]),
    },
    will: {
      topic: 'w', payload: Buffer.from('x'), qos: 1, retain: false,
      properties: {
        willDelayInterval: 5, payloadFormatIndicator: true, messageExpiryInterval: 9, contentType: 'text/plain',
        responseTopic: 'r', correlationData: Buffer.from([2]), userProperties: { k: 'v' },
      },
    },
  }],
  ['PUBLISH QoS 0', 4, { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }],
  ['PUBLISH QoS 2 with DUP', 4, { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 2, retain: true, dup: true, messageId: 65535 }],
  ['PUBLISH 5.0 with every PUBLISH property a client may send', 5, {
    cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, messageId: 1,
    properties: {
      payloadFormatIndicator: true, messageExpiryInterval: 10, topicAlias: 1, responseTopic: 'r',
      correlationData: Buffer.from([1]), userProperties: { a: 'b' }, contentType: 'c',
    },
  }],
  ['PUBACK', 4, { cmd: 'puback', messageId: 1 }],
  ['PUBREC 5.0 with reason code and properties', 5, { cmd: 'pubrec', messageId: 2, reasonCode: 0x10, properties: { reasonString: 'r', userProperties: { a: 'b' } } }],
  ['PUBREL', 4, { cmd: 'pubrel', messageId: 3 }],
  ['PUBREL 5.0 short form', 5, { cmd: 'pubrel', messageId: 3, reasonCode: 0 }],
  ['PUBCOMP 5.0 with reason code', 5, { cmd: 'pubcomp', messageId: 4, reasonCode: 0x92 }],
  ['SUBSCRIBE', 4, { cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'a/#', qos: 1 }, { topic: '+', qos: 2 }] }],
  ['SUBSCRIBE 5.0 with subscription identifier', 5, {
    cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'a', qos: 0, nl: true, rap: true, rh: 2 }],
    properties: { subscriptionIdentifier: 7, userProperties: { a: 'b' } },
  }],
  ['UNSUBSCRIBE', 4, { cmd: 'unsubscribe', messageId: 6, unsubscriptions: ['a', 'b/+'] }],
  ['UNSUBSCRIBE 5.0', 5, { cmd: 'unsubscribe', messageId: 6, unsubscriptions: ['a'], properties: { userProperties: { a: 'b' } } }],
  ['PINGREQ', 4, { cmd: 'pingreq' }],
  ['DISCONNECT', 4, { cmd: 'disconnect' }],
  ['DISCONNECT 5.0 with properties', 5, {
    cmd: 'disconnect', reasonCode: 0x04, properties: { sessionExpiryInterval: 0, reasonString: 'bye', userProperties: { a: 'b' } },
  }],
  ['AUTH 5.0', 5, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: Buffer.from([1]) } }],
];

describe('checkPacket', () => {
  for (const [name, version, packet] of valid) {
    it(`passes a valid ${name}`, () => {
      expect(checkPacket(roundTrip(packet, version), version)).toBeUndefined();
    });
  }

  const refused: [string, 4 | 5, Buffer, number][] = [
    ['QoS 0 PUBLISH with DUP', 4, fixed(0x38, [...utf8('t')]), ReasonCode.MalformedPacket],
    ['QoS 1 PUBLISH with packet identifier 0', 5, fixed(0x32, [...utf8('t'), 0, 0, 0]), ReasonCode.MalformedPacket],
    ['PUBACK of remaining length 3 on 3.1.1', 4, fixed(0x40, [0, 1, 0]), ReasonCode.MalformedPacket],
    ['PINGREQ with a body', 4, fixed(0xc0, [0]), ReasonCode.MalformedPacket],
    ['DISCONNECT with a body on 3.1.1', 4, fixed(0xe0, [0]), ReasonCode.MalformedPacket],
    ['UNSUBSCRIBE with packet identifier 0', 4, fixed(0xa2, [0, 0, ...utf8('a')]), ReasonCode.MalformedPacket],
    ['Topic Alias in SUBSCRIBE', 5, fixed(0x82, [...u16(1), ...props([0x23, ...u16(1)]), ...utf8('a'), 0]), ReasonCode.MalformedPacket],
    ['Reason String in PUBLISH', 5, fixed(0x30, [...utf8('t'), ...props([0x1f, ...utf8('r')])]), ReasonCode.MalformedPacket],
    ['Session Expiry Interval in AUTH', 5, fixed(0xf0, [0x18, ...props([0x11, ...u32(1)])]), ReasonCode.MalformedPacket],
    ['User Property in UNSUBSCRIBE with U+0000 in the value', 5, fixed(0xa2, [...u16(1), ...props([0x26, ...utf8('k'), ...utf8('\u0000')]), ...utf8('a')]), ReasonCode.MalformedPacket],
    ['Reason String twice in DISCONNECT', 5, fixed(0xe0, [0, ...props([0x1f, ...utf8('a')], [0x1f, ...utf8('b')])]), ReasonCode.ProtocolError],
  ];
  for (const [name, version, bytes, reasonCode] of refused) {
    it(`refuses ${name} with 0x${reasonCode.toString(16)}`, () => {
      expect(checkPacket(parse(bytes, version), version)?.reasonCode).toBe(reasonCode);
    });
  }
});
