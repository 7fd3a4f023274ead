/**
 * The malformed-packet table (after Mochi's packets/tpackets.go): raw bytes a client sends,
 * each with the normative statement it breaks and what a conforming server does about it.
 * Shared by the codec, connection and end-to-end tests; data only, no sockets.
 *
 * What the spec asks of a server, in short:
 * - MQTT 3.1 / 3.1.1: a protocol violation closes the network connection, with nothing
 *   sent [MQTT-4.8.0-1]; a CONNECT that does not conform to section 3.1 is closed without
 *   CONNACK [MQTT-3.1.4-1]; an unsupported protocol level gets CONNACK 0x01 [MQTT-3.1.2-2].
 * - MQTT 5.0: DISCONNECT with the reason code (0x81 Malformed Packet, 0x82 Protocol Error,
 *   0x90, 0x94, 0x95 ...) then close [MQTT-4.13.1-1]; before CONNACK, a CONNACK with the
 *   reason code, which 3.1.4 allows for a CONNECT that is malformed or refused.
 * - A SUBACK / UNSUBACK failure code where a single topic filter is refused.
 *
 * Where mqtt-packet's parser rejects a packet itself, the broker answers 0x81 on v5,
 * except where the spec names a Protocol Error (Retain Handling 3, Maximum QoS 3).
 */
import mqtt, { type IConnectPacket, type IPublishPacket, type ISubscribePacket, type ISubscription } from 'mqtt-packet';

export type MqttVersion = 3 | 4 | 5;

/** What the server sends back (after the CONNACK of `connectFirst`, if any). */
export type MalformedExpect =
  /** The server closes the connection and sends nothing. */
  | { readonly kind: 'close' }
  /**
   * CONNACK with this return code (3.x) or reason code (5.0). A refusal (3.x: not 0;
   * 5.0: 0x80 or above) is followed by the close; an acceptance keeps the connection.
   */
  | { readonly kind: 'connack'; readonly code: number }
  /** MQTT 5 DISCONNECT with this reason code, then the close. */
  | { readonly kind: 'disconnect'; readonly reasonCode: number }
  /** SUBACK with exactly these codes; the connection stays open. */
  | { readonly kind: 'suback'; readonly codes: readonly number[] }
  /** UNSUBACK with exactly these codes (3.x: none); the connection stays open. */
  | { readonly kind: 'unsuback'; readonly codes: readonly number[] };

export interface MalformedCase {
  readonly name: string;
  /** The normative statement (`MQTT-3.1.2-3`) or section (`3.15.2.1`) the bytes break. */
  readonly spec: string;
  /** Protocol version of the exchange: the format the reply is parsed in. */
  readonly version: MqttVersion;
  /** A valid CONNECT of this version is sent (and accepted) before `bytes`; false: `bytes` come first. */
  readonly connectFirst: MqttVersion | false;
  readonly bytes: Buffer;
  readonly expect: MalformedExpect;
}

/** The node settings the table assumes (the oversize and topic alias rows depend on them). */
export const malformedTableLimits = {
  maxPacketSize: 1024,
  topicAliasMaximum: 10,
} as const;

// ------------------------------------------------------------------ raw bytes

/** Variable Byte Integer (1.5.5); values above 268,435,455 are not encodable. */
export function varInt(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

export function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

export function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** A UTF-8 Encoded String (1.5.3 / 1.5.4): two length bytes, then the bytes. */
export function utf8(s: string): number[] {
  return rawString([...Buffer.from(s, 'utf8')]);
}

/** Length-prefixed bytes, for strings that are deliberately not UTF-8. */
export function rawString(bytes: readonly number[]): number[] {
  return [...u16(bytes.length), ...bytes];
}

/** A whole packet: first byte (type and flags), Remaining Length, then `body`. */
export function fixed(byte0: number, body: readonly number[] = []): Buffer {
  return Buffer.from([byte0, ...varInt(body.length), ...body]);
}

/** An MQTT 5 property block: Property Length, then the properties. */
export function props(...entries: readonly (readonly number[])[]): number[] {
  const bytes = entries.flat();
  return [...varInt(bytes.length), ...bytes];
}

/** MQTT 5 property identifiers (2.2.2.2). */
export const Prop = {
  payloadFormatIndicator: 0x01,
  messageExpiryInterval: 0x02,
  contentType: 0x03,
  responseTopic: 0x08,
  correlationData: 0x09,
  subscriptionIdentifier: 0x0b,
  sessionExpiryInterval: 0x11,
  assignedClientIdentifier: 0x12,
  authenticationMethod: 0x15,
  authenticationData: 0x16,
  receiveMaximum: 0x21,
  topicAliasMaximum: 0x22,
  topicAlias: 0x23,
  userProperty: 0x26,
  maximumPacketSize: 0x27,
} as const;

// ------------------------------------------------------ valid packets (generated)

export interface ConnectOptions {
  readonly clientId?: string;
  readonly clean?: boolean;
  readonly keepalive?: number;
  readonly username?: string;
  readonly password?: Buffer;
  readonly will?: IConnectPacket['will'];
  readonly properties?: IConnectPacket['properties'];
  /** Defaults to the name that goes with the version (MQIsdp for 3, MQTT otherwise). */
  readonly protocolId?: 'MQTT' | 'MQIsdp';
}

/** A well-formed CONNECT of this version, encoded by mqtt-packet. */
export function connectBytes(version: MqttVersion, options: ConnectOptions = {}): Buffer {
  const packet: IConnectPacket = {
    cmd: 'connect',
    protocolId: options.protocolId ?? (version === 3 ? 'MQIsdp' : 'MQTT'),
    protocolVersion: version,
    clientId: options.clientId ?? 'testkit',
    clean: options.clean ?? true,
    keepalive: options.keepalive ?? 60,
  };
  if (options.username !== undefined) packet.username = options.username;
  if (options.password !== undefined) packet.password = options.password;
  if (options.will !== undefined) packet.will = options.will;
  if (options.properties !== undefined) packet.properties = options.properties;
  return mqtt.generate(packet, { protocolVersion: version });
}

export interface PublishOptions {
  readonly topic: string;
  readonly payload?: Buffer | string;
  readonly qos?: 0 | 1 | 2;
  readonly messageId?: number;
  readonly retain?: boolean;
  readonly properties?: IPublishPacket['properties'];
}

export function publishBytes(version: MqttVersion, options: PublishOptions): Buffer {
  const qos = options.qos ?? 0;
  const packet: IPublishPacket = {
    cmd: 'publish',
    topic: options.topic,
    payload: options.payload ?? Buffer.alloc(0),
    qos,
    retain: options.retain ?? false,
    dup: false,
  };
  if (qos > 0) packet.messageId = options.messageId ?? 1;
  if (options.properties !== undefined) packet.properties = options.properties;
  return mqtt.generate(packet, { protocolVersion: version });
}

export function subscribeBytes(
  version: MqttVersion,
  subscriptions: ISubscription[],
  messageId = 1,
  properties?: ISubscribePacket['properties'],
): Buffer {
  const packet: ISubscribePacket = { cmd: 'subscribe', messageId, subscriptions };
  if (properties !== undefined) packet.properties = properties;
  return mqtt.generate(packet, { protocolVersion: version });
}

export function unsubscribeBytes(version: MqttVersion, unsubscriptions: string[], messageId = 1): Buffer {
  return mqtt.generate({ cmd: 'unsubscribe', messageId, unsubscriptions }, { protocolVersion: version });
}

export const pingreqBytes = (): Buffer => Buffer.from([0xc0, 0x00]);

/** Copy of `buf` with `byte` OR-ed into byte `index` (flags the generator would not set). */
export function withBits(buf: Buffer, index: number, bits: number): Buffer {
  const copy = Buffer.from(buf);
  copy[index] = copy[index]! | bits;
  return copy;
}

// --------------------------------------------------- hand-written CONNECT bytes

/**
 * A CONNECT built byte by byte: protocol name, level, flags and keep alive as given, then
 * (v5) the property block, then the payload bytes as given.
 */
export function rawConnect(options: {
  name?: readonly number[];
  level: number;
  flags: number;
  properties?: readonly number[];
  payload: readonly number[];
}): Buffer {
  const body = [...(options.name ?? utf8('MQTT')), options.level, options.flags, ...u16(60)];
  if (options.properties !== undefined) body.push(...options.properties);
  body.push(...options.payload);
  return fixed(0x10, body);
}

const CLEAN = 0x02;
const WILL = 0x04;
const WILL_QOS1 = 0x08;
const WILL_QOS2 = 0x10;
const WILL_RETAIN = 0x20;
const PASSWORD = 0x40;
const USERNAME = 0x80;

// ------------------------------------------------------------------ the table

const R = {
  malformed: 0x81,
  protocolError: 0x82,
  badAuthMethod: 0x8c,
  topicFilterInvalid: 0x8f,
  topicNameInvalid: 0x90,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
} as const;

const close: MalformedExpect = { kind: 'close' };
const disconnect = (reasonCode: number): MalformedExpect => ({ kind: 'disconnect', reasonCode });
const connack = (code: number): MalformedExpect => ({ kind: 'connack', code });

/** After CONNECT on 3.1.1 or 5.0: what a violation gets (3.1.1 close, 5.0 DISCONNECT code). */
function both(
  name: string,
  spec: string,
  bytes: (v: 4 | 5) => Buffer,
  v5ReasonCode: number = R.malformed,
  v5Spec = spec,
): MalformedCase[] {
  return [
    { name: `${name} (3.1.1)`, spec, version: 4, connectFirst: 4, bytes: bytes(4), expect: close },
    {
      name: `${name} (5.0)`,
      spec: v5Spec,
      version: 5,
      connectFirst: 5,
      bytes: bytes(5),
      expect: disconnect(v5ReasonCode),
    },
  ];
}

/** Properties (5.0) or nothing (3.1.1) in a variable header. */
const noProps = (v: 4 | 5): number[] => (v === 5 ? [0x00] : []);

const oversizedPayload = Buffer.alloc(malformedTableLimits.maxPacketSize, 0x61);

export const malformedPackets: readonly MalformedCase[] = [
  // ---------------------------------------------------- fixed header flags
  ...both('PUBREL with fixed-header flags 0000', 'MQTT-3.6.1-1', () => fixed(0x60, u16(1))),
  ...both('SUBSCRIBE with fixed-header flags 0000', 'MQTT-3.8.1-1', (v) =>
    fixed(0x80, [...u16(1), ...noProps(v), ...utf8('a'), 0x00]),
  ),
  ...both('UNSUBSCRIBE with fixed-header flags 0011', 'MQTT-3.10.1-1', (v) =>
    fixed(0xa3, [...u16(1), ...noProps(v), ...utf8('a')]),
  ),
  ...both('PINGREQ with fixed-header flags 0001', 'MQTT-2.2.2-2', () => Buffer.from([0xc1, 0x00])),
  ...both('PUBACK with fixed-header flags 0010', 'MQTT-2.2.2-2', () => fixed(0x42, u16(1))),
  ...both('PUBCOMP with fixed-header flags 1000', 'MQTT-2.2.2-2', () => fixed(0x78, u16(1))),
  {
    name: 'DISCONNECT with fixed-header flags 0100 (3.1.1)',
    spec: 'MQTT-2.2.2-2',
    version: 4,
    connectFirst: 4,
    bytes: Buffer.from([0xe4, 0x00]),
    expect: close,
  },
  {
    name: 'CONNECT with fixed-header flags 0001',
    spec: 'MQTT-2.2.2-2',
    version: 4,
    connectFirst: false,
    bytes: withBits(connectBytes(4, { clientId: 'flags' }), 0, 0x01),
    expect: close,
  },

  // ------------------------------------------------------------ packet types
  ...both('reserved packet type 0', '2.2.1 (type 0 is reserved)', () => Buffer.from([0x00, 0x00])),
  {
    name: 'packet type 15 on 3.1.1 (reserved there)',
    spec: '2.2.1 (3.1.1: type 15 is reserved)',
    version: 4,
    connectFirst: 4,
    bytes: fixed(0xf0, [0x00, 0x00]),
    expect: close,
  },
  {
    name: 'AUTH as the first packet',
    spec: 'MQTT-3.1.0-1',
    version: 5,
    connectFirst: false,
    bytes: fixed(0xf0, [0x18, ...props([Prop.authenticationMethod, ...utf8('SCRAM-SHA-1')])]),
    expect: close,
  },
  {
    name: 'AUTH with Remaining Length 0 (no Authentication Method) after a CONNECT without one',
    spec: 'MQTT-4.12.0-7',
    version: 5,
    connectFirst: 5,
    bytes: Buffer.from([0xf0, 0x00]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'AUTH re-authenticate (0x19) after a CONNECT without Authentication Method',
    spec: 'MQTT-4.12.0-7',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0xf0, [0x19, ...props([Prop.authenticationMethod, ...utf8('SCRAM-SHA-1')])]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'AUTH with reason code 0x05 (not an AUTH reason code)',
    spec: '3.15.2.1',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0xf0, [0x05, 0x00]),
    expect: disconnect(R.malformed),
  },
  ...both(
    'CONNACK sent by a client',
    'MQTT-4.8.0-1',
    (v) => fixed(0x20, v === 5 ? [0x00, 0x00, 0x00] : [0x00, 0x00]),
    R.protocolError,
    '3.2 (CONNACK goes from server to client)',
  ),

  // ------------------------------------------------------ Remaining Length
  ...both('Remaining Length of five bytes', '1.5.5 / 2.2.3 (at most four bytes)', () =>
    Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]),
  ),
  {
    name: 'CONNECT whose Remaining Length has four continuation bytes',
    spec: '2.2.3',
    version: 4,
    connectFirst: false,
    bytes: Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]),
    expect: close,
  },
  ...both('PUBLISH topic length beyond the Remaining Length', '2.2.3 / 1.5.3', () =>
    Buffer.from([0x30, 0x02, 0x00, 0x0a]),
  ),
  ...both('PUBACK with Remaining Length 1 (Packet Identifier cut short)', '3.4.2', () => fixed(0x40, [0x00])),
  ...both('PUBREC with Remaining Length 0', '3.5.2', () => fixed(0x50, [])),
  ...both('SUBSCRIBE topic filter without its options byte', '3.8.3', (v) =>
    fixed(0x82, [...u16(1), ...noProps(v), ...utf8('a')]),
  ),
  {
    name: 'PUBLISH Property Length beyond the packet',
    spec: '2.2.2.1',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), 0x05, Prop.messageExpiryInterval, 0x00, 0x00]),
    expect: disconnect(R.malformed),
  },
  {
    name: 'CONNECT Client Identifier length beyond the packet (3.1.1)',
    spec: 'MQTT-3.1.4-1',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN, payload: [...u16(10), 0x61, 0x62] }),
    expect: close,
  },
  {
    name: 'CONNECT Client Identifier length beyond the packet (5.0)',
    spec: 'MQTT-3.1.4-1',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN, properties: [0x00], payload: [...u16(10), 0x61, 0x62] }),
    expect: connack(R.malformed),
  },
  {
    name: 'CONNECT Property Length beyond the packet',
    spec: 'MQTT-3.1.4-1',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN, properties: [0x0a, Prop.sessionExpiryInterval, ...u32(10)], payload: [] }),
    expect: connack(R.malformed),
  },
  {
    name: 'CONNECT with will flag but no will topic',
    spec: 'MQTT-3.1.2-9',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN | WILL, payload: utf8('c') }),
    expect: close,
  },

  // --------------------------------------------------- QoS, DUP, packet ids
  ...both('PUBLISH with QoS 3', 'MQTT-3.3.1-4', (v) => fixed(0x36, [...utf8('t'), ...u16(1), ...noProps(v)])),
  ...both('PUBLISH QoS 0 with DUP set', 'MQTT-3.3.1-2', (v) => fixed(0x38, [...utf8('t'), ...noProps(v), 0x68, 0x69])),
  ...both(
    'PUBLISH QoS 1 with Packet Identifier 0',
    'MQTT-2.3.1-1',
    (v) => fixed(0x32, [...utf8('t'), 0x00, 0x00, ...noProps(v), 0x68]),
    R.malformed,
    'MQTT-2.2.1-3',
  ),
  ...both(
    'PUBLISH QoS 2 with Packet Identifier 0',
    'MQTT-2.3.1-1',
    (v) => fixed(0x34, [...utf8('t'), 0x00, 0x00, ...noProps(v), 0x68]),
    R.malformed,
    'MQTT-2.2.1-3',
  ),
  ...both(
    'SUBSCRIBE with Packet Identifier 0',
    'MQTT-2.3.1-1',
    (v) => fixed(0x82, [0x00, 0x00, ...noProps(v), ...utf8('a'), 0x00]),
    R.malformed,
    'MQTT-2.2.1-3',
  ),
  ...both(
    'UNSUBSCRIBE with Packet Identifier 0',
    'MQTT-2.3.1-1',
    (v) => fixed(0xa2, [0x00, 0x00, ...noProps(v), ...utf8('a')]),
    R.malformed,
    'MQTT-2.2.1-3',
  ),

  // ----------------------------------------------------------------- CONNECT
  {
    name: 'protocol name MQTX',
    spec: 'MQTT-3.1.2-1',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ name: utf8('MQTX'), level: 4, flags: CLEAN, payload: utf8('c') }),
    expect: close,
  },
  {
    name: 'protocol name "mqtt" (lower case) with level 5',
    spec: 'MQTT-3.1.2-1',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ name: utf8('mqtt'), level: 5, flags: CLEAN, properties: [0x00], payload: utf8('c') }),
    expect: close,
  },
  {
    name: 'protocol name MQIsdp with level 4',
    spec: 'MQTT-3.1.2-1, MQTT-3.1.2-2',
    version: 4,
    connectFirst: false,
    bytes: connectBytes(4, { clientId: 'name-level', protocolId: 'MQIsdp' }),
    expect: connack(0x01),
  },
  {
    name: 'protocol name MQTT with level 3',
    spec: 'MQTT-3.1.2-1, MQTT-3.1.2-2',
    version: 3,
    connectFirst: false,
    bytes: connectBytes(3, { clientId: 'name-level', protocolId: 'MQTT' }),
    expect: connack(0x01),
  },
  ...[6, 0, 2, 0x7f].map(
    (level): MalformedCase => ({
      name: `unsupported protocol level ${level}: CONNACK 0x01 in the 3.1.1 format`,
      spec: 'MQTT-3.1.2-2',
      version: 4,
      connectFirst: false,
      bytes: rawConnect({ name: utf8(level === 2 ? 'MQIsdp' : 'MQTT'), level, flags: CLEAN, payload: utf8('c') }),
      expect: connack(0x01),
    }),
  ),
  {
    name: 'CONNECT reserved flag set (3.1)',
    spec: 'MQTT-3.1.2-3',
    version: 3,
    connectFirst: false,
    bytes: rawConnect({ name: utf8('MQIsdp'), level: 3, flags: CLEAN | 0x01, payload: utf8('c') }),
    expect: close,
  },
  {
    name: 'CONNECT reserved flag set (3.1.1)',
    spec: 'MQTT-3.1.2-3',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN | 0x01, payload: utf8('c') }),
    expect: close,
  },
  {
    name: 'CONNECT reserved flag set (5.0)',
    spec: 'MQTT-3.1.2-3',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN | 0x01, properties: [0x00], payload: utf8('c') }),
    expect: connack(R.malformed),
  },
  {
    name: 'will flag 0 but will QoS 1 (3.1.1)',
    spec: 'MQTT-3.1.2-13',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN | WILL_QOS1, payload: utf8('c') }),
    expect: close,
  },
  {
    name: 'will flag 0 but will retain (3.1.1)',
    spec: 'MQTT-3.1.2-15',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN | WILL_RETAIN, payload: utf8('c') }),
    expect: close,
  },
  {
    name: 'will flag 0 but will QoS 2 (5.0)',
    spec: 'MQTT-3.1.2-11',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN | WILL_QOS2, properties: [0x00], payload: utf8('c') }),
    expect: connack(R.malformed),
  },
  {
    name: 'will flag 0 but will retain (5.0)',
    spec: 'MQTT-3.1.2-13',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN | WILL_RETAIN, properties: [0x00], payload: utf8('c') }),
    expect: connack(R.malformed),
  },
  {
    name: 'will QoS 3 (3.1.1)',
    spec: 'MQTT-3.1.2-14',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN | WILL | WILL_QOS1 | WILL_QOS2, payload: [...utf8('c'), ...utf8('w'), ...u16(0)] }),
    expect: close,
  },
  {
    name: 'will QoS 3 (5.0)',
    spec: '3.1.2.6 (Will QoS 3 is a Malformed Packet)',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({
      level: 5,
      flags: CLEAN | WILL | WILL_QOS1 | WILL_QOS2,
      properties: [0x00],
      payload: [...utf8('c'), 0x00, ...utf8('w'), ...u16(0)],
    }),
    expect: connack(R.malformed),
  },
  {
    name: 'password flag without user name flag (3.1.1)',
    spec: 'MQTT-3.1.2-22',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN | PASSWORD, payload: [...utf8('c'), ...utf8('secret')] }),
    expect: close,
  },
  {
    name: 'password flag without user name flag is allowed in 5.0',
    spec: '3.1.2.9 (5.0 has no MQTT-3.1.2-22)',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN | PASSWORD, properties: [0x00], payload: [...utf8('pw-only'), ...utf8('secret')] }),
    expect: connack(0x00),
  },
  {
    name: 'Client Identifier is ill-formed UTF-8 (3.1.1)',
    spec: 'MQTT-1.5.3-1',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN, payload: rawString([0xc3, 0x28]) }),
    expect: close,
  },
  {
    name: 'Client Identifier is ill-formed UTF-8 (5.0)',
    spec: 'MQTT-1.5.4-1',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN, properties: [0x00], payload: rawString([0xc3, 0x28]) }),
    expect: connack(R.malformed),
  },
  {
    name: 'Client Identifier contains U+0000 (3.1.1)',
    spec: 'MQTT-1.5.3-2',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN, payload: rawString([0x61, 0x00, 0x62]) }),
    expect: close,
  },
  {
    name: 'User Name is an encoded surrogate (ill-formed UTF-8, 3.1.1)',
    spec: 'MQTT-1.5.3-1',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: CLEAN | USERNAME, payload: [...utf8('c'), ...rawString([0xed, 0xa0, 0x80])] }),
    expect: close,
  },
  {
    name: 'Will Topic is ill-formed UTF-8 (5.0)',
    spec: 'MQTT-1.5.4-1',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({
      level: 5,
      flags: CLEAN | WILL,
      properties: [0x00],
      payload: [...utf8('c'), 0x00, ...rawString([0x77, 0xff]), ...u16(0)],
    }),
    expect: connack(R.malformed),
  },
  {
    name: 'Will Topic with a wildcard (5.0)',
    spec: 'MQTT-3.3.2-2 (3.1.3.3)',
    version: 5,
    connectFirst: false,
    bytes: connectBytes(5, { clientId: 'will-wild', will: { topic: 'a/#', payload: Buffer.from('x'), qos: 0, retain: false } }),
    expect: connack(R.topicNameInvalid),
  },
  {
    name: 'empty Client Identifier with clean session 0 (3.1.1)',
    spec: 'MQTT-3.1.3-8',
    version: 4,
    connectFirst: false,
    bytes: rawConnect({ level: 4, flags: 0x00, payload: u16(0) }),
    expect: connack(0x02),
  },
  {
    name: 'empty Client Identifier on 3.1',
    spec: '3.1 (Client Identifier of 1 to 23 characters)',
    version: 3,
    connectFirst: false,
    bytes: rawConnect({ name: utf8('MQIsdp'), level: 3, flags: CLEAN, payload: u16(0) }),
    expect: connack(0x02),
  },
  {
    name: 'Receive Maximum 0',
    spec: '3.1.2.11.3',
    version: 5,
    connectFirst: false,
    bytes: connectBytes(5, { clientId: 'rm0', properties: { receiveMaximum: 0 } }),
    expect: connack(R.protocolError),
  },
  {
    name: 'Maximum Packet Size 0',
    spec: '3.1.2.11.4',
    version: 5,
    connectFirst: false,
    bytes: connectBytes(5, { clientId: 'mps0', properties: { maximumPacketSize: 0 } }),
    expect: connack(R.protocolError),
  },
  {
    name: 'Session Expiry Interval twice in CONNECT',
    spec: '3.1.2.11.2',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({
      level: 5,
      flags: CLEAN,
      properties: props([Prop.sessionExpiryInterval, ...u32(10)], [Prop.sessionExpiryInterval, ...u32(20)]),
      payload: utf8('c'),
    }),
    expect: connack(R.protocolError),
  },
  {
    name: 'Authentication Data without Authentication Method',
    spec: '3.1.2.11.10',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN, properties: props([Prop.authenticationData, ...rawString([1, 2])]), payload: utf8('c') }),
    expect: connack(R.protocolError),
  },
  {
    name: 'Authentication Method the server does not support',
    spec: '4.12 (CONNACK 0x8C)',
    version: 5,
    connectFirst: false,
    bytes: connectBytes(5, { clientId: 'auth-method', properties: { authenticationMethod: 'SCRAM-SHA-1' } }),
    expect: connack(R.badAuthMethod),
  },
  {
    name: 'Topic Alias property in CONNECT',
    spec: '2.2.2.2 (identifier not valid for the packet type)',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN, properties: props([Prop.topicAlias, ...u16(1)]), payload: utf8('c') }),
    expect: connack(R.malformed),
  },
  {
    name: 'Receive Maximum in the Will Properties',
    spec: '3.1.3.2 (identifier not valid for Will Properties)',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({
      level: 5,
      flags: CLEAN | WILL,
      properties: [0x00],
      payload: [...utf8('c'), ...props([Prop.receiveMaximum, ...u16(5)]), ...utf8('w'), ...u16(0)],
    }),
    expect: connack(R.malformed),
  },
  {
    name: 'unknown property identifier 0x7F in CONNECT',
    spec: '2.2.2.2',
    version: 5,
    connectFirst: false,
    bytes: rawConnect({ level: 5, flags: CLEAN, properties: props([0x7f, 0x00]), payload: utf8('c') }),
    expect: connack(R.malformed),
  },
  {
    name: 'oversized CONNECT refused on its fixed header',
    spec: '3.1.4 / 4.13',
    version: 5,
    connectFirst: false,
    bytes: Buffer.from([0x10, ...varInt(100_000)]),
    expect: close,
  },

  // ----------------------------------------------------- PUBLISH topic names
  ...both(
    'PUBLISH topic is ill-formed UTF-8',
    'MQTT-1.5.3-1',
    (v) => fixed(0x30, [...rawString([0x61, 0xff]), ...noProps(v), 0x68]),
    R.malformed,
    'MQTT-1.5.4-1',
  ),
  ...both(
    'PUBLISH topic contains U+0000',
    'MQTT-1.5.3-2',
    (v) => fixed(0x30, [...rawString([0x61, 0x00, 0x62]), ...noProps(v), 0x68]),
    R.malformed,
    'MQTT-1.5.4-2',
  ),
  ...both('PUBLISH topic with the + wildcard', 'MQTT-3.3.2-2', (v) => publishBytes(v, { topic: 'a/+/c' }), R.topicNameInvalid),
  ...both('PUBLISH topic with the # wildcard', 'MQTT-3.3.2-2', (v) => publishBytes(v, { topic: 'a/#' }), R.topicNameInvalid),
  ...both(
    'PUBLISH with an empty topic and no Topic Alias',
    'MQTT-4.7.3-1',
    (v) => fixed(0x30, [...u16(0), ...noProps(v), 0x68]),
    R.protocolError,
    '3.3.2.1 (zero-length Topic Name without Topic Alias)',
  ),
  {
    name: 'Topic Alias 0',
    spec: 'MQTT-3.3.2-8',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), ...props([Prop.topicAlias, ...u16(0)])]),
    expect: disconnect(R.topicAliasInvalid),
  },
  {
    name: 'Topic Alias above the Topic Alias Maximum',
    spec: 'MQTT-3.3.2-9',
    version: 5,
    connectFirst: 5,
    bytes: publishBytes(5, { topic: 't', properties: { topicAlias: malformedTableLimits.topicAliasMaximum + 1 } }),
    expect: disconnect(R.topicAliasInvalid),
  },
  {
    name: 'unknown Topic Alias with an empty topic',
    spec: '3.3.2.3.4',
    version: 5,
    connectFirst: 5,
    bytes: publishBytes(5, { topic: '', properties: { topicAlias: 3 } }),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'Topic Alias twice in PUBLISH',
    spec: '3.3.2.3.4',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), ...props([Prop.topicAlias, ...u16(1)], [Prop.topicAlias, ...u16(2)])]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'Subscription Identifier in a PUBLISH from a client',
    spec: 'MQTT-3.3.4-6',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), ...props([Prop.subscriptionIdentifier, 0x01])]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'Message Expiry Interval twice in PUBLISH',
    spec: '3.3.2.3.3',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [
      ...utf8('t'),
      ...props([Prop.messageExpiryInterval, ...u32(10)], [Prop.messageExpiryInterval, ...u32(20)]),
    ]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'Session Expiry Interval in PUBLISH (not a PUBLISH property)',
    spec: '2.2.2.2 (identifier not valid for the packet type)',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), ...props([Prop.sessionExpiryInterval, ...u32(10)])]),
    expect: disconnect(R.malformed),
  },
  {
    name: 'unknown property identifier 0x7F in PUBLISH',
    spec: '2.2.2.2',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), ...props([0x7f, 0x00])]),
    expect: disconnect(R.malformed),
  },
  {
    name: 'User Property name is ill-formed UTF-8',
    spec: 'MQTT-1.5.4-1',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), ...props([Prop.userProperty, ...rawString([0xc0, 0xaf]), ...utf8('v')])]),
    expect: disconnect(R.malformed),
  },
  {
    name: 'Content Type contains U+0000',
    spec: 'MQTT-1.5.4-2',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x30, [...utf8('t'), ...props([Prop.contentType, ...rawString([0x74, 0x00])])]),
    expect: disconnect(R.malformed),
  },
  ...both(
    'PUBLISH larger than the server Maximum Packet Size',
    'implementation limit (3.1.1 has no Maximum Packet Size)',
    (v) => publishBytes(v, { topic: 't', payload: oversizedPayload }),
    R.packetTooLarge,
    'MQTT-3.2.2-15',
  ),
  ...both(
    'only the fixed header of an oversized PUBLISH',
    'implementation limit (refused as soon as the header arrives)',
    () => Buffer.from([0x30, ...varInt(100_000)]),
    R.packetTooLarge,
    'MQTT-3.2.2-15',
  ),

  // --------------------------------------------------- SUBSCRIBE, UNSUBSCRIBE
  ...both(
    'SUBSCRIBE without topic filters',
    'MQTT-3.8.3-3',
    (v) => fixed(0x82, [...u16(1), ...noProps(v)]),
    R.protocolError,
    'MQTT-3.8.3-2',
  ),
  ...both(
    'UNSUBSCRIBE without topic filters',
    'MQTT-3.10.3-2',
    (v) => fixed(0xa2, [...u16(1), ...noProps(v)]),
    R.protocolError,
    'MQTT-3.10.3-2',
  ),
  {
    name: 'SUBSCRIBE options reserved bits 7-2 set (3.1.1)',
    spec: 'MQTT-3.8.3-4',
    version: 4,
    connectFirst: 4,
    bytes: fixed(0x82, [...u16(1), ...utf8('a'), 0x04]),
    expect: close,
  },
  {
    name: 'SUBSCRIBE options reserved bits 7-6 set (5.0)',
    spec: 'MQTT-3.8.3-5',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x82, [...u16(1), 0x00, ...utf8('a'), 0x40]),
    expect: disconnect(R.malformed),
  },
  ...both(
    'SUBSCRIBE requesting QoS 3',
    'MQTT-3.8.3-4',
    (v) => fixed(0x82, [...u16(1), ...noProps(v), ...utf8('a'), 0x03]),
    R.protocolError,
    '3.8.3.1 (Maximum QoS 3 is a Protocol Error)',
  ),
  {
    name: 'SUBSCRIBE with Retain Handling 3',
    spec: '3.8.3.1 (Retain Handling 3 is a Protocol Error)',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x82, [...u16(1), 0x00, ...utf8('a'), 0x30]),
    expect: disconnect(R.protocolError),
  },
  {
    name: "topic filter 'a/#/b' (# not last)",
    spec: 'MQTT-4.7.1-2',
    version: 4,
    connectFirst: 4,
    bytes: subscribeBytes(4, [{ topic: 'a/#/b', qos: 0 }]),
    expect: { kind: 'suback', codes: [0x80] },
  },
  {
    name: "topic filter 'a+' (+ not a whole level)",
    spec: 'MQTT-4.7.1-2',
    version: 5,
    connectFirst: 5,
    bytes: subscribeBytes(5, [{ topic: 'a+', qos: 0 }]),
    expect: { kind: 'suback', codes: [R.topicFilterInvalid] },
  },
  {
    name: "topic filter '#a'",
    spec: 'MQTT-4.7.1-1',
    version: 5,
    connectFirst: 5,
    bytes: subscribeBytes(5, [{ topic: '#a', qos: 1 }]),
    expect: { kind: 'suback', codes: [R.topicFilterInvalid] },
  },
  {
    name: 'one invalid topic filter among valid ones gets its own failure code',
    spec: 'MQTT-3.8.4-5, MQTT-3.9.3-1',
    version: 4,
    connectFirst: 4,
    bytes: subscribeBytes(4, [
      { topic: 'ok/+', qos: 1 },
      { topic: 'a/#/b', qos: 0 },
      { topic: 'x/#', qos: 2 },
    ]),
    expect: { kind: 'suback', codes: [0x01, 0x80, 0x02] },
  },
  {
    name: 'empty topic filter',
    spec: 'MQTT-4.7.3-1',
    version: 4,
    connectFirst: 4,
    bytes: fixed(0x82, [...u16(1), ...u16(0), 0x00]),
    expect: { kind: 'suback', codes: [0x80] },
  },
  {
    name: "shared subscription with an empty ShareName ('$share//a')",
    spec: 'MQTT-4.8.2-1',
    version: 5,
    connectFirst: 5,
    bytes: subscribeBytes(5, [{ topic: '$share//a', qos: 0 }]),
    expect: { kind: 'suback', codes: [R.topicFilterInvalid] },
  },
  {
    name: 'No Local on a shared subscription',
    spec: 'MQTT-3.8.3-4',
    version: 5,
    connectFirst: 5,
    bytes: subscribeBytes(5, [{ topic: '$share/g/a', qos: 0, nl: true, rap: false, rh: 0 }]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'Subscription Identifier 0',
    spec: '3.8.2.1.2',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x82, [...u16(1), ...props([Prop.subscriptionIdentifier, 0x00]), ...utf8('a'), 0x00]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'Subscription Identifier twice',
    spec: '3.8.2.1.2',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x82, [
      ...u16(1),
      ...props([Prop.subscriptionIdentifier, 0x01], [Prop.subscriptionIdentifier, 0x02]),
      ...utf8('a'),
      0x00,
    ]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'Message Expiry Interval in SUBSCRIBE (not a SUBSCRIBE property)',
    spec: '2.2.2.2 (identifier not valid for the packet type)',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x82, [...u16(1), ...props([Prop.messageExpiryInterval, ...u32(5)]), ...utf8('a'), 0x00]),
    expect: disconnect(R.malformed),
  },
  ...both(
    'topic filter contains U+0000',
    'MQTT-1.5.3-2',
    (v) => fixed(0x82, [...u16(1), ...noProps(v), ...rawString([0x61, 0x00]), 0x00]),
    R.malformed,
    'MQTT-1.5.4-2',
  ),
  {
    name: 'UNSUBSCRIBE topic filter is ill-formed UTF-8 (3.1.1)',
    spec: 'MQTT-1.5.3-1',
    version: 4,
    connectFirst: 4,
    bytes: fixed(0xa2, [...u16(1), ...rawString([0xf8, 0x88, 0x80, 0x80, 0x80])]),
    expect: close,
  },
  {
    name: "UNSUBSCRIBE topic filter '#a'",
    spec: '3.11.3 (0x8F Topic Filter invalid)',
    version: 5,
    connectFirst: 5,
    bytes: unsubscribeBytes(5, ['#a']),
    expect: { kind: 'unsuback', codes: [R.topicFilterInvalid] },
  },

  // ---------------------------------------------------- order and state
  ...both('a second CONNECT', 'MQTT-3.1.0-2', (v) => connectBytes(v, { clientId: 'second' }), R.protocolError),
  {
    name: 'PUBLISH before CONNECT',
    spec: 'MQTT-3.1.0-1',
    version: 4,
    connectFirst: false,
    bytes: publishBytes(4, { topic: 't', payload: 'x' }),
    expect: close,
  },
  {
    name: 'PINGREQ before CONNECT',
    spec: 'MQTT-3.1.0-1',
    version: 4,
    connectFirst: false,
    bytes: pingreqBytes(),
    expect: close,
  },
  {
    name: 'SUBSCRIBE before CONNECT',
    spec: 'MQTT-3.1.0-1',
    version: 5,
    connectFirst: false,
    bytes: subscribeBytes(5, [{ topic: 'a', qos: 0 }]),
    expect: close,
  },
  ...both('PINGREQ with Remaining Length 1', '3.12 (no variable header, no payload)', () => fixed(0xc0, [0x00])),
  {
    name: 'DISCONNECT with Remaining Length 1 (3.1.1)',
    spec: '3.14 (no variable header, no payload)',
    version: 4,
    connectFirst: 4,
    bytes: fixed(0xe0, [0x00]),
    expect: close,
  },
  {
    name: 'DISCONNECT sets a Session Expiry Interval when CONNECT had 0',
    spec: 'MQTT-3.14.2-2',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0xe0, [0x00, ...props([Prop.sessionExpiryInterval, ...u32(60)])]),
    expect: disconnect(R.protocolError),
  },
  {
    name: 'DISCONNECT with reason code 0x03 (not a DISCONNECT reason code)',
    spec: '3.14.2.1',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0xe0, [0x03, 0x00]),
    expect: disconnect(R.malformed),
  },
  {
    name: 'PUBREL with reason code 0x10 (not a PUBREL reason code)',
    spec: '3.6.2.1',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x62, [...u16(1), 0x10, 0x00]),
    expect: disconnect(R.malformed),
  },
  {
    name: 'PUBACK with Message Expiry Interval (not a PUBACK property)',
    spec: '2.2.2.2 (identifier not valid for the packet type)',
    version: 5,
    connectFirst: 5,
    bytes: fixed(0x40, [...u16(1), 0x00, ...props([Prop.messageExpiryInterval, ...u32(1)])]),
    expect: disconnect(R.malformed),
  },
];

