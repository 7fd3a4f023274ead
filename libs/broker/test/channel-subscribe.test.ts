import { describe, expect, it } from 'vitest';
import { ReasonCode } from '@fleetmq/protocol';
import { payloads, settle, useHarness, type Harness } from './support/harness.js';

const harness = useHarness();

async function publisher(h: Harness) {
  return h.connect({ clientId: 'pub' });
}

/** A message the broker itself publishes: clients may not publish to `$SYS` (reserved). */
async function brokerPublish(h: Harness, topic: string, payload: string, o: { retain?: boolean } = {}): Promise<void> {
  await h.broker.publish({ id: h.broker.newMessageId(), topic, payload: Buffer.from(payload), qos: 0, retain: o.retain ?? false, createdAt: Date.now() });
  await settle();
}

describe('SUBSCRIBE and SUBACK', () => {
  it('[MQTT-3.8.4-1, MQTT-3.8.4-2] SUBACK answers with the SUBSCRIBE packet identifier', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.send({ cmd: 'subscribe', messageId: 1234, subscriptions: [{ topic: 'a', qos: 0 }] });
    const ack = c.next('suback');
    expect(ack.messageId).toBe(1234);
    expect(ack.granted).toEqual([0]);
  });

  it('[MQTT-3.8.4-5, MQTT-3.8.4-6, MQTT-3.8.4-7, MQTT-3.9.3-1] one reason code per filter, in order: the granted QoS or a failure', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    const ack = await c.subscribe([
      { topic: 'a', qos: 0 },
      { topic: 'b/+', qos: 1 },
      { topic: 'bad/#/x', qos: 1 },
      { topic: 'c/#', qos: 2 },
    ]);
    expect(ack.granted).toEqual([0, 1, ReasonCode.TopicFilterInvalid, 2]);
    expect([...c.channel.session!.subscriptions.keys()].sort()).toEqual(['a', 'b/+', 'c/#']);
  });

  it('[MQTT-3.8.4-7] the granted QoS is capped at the server Maximum QoS', async () => {
    const h = harness({ options: { maximumQoS: 1 } });
    const c = await h.connect({ clientId: 's' });
    expect((await c.subscribe({ topic: 'a', qos: 2 })).granted).toEqual([1]);
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('a', 'x', { qos: 1 });
    expect(c.publishes()[0]!.qos).toBe(1);
  });

  it('[MQTT-4.7.1-2, MQTT-4.7.1-3, MQTT-4.7.3-1, MQTT-4.7.3-2] v5: invalid topic filters get 0x8F', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    const bad = ['a/#/b', 'a#', 'a/b+', '+a/b', '#/x', '', 'a\u0000b'];
    const ack = await c.subscribe(bad.map((topic) => ({ topic, qos: 1 as const })));
    expect(ack.granted).toEqual(bad.map(() => ReasonCode.TopicFilterInvalid));
    expect(c.channel.session!.subscriptions.size).toBe(0);
    expect(c.closed).toBe(false);
  });

  it('[MQTT-4.7.1-2, MQTT-4.7.1-3] 3.1.1: invalid topic filters get 0x80 (failure)', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's', protocolVersion: 4 });
    const ack = await c.subscribe([
      { topic: 'a/#/b', qos: 1 },
      { topic: 'ok/+', qos: 1 },
      { topic: 'x+', qos: 0 },
    ]);
    expect(ack.granted).toEqual([0x80, 1, 0x80]);
  });

  it('[MQTT-3.8.3-2] a SUBSCRIBE with no topic filter is a protocol error', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [] });
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
    expect(c.closed).toBe(true);
  });

  it('[MQTT-3.8.4-3] a SUBSCRIBE with an existing filter replaces the subscription (one copy, new QoS)', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'a/+', qos: 0 });
    await c.subscribe({ topic: 'a/+', qos: 2 });
    expect(c.channel.session!.subscriptions.get('a/+')?.qos).toBe(2);
    const pub = await publisher(h);
    await pub.publish('a/b', 'x', { qos: 2 });
    const got = c.publishes();
    expect(got).toHaveLength(1);
    expect(got[0]!.qos).toBe(2);
    expect(h.broker.router.busSubscriptionCount).toBe(1);
  });

  it('v5: wildcard and shared subscriptions the server does not offer get 0xA2 and 0x9E', async () => {
    const h = harness({ options: { wildcardSubscriptionAvailable: false, sharedSubscriptionAvailable: false } });
    const c = await h.connect({ clientId: 's' });
    const ack = await c.subscribe([
      { topic: 'a/+', qos: 0 },
      { topic: 'a/#', qos: 0 },
      { topic: '$share/g/a', qos: 0 },
      { topic: 'a/b', qos: 0 },
    ]);
    expect(ack.granted).toEqual([
      ReasonCode.WildcardSubscriptionsNotSupported,
      ReasonCode.WildcardSubscriptionsNotSupported,
      ReasonCode.SharedSubscriptionsNotSupported,
      0,
    ]);
  });

  it('v5: a Subscription Identifier when the server does not offer them is DISCONNECT 0xA1', async () => {
    const h = harness({ options: { subscriptionIdentifierAvailable: false } });
    const c = await h.connect({ clientId: 's' });
    await c.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: 'a', qos: 0 }],
      properties: { subscriptionIdentifier: 5 },
    });
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.SubscriptionIdentifiersNotSupported);
  });

  it('a subscription the bus cannot take fails with 0x80 and is not kept', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await h.ports.bus.close();
    const ack = await c.subscribe({ topic: 'a', qos: 1 });
    expect(ack.granted).toEqual([ReasonCode.UnspecifiedError]);
    expect(c.channel.session!.subscriptions.size).toBe(0);
  });
});

describe('topic matching', () => {
  it("(4.7.1.2) '#' matches the parent level and every level below", async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'sport/tennis/#', qos: 0 });
    const pub = await publisher(h);
    for (const t of ['sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport', 'sport/tennisx']) {
      await pub.publish(t, t);
    }
    expect(payloads(c.publishes())).toEqual(['sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking']);
  });

  it("(4.7.1.3) '+' matches exactly one level, including an empty one", async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe([
      { topic: 'sport/+', qos: 0 },
      { topic: '+/x', qos: 0 },
    ]);
    const pub = await publisher(h);
    for (const t of ['sport/tennis', 'sport', 'sport/tennis/a', 'sport/', '/x', 'a/x', 'a/b/x']) await pub.publish(t, t);
    expect(payloads(c.publishes())).toEqual(['sport/tennis', 'sport/', '/x', 'a/x']);
  });

  it("[MQTT-4.7.2-1] topics starting with '$' are not matched by a filter starting with a wildcard", async () => {
    const h = harness();
    const wild = await h.connect({ clientId: 'wild' });
    await wild.subscribe([
      { topic: '#', qos: 0 },
      { topic: '+/monitor/Clients', qos: 0 },
    ]);
    const sys = await h.connect({ clientId: 'sys' });
    await sys.subscribe([
      { topic: '$SYS/#', qos: 0 },
      { topic: '$SYS/monitor/+', qos: 0 },
    ]);
    const pub = await publisher(h);
    await brokerPublish(h, '$SYS/monitor/Clients', 'sys');
    await pub.publish('app/monitor/Clients', 'app');
    expect(payloads(wild.publishes())).toEqual(['app']);
    // one copy although two of its filters match
    expect(payloads(sys.publishes())).toEqual(['sys']);
  });

  it("[MQTT-4.7.2-1] retained '$' topics are not sent for a leading-wildcard subscription either", async () => {
    const h = harness();
    const pub = await publisher(h);
    await brokerPublish(h, '$SYS/uptime', '1', { retain: true });
    await pub.publish('app/uptime', '2', { retain: true });
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: '#', qos: 0 });
    expect(payloads(c.publishes())).toEqual(['2']);
  });

  it('[MQTT-4.7.3-4] topic names and filters are case sensitive and compared level by level', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'ACCOUNTS', qos: 0 });
    const pub = await publisher(h);
    await pub.publish('Accounts', 'lower');
    await pub.publish('ACCOUNTS', 'upper');
    await pub.publish('ACCOUNTS ', 'space');
    expect(payloads(c.publishes())).toEqual(['upper']);
  });
});

describe('overlapping subscriptions', () => {
  it('[MQTT-3.3.4-2, MQTT-3.3.4-3, MQTT-3.3.4-4] one copy at the maximum granted QoS with every subscription identifier', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'a/+', qos: 0 }, { properties: { subscriptionIdentifier: 1 } });
    await c.subscribe({ topic: 'a/#', qos: 2 }, { properties: { subscriptionIdentifier: 2 } });
    await c.subscribe({ topic: 'a/b', qos: 1 });
    const pub = await publisher(h);
    await pub.publish('a/b', 'x', { qos: 2 });
    const got = c.publishes();
    expect(got).toHaveLength(1);
    expect(got[0]!.qos).toBe(2);
    const ids = got[0]!.properties?.subscriptionIdentifier;
    expect(Array.isArray(ids) ? [...ids].sort() : ids).toEqual([1, 2]);
  });

  it('3.1.1: overlapping subscriptions give one copy at the maximum QoS', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's', protocolVersion: 4 });
    await c.subscribe([
      { topic: 'a/#', qos: 0 },
      { topic: 'a/+', qos: 1 },
      { topic: '#', qos: 0 },
    ]);
    const pub = await publisher(h);
    await pub.publish('a/b', 'x', { qos: 2 });
    const got = c.publishes();
    expect(got).toHaveLength(1);
    expect(got[0]!.qos).toBe(1);
  });

  it('two clients with the same filter each get one copy', async () => {
    const h = harness();
    const a = await h.connect({ clientId: 'a' });
    const b = await h.connect({ clientId: 'b' });
    await a.subscribe({ topic: 'x/#', qos: 1 });
    await b.subscribe([
      { topic: 'x/#', qos: 1 },
      { topic: 'x/y', qos: 0 },
    ]);
    const pub = await publisher(h);
    await pub.publish('x/y', 'm', { qos: 1 });
    expect(payloads(a.publishes())).toEqual(['m']);
    expect(payloads(b.publishes())).toEqual(['m']);
    expect(h.broker.router.busSubscriptionCount).toBe(2);
  });
});

describe('UNSUBSCRIBE', () => {
  it('[MQTT-3.10.4-4, MQTT-3.10.4-5, MQTT-3.11.3-1, MQTT-3.11.3-2] v5: UNSUBACK has the packet identifier and one reason code per filter, in order', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe([
      { topic: 'a', qos: 0 },
      { topic: '$share/g/b', qos: 0 },
    ]);
    await c.send({ cmd: 'unsubscribe', messageId: 77, unsubscriptions: ['a', 'never', 'bad/#/x', '$share/g/b', '$share/g'] });
    const ack = c.next('unsuback');
    expect(ack.messageId).toBe(77);
    expect(ack.granted).toEqual([
      ReasonCode.Success,
      ReasonCode.NoSubscriptionExisted,
      ReasonCode.TopicFilterInvalid,
      ReasonCode.Success,
      ReasonCode.TopicFilterInvalid,
    ]);
    expect(c.channel.session!.subscriptions.size).toBe(0);
  });

  it('[MQTT-3.10.4-5] 3.1.1: UNSUBACK even when nothing was subscribed', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's', protocolVersion: 4 });
    await c.send({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['nothing'] });
    expect(c.next('unsuback').messageId).toBe(9);
  });

  it('[MQTT-3.10.4-1] filters are compared character by character, not matched', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'a/b', qos: 0 });
    const ack = await c.unsubscribe('a/+');
    expect(ack.granted).toEqual([ReasonCode.NoSubscriptionExisted]);
    const pub = await publisher(h);
    await pub.publish('a/b', 'still');
    expect(payloads(c.publishes())).toEqual(['still']);
  });

  it('[MQTT-3.10.4-2] after UNSUBSCRIBE no new message for that filter is delivered and bus interest is dropped', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'u/#', qos: 1 });
    expect(h.ports.bus.filterCount).toBe(1);
    await c.unsubscribe('u/#');
    const pub = await publisher(h);
    await pub.publish('u/x', 'gone', { qos: 1 });
    expect(c.publishes()).toEqual([]);
    expect(h.ports.bus.filterCount).toBe(0);
  });
});

describe('shared subscriptions', () => {
  it('(4.8.2) each message goes to one member of the group', async () => {
    const h = harness();
    const members = [await h.connect({ clientId: 'm1' }), await h.connect({ clientId: 'm2' }), await h.connect({ clientId: 'm3' })];
    for (const m of members) expect((await m.subscribe({ topic: '$share/workers/jobs/#', qos: 1 })).granted).toEqual([1]);
    const pub = await publisher(h);
    for (let i = 0; i < 9; i++) await pub.publish(`jobs/${i}`, String(i), { qos: 1 });
    const counts = members.map((m) => m.publishes().length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(9);
    // round-robin: every member gets a share
    expect(counts).toEqual([3, 3, 3]);
  });

  it('(4.8.2) different groups each get the message, and so does a plain subscriber', async () => {
    const h = harness();
    const a = await h.connect({ clientId: 'a' });
    const b = await h.connect({ clientId: 'b' });
    const plain = await h.connect({ clientId: 'plain' });
    await a.subscribe({ topic: '$share/g1/t', qos: 0 });
    await b.subscribe({ topic: '$share/g2/t', qos: 0 });
    await plain.subscribe({ topic: 't', qos: 0 });
    const pub = await publisher(h);
    await pub.publish('t', 'x');
    expect(payloads(a.publishes())).toEqual(['x']);
    expect(payloads(b.publishes())).toEqual(['x']);
    expect(payloads(plain.publishes())).toEqual(['x']);
  });

  it('[MQTT-4.8.2-1, MQTT-4.8.2-2] invalid share names get 0x8F (v5) and 0x80 (3.1.1)', async () => {
    const h = harness();
    const bad = ['$share/g', '$share//t', '$share/a+b/t', '$share/a#/t', '$share/g/'];
    const c5 = await h.connect({ clientId: 's5' });
    expect((await c5.subscribe(bad.map((topic) => ({ topic, qos: 0 as const })))).granted).toEqual(
      bad.map(() => ReasonCode.TopicFilterInvalid),
    );
    const c4 = await h.connect({ clientId: 's4', protocolVersion: 4 });
    expect((await c4.subscribe(bad.map((topic) => ({ topic, qos: 0 as const })))).granted).toEqual(bad.map(() => 0x80));
  });

  it('[MQTT-3.8.3-4] No Local on a shared subscription is a protocol error', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/t', qos: 0, nl: true }] });
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
  });

  it("[MQTT-4.7.2-1] a shared filter starting with a wildcard does not match '$' topics", async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: '$share/g/#', qos: 0 });
    const pub = await publisher(h);
    await brokerPublish(h, '$SYS/x', 'sys');
    await pub.publish('app/x', 'app');
    expect(payloads(c.publishes())).toEqual(['app']);
  });

  it('[MQTT-4.8.2-3] the member QoS is respected', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: '$share/g/t', qos: 1 });
    const pub = await publisher(h);
    await pub.publish('t', 'x', { qos: 2 });
    expect(c.publishes()[0]!.qos).toBe(1);
  });

  it('(4.8.2) retained messages are not sent for a new shared subscription', async () => {
    const h = harness();
    const pub = await publisher(h);
    await pub.publish('t', 'kept', { retain: true });
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: '$share/g/t', qos: 0 });
    expect(c.publishes()).toEqual([]);
  });

  it('an online member is preferred over one whose client is offline', async () => {
    const h = harness();
    const away = await h.connect({ clientId: 'away', clean: false, properties: { sessionExpiryInterval: 60 } });
    await away.subscribe({ topic: '$share/g/t', qos: 1 });
    const here = await h.connect({ clientId: 'here' });
    await here.subscribe({ topic: '$share/g/t', qos: 1 });
    await away.drop();
    const pub = await publisher(h);
    for (let i = 0; i < 4; i++) await pub.publish('t', String(i), { qos: 1 });
    expect(payloads(here.publishes())).toEqual(['0', '1', '2', '3']);
    await settle();
    expect(await h.ports.offlineQueue.length('away')).toBe(0);
  });

  it('unsubscribing the last member drops the group bus subscription', async () => {
    const h = harness();
    const a = await h.connect({ clientId: 'a' });
    const b = await h.connect({ clientId: 'b' });
    await a.subscribe({ topic: '$share/g/t', qos: 0 });
    await b.subscribe({ topic: '$share/g/t', qos: 0 });
    expect(h.broker.router.busSubscriptionCount).toBe(1);
    await a.unsubscribe('$share/g/t');
    expect(h.broker.router.busSubscriptionCount).toBe(1);
    const pub = await publisher(h);
    await pub.publish('t', 'x');
    expect(payloads(b.publishes())).toEqual(['x']);
    expect(a.publishes()).toEqual([]);
    await b.unsubscribe('$share/g/t');
    expect(h.broker.router.busSubscriptionCount).toBe(0);
  });
});
