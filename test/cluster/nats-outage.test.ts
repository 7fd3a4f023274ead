import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IDisconnectPacket } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDynamo, startNatsServer, type DynamoFixture, type NatsFixture } from '@fleetmq/testkit';
import {
  Inbox,
  MosquittoSub,
  connectMqtt,
  createMqtt,
  endMqttClients,
  killSpawned,
  mosquittoPub,
  once,
  quietPeriod,
  waitUntil,
  withTimeout,
} from '../support/clients.js';
import { natsConnections, startCluster, type Cluster, type ClusterNode } from '../support/cluster.js';

// NATS dies under a running three-node cluster and comes back (DESIGN invariant 8): while it
// is down, QoS 1/2 publishes are refused, never acknowledged (5.0: DISCONNECT 0x89 Server
// busy; 3.1.1: the connection closed); once it is back, the nodes recover by themselves and
// the subscriptions made before the outage deliver again, across nodes.
//
// The outage: the nats fixture's restart() kills and relaunches in one call, leaving no time
// to act while NATS is down, and stop() ends the fixture for good. So the server writes its
// PID file (-P), the test kills that PID (SIGKILL, a crash), and restart() then relaunches it
// on the same port (the fixture sees its child has exited and only launches).

const RECONNECT_WAIT_MS = 200;

let nats: NatsFixture;
let dynamo: DynamoFixture;
let cluster: Cluster;
let monitorPort: number;
let pidDir: string;
let pidFile: string;
let A: ClusterNode;
let B: ClusterNode;
let C: ClusterNode;

beforeAll(async () => {
  monitorPort = await freePort();
  pidDir = mkdtempSync(join(tmpdir(), 'fleetmq-nats-pid-'));
  pidFile = join(pidDir, 'nats.pid');
  [nats, dynamo] = await Promise.all([startNatsServer({ args: ['-m', String(monitorPort), '-P', pidFile] }), startDynamo()]);
  cluster = await startCluster({
    nodes: 3,
    nats,
    dynamo,
    env: { FLEETMQ_CLUSTER__NATS__RECONNECT_TIME_WAIT: String(RECONNECT_WAIT_MS) },
  });
  [A, B, C] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

afterAll(async () => {
  killSpawned();
  await endMqttClients();
  await cluster?.stop();
  await Promise.allSettled([nats?.stop(), dynamo?.stop()]);
  if (pidDir !== undefined) rmSync(pidDir, { recursive: true, force: true });
});

afterEach(async () => {
  killSpawned();
  await endMqttClients();
});

/** Kills the fixture's nats-server by the PID it wrote, after checking that PID is that server. */
async function crashNats(): Promise<void> {
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  expect(Number.isInteger(pid) && pid > 1).toBe(true);
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  expect(cmdline).toContain(String(nats.port));
  expect(cmdline).toContain(pidFile);
  process.kill(pid, 'SIGKILL');
  await waitUntil(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 5000, 'nats-server to exit');
}

const count = (node: ClusterNode, msg: string): number => node.events.filter((e) => e.msg === msg).length;

describe('cluster: NATS killed and restarted', () => {
  it('refuses QoS 1/2 while NATS is down, and recovers by itself: subscriptions from before deliver again across nodes', async () => {
    // ---- before: subscriptions on B (mqtt.js) and C (mosquitto_sub), publisher on A
    const subB = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'out-sub-b' });
    const inboxB = new Inbox(subB);
    let subBClosed = false;
    subB.on('close', () => {
      subBClosed = true;
    });
    await subB.subscribeAsync('out/#', { qos: 1 });
    const subC = new MosquittoSub({ port: C.port, version: 'mqttv311', topics: ['out/t'], qos: 1, timeoutSec: 40, keepAlive: 60 });
    await subC.subscribed();

    // on A: a subscriber of a topic only A has, and its publisher, which reconnects by itself
    // (mqtt.js resends an unacknowledged QoS 1 publish after every reconnect)
    const subA = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'out-sub-a' });
    const inboxA = new Inbox(subA);
    await subA.subscribeAsync('local/t', { qos: 1 });
    const auto = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'out-auto', reconnectPeriod: 250 });
    const autoDisconnects: IDisconnectPacket[] = [];
    auto.on('disconnect', (p: IDisconnectPacket) => autoDisconnects.push(p));
    // the cross-node publisher on A reconnects when told to (below), keeping its unacknowledged message
    const pub5 = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'out-pub5' });
    const pub5Disconnects: IDisconnectPacket[] = [];
    pub5.on('disconnect', (p: IDisconnectPacket) => pub5Disconnects.push(p));
    const q0 = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'out-q0' });
    let q0Closed = false;
    q0.on('close', () => {
      q0Closed = true;
    });

    await pub5.publishAsync('out/t', 'before', { qos: 1 });
    await inboxB.wait(1);
    expect((await subC.waitMessages(1)).map((m) => m.payload)).toEqual(['before']);

    const disconnectsBefore = [A, B, C].map((n) => count(n, 'bus_disconnected'));
    const reconnectsBefore = [A, B, C].map((n) => count(n, 'bus_reconnected'));
    const natsPidBefore = readFileSync(pidFile, 'utf8').trim();

    // ---- NATS down
    await crashNats();
    await Promise.all([A, B, C].map((n, i) => n.waitForEvent((e) => e.msg === 'bus_disconnected', disconnectsBefore[i]! + 1, 5000)));

    // v5 QoS 1: not acknowledged; DISCONNECT 0x89 Server busy. The client keeps the message.
    let duringAcked = false;
    const pub5Closed = once(pub5, 'close');
    const duringDone = pub5.publishAsync('out/t', 'during', { qos: 1 }).then(() => {
      duringAcked = true;
    });
    await pub5Closed;
    expect(pub5Disconnects.map((p) => p.reasonCode)).toEqual([0x89]);
    // the same for the client that reconnects by itself: refused again after each reconnect
    let autoAcked = false;
    const autoDone = auto.publishAsync('local/t', 'during-auto', { qos: 1 }).then(() => {
      autoAcked = true;
    });
    await waitUntil(() => autoDisconnects.length >= 2, 5000, 'two refusals of the reconnecting publisher');
    expect(new Set(autoDisconnects.map((p) => p.reasonCode))).toEqual(new Set([0x89]));

    // v5 QoS 2: not acknowledged either (no PUBREC)
    const pub5q2 = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'out-pub5-q2' });
    const q2Disconnect = once<[IDisconnectPacket]>(pub5q2, 'disconnect');
    const q2Closed = once(pub5q2, 'close');
    let q2Acked = false;
    pub5q2.publish('out/t', 'during-q2', { qos: 2 }, (err) => {
      if (!err) q2Acked = true;
    });
    expect((await q2Disconnect)[0].reasonCode).toBe(0x89);
    await q2Closed;

    // 3.1.1 QoS 1: no PUBACK, the connection is closed (3.x has no DISCONNECT from the server)
    const pub3 = createMqtt(B.url, { protocolVersion: 4, clientId: 'out-pub3' });
    await once(pub3, 'connect');
    let pub3Disconnect = false;
    pub3.on('disconnect', () => {
      pub3Disconnect = true;
    });
    let pub3Acked = false;
    const pub3Closed = once(pub3, 'close');
    pub3.publish('out/t', 'during-311', { qos: 1 }, (err) => {
      if (!err) pub3Acked = true;
    });
    await pub3Closed;
    expect(pub3Disconnect).toBe(false);

    // the same with mosquitto_pub 3.1.1: it never sees a PUBACK and reports the lost connection
    const mosq = await mosquittoPub({ port: C.port, version: 'mqttv311', topic: 'out/t', message: 'during-mosq', qos: 1 });
    expect(mosq.stdout).toMatch(/sending PUBLISH \(d0, q1/);
    expect(mosq.stdout).not.toMatch(/received PUBACK/);
    expect(mosq.exit.code).not.toBe(0);
    expect(mosq.stderr).toMatch(/connection was lost/i);

    // QoS 0 may be lost; it does not cost the client its connection
    q0.publish('out/t', 'during-q0', { qos: 0 });

    // a new subscription cannot be made on the bus while NATS is down: refused in the SUBACK
    const late = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'out-late-sub' });
    const lateInbox = new Inbox(late);
    const refused = await late.subscribeAsync('out/late', { qos: 1 }).then(
      () => undefined,
      (err: { packet?: { granted?: unknown[] } }) => err.packet?.granted,
    );
    expect(refused).toEqual([0x80]); // 5.0: Unspecified error

    await quietPeriod(300);
    expect(duringAcked).toBe(false);
    expect(autoAcked).toBe(false);
    expect(q2Acked).toBe(false);
    expect(pub3Acked).toBe(false);
    expect(q0Closed).toBe(false);
    expect(subBClosed).toBe(false);
    // nothing published while NATS was down reached anyone
    expect(inboxB.messages.map((m) => m.payload)).toEqual(['before']);
    expect(inboxA.messages).toEqual([]);

    // ---- NATS back (same port, a new process); the nodes reconnect by themselves
    await nats.restart();
    expect(readFileSync(pidFile, 'utf8').trim()).not.toBe(natsPidBefore);
    await Promise.all([A, B, C].map((n, i) => n.waitForEvent((e) => e.msg === 'bus_reconnected', reconnectsBefore[i]! + 1, 10_000)));

    // the reconnecting client's resend is accepted once A's bus is back, and delivered on A
    await withTimeout(autoDone, 5000, 'the refused QoS 1 publish of the reconnecting client to be accepted');
    expect((await inboxA.wait(1)).map((m) => m.payload)).toEqual(['during-auto']);
    // (not across nodes: a resend accepted while another node is still reconnecting to NATS
    // is not delivered there; NATS core keeps nothing for a connection that is not there)

    // every node is back: the other publisher reconnects with its unacknowledged message, which
    // is now accepted and delivered across nodes
    pub5.reconnect({ incomingStore: pub5.incomingStore, outgoingStore: pub5.outgoingStore });
    await withTimeout(duringDone, 5000, 'the refused QoS 1 publish to be accepted after NATS came back');
    expect(duringAcked).toBe(true);

    // B's and C's subscriptions were made before the outage and never renewed by the clients:
    // the nodes' NATS subscriptions were replayed on reconnect
    const connz = await natsConnections(monitorPort);
    expect(connz.get(B.id)?.subscriptions_list?.sort()).toEqual(['mqtt.out', 'mqtt.out.>']);
    expect(connz.get(C.id)?.subscriptions_list).toEqual(['mqtt.out.t']);
    expect(connz.get(A.id)?.subscriptions_list).toEqual(['mqtt.local.t']);

    await pub5.publishAsync('out/t', 'after', { qos: 1 });
    await q0.publishAsync('out/t', 'after-q0', { qos: 1 });
    const gotB = await inboxB.wait(3, 5000, (m) => m.payload !== 'during-q0');
    expect(gotB.map((m) => m.payload)).toEqual(['before', 'during', 'after']);
    await inboxB.wait(1, 5000, (m) => m.payload === 'after-q0');
    const gotC = (await subC.waitForLines((l) => l.startsWith('{') && !l.includes('during-q0'), 4)).map(
      (l) => (JSON.parse(l) as { payload: string }).payload,
    );
    expect(gotC).toEqual(['before', 'during', 'after', 'after-q0']);
    expect(subBClosed).toBe(false);
    expect(q0Closed).toBe(false);
    expect(subC.running).toBe(true);

    // a new subscription after the outage works too, across nodes
    const fresh = await connectMqtt(C.url, { protocolVersion: 4, clientId: 'out-fresh' });
    const freshInbox = new Inbox(fresh);
    await fresh.subscribeAsync('out/late', { qos: 1 });
    await pub5.publishAsync('out/late', 'fresh', { qos: 1 });
    expect((await freshInbox.wait(1)).map((m) => m.payload)).toEqual(['fresh']);
    // the subscription refused during the outage stayed refused: its client, still connected
    // on the same node, gets nothing for it now that the node has that filter on the bus
    await quietPeriod(200);
    expect(lateInbox.messages.map((m) => m.payload)).toEqual([]);
    // the refused 3.1.1, mosquitto_pub and QoS 2 messages were never delivered (their clients did not resend them)
    expect(inboxA.messages.map((m) => m.payload)).toEqual(['during-auto']);
    expect(inboxB.messages.map((m) => m.payload).filter((p) => ['during-311', 'during-q2', 'during-mosq'].includes(p))).toEqual([]);
  });
});
