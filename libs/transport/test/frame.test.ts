import { afterEach, describe, expect, it } from 'vitest';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { RawMqttClient, connectBytes, pingreqBytes, publishBytes, subscribeBytes } from '@fleetmq/testkit';
import { decodeFast, encodePlainPublish, encodePublish, encodeShortAck, encodeStats, readFixedHeader } from '../src/frame.js';
import { makeBroker, memoryClient } from './support.js';

const clients: RawMqttClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
});

function publishes(client: RawMqttClient): { topic: string; payload: string; qos: number }[] {
  return client.packets
    .filter((p): p is IPublishPacket => p.cmd === 'publish')
    .map((p) => ({ topic: p.topic, payload: Buffer.from(p.payload).toString('latin1'), qos: p.qos }));
}

describe('Connection: whole packets from a byte stream', () => {
  it('reads packets split at any byte and packed many to a chunk, a large one joined once', async () => {
    const { client } = memoryClient(makeBroker(), 4);
    clients.push(client);
    const big = Buffer.alloc(70_000, 0x62);
    const bytes = Buffer.concat([
      connectBytes(4, { clientId: 'splitter' }),
      subscribeBytes(4, [{ topic: 's/#', qos: 1 }]),
      ...Array.from({ length: 20 }, (_, i) => publishBytes(4, { topic: `s/${i}`, payload: `p${i}`, qos: (i % 2) as 0 | 1, messageId: i + 1 })),
      publishBytes(4, { topic: 's/big', payload: big, qos: 1, messageId: 99 }),
      pingreqBytes(),
    ]);
    // chunks of 1 to 7 bytes, then the rest of the large one in 1,000-byte chunks
    let at = 0;
    let size = 1;
    while (at < bytes.length) {
      const n = at > 2_000 ? 1_000 : size;
      client.write(bytes.subarray(at, at + n));
      at += n;
      size = (size % 7) + 1;
    }
    await client.until(() => client.packets.some((p) => p.cmd === 'pingresp'), 3000);
    expect(client.parseErrors).toEqual([]);
    expect(publishes(client)).toEqual([
      ...Array.from({ length: 20 }, (_, i) => ({ topic: `s/${i}`, payload: `p${i}`, qos: i % 2 })),
      { topic: 's/big', payload: big.toString('latin1'), qos: 1 },
    ]);
    expect(client.packets.filter((p) => p.cmd === 'puback').map((p) => (p as { messageId?: number }).messageId)).toEqual([
      ...Array.from({ length: 10 }, (_, i) => 2 * i + 2),
      99,
    ]);
  });

  it('goes on with the packets before a malformed remaining length, then closes', async () => {
    const { client } = memoryClient(makeBroker(), 4);
    clients.push(client);
    client.write(connectBytes(4, { clientId: 'bad-length' }));
    await client.until(() => client.packets.length === 1, 1000);
    // a PINGREQ, then a PUBLISH whose remaining length runs to a fifth byte
    client.write(Buffer.concat([pingreqBytes(), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])]));
    expect(await client.until(() => client.closed, 1000)).toBe(true);
    expect(client.packets.map((p) => p.cmd)).toEqual(['connack', 'pingresp']);
  });

  it('reads the fixed header only when it is whole', () => {
    expect(readFixedHeader(Buffer.from([0x30]), 0)).toBeUndefined();
    expect(readFixedHeader(Buffer.from([0x30, 0x80]), 0)).toBeUndefined();
    expect(readFixedHeader(Buffer.from([0x30, 0x80, 0x01]), 0)).toEqual({ remaining: 128, headerSize: 3 });
    expect(readFixedHeader(Buffer.from([0x00, 0x30, 0xff, 0xff, 0xff, 0x7f]), 1)).toEqual({ remaining: 268_435_455, headerSize: 5 });
    expect(readFixedHeader(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), 0)).toBe(-1);
  });
});

describe('frame.ts encoders: the bytes mqtt-packet writes', () => {
  it('PUBLISH without properties, every version, QoS, flag and length class', () => {
    for (const protocolVersion of [3, 4, 5] as const) {
      for (const qos of [0, 1, 2] as const) {
        for (const size of [0, 1, 100, 127 - 8, 16_383, 16_384, 2_097_152]) {
          for (const [retain, dup] of [[false, false], [true, false], [false, true]] as const) {
            const packet: IPublishPacket = { cmd: 'publish', topic: 'a/ü/日本', payload: Buffer.alloc(size, 7), qos, retain, dup };
            if (qos > 0) packet.messageId = 0xabcd;
            expect(encodePlainPublish(packet, protocolVersion)!.equals(mqtt.generate(packet, { protocolVersion }))).toBe(true);
          }
        }
      }
    }
    const withProperties: IPublishPacket = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { contentType: 'text' } };
    expect(encodePlainPublish(withProperties, 5)).toBeUndefined();
  });

  it('acknowledgements in their short form (MQTT 5: reason code 0 and no properties)', () => {
    for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
      for (const messageId of [1, 255, 256, 65535]) {
        const packet = { cmd, messageId } as Packet;
        expect(encodeShortAck(packet)!.equals(mqtt.generate(packet, { protocolVersion: 4 }))).toBe(true);
        expect(encodeShortAck(packet)!.equals(mqtt.generate({ ...packet, reasonCode: 0 } as Packet, { protocolVersion: 5 }))).toBe(true);
      }
      expect(encodeShortAck({ cmd, messageId: 1, reasonCode: 0x10 } as Packet)).toBeUndefined();
      expect(encodeShortAck({ cmd, messageId: 1, properties: { reasonString: 'r' } } as Packet)).toBeUndefined();
    }
    expect(encodeShortAck({ cmd: 'pingresp' })).toBeUndefined();
  });

  it('one encode of a QoS 0 PUBLISH serves every subscriber that gets the same bytes', async () => {
    const broker = makeBroker();
    const subscribers = [4, 4, 5, 5, 4].map((version, i) => {
      const { client } = memoryClient(broker, version as 4 | 5);
      clients.push(client);
      client.write(connectBytes(version as 4 | 5, { clientId: `sub-${i}` }));
      client.write(subscribeBytes(version as 4 | 5, [{ topic: 'shared/+', qos: 0 }]));
      return client;
    });
    // a subscription identifier makes its bytes differ
    const { client: withId } = memoryClient(broker, 5);
    clients.push(withId);
    withId.write(connectBytes(5, { clientId: 'sub-id' }));
    withId.write(subscribeBytes(5, [{ topic: 'shared/+', qos: 0 }], 1, { subscriptionIdentifier: 7 }));
    const { client: pub } = memoryClient(broker, 4);
    clients.push(pub);
    pub.write(connectBytes(4, { clientId: 'pub' }));
    for (const c of [...subscribers, withId]) await c.until(() => c.packets.some((p) => p.cmd === 'suback'), 1000);
    await pub.until(() => pub.packets.length === 1, 1000);

    const before = { ...encodeStats };
    pub.write(publishBytes(4, { topic: 'shared/x', payload: 'same bytes', qos: 0 }));
    for (const c of [...subscribers, withId]) await c.until(() => publishes(c).length === 1, 1000);
    // one encode per protocol version, one for the subscriber with an identifier; the rest shared
    expect(encodeStats.publishEncoded - before.publishEncoded).toBe(3);
    expect(encodeStats.publishShared - before.publishShared).toBe(3);
    for (const c of subscribers) expect(publishes(c)).toEqual([{ topic: 'shared/x', payload: 'same bytes', qos: 0 }]);
    const delivered = withId.packets.find((p): p is IPublishPacket => p.cmd === 'publish')!;
    expect(delivered.properties?.subscriptionIdentifier).toBe(7);
  });

  it('a new message with the same topic gets its own bytes', () => {
    const a: IPublishPacket = { cmd: 'publish', topic: 'same', payload: Buffer.from('one'), qos: 0, retain: false, dup: false };
    const b: IPublishPacket = { ...a, payload: Buffer.from('two') };
    expect(encodePublish(a, 4, { protocolVersion: 4 }).toString('latin1')).toContain('one');
    expect(encodePublish(b, 4, { protocolVersion: 4 }).toString('latin1')).toContain('two');
    expect(encodePublish({ ...b, retain: true }, 4, { protocolVersion: 4 })[0]).toBe(0x31);
  });
});

describe('frame.ts decoder: the packets mqtt-packet parses', () => {
  function parsed(bytes: Buffer, protocolVersion: 3 | 4 | 5): Packet {
    const parser = mqtt.parser({ protocolVersion });
    const out: Packet[] = [];
    parser.on('packet', (p: Packet) => out.push(p));
    parser.parse(bytes);
    expect(out).toHaveLength(1);
    return out[0]!;
  }
  function fast(bytes: Buffer, version: 3 | 4 | 5): Packet | undefined {
    const header = readFixedHeader(bytes, 0);
    if (header === undefined || header === -1) throw new Error('bad test packet');
    return decodeFast(bytes, 0, header.headerSize, header.remaining, version);
  }

  it('PUBLISH without properties and two-byte acknowledgements, every version', () => {
    for (const version of [3, 4, 5] as const) {
      for (const qos of [0, 1, 2] as const) {
        for (const [retain, dup] of [[false, false], [true, false], [false, true]] as const) {
          for (const payload of [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(200, 3)]) {
            const packet: IPublishPacket = { cmd: 'publish', topic: 'a/ü/日本', payload, qos, retain, dup };
            if (qos > 0) packet.messageId = 0x1234;
            const bytes = mqtt.generate(packet, { protocolVersion: version });
            expect({ ...fast(bytes, version) }).toEqual({ ...parsed(bytes, version) });
          }
        }
      }
      for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
        const bytes = encodeShortAck({ cmd, messageId: 0xfedc } as Packet)!;
        expect({ ...fast(bytes, version) }).toEqual({ ...parsed(bytes, version) });
      }
    }
  });

  it('leaves to mqtt-packet what it does not decode: properties, longer acknowledgements, bad flags, short bodies', () => {
    const withProps = mqtt.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { contentType: 'c' } }, { protocolVersion: 5 });
    expect(fast(withProps, 5)).toBeUndefined();
    expect(fast(mqtt.generate({ cmd: 'puback', messageId: 1, reasonCode: 0x10 }, { protocolVersion: 5 }), 5)).toBeUndefined();
    expect(fast(Buffer.from([0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01]), 4)).toBeUndefined(); // QoS 3
    expect(fast(Buffer.from([0x30, 0x03, 0x00, 0x05, 0x74]), 4)).toBeUndefined(); // topic longer than the packet
    expect(fast(Buffer.from([0x32, 0x03, 0x00, 0x01, 0x74]), 4)).toBeUndefined(); // no room for the packet ID
    expect(fast(Buffer.from([0x60, 0x02, 0x00, 0x01]), 4)).toBeUndefined(); // PUBREL with flags 0
    expect(fast(connectBytes(4, { clientId: 'c' }), 4)).toBeUndefined();
  });
});
