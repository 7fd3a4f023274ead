import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Inbox, connectMqtt, createMqtt, endMqttClients, once, quietPeriod, waitUntil } from '../support/clients.js';
import { startClusterWithBackends, type Cluster, type ClusterNode } from '../support/cluster.js';

// A node that is not dead, only paused (SIGSTOP: as a long GC pause or a frozen VM) for longer
// than the heartbeat TTL. It answers nothing, not even over NATS, so the live node adopts its
// clients and publishes their wills. Once it runs again (SIGCONT) it finds its registration
// expired, registers again and lets go of what was adopted: its clients are closed as taken
// over (5.0: DISCONNECT 0x8E), and no will is published a second time.

const NODE_TTL_MS = 1_500;
const TAKEN_OVER = 0x8e;

let cluster: Cluster | undefined;
let A: ClusterNode;
let B: ClusterNode;

beforeAll(async () => {
  cluster = await startClusterWithBackends({ nodes: 2, env: { FLEETMQ_CLUSTER__REDIS__NODE_TTL: String(NODE_TTL_MS), FLEETMQ_OPS__PORT: '0' } });
  [A, B] = cluster.nodes as [ClusterNode, ClusterNode];
});

afterAll(async () => {
  if (A !== undefined) {
    try {
      process.kill(A.pid, 'SIGCONT'); // never leave a stopped process behind
    } catch {
      // exited already
    }
  }
  await endMqttClients();
  await cluster?.stop();
});

afterEach(async () => {
  await endMqttClients();
});

const event = (node: ClusterNode, msg: string, clientId: string): number => node.events.filter((e) => e.msg === msg && e.clientId === clientId).length;

describe('cluster: a node paused beyond its TTL', () => {
  it('is adopted from while it answers nothing; running again, it closes its clients as taken over and publishes no second will', async () => {
    const watcher = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'pause-watcher' });
    const wills = new Inbox(watcher);
    await watcher.subscribeAsync('pause/status/#', { qos: 1 });

    const online = await connectMqtt(A.url, {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
      reconnectPeriod: 0,
      clientId: 'pause-online',
      will: { topic: 'pause/status/online', payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    await online.subscribeAsync('pause/online', { qos: 1 });
    const plain = await connectMqtt(A.url, {
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      clientId: 'pause-plain',
      will: { topic: 'pause/status/plain', payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    const takenOver = once<[{ reasonCode?: number }]>(online, 'disconnect', 30_000);
    const plainClosed = once<[]>(plain, 'close', 30_000);

    process.kill(A.pid, 'SIGSTOP');
    try {
      // B sees A expire, asks it over NATS (no answer from a stopped process), adopts its clients
      await waitUntil(() => event(B, 'session_adopted_from_dead_node', 'pause-online') === 1, 20_000, 'B to adopt pause-online');
      await waitUntil(() => event(B, 'session_adopted_from_dead_node', 'pause-plain') === 1, 10_000, 'B to adopt pause-plain');
      await wills.wait(2, 5_000);
    } finally {
      process.kill(A.pid, 'SIGCONT');
    }

    await A.waitForEvent((e) => e.msg === 'node_registration_expired', 1, 10_000);
    const [[packet]] = await Promise.all([takenOver, plainClosed]);
    expect(packet.reasonCode).toBe(TAKEN_OVER);
    await waitUntil(
      () => event(A, 'session_lost_while_expired', 'pause-online') === 1 && event(A, 'session_lost_while_expired', 'pause-plain') === 1,
      5_000,
      'A to let go of both clients',
    );
    await quietPeriod(500);
    expect(wills.messages.map((m) => m.topic).sort()).toEqual(['pause/status/online', 'pause/status/plain']);
    expect(B.events.some((e) => e.msg === 'node_expired_but_answering')).toBe(false);

    // the session lives on at its adopter: the client returns there and finds it
    const pub = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'pause-pub' });
    await pub.publishAsync('pause/online', 'while-away', { qos: 1 });
    // the inbox is attached before the CONNECT: the queued message follows the CONNACK at once
    const back = createMqtt(B.url, { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 0, clientId: 'pause-online' });
    const inbox = new Inbox(back);
    const [connack] = await once<[{ sessionPresent: boolean }]>(back, 'connect', 10_000);
    expect(connack.sessionPresent).toBe(true);
    await inbox.wait(1, 5_000);
    expect(inbox.messages.map((m) => m.payload)).toEqual(['while-away']);
    await quietPeriod(500);
    expect(wills.messages).toHaveLength(2);
  }, 60_000);
});
