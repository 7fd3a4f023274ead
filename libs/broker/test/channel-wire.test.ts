/**
 * The channel through real bytes: a transport Connection on an in-memory Duplex pair
 * (Aedes test/helper.js style), packets generated and parsed with mqtt-packet. This
 * checks that what the channel sends survives the real encoder and parser.
 */
import { duplexPair, type Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { ReasonCode, type ProtocolVersion } from '@fleetmq/protocol';
import { Connection } from '../../transport/src/connection.js';
import { silentLog } from '../src/log.js';
import { connectPacket, useHarness, type ConnectOptions, type Harness } from './support/harness.js';

const harness = useHarness();

class WireClient {
  readonly packets: Packet[] = [];
  readonly connection: Connection;
  ended = false;
  private readonly socket: Duplex;
  private wake: (() => void) | undefined;

  constructor(
    h: Harness,
    private readonly version: ProtocolVersion,
  ) {
    const [server, client] = duplexPair();
    this.socket = client;
    this.connection = new Connection(
      server,
      { transport: 'memory', listener: 'wire', remoteAddress: '127.0.0.1', remotePort: 1 },
      h.broker,
      { maxPacketSize: 1 << 20, outputBufferLimit: 1 << 20, connectTimeout: 5_000 },
      silentLog,
    );
    const parser = mqtt.parser({ protocolVersion: version });
    parser.on('packet', (p: Packet) => {
      this.packets.push(p);
      this.wake?.();
    });
    client.on('data', (b: Buffer) => parser.parse(b));
    client.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  send(packet: Packet): void {
    this.socket.write(mqtt.generate(packet, { protocolVersion: this.version }));
  }

  /** Waits (up to 200 ms) for the first unread packet of this kind and takes it. */
  async next<C extends Packet['cmd']>(cmd: C): Promise<Extract<Packet, { cmd: C }>> {
    const deadline = Date.now() + 200;
    for (;;) {
      const i = this.packets.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return this.packets.splice(i, 1)[0] as Extract<Packet, { cmd: C }>;
      if (Date.now() > deadline) throw new Error(`no ${cmd}; got ${JSON.stringify(this.packets.map((p) => p.cmd))}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 20);
      });
    }
  }

  async connect(o: ConnectOptions = {}) {
    this.send(connectPacket({ protocolVersion: this.version, ...o }));
    return this.next('connack');
  }

  async subscribe(topic: string, qos: 0 | 1 | 2, subscriptionIdentifier?: number) {
    this.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic, qos }],
      ...(subscriptionIdentifier !== undefined ? { properties: { subscriptionIdentifier } } : {}),
    });
    return this.next('suback');
  }

  /** Lets the connections exchange what is in flight. */
  async flush(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
}

describe('channel over the wire', () => {
  it('v5 CONNECT, SUBSCRIBE and PINGREQ get well-formed replies', async () => {
    const h = harness();
    const c = new WireClient(h, 5);
    const connack = await c.connect({ clientId: '', properties: { sessionExpiryInterval: 10 } });
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.assignedClientIdentifier).toMatch(/^fleetmq-/);
    expect(connack.properties?.maximumPacketSize).toBe(h.broker.options.maxPacketSize);
    expect((await c.subscribe('a/#', 2)).granted).toEqual([2]);
    c.send({ cmd: 'pingreq' });
    expect((await c.next('pingresp')).cmd).toBe('pingresp');
  });

  it('3.1.1 CONNACK and SUBACK parse in the 3.1.1 format', async () => {
    const h = harness();
    const c = new WireClient(h, 4);
    const connack = await c.connect({ clientId: 'old', clean: false });
    expect(connack).toMatchObject({ returnCode: 0, sessionPresent: false });
    expect((await c.subscribe('a/#/bad', 1)).granted).toEqual([0x80]);
  });

  it('[MQTT-3.3.2-17, MQTT-3.3.4-4] properties, subscription identifiers and topic aliases survive encoding', async () => {
    const h = harness();
    const sub = new WireClient(h, 5);
    await sub.connect({ clientId: 'sub', properties: { topicAliasMaximum: 3 } });
    await sub.subscribe('w/+', 1, 11);
    await sub.subscribe('w/#', 1, 12);
    const pub = new WireClient(h, 5);
    await pub.connect({ clientId: 'pub' });
    const properties = {
      payloadFormatIndicator: true,
      contentType: 'text/plain',
      responseTopic: 'w/reply',
      correlationData: Buffer.from('corr'),
      userProperties: { a: '1', multi: ['x', 'y'] },
    };
    for (const payload of ['one', 'two']) {
      pub.send({ cmd: 'publish', topic: 'w/x', payload: Buffer.from(payload), qos: 1, dup: false, retain: false, messageId: 5, properties });
      expect((await pub.next('puback')).messageId).toBe(5);
    }
    const first = await sub.next('publish');
    const second = await sub.next('publish');
    for (const p of [first, second] as IPublishPacket[]) {
      expect(p.properties).toMatchObject(properties);
      expect([...(p.properties!.subscriptionIdentifier as number[])].sort()).toEqual([11, 12]);
      expect(p.properties!.topicAlias).toBe(1);
    }
    expect(first.topic).toBe('w/x');
    expect(second.topic).toBe('');
    expect(Buffer.from(second.payload).toString()).toBe('two');
  });

  it('[MQTT-3.1.2-24] the encoded size is checked against the client Maximum Packet Size', async () => {
    const h = harness();
    const sub = new WireClient(h, 5);
    await sub.connect({ clientId: 'sub', properties: { maximumPacketSize: 128 } });
    await sub.subscribe('m', 0);
    const pub = new WireClient(h, 5);
    await pub.connect({ clientId: 'pub' });
    pub.send({ cmd: 'publish', topic: 'm', payload: Buffer.alloc(200, 1), qos: 0, dup: false, retain: false });
    pub.send({ cmd: 'publish', topic: 'm', payload: Buffer.from('small'), qos: 0, dup: false, retain: false });
    const got = await sub.next('publish');
    expect(Buffer.from(got.payload).toString()).toBe('small');
    await sub.flush();
    expect(sub.packets.filter((p) => p.cmd === 'publish')).toEqual([]);
    expect(h.broker.stats.dropped.tooLarge).toBe(1);
  });

  it('[MQTT-3.1.4-3] takeover: the first connection gets DISCONNECT 0x8E and its stream ends', async () => {
    const h = harness();
    const first = new WireClient(h, 5);
    await first.connect({ clientId: 'same' });
    const second = new WireClient(h, 5);
    await second.connect({ clientId: 'same' });
    expect((await first.next('disconnect')).reasonCode).toBe(ReasonCode.SessionTakenOver);
    await first.flush();
    expect(first.ended).toBe(true);
    expect(second.ended).toBe(false);
  });
});
