import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReasonCode } from '@fleetmq/protocol';
import { silentLog } from '@fleetmq/broker';
import { RawMqttClient, connectBytes, pingreqBytes, publishBytes, subscribeBytes, varInt } from '@fleetmq/testkit';
import { Connection } from '../src/connection.js';
import { defaultConnectionOptions, makeBroker, memoryClient, memoryInfo, sleep, startMqttServer, type MqttServer } from './support.js';

let server: MqttServer | undefined;
const clients: RawMqttClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await server?.close();
  server = undefined;
});

async function connected(version: 4 | 5, keepalive: number, clientId: string): Promise<RawMqttClient> {
  const client = await RawMqttClient.tcp(server!.port, version);
  clients.push(client);
  client.write(connectBytes(version, { clientId, keepalive }));
  await client.packetsOrClose(1, 1000);
  expect(client.take()).toEqual([{ cmd: 'connack', code: 0 }]);
  return client;
}

describe('keep alive [MQTT-3.1.2-24]', () => {
  it('closes a silent 3.1.1 client after one and a half times the keep alive, sending nothing', async () => {
    server = await startMqttServer();
    const client = await connected(4, 1, 'ka-v4');
    const start = Date.now();
    expect(await client.until(() => client.closed, 3000)).toBe(true);
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(2300);
    expect(client.take()).toEqual([]);
  });

  it('sends MQTT 5 clients DISCONNECT 0x8D before closing', async () => {
    server = await startMqttServer();
    const client = await connected(5, 1, 'ka-v5');
    const start = Date.now();
    expect(await client.until(() => client.closed, 3000)).toBe(true);
    expect(Date.now() - start).toBeGreaterThanOrEqual(1400);
    expect(client.take()).toEqual([{ cmd: 'disconnect', reasonCode: ReasonCode.KeepAliveTimeout }]);
  });

  it('any packet within the period keeps the connection', async () => {
    server = await startMqttServer();
    const client = await connected(4, 1, 'ka-ping');
    for (let i = 0; i < 4; i++) {
      await sleep(550);
      client.write(pingreqBytes());
    }
    await client.packetsOrClose(4, 1000);
    expect(client.closed).toBe(false);
    expect(client.take()).toEqual(Array.from({ length: 4 }, () => ({ cmd: 'pingresp' })));
  });
});

describe('connect timeout', () => {
  it('closes a socket that sends nothing', async () => {
    server = await startMqttServer({ connectTimeout: 200 });
    const client = await RawMqttClient.tcp(server.port, 4);
    clients.push(client);
    const start = Date.now();
    expect(await client.until(() => client.closed, 2000)).toBe(true);
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(1000);
    expect(client.take()).toEqual([]);
    await vi.waitFor(() => expect(server!.broker.connectionCount).toBe(0));
  });

  it('closes a socket whose CONNECT never completes', async () => {
    server = await startMqttServer({ connectTimeout: 200 });
    const client = await RawMqttClient.tcp(server.port, 4);
    clients.push(client);
    client.write(connectBytes(4, { clientId: 'slow' }).subarray(0, 6));
    expect(await client.until(() => client.closed, 2000)).toBe(true);
    expect(client.take()).toEqual([]);
  });

  it('does not apply once CONNECT has been accepted', async () => {
    server = await startMqttServer({ connectTimeout: 200 });
    const client = await connected(4, 0, 'in-time');
    await sleep(400);
    client.write(pingreqBytes());
    await client.packetsOrClose(1, 1000);
    expect(client.closed).toBe(false);
    expect(client.take()).toEqual([{ cmd: 'pingresp' }]);
  });
});

describe('maximum packet size', () => {
  const maxPacketSize = 1024;

  /** A QoS 1 PUBLISH of exactly `size` bytes. */
  function publishOfSize(size: number): Buffer {
    for (let n = size; n > 0; n--) {
      const bytes = publishBytes(5, { topic: 't', qos: 1, messageId: 7, payload: Buffer.alloc(n, 0x61) });
      if (bytes.length === size) return bytes;
    }
    throw new Error(`no PUBLISH of ${size} bytes`);
  }

  it('accepts a packet of exactly the maximum and refuses one byte more with 0x95', async () => {
    server = await startMqttServer({ maxPacketSize });
    const client = await connected(5, 0, 'size-edge');
    client.write(publishOfSize(maxPacketSize));
    await client.packetsOrClose(1, 1000);
    expect(client.take()).toEqual([{ cmd: 'puback' }]);
    client.write(publishOfSize(maxPacketSize + 1));
    expect(await client.until(() => client.closed, 1000)).toBe(true);
    expect(client.take()).toEqual([{ cmd: 'disconnect', reasonCode: ReasonCode.PacketTooLarge }]);
  });

  it('refuses an oversized packet as soon as its fixed header arrives (5.0: DISCONNECT 0x95)', async () => {
    server = await startMqttServer({ maxPacketSize });
    const client = await connected(5, 0, 'header-only');
    // the header announces 100 kB; the body never comes
    client.write(Buffer.from([0x30, ...varInt(100_000), 0x00, 0x01, 0x74]));
    expect(await client.until(() => client.closed, 1000)).toBe(true);
    expect(client.take()).toEqual([{ cmd: 'disconnect', reasonCode: ReasonCode.PacketTooLarge }]);
  });

  it('closes a 3.1.1 client on the header of an oversized packet, sending nothing', async () => {
    server = await startMqttServer({ maxPacketSize });
    const client = await connected(4, 0, 'header-only-v4');
    client.write(Buffer.from([0x30, ...varInt(5000)]));
    expect(await client.until(() => client.closed, 1000)).toBe(true);
    expect(client.take()).toEqual([]);
  });

  it('closes a connection whose first packet is announced oversized', async () => {
    server = await startMqttServer({ maxPacketSize });
    const client = await RawMqttClient.tcp(server.port, 5);
    clients.push(client);
    client.write(Buffer.from([0x10, ...varInt(50_000)]));
    expect(await client.until(() => client.closed, 1000)).toBe(true);
    expect(client.take()).toEqual([]);
  });
});

describe('output buffer limit', () => {
  /** A stream whose peer never reads: every write after the first stays buffered. */
  function neverReads(): Duplex {
    return new Duplex({
      read() {},
      write(_chunk, _encoding, _callback) {
        // never acknowledged: the data stays in the writable buffer
      },
    });
  }

  it('drops a client that stays above the limit for slowConsumerTimeout, and spares one that reads', async () => {
    const broker = makeBroker();
    const outputBufferLimit = 16 * 1024;
    const stuck = neverReads();
    const slow = new Connection(stuck, memoryInfo, broker, { ...defaultConnectionOptions, outputBufferLimit, slowConsumerTimeout: 300 }, silentLog);
    stuck.push(connectBytes(4, { clientId: 'slow-reader' }));
    stuck.push(subscribeBytes(4, [{ topic: 'flood', qos: 0 }]));

    // a reading subscriber with the same limit, for comparison
    const reader = memoryClient(broker, 4, { outputBufferLimit });
    reader.client.write(connectBytes(4, { clientId: 'reader' }));
    reader.client.write(subscribeBytes(4, [{ topic: 'flood', qos: 0 }]));
    await reader.client.packetsOrClose(2, 1000);
    expect(reader.client.take()).toEqual([{ cmd: 'connack', code: 0 }, { cmd: 'suback', codes: [0] }]);
    await vi.waitFor(() => expect(slow.channel.session?.subscriptions.has('flood')).toBe(true));

    const publisher = memoryClient(broker, 4);
    publisher.client.write(connectBytes(4, { clientId: 'publisher' }));
    await publisher.client.packetsOrClose(1, 1000);
    const messages = 40;
    for (let i = 0; i < messages; i++) {
      publisher.client.write(publishBytes(4, { topic: 'flood', payload: Buffer.alloc(1024, i) }));
      await sleep(2); // a steady stream: a reading client keeps up with it
    }

    await vi.waitFor(() => expect(stuck.destroyed).toBe(true), { timeout: 2000 });
    expect(slow.bytesOut).toBeGreaterThan(outputBufferLimit);
    // while congested it lost QoS 0 messages instead of buffering them
    expect(slow.bytesOut).toBeLessThan(outputBufferLimit + 2 * 1100);
    expect(broker.stats.dropped.slowConsumer).toBeGreaterThan(0);
    expect(await reader.client.packetsOrClose(messages, 2000)).toBe(true);
    expect(reader.client.take().filter((p) => p.cmd === 'publish')).toHaveLength(messages);
    expect(reader.client.closed).toBe(false);
    // the stuck client's channel is released; the reader and the publisher remain
    await vi.waitFor(() => expect(broker.connectionCount).toBe(2));
    reader.client.destroy();
    publisher.client.destroy();
  });
});

describe('slow consumers', () => {
  it('a burst above the limit that the client then reads is not a reason to disconnect', async () => {
    const broker = makeBroker();
    const outputBufferLimit = 64 * 1024;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written = 0;
    // a client that reads nothing for a moment, then everything
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.length;
        void gate.then(() => callback());
      },
    });
    const conn = new Connection(stream, memoryInfo, broker, { ...defaultConnectionOptions, outputBufferLimit, slowConsumerTimeout: 1000 }, silentLog);
    stream.push(connectBytes(4, { clientId: 'bursty' }));
    await vi.waitFor(() => expect(conn.channel.state).toBe('connected'));
    // 100 retained QoS 1 messages of 2 KiB: more than the limit, less than four times it
    for (let i = 0; i < 100; i++) {
      await broker.publish({ id: `m${i}`, topic: `burst/${i}`, payload: Buffer.alloc(2048, i), qos: 1, retain: true, createdAt: Date.now() });
    }
    stream.push(subscribeBytes(4, [{ topic: 'burst/#', qos: 0 }]));
    await vi.waitFor(() => expect(conn.congested).toBe(true));
    release();
    await vi.waitFor(() => expect(conn.congested).toBe(false));
    await sleep(1100); // past the timeout
    expect(stream.destroyed).toBe(false);
    expect(written).toBeGreaterThan(100 * 2048);
    stream.destroy();
  });
});

describe('malformed input', () => {
  it('a parse error after CONNECT is DISCONNECT 0x81 on 5.0, and the channel is released', async () => {
    const broker = makeBroker();
    const { client } = memoryClient(broker, 5);
    client.write(connectBytes(5, { clientId: 'parse-error' }));
    await client.packetsOrClose(1, 1000);
    expect(client.take()).toEqual([{ cmd: 'connack', code: 0 }]);
    client.write(Buffer.from([0x00, 0x00]));
    expect(await client.until(() => client.closed, 1000)).toBe(true);
    expect(client.take()).toEqual([{ cmd: 'disconnect', reasonCode: ReasonCode.MalformedPacket }]);
    client.destroy();
    await vi.waitFor(() => expect(broker.connectionCount).toBe(0));
  });

  it('a malformed 5.0 CONNECT gets CONNACK 0x81 and a malformed 3.1.1 CONNECT nothing [MQTT-3.1.4-1]', async () => {
    const broker = makeBroker();
    const v5 = memoryClient(broker, 5).client;
    v5.write(withReservedFlag(connectBytes(5, { clientId: 'bad-5' })));
    expect(await v5.until(() => v5.closed, 1000)).toBe(true);
    expect(v5.take()).toEqual([{ cmd: 'connack', code: ReasonCode.MalformedPacket }]);
    const v4 = memoryClient(broker, 4).client;
    v4.write(withReservedFlag(connectBytes(4, { clientId: 'bad-4' })));
    expect(await v4.until(() => v4.closed, 1000)).toBe(true);
    expect(v4.take()).toEqual([]);
  });
});

/** Sets the reserved bit of the CONNECT flags [MQTT-3.1.2-3] (name "MQTT", 1-byte length). */
function withReservedFlag(connect: Buffer): Buffer {
  const copy = Buffer.from(connect);
  const flagsIndex = 2 + 2 + 4 + 1;
  copy[flagsIndex] = copy[flagsIndex]! | 0x01;
  return copy;
}
