import { afterEach, describe, expect, it } from 'vitest';
import { useTestNode } from '../support/node.js';
import { Inbox, PahoClient, connectMqtt, endMqttClients, killSpawned, quietPeriod, type PahoConnect } from '../support/clients.js';

// Python paho-mqtt 1.6.1 (Debian's /usr/bin/python3) against the embedded node, driven
// through test/interop/scripts/paho_driver.py: JSON commands in, JSON events out.

const PROTOCOLS = ['3.1', '3.1.1', '5'] as const;
type Protocol = (typeof PROTOCOLS)[number];

describe('paho-mqtt interop', () => {
  const t = useTestNode();
  afterEach(async () => {
    killSpawned();
    await endMqttClients();
  });

  async function paho(c: Omit<PahoConnect, 'protocol'> & { protocol: Protocol }): Promise<PahoClient> {
    const client = new PahoClient(t.port);
    const ack = await client.connect(c);
    expect(ack.rc, `CONNACK for ${c.client_id}`).toBe(0);
    return client;
  }

  describe('QoS round trips', () => {
    for (const protocol of PROTOCOLS) {
      for (const qos of [0, 1, 2] as const) {
        it(`MQTT ${protocol}: paho to paho at QoS ${qos}`, async () => {
          const topic = `paho/qos/${protocol}/${qos}`;
          const sub = await paho({ client_id: `paho-sub-${protocol}-${qos}`, protocol });
          expect(await sub.subscribe(topic, qos)).toEqual([qos]);
          const pub = await paho({ client_id: `paho-pub-${protocol}-${qos}`, protocol });
          await pub.publish(topic, `paho ${protocol} q${qos}`, qos); // returns once PUBACK / PUBCOMP came
          const [m] = await sub.waitMessages(1);
          expect(m).toMatchObject({ topic, payload: `paho ${protocol} q${qos}`, qos, retain: false });
          await Promise.all([sub.close(), pub.close()]);
        });
      }
    }

    it('MQTT 3.1 paho and mqtt.js (TCP and WebSocket) talk both ways', async () => {
      const ws = await connectMqtt(t.wsUrl, { protocolVersion: 5, clientId: 'paho-x-ws' });
      await ws.subscribeAsync('paho/x/to-mqttjs', { qos: 2 });
      const inbox = new Inbox(ws);
      const p = await paho({ client_id: 'paho-x', protocol: '3.1' });
      await p.subscribe('paho/x/to-paho', 2);
      await p.publish('paho/x/to-mqttjs', 'from paho', 2);
      const [m] = await inbox.wait(1);
      expect([m!.payload, m!.packet.qos]).toEqual(['from paho', 2]);
      const tcp = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'paho-x-tcp' });
      await tcp.publishAsync('paho/x/to-paho', 'from mqtt.js', { qos: 1 });
      const [back] = await p.waitMessages(1);
      expect(back).toMatchObject({ topic: 'paho/x/to-paho', payload: 'from mqtt.js', qos: 1 });
    });
  });

  describe('WebSocket', () => {
    for (const protocol of ['3.1.1', '5'] as const) {
      it(`MQTT ${protocol} over WebSocket: paho to mqtt.js over TCP and back, QoS 2`, async () => {
        const p = new PahoClient(t.port);
        const ack = await p.connect({ client_id: `paho-ws-${protocol}`, protocol, transport: 'websockets', ws_path: '/mqtt' }, 5000, t.wsPort);
        expect(ack.rc).toBe(0);
        expect(await p.subscribe(`paho/ws/${protocol}/in`, 2)).toEqual([2]);
        const js = await connectMqtt(t.url, { protocolVersion: 4, clientId: `paho-ws-js-${protocol}` });
        await js.subscribeAsync(`paho/ws/${protocol}/out`, { qos: 2 });
        const inbox = new Inbox(js);
        await p.publish(`paho/ws/${protocol}/out`, 'over websocket', 2);
        expect((await inbox.wait(1))[0]!.payload).toBe('over websocket');
        await js.publishAsync(`paho/ws/${protocol}/in`, 'back over tcp', { qos: 2 });
        expect((await p.waitMessages(1))[0]).toMatchObject({ payload: 'back over tcp', qos: 2 });
      });
    }
  });

  describe('client identifiers', () => {
    it('refuses a 3.1.1 CONNECT with an empty client ID and clean session 0 (CONNACK 2)', async () => {
      const client = new PahoClient(t.port);
      // paho refuses to build this CONNECT itself; the overrides make it send it
      const ack = await client.connect({ client_id: 'placeholder', protocol: '3.1.1', unsafe_overrides: { client_id: '', clean_session: false } });
      expect(ack).toEqual({ rc: 2, sessionPresent: false });
      // and the connection is closed after it
      await client.waitEvents((e) => e.ev === 'loop_ended');
    });

    it('refuses an MQTT 3.1 CONNECT with an empty client ID (CONNACK 2)', async () => {
      const client = new PahoClient(t.port);
      const ack = await client.connect({ client_id: 'placeholder', protocol: '3.1', unsafe_overrides: { client_id: '' } });
      expect(ack).toEqual({ rc: 2, sessionPresent: false });
    });

    it('accepts a 3.1.1 client with an empty client ID and clean session 1', async () => {
      const client = new PahoClient(t.port);
      const ack = await client.connect({ client_id: '', protocol: '3.1.1' });
      expect(ack.rc).toBe(0);
      await client.subscribe('paho/anon', 1);
      await client.publish('paho/anon', 'anonymous', 1);
      expect((await client.waitMessages(1))[0]!.payload).toBe('anonymous');
    });
  });

  describe('retained messages', () => {
    for (const protocol of ['3.1.1', '5'] as const) {
      it(`MQTT ${protocol}: set, replace, deliver on subscribe, delete with an empty payload`, async () => {
        const topic = `paho/ret/${protocol}`;
        const pub = await paho({ client_id: `paho-ret-pub-${protocol}`, protocol });
        await pub.publish(topic, 'v1', 1, { retain: true });
        await pub.publish(topic, 'v2', 2, { retain: true });

        const s1 = await paho({ client_id: `paho-ret-s1-${protocol}`, protocol });
        await s1.subscribe(topic, 2);
        const [r] = await s1.waitMessages(1);
        expect(r).toMatchObject({ payload: 'v2', retain: true, qos: 2 });

        await pub.publish(topic, 'live', 1, { retain: true });
        const [, live] = await s1.waitMessages(2);
        expect(live).toMatchObject({ payload: 'live', retain: false });

        await pub.publish(topic, '', 1, { retain: true });
        const s2 = await paho({ client_id: `paho-ret-s2-${protocol}`, protocol });
        await s2.subscribe(`paho/ret/${protocol}/#`, 1);
        await s2.subscribe(topic, 1);
        await pub.publish(topic, 'marker', 1);
        const got = await s2.waitMessages(1);
        expect(got[0]).toMatchObject({ payload: 'marker', retain: false });
        expect(s2.messages()).toHaveLength(1);
      });
    }
  });

  describe('wills', () => {
    for (const protocol of PROTOCOLS) {
      it(`MQTT ${protocol}: the will of a paho process killed with SIGKILL is delivered`, async () => {
        const watcher = await connectMqtt(t.url, { protocolVersion: 4, clientId: `paho-will-watch-${protocol}` });
        await watcher.subscribeAsync(`paho/will/${protocol}`, { qos: 1 });
        const inbox = new Inbox(watcher);
        const dying = await paho({
          client_id: `paho-dying-${protocol}`,
          protocol,
          will: { topic: `paho/will/${protocol}`, payload: `paho ${protocol} died`, qos: 1 },
        });
        dying.kill('SIGKILL');
        const [m] = await inbox.wait(1);
        expect([m!.topic, m!.payload, m!.packet.qos]).toEqual([`paho/will/${protocol}`, `paho ${protocol} died`, 1]);
      });
    }

    it('MQTT 5: a delayed will is sent after the delay, and cancelled by a reconnect within it', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'paho-wd-watch' });
      await watcher.subscribeAsync('paho/wd/#', { qos: 1 });
      const inbox = new Inbox(watcher);
      const withWill = (id: string): Omit<PahoConnect, 'protocol'> & { protocol: Protocol } => ({
        client_id: id,
        protocol: '5',
        clean_start: false,
        session_expiry: 30,
        will: { topic: `paho/wd/${id}`, payload: `${id} gone`, qos: 1, delay: 1 },
      });
      const gone = await paho(withWill('paho-wd-gone'));
      const back = await paho(withWill('paho-wd-back'));
      const killedAt = Date.now();
      gone.kill('SIGKILL');
      back.kill('SIGKILL');
      await Promise.all([gone.exited, back.exited]);
      const again = new PahoClient(t.port);
      const ack = await again.connect({ client_id: 'paho-wd-back', protocol: '5', clean_start: false, session_expiry: 30 });
      expect(ack).toEqual({ rc: 0, sessionPresent: true });
      await quietPeriod(500);
      expect(inbox.messages).toHaveLength(0);
      const [will] = await inbox.wait(1, 3000);
      expect([will!.topic, will!.payload]).toEqual(['paho/wd/paho-wd-gone', 'paho-wd-gone gone']);
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(950);
      await quietPeriod(300);
      expect(inbox.messages.map((m) => m.topic)).toEqual(['paho/wd/paho-wd-gone']);
    });
  });

  describe('keep alive', () => {
    for (const protocol of ['3.1.1', '5'] as const) {
      it(`MQTT ${protocol}: closes a paho client that goes silent for 1.5 times its keep alive and publishes its will`, async () => {
        const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: `paho-ka-watch-${protocol}` });
        await watcher.subscribeAsync(`paho/ka/${protocol}`, { qos: 1 });
        const inbox = new Inbox(watcher);
        const silent = await paho({
          client_id: `paho-ka-${protocol}`,
          protocol,
          keepalive: 1,
          will: { topic: `paho/ka/${protocol}`, payload: 'timed out', qos: 1 },
        });
        await silent.subscribe('paho/ka/none', 0);
        const stoppedAt = Date.now();
        silent.kill('SIGSTOP'); // alive, socket open, not a byte more (killSpawned ends it)
        const [will] = await inbox.wait(1, 4000);
        expect(will!.payload).toBe('timed out');
        // not before one and a half keep alive periods [MQTT-3.1.2-24], less the slack of a
        // PINGREQ that may have left just before the stop
        const elapsed = Date.now() - stoppedAt;
        expect(elapsed).toBeGreaterThanOrEqual(500);
        expect(elapsed).toBeLessThan(2500); // and not much after: 1.5 s of silence at most

      });
    }
  });

  describe('persistent sessions', () => {
    const variants: { name: string; c: Omit<PahoConnect, 'client_id'> & { protocol: Protocol } }[] = [
      { name: '3.1.1 clean_session=False', c: { protocol: '3.1.1', clean_session: false } },
      { name: '3.1 clean_session=False', c: { protocol: '3.1', clean_session: false } },
      { name: '5 clean_start=False, session expiry 60', c: { protocol: '5', clean_start: false, session_expiry: 60 } },
    ];
    for (const { name, c } of variants) {
      it(`${name}: QoS 1 messages published while offline arrive on reconnect`, async () => {
        const id = `paho-persist-${c.protocol}`;
        const topic = `paho/persist/${c.protocol}`;
        const first = new PahoClient(t.port);
        const ack1 = await first.connect({ ...c, client_id: id });
        expect(ack1).toEqual({ rc: 0, sessionPresent: false });
        await first.subscribe(topic, 1);
        await first.close();

        const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: `paho-persist-pub-${c.protocol}` });
        for (let i = 0; i < 3; i++) await pub.publishAsync(topic, `offline-${i}`, { qos: 1 });

        const back = new PahoClient(t.port);
        const ack2 = await back.connect({ ...c, client_id: id });
        expect(ack2).toEqual({ rc: 0, sessionPresent: true });
        const got = await back.waitMessages(3);
        expect(got.map((m) => [m.payload, m.qos])).toEqual([
          ['offline-0', 1],
          ['offline-1', 1],
          ['offline-2', 1],
        ]);
        await pub.publishAsync(topic, 'live', { qos: 1 });
        expect((await back.waitMessages(4))[3]!.payload).toBe('live');
      });
    }
  });

  describe('MQTT 5 features', () => {
    it('passes paho properties to mqtt.js and mqtt.js properties to paho unchanged, with subscription identifiers', async () => {
      const js = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'paho-props-js' });
      await js.subscribeAsync('paho/props/to-js', { qos: 1 });
      const inbox = new Inbox(js);
      const p = await paho({ client_id: 'paho-props', protocol: '5' });
      await p.subscribe('paho/props/+', 1, { subscription_id: 1234 });
      const props = {
        UserProperty: [
          ['k', 'v1'],
          ['k', 'v2'],
          ['other', 'x'],
        ],
        CorrelationData: Buffer.from('corr-9').toString('hex'),
        ResponseTopic: 'paho/props/reply',
        ContentType: 'text/csv',
        PayloadFormatIndicator: 1,
        MessageExpiryInterval: 100,
      };
      await p.publish('paho/props/to-js', 'a,b,c', 1, { props });
      const [m] = await inbox.wait(1);
      expect(m!.payload).toBe('a,b,c');
      expect(m!.packet.properties).toMatchObject({
        userProperties: { k: ['v1', 'v2'], other: 'x' },
        correlationData: Buffer.from('corr-9'),
        responseTopic: 'paho/props/reply',
        contentType: 'text/csv',
        payloadFormatIndicator: true,
      });
      expect(m!.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(100);
      expect(m!.packet.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(99);

      // paho sees its own message too (no No Local), with its subscription identifier
      const [own] = await p.waitMessages(1);
      expect(own!.props.SubscriptionIdentifier).toEqual([1234]);

      await js.publishAsync('paho/props/from-js', 'hello', {
        qos: 1,
        properties: { userProperties: { from: 'mqtt.js' }, correlationData: Buffer.from([0xde, 0xad]), responseTopic: 'paho/props/r', contentType: 'text/plain' },
      });
      const [, fromJs] = await p.waitMessages(2);
      expect(fromJs!.topic).toBe('paho/props/from-js');
      expect(fromJs!.props).toMatchObject({
        UserProperty: [['from', 'mqtt.js']],
        CorrelationData: 'dead',
        ResponseTopic: 'paho/props/r',
        ContentType: 'text/plain',
        SubscriptionIdentifier: [1234],
      });
    });

    it('No Local: paho does not get its own messages back', async () => {
      const p = await paho({ client_id: 'paho-nl', protocol: '5' });
      await p.subscribe('paho/nl', 1, { no_local: true });
      const other = await paho({ client_id: 'paho-nl-other', protocol: '5' });
      await p.publish('paho/nl', 'own', 1);
      await other.publish('paho/nl', 'foreign', 1);
      const [m] = await p.waitMessages(1);
      expect(m!.payload).toBe('foreign');
      expect(p.messages()).toHaveLength(1);
    });

    it('resolves topic aliases paho sends (TopicAlias with an empty topic)', async () => {
      const js = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'paho-alias-js' });
      await js.subscribeAsync('paho/alias/#', { qos: 1 });
      const inbox = new Inbox(js);
      const p = await paho({ client_id: 'paho-alias', protocol: '5' });
      await p.publish('paho/alias/very/long/topic', 'with topic', 1, { props: { TopicAlias: 1 } });
      await p.publish('', 'alias only', 1, { props: { TopicAlias: 1 } });
      await p.publish('paho/alias/second', 'second alias', 0, { props: { TopicAlias: 2 } });
      await p.publish('', 'alias 2 only', 1, { props: { TopicAlias: 2 } });
      await p.publish('', 'alias 1 again', 2, { props: { TopicAlias: 1 } });
      const got = await inbox.wait(5);
      expect(got.map((m) => [m.topic, m.payload])).toEqual([
        ['paho/alias/very/long/topic', 'with topic'],
        ['paho/alias/very/long/topic', 'alias only'],
        ['paho/alias/second', 'second alias'],
        ['paho/alias/second', 'alias 2 only'],
        ['paho/alias/very/long/topic', 'alias 1 again'],
      ]);
      // aliases belong to the publisher's connection: subscribers never see an empty topic or its alias
      expect(got.every((m) => m.packet.properties?.topicAlias === undefined)).toBe(true);
    });

    it('MQTT 5 takeover: the first paho connection receives DISCONNECT 0x8E and the second keeps the session', async () => {
      const first = await paho({ client_id: 'paho-takeover', protocol: '5', clean_start: false, session_expiry: 60 });
      await first.subscribe('paho/takeover', 1);
      const second = new PahoClient(t.port);
      const ack = await second.connect({ client_id: 'paho-takeover', protocol: '5', clean_start: false, session_expiry: 60 });
      expect(ack).toEqual({ rc: 0, sessionPresent: true });
      const [raw] = await first.waitEvents((e) => e.ev === 'disconnect_raw');
      // the variable header starts with the reason code (paho 1.6.1 itself reports a short
      // DISCONNECT as a lost connection, so the bytes are read here)
      expect((raw!.bytes as string).slice(0, 2)).toBe('8e');
      await first.waitEvents((e) => e.ev === 'disconnected' || e.ev === 'loop_ended');
      const js = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'paho-takeover-pub' });
      await js.publishAsync('paho/takeover', 'to the second', { qos: 1 });
      expect((await second.waitMessages(1))[0]!.payload).toBe('to the second');
      expect(first.messages()).toHaveLength(0);
    });
  });
});
