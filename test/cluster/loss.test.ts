import type { IClientOptions, MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDynamo, startNatsServer, startRedisServer, type DynamoFixture, type NatsFixture, type RedisFixture } from '@fleetmq/testkit';
import { connectMqtt, createMqtt, endMqttClients, once, quietPeriod, waitUntil } from '../support/clients.js';
import { startCluster, type Cluster, type ClusterNode } from '../support/cluster.js';

// The loss test of DESIGN invariants 1, 3 and 6: a publisher sends numbered QoS 1 messages
// through node C while persistent subscribers move between nodes, one because its node (A)
// is drained mid-stream, one by a takeover. The checker finds every acknowledged message
// delivered to every subscriber; duplicates are counted and reported (QoS 1 allows them).
// Real nats-server, redis-server, dynalite, three edge-node processes, mqtt.js 5.0 and 3.1.1.

const GRACE_MS = 5_000;
const COUNT = 400;
const TOPIC = 'loss/stream';

let nats: NatsFixture;
let redis: RedisFixture;
let dynamo: DynamoFixture;
let cluster: Cluster;
let A: ClusterNode;
let B: ClusterNode;
let C: ClusterNode;

beforeAll(async () => {
  [nats, redis, dynamo] = await Promise.all([startNatsServer(), startRedisServer(), startDynamo()]);
  cluster = await startCluster({ nodes: 3, nats, dynamo, redis, env: { FLEETMQ_DRAIN__GRACE_PERIOD: String(GRACE_MS), FLEETMQ_OPS__PORT: '0' } });
  [A, B, C] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

afterAll(async () => {
  await endMqttClients();
  await cluster?.stop();
  await Promise.allSettled([nats?.stop(), redis?.stop(), dynamo?.stop()]);
});

afterEach(async () => {
  await endMqttClients();
});

/** A persistent subscriber that may live on several nodes in turn; it records every sequence number it gets. */
class Subscriber {
  readonly got: number[] = [];
  readonly dups: number[] = [];
  client: MqttClient | undefined;
  constructor(
    readonly clientId: string,
    private readonly options: IClientOptions,
  ) {}

  /** Connects to `node` (the inbox is attached before the CONNECT); resolves with Session Present. */
  async connect(node: ClusterNode): Promise<boolean> {
    const client = createMqtt(node.url, { ...this.options, clientId: this.clientId, clean: false });
    client.on('message', (_topic, payload) => {
      const seq = Number(payload.toString());
      if (this.got.includes(seq)) this.dups.push(seq);
      else this.got.push(seq);
    });
    this.client = client;
    const [connack] = await once<[{ sessionPresent: boolean }]>(client, 'connect');
    return connack.sessionPresent;
  }

  missing(upTo: number): number[] {
    const seen = new Set(this.got);
    return Array.from({ length: upTo }, (_, i) => i + 1).filter((n) => !seen.has(n));
  }
}

describe('cluster: nothing acknowledged is lost', () => {
  it(`${COUNT} numbered QoS 1 messages while node A is drained (its subscribers move to B and C) and another subscriber is taken over B → C`, async () => {
    const drained5 = new Subscriber('loss-drained-v5', { protocolVersion: 5, properties: { sessionExpiryInterval: 300 } });
    const drained3 = new Subscriber('loss-drained-v3', { protocolVersion: 4 });
    const moved = new Subscriber('loss-moved-v5', { protocolVersion: 5, properties: { sessionExpiryInterval: 300 } });
    const subscribers = [drained5, drained3, moved];
    expect(await drained5.connect(A)).toBe(false);
    expect(await drained3.connect(A)).toBe(false);
    expect(await moved.connect(B)).toBe(false);
    for (const s of subscribers) await s.client!.subscribeAsync(TOPIC, { qos: 1 });

    // a client closed by the drain reconnects elsewhere at once, as a device behind a load balancer does
    const reconnected: Promise<boolean>[] = [];
    drained5.client!.once('close', () => reconnected.push(drained5.connect(B)));
    drained3.client!.once('close', () => reconnected.push(drained3.connect(C)));

    const publisher = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'loss-publisher' });
    let acked = 0;
    let draining: Promise<{ code: number | null; killed: boolean }> | undefined;
    for (let seq = 1; seq <= COUNT; seq++) {
      await publisher.publishAsync(TOPIC, String(seq), { qos: 1 });
      acked = seq;
      if (seq === COUNT / 4) draining = A.terminate(GRACE_MS + 5_000);
      if (seq === COUNT / 2) expect(await moved.connect(C)).toBe(true); // takeover B → C mid-stream
      if (seq % 20 === 0) await quietPeriod(5);
    }
    expect(await draining).toMatchObject({ code: 0, killed: false });
    expect(await Promise.all(reconnected)).toEqual([true, true]);

    await waitUntil(() => subscribers.every((s) => s.missing(acked).length === 0), 30_000, 'every subscriber to have every acknowledged message').catch(
      (err: Error) => {
        for (const n of [A, B, C]) for (const e of n.events) if (n === A || (typeof e.clientId === 'string' && e.clientId.startsWith('loss-drained'))) console.log('node event', n.id, JSON.stringify(e));
        throw new Error(`${err.message}: ${subscribers.map((s) => `${s.clientId} misses ${JSON.stringify(s.missing(acked))}`).join('; ')}`);
      },
    );
    await quietPeriod(300);
    for (const s of subscribers) expect(s.missing(acked)).toEqual([]);
    console.log(
      `loss test: ${acked} acknowledged QoS 1 messages, delivered to every subscriber; duplicates ${subscribers.map((s) => `${s.clientId} ${s.dups.length}`).join(', ')}`,
    );
  }, 90_000);
});
