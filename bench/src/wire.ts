/**
 * MQTT 3.1.1 on the wire for the load runner: packets are built once with `mqtt-packet`
 * (`generate`) and then copied and patched in place, and incoming bytes are split into frames
 * by a reader that allocates nothing per packet. Only what the runner receives is decoded:
 * CONNACK, SUBACK, PUBLISH (topic skipped, packet ID and the payload's stream, sequence and
 * timestamp read at fixed offsets) and PUBACK.
 *
 * Payload layout of every benchmark message (`PAYLOAD_BYTES` = 64 bytes by default):
 *   0..3   stream   u32 BE  (one stream per publisher)
 *   4..7   sequence u32 BE  (0, 1, 2… per stream)
 *   8..15  sent at  f64 BE  (performance.now() in ms, for latency)
 *   16..   filler
 */
import mqttPacket from 'mqtt-packet';

export const PAYLOAD_BYTES = 64;
export const PAYLOAD_STREAM = 0;
export const PAYLOAD_SEQ = 4;
export const PAYLOAD_TIME = 8;
const PAYLOAD_HEADER = 16;

export const PacketType = {
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  SUBACK: 9,
  PINGRESP: 13,
} as const;

export interface ConnectOptions {
  readonly clientId: string;
  /** Clean session (3.1.1); default true. */
  readonly clean?: boolean;
  /** Seconds; 0 disables keep alive (the default here: idle clients never ping). */
  readonly keepalive?: number;
}

export function connectPacket(options: ConnectOptions): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: options.clientId,
    clean: options.clean ?? true,
    keepalive: options.keepalive ?? 0,
  });
}

export function subscribePacket(packetId: number, topicFilter: string, qos: 0 | 1): Buffer {
  return mqttPacket.generate({ cmd: 'subscribe', messageId: packetId, subscriptions: [{ topic: topicFilter, qos }] });
}

export function pubackPacket(packetId: number): Buffer {
  return Buffer.from([0x40, 0x02, packetId >> 8, packetId & 0xff]);
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);
export const PINGREQ = Buffer.from([0xc0, 0x00]);

/** One PUBLISH built by `mqtt-packet`, with the offsets the runner patches. */
export interface PublishTemplate {
  readonly bytes: Buffer;
  /** Offset of the packet ID (QoS 1), or -1. */
  readonly packetIdAt: number;
  /** Offset of the payload. */
  readonly payloadAt: number;
}

export function publishTemplate(topicName: string, qos: 0 | 1, payloadBytes = PAYLOAD_BYTES): PublishTemplate {
  if (payloadBytes < PAYLOAD_HEADER) throw new Error(`payloads carry a ${PAYLOAD_HEADER}-byte header; ${payloadBytes} bytes is too small`);
  const payload = Buffer.alloc(payloadBytes, 0x2e); // '.' filler
  const bytes = mqttPacket.generate({ cmd: 'publish', topic: topicName, payload, qos, retain: false, dup: false, ...(qos > 0 ? { messageId: 1 } : {}) });
  const payloadAt = bytes.length - payloadBytes;
  return { bytes, packetIdAt: qos > 0 ? payloadAt - 2 : -1, payloadAt };
}

/**
 * Writes `count` consecutive PUBLISH packets of one template into one new buffer, numbered
 * `firstSeq`… for `stream`; with QoS 1 the packet IDs come from `nextPacketId` (called per
 * packet). `sentAt` goes into every payload.
 */
export function publishBatch(
  template: PublishTemplate,
  stream: number,
  firstSeq: number,
  count: number,
  sentAt: number,
  nextPacketId?: () => number,
): Buffer {
  const size = template.bytes.length;
  const out = Buffer.allocUnsafe(size * count);
  for (let i = 0; i < count; i++) {
    const at = i * size;
    template.bytes.copy(out, at);
    const p = at + template.payloadAt;
    out.writeUInt32BE(stream >>> 0, p + PAYLOAD_STREAM);
    out.writeUInt32BE((firstSeq + i) >>> 0, p + PAYLOAD_SEQ);
    out.writeDoubleBE(sentAt, p + PAYLOAD_TIME);
    if (template.packetIdAt >= 0 && nextPacketId !== undefined) out.writeUInt16BE(nextPacketId(), at + template.packetIdAt);
  }
  return out;
}

/** Called per frame: the first header byte, and the frame's body as `buf[start, end)`. */
export type FrameHandler = (header: number, buf: Buffer, start: number, end: number) => void;

/**
 * Splits a byte stream into MQTT frames (fixed header + remaining length). Chunks are handled
 * synchronously and may be reused by the caller afterwards (the runner reads every socket into
 * one shared buffer): a frame cut by a chunk boundary is copied and completed by the next chunk;
 * nothing else is copied.
 */
export class FrameReader {
  private pending: Buffer | undefined;

  constructor(private readonly onFrame: FrameHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    const len = buf.length;
    let pos = 0;
    while (pos + 2 <= len) {
      let remaining = 0;
      let multiplier = 1;
      let i = pos + 1;
      let byte = 0;
      let complete = false;
      while (i < len) {
        byte = buf[i++]!;
        remaining += (byte & 0x7f) * multiplier;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
        multiplier *= 128;
        if (multiplier > 128 ** 3) throw new Error('malformed remaining length from the broker');
      }
      if (!complete || i + remaining > len) break;
      this.onFrame(buf[pos]!, buf, i, i + remaining);
      pos = i + remaining;
    }
    if (pos < len) this.pending = Buffer.from(buf.subarray(pos));
  }
}

/** The body of a PUBLISH frame, decoded at fixed offsets. */
export interface PublishView {
  qos: number;
  dup: boolean;
  packetId: number;
  stream: number;
  seq: number;
  sentAt: number;
}

/**
 * Decodes the parts of a PUBLISH the runner needs into `into` (reused, so the hot path
 * allocates nothing). Returns false when the payload is not a benchmark payload.
 */
export function readPublish(header: number, buf: Buffer, start: number, end: number, into: PublishView): boolean {
  const qos = (header >> 1) & 0x03;
  const topicLength = buf.readUInt16BE(start);
  let p = start + 2 + topicLength;
  let packetId = 0;
  if (qos > 0) {
    packetId = buf.readUInt16BE(p);
    p += 2;
  }
  into.qos = qos;
  into.dup = (header & 0x08) !== 0;
  into.packetId = packetId;
  if (end - p < PAYLOAD_HEADER) return false;
  into.stream = buf.readUInt32BE(p + PAYLOAD_STREAM);
  into.seq = buf.readUInt32BE(p + PAYLOAD_SEQ);
  into.sentAt = buf.readDoubleBE(p + PAYLOAD_TIME);
  return true;
}

/** The topic of a PUBLISH frame (for tests and diagnostics, not the hot path). */
export function publishTopic(buf: Buffer, start: number): string {
  const topicLength = buf.readUInt16BE(start);
  return buf.toString('utf8', start + 2, start + 2 + topicLength);
}
