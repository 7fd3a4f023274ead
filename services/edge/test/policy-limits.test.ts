/**
 * Policy limits matched by listener, user and group (the `groups` map and a JWT groups
 * claim), connection limits per listener, and the disconnect of a client whose JWT expires:
 * an edge node started from config, driven by mqtt.js and by raw packets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import type { IConnackPacket, IDisconnectPacket, MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RawMqttClient } from '@fleetmq/testkit';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';
import { Inbox, connectMqtt, createMqtt, endMqttClients, mosquittoPasswdFile, once, quietPeriod } from '../../../test/support/clients.js';

const JWT_SECRET = 'a policy test secret that is at least 32 bytes';

async function jwt(sub: string, groups: string[], expiresInSeconds = 600): Promise<string> {
  return new SignJWT({ groups })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

type Version = 4 | 5;

/** A raw client connected (CONNACK read) on `port`. */
async function rawConnect(port: number, version: Version, connect: Partial<Extract<Packet, { cmd: 'connect' }>>): Promise<{ raw: RawMqttClient; connack: IConnackPacket }> {
  const raw = await RawMqttClient.tcp(port, version);
  raw.write(
    mqttPacket.generate(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, keepalive: 30, clientId: `raw-${Math.random().toString(36).slice(2)}`, ...connect },
      { protocolVersion: version },
    ),
  );
  expect(await raw.packetsOrClose(1, 3000)).toBe(true);
  const connack = raw.packets.shift() as IConnackPacket;
  expect(connack.cmd).toBe('connack');
  return { raw, connack };
}

function send(raw: RawMqttClient, version: Version, packet: Packet): void {
  raw.write(mqttPacket.generate(packet, { protocolVersion: version }));
}

describe('policy and connection limits on an edge node', () => {
  let dir: string;
  let node: RunningNode;
  const ports: Record<string, number> = {};
  const raws: RawMqttClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-policies-'));
    const passwd = mosquittoPasswdFile(path.join(dir, 'passwd'), [['alice', 'alice-pw'], ['gw-1', 'gw-pw'], ['bob', 'bob-pw']]);
    const config = parseConfig({
      nodeId: 'policy-node',
      log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
      ops: { port: 0 },
      listeners: [
        { type: 'tcp', name: 'internal', host: '127.0.0.1', port: 0 },
        { type: 'tcp', name: 'public', host: '127.0.0.1', port: 0 },
        { type: 'tcp', name: 'capped', host: '127.0.0.1', port: 0, maxConnections: 2 },
        { type: 'tcp', name: 'throttled', host: '127.0.0.1', port: 0, connectionRate: { perSecond: 0.01, burst: 2 } },
      ],
      auth: { allowAnonymous: true, passwordFile: passwd, jwt: { secret: JWT_SECRET }, failureThrottle: false },
      limits: { maxPayloadSize: 1024 },
      groups: { gateways: ['gw-1'] },
      policies: [
        { name: 'alice', match: { users: ['alice'] }, limits: { maximumQoS: 1 } },
        { name: 'gateways', match: { groups: ['gateways'] }, limits: { maxPacketSize: 512 } },
        { name: 'slow-readers', match: { groups: ['slow'] }, limits: { maxInflight: 1 } },
        { name: 'public', match: { listeners: ['public'] }, limits: { maxPayloadSize: 16, retain: 'stripped' } },
      ],
    });
    node = await startNode(config, createLogger(config.log.level, process.stderr));
    for (const a of node.addresses()) ports[a.name] = a.port;
  });

  afterEach(async () => {
    for (const r of raws.splice(0)) r.destroy();
    await endMqttClients();
  });

  afterAll(async () => {
    await node?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const url = (listener: string) => `mqtt://127.0.0.1:${ports[listener]}`;

  async function watcher(filter: string): Promise<Inbox> {
    const w = await connectMqtt(url('internal'), { protocolVersion: 5, clientId: `w-${Math.random().toString(36).slice(2)}` });
    const inbox = new Inbox(w);
    await w.subscribeAsync(filter, { qos: 1, rap: true });
    return inbox;
  }

  describe('matched by listener: the public listener takes 16-byte payloads and strips retain', () => {
    it.each([4, 5] as const)('MQTT %s: over the payload limit is refused there, the same message passes on another listener', async (version) => {
      const inbox = await watcher(`pl/${version}/#`);
      const pub = await connectMqtt(url('public'), { protocolVersion: version, clientId: `pub-${version}` });
      const big = 'x'.repeat(17);
      if (version === 5) {
        await expect(pub.publishAsync(`pl/${version}/big`, big, { qos: 1 })).rejects.toMatchObject({ code: 0x97 });
      } else {
        await pub.publishAsync(`pl/${version}/big`, big, { qos: 1 }); // acknowledged and dropped, as Mosquitto
      }
      await pub.publishAsync(`pl/${version}/small`, 'ok', { qos: 1, retain: true });
      const internal = await connectMqtt(url('internal'), { protocolVersion: version, clientId: `int-${version}` });
      await internal.publishAsync(`pl/${version}/big`, big, { qos: 1 });
      const got = await inbox.wait(2);
      expect(got.map((m) => [m.topic, m.payload.length, m.packet.retain])).toEqual([
        [`pl/${version}/small`, 2, false],
        [`pl/${version}/big`, 17, false],
      ]);
    });
  });

  describe('matched by user: alice has maximum QoS 1', () => {
    it('MQTT 5: CONNACK says Maximum QoS 1; her QoS 2 PUBLISH is DISCONNECT 0x9B; bob keeps QoS 2', async () => {
      const { raw, connack } = await rawConnect(ports.internal!, 5, { username: 'alice', password: Buffer.from('alice-pw') });
      raws.push(raw);
      expect(connack.reasonCode).toBe(0);
      expect(connack.properties?.maximumQoS).toBe(1);
      send(raw, 5, { cmd: 'publish', topic: 'alice/t', payload: Buffer.from('x'), qos: 2, messageId: 1, retain: false, dup: false });
      expect(await raw.packetsOrClose(1, 3000)).toBe(true);
      expect(raw.take()).toEqual([{ cmd: 'disconnect', reasonCode: 0x9b }]);
      expect(await raw.until(() => raw.closed, 3000)).toBe(true);
      const bob = await rawConnect(ports.internal!, 5, { username: 'bob', password: Buffer.from('bob-pw') });
      raws.push(bob.raw);
      expect(bob.connack.properties?.maximumQoS).toBeUndefined();
    });

    it('MQTT 3.1.1 (mqtt.js): a QoS 2 subscription is granted QoS 1, a QoS 2 PUBLISH closes the connection', async () => {
      const alice = await connectMqtt(url('internal'), { protocolVersion: 4, clientId: 'alice-311', username: 'alice', password: 'alice-pw' });
      expect((await alice.subscribeAsync('alice/#', { qos: 2 })).map((g) => g.qos)).toEqual([1]);
      const closed = once(alice, 'close');
      alice.publish('alice/t', 'x', { qos: 2 });
      await closed;
    });
  });

  describe('matched by group (the groups map): gw-1 may send packets of 512 bytes at most', () => {
    it.each([4, 5] as const)('MQTT %s: a 600-byte PUBLISH closes the connection (5.0: DISCONNECT 0x95); bob may send it', async (version) => {
      const gw = await rawConnect(ports.internal!, version, { username: 'gw-1', password: Buffer.from('gw-pw') });
      raws.push(gw.raw);
      if (version === 5) expect(gw.connack.properties?.maximumPacketSize).toBe(512);
      const publish: Packet = { cmd: 'publish', topic: 'gw/t', payload: Buffer.alloc(600, 1), qos: 1, messageId: 1, retain: false, dup: false };
      const before = node.broker.stats.limits.packetSize;
      send(gw.raw, version, publish);
      expect(await gw.raw.until(() => gw.raw.closed, 3000)).toBe(true);
      expect(gw.raw.take()).toEqual(version === 5 ? [{ cmd: 'disconnect', reasonCode: 0x95 }] : []);
      expect(node.broker.stats.limits.packetSize).toBe(before + 1);
      const bob = await rawConnect(ports.internal!, version, { username: 'bob', password: Buffer.from('bob-pw') });
      raws.push(bob.raw);
      send(bob.raw, version, publish);
      expect(await bob.raw.packetsOrClose(1, 3000)).toBe(true);
      expect(bob.raw.take()).toEqual([{ cmd: 'puback' }]);
    });
  });

  describe('matched by group (a JWT groups claim): slow readers get one message in flight', () => {
    it.each([4, 5] as const)('MQTT %s: the next QoS 1 message waits for the PUBACK, whatever Receive Maximum the client asked for', async (version) => {
      const token = await jwt(`reader-${version}`, ['slow']);
      const { raw, connack } = await rawConnect(ports.internal!, version, {
        username: `reader-${version}`,
        password: Buffer.from(token),
        ...(version === 5 ? { properties: { receiveMaximum: 50 } } : {}),
      });
      raws.push(raw);
      expect(connack.reasonCode ?? connack.returnCode).toBe(0);
      send(raw, version, { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `slow/${version}`, qos: 1 }] });
      expect(await raw.packetsOrClose(1, 3000)).toBe(true);
      expect(raw.take()).toEqual([{ cmd: 'suback', codes: [1] }]);
      const pub = await connectMqtt(url('internal'), { protocolVersion: 5, clientId: `slow-pub-${version}` });
      for (const n of [1, 2, 3]) await pub.publishAsync(`slow/${version}`, String(n), { qos: 1 });
      expect(await raw.packetsOrClose(1, 3000)).toBe(true);
      await quietPeriod(200);
      const first = raw.packets.splice(0);
      expect(first.map((p) => p.cmd)).toEqual(['publish']);
      send(raw, version, { cmd: 'puback', messageId: (first[0] as { messageId: number }).messageId });
      expect(await raw.packetsOrClose(1, 3000)).toBe(true);
      await quietPeriod(100);
      expect(raw.packets.splice(0).map((p) => (p as { payload: Buffer }).payload.toString())).toEqual(['2']);
    });
  });

  describe('connection limits per listener', () => {
    it('maxConnections 2: mqtt.js 5.0 gets CONNACK 0x97, mqtt.js 3.1.1 return code 3; a freed slot is used again', async () => {
      const a = await connectMqtt(url('capped'), { protocolVersion: 5, clientId: 'cap-a' });
      await connectMqtt(url('capped'), { protocolVersion: 4, clientId: 'cap-b' });
      const v5 = createMqtt(url('capped'), { protocolVersion: 5, clientId: 'cap-c' });
      expect((await once<[Error & { code?: number }]>(v5, 'error'))[0].code).toBe(0x97);
      const v3 = createMqtt(url('capped'), { protocolVersion: 4, clientId: 'cap-d' });
      expect((await once<[Error & { code?: number }]>(v3, 'error'))[0].code).toBe(3);
      expect(node.broker.stats.connectionsRefused.capped).toMatchObject({ connections: 2 });
      await a.endAsync();
      const deadline = Date.now() + 3000;
      while (node.broker.openConnections('capped')! > 1 && Date.now() < deadline) await quietPeriod(20);
      await connectMqtt(url('capped'), { protocolVersion: 5, clientId: 'cap-e' });
    });

    it('raw 3.1.1 and 5.0 CONNECTs over the limit are answered before the close, never just dropped', async () => {
      const deadline = Date.now() + 3000; // the clients of the test before are gone
      while (node.broker.openConnections('capped')! > 0 && Date.now() < deadline) await quietPeriod(20);
      const held = [await rawConnect(ports.capped!, 4, {}), await rawConnect(ports.capped!, 5, {})];
      raws.push(...held.map((h) => h.raw));
      for (const version of [4, 5] as const) {
        const { raw, connack } = await rawConnect(ports.capped!, version, {});
        raws.push(raw);
        expect(connack.reasonCode ?? connack.returnCode).toBe(version === 5 ? 0x97 : 3);
        expect(await raw.until(() => raw.closed, 3000)).toBe(true);
      }
    });

    it('connectionRate: beyond the burst, 5.0 gets CONNACK 0x9F and 3.1.1 return code 3', async () => {
      await connectMqtt(url('throttled'), { protocolVersion: 5, clientId: 'rate-a' });
      await connectMqtt(url('throttled'), { protocolVersion: 4, clientId: 'rate-b' });
      const v5 = await rawConnect(ports.throttled!, 5, {});
      raws.push(v5.raw);
      expect(v5.connack.reasonCode).toBe(0x9f);
      const v3 = createMqtt(url('throttled'), { protocolVersion: 4, clientId: 'rate-d' });
      expect((await once<[Error & { code?: number }]>(v3, 'error'))[0].code).toBe(3);
      expect(node.broker.stats.limits.connectionRate).toBe(2);
      expect(node.broker.stats.connectionsRefused.throttled).toEqual({ connections: 0, connectionRate: 2 });
    });
  });

  describe('a JWT that expires while the client is connected', () => {
    it('MQTT 5: DISCONNECT 0xA0 Maximum connect time when the token expires', async () => {
      const c = await connectMqtt(url('internal'), { protocolVersion: 5, clientId: 'exp-5', username: 'exp-5', password: await jwt('exp-5', [], 2) });
      const [packet] = await once<[IDisconnectPacket]>(c, 'disconnect', 4000);
      expect(packet.reasonCode).toBe(0xa0);
    });

    it('MQTT 3.1.1: the connection is closed when the token expires', async () => {
      const c: MqttClient = await connectMqtt(url('internal'), { protocolVersion: 4, clientId: 'exp-4', username: 'exp-4', password: await jwt('exp-4', [], 2) });
      const started = Date.now();
      await once(c, 'close', 4000);
      expect(Date.now() - started).toBeGreaterThan(500);
      expect(node.broker.stats.auth.expired).toBeGreaterThanOrEqual(1);
    });
  });
});
