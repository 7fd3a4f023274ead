import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, MqttError, ReasonCode } from '@fleetmq/protocol';
import type { BrokerLog, Message } from '@fleetmq/broker';
import { Recorder, describeMessageBus, freePort, startNatsServer, testMessage, waitFor, TcpProxy } from '@fleetmq/testkit';
import type { NatsFixture } from '@fleetmq/testkit';
import { NatsMessageBus, encodeEnvelope, queueName } from '../src/index.js';
import type { NatsMessageBusOptions } from '../src/index.js';

let server: NatsFixture;
let monitorPort: number;

beforeAll(async () => {
  monitorPort = await freePort();
  server = await startNatsServer({ args: ['-m', String(monitorPort)] });
});
afterAll(async () => {
  await server?.stop();
});

let nextNode = 0;
const FAST_RECONNECT = { waitMs: 20, jitterMs: 10 } as const;

function connectBus(overrides: Partial<NatsMessageBusOptions> = {}, url = server.url): Promise<NatsMessageBus> {
  return NatsMessageBus.connect({ servers: [url], name: `test-node-${nextNode++}`, reconnect: FAST_RECONNECT, ...overrides });
}

describeMessageBus(() => connectBus());

/** Buses opened by one test, closed after it. */
const opened: NatsMessageBus[] = [];
async function node(overrides: Partial<NatsMessageBusOptions> = {}, url?: string): Promise<NatsMessageBus> {
  const bus = await connectBus(overrides, url);
  opened.push(bus);
  return bus;
}
afterEach(async () => {
  for (const bus of opened.splice(0)) await bus.close();
});

/** Publishes a probe on a '$' topic nothing else matches, and waits until `bus` has it back. */
async function settle(bus: NatsMessageBus): Promise<void> {
  const probe = new Recorder();
  const topic = `$probe/${nextNode++}`;
  const sub = await bus.subscribe(topic, probe.handler);
  await bus.publish(testMessage(topic, { qos: 0 }));
  await waitFor(() => probe.messages.length === 1, 'the settle probe');
  await sub.unsubscribe();
}

interface ConnzSub {
  subject: string;
  qgroup?: string;
}
/**
 * The server's view of one bus's subscriptions, from its monitoring endpoint: plain ones on
 * the connection named `name`, queue groups on `<name>/groups` (and nowhere else).
 */
async function serverSubscriptions(name: string): Promise<ConnzSub[]> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/connz?subs=detail`);
  const body = (await res.json()) as { connections: Array<{ name?: string; subscriptions_list_detail?: ConnzSub[] }> };
  const subs = (conn: string): ConnzSub[] => {
    const found = body.connections.find((c) => c.name === conn);
    if (found === undefined) throw new Error(`no connection named ${conn}`);
    return (found.subscriptions_list_detail ?? []).map((s) => (s.qgroup ? { subject: s.subject, qgroup: s.qgroup } : { subject: s.subject }));
  };
  const plain = subs(name);
  const groups = subs(`${name}/groups`);
  expect(plain.filter((s) => s.qgroup !== undefined)).toEqual([]);
  expect(groups.filter((s) => s.qgroup === undefined)).toEqual([]);
  return [...plain, ...groups];
}

/** Messages the server has sent the connection named `name`. */
async function outMsgs(name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/connz`);
  const body = (await res.json()) as { connections: Array<{ name?: string; out_msgs: number }> };
  const conn = body.connections.find((c) => c.name === name);
  if (conn === undefined) throw new Error(`no connection named ${name}`);
  return conn.out_msgs;
}

const bySubject = (a: ConnzSub, b: ConnzSub): number =>
  a.subject === b.subject ? (a.qgroup ?? '').localeCompare(b.qgroup ?? '') : a.subject < b.subject ? -1 : 1;

describe('NatsMessageBus: interest', () => {
  it('holds one NATS subscription per distinct (filter, group), reference-counted', async () => {
    const name = `refcount-${nextNode++}`;
    const bus = await node({ name });
    const subs = [
      await bus.subscribe('ref/+', () => {}),
      await bus.subscribe('ref/+', () => {}),
      await bus.subscribe('ref/+', () => {}, { group: 'g' }),
      await bus.subscribe('ref/+', () => {}, { group: 'g' }),
      await bus.subscribe('ref/+', () => {}, { group: 'h' }),
      await bus.subscribe('ref/#', () => {}),
    ];
    expect((await serverSubscriptions(name)).sort(bySubject)).toEqual([
      { subject: 'mqtt.ref' },
      { subject: 'mqtt.ref.*' },
      { subject: 'mqtt.ref.*', qgroup: 'g/ref/%2B' },
      { subject: 'mqtt.ref.*', qgroup: 'h/ref/%2B' },
      { subject: 'mqtt.ref.>' },
    ]);
    expect(bus.natsSubscriptionCount).toBe(5);
    await subs[0]!.unsubscribe();
    await subs[2]!.unsubscribe();
    await subs[5]!.unsubscribe();
    await bus.publish(testMessage('ref/flush')); // a QoS 1 publish waits for a PONG: the UNSUBs are processed
    expect((await serverSubscriptions(name)).sort(bySubject)).toEqual([
      { subject: 'mqtt.ref.*' },
      { subject: 'mqtt.ref.*', qgroup: 'g/ref/%2B' },
      { subject: 'mqtt.ref.*', qgroup: 'h/ref/%2B' },
    ]);
    for (const sub of subs) await sub.unsubscribe();
    await bus.publish(testMessage('ref/flush'));
    expect(await serverSubscriptions(name)).toEqual([]);
    expect(bus.natsSubscriptionCount).toBe(0);
  });

  it('routes by interest: a node receives NATS messages only for what it subscribed to', async () => {
    const a = await node();
    const b = await node();
    const atB = new Recorder();
    await b.subscribe('site/b/#', atB.handler);
    const aBefore = a.stats.messagesIn;
    const aLocalBefore = a.stats.localDeliveries;
    const bBefore = b.stats.messagesIn;
    const bLocalBefore = b.stats.localDeliveries;
    for (let i = 0; i < 20; i++) await a.publish(testMessage(`site/a/${i}`));
    for (let i = 0; i < 5; i++) await a.publish(testMessage(`site/b/${i}`));
    await a.publish(testMessage('site/b')); // the parent level of 'site/b/#'
    await waitFor(() => atB.messages.length === 6, 'the deliveries at b');
    await settle(a);
    await settle(b);
    // b got exactly its 6 from NATS, a got nothing: nothing was broadcast, and each node's own
    // probe came to it directly, without the echo
    expect(b.stats.messagesIn - bBefore).toBe(6);
    expect(a.stats.messagesIn - aBefore).toBe(0);
    expect(a.stats.localDeliveries - aLocalBefore).toBe(1);
    expect(b.stats.localDeliveries - bLocalBefore).toBe(1);
    expect(atB.topics).toEqual(['site/b/0', 'site/b/1', 'site/b/2', 'site/b/3', 'site/b/4', 'site/b']);
  });

  it('gets its own publications without the echo: NATS sends it none, its plain subscriptions get them directly, a queue group of its own members still gets each once', async () => {
    const name = `own-${nextNode++}`;
    const a = await node({ name });
    const plain = new Recorder();
    const twice = new Recorder();
    const grouped = new Recorder();
    await a.subscribe('own/+', plain.handler);
    await a.subscribe('own/#', twice.handler);
    await a.subscribe('own/#', twice.handler);
    await a.subscribe('own/+', grouped.handler, { group: 'g' }); // the group's only member
    const before = await outMsgs(name);
    const sent: Message[] = [];
    for (let i = 0; i < 10; i++) {
      const message = testMessage(`own/${i}`, { qos: (i % 3) as 0 | 1 | 2 });
      await a.publish(message);
      sent.push(message);
    }
    await waitFor(() => grouped.messages.length === 10, 'the group deliveries');
    expect(plain.ids).toEqual(sent.map((m) => m.id));
    // once per matching subscription (two members of one interest)
    expect(twice.ids).toEqual(sent.flatMap((m) => [m.id, m.id]));
    expect(grouped.ids).toEqual(sent.map((m) => m.id));
    // the server sent the publishing connection nothing back
    expect((await outMsgs(name)) - before).toBe(0);
  });

  it('gives a queue group each message exactly once across two nodes', async () => {
    const a = await node();
    const b = await node();
    const members = [new Recorder(), new Recorder(), new Recorder()];
    await a.subscribe('jobs/+', members[0]!.handler, { group: 'workers' });
    await a.subscribe('jobs/+', members[1]!.handler, { group: 'workers' });
    await b.subscribe('jobs/+', members[2]!.handler, { group: 'workers' });
    const sent: Message[] = [];
    for (let i = 0; i < 200; i++) {
      const m = testMessage(`jobs/${i}`);
      sent.push(m);
      await (i % 2 === 0 ? a : b).publish(m);
    }
    const total = (): number => members.reduce((n, m) => n + m.messages.length, 0);
    await waitFor(() => total() >= 200, 'all group deliveries');
    await settle(a);
    await settle(b);
    const received = members.flatMap((m) => m.ids);
    expect(received).toHaveLength(200);
    expect(new Set(received)).toEqual(new Set(sent.map((m) => m.id)));
    // both nodes took part (NATS picks a member at random: 2^-199 odds of a false failure)
    expect(members[0]!.messages.length + members[1]!.messages.length).toBeGreaterThan(0);
    expect(members[2]!.messages.length).toBeGreaterThan(0);
  });

  it('sync: what another node published and NATS confirmed has reached this node\'s handlers once sync resolves', async () => {
    // the takeover-end request of a new owner travels on another connection than the
    // messages; the old owner syncs before it lets go of the session (session-registry.ts)
    const publisher = await node();
    const receiver = await node();
    const plain = new Recorder();
    const grouped = new Recorder();
    await receiver.subscribe('sync/+', plain.handler);
    await receiver.subscribe('sync/+', grouped.handler, { group: 'g' });
    const payload = Buffer.alloc(8 * 1024, 7);
    for (let round = 0; round < 5; round++) {
      const sent = Array.from({ length: 200 }, (_, i) => testMessage(`sync/${i}`, { qos: 1, payload }));
      await Promise.all(sent.map((m) => publisher.publish(m)));
      await receiver.sync();
      const ids = new Set(sent.map((m) => m.id));
      expect(plain.ids.filter((id) => ids.has(id))).toHaveLength(200);
      expect(grouped.ids.filter((id) => ids.has(id))).toHaveLength(200);
    }
  });

  it('keeps the same group name on different filters apart, across nodes', async () => {
    const a = await node();
    const b = await node();
    const plus = new Recorder();
    const hash = new Recorder();
    await a.subscribe('k/+', plus.handler, { group: 'g' });
    await b.subscribe('k/#', hash.handler, { group: 'g' });
    for (let i = 0; i < 10; i++) await a.publish(testMessage(`k/${i}`));
    await waitFor(() => plus.messages.length === 10 && hash.messages.length === 10, 'both groups');
  });

  it('names queue groups injectively from the group and the filter', () => {
    expect(queueName('workers', 'fleet/+/telemetry')).toBe('workers/fleet/%2B/telemetry');
    expect(queueName('a/b', 'c')).not.toBe(queueName('a', 'b/c'));
    expect(queueName('g', 'a b.c/#')).toBe('g/a%20b%2Ec/%23');
  });
});

describe('NatsMessageBus: limits and foreign traffic', () => {
  let bigServer: NatsFixture | undefined;
  let confDir: string | undefined;
  afterEach(async () => {
    await bigServer?.stop();
    bigServer = undefined;
    if (confDir) rmSync(confDir, { recursive: true, force: true });
    confDir = undefined;
  });

  async function serverWithConfig(conf: string): Promise<NatsFixture> {
    confDir = mkdtempSync(join(tmpdir(), 'fleetmq-nats-conf-'));
    const path = join(confDir, 'nats.conf');
    writeFileSync(path, conf);
    bigServer = await startNatsServer({ args: ['-c', path] });
    return bigServer;
  }

  it('refuses a topic too long for the default max_control_line, and stays connected', async () => {
    const bus = await node();
    const long = 'x'.repeat(5000);
    const refused = bus.publish(testMessage(long));
    await expect(refused).rejects.toBeInstanceOf(MqttError);
    await expect(refused).rejects.toMatchObject({ reasonCode: ReasonCode.TopicNameInvalid });
    await expect(bus.subscribe(`${long}/+`, () => {})).rejects.toMatchObject({ reasonCode: ReasonCode.TopicFilterInvalid });
    expect(bus.ready).toBe(true);
    const rec = new Recorder();
    await bus.subscribe('still/up', rec.handler);
    await bus.publish(testMessage('still/up'));
    await waitFor(() => rec.messages.length === 1, 'a delivery after the refusal');
  });

  it('carries a 64 KiB topic when the server allows long control lines', async () => {
    const big = await serverWithConfig('max_control_line: 262144\n');
    const bus = await node({ maxControlLine: 262144 }, big.url);
    const levels = Array.from({ length: 8000 }, (_, i) => `l.${i} *>%`); // every level needs escapes
    let topic = levels.join('/');
    topic = topic.slice(0, 65535 - 1) + 'z';
    expect(Buffer.byteLength(topic)).toBe(65535);
    const exact = new Recorder();
    const wild = new Recorder();
    await bus.subscribe(topic, exact.handler);
    await bus.subscribe(`${levels[0]}/${levels[1]}/#`, wild.handler);
    const sent = testMessage(topic);
    await bus.publish(sent);
    await waitFor(() => exact.messages.length === 1 && wild.messages.length === 1, 'the long-topic deliveries');
    expect(exact.messages[0]).toEqual(sent);
    expect(wild.topics).toEqual([topic]);
  });

  it("refuses a message larger than the server's max_payload, and stays connected", async () => {
    const small = await serverWithConfig('max_payload: 2048\n');
    const bus = await node({}, small.url);
    const refused = bus.publish(testMessage('big/payload', { payload: Buffer.alloc(4096) }));
    await expect(refused).rejects.toMatchObject({ reasonCode: ReasonCode.PacketTooLarge });
    // the payload alone fits, the envelope around it does not
    const envelopeTooBig = testMessage('big/payload', { payload: Buffer.alloc(2040) });
    expect(encodeEnvelope(envelopeTooBig).length).toBeGreaterThan(2048);
    await expect(bus.publish(envelopeTooBig)).rejects.toMatchObject({ reasonCode: ReasonCode.PacketTooLarge });
    const rec = new Recorder();
    await bus.subscribe('big/+', rec.handler);
    await bus.publish(testMessage('big/ok', { payload: Buffer.alloc(1024) }));
    await waitFor(() => rec.messages.length === 1, 'a delivery after the refusal');
    expect(bus.ready).toBe(true);
  });

  it('drops and counts foreign traffic under the prefix: bad subjects and bad envelopes', async () => {
    const bus = await node();
    const rec = new Recorder();
    await bus.subscribe('foreign/#', rec.handler);
    const raw = await connect({ servers: server.url, name: 'raw' });
    try {
      raw.publish('mqtt.foreign.x', Buffer.from('not an envelope'));
      raw.publish('mqtt.foreign.a%zz', encodeEnvelope(testMessage('ignored')));
      raw.publish('mqtt.foreign.good', encodeEnvelope(testMessage('ignored', { id: 'raw-good' })));
      await raw.flush();
    } finally {
      await raw.close();
    }
    await waitFor(() => rec.messages.length === 1, 'the well-formed raw message');
    expect(rec.messages[0]).toMatchObject({ id: 'raw-good', topic: 'foreign/good' });
    expect(bus.stats.malformed).toBe(2);
  });

  it('counts a throwing handler and keeps delivering to the others', async () => {
    const bus = await node();
    const ok = new Recorder();
    await bus.subscribe('throw/+', () => {
      throw new Error('handler bug');
    });
    await bus.subscribe('throw/+', ok.handler);
    await bus.publish(testMessage('throw/1'));
    await bus.publish(testMessage('throw/2'));
    await waitFor(() => ok.messages.length === 2, 'the deliveries');
    expect(bus.stats.handlerErrors).toBe(2);
  });

  it('rejects an invalid filter with TypeError', async () => {
    const bus = await node();
    await expect(bus.subscribe('a/#/b', () => {})).rejects.toBeInstanceOf(TypeError);
    expect(bus.natsSubscriptionCount).toBe(0);
  });

  it('fails to connect with BackendUnavailableError when no server answers', async () => {
    const port = await freePort();
    const attempt = NatsMessageBus.connect({ servers: [`nats://127.0.0.1:${port}`], name: 'nobody', connectTimeoutMs: 500 });
    await expect(attempt).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});

describe('NatsMessageBus: NATS restarts', () => {
  // Its own server, so restarting it does not disturb the other suites.
  let own: NatsFixture;
  beforeAll(async () => {
    own = await startNatsServer();
  });
  afterAll(async () => {
    await own?.stop();
  });

  it('goes not ready and refuses publishes while NATS is down, then recovers with its subscriptions', async () => {
    const a = await node({}, own.url);
    const b = await node({}, own.url);
    const atA = new Recorder();
    const groupAtB = new Recorder();
    await a.subscribe('restart/+', atA.handler);
    await b.subscribe('restart/#', groupAtB.handler, { group: 'g' });
    await b.publish(testMessage('restart/before'));
    await waitFor(() => atA.messages.length === 1 && groupAtB.messages.length === 1, 'deliveries before the restart');

    const restarting = own.restart();
    await waitFor(() => !a.ready, 'a to notice the server went away', { timeoutMs: 5_000 });
    // in the same tick as the check: nothing can reconnect in between
    const refused = a.publish(testMessage('restart/during', { qos: 1 }));
    const refusedQos0 = a.publish(testMessage('restart/during', { qos: 0 }));
    const refusedSub = a.subscribe('other/filter', () => {});
    expect(a.status).toBe('reconnecting');
    await expect(refused).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(refused).rejects.toMatchObject({ backend: 'nats' });
    await expect(refusedQos0).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(refusedSub).rejects.toBeInstanceOf(BackendUnavailableError);

    await restarting;
    await waitFor(() => a.ready && b.ready, 'both nodes to reconnect', { timeoutMs: 10_000 });
    expect(a.stats.reconnects).toBe(1);
    expect(a.natsSubscriptionCount).toBe(1); // the refused subscribe left nothing behind
    const after = testMessage('restart/after');
    await b.publish(after);
    await waitFor(() => atA.ids.includes(after.id) && groupAtB.ids.includes(after.id), 'deliveries after the restart');
    expect(atA.topics).toEqual(['restart/before', 'restart/after']);
    expect(groupAtB.topics).toEqual(['restart/before', 'restart/after']);
  });

});

describe('NatsMessageBus: first connect', () => {
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  it('with waitOnFirstConnect, keeps trying until a server answers', async () => {
    proxy = new TcpProxy(await freePort(), server.port, 'nats');
    let connected = false;
    const connecting = NatsMessageBus.connect({
      servers: [proxy.url],
      name: 'late',
      waitOnFirstConnect: true,
      reconnect: FAST_RECONNECT,
    }).then((bus) => {
      connected = true;
      opened.push(bus);
      return bus;
    });
    await new Promise((resolve) => setTimeout(resolve, 200)); // several refused attempts
    expect(connected).toBe(false);
    await proxy.listen();
    const bus = await connecting;
    expect(bus.ready).toBe(true);
    const rec = new Recorder();
    await bus.subscribe('late/+', rec.handler);
    await bus.publish(testMessage('late/1'));
    await waitFor(() => rec.messages.length === 1, 'a delivery');
  });

  it('create() returns a bus at once that is not ready, refuses work, and becomes ready by itself', async () => {
    proxy = new TcpProxy(await freePort(), server.port, 'nats');
    const bus = NatsMessageBus.create({ servers: [proxy.url], name: 'background', reconnect: FAST_RECONNECT });
    opened.push(bus);
    expect(bus.ready).toBe(false);
    expect(bus.status).toBe('connecting');
    await expect(bus.publish(testMessage('bg/1'))).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(bus.subscribe('bg/+', () => {})).rejects.toBeInstanceOf(BackendUnavailableError);
    await new Promise((resolve) => setTimeout(resolve, 100)); // a few refused attempts
    expect(bus.ready).toBe(false);
    await proxy.listen();
    await waitFor(() => bus.ready, 'the background connect', { timeoutMs: 5_000 });
    const rec = new Recorder();
    await bus.subscribe('bg/+', rec.handler);
    await bus.publish(testMessage('bg/2'));
    await waitFor(() => rec.messages.length === 1, 'a delivery');
  });

  it('closing a bus that never connected stops its attempts', async () => {
    const port = await freePort();
    const bus = NatsMessageBus.create({ servers: [`nats://127.0.0.1:${port}`], name: 'never', reconnect: FAST_RECONNECT });
    await bus.close();
    expect(bus.status).toBe('closed');
    await expect(bus.publish(testMessage('never/1'))).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});

/** A BrokerLog that records each message name. */
function recordingLog(names: string[]): BrokerLog {
  const log: BrokerLog = {
    error: (_fields, msg) => void names.push(msg),
    warn: (_fields, msg) => void names.push(msg),
    info: (_fields, msg) => void names.push(msg),
    debug: (_fields, msg) => void names.push(msg),
    isLevelEnabled: () => true,
    child: () => log,
  };
  return log;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('NatsMessageBus: connection loss (through a TCP forwarder, for exact timing)', () => {
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  it('a QoS 1 publish whose confirmation is cut off rejects; QoS 0 was already accepted', async () => {
    proxy = new TcpProxy(await freePort(), server.port, 'nats');
    await proxy.listen();
    const bus = await node({ reconnect: { waitMs: 50, jitterMs: 0 } }, proxy.url);
    const qos0 = bus.publish(testMessage('cut/0', { qos: 0 }));
    const qos1 = bus.publish(testMessage('cut/1', { qos: 1 }));
    proxy.cut(); // before the PING of this tick can be answered
    await expect(qos0).resolves.toBeUndefined();
    await expect(qos1).rejects.toBeInstanceOf(BackendUnavailableError);
    expect(bus.ready).toBe(false);
    await waitFor(() => bus.ready, 'the reconnect through the proxy', { timeoutMs: 5_000 });
    await expect(bus.publish(testMessage('cut/2', { qos: 1 }))).resolves.toBeUndefined();
  });

  it('never confirms a QoS 1 publish issued as the server goes away, refuses while it is away, recovers with its subscriptions, and logs each transition once', async () => {
    proxy = new TcpProxy(await freePort(), server.port, 'nats');
    await proxy.listen();
    const logged: string[] = [];
    const bus = await node({ reconnect: { waitMs: 50, jitterMs: 0 }, log: recordingLog(logged) }, proxy.url);
    const direct = await node();
    const rec = new Recorder();
    const grouped = new Recorder();
    await bus.subscribe('away/+', rec.handler);
    await bus.subscribe('away/#', grouped.handler, { group: 'g' });
    await direct.publish(testMessage('away/before'));
    await waitFor(() => rec.messages.length === 1 && grouped.messages.length === 1, 'deliveries before the outage');

    // the server goes away (connections dropped, new ones refused); in this same tick the bus
    // cannot have noticed yet, so it accepts the publish into nats.js and must not confirm it
    const away = proxy.stop();
    expect(bus.ready).toBe(true);
    const inTheGap = bus.publish(testMessage('away/gap', { qos: 1 }));
    await expect(inTheGap).rejects.toBeInstanceOf(BackendUnavailableError);
    expect(bus.ready).toBe(false);
    await away;

    await sleep(300); // several refused reconnect attempts
    expect(bus.ready).toBe(false);
    expect(bus.status).toBe('reconnecting');
    await expect(bus.publish(testMessage('away/during', { qos: 1 }))).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(bus.publish(testMessage('away/during', { qos: 2 }))).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(bus.publish(testMessage('away/during', { qos: 0 }))).rejects.toBeInstanceOf(BackendUnavailableError);

    await proxy.listen();
    await waitFor(() => bus.ready, 'the reconnect through the forwarder', { timeoutMs: 5_000 });
    expect(bus.stats.reconnects).toBe(1);
    const after = testMessage('away/after');
    await direct.publish(after);
    await waitFor(() => rec.ids.includes(after.id) && grouped.ids.includes(after.id), 'deliveries after the outage');
    // nothing published while away arrived later (nats.js' reconnect buffer was not used)
    await settle(bus);
    expect(rec.topics).toEqual(['away/before', 'away/after']);
    expect(grouped.topics).toEqual(['away/before', 'away/after']);

    expect(logged.filter((m) => m === 'bus_disconnected')).toHaveLength(1);
    expect(logged.filter((m) => m === 'bus_reconnected')).toHaveLength(1);
    // no logging per message
    const before = logged.length;
    for (let i = 0; i < 50; i++) await bus.publish(testMessage(`away/n${i}`, { qos: (i % 3) as 0 | 1 | 2 }));
    await waitFor(() => rec.messages.length === 2 + 50, 'the last deliveries');
    expect(logged.length).toBe(before);
  });

  it('rejects a subscribe whose confirmation is cut off, and leaves no subscription behind', async () => {
    proxy = new TcpProxy(await freePort(), server.port, 'nats');
    await proxy.listen();
    const name = `cut-sub-${nextNode++}`;
    const bus = await node({ name, reconnect: { waitMs: 50, jitterMs: 0 } }, proxy.url);
    await bus.subscribe('kept/+', () => {});
    const subscribing = bus.subscribe('cut/+', () => {});
    proxy.cut();
    await expect(subscribing).rejects.toBeInstanceOf(BackendUnavailableError);
    expect(bus.natsSubscriptionCount).toBe(1);
    await waitFor(() => bus.ready, 'the reconnect through the forwarder', { timeoutMs: 5_000 });
    // what nats.js replayed on the new connection: only the subscription that was kept
    expect(await serverSubscriptions(name)).toEqual([{ subject: 'mqtt.kept.*' }]);
  });
});

describe('NatsMessageBus: close', () => {
  it('confirms the QoS 1 publishes of its last tick before closing, and is idempotent', async () => {
    const bus = await connectBus();
    const other = await node();
    const rec = new Recorder();
    await other.subscribe('closing/+', rec.handler);
    const sent = [testMessage('closing/1', { qos: 1 }), testMessage('closing/2', { qos: 2 })];
    const publishes = sent.map((m) => bus.publish(m));
    const first = bus.close();
    const second = bus.close();
    expect(second).toBe(first);
    expect(bus.ready).toBe(false);
    await expect(Promise.all(publishes)).resolves.toEqual([undefined, undefined]);
    await first;
    expect(bus.status).toBe('closed');
    await waitFor(() => rec.messages.length === 2, 'the confirmed messages at another node');
    expect(rec.ids).toEqual(sent.map((m) => m.id));
    await expect(bus.publish(testMessage('closing/3'))).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(bus.subscribe('closing/+', () => {})).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});
