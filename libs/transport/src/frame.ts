import mqtt, { type IPublishPacket, type Packet, type Parser } from 'mqtt-packet';
import type { ProtocolVersion } from '@fleetmq/protocol';

/**
 * The hot half of the wire format, written here instead of going through mqtt-packet for
 * every packet: splitting a byte stream into whole packets, and encoding the packets a
 * broker sends most (PUBLISH without properties, the two-byte acknowledgements).
 * Everything else still goes through mqtt-packet.
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

function settingsOf(connect: object): object {
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

/** The first byte of a PUBLISH or of an acknowledgement: decodeFast may read it. */
export function isFastCandidate(first: number): boolean {
  return first >> 4 === 3 || ACK_COMMANDS[first] !== undefined;
}

/**
 * The packets of the per-message path decoded here, into the objects mqtt-packet's parser
 * makes: a PUBLISH without properties (MQTT 5: property length 0) and an acknowledgement
 * of remaining length 2. Undefined for anything else, and for anything not well formed, so
 * that mqtt-packet parses it and reports the error as it always does. (mqtt-packet spends
 * about a fifth of a QoS 1 message's broker time in its state machine, buffer list and
 * disabled debug calls.)
 */
export function decodeFast(buf: Buffer, start: number, headerSize: number, remaining: number, version: ProtocolVersion): Packet | undefined {
  const first = buf[start]!;
  const end = start + headerSize + remaining;
  let o = start + headerSize;
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
