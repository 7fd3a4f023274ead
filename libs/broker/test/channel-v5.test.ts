import { describe, expect, it } from 'vitest';
import { ReasonCode } from '@fleetmq/protocol';
import { payloads, settle, useHarness, type Harness } from './support/harness.js';

const harness = useHarness();

async function subscriber(h: Harness, filter: string, props: Record<string, unknown> = {}, clientId = 'sub') {
  const sub = await h.connect({ clientId, properties: props });
  await sub.subscribe({ topic: filter, qos: 1 });
  return sub;
}

describe('topic aliases from the client', () => {
  it('[MQTT-3.3.2-12] an alias set with a topic is then used alone; subscribers see the topic name', async () => {
    const h = harness();
    const sub = await subscriber(h, 'fleet/#');
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('fleet/truck1/gps', 'a', { qos: 1, properties: { topicAlias: 3 } });
    await pub.publish('', 'b', { qos: 1, properties: { topicAlias: 3 } });
    expect(pub.drain().map((p) => p.cmd)).toEqual(['puback', 'puback']);
    const got = sub.publishes();
    expect(got.map((p) => p.topic)).toEqual(['fleet/truck1/gps', 'fleet/truck1/gps']);
    // the publisher's alias is not forwarded
    expect(got.every((p) => p.properties?.topicAlias === undefined)).toBe(true);
  });

  it('[MQTT-3.3.2-12] an alias can be remapped to another topic', async () => {
    const h = harness();
    const sub = await subscriber(h, 'x/#');
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('x/1', '1', { properties: { topicAlias: 1 } });
    await pub.publish('x/2', '2', { properties: { topicAlias: 1 } });
    await pub.publish('', '3', { properties: { topicAlias: 1 } });
    expect(sub.publishes().map((p) => p.topic)).toEqual(['x/1', 'x/2', 'x/2']);
  });

  it('[MQTT-3.3.2-8] topic alias 0 is DISCONNECT 0x94', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('t', 'x', { properties: { topicAlias: 0 } });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.TopicAliasInvalid);
    expect(pub.closed).toBe(true);
  });

  it('[MQTT-3.3.2-9] a topic alias above the Topic Alias Maximum in CONNACK is DISCONNECT 0x94', async () => {
    const h = harness({ options: { topicAliasMaximum: 5 } });
    const pub = h.client();
    expect((await pub.connect({ clientId: 'pub' })).properties?.topicAliasMaximum).toBe(5);
    await pub.publish('t', 'ok', { properties: { topicAlias: 5 } });
    expect(pub.closed).toBe(false);
    await pub.publish('t', 'x', { properties: { topicAlias: 6 } });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.TopicAliasInvalid);
  });

  it('[MQTT-3.3.2-9] with Topic Alias Maximum 0 no alias is accepted', async () => {
    const h = harness({ options: { topicAliasMaximum: 0 } });
    const pub = h.client();
    expect((await pub.connect({ clientId: 'pub' })).properties?.topicAliasMaximum).toBeUndefined();
    await pub.publish('t', 'x', { properties: { topicAlias: 1 } });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.TopicAliasInvalid);
  });

  it('(3.3.2.3.4) an empty topic with an alias that was never set is a protocol error', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('', 'x', { properties: { topicAlias: 2 } });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
  });

  it('[MQTT-3.3.2-7] aliases do not carry over to a new connection', async () => {
    const h = harness();
    const opts = { clientId: 'pub', clean: false, properties: { sessionExpiryInterval: 60 } };
    const pub = await h.connect(opts);
    await pub.publish('t', 'x', { properties: { topicAlias: 1 } });
    await pub.drop();
    const again = await h.connect(opts);
    await again.publish('', 'y', { properties: { topicAlias: 1 } });
    expect(again.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
  });
});

describe('topic aliases to the client', () => {
  it('[MQTT-3.1.2-27] no alias is sent to a client that did not send a Topic Alias Maximum', async () => {
    const h = harness();
    const sub = await subscriber(h, 't/#');
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('t/a', '1');
    await pub.publish('t/a', '2');
    const got = sub.publishes();
    expect(got.map((p) => p.topic)).toEqual(['t/a', 't/a']);
    expect(got.every((p) => p.properties?.topicAlias === undefined)).toBe(true);
  });

  it('[MQTT-3.1.2-26, MQTT-3.3.2-11] aliases up to the client maximum; the topic is left out once the alias is known', async () => {
    const h = harness();
    const sub = await subscriber(h, 't/#', { topicAliasMaximum: 2 });
    const pub = await h.connect({ clientId: 'pub' });
    for (const t of ['t/a', 't/a', 't/b', 't/c', 't/b', 't/c']) await pub.publish(t, t);
    const got = sub.publishes();
    expect(got.map((p) => [p.topic, p.properties?.topicAlias])).toEqual([
      ['t/a', 1],
      ['', 1],
      ['t/b', 2],
      ['t/c', undefined],
      ['', 2],
      ['t/c', undefined],
    ]);
    for (const p of got) {
      const alias = p.properties?.topicAlias;
      if (alias !== undefined) {
        expect(alias).toBeGreaterThan(0);
        expect(alias).toBeLessThanOrEqual(2);
      }
    }
  });

  it('[MQTT-3.3.2-7] a new connection starts with no aliases: the first PUBLISH carries the topic again', async () => {
    const h = harness();
    const opts = { clientId: 'sub', clean: false, properties: { sessionExpiryInterval: 60, topicAliasMaximum: 4 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 't', qos: 0 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('t', '1');
    await pub.publish('t', '2');
    expect(sub.publishes().map((p) => p.topic)).toEqual(['t', '']);
    await sub.drop();
    const again = await h.connect(opts);
    await pub.publish('t', '3');
    const [p] = again.publishes();
    expect(p).toMatchObject({ topic: 't', properties: { topicAlias: 1 } });
  });

  it('[MQTT-3.3.2-7] resent messages on a resumed session carry the topic name', async () => {
    const h = harness();
    const opts = { clientId: 'sub', clean: false, properties: { sessionExpiryInterval: 60, topicAliasMaximum: 4 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 't', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('t', '1', { qos: 1 });
    await pub.publish('t', '2', { qos: 1 });
    expect(sub.publishes().map((p) => p.topic)).toEqual(['t', '']);
    await sub.drop();
    const again = await h.connect(opts);
    const resent = again.publishes();
    expect(resent.map((p) => p.dup)).toEqual([true, true]);
    expect(resent[0]!.topic).toBe('t');
  });

  it('[MQTT-3.1.2-25] an alias set by a message that was too large to send is not used afterwards', async () => {
    const h = harness();
    const sub = await subscriber(h, 't/#', { topicAliasMaximum: 4, maximumPacketSize: 60 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('t/a', 'x'.repeat(100));
    await pub.publish('t/a', 'small');
    const got = sub.publishes();
    expect(got).toHaveLength(1);
    expect(got[0]!.topic).toBe('t/a');
    expect(got[0]!.properties?.topicAlias).toBe(1);
  });
});

describe('subscription options', () => {
  it('[MQTT-3.8.3-3] No Local: the publisher does not receive its own message', async () => {
    const h = harness();
    const self = await h.connect({ clientId: 'self' });
    await self.subscribe([
      { topic: 'chat/#', qos: 1, nl: true },
      { topic: 'echo', qos: 1 },
    ]);
    const other = await h.connect({ clientId: 'other' });
    await other.subscribe({ topic: 'chat/#', qos: 1, nl: true });
    await self.publish('chat/room', 'mine', { qos: 1 });
    await self.publish('echo', 'back', { qos: 1 });
    expect(payloads(self.publishes())).toEqual(['back']);
    expect(payloads(other.publishes())).toEqual(['mine']);
  });

  it('[MQTT-3.3.1-12, MQTT-3.3.1-13] Retain As Published keeps the RETAIN flag on forwarded messages', async () => {
    const h = harness();
    const rap = await h.connect({ clientId: 'rap' });
    await rap.subscribe({ topic: 'r', qos: 0, rap: true });
    const plain = await h.connect({ clientId: 'plain' });
    await plain.subscribe({ topic: 'r', qos: 0, rap: false });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r', 'retained', { retain: true });
    await pub.publish('r', 'live', { retain: false });
    expect(rap.publishes().map((p) => p.retain)).toEqual([true, false]);
    expect(plain.publishes().map((p) => p.retain)).toEqual([false, false]);
  });

  it('[MQTT-3.3.1-9] Retain Handling 0 sends retained messages at every subscribe', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/x', 'kept', { retain: true });
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'r/#', qos: 0, rh: 0 });
    await c.subscribe({ topic: 'r/#', qos: 0, rh: 0 });
    expect(payloads(c.publishes())).toEqual(['kept', 'kept']);
  });

  it('[MQTT-3.3.1-10] Retain Handling 1 sends retained messages only when the subscription is new', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/x', 'kept', { retain: true });
    const opts = { clientId: 's', clean: false, properties: { sessionExpiryInterval: 60 } };
    const c = await h.connect(opts);
    await c.subscribe({ topic: 'r/#', qos: 0, rh: 1 });
    await c.subscribe({ topic: 'r/#', qos: 0, rh: 1 });
    expect(payloads(c.publishes())).toEqual(['kept']);
    await c.drop();
    // the subscription survives in the resumed session: still not new
    const again = await h.connect(opts);
    await again.subscribe({ topic: 'r/#', qos: 0, rh: 1 });
    expect(again.publishes()).toEqual([]);
  });

  it('[MQTT-3.3.1-11] Retain Handling 2 never sends retained messages', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/x', 'kept', { retain: true });
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 'r/#', qos: 0, rh: 2 });
    expect(c.publishes()).toEqual([]);
    await pub.publish('r/x', 'live');
    expect(payloads(c.publishes())).toEqual(['live']);
  });
});

describe('subscription identifiers', () => {
  it('(3.8.2.1.2) the Subscription Identifier comes back on matching messages, retained ones included', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('s/old', 'retained', { retain: true });
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 's/#', qos: 1 }, { properties: { subscriptionIdentifier: 268_435_455 } });
    await pub.publish('s/new', 'live', { qos: 1 });
    const got = c.publishes();
    expect(payloads(got)).toEqual(['retained', 'live']);
    expect(got.map((p) => p.properties?.subscriptionIdentifier)).toEqual([268_435_455, 268_435_455]);
  });

  it('[MQTT-3.8.4-3] a replacing SUBSCRIBE replaces the identifier, or removes it', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: 's', qos: 0 }, { properties: { subscriptionIdentifier: 1 } });
    await c.subscribe({ topic: 's', qos: 0 }, { properties: { subscriptionIdentifier: 2 } });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('s', 'a');
    await c.subscribe({ topic: 's', qos: 0 });
    await pub.publish('s', 'b');
    expect(c.publishes().map((p) => p.properties?.subscriptionIdentifier)).toEqual([2, undefined]);
  });

  it('shared subscriptions carry their identifier too', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.subscribe({ topic: '$share/g/s', qos: 0 }, { properties: { subscriptionIdentifier: 9 } });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('s', 'a');
    expect(c.publishes()[0]!.properties?.subscriptionIdentifier).toBe(9);
  });

  it('(3.8.2.1.2) a Subscription Identifier of 0 is a protocol error', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    await c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 's', qos: 0 }], properties: { subscriptionIdentifier: 0 } });
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
    expect(c.channel.session!.subscriptions.size).toBe(0);
  });

  it('(3.8.2.1.2) more than one Subscription Identifier is a protocol error', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 's' });
    // what mqtt-packet's parser makes of a property that appears twice
    const properties = { subscriptionIdentifier: [1, 2] as unknown as number };
    await c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 's', qos: 0 }], properties });
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
  });
});

describe('application properties', () => {
  const properties = {
    payloadFormatIndicator: true,
    contentType: 'application/json; charset=utf-8',
    responseTopic: 'reply/truck1',
    correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
    userProperties: { region: 'eu-west', tag: ['b', 'a', 'b'], empty: '' },
  };

  it('[MQTT-3.3.2-4, MQTT-3.3.2-15, MQTT-3.3.2-16, MQTT-3.3.2-17, MQTT-3.3.2-18, MQTT-3.3.2-20] are forwarded unaltered', async () => {
    const h = harness();
    const sub = await subscriber(h, 'p/#');
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('p/live', '{}', { qos: 1, properties });
    const [p] = sub.publishes();
    expect(p!.properties).toEqual(properties);
    // order of user property values is kept
    expect(p!.properties!.userProperties!.tag).toEqual(['b', 'a', 'b']);
  });

  it('are kept in the retained store and the offline queue', async () => {
    const h = harness();
    const opts = { clientId: 'away', clean: false, properties: { sessionExpiryInterval: 60 } };
    const away = await h.connect(opts);
    await away.subscribe({ topic: 'p/#', qos: 1 });
    await away.drop();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('p/ret', '{}', { qos: 1, retain: true, properties });
    const late = await h.connect({ clientId: 'late' });
    await late.subscribe({ topic: 'p/ret', qos: 1 });
    expect(late.publishes()[0]!.properties).toEqual(properties);
    const again = await h.connect(opts);
    expect(again.publishes()[0]!.properties).toEqual(properties);
  });

  it('survive a session saved by one node and resumed on another', async () => {
    const a = harness({ nodeId: 'a' });
    const b = harness({ nodeId: 'b', ports: a.ports });
    const opts = { clientId: 'roam', clean: false, properties: { sessionExpiryInterval: 60 } };
    const sub = await a.connect(opts);
    await sub.subscribe({ topic: 'p/#', qos: 1 });
    const pub = await a.connect({ clientId: 'pub' });
    await pub.publish('p/x', 'inflight', { qos: 1, properties });
    const [sent] = sub.publishes();
    await sub.drop();
    const again = b.client();
    expect((await again.connect(opts)).sessionPresent).toBe(true);
    const [resent] = again.publishes();
    expect(resent).toMatchObject({ dup: true, messageId: sent!.messageId, topic: 'p/x' });
    expect(resent!.properties).toEqual(properties);
  });

  it('a 3.1.1 subscriber gets the message without properties', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'old', protocolVersion: 4 });
    await sub.subscribe({ topic: 'p', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('p', 'x', { qos: 1, properties: { ...properties, messageExpiryInterval: 60 } });
    const [p] = sub.publishes();
    expect(p!.properties).toBeUndefined();
    expect(Buffer.from(p!.payload).toString()).toBe('x');
  });
});

describe('DISCONNECT', () => {
  it('(3.14.4) v5: the server does not answer a DISCONNECT, and sends nothing after it', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'bye' });
    await c.disconnect(ReasonCode.Success);
    expect(c.drain()).toEqual([]);
    expect(c.closed).toBe(true);
    expect(h.broker.registry.isConnected('bye')).toBe(false);
  });

  it('(3.14.2.2.2) raising Session Expiry from 0 on DISCONNECT is a protocol error (DISCONNECT 0x82)', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'e0' });
    await c.disconnect(ReasonCode.Success, { sessionExpiryInterval: 30 });
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
    expect(c.closed).toBe(true);
    expect(h.broker.registry.detachedCount).toBe(0);
  });

  it('(3.14.2.2.2) the protocol error is about the CONNECT value, not the one the server lowered to 0', async () => {
    const h = harness({ options: { maxSessionExpiryInterval: 0 } });
    const c = h.client();
    expect((await c.connect({ clientId: 'capped', properties: { sessionExpiryInterval: 60 } })).properties?.sessionExpiryInterval).toBe(0);
    await c.disconnect(ReasonCode.Success, { sessionExpiryInterval: 30 });
    expect(c.drain()).toEqual([]);
    expect(c.closed).toBe(true);
    // still capped: the session ends with the connection
    expect(h.broker.registry.detachedCount).toBe(0);
  });

  it('(3.14.2.2.2) Session Expiry 0 on DISCONNECT ends a persistent session', async () => {
    const h = harness();
    const opts = { clientId: 'end', clean: false, properties: { sessionExpiryInterval: 60 } };
    const c = await h.connect(opts);
    await c.subscribe('x');
    await c.disconnect(ReasonCode.Success, { sessionExpiryInterval: 0 });
    expect(h.broker.registry.detachedCount).toBe(0);
    expect((await h.connect(opts)).channel.session!.subscriptions.size).toBe(0);
  });

  it('(3.14.2.2.2) a non-zero Session Expiry on DISCONNECT replaces the one from CONNECT', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'ext', properties: { sessionExpiryInterval: 10 } });
    const session = c.channel.session!;
    await c.disconnect(ReasonCode.Success, { sessionExpiryInterval: 3600 });
    expect(session.expiryInterval).toBe(3600);
    expect(h.broker.registry.detachedCount).toBe(1);
    const stored = await h.ports.sessions.load('ext');
    expect(stored?.snapshot.expiryInterval).toBe(3600);
  });

  it('[MQTT-3.1.2-8, MQTT-3.1.2-10, MQTT-3.14.4-3] a DISCONNECT with an error reason code does not discard the will', async () => {
    const h = harness();
    const w = await h.connect({ clientId: 'w' });
    await w.subscribe('will/#');
    const c = await h.connect({ clientId: 'err', will: { topic: 'will/err', payload: 'failed' } });
    await c.disconnect(ReasonCode.UnspecifiedError);
    expect(payloads(w.publishes())).toEqual(['failed']);
  });

  it('[MQTT-3.14.4-1] server shutdown sends DISCONNECT 0x8B on v5 (then nothing more) and closes 3.1.1 clients without a packet', async () => {
    const h = harness();
    const c5 = await h.connect({ clientId: 'five' });
    const c4 = await h.connect({ clientId: 'four', protocolVersion: 4 });
    h.broker.shutdown(ReasonCode.ServerShuttingDown);
    await settle();
    expect(c5.next('disconnect').reasonCode).toBe(ReasonCode.ServerShuttingDown);
    expect(c5.closed).toBe(true);
    expect(c4.drain()).toEqual([]);
    expect(c4.closed).toBe(true);
  });
});

describe('response topic', () => {
  it('[MQTT-3.3.2-14] a Response Topic with a wildcard is a protocol error (0x82), and nothing is published', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'rt-sub' });
    await sub.subscribe('req/#');
    const pub = await h.connect({ clientId: 'rt-pub' });
    await pub.publish('req/a', 'x', { qos: 1, properties: { responseTopic: 'resp/+' } });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
    expect(pub.closed).toBe(true);
    await settle();
    expect(sub.publishes()).toEqual([]);
  });
});

