import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import mqtt, { type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet';
import { RawMqttClient, connectBytes, pingreqBytes, publishBytes, subscribeBytes } from '@fleetmq/testkit';
import { decodeFast, encodeConnack3, encodePlainPublish, encodePublish, encodeShortAck, encodeStats, readFixedHeader } from '../src/frame.js';
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

  it('CONNACK of MQTT 3.1 and 3.1.1; MQTT 5 left to mqtt-packet', () => {
    for (const version of [3, 4] as const) {
      for (const sessionPresent of [false, true]) {
        for (const returnCode of [0, 1, 2, 3, 4, 5]) {
          const packet = { cmd: 'connack', sessionPresent, returnCode } as Packet;
          expect(encodeConnack3(packet, version)).toEqual(mqtt.generate(packet, { protocolVersion: version }));
        }
      }
    }
    expect(encodeConnack3({ cmd: 'connack', sessionPresent: false, reasonCode: 0 } as Packet, 5)).toBeUndefined();
    expect(encodeConnack3({ cmd: 'pingresp' } as Packet, 4)).toBeUndefined();
    expect(encodeConnack3({ cmd: 'connack', sessionPresent: false } as Packet, 4)).toBeUndefined(); // mqtt-packet refuses it
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
    expect(fast(mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 0 }] }, { protocolVersion: 4 }), 4)).toBeUndefined();
  });

  /** A CONNECT as clients send it: every version, with or without will, username and password. */
  const connects = fc.record(
    {
      protocolVersion: fc.constantFrom(3, 4, 5),
      clientId: fc.oneof(fc.constant(''), fc.string({ maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 10 })),
      clean: fc.boolean(),
      keepalive: fc.integer({ min: 0, max: 65535 }),
      username: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
      password: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
      will: fc.option(
        fc.record({ topic: fc.string({ minLength: 1, maxLength: 20 }), payload: fc.uint8Array({ maxLength: 300 }), qos: fc.constantFrom(0, 1, 2), retain: fc.boolean() }),
        { nil: undefined },
      ),
    },
    { requiredKeys: ['protocolVersion', 'clientId', 'clean', 'keepalive'] },
  );

  type ConnectCase = typeof connects extends fc.Arbitrary<infer T> ? T : never;
  function connectPacket(c: ConnectCase): IConnectPacket {
    const packet: IConnectPacket = {
      cmd: 'connect',
      protocolId: c.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: c.protocolVersion as 3 | 4 | 5,
      clientId: c.clientId,
      clean: c.clean,
      keepalive: c.keepalive,
    };
    if (c.username !== undefined) packet.username = c.username;
    if (c.password !== undefined) packet.password = Buffer.from(c.password);
    if (c.will !== undefined) packet.will = { topic: c.will.topic, payload: Buffer.from(c.will.payload), qos: c.will.qos as 0 | 1 | 2, retain: c.will.retain };
    return packet;
  }

  it('CONNECT of every version, with and without will, username and password, as mqtt-packet reads it', () => {
    fc.assert(
      fc.property(connects, (c) => {
        // mqtt-packet writes an empty client ID only for 3.1.1 and 5.0 with clean start
        // (and never a password without a username)
        fc.pre(c.clientId !== '' || (c.protocolVersion !== 3 && c.clean));
        fc.pre(c.password === undefined || c.username !== undefined);
        const packet = connectPacket(c);
        const bytes = mqtt.generate(packet, { protocolVersion: packet.protocolVersion });
        const mine = fast(bytes, 4);
        expect(mine).toBeDefined();
        expect({ ...mine }).toEqual({ ...parsed(bytes, 4) });
        expect(mine).toMatchObject({ clientId: c.clientId, keepalive: c.keepalive, clean: c.clean });
      }),
      { numRuns: 500 },
    );
  });

  it('leaves to mqtt-packet the CONNECTs it does not decode, and every malformed one', () => {
    const plain = connectBytes(4, { clientId: 'dev-1', username: 'u', password: Buffer.from('p') });
    expect(fast(plain, 4)).toBeDefined();
    const v5Props = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'c', clean: true, keepalive: 30, properties: { sessionExpiryInterval: 60 } });
    expect(fast(v5Props, 5)).toBeUndefined();
    const willProps = mqtt.generate({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'c', clean: true, keepalive: 30,
      will: { topic: 'w', payload: Buffer.from('x'), qos: 1, retain: false, properties: { willDelayInterval: 5 } },
    });
    expect(fast(willProps, 5)).toBeUndefined();
    const patched = (at: number, value: number): Buffer => {
      const b = Buffer.from(plain);
      b[at] = value;
      return b;
    };
    // fixed header 2 bytes, then 00 04 'MQTT' level flags keepalive(2)
    expect(fast(patched(4, 0x58), 4)).toBeUndefined(); // protocol name 'MXTT'
    expect(fast(patched(8, 0x84), 4)).toBeUndefined(); // bridge bit: mqtt-packet reads bridgeMode
    expect(fast(patched(8, 6), 4)).toBeUndefined(); // level 6
    expect(fast(patched(9, plain[9]! | 0x01), 4)).toBeUndefined(); // reserved flag [MQTT-3.1.2-3]
    expect(fast(patched(9, plain[9]! | 0x20), 4)).toBeUndefined(); // will retain without will
    expect(fast(patched(9, plain[9]! | 0x08), 4)).toBeUndefined(); // will QoS without will
    expect(fast(patched(9, plain[9]! | 0x04 | 0x18), 4)).toBeUndefined(); // will QoS 3
    expect(fast(patched(13, 0x40), 4)).toBeUndefined(); // client ID longer than the packet
    const trailing = Buffer.concat([plain, Buffer.from([0])]);
    trailing[1]! += 1;
    expect(fast(trailing, 4)).toBeUndefined(); // a byte after the password
    const noPassword = Buffer.from(plain.subarray(0, plain.length - 3));
    noPassword[1]! -= 3;
    expect(fast(noPassword, 4)).toBeUndefined(); // password flag, no password
  });

  it('CONNECT 5.0 with a password and no username (allowed since 5.0, 3.1.2.9), as mqtt-packet reads it', () => {
    const body = [0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x42, 0, 30, 0, 0, 1, 0x63, 0, 2, 0x70, 0x77];
    const bytes = Buffer.from([0x10, body.length, ...body]);
    const mine = fast(bytes, 4) as IConnectPacket;
    expect({ ...mine }).toEqual({ ...parsed(bytes, 4) });
    expect(mine.username).toBeUndefined();
    expect(mine.password!.toString()).toBe('pw');
  });

  it('copies a will payload out of the read chunk, and reads the password as mqtt-packet does', () => {
    const bytes = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'w', clean: true, keepalive: 0, username: 'u', password: Buffer.from('secret'), will: { topic: 't', payload: Buffer.from('bye'), qos: 1, retain: true } });
    const packet = fast(bytes, 4) as IConnectPacket;
    bytes.fill(0); // the read chunk is reused or freed: the will outlives it
    expect(Buffer.from(packet.will!.payload as Buffer).toString()).toBe('bye');
    bytes.write('secret', bytes.length - 6);
    expect(packet.password!.toString()).toBe('secret');
  });
});
