import { createServer, type Server, type Socket } from 'node:net';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MemoryLease,
  MemoryMessageBus,
  MemoryOfflineQueue,
  MemoryRetainedStore,
  MemorySessionOwnership,
  MemorySessionStore,
} from '@fleetmq/adapter-memory';
import { Broker, silentLog, type Lease } from '@fleetmq/broker';
import { collect, waitFor } from '@fleetmq/testkit';
import {
  BridgeManager,
  LocalClient,
  bridgeLeaseName,
  bridgeMetricSamples,
  parseTopicRule,
  type BridgeOptions,
} from '../src/index.js';

/**
 * A scripted remote broker on a free 127.0.0.1 port, speaking mqtt-packet: it records every
 * CONNECT, counts open connections, and refuses a CONNECT with the bridge bit when told to
 * (as a broker without try_private support does: CONNACK 1).
 */
class FakeRemote {
  readonly connects: IConnectPacket[] = [];
  readonly publishes: Packet[] = [];
  open = 0;
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  port = 0;

  constructor(private readonly refuseBridgeBit: boolean) {}

  async start(): Promise<void> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      let version: 3 | 4 | 5 = 4;
      let connected = false;
      const parser = mqttPacket.parser();
      const send = (p: Packet): void => void socket.write(mqttPacket.generate(p, { protocolVersion: version }));
      parser.on('packet', (packet: Packet) => {
        if (packet.cmd === 'connect') {
          this.connects.push(packet);
          version = (packet.protocolVersion ?? 4) as 3 | 4 | 5;
          if (this.refuseBridgeBit && (packet as { bridgeMode?: boolean }).bridgeMode === true) {
            send({ cmd: 'connack', returnCode: 1, sessionPresent: false });
            socket.end();
            return;
          }
          connected = true;
          this.open++;
          send(version === 5 ? { cmd: 'connack', reasonCode: 0, sessionPresent: false } : { cmd: 'connack', returnCode: 0, sessionPresent: false });
        } else if (packet.cmd === 'subscribe') {
          send({ cmd: 'suback', messageId: packet.messageId ?? 0, granted: packet.subscriptions.map((s) => s.qos) });
        } else if (packet.cmd === 'publish') {
          this.publishes.push(packet);
          if (packet.qos === 1) send({ cmd: 'puback', messageId: packet.messageId ?? 0 });
        } else if (packet.cmd === 'pingreq') {
          send({ cmd: 'pingresp' });
        }
      });
      socket.on('data', (d) => parser.parse(d));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        if (connected) this.open--;
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function broker(nodeId: string): Promise<Broker> {
  const b = new Broker({
    nodeId,
    ports: {
      bus: new MemoryMessageBus(),
      ownership: new MemorySessionOwnership(),
      sessions: new MemorySessionStore(),
      offlineQueue: new MemoryOfflineQueue({ maxLength: 100, dropPolicy: 'drop-oldest' }),
      retained: new MemoryRetainedStore(),
    },
  });
  await b.start();
  cleanups.push(() => b.shutdown(0x8b));
  return b;
}

async function remote(refuseBridgeBit = false): Promise<FakeRemote> {
  const r = new FakeRemote(refuseBridgeBit);
  await r.start();
  cleanups.push(() => r.stop());
  return r;
}

function options(name: string, port: number, rest: Partial<BridgeOptions> = {}): BridgeOptions {
  return {
    name,
    addresses: [{ host: '127.0.0.1', port }],
    remoteClientId: name,
    localClientId: `local.${name}`,
    cleanSession: true,
    localCleanSession: true,
    keepAlive: 60,
    protocolVersion: 4,
    tryPrivate: true,
    notifications: false,
    notificationsLocalOnly: false,
    notificationTopic: `$SYS/broker/connection/${name}/state`,
    outgoingRetain: true,
    topics: [parseTopicRule('up/# out 1 "" r/')],
    maxQueued: 100,
    maxInflight: 10,
    reconnect: { baseMs: 50, capMs: 200 },
    roundRobin: false,
    connectTimeoutMs: 2000,
    ...rest,
  };
}

function manager(b: Broker, lease: Lease, nodeId: string, bridges: BridgeOptions[], leaseTtlMs = 600): BridgeManager {
  const m = new BridgeManager({ broker: b, lease, nodeId, bridges, leaseTtlMs, flushMs: 200, log: silentLog });
  cleanups.push(() => m.stop());
  return m;
}

/** An in-process client of a broker (the bridge's own LocalClient), connected. */
async function localPublisher(b: Broker, clientId: string): Promise<LocalClient> {
  const c = new LocalClient(b, { transport: 'test', listener: 'test', remoteAddress: 'test', remotePort: 0 }, { onMessage: () => undefined, onClosed: () => undefined });
  await c.connect({ clientId, cleanStart: true, sessionExpiryInterval: 0 });
  cleanups.push(() => c.disconnect());
  return c;
}

describe('try_private (3.1.1 bridge bit)', () => {
  it('connects with protocol level 0x84 to a remote that takes it', async () => {
    const r = await remote();
    const m = manager(await broker('n1'), new MemoryLease(), 'n1', [options('priv', r.port)]);
    await m.start();
    await waitFor(() => m.stats()[0]!.state === 'connected', 'connected');
    expect(r.connects).toHaveLength(1);
    expect(r.connects[0]).toMatchObject({ protocolVersion: 4, bridgeMode: true, clientId: 'priv' });
  });

  it('falls back to a plain 3.1.1 CONNECT when the remote refuses the bit with CONNACK 1', async () => {
    const r = await remote(true);
    const m = manager(await broker('n1'), new MemoryLease(), 'n1', [options('fallback', r.port)]);
    await m.start();
    await waitFor(() => m.stats()[0]!.state === 'connected', 'connected', { timeoutMs: 3000 });
    expect(r.connects.map((c) => (c as { bridgeMode?: boolean }).bridgeMode === true)).toEqual([true, false]);
    expect(r.open).toBe(1);
  });

  it('sends no bridge bit when try_private is off, nor on 5.0', async () => {
    const r = await remote();
    const m = manager(await broker('n1'), new MemoryLease(), 'n1', [
      options('plain', r.port, { tryPrivate: false }),
      options('v5', r.port, { protocolVersion: 5 }),
    ]);
    await m.start();
    await waitFor(() => m.stats().every((s) => s.state === 'connected'), 'connected');
    for (const c of r.connects) expect((c as { bridgeMode?: boolean }).bridgeMode).toBeUndefined();
    expect(r.connects.map((c) => c.protocolVersion).sort()).toEqual([4, 5]);
  });
});

describe('once per cluster: BridgeManager on a shared lease', () => {
  it('runs each bridge on one node only; the other takes over within a third of the TTL when it stops', async () => {
    const r = await remote();
    const lease = new MemoryLease();
    const [b1, b2] = [await broker('n1'), await broker('n2')];
    const m1 = manager(b1, lease, 'n1', [options('cloud', r.port)]);
    const m2 = manager(b2, lease, 'n2', [options('cloud', r.port)]);
    await m1.start();
    await m2.start();
    await waitFor(() => r.open === 1, 'one remote connection');
    expect(m1.running()).toEqual(['cloud']);
    expect(m2.running()).toEqual([]);
    expect(m2.stats()[0]!.state).toBe('standby');
    expect(await lease.holder(bridgeLeaseName('cloud'))).toMatch(/^n1\//);

    const since = Date.now();
    await m1.stop(); // drain: releases the lease
    await waitFor(() => m2.stats()[0]!.state === 'connected', 'n2 took over', { timeoutMs: 2000 });
    expect(Date.now() - since).toBeLessThan(600); // a third of the TTL, plus the connect
    expect(r.open).toBe(1);
    expect(r.connects).toHaveLength(2);
    expect(await lease.holder(bridgeLeaseName('cloud'))).toMatch(/^n2\//);

    // messages published on n2 now go out through n2's bridge
    const pub = await localPublisher(b2, 'pub');
    await pub.publish('up/x', Buffer.from('1'), 1, false, undefined);
    await waitFor(() => r.publishes.length === 1, 'published at the remote');
    expect(r.publishes[0]).toMatchObject({ topic: 'r/up/x', qos: 1 });
  });

  it('stops a bridge at once when its lease is lost to another holder', async () => {
    const r = await remote();
    let now = 1_000;
    const lease = new MemoryLease({ now: () => now });
    const b = await broker('n1');
    const m = manager(b, lease, 'n1', [options('lost', r.port, { notifications: true })], 300);
    await m.start();
    await waitFor(() => r.open === 1, 'connected');
    const state = async (): Promise<string[]> => (await collect(b.retained.match(['$SYS/broker/connection/lost/state']))).map((x) => x.payload.toString());
    for (let i = 0; i < 100 && (await state())[0] !== '1'; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await state()).toEqual(['1']);
    // the lease runs out (the node stalled) and another node takes it
    now += 10_000;
    expect(await lease.acquire(bridgeLeaseName('lost'), 'other/1', 300_000)).toBe(true);
    await waitFor(() => r.open === 0, 'bridge stopped', { timeoutMs: 2000 });
    expect(m.stats()[0]!.state).toBe('standby');
    expect(m.running()).toEqual([]);
    // the node that lost the lease does not say 0: the bridge runs elsewhere
    expect(await state()).toEqual(['1']);
  });
  it('stops the bridge when the lease cannot be renewed for two thirds of the TTL (Redis down), and runs it again once it can', async () => {
    const r = await remote();
    const inner = new MemoryLease();
    let down = false;
    const unavailable = (): Promise<never> => Promise.reject(new Error('redis down'));
    const lease: Lease = {
      acquire: (...a) => (down ? unavailable() : inner.acquire(...a)),
      renew: (...a) => (down ? unavailable() : inner.renew(...a)),
      release: (...a) => (down ? unavailable() : inner.release(...a)),
      holder: (...a) => (down ? unavailable() : inner.holder(...a)),
      close: () => inner.close(),
    };
    const m = manager(await broker('n1'), lease, 'n1', [options('outage', r.port)], 600);
    await m.start();
    await waitFor(() => r.open === 1, 'connected');
    down = true;
    const since = Date.now();
    await waitFor(() => r.open === 0, 'bridge stopped', { timeoutMs: 2000 });
    // not before its lease could have run out: 2/3 of the TTL since the last renewal
    expect(Date.now() - since).toBeGreaterThanOrEqual(200);
    down = false;
    await waitFor(() => r.open === 1, 'running again', { timeoutMs: 2000 });
  });
});

describe('stats and metric samples', () => {
  it('names the samples as the ops endpoint publishes them', async () => {
    const r = await remote();
    const b = await broker('n1');
    const m = manager(b, new MemoryLease(), 'n1', [options('m', r.port, { notifications: true })]);
    await m.start();
    await waitFor(() => m.stats()[0]!.state === 'connected', 'connected');
    const pub = await localPublisher(b, 'pub');
    await pub.publish('up/a', Buffer.from('a'), 1, false, undefined);
    await waitFor(() => m.stats()[0]!.messagesOut === 1, 'sent');
    expect(bridgeMetricSamples(m.stats())).toEqual([
      { name: 'fleetmq_bridge_state', labels: { bridge: 'm' }, value: 1 },
      { name: 'fleetmq_bridge_messages_total', labels: { bridge: 'm', direction: 'in' }, value: 0 },
      { name: 'fleetmq_bridge_messages_total', labels: { bridge: 'm', direction: 'out' }, value: 1 },
      { name: 'fleetmq_bridge_queue_length', labels: { bridge: 'm' }, value: 0 },
      { name: 'fleetmq_bridge_dropped_total', labels: { bridge: 'm' }, value: 0 },
    ]);
    // the notification went to the remote as a retained '1', not counted as a bridged message
    expect(r.publishes.map((p) => p.cmd === 'publish' && [p.topic, p.payload.toString(), p.retain])).toEqual([
      ['$SYS/broker/connection/m/state', '1', true],
      ['r/up/a', 'a', false],
    ]);
    // and a will of '0' on the same topic
    expect(r.connects[0]!.will).toMatchObject({ topic: '$SYS/broker/connection/m/state', retain: true, qos: 1 });
    expect(r.connects[0]!.will!.payload.toString()).toBe('0');
  });
});
