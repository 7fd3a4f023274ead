import { afterEach, describe, expect, it } from 'vitest';
import type { IConnackPacket, IDisconnectPacket, MqttClient } from 'mqtt';
import { useTestNode } from '../support/node.js';
import { Inbox, connectMqtt, createMqtt, endMqttClients, once, quietPeriod, waitUntil } from '../support/clients.js';

// mqtt.js v5 against the embedded node: wills (killed sockets, will delay), persistent
// sessions, session takeover, shared subscriptions.

describe('mqtt.js interop: wills, sessions, takeover, shared subscriptions', () => {
  const t = useTestNode();
  afterEach(async () => {
    await endMqttClients();
  });

  /** Connects with the Inbox attached before CONNACK, so nothing sent right after it is missed. */
  async function connectWithInbox(url: string, opts: Parameters<typeof createMqtt>[1]): Promise<[MqttClient, Inbox, IConnackPacket]> {
    const client = createMqtt(url, opts);
    const inbox = new Inbox(client);
    const [connack] = await once<[IConnackPacket]>(client, 'connect');
    return [client, inbox, connack];
  }

  describe('will messages', () => {
    for (const protocolVersion of [3, 4, 5] as const) {
      it(`publishes the will of a client whose socket died (protocol ${protocolVersion})`, async () => {
        const protocolId = protocolVersion === 3 ? 'MQIsdp' : 'MQTT';
        const watcher = await connectMqtt(t.url, { protocolVersion, protocolId, clientId: `will-watch-${protocolVersion}` });
        await watcher.subscribeAsync(`will/${protocolVersion}/#`, { qos: 2 });
        const inbox = new Inbox(watcher);
        const dying = await connectMqtt(t.url, {
          protocolVersion,
          protocolId,
          clientId: `will-dying-${protocolVersion}`,
          will: { topic: `will/${protocolVersion}/status`, payload: Buffer.from('offline'), qos: 2, retain: false },
        });
        dying.stream.destroy();
        const [will] = await inbox.wait(1);
        expect([will!.topic, will!.payload, will!.packet.qos]).toEqual([`will/${protocolVersion}/status`, 'offline', 2]);
      });
    }

    it('does not publish the will after a normal DISCONNECT, and publishes it after DISCONNECT 0x04', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'will-normal-watch' });
      await watcher.subscribeAsync('will/normal/#', { qos: 1 });
      const inbox = new Inbox(watcher);
      const polite = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-polite',
        will: { topic: 'will/normal/polite', payload: Buffer.from('should not appear'), qos: 1, retain: false },
      });
      await polite.endAsync();
      const asking = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-asking',
        will: { topic: 'will/normal/asking', payload: Buffer.from('asked for'), qos: 1, retain: false },
      });
      await asking.endAsync(false, { reasonCode: 0x04 });
      const [will] = await inbox.wait(1);
      expect([will!.topic, will!.payload]).toEqual(['will/normal/asking', 'asked for']);
      // the polite client ended first: had its will been sent, it would have come first
      expect(inbox.messages.map((m) => m.topic)).toEqual(['will/normal/asking']);
    });

    it('keeps a retained will and carries its MQTT 5 properties', async () => {
      const dying = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-props',
        will: {
          topic: 'will/props/state',
          payload: Buffer.from('{"online":false}'),
          qos: 1,
          retain: true,
          properties: {
            contentType: 'application/json',
            userProperties: { device: 'd-17' },
            responseTopic: 'will/props/reply',
            correlationData: Buffer.from([1, 2, 3]),
          },
        },
      });
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'will-props-live' });
      await watcher.subscribeAsync('will/props/state', { qos: 1 });
      const live = new Inbox(watcher);
      dying.stream.destroy();
      const [m] = await live.wait(1);
      expect(m!.payload).toBe('{"online":false}');
      expect(m!.packet.properties).toMatchObject({
        contentType: 'application/json',
        userProperties: { device: 'd-17' },
        responseTopic: 'will/props/reply',
        correlationData: Buffer.from([1, 2, 3]),
      });
      // retained: a later subscriber gets it with the retain flag
      const [late, lateInbox] = await connectWithInbox(t.url, { protocolVersion: 4, clientId: 'will-props-late' });
      await late.subscribeAsync('will/props/state', { qos: 1 });
      const [r] = await lateInbox.wait(1);
      expect([r!.payload, r!.packet.retain]).toEqual(['{"online":false}', true]);
    });

    it('delays the will by the Will Delay Interval (MQTT 5)', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'will-delay-watch' });
      await watcher.subscribeAsync('will/delay/#', { qos: 1 });
      const inbox = new Inbox(watcher);
      const dying = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-delay',
        properties: { sessionExpiryInterval: 30 },
        will: { topic: 'will/delay/status', payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
      });
      const closedAt = Date.now();
      dying.stream.destroy();
      await quietPeriod(500);
      expect(inbox.messages).toHaveLength(0);
      const [will] = await inbox.wait(1, 3000);
      expect(will!.payload).toBe('late');
      expect(Date.now() - closedAt).toBeGreaterThanOrEqual(950);
    });

    it('cancels a delayed will when the client reconnects within the delay (MQTT 5)', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'will-cancel-watch' });
      await watcher.subscribeAsync('will/cancel/#', { qos: 1 });
      const inbox = new Inbox(watcher);
      const willOf = (who: string) => ({
        topic: `will/cancel/${who}`,
        payload: Buffer.from(`${who} gone`),
        qos: 1 as const,
        retain: false,
        properties: { willDelayInterval: 1 },
      });
      const returning = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-cancel-returning',
        properties: { sessionExpiryInterval: 30 },
        will: willOf('returning'),
      });
      // a control client with the same delay that does not come back: its will shows when the delay is over
      const control = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-cancel-control',
        properties: { sessionExpiryInterval: 30 },
        will: willOf('control'),
      });
      returning.stream.destroy();
      control.stream.destroy();
      await once(returning, 'close');
      const [, , connack] = await connectWithInbox(t.url, {
        protocolVersion: 5,
        clientId: 'will-cancel-returning',
        clean: false,
        properties: { sessionExpiryInterval: 30 },
      });
      expect(connack.sessionPresent).toBe(true);
      const [controlWill] = await inbox.wait(1, 3000);
      expect(controlWill!.topic).toBe('will/cancel/control');
      await quietPeriod(300);
      expect(inbox.messages.map((m) => m.topic)).toEqual(['will/cancel/control']);
    });

    it('publishes the will at once when the session ends with the connection, whatever the delay (MQTT 5)', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'will-noexpiry-watch' });
      await watcher.subscribeAsync('will/noexpiry', { qos: 1 });
      const inbox = new Inbox(watcher);
      const dying = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-noexpiry',
        will: { topic: 'will/noexpiry', payload: Buffer.from('now'), qos: 1, retain: false, properties: { willDelayInterval: 30 } },
      });
      const closedAt = Date.now();
      dying.stream.destroy();
      const [will] = await inbox.wait(1, 3000);
      expect(will!.payload).toBe('now');
      expect(Date.now() - closedAt).toBeLessThan(900);
    });

    it('publishes a delayed will when the session expires before the delay (MQTT 5)', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'will-expiry-watch' });
      await watcher.subscribeAsync('will/expiry/#', { qos: 1 });
      const inbox = new Inbox(watcher);
      const dying = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'will-expiry',
        properties: { sessionExpiryInterval: 1 },
        will: { topic: 'will/expiry/status', payload: Buffer.from('session over'), qos: 1, retain: false, properties: { willDelayInterval: 60 } },
      });
      const closedAt = Date.now();
      dying.stream.destroy();
      const [will] = await inbox.wait(1, 3000);
      expect(will!.payload).toBe('session over');
      const elapsed = Date.now() - closedAt;
      expect(elapsed).toBeGreaterThanOrEqual(950);
      expect(elapsed).toBeLessThan(2500);
    });
  });

  describe('persistent sessions', () => {
    const variants = [
      { name: '3.1.1 clean session 0', opts: { protocolVersion: 4 as const, clean: false } },
      { name: '3.1 clean session 0', opts: { protocolVersion: 3 as const, protocolId: 'MQIsdp' as const, clean: false } },
      { name: '5.0 session expiry 60', opts: { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 60 } } },
    ];
    for (const { name, opts } of variants) {
      it(`queues QoS 1 and 2 messages for an offline ${name} session and keeps its subscription`, async () => {
        const v = opts.protocolVersion;
        const clientId = `persist-${v}`;
        // a clean start with session expiry 0 first: whatever an earlier run left is gone
        const { properties: _persistent, ...plain } = opts as typeof opts & { properties?: unknown };
        void _persistent;
        const [first, , firstAck] = await connectWithInbox(t.url, { ...plain, clientId, clean: true });
        expect(firstAck.sessionPresent).toBe(false);
        await first.endAsync();
        // now the persistent one
        const [sub, , ack0] = await connectWithInbox(t.url, { ...opts, clientId });
        expect(ack0.sessionPresent).toBe(false);
        await sub.subscribeAsync(`persist/${v}/#`, { qos: 1 });
        await sub.endAsync();

        const pub = await connectMqtt(t.url, { protocolVersion: 4, clientId: `persist-pub-${v}` });
        await pub.publishAsync(`persist/${v}/a`, 'one', { qos: 1 });
        await pub.publishAsync(`persist/${v}/b`, 'two', { qos: 2 });
        await pub.publishAsync(`persist/${v}/c`, 'qos0 while offline', { qos: 0 });
        await pub.publishAsync(`persist/${v}/d`, 'three', { qos: 1 });

        const [back, inbox, ack] = await connectWithInbox(t.url, { ...opts, clientId });
        expect(ack.sessionPresent).toBe(true);
        const queued = await inbox.wait(3);
        expect(queued.map((m) => [m.topic, m.payload, m.packet.qos])).toEqual([
          [`persist/${v}/a`, 'one', 1],
          [`persist/${v}/b`, 'two', 1],
          [`persist/${v}/d`, 'three', 1],
        ]);
        // the subscription survived: a live message arrives without subscribing again
        await pub.publishAsync(`persist/${v}/live`, 'live', { qos: 1 });
        await inbox.wait(4);
        expect(inbox.messages.map((m) => m.payload)).toEqual(['one', 'two', 'three', 'live']);
        await back.endAsync();
      });
    }

    it('a clean start discards the stored session', async () => {
      const [sub] = await connectWithInbox(t.url, { protocolVersion: 5, clientId: 'persist-discard', clean: false, properties: { sessionExpiryInterval: 60 } });
      await sub.subscribeAsync('persist/discard/#', { qos: 1 });
      await sub.endAsync();
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'persist-discard-pub' });
      await pub.publishAsync('persist/discard/x', 'for the old session', { qos: 1 });
      const [back, inbox, ack] = await connectWithInbox(t.url, { protocolVersion: 5, clientId: 'persist-discard', clean: true });
      expect(ack.sessionPresent).toBe(false);
      await back.subscribeAsync('persist/discard/marker', { qos: 1 });
      await pub.publishAsync('persist/discard/x', 'after the clean start', { qos: 1 });
      await pub.publishAsync('persist/discard/marker', 'marker', { qos: 1 });
      await inbox.wait(1);
      expect(inbox.messages.map((m) => m.payload)).toEqual(['marker']);
    });

    it('a DISCONNECT with Session Expiry Interval 0 ends a session that was to be kept (MQTT 5)', async () => {
      const opts = { protocolVersion: 5 as const, clientId: 'persist-disc0', clean: false, properties: { sessionExpiryInterval: 60 } };
      const [first] = await connectWithInbox(t.url, opts);
      await first.subscribeAsync('persist/disc0', { qos: 1 });
      await first.endAsync(false, { properties: { sessionExpiryInterval: 0 } });
      const [, , ack] = await connectWithInbox(t.url, opts);
      expect(ack.sessionPresent).toBe(false);
    });

    it('a session whose expiry interval passed is gone (MQTT 5, expiry 1 s)', async () => {
      const [sub] = await connectWithInbox(t.url, { protocolVersion: 5, clientId: 'persist-expire', clean: false, properties: { sessionExpiryInterval: 1 } });
      await sub.subscribeAsync('persist/expire/#', { qos: 1 });
      const closed = once(sub, 'close');
      sub.stream.destroy();
      await closed;
      // a second client whose session lasts just as long shows when the first has expired
      const [probe] = await connectWithInbox(t.url, { protocolVersion: 5, clientId: 'persist-expire-probe', clean: false, properties: { sessionExpiryInterval: 1 } });
      await probe.endAsync();
      const [, , before] = await connectWithInbox(t.url, { protocolVersion: 5, clientId: 'persist-expire-probe', clean: false, properties: { sessionExpiryInterval: 1 } });
      expect(before.sessionPresent).toBe(true); // not expired yet: reconnected well within 1 s
      await quietPeriod(1200); // waiting for the expiry itself, not proving an absence
      const [, , after] = await connectWithInbox(t.url, { protocolVersion: 5, clientId: 'persist-expire', clean: false, properties: { sessionExpiryInterval: 60 } });
      expect(after.sessionPresent).toBe(false);
    });
  });

  describe('session takeover', () => {
    it('closes the first connection with DISCONNECT 0x8E and hands the session to the second (MQTT 5)', async () => {
      const [first, firstInbox] = await connectWithInbox(t.url, { protocolVersion: 5, clientId: 'takeover-5', clean: false, properties: { sessionExpiryInterval: 60 } });
      await first.subscribeAsync('takeover/5/#', { qos: 1 });
      const disconnected = once<[IDisconnectPacket]>(first, 'disconnect');
      const closed = once(first, 'close');
      const [second, secondInbox, ack] = await connectWithInbox(t.url, {
        protocolVersion: 5,
        clientId: 'takeover-5',
        clean: false,
        properties: { sessionExpiryInterval: 60 },
      });
      const [packet] = await disconnected;
      expect(packet.reasonCode).toBe(0x8e);
      await closed;
      expect(first.connected).toBe(false);
      expect(ack.sessionPresent).toBe(true);

      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'takeover-5-pub' });
      await pub.publishAsync('takeover/5/x', 'to the new connection', { qos: 1 });
      const [m] = await secondInbox.wait(1);
      expect(m!.payload).toBe('to the new connection');
      expect(firstInbox.messages).toHaveLength(0);
      expect(second.connected).toBe(true);
    });

    it('closes the first connection without a DISCONNECT packet on MQTT 3.1.1', async () => {
      const [first] = await connectWithInbox(t.url, { protocolVersion: 4, clientId: 'takeover-4', clean: false });
      await first.subscribeAsync('takeover/4/#', { qos: 1 });
      let sawDisconnect = false;
      first.on('disconnect', () => {
        sawDisconnect = true;
      });
      const closed = once(first, 'close');
      const [, secondInbox, ack] = await connectWithInbox(t.url, { protocolVersion: 4, clientId: 'takeover-4', clean: false });
      await closed;
      expect(sawDisconnect).toBe(false);
      expect(ack.sessionPresent).toBe(true);
      const pub = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'takeover-4-pub' });
      await pub.publishAsync('takeover/4/x', 'inherited subscription', { qos: 1 });
      expect((await secondInbox.wait(1))[0]!.payload).toBe('inherited subscription');
    });

    it('takes over across protocol versions and with a clean start (no session present)', async () => {
      const [first] = await connectWithInbox(t.url, { protocolVersion: 4, clientId: 'takeover-mixed', clean: false });
      await first.subscribeAsync('takeover/mixed/#', { qos: 1 });
      const closed = once(first, 'close');
      const [second, secondInbox, ack] = await connectWithInbox(t.wsUrl, { protocolVersion: 5, clientId: 'takeover-mixed', clean: true });
      await closed;
      expect(ack.sessionPresent).toBe(false);
      const pub = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'takeover-mixed-pub' });
      await second.subscribeAsync('takeover/mixed/marker', { qos: 1 });
      await pub.publishAsync('takeover/mixed/x', 'old subscription is gone', { qos: 1 });
      await pub.publishAsync('takeover/mixed/marker', 'marker', { qos: 1 });
      await secondInbox.wait(1);
      expect(secondInbox.messages.map((m) => m.payload)).toEqual(['marker']);
    });

    it('publishes the will of the old connection when a clean start ends its session (MQTT 5)', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'takeover-will-watch' });
      await watcher.subscribeAsync('takeover/will', { qos: 1 });
      const inbox = new Inbox(watcher);
      const first = await connectMqtt(t.url, {
        protocolVersion: 5,
        clientId: 'takeover-will',
        will: { topic: 'takeover/will', payload: Buffer.from('replaced'), qos: 1, retain: false },
      });
      const disconnected = once<[IDisconnectPacket]>(first, 'disconnect');
      await connectMqtt(t.url, { protocolVersion: 5, clientId: 'takeover-will', clean: true });
      expect((await disconnected)[0].reasonCode).toBe(0x8e);
      const [will] = await inbox.wait(1);
      expect(will!.payload).toBe('replaced');
    });

    it('keeps delivering QoS 1 messages published during repeated takeovers, exactly once each', async () => {
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'takeover-flow-pub' });
      const opts = { protocolVersion: 5 as const, clientId: 'takeover-flow', clean: false, properties: { sessionExpiryInterval: 60 } };
      let [current, inbox] = await connectWithInbox(t.url, opts);
      await current.subscribeAsync('takeover/flow', { qos: 1 });
      const inboxes = [inbox];
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 10; i++) await pub.publishAsync('takeover/flow', `r${round}-m${i}`, { qos: 1 });
        [current, inbox] = await connectWithInbox(t.url, opts);
        inboxes.push(inbox);
      }
      await pub.publishAsync('takeover/flow', 'end', { qos: 1 });
      await inbox.wait(1, 5000, (m) => m.payload === 'end');
      const received = inboxes.flatMap((i) => i.messages.map((m) => m.payload));
      const expected = [...Array.from({ length: 5 }, (_, r) => Array.from({ length: 10 }, (_, i) => `r${r}-m${i}`)).flat(), 'end'];
      // QoS 1 is at least once: a message in flight at a takeover may come again, none may be lost
      expect(new Set(received)).toEqual(new Set(expected));
      // and each connection gets them in publish order (a resend may repeat a suffix, not reorder)
      for (const i of inboxes) {
        const order = i.messages.map((m) => expected.indexOf(m.payload));
        const firstNew = order.findIndex((x, k) => k > 0 && x < order[k - 1]!);
        expect(firstNew, `order ${order.join(',')}`).toBe(-1);
      }
    });
  });

  describe('shared subscriptions', () => {
    it('delivers each message to exactly one member of a $share group, spread over the members', async () => {
      const members = await Promise.all(
        [5, 5, 4].map(async (protocolVersion, i) => {
          const c = await connectMqtt(i === 1 ? t.wsUrl : t.url, { protocolVersion: protocolVersion as 4 | 5, clientId: `share-m${i}` });
          await c.subscribeAsync('$share/g1/share/jobs/+', { qos: 1 });
          return new Inbox(c);
        }),
      );
      const plain = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-plain' });
      await plain.subscribeAsync('share/jobs/+', { qos: 1 });
      const plainInbox = new Inbox(plain);
      const other = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-other-group' });
      await other.subscribeAsync('$share/g2/share/jobs/#', { qos: 0 });
      const otherInbox = new Inbox(other);

      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-pub' });
      const sent = Array.from({ length: 30 }, (_, i) => `job-${i}`);
      for (const [i, job] of sent.entries()) await pub.publishAsync(`share/jobs/${i % 3}`, job, { qos: i % 2 === 0 ? 1 : 0 });

      await plainInbox.wait(30);
      await otherInbox.wait(30);
      await waitUntil(() => members.reduce((n, m) => n + m.messages.length, 0) >= 30);
      await quietPeriod(200);
      const delivered = members.flatMap((m) => m.messages.map((x) => x.payload));
      expect(delivered.sort()).toEqual([...sent].sort());
      for (const m of members) expect(m.messages.length).toBeGreaterThan(0);
      expect(plainInbox.messages.map((m) => m.payload)).toEqual(sent);
      expect(otherInbox.messages.map((m) => m.payload)).toEqual(sent);
    });

    it('sends a client that has a shared and a plain subscription matching a message two copies', async () => {
      // MQTT 5 4.8.2: one copy for the plain subscription, one for the shared one (sole member here)
      const c = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-both' });
      await c.subscribeAsync('share/both', { qos: 1, properties: { subscriptionIdentifier: 1 } });
      await c.subscribeAsync('$share/both/share/both', { qos: 1, properties: { subscriptionIdentifier: 2 } });
      const inbox = new Inbox(c);
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-both-pub' });
      await pub.publishAsync('share/both', 'twice', { qos: 1 });
      const got = await inbox.wait(2);
      expect(got.map((m) => m.payload)).toEqual(['twice', 'twice']);
      expect(got.map((m) => m.packet.properties?.subscriptionIdentifier).sort()).toEqual([1, 2]);
    });

    it('prefers connected members over a persistent member that is offline', async () => {
      const offline = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-offline', clean: false, properties: { sessionExpiryInterval: 60 } });
      await offline.subscribeAsync('$share/off/share/off', { qos: 1 });
      await offline.endAsync();
      const online = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-online' });
      await online.subscribeAsync('$share/off/share/off', { qos: 1 });
      const inbox = new Inbox(online);
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-off-pub' });
      for (let i = 0; i < 6; i++) await pub.publishAsync('share/off', `o${i}`, { qos: 1 });
      expect((await inbox.wait(6)).map((m) => m.payload)).toEqual(['o0', 'o1', 'o2', 'o3', 'o4', 'o5']);
      // nothing was parked with the offline member
      const back = createMqtt(t.url, { protocolVersion: 5, clientId: 'share-offline', clean: false, properties: { sessionExpiryInterval: 60 } });
      const backInbox = new Inbox(back);
      const [ack] = await once<[IConnackPacket]>(back, 'connect');
      expect(ack.sessionPresent).toBe(true);
      await quietPeriod(200);
      expect(backInbox.messages).toHaveLength(0);
    });

    it('keeps delivering to the remaining members when one leaves', async () => {
      const clients = await Promise.all(
        [0, 1].map(async (i) => {
          const c = await connectMqtt(t.url, { protocolVersion: 5, clientId: `share-leave-${i}` });
          await c.subscribeAsync('$share/leave/share/leave', { qos: 1 });
          return [c, new Inbox(c)] as const;
        }),
      );
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-leave-pub' });
      await clients[0]![0].endAsync();
      for (let i = 0; i < 10; i++) await pub.publishAsync('share/leave', `m${i}`, { qos: 1 });
      const got = await clients[1]![1].wait(10);
      expect(got.map((m) => m.payload)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
      expect(clients[0]![1].messages).toHaveLength(0);
    });
  });
});
