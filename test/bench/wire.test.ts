/**
 * The load runner's own wire code against mqtt-packet: the frames it builds parse as what it
 * meant, the frame reader splits any stream the way mqtt-packet's parser does whatever the chunk
 * boundaries, and the fixed-offset PUBLISH decoder reads what mqtt-packet reads. Plus the
 * sequence bookkeeping and the connection cap. No sockets.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { FrameReader, PAYLOAD_BYTES, publishBatch, publishTemplate, publishTopic, readPublish, type PublishView } from '../../bench/src/wire.js';
import { SequenceTracker } from '../../bench/src/sequence.js';
import { connectionBudget } from '../../bench/src/limits.js';

function parseAll(bytes: Buffer): Packet[] {
  const parser = mqtt.parser({ protocolVersion: 4 });
  const out: Packet[] = [];
  parser.on('packet', (p) => out.push(p));
  parser.on('error', (err) => {
    throw err;
  });
  parser.parse(bytes);
  return out;
}

describe('bench wire', () => {
  it('builds numbered PUBLISH batches that mqtt-packet parses', () => {
    const template = publishTemplate('bench/x/fanin/3', 1);
    let id = 0;
    const bytes = publishBatch(template, 7, 100, 5, 1234.5, () => ++id);
    const packets = parseAll(bytes) as IPublishPacket[];
    expect(packets).toHaveLength(5);
    packets.forEach((p, i) => {
      expect(p.cmd).toBe('publish');
      expect(p.topic).toBe('bench/x/fanin/3');
      expect(p.qos).toBe(1);
      expect(p.messageId).toBe(i + 1);
      const payload = p.payload as Buffer;
      expect(payload).toHaveLength(PAYLOAD_BYTES);
      expect(payload.readUInt32BE(0)).toBe(7);
      expect(payload.readUInt32BE(4)).toBe(100 + i);
      expect(payload.readDoubleBE(8)).toBe(1234.5);
    });
  });

  it('splits a byte stream into the frames mqtt-packet sees, at any chunk boundaries', () => {
    const q0 = publishTemplate('a/b', 0);
    const q1 = publishTemplate(`long/${'x'.repeat(200)}`, 1, 300);
    const stream = Buffer.concat([
      mqtt.generate({ cmd: 'connack', returnCode: 0, sessionPresent: true }),
      mqtt.generate({ cmd: 'suback', messageId: 1, granted: [1] }),
      publishBatch(q0, 0, 0, 3, 1),
      mqtt.generate({ cmd: 'puback', messageId: 513 }),
      publishBatch(q1, 2, 40, 2, 2, () => 9),
      mqtt.generate({ cmd: 'pingresp' }),
    ]);
    const expected = parseAll(stream).map((p) => p.cmd);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }), (cuts) => {
        const seen: string[] = [];
        const names: Record<number, string> = { 2: 'connack', 3: 'publish', 4: 'puback', 9: 'suback', 13: 'pingresp' };
        const reader = new FrameReader((header) => seen.push(names[header >> 4] ?? '?'));
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        let from = 0;
        for (const at of [...points, stream.length]) {
          // a shared, reused read buffer, as the runner's sockets have
          const chunk = Buffer.from(stream.subarray(from, at));
          reader.push(chunk);
          chunk.fill(0xee);
          from = at;
        }
        expect(seen).toEqual(expected);
      }),
    );
  });

  it('decodes PUBLISH at fixed offsets as mqtt-packet does', () => {
    for (const qos of [0, 1] as const) {
      const bytes = publishBatch(publishTemplate('t/é/z', qos), 4_000_000_000, 4_294_967_295, 1, 99.25, () => 65535);
      const view: PublishView = { qos: 0, dup: false, packetId: 0, stream: 0, seq: 0, sentAt: 0 };
      new FrameReader((header, buf, start, end) => {
        expect(readPublish(header, buf, start, end, view)).toBe(true);
        expect(publishTopic(buf, start)).toBe('t/é/z');
      }).push(bytes);
      const [p] = parseAll(bytes) as IPublishPacket[];
      expect(view).toEqual({ qos, dup: false, packetId: qos === 1 ? p!.messageId : 0, stream: 4_000_000_000, seq: 4_294_967_295, sentAt: 99.25 });
    }
  });

  it('counts lost, duplicated and out-of-order messages per stream', () => {
    const t = new SequenceTracker(2);
    for (const seq of [0, 1, 3, 2, 3, 5]) t.record(0, seq); // 4 lost, 3 repeated, 2 late
    for (const seq of [0, 1, 2, 3, 4, 5]) t.record(1, seq);
    t.record(9, 0); // a stream nobody publishes
    expect(t.result(12)).toEqual({ sent: 12, received: 13, unique: 11, lost: 1, duplicated: 1, outOfOrder: 1 });
    expect(t.foreign).toBe(1);
    // sequence numbers far beyond the initial bitset
    const big = new SequenceTracker(1);
    big.record(0, 1_000_000);
    big.record(0, 1_000_000);
    expect(big.result(1).duplicated).toBe(1);
  });

  it('caps connections by file descriptors and says why', () => {
    const budget = connectionBudget(10_000_000, [process.pid]);
    expect(budget.allowed).toBeLessThan(10_000_000);
    expect(budget.note).toMatch(/capped at .* of 10,000,000 connections: .*ulimit/);
    expect(connectionBudget(10, [process.pid])).toEqual({ requested: 10, allowed: 10 });
  });
});
