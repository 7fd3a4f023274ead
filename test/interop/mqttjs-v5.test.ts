import { afterEach, describe, expect, it } from 'vitest';
import mqttPacket from 'mqtt-packet';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, MqttClient, Packet } from 'mqtt';
import { useTestNode } from '../support/node.js';
import { Inbox, connectMqtt, createMqtt, endMqttClients, once, quietPeriod } from '../support/clients.js';

// mqtt.js v5 against the embedded node: MQTT 5 features (topic aliases, message expiry,
// No Local, subscription identifiers, application properties, packet size limits).

function recordPackets(client: MqttClient, event: 'packetsend' | 'packetreceive'): Packet[] {
  const packets: Packet[] = [];
  client.on(event, (p: Packet) => packets.push(p));
  return packets;
}

const publishes = (packets: Packet[]): IPublishPacket[] => packets.filter((p): p is IPublishPacket => p.cmd === 'publish');

describe('mqtt.js interop: MQTT 5 features', () => {
  const t = useTestNode({ mqtt: { topicAliasMaximum: 10 } });
  afterEach(async () => {
    await endMqttClients();
  });

  describe('topic aliases', () => {
    it('advertises its Topic Alias Maximum and resolves aliases a client sends (autoAssignTopicAlias)', async () => {
      const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-in-sub' });
      await sub.subscribeAsync('alias/in/#', { qos: 1 });
      const inbox = new Inbox(sub);
      const pub = createMqtt(t.url, { protocolVersion: 5, clientId: 'alias-in-pub', autoAssignTopicAlias: true });
      const [connack] = await once<[IConnackPacket]>(pub, 'connect');
      expect(connack.properties?.topicAliasMaximum).toBe(10);
      const sent = recordPackets(pub, 'packetsend');
      for (let i = 0; i < 3; i++) await pub.publishAsync('alias/in/long/topic/name', `a${i}`, { qos: 1 });
      await pub.publishAsync('alias/in/other', 'b0', { qos: 0 });
      await pub.publishAsync('alias/in/long/topic/name', 'a3', { qos: 2 });
      const got = await inbox.wait(5);
      expect(got.map((m) => [m.topic, m.payload])).toEqual([
        ['alias/in/long/topic/name', 'a0'],
        ['alias/in/long/topic/name', 'a1'],
        ['alias/in/long/topic/name', 'a2'],
        ['alias/in/other', 'b0'],
        ['alias/in/long/topic/name', 'a3'],
      ]);
      // the client really used them: the topic once, then the alias alone
      const wire = publishes(sent).map((p) => [p.topic, p.properties?.topicAlias]);
      expect(wire).toEqual([
        ['alias/in/long/topic/name', 1],
        ['', 1],
        ['', 1],
        ['alias/in/other', 2],
        ['', 1],
      ]);
    });

    it('resolves aliases a client registers itself (autoUseTopicAlias) and lets it remap one', async () => {
      const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-use-sub' });
      await sub.subscribeAsync('alias/use/#', { qos: 1 });
      const inbox = new Inbox(sub);
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-use-pub', autoUseTopicAlias: true });
      const sent = recordPackets(pub, 'packetsend');
      await pub.publishAsync('alias/use/x', 'x0', { qos: 1, properties: { topicAlias: 3 } });
      await pub.publishAsync('alias/use/x', 'x1', { qos: 1 }); // mqtt.js sends alias 3 only
      await pub.publishAsync('', 'x2', { qos: 1, properties: { topicAlias: 3 } });
      await pub.publishAsync('alias/use/y', 'y0', { qos: 1, properties: { topicAlias: 3 } }); // alias 3 now means y
      await pub.publishAsync('', 'y1', { qos: 1, properties: { topicAlias: 3 } });
      const got = await inbox.wait(5);
      expect(got.map((m) => [m.topic, m.payload])).toEqual([
        ['alias/use/x', 'x0'],
        ['alias/use/x', 'x1'],
        ['alias/use/x', 'x2'],
        ['alias/use/y', 'y0'],
        ['alias/use/y', 'y1'],
      ]);
      expect(publishes(sent).map((p) => p.topic)).toEqual(['alias/use/x', '', '', 'alias/use/y', '']);
    });

    it('closes the connection with DISCONNECT 0x82 on an alias it never learned', async () => {
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-unknown' });
      const disconnected = once<[IDisconnectPacket]>(pub, 'disconnect');
      pub.publish('', 'lost', { qos: 0, properties: { topicAlias: 7 } });
      expect((await disconnected)[0].reasonCode).toBe(0x82);
    });

    it('forgets a client\'s aliases when its connection ends (a new connection may not use them)', async () => {
      const first = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-reconnect' });
      await first.publishAsync('alias/reconnect', 'set', { qos: 1, properties: { topicAlias: 4 } });
      await first.endAsync();
      const second = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-reconnect' });
      const disconnected = once<[IDisconnectPacket]>(second, 'disconnect');
      second.publish('', 'use', { qos: 0, properties: { topicAlias: 4 } });
      expect((await disconnected)[0].reasonCode).toBe(0x82);
    });

    it('sends aliases to a client that allows them, and full topics to one that does not', async () => {
      const aliasing = createMqtt(t.url, { protocolVersion: 5, clientId: 'alias-out', properties: { topicAliasMaximum: 2 } });
      const wire = recordPackets(aliasing, 'packetreceive');
      const inbox = new Inbox(aliasing);
      await once(aliasing, 'connect');
      await aliasing.subscribeAsync('alias/out/#', { qos: 1 });
      const plain = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-out-plain' });
      const plainWire = recordPackets(plain, 'packetreceive');
      await plain.subscribeAsync('alias/out/#', { qos: 1 });
      const plainInbox = new Inbox(plain);

      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'alias-out-pub' });
      const topics = ['alias/out/a', 'alias/out/a', 'alias/out/b', 'alias/out/c', 'alias/out/b', 'alias/out/c', 'alias/out/a'];
      for (const [i, topic] of topics.entries()) await pub.publishAsync(topic, `m${i}`, { qos: i % 2 === 0 ? 1 : 0 });
      const got = await inbox.wait(topics.length);
      // mqtt.js resolves every alias back to its topic
      expect(got.map((m) => m.topic)).toEqual(topics);
      expect(got.map((m) => m.payload)).toEqual(topics.map((_, i) => `m${i}`));
      const onWire = publishes(wire);
      const aliasOf = new Map<number, string>();
      for (const [i, p] of onWire.entries()) {
        const alias = p.properties?.topicAlias;
        if (alias !== undefined) {
          expect(alias).toBeGreaterThanOrEqual(1);
          expect(alias).toBeLessThanOrEqual(2); // never above what the client allowed
          if (p.topic !== '') aliasOf.set(alias, p.topic);
          // an alias alone stands for the topic it was set to
          expect(aliasOf.get(alias)).toBe(topics[i]);
        } else {
          expect(p.topic).toBe(topics[i]);
        }
      }
      // it did use them: some publishes carried no topic at all
      expect(onWire.filter((p) => p.topic === '').length).toBeGreaterThan(0);
      await plainInbox.wait(topics.length);
      expect(publishes(plainWire).every((p) => p.properties?.topicAlias === undefined && p.topic !== '')).toBe(true);
    });
  });

  describe('message expiry', () => {
    it('drops expired retained and queued messages and delivers the others with a decremented interval', async () => {
      // a persistent session to queue for while it is offline
      const offline = createMqtt(t.url, { protocolVersion: 5, clientId: 'expiry-offline', clean: false, properties: { sessionExpiryInterval: 60 } });
      await once(offline, 'connect');
      await offline.subscribeAsync('expiry/queued/#', { qos: 1 });
      await offline.endAsync();

      const live = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'expiry-live' });
      await live.subscribeAsync('expiry/live', { qos: 1 });
      const liveInbox = new Inbox(live);

      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'expiry-pub' });
      await pub.publishAsync('expiry/retained/short', 'gone soon', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
      await pub.publishAsync('expiry/retained/long', 'stays', { qos: 1, retain: true, properties: { messageExpiryInterval: 30 } });
      await pub.publishAsync('expiry/queued/short', 'gone soon', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.publishAsync('expiry/queued/long', 'stays', { qos: 1, properties: { messageExpiryInterval: 30 } });
      await pub.publishAsync('expiry/queued/never', 'no expiry', { qos: 1 });
      await pub.publishAsync('expiry/live', 'now', { qos: 1, properties: { messageExpiryInterval: 30 } });

      // delivered at once, the interval is passed on (whole seconds, not more than sent)
      const [now] = await liveInbox.wait(1);
      expect(now!.packet.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(29);
      expect(now!.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(30);

      await quietPeriod(1300); // let the 1 s messages expire (waiting for time to pass, not for an absence)

      const [back, backInbox, ack] = await (async () => {
        const c = createMqtt(t.url, { protocolVersion: 5, clientId: 'expiry-offline', clean: false, properties: { sessionExpiryInterval: 60 } });
        const i = new Inbox(c);
        const [a] = await once<[IConnackPacket]>(c, 'connect');
        return [c, i, a] as const;
      })();
      expect(ack.sessionPresent).toBe(true);
      await back.subscribeAsync('expiry/retained/#', { qos: 1 });
      await pub.publishAsync('expiry/queued/marker', 'marker', { qos: 1 });
      await backInbox.wait(1, 5000, (m) => m.payload === 'marker');
      const byTopic = new Map(backInbox.messages.map((m) => [m.topic, m]));
      expect([...byTopic.keys()].sort()).toEqual(['expiry/queued/long', 'expiry/queued/marker', 'expiry/queued/never', 'expiry/retained/long']);
      for (const topic of ['expiry/queued/long', 'expiry/retained/long']) {
        const remaining = byTopic.get(topic)!.packet.properties?.messageExpiryInterval;
        // [MQTT-3.3.2-6] the interval is what is left of it: at least one second has gone by
        expect(remaining, topic).toBeGreaterThanOrEqual(27);
        expect(remaining, topic).toBeLessThanOrEqual(29);
      }
      expect(byTopic.get('expiry/queued/never')!.packet.properties?.messageExpiryInterval).toBeUndefined();
      expect(byTopic.get('expiry/retained/long')!.packet.retain).toBe(true);
    });
  });

  describe('No Local', () => {
    it('does not send a client its own messages on a No Local subscription', async () => {
      const self = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'nolocal-self' });
      await self.subscribeAsync('nolocal/chat', { qos: 1, nl: true });
      await self.subscribeAsync('nolocal/echo', { qos: 1, nl: false });
      const selfInbox = new Inbox(self);
      const other = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'nolocal-other' });
      await other.subscribeAsync('nolocal/chat', { qos: 1 });
      const otherInbox = new Inbox(other);

      await self.publishAsync('nolocal/chat', 'mine', { qos: 1 });
      await self.publishAsync('nolocal/echo', 'mine, echoed', { qos: 1 });
      await other.publishAsync('nolocal/chat', 'theirs', { qos: 1 });
      await selfInbox.wait(2);
      await otherInbox.wait(2);
      expect(selfInbox.messages.map((m) => [m.topic, m.payload])).toEqual([
        ['nolocal/echo', 'mine, echoed'],
        ['nolocal/chat', 'theirs'],
      ]);
      expect(otherInbox.messages.map((m) => m.payload)).toEqual(['mine', 'theirs']);
    });
  });

  describe('subscription identifiers', () => {
    it('sends the identifiers of every matching subscription with each message', async () => {
      const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'subid-sub' });
      await sub.subscribeAsync('subid/+/temp', { qos: 1, properties: { subscriptionIdentifier: 7 } });
      await sub.subscribeAsync('subid/#', { qos: 0, properties: { subscriptionIdentifier: 300_000 } });
      await sub.subscribeAsync('subid/plain/none', { qos: 1 });
      const inbox = new Inbox(sub);
      const pub = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'subid-pub' });
      await pub.publishAsync('subid/a/temp', 'both', { qos: 1 });
      await pub.publishAsync('subid/a/humidity', 'one', { qos: 1 });
      await pub.publishAsync('subid/plain/none', 'plain and #', { qos: 1 });
      const got = await inbox.wait(3);
      const ids = (m: (typeof got)[number]): number[] => {
        const v = m.packet.properties?.subscriptionIdentifier;
        return v === undefined ? [] : (Array.isArray(v) ? v : [v]).slice().sort((a, b) => a - b);
      };
      expect(got.map((m) => [m.payload, ids(m), m.packet.qos])).toEqual([
        ['both', [7, 300_000], 1],
        ['one', [300_000], 0],
        ['plain and #', [300_000], 1],
      ]);
    });

    it('sends the identifier with retained messages delivered on subscribe, and replaces it on resubscribe', async () => {
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'subid-ret-pub' });
      await pub.publishAsync('subid/ret/x', 'kept', { qos: 1, retain: true });
      const sub = createMqtt(t.url, { protocolVersion: 5, clientId: 'subid-ret-sub' });
      const inbox = new Inbox(sub);
      await once(sub, 'connect');
      await sub.subscribeAsync('subid/ret/+', { qos: 1, properties: { subscriptionIdentifier: 42 } });
      const [r] = await inbox.wait(1);
      expect([r!.payload, r!.packet.retain, r!.packet.properties?.subscriptionIdentifier]).toEqual(['kept', true, 42]);
      await sub.subscribeAsync('subid/ret/+', { qos: 1, rh: 2, properties: { subscriptionIdentifier: 43 } });
      await pub.publishAsync('subid/ret/x', 'new', { qos: 1 });
      const [, m] = await inbox.wait(2);
      expect([m!.payload, m!.packet.properties?.subscriptionIdentifier]).toEqual(['new', 43]);
    });
  });

  describe('application properties', () => {
    it('passes user properties, correlation data, response topic, content type and payload format through unchanged', async () => {
      const sub = await connectMqtt(t.wsUrl, { protocolVersion: 5, clientId: 'props-sub' });
      await sub.subscribeAsync('props/#', { qos: 2 });
      const inbox = new Inbox(sub);
      const v4sub = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'props-v4' });
      await v4sub.subscribeAsync('props/#', { qos: 2 });
      const v4inbox = new Inbox(v4sub);
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'props-pub' });
      const properties = {
        payloadFormatIndicator: true,
        contentType: 'application/json; charset=utf-8',
        responseTopic: 'props/reply/ünïcode',
        correlationData: Buffer.from([0x00, 0xff, 0x10, 0x80]),
        userProperties: { region: 'eu-west', tag: ['a', 'b', 'a'], empty: '' },
      };
      for (const qos of [0, 1, 2] as const) await pub.publishAsync(`props/q${qos}`, '{"v":1}', { qos, properties });
      const got = await inbox.wait(3);
      for (const m of got) {
        expect(m.payload).toBe('{"v":1}');
        expect(m.packet.properties).toMatchObject(properties);
        expect(m.packet.properties?.userProperties).toEqual(properties.userProperties);
      }
      // a 3.1.1 subscriber gets the same message without properties
      const plain = await v4inbox.wait(3);
      expect(plain.map((m) => [m.topic, m.payload, m.packet.properties])).toEqual([
        ['props/q0', '{"v":1}', undefined],
        ['props/q1', '{"v":1}', undefined],
        ['props/q2', '{"v":1}', undefined],
      ]);
    });

    it('supports request/response with response topic and correlation data', async () => {
      const responder = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'rr-responder' });
      await responder.subscribeAsync('rr/requests', { qos: 1 });
      responder.on('message', (_topic, payload, packet) => {
        const { responseTopic, correlationData } = packet.properties ?? {};
        if (responseTopic === undefined) return;
        responder.publish(responseTopic, `echo:${payload.toString()}`, { qos: 1, properties: correlationData !== undefined ? { correlationData } : {} });
      });
      const requester = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'rr-requester' });
      await requester.subscribeAsync('rr/responses/rr-requester', { qos: 1 });
      const inbox = new Inbox(requester);
      for (let i = 0; i < 3; i++) {
        await requester.publishAsync('rr/requests', `q${i}`, {
          qos: 1,
          properties: { responseTopic: 'rr/responses/rr-requester', correlationData: Buffer.from(`corr-${i}`) },
        });
      }
      const got = await inbox.wait(3);
      expect(got.map((m) => [m.payload, m.packet.properties?.correlationData?.toString()])).toEqual([
        ['echo:q0', 'corr-0'],
        ['echo:q1', 'corr-1'],
        ['echo:q2', 'corr-2'],
      ]);
    });
  });
});

describe('mqtt.js interop: packet size limits (maxPacketSize 1024)', () => {
  const t = useTestNode({ mqtt: { maxPacketSize: 1024 } });
  afterEach(async () => {
    await endMqttClients();
  });

  it('advertises its Maximum Packet Size and closes an MQTT 5 client that exceeds it with DISCONNECT 0x95', async () => {
    const client = createMqtt(t.url, { protocolVersion: 5, clientId: 'big-5' });
    const [connack] = await once<[IConnackPacket]>(client, 'connect');
    expect(connack.properties?.maximumPacketSize).toBe(1024);
    const disconnected = once<[IDisconnectPacket]>(client, 'disconnect');
    const closed = once(client, 'close');
    client.publish('big/topic', Buffer.alloc(2000, 0x61), { qos: 1 });
    const [packet] = await disconnected;
    expect(packet.reasonCode).toBe(0x95);
    await closed;
    expect(client.connected).toBe(false);
  });

  it('closes a 3.1.1 client that exceeds it, and its will is published', async () => {
    const watcher = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'big-watch' });
    await watcher.subscribeAsync('big/will', { qos: 1 });
    const inbox = new Inbox(watcher);
    const client = await connectMqtt(t.url, {
      protocolVersion: 4,
      clientId: 'big-4',
      will: { topic: 'big/will', payload: Buffer.from('too big'), qos: 1, retain: false },
    });
    const closed = once(client, 'close');
    client.publish('big/topic', Buffer.alloc(5000, 0x62), { qos: 0 });
    await closed;
    const [will] = await inbox.wait(1);
    expect(will!.payload).toBe('too big');
  });

  it('accepts a packet of exactly the maximum size over TCP and WebSocket', async () => {
    for (const url of [t.url, t.wsUrl]) {
      const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'edge-sub' });
      await sub.subscribeAsync('edge/size', { qos: 1 });
      const inbox = new Inbox(sub);
      const pub = await connectMqtt(url, { protocolVersion: 5, clientId: 'edge-pub' });
      // fixed header 1 + 2 (remaining length), topic 2 + 9, packet ID 2, properties length 1
      const payload = Buffer.alloc(1024 - 17, 0x63);
      const sent = recordPackets(pub, 'packetsend');
      await pub.publishAsync('edge/size', payload, { qos: 1 });
      expect(mqttPacket.generate(publishes(sent)[0]!, { protocolVersion: 5 }).length).toBe(1024);
      const [m] = await inbox.wait(1);
      expect(m!.payload.length).toBe(payload.length);
      // one byte more is one too many
      const disconnected = once<[IDisconnectPacket]>(pub, 'disconnect');
      pub.publish('edge/size', Buffer.concat([payload, Buffer.from('!')]), { qos: 1 });
      expect((await disconnected)[0].reasonCode).toBe(0x95);
      expect(mqttPacket.generate(publishes(sent)[1]!, { protocolVersion: 5 }).length).toBe(1025);
      expect(inbox.messages).toHaveLength(1);
      await sub.endAsync();
    }
  });

  it('does not send a client messages larger than the Maximum Packet Size it advertised', async () => {
    const small = createMqtt(t.url, { protocolVersion: 5, clientId: 'small-client', properties: { maximumPacketSize: 200 } });
    const inbox = new Inbox(small);
    const errors: Error[] = [];
    small.on('error', (err) => errors.push(err));
    await once(small, 'connect');
    await small.subscribeAsync('limit/#', { qos: 1 });
    const big = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'limit-big-sub' });
    await big.subscribeAsync('limit/#', { qos: 1 });
    const bigInbox = new Inbox(big);

    const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'limit-pub' });
    await pub.publishAsync('limit/large', Buffer.alloc(500, 0x64), { qos: 1 });
    await pub.publishAsync('limit/large0', Buffer.alloc(300, 0x64), { qos: 0 });
    await pub.publishAsync('limit/small', 'fits', { qos: 1 });
    // what fits arrives; what does not was dropped (not sent and not kept for later)
    const [m] = await inbox.wait(1);
    expect([m!.topic, m!.payload]).toEqual(['limit/small', 'fits']);
    await bigInbox.wait(3);
    expect(inbox.messages).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(small.connected).toBe(true);
    // and the session is not stuck: the next message that fits arrives too
    await pub.publishAsync('limit/small', 'still fits', { qos: 1 });
    await inbox.wait(2);
    expect(inbox.messages.map((x) => x.payload)).toEqual(['fits', 'still fits']);
    await quietPeriod(100);
    expect(errors).toEqual([]);
  });
});
