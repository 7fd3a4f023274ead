import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDynamo, startNatsServer, type DynamoFixture, type NatsFixture } from '@fleetmq/testkit';
import {
  Inbox,
  MosquittoSub,
  connectMqtt,
  endMqttClients,
  killSpawned,
  mosquittoPub,
  quietPeriod,
  waitUntil,
} from '../support/clients.js';
import { natsConnections, startCluster, type Cluster, type ClusterNode, type NatsConnz } from '../support/cluster.js';

// Three edge-node processes on one nats-server (monitoring on) and one dynalite. Publisher
// and subscribers sit on different nodes, so everything here crosses the bus. Sessions and
// ownership are still per node: no test moves a client ID between nodes.

let nats: NatsFixture;
let dynamo: DynamoFixture;
let cluster: Cluster;
let monitorPort: number;
let A: ClusterNode;
let B: ClusterNode;
let C: ClusterNode;

beforeAll(async () => {
  monitorPort = await freePort();
  [nats, dynamo] = await Promise.all([startNatsServer({ args: ['-m', String(monitorPort)] }), startDynamo()]);
  cluster = await startCluster({ nodes: 3, nats, dynamo });
  [A, B, C] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

afterAll(async () => {
  killSpawned();
  await endMqttClients();
  await cluster?.stop();
  await Promise.allSettled([nats?.stop(), dynamo?.stop()]);
});

afterEach(async () => {
  killSpawned();
  await endMqttClients();
});

const texts = (inbox: Inbox): string[] => inbox.messages.map((m) => `${m.topic} ${m.payload}`);

describe('cluster: publish on one node, receive on another', () => {
  it('QoS 0, 1 and 2 cross nodes with mqtt.js and mosquitto clients, each message once, QoS downgraded by the subscription', async () => {
    const subB = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'qos-sub-b' });
    const inboxB = new Inbox(subB);
    await subB.subscribeAsync('qos/#', { qos: 2 });
    const subB1 = await connectMqtt(B.url, { protocolVersion: 4, clientId: 'qos-sub-b-q1' });
    const inboxB1 = new Inbox(subB1);
    await subB1.subscribeAsync('qos/#', { qos: 1 });
    const mosqC = new MosquittoSub({ port: C.port, version: 'mqttv5', topics: ['qos/#'], qos: 2, count: 6, timeoutSec: 15 });
    await mosqC.subscribed();

    const pubA = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'qos-pub-a' });
    for (const qos of [0, 1, 2] as const) await pubA.publishAsync(`qos/mqttjs/${qos}`, `m${qos}`, { qos });
    for (const qos of [0, 1, 2] as const) {
      const r = await mosquittoPub({ port: A.port, version: 'mqttv311', topic: `qos/mosq/${qos}`, message: `p${qos}`, qos });
      expect(r.exit.code).toBe(0);
      if (qos === 1) expect(r.stdout).toMatch(/received PUBACK/);
      if (qos === 2) expect(r.stdout).toMatch(/received PUBREC[\s\S]*sending PUBREL[\s\S]*received PUBCOMP/);
    }

    const expected = [0, 1, 2].flatMap((q) => [`qos/mqttjs/${q} m${q}`, `qos/mosq/${q} p${q}`]).sort();
    await inboxB.wait(6);
    await inboxB1.wait(6);
    const fromC = await mosqC.waitMessages(6);
    await quietPeriod(300); // no second copy of anything
    expect(texts(inboxB).sort()).toEqual(expected);
    expect(texts(inboxB1).sort()).toEqual(expected);
    expect(fromC.map((m) => `${m.topic} ${m.payload}`).sort()).toEqual(expected);
    for (const m of inboxB.messages) expect(m.packet.qos).toBe(Number(m.topic.slice(-1)));
    for (const m of inboxB1.messages) expect(m.packet.qos).toBe(Math.min(1, Number(m.topic.slice(-1))));
    for (const m of fromC) expect(m.qos).toBe(Number(m.topic.slice(-1)));
    expect((await mosqC.waitExit()).code).toBe(0);
  });

  it("wildcards across nodes: '+' and '#', and '#' also matches the parent level", async () => {
    const plus = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'wc-plus-b' });
    const plusInbox = new Inbox(plus);
    await plus.subscribeAsync('wc/+/temp', { qos: 1 });
    const hash = await connectMqtt(B.url, { protocolVersion: 4, clientId: 'wc-hash-b' });
    const hashInbox = new Inbox(hash);
    await hash.subscribeAsync('wc/#', { qos: 1 });
    const sub = new MosquittoSub({ port: C.port, version: 'mqttv311', topics: ['wc/a/#'], qos: 1, count: 5, timeoutSec: 10 });
    await sub.subscribed();

    const pub = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'wc-pub-a' });
    const topics = ['wc/a/temp', 'wc/b/temp', 'wc/a/hum', 'wc/a', 'wc', 'wc/a/b/c', 'other/a/temp', 'wc/end/temp', 'wc/a/end'];
    for (const topic of topics) await pub.publishAsync(topic, 'x', { qos: 1 });

    await plusInbox.wait(3);
    await hashInbox.wait(8);
    const fromC = await sub.waitMessages(5);
    await quietPeriod(200);
    // one publisher, each publish acknowledged before the next: the order is kept end to end
    expect(plusInbox.messages.map((m) => m.topic)).toEqual(['wc/a/temp', 'wc/b/temp', 'wc/end/temp']);
    expect(hashInbox.messages.map((m) => m.topic)).toEqual(['wc/a/temp', 'wc/b/temp', 'wc/a/hum', 'wc/a', 'wc', 'wc/a/b/c', 'wc/end/temp', 'wc/a/end']);
    expect(fromC.map((m) => m.topic)).toEqual(['wc/a/temp', 'wc/a/hum', 'wc/a', 'wc/a/b/c', 'wc/a/end']);
    expect((await sub.waitExit()).code).toBe(0);
  });

  it("'$' topics are not matched by a leading wildcard on another node, but by a '$' filter", async () => {
    const wild = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'dollar-wild-b' });
    const wildInbox = new Inbox(wild);
    await wild.subscribeAsync(['#', '+/status', '+/+'], { qos: 1 });
    const dollar = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'dollar-c' });
    const dollarInbox = new Inbox(dollar);
    await dollar.subscribeAsync(['$fleet/#', '$things/+'], { qos: 1 });
    const mosqWild = new MosquittoSub({ port: C.port, version: 'mqttv311', topics: ['#'], qos: 1, count: 1, timeoutSec: 10 });
    await mosqWild.subscribed();

    const pub = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'dollar-pub-a' });
    await pub.publishAsync('$fleet/status', 'hidden', { qos: 1 });
    await pub.publishAsync('$things/status', 'hidden', { qos: 0 }); // not $SYS: clients may not publish there
    await pub.publishAsync('$fleet', 'hidden', { qos: 1 });
    // the sentinel comes after them on the same path: a '$' copy would have arrived first
    await pub.publishAsync('plain/status', 'seen', { qos: 1 });

    await wildInbox.wait(1);
    await dollarInbox.wait(3);
    const [m] = await mosqWild.waitMessages(1);
    await quietPeriod(200);
    expect(texts(wildInbox)).toEqual(['plain/status seen']); // three matching filters, one copy
    expect(m).toMatchObject({ topic: 'plain/status', payload: 'seen' });
    expect(texts(dollarInbox).sort()).toEqual(['$fleet hidden', '$fleet/status hidden', '$things/status hidden']);
  });

  it('No Local across nodes: only the publishing client ID is skipped', async () => {
    const x = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'nl-x' });
    const xInbox = new Inbox(x);
    await x.subscribeAsync('nl/t', { qos: 1, nl: true });
    const y = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'nl-y' });
    const yInbox = new Inbox(y);
    await y.subscribeAsync('nl/t', { qos: 1 });
    const w = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'nl-w' });
    const wInbox = new Inbox(w);
    await w.subscribeAsync('nl/t', { qos: 1, nl: true });
    const z = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'nl-z' });

    await x.publishAsync('nl/t', 'from-x', { qos: 1 }); // on A, X's own node
    await w.publishAsync('nl/t', 'from-w', { qos: 1 }); // on C
    await z.publishAsync('nl/t', 'from-z', { qos: 1 }); // another client on A: not "local" to X

    await xInbox.wait(2);
    await yInbox.wait(3);
    await wInbox.wait(2);
    await quietPeriod(300);
    expect(xInbox.messages.map((m) => m.payload)).toEqual(['from-w', 'from-z']);
    expect(yInbox.messages.map((m) => m.payload)).toEqual(['from-x', 'from-w', 'from-z']);
    expect(wInbox.messages.map((m) => m.payload)).toEqual(['from-x', 'from-z']);
  });
});

describe('cluster: retained messages live in DynamoDB', () => {
  it('set on A is received by a new subscriber on C; replaced on B; deleted from C with an empty payload', async () => {
    const set = await mosquittoPub({ port: A.port, version: 'mqttv311', topic: 'ret/dev1', message: 'v1', qos: 1, retain: true });
    expect(set.exit.code).toBe(0);
    expect(set.stdout).toMatch(/received PUBACK/);

    // a subscriber on C that never saw the publish gets it from the store, retain flag set
    const c1 = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'ret-c1' });
    const c1Inbox = new Inbox(c1);
    await c1.subscribeAsync('ret/+', { qos: 1 });
    const [first] = await c1Inbox.wait(1);
    expect([first!.topic, first!.payload, first!.packet.retain, first!.packet.qos]).toEqual(['ret/dev1', 'v1', true, 1]);

    // replaced from B: the live subscriber gets it as a live message (retain 0), a new one from the store
    const b = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'ret-pub-b' });
    await b.publishAsync('ret/dev1', 'v2', { qos: 1, retain: true });
    await b.publishAsync('ret/other', 'o', { qos: 1, retain: true });
    const live = await c1Inbox.wait(3);
    expect(live.slice(1).map((m) => [m.topic, m.payload, m.packet.retain])).toEqual([
      ['ret/dev1', 'v2', false],
      ['ret/other', 'o', false],
    ]);
    const mosqA = new MosquittoSub({ port: A.port, version: 'mqttv5', topics: ['ret/+'], qos: 1, timeoutSec: 10 });
    const fromStore = await mosqA.waitMessages(2);
    expect(fromStore.map((m) => [m.topic, m.payload, m.retain]).sort()).toEqual([
      ['ret/dev1', 'v2', 1],
      ['ret/other', 'o', 1],
    ]);

    // deleted from C (empty retained payload): a new subscriber on A gets only the other one
    const del = await mosquittoPub({ port: C.port, version: 'mqttv5', topic: 'ret/dev1', nullMessage: true, qos: 1, retain: true });
    expect(del.exit.code).toBe(0);
    const a2 = await connectMqtt(A.url, { protocolVersion: 4, clientId: 'ret-a2' });
    const a2Inbox = new Inbox(a2);
    await a2.subscribeAsync('ret/#', { qos: 1 });
    await a2Inbox.wait(1);
    await quietPeriod(300);
    expect(a2Inbox.messages.map((m) => [m.topic, m.payload, m.packet.retain])).toEqual([['ret/other', 'o', true]]);
    // the deletion itself went out live to the subscriber on C (an empty message, retain 0)
    const after = await c1Inbox.wait(4);
    expect([after[3]!.topic, after[3]!.payload, after[3]!.packet.retain]).toEqual(['ret/dev1', '', false]);
    // and a new subscriber on B sees no 'ret/dev1' either
    const b2 = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'ret-b2' });
    const b2Inbox = new Inbox(b2);
    await b2.subscribeAsync('ret/dev1', { qos: 1 });
    await b2.subscribeAsync('ret/other', { qos: 1 }); // sentinel: answered after the first SUBSCRIBE's retained messages
    await b2Inbox.wait(1);
    await quietPeriod(200);
    expect(texts(b2Inbox)).toEqual(['ret/other o']);
  });
});

describe('cluster: shared subscriptions', () => {
  it('$share/g/topic with one member on each node: every message delivered once in the group, every member gets some', async () => {
    const N = 60;
    const members = await Promise.all(
      [A, B, C].map(async (node, i) => {
        const client = await connectMqtt(node.url, { protocolVersion: 5, clientId: `share-m${i}` });
        const inbox = new Inbox(client);
        await client.subscribeAsync('$share/g/sh/t', { qos: 1 });
        return inbox;
      }),
    );
    // an ordinary subscriber of the same topic still gets every message
    const plain = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'share-plain' });
    const plainInbox = new Inbox(plain);
    await plain.subscribeAsync('sh/t', { qos: 1 });

    const pub = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'share-pub' });
    for (let i = 0; i < N; i++) await pub.publishAsync('sh/t', String(i), { qos: 1 });

    await plainInbox.wait(N);
    await waitUntil(() => members.reduce((n, m) => n + m.messages.length, 0) >= N, 5000, 'shared deliveries');
    await quietPeriod(300);
    const all = members.flatMap((m) => m.messages.map((x) => x.payload));
    expect(all).toHaveLength(N);
    expect(new Set(all).size).toBe(N);
    expect(new Set(all)).toEqual(new Set(Array.from({ length: N }, (_, i) => String(i))));
    for (const m of members) expect(m.messages.length).toBeGreaterThan(0);
    expect(plainInbox.messages.map((m) => m.payload)).toEqual(Array.from({ length: N }, (_, i) => String(i)));
  });
});

describe('cluster: interest routing on the bus (nats-server /connz)', () => {
  const connz = async (): Promise<Record<'A' | 'B' | 'C', NatsConnz>> => {
    const byName = await natsConnections(monitorPort);
    const get = (n: ClusterNode): NatsConnz => {
      const c = byName.get(n.id);
      if (c === undefined) throw new Error(`no NATS connection named ${n.id} in /connz: ${[...byName.keys()].join(', ')}`);
      return c;
    };
    return { A: get(A), B: get(B), C: get(C) };
  };

  /** Waits until the node connections hold exactly these many NATS subscriptions. */
  const waitSubscriptions = async (want: Record<'A' | 'B' | 'C', number>): Promise<Record<'A' | 'B' | 'C', NatsConnz>> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const now = await connz();
      if (now.A.subscriptions === want.A && now.B.subscriptions === want.B && now.C.subscriptions === want.C) return now;
      if (Date.now() > deadline) {
        throw new Error(`subscriptions ${JSON.stringify({ A: now.A.subscriptions_list, B: now.B.subscriptions_list, C: now.C.subscriptions_list })}, want ${JSON.stringify(want)}`);
      }
      await quietPeriod(50);
    }
  };

  const delta = (before: Record<'A' | 'B' | 'C', NatsConnz>, after: Record<'A' | 'B' | 'C', NatsConnz>) => ({
    A: { in: after.A.in_msgs - before.A.in_msgs, out: after.A.out_msgs - before.A.out_msgs },
    B: { in: after.B.in_msgs - before.B.in_msgs, out: after.B.out_msgs - before.B.out_msgs },
    C: { in: after.C.in_msgs - before.C.in_msgs, out: after.C.out_msgs - before.C.out_msgs },
  });

  it('each node connection is listed by node ID; only nodes with a matching subscriber receive bus messages, one per message', async () => {
    const N = 50;
    // the clients of earlier tests are gone, and so are their nodes' NATS subscriptions
    const idle = await waitSubscriptions({ A: 0, B: 0, C: 0 });
    expect(Object.values(idle).map((c) => c.name)).toEqual([A.id, B.id, C.id]);

    // two local subscribers of one filter on B: one NATS subscription (reference-counted)
    const b1 = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'amp-b1' });
    const b2 = await connectMqtt(B.url, { protocolVersion: 4, clientId: 'amp-b2' });
    const b1Inbox = new Inbox(b1);
    const b2Inbox = new Inbox(b2);
    await b1.subscribeAsync('amp/t', { qos: 1 });
    await b2.subscribeAsync('amp/t', { qos: 1 });
    const pub = await connectMqtt(A.url, { protocolVersion: 5, clientId: 'amp-pub' });
    const before = await waitSubscriptions({ A: 0, B: 1, C: 0 });
    expect(before.B.subscriptions_list).toEqual(['mqtt.amp.t']);

    for (let i = 0; i < N; i++) await pub.publishAsync('amp/t', String(i), { qos: 1 });
    // and N to a topic nobody subscribes to
    for (let i = 0; i < N; i++) await pub.publishAsync('amp/nobody', String(i), { qos: 1 });
    await b1Inbox.wait(N);
    await b2Inbox.wait(N);
    await quietPeriod(200);
    const d1 = delta(before, await connz());
    const amplification1 = (d1.A.out + d1.B.out + d1.C.out) / N;
    console.info(`bus amplification, one interested node: ${amplification1.toFixed(2)} ${JSON.stringify(d1)}`);
    expect(d1).toEqual({ A: { in: 2 * N, out: 0 }, B: { in: 0, out: N }, C: { in: 0, out: 0 } });
    expect(amplification1).toBe(1);
    expect(b1Inbox.messages).toHaveLength(N);
    expect(b2Inbox.messages).toHaveLength(N);

    // a subscriber on C too: C now gets exactly one per message, B still one, A none
    const c1 = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'amp-c1' });
    const c1Inbox = new Inbox(c1);
    await c1.subscribeAsync('amp/t', { qos: 0 });
    const mid = await waitSubscriptions({ A: 0, B: 1, C: 1 });
    for (let i = 0; i < N; i++) await pub.publishAsync('amp/t', String(i), { qos: 1 });
    await c1Inbox.wait(N);
    await b1Inbox.wait(2 * N);
    await quietPeriod(200);
    const d2 = delta(mid, await connz());
    const amplification2 = (d2.A.out + d2.B.out + d2.C.out) / N;
    console.info(`bus amplification, two interested nodes: ${amplification2.toFixed(2)} ${JSON.stringify(d2)}`);
    expect(d2).toEqual({ A: { in: N, out: 0 }, B: { in: 0, out: N }, C: { in: 0, out: N } });
    expect(amplification2).toBe(2);

    // the last local subscriber leaving removes the node's interest from NATS
    await b1.unsubscribeAsync('amp/t');
    await waitSubscriptions({ A: 0, B: 1, C: 1 }); // b2 still holds it
    await b2.unsubscribeAsync('amp/t');
    await c1.unsubscribeAsync('amp/t');
    const gone = await waitSubscriptions({ A: 0, B: 0, C: 0 });
    for (let i = 0; i < 10; i++) await pub.publishAsync('amp/t', String(i), { qos: 1 });
    await quietPeriod(200);
    const d3 = delta(gone, await connz());
    expect(d3).toEqual({ A: { in: 10, out: 0 }, B: { in: 0, out: 0 }, C: { in: 0, out: 0 } });
  });

  it("a 'x/#' filter costs two NATS subscriptions, yet each message reaches its node once", async () => {
    const N = 20;
    await waitSubscriptions({ A: 0, B: 0, C: 0 });
    const b = await connectMqtt(B.url, { protocolVersion: 5, clientId: 'amp-hash-b' });
    const inbox = new Inbox(b);
    await b.subscribeAsync('amph/#', { qos: 1 });
    const before = await waitSubscriptions({ A: 0, B: 2, C: 0 });
    expect([...before.B.subscriptions_list!].sort()).toEqual(['mqtt.amph', 'mqtt.amph.>']);
    const pub = await connectMqtt(C.url, { protocolVersion: 5, clientId: 'amp-hash-pub' });
    for (let i = 0; i < N; i++) await pub.publishAsync(i % 2 === 0 ? 'amph' : 'amph/x/y', String(i), { qos: 1 });
    await inbox.wait(N);
    await quietPeriod(200);
    const d = delta(before, await connz());
    console.info(`bus amplification, 'amph/#' on one node: ${((d.A.out + d.B.out + d.C.out) / N).toFixed(2)} ${JSON.stringify(d)}`);
    expect(d).toEqual({ A: { in: 0, out: 0 }, B: { in: 0, out: N }, C: { in: N, out: 0 } });
    expect(inbox.messages).toHaveLength(N);
  });
});
