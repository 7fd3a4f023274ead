import mqtt, { type IConnectPacket, type IPublishPacket, type Packet, type Parser } from 'mqtt-packet';
import type { ProtocolVersion } from '@fleetmq/protocol';

/**
 * The hot half of the wire format, written here instead of going through mqtt-packet for
 * every packet: splitting a byte stream into whole packets, and encoding the packets a
 * broker sends most (PUBLISH without properties, the two-byte acknowledgements), and the
 * CONNECT and 3.x CONNACK of every connection. Everything else still goes through mqtt-packet.
 */

// mqtt-packet's encoder builds a cache of 65,536 two-byte Buffers (about 6 MB of heap) the
// first time it writes a packet identifier; the broker writes identifiers here instead
(mqtt as unknown as { writeToStream: { cacheNumbers: boolean } }).writeToStream.cacheNumbers = false;

export function varIntLength(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** Whole packet size (fixed header included) for a remaining length. */
export function wholeSize(remainingLength: number): number {
  return 1 + varIntLength(remainingLength) + remainingLength;
}

/**
 * The fixed header at `offset`: the remaining length and the header's size, or undefined
 * while it is incomplete, or -1 when the length takes more than four bytes (malformed).
 */
export function readFixedHeader(buf: Buffer, offset: number): { remaining: number; headerSize: number } | undefined | -1 {
  let value = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    if (offset + i >= buf.length) return undefined;
    const byte = buf[offset + i]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { remaining: value, headerSize: 1 + i };
    multiplier *= 128;
  }
  return -1;
}

/**
 * One mqtt-packet parser for every connection (a parser with its buffer list is about 1 KiB
 * per connection otherwise). Connections hand it whole packets only, so it holds no state
 * between calls but the protocol settings, which each connection keeps and lends it.
 */
export interface FrameSink {
  parserSettings: object;
  onFramePacket(packet: Packet): void;
  onFrameError(err: Error, partial: Partial<Packet> & { length: number; protocolVersion?: number }): void;
}

let shared: Parser | undefined;
let current: FrameSink | undefined;

function newParser(): Parser {
  const p = mqtt.parser();
  p.on('packet', (packet: Packet) => current?.onFramePacket(packet));
  p.on('error', (err: Error) => current?.onFrameError(err, (p as unknown as { packet: Partial<Packet> & { length: number } }).packet));
  return p;
}

/** The parser settings of each protocol version (and 3.1.1 bridge mode), shared by all connections. */
const SETTINGS = new Map<string, object>();

/** The parser settings a CONNECT sets for the packets after it (decodeFast reads CONNECT itself). */
export function settingsOf(connect: object): object {
  const { protocolVersion, bridgeMode } = connect as { protocolVersion?: number; bridgeMode?: boolean };
  const key = `${protocolVersion}/${bridgeMode === true}`;
  let settings = SETTINGS.get(key);
  if (settings === undefined) {
    settings = Object.freeze({ protocolVersion, bridgeMode: bridgeMode === true });
    SETTINGS.set(key, settings);
  }
  return settings;
}

/** Parses whole packets (`frames` holds nothing else) for `sink`, synchronously. */
export function parseFrames(sink: FrameSink, frames: Buffer): void {
  // a packet handler that feeds another connection synchronously (in-process streams) gets a
  // parser of its own for that call
  const reentrant = current !== undefined;
  const parser = reentrant ? newParser() : (shared ??= newParser());
  const previous = current;
  current = sink;
  const state = parser as unknown as { settings: object; error: Error | null; _list: { length: number } };
  state.settings = sink.parserSettings;
  try {
    parser.parse(frames);
  } finally {
    // mqtt-packet makes the CONNECT packet its settings: keep only what it reads from them
    if (state.settings !== sink.parserSettings) sink.parserSettings = settingsOf(state.settings);
    current = previous;
    // whatever an error left behind is not carried into another connection's packets
    if (!reentrant && (state.error !== null || state._list.length !== 0)) shared = undefined;
  }
}

const ACK_COMMANDS: Readonly<Record<number, 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'>> = {
  0x40: 'puback',
  0x50: 'pubrec',
  0x62: 'pubrel',
  0x70: 'pubcomp',
};

/** The first byte of a PUBLISH, an acknowledgement or a CONNECT: decodeFast may read it. */
export function isFastCandidate(first: number): boolean {
  return first >> 4 === 3 || ACK_COMMANDS[first] !== undefined || first === 0x10;
}

/**
 * The packets of the per-message path decoded here, into the objects mqtt-packet's parser
 * makes: a PUBLISH without properties (MQTT 5: property length 0), an acknowledgement of
 * remaining length 2, and a CONNECT (see decodeConnect). Undefined for anything else, and for
 * anything not well formed, so that mqtt-packet parses it and reports the error as it always
 * does. (mqtt-packet spends about a fifth of a QoS 1 message's broker time in its state
 * machine, buffer list and disabled debug calls, and allocates about 12 KB per CONNECT.)
 */
export function decodeFast(buf: Buffer, start: number, headerSize: number, remaining: number, version: ProtocolVersion): Packet | undefined {
  const first = buf[start]!;
  const end = start + headerSize + remaining;
  let o = start + headerSize;
  if (first === 0x10) return decodeConnect(buf, o, end, remaining);
  if (first >> 4 === 3) {
    const qos = (first >> 1) & 3;
    if (qos === 3 || remaining < 2) return undefined;
    const topicEnd = o + 2 + ((buf[o]! << 8) | buf[o + 1]!);
    if (topicEnd > end) return undefined;
    const topic = buf.toString('utf8', o + 2, topicEnd);
    o = topicEnd;
    let messageId: number | undefined;
    if (qos > 0) {
      if (o + 2 > end) return undefined;
      messageId = (buf[o]! << 8) | buf[o + 1]!;
      o += 2;
    }
    if (version === 5) {
      if (o >= end || buf[o] !== 0) return undefined;
      o += 1;
    }
    const packet: IPublishPacket & { length: number } = {
      cmd: 'publish',
      retain: (first & 0x01) !== 0,
      qos: qos as 0 | 1 | 2,
      dup: (first & 0x08) !== 0,
      length: remaining,
      topic,
      payload: buf.subarray(o, end),
    };
    if (messageId !== undefined) packet.messageId = messageId;
    return packet;
  }
  const cmd = ACK_COMMANDS[first];
  if (cmd === undefined || remaining !== 2) return undefined;
  const packet = { cmd, retain: false, qos: first === 0x62 ? 1 : 0, dup: false, length: 2, topic: null, payload: null, messageId: (buf[o]! << 8) | buf[o + 1]! } as unknown as Packet;
  if (version === 5) (packet as { reasonCode?: number }).reasonCode = 0;
  return packet;
}

/** A length-prefixed field of CONNECT at `o`: its end, or -1 when it runs past `end`. */
function fieldEnd(buf: Buffer, o: number, end: number): number {
  if (o + 2 > end) return -1;
  const e = o + 2 + ((buf[o]! << 8) | buf[o + 1]!);
  return e > end ? -1 : e;
}

/**
 * A CONNECT of MQTT 3.1, 3.1.1 or 5.0 into the object mqtt-packet's parser makes, for what
 * nearly every client sends: MQTT 5 only without CONNECT and will properties (property
 * lengths 0), no bridge bit in the level, flags and fields well formed and filling the packet
 * exactly. Anything else is left to mqtt-packet. The will payload is copied (a view would keep
 * the read chunk alive for the connection's life); the password is a view, as mqtt-packet's.
 */
function decodeConnect(buf: Buffer, o: number, end: number, remaining: number): Packet | undefined {
  const nameEnd = fieldEnd(buf, o, end);
  if (nameEnd === -1 || nameEnd + 4 > end) return undefined;
  const nameLength = nameEnd - o - 2;
  let protocolId: 'MQTT' | 'MQIsdp';
  if (nameLength === 4 && buf[o + 2] === 0x4d && buf[o + 3] === 0x51 && buf[o + 4] === 0x54 && buf[o + 5] === 0x54) protocolId = 'MQTT';
  else if (nameLength === 6 && buf.toString('latin1', o + 2, nameEnd) === 'MQIsdp') protocolId = 'MQIsdp';
  else return undefined;
  o = nameEnd;
  const level = buf[o++]!;
  if (level !== 3 && level !== 4 && level !== 5) return undefined;
  const flags = buf[o++]!;
  const willFlag = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  if ((flags & 0x01) !== 0 || willQos === 3 || (!willFlag && (flags & 0x38) !== 0)) return undefined;
  const keepalive = (buf[o]! << 8) | buf[o + 1]!;
  o += 2;
  if (level === 5) {
    if (o >= end || buf[o] !== 0) return undefined;
    o += 1;
  }
  const idEnd = fieldEnd(buf, o, end);
  if (idEnd === -1) return undefined;
  const packet: IConnectPacket & { length: number; retain: false; qos: 0; dup: false; topic: null; payload: null } = {
    cmd: 'connect',
    retain: false,
    qos: 0,
    dup: false,
    length: remaining,
    topic: null,
    payload: null,
    protocolId,
    protocolVersion: level,
    clean: (flags & 0x02) !== 0,
    keepalive,
    clientId: buf.toString('utf8', o + 2, idEnd),
  };
  o = idEnd;
  if (willFlag) {
    if (level === 5) {
      if (o >= end || buf[o] !== 0) return undefined;
      o += 1;
    }
    const topicEnd = fieldEnd(buf, o, end);
    if (topicEnd === -1) return undefined;
    const topic = buf.toString('utf8', o + 2, topicEnd);
    const payloadEnd = fieldEnd(buf, topicEnd, end);
    if (payloadEnd === -1) return undefined;
    packet.will = { retain: (flags & 0x20) !== 0, qos: willQos as 0 | 1 | 2, topic, payload: Buffer.from(buf.subarray(topicEnd + 2, payloadEnd)) };
    o = payloadEnd;
  }
  if ((flags & 0x80) !== 0) {
    const userEnd = fieldEnd(buf, o, end);
    if (userEnd === -1) return undefined;
    packet.username = buf.toString('utf8', o + 2, userEnd);
    o = userEnd;
  }
  if ((flags & 0x40) !== 0) {
    const passwordEnd = fieldEnd(buf, o, end);
    if (passwordEnd === -1) return undefined;
    packet.password = buf.subarray(o + 2, passwordEnd);
    o = passwordEnd;
  }
  return o === end ? packet : undefined;
}

/**
 * A CONNACK of MQTT 3.1 or 3.1.1 (four bytes), or undefined for MQTT 5 (mqtt-packet encodes
 * its properties) and for one without a return code.
 */
export function encodeConnack3(packet: Packet, version: ProtocolVersion): Buffer | undefined {
  if (packet.cmd !== 'connack' || version === 5 || typeof packet.returnCode !== 'number') return undefined;
  const buf = Buffer.allocUnsafe(4);
  buf[0] = 0x20;
  buf[1] = 2;
  // MQTT 3.1 reserves this byte; as mqtt-packet does, the flag is sent to 3.1 clients
  // too (paho and mqtt.js read it, and our persistent-session tests for 3.1 rely on it)
  buf[2] = packet.sessionPresent ? 1 : 0;
  buf[3] = packet.returnCode;
  return buf;
}

const ACK_HEADER: Readonly<Record<string, number>> = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 };

/**
 * A PUBACK, PUBREC, PUBREL or PUBCOMP with only a packet ID (all of 3.x, and MQTT 5's short
 * form for reason code 0 without properties, 3.4.2.1), or undefined for any other packet.
 */
export function encodeShortAck(packet: Packet): Buffer | undefined {
  const header = ACK_HEADER[packet.cmd];
  if (header === undefined) return undefined;
  const p = packet as { messageId?: number; reasonCode?: number; properties?: object };
  if ((p.reasonCode !== undefined && p.reasonCode !== 0) || p.properties !== undefined) return undefined;
  const id = p.messageId ?? 0;
  const buf = Buffer.allocUnsafe(4);
  buf[0] = header;
  buf[1] = 2;
  buf[2] = id >> 8;
  buf[3] = id & 0xff;
  return buf;
}

/**
 * A PUBLISH without properties, in one buffer; undefined when it has properties (mqtt-packet
 * encodes those). MQTT 5 writes a property length of 0.
 */
export function encodePlainPublish(packet: IPublishPacket, version: ProtocolVersion): Buffer | undefined {
  if (packet.properties !== undefined) return undefined;
  const payload = packet.payload;
  if (typeof payload === 'string') return undefined;
  const topicLength = Buffer.byteLength(packet.topic);
  const qos = packet.qos;
  const remaining = 2 + topicLength + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payload.length;
  if (remaining > 268_435_455) return undefined;
  const buf = Buffer.allocUnsafe(1 + varIntLength(remaining) + remaining);
  buf[0] = 0x30 | (packet.dup === true ? 0x08 : 0) | (qos << 1) | (packet.retain ? 0x01 : 0);
  let o = 1;
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buf[o++] = byte;
  } while (n > 0);
  buf[o++] = topicLength >> 8;
  buf[o++] = topicLength & 0xff;
  o += buf.write(packet.topic, o, 'utf8');
  if (qos > 0) {
    const id = packet.messageId ?? 0;
    buf[o++] = id >> 8;
    buf[o++] = id & 0xff;
  }
  if (version === 5) buf[o++] = 0;
  payload.copy(buf, o);
  return buf;
}

/**
 * The last QoS 0 PUBLISH encoded, per protocol version: a fan-out hands every subscriber
 * the same topic, payload and properties objects, so one encode serves every subscriber that
 * gets identical bytes (no packet ID, no topic alias, no subscription identifiers, no
 * message expiry: the channel passes those as new properties objects, which miss).
 */
interface EncodedPublish {
  topic: string;
  payload: Buffer | string;
  properties: object | undefined;
  retain: boolean;
  bytes: Buffer;
}

const lastQos0: (EncodedPublish | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];

/** Counters of the shared encode (for the microbenchmarks and tests). */
export const encodeStats = { publishEncoded: 0, publishShared: 0 };

/** Encodes a PUBLISH, reusing the bytes of the previous one when they are identical. */
export function encodePublish(packet: IPublishPacket, version: ProtocolVersion, options: { protocolVersion: ProtocolVersion }): Buffer {
  if (packet.qos === 0 && packet.dup !== true) {
    const last = lastQos0[version];
    if (
      last !== undefined &&
      last.payload === packet.payload &&
      last.topic === packet.topic &&
      last.properties === packet.properties &&
      last.retain === packet.retain
    ) {
      encodeStats.publishShared++;
      return last.bytes;
    }
    const bytes = encodePlainPublish(packet, version) ?? mqtt.generate(packet, options);
    encodeStats.publishEncoded++;
    lastQos0[version] = { topic: packet.topic, payload: packet.payload, properties: packet.properties, retain: packet.retain, bytes };
    return bytes;
  }
  encodeStats.publishEncoded++;
  return encodePlainPublish(packet, version) ?? mqtt.generate(packet, options);
}
