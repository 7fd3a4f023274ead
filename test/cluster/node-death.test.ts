import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDynamo, startNatsServer, startRedisServer, type DynamoFixture, type NatsFixture, type RedisFixture } from '@fleetmq/testkit';
import { Inbox, connectMqtt, createMqtt, endMqttClients, once, quietPeriod, waitUntil } from '../support/clients.js';
import { startCluster, type Cluster, type ClusterNode } from '../support/cluster.js';

// DESIGN node lifecycle, the hard way: a node is killed (SIGKILL: no drain, no hand-over) while
// it holds connected clients and detached sessions. Real nats-server, redis-server, dynalite and
// three edge-node processes. The live nodes see its heartbeat expire, adopt its client IDs by
// rendezvous hashing (each exactly once), publish the wills of its clients once, and keep
// capturing for its persistent sessions until their clients return.

const NODE_TTL_MS = 1_500;
const persistent5 = { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 0 } as const;

let nats: NatsFixture;
let redis: RedisFixture;
let dynamo: DynamoFixture;
let cluster: Cluster;
let A: ClusterNode;
let B: ClusterNode;
let C: ClusterNode;

beforeAll(async () => {
  [nats, redis, dynamo] = await Promise.all([startNatsServer(), startRedisServer(), startDynamo()]);
  cluster = await startCluster({ nodes: 3, nats, dynamo, redis, env: { FLEETMQ_CLUSTER__REDIS__NODE_TTL: String(NODE_TTL_MS), FLEETMQ_OPS__PORT: '0' } });
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

const adoptions = (clientId: string): number =>
  [B, C].reduce((n, node) => n + node.events.filter((e) => e.msg === 'session_adopted_from_dead_node' && e.clientId === clientId).length, 0);

describe('cluster: a node dies', () => {
  it('live nodes adopt its sessions once each, publish its clients\' wills once, and keep capturing for its persistent sessions', async () => {
    // who watches the wills, on B
    const watcher = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'death-watcher' });
    const wills = new Inbox(watcher);
    await watcher.subscribeAsync('death/status/#', { qos: 1 });

    // on A: a detached persistent session, a connected persistent client with a will, and a
    // 3.1.1 clean-session client with a will
    const away = await connectMqtt(A.url, { ...persistent5, clientId: 'death-away', connectTimeout: 10_000 });
    await away.subscribeAsync('death/away', { qos: 1 });
    await away.endAsync();
    const online = await connectMqtt(A.url, {
      ...persistent5,
      clientId: 'death-online',
      will: { topic: 'death/status/online', payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    await online.subscribeAsync('death/online', { qos: 1 });
    await connectMqtt(A.url, {
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      clientId: 'death-plain',
      will: { topic: 'death/status/plain', payload: Buffer.from('offline'), qos: 1, retain: false },
    });

    process.kill(A.pid, 'SIGKILL');
    expect(await A.exited).toMatchObject({ signal: 'SIGKILL' });

    // the heartbeat lapses after NODE_TTL_MS; a live node polls every third of it
    await wills.wait(2, 15_000);
    await waitUntil(() => adoptions('death-away') === 1 && adoptions('death-online') === 1, 10_000, 'both persistent sessions to be adopted');
    await quietPeriod(2 * NODE_TTL_MS); // more passes of every watcher: nothing is adopted or published twice
    expect(wills.messages.map((m) => m.topic).sort()).toEqual(['death/status/online', 'death/status/plain']);
    for (const id of ['death-away', 'death-online', 'death-plain']) expect(adoptions(id)).toBe(1);

    // the adopters capture QoS 1 for the clients that are away
    const pub = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'death-pub' });
    for (const p of ['a1', 'a2', 'a3']) await pub.publishAsync('death/away', p, { qos: 1 });
    for (const p of ['o1', 'o2']) await pub.publishAsync('death/online', p, { qos: 1 });

    // inboxes and CONNACK waits attached before the CONNECTs: queued messages follow the
    // CONNACK at once, and either client may be answered first
    const backAway = createMqtt(C.url, { ...persistent5, clientId: 'death-away', connectTimeout: 10_000 });
    const awayInbox = new Inbox(backAway);
    const backOnline = createMqtt(B.url, { ...persistent5, clientId: 'death-online', connectTimeout: 10_000 });
    const onlineInbox = new Inbox(backOnline);
    const [[awayConnack], [onlineConnack]] = await Promise.all([
      once<[{ sessionPresent: boolean }]>(backAway, 'connect', 10_000),
      once<[{ sessionPresent: boolean }]>(backOnline, 'connect', 10_000),
    ]);
    expect([awayConnack.sessionPresent, onlineConnack.sessionPresent]).toEqual([true, true]);
    await awayInbox.wait(3, 5_000);
    await onlineInbox.wait(2, 5_000);
    await quietPeriod(300);
    expect(awayInbox.messages.map((m) => m.payload)).toEqual(['a1', 'a2', 'a3']);
    expect(onlineInbox.messages.map((m) => m.payload)).toEqual(['o1', 'o2']);
    expect(wills.messages).toHaveLength(2);
  }, 60_000);
});
