import { afterEach, describe, expect, it } from 'vitest';
import { useTestNode } from '../support/node.js';
import {
  Inbox,
  LineProcess,
  MosquittoSub,
  connectMqtt,
  endMqttClients,
  killSpawned,
  mosquittoPub,
  quietPeriod,
  type MosquittoVersion,
} from '../support/clients.js';

// Debian's mosquitto_pub / mosquitto_sub (libmosquitto 2.0) against the embedded node.
// mosquitto_sub runs with -d (its debug lines tell when SUBACK came) and -F %j (one JSON
// line a message); every process is bounded by -W or a timeout and killed by PID.

const VERSIONS: MosquittoVersion[] = ['mqttv31', 'mqttv311', 'mqttv5'];

describe('mosquitto clients interop', () => {
  const t = useTestNode();
  afterEach(async () => {
    killSpawned();
    await endMqttClients();
  });

  describe('QoS round trips', () => {
    for (const version of VERSIONS) {
      for (const qos of [0, 1, 2] as const) {
        it(`${version}: mosquitto_pub to mosquitto_sub at QoS ${qos}`, async () => {
          const topic = `mosq/qos/${version}/${qos}`;
          const sub = new MosquittoSub({ port: t.port, version, topics: [topic], qos, count: 1, timeoutSec: 8 });
          await sub.subscribed();
          const pub = await mosquittoPub({ port: t.port, version, topic, message: `hello ${version} ${qos}`, qos });
          expect(pub.exit.code).toBe(0);
          // the publisher saw the broker finish the exchange
          if (qos === 1) expect(pub.stdout).toMatch(/received PUBACK/);
          if (qos === 2) expect(pub.stdout).toMatch(/received PUBREC[\s\S]*sending PUBREL[\s\S]*received PUBCOMP/);
          const [m] = await sub.waitMessages(1);
          expect(m).toMatchObject({ topic, qos, retain: 0, payload: `hello ${version} ${qos}` });
          expect((await sub.waitExit()).code).toBe(0);
        });
      }
    }

    it('mosquitto_pub reaches an mqtt.js WebSocket subscriber, and mqtt.js reaches mosquitto_sub 3.1', async () => {
      const ws = await connectMqtt(t.wsUrl, { protocolVersion: 5, clientId: 'mosq-ws-sub' });
      await ws.subscribeAsync('mosq/bridge/+', { qos: 2 });
      const inbox = new Inbox(ws);
      const sub = new MosquittoSub({ port: t.port, version: 'mqttv31', topics: ['mosq/bridge/#'], qos: 2, count: 2, timeoutSec: 8 });
      await sub.subscribed();
      expect((await mosquittoPub({ port: t.port, version: 'mqttv311', topic: 'mosq/bridge/from-mosquitto', message: 'm', qos: 2 })).exit.code).toBe(0);
      const [m] = await inbox.wait(1);
      expect([m!.topic, m!.payload, m!.packet.qos]).toEqual(['mosq/bridge/from-mosquitto', 'm', 2]);
      await ws.publishAsync('mosq/bridge/from-mqttjs', 'j', { qos: 1 });
      const got = await sub.waitMessages(2);
      expect(got.map((x) => [x.topic, x.payload, x.qos])).toEqual([
        ['mosq/bridge/from-mosquitto', 'm', 2],
        ['mosq/bridge/from-mqttjs', 'j', 1],
      ]);
    });
  });

  describe('retained messages', () => {
    for (const version of VERSIONS) {
      it(`${version}: set, replace, deliver on subscribe, delete with an empty payload`, async () => {
        const base = `mosq/ret/${version}`;
        const pub = (topic: string, message: string | null, qos: 0 | 1 | 2 = 1): ReturnType<typeof mosquittoPub> =>
          mosquittoPub({ port: t.port, version, topic, qos, retain: true, ...(message === null ? { nullMessage: true } : { message }) });
        expect((await pub(`${base}/a`, 'first')).exit.code).toBe(0);
        expect((await pub(`${base}/a`, 'second', 2)).exit.code).toBe(0);
        expect((await pub(`${base}/b`, 'other', 0)).exit.code).toBe(0);

        const s1 = new MosquittoSub({ port: t.port, version, topics: [`${base}/#`], qos: 1, count: 2, timeoutSec: 8 });
        const got = await s1.waitMessages(2);
        const byTopic = Object.fromEntries(got.map((m) => [m.topic, [m.payload, m.retain, m.qos]]));
        expect(byTopic).toEqual({ [`${base}/a`]: ['second', 1, 1], [`${base}/b`]: ['other', 1, 0] });

        expect((await pub(`${base}/a`, null)).exit.code).toBe(0); // -n -r: delete
        // the deleted one is not delivered: the retained /b, then the live marker, nothing else
        const s2 = new MosquittoSub({ port: t.port, version, topics: [`${base}/#`], qos: 1, count: 2, timeoutSec: 8 });
        await s2.subscribed();
        await s2.waitMessages(1);
        expect((await mosquittoPub({ port: t.port, version, topic: `${base}/marker`, message: 'live', qos: 1 })).exit.code).toBe(0);
        const after = await s2.waitMessages(2);
        expect(after.map((m) => [m.topic, m.payload, m.retain])).toEqual([
          [`${base}/b`, 'other', 1],
          [`${base}/marker`, 'live', 0],
        ]);
      });
    }
  });

  describe('wills', () => {
    for (const version of VERSIONS) {
      it(`${version}: the will of a mosquitto_sub killed with SIGKILL is delivered`, async () => {
        const watcher = new MosquittoSub({ port: t.port, version: 'mqttv311', topics: [`mosq/will/${version}`], qos: 1, count: 1, timeoutSec: 8 });
        await watcher.subscribed();
        const dying = new MosquittoSub({
          port: t.port,
          version,
          id: `mosq-dying-${version}`,
          topics: ['mosq/will/ignored'],
          will: { topic: `mosq/will/${version}`, payload: `${version} died`, qos: 1 },
          timeoutSec: 8,
        });
        await dying.subscribed();
        dying.kill('SIGKILL');
        const [m] = await watcher.waitMessages(1);
        expect(m).toMatchObject({ topic: `mosq/will/${version}`, payload: `${version} died`, qos: 1 });
      });
    }

    it('mqttv5: a will with a delay comes after the delay, and not when the client is back in time', async () => {
      const watcher = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'mosq-willdelay-watch' });
      await watcher.subscribeAsync('mosq/willdelay/#', { qos: 1 });
      const inbox = new Inbox(watcher);
      const start = (id: string): MosquittoSub =>
        new MosquittoSub({
          port: t.port,
          version: 'mqttv5',
          id,
          persistent: true,
          sessionExpiry: 30,
          topics: ['mosq/willdelay/none'],
          will: { topic: `mosq/willdelay/${id}`, payload: `${id} gone`, qos: 1 },
          properties: [['will', 'will-delay-interval', '1']],
          timeoutSec: 8,
        });
      const gone = start('mosq-wd-gone');
      const back = start('mosq-wd-back');
      await Promise.all([gone.subscribed(), back.subscribed()]);
      const killedAt = Date.now();
      gone.kill('SIGKILL');
      back.kill('SIGKILL');
      await Promise.all([gone.exited, back.exited]);
      const again = start('mosq-wd-back'); // the same client ID within the delay: its will is cancelled
      await again.connack();
      await quietPeriod(500);
      expect(inbox.messages).toHaveLength(0);
      const [will] = await inbox.wait(1, 3000);
      expect([will!.topic, will!.payload]).toEqual(['mosq/willdelay/mosq-wd-gone', 'mosq-wd-gone gone']);
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(950);
      await quietPeriod(300);
      expect(inbox.messages.map((m) => m.topic)).toEqual(['mosq/willdelay/mosq-wd-gone']);
    });
  });

  describe('persistent sessions (-c -i)', () => {
    for (const version of VERSIONS) {
      it(`${version}: QoS 1 messages published while offline arrive on reconnect`, async () => {
        const id = `mosq-persist-${version}`;
        const topic = `mosq/persist/${version}`;
        // -E: subscribe, then leave; the session stays
        const first = new MosquittoSub({ port: t.port, version, id, persistent: true, qos: 1, topics: [topic], timeoutSec: 8, extra: ['-E'] });
        expect((await first.waitExit()).code).toBe(0);
        for (const [message, qos] of [['one', 1], ['zero', 0], ['two', 2], ['three', 1]] as const) {
          expect((await mosquittoPub({ port: t.port, version, topic, message, qos })).exit.code).toBe(0);
        }
        const back = new MosquittoSub({ port: t.port, version, id, persistent: true, qos: 1, topics: [topic], count: 3, timeoutSec: 8 });
        const got = await back.waitMessages(3);
        // QoS 0 is not queued for an offline session; QoS 2 arrives at the subscription's QoS 1
        expect(got.map((m) => [m.payload, m.qos])).toEqual([
          ['one', 1],
          ['two', 1],
          ['three', 1],
        ]);
        expect((await back.waitExit()).code).toBe(0);
      });
    }

    it('mqttv5: a clean start (no -c) discards the session', async () => {
      const id = 'mosq-persist-clean';
      const first = new MosquittoSub({ port: t.port, version: 'mqttv5', id, persistent: true, qos: 1, topics: ['mosq/clean/#'], timeoutSec: 8, extra: ['-E'] });
      expect((await first.waitExit()).code).toBe(0);
      await mosquittoPub({ port: t.port, version: 'mqttv5', topic: 'mosq/clean/old', message: 'for the old session', qos: 1 });
      const fresh = new MosquittoSub({ port: t.port, version: 'mqttv5', id, qos: 1, topics: ['mosq/clean/new'], count: 1, timeoutSec: 8 });
      await fresh.subscribed();
      await mosquittoPub({ port: t.port, version: 'mqttv5', topic: 'mosq/clean/new', message: 'new', qos: 1 });
      const [m] = await fresh.waitMessages(1);
      expect([m!.topic, m!.payload]).toEqual(['mosq/clean/new', 'new']);
      await fresh.waitExit();
      expect(fresh.messages).toHaveLength(1);
    });
  });

  describe('session takeover', () => {
    it('mqttv5: the first mosquitto_sub receives DISCONNECT 0x8E (142) and the second gets the messages', async () => {
      const first = new MosquittoSub({ port: t.port, version: 'mqttv5', id: 'mosq-takeover', topics: ['mosq/takeover'], qos: 1, timeoutSec: 8 });
      await first.subscribed();
      const second = new MosquittoSub({ port: t.port, version: 'mqttv5', id: 'mosq-takeover', topics: ['mosq/takeover'], qos: 1, count: 1, timeoutSec: 8 });
      await second.subscribed();
      await first.waitForLines((l) => l.includes('Received DISCONNECT (142)'));
      await first.waitExit();
      await mosquittoPub({ port: t.port, version: 'mqttv5', topic: 'mosq/takeover', message: 'to the second', qos: 1 });
      const [m] = await second.waitMessages(1);
      expect(m!.payload).toBe('to the second');
      expect(first.messages).toHaveLength(0);
    });
  });

  describe('MQTT 5 properties', () => {
    it('mosquitto_pub properties reach mqtt.js unchanged', async () => {
      const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'mosq-props-sub' });
      await sub.subscribeAsync('mosq/props/in', { qos: 1 });
      const inbox = new Inbox(sub);
      const res = await mosquittoPub({
        port: t.port,
        version: 'mqttv5',
        topic: 'mosq/props/in',
        message: '{"t":21.5}',
        qos: 1,
        properties: [
          ['publish', 'user-property', 'sensor', 'thermo-1'],
          ['publish', 'user-property', 'unit', 'celsius'],
          ['publish', 'correlation-data', 'req-0042'],
          ['publish', 'response-topic', 'mosq/props/reply'],
          ['publish', 'content-type', 'application/json'],
          ['publish', 'payload-format-indicator', '1'],
          ['publish', 'message-expiry-interval', '120'],
        ],
      });
      expect(res.exit.code).toBe(0);
      const [m] = await inbox.wait(1);
      expect(m!.payload).toBe('{"t":21.5}');
      const p = m!.packet.properties!;
      expect(p.userProperties).toEqual({ sensor: 'thermo-1', unit: 'celsius' });
      expect(p.correlationData?.toString()).toBe('req-0042');
      expect(p.responseTopic).toBe('mosq/props/reply');
      expect(p.contentType).toBe('application/json');
      expect(p.payloadFormatIndicator).toBe(true);
      expect(p.messageExpiryInterval).toBeGreaterThanOrEqual(119);
      expect(p.messageExpiryInterval).toBeLessThanOrEqual(120);
    });

    it('mqtt.js properties and subscription identifiers reach mosquitto_sub unchanged', async () => {
      const sub = new MosquittoSub({
        port: t.port,
        version: 'mqttv5',
        topics: ['mosq/props/out/#'],
        qos: 1,
        count: 1,
        timeoutSec: 8,
        properties: [['subscribe', 'subscription-identifier', '77']],
      });
      await sub.subscribed();
      const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'mosq-props-pub' });
      await pub.publishAsync('mosq/props/out/x', 'payload', {
        qos: 1,
        properties: {
          userProperties: { a: '1', b: 'two' },
          contentType: 'text/plain',
          responseTopic: 'mosq/props/back',
          correlationData: Buffer.from('abc'),
          payloadFormatIndicator: true,
        },
      });
      const [m] = await sub.waitMessages(1);
      expect(m!.payload).toBe('payload');
      expect(m!.properties).toMatchObject({
        'user-properties': { a: '1', b: 'two' },
        'content-type': 'text/plain',
        'response-topic': 'mosq/props/back',
        'correlation-data': 'abc',
        'payload-format-indicator': 1,
        'subscription-identifier': 77,
      });
    });

    it('mosquitto_rr gets its response from an mqtt.js responder (response topic + correlation data)', async () => {
      const responder = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'mosq-rr-responder' });
      await responder.subscribeAsync('mosq/rr/request', { qos: 1 });
      const seen: { responseTopic?: string; correlationData?: Buffer }[] = [];
      responder.on('message', (_topic, payload, packet) => {
        const props = packet.properties ?? {};
        seen.push(props);
        if (props.responseTopic === undefined) return;
        responder.publish(props.responseTopic, `pong:${payload.toString()}`, {
          qos: 1,
          ...(props.correlationData !== undefined ? { properties: { correlationData: props.correlationData } } : {}),
        });
      });
      const rr = new LineProcess(
        '/usr/bin/mosquitto_rr',
        ['-h', '127.0.0.1', '-p', String(t.port), '-V', 'mqttv5', '-t', 'mosq/rr/request', '-e', 'mosq/rr/response', '-m', 'ping', '-q', '1', '-W', '5'],
        8000,
      );
      const exit = await rr.waitExit(7000);
      expect(exit.code).toBe(0);
      expect(rr.lines).toContain('pong:ping');
      expect(seen[0]?.responseTopic).toBe('mosq/rr/response');
    });
  });
});

describe('mosquitto clients and a small offline queue (maxQueuedMessages 3)', () => {
  const t = useTestNode({ mqtt: { maxQueuedMessages: 3, queueDropPolicy: 'drop-oldest' } });
  afterEach(() => {
    killSpawned();
  });

  it('keeps the newest messages for an offline session and drops the oldest', async () => {
    const id = 'mosq-queue-limit';
    const first = new MosquittoSub({ port: t.port, version: 'mqttv311', id, persistent: true, qos: 1, topics: ['mosq/queue'], timeoutSec: 8, extra: ['-E'] });
    expect((await first.waitExit()).code).toBe(0);
    for (let i = 0; i < 6; i++) {
      expect((await mosquittoPub({ port: t.port, version: 'mqttv311', topic: 'mosq/queue', message: `q${i}`, qos: 1 })).exit.code).toBe(0);
    }
    const back = new MosquittoSub({ port: t.port, version: 'mqttv311', id, persistent: true, qos: 1, topics: ['mosq/queue'], count: 4, timeoutSec: 8 });
    await back.waitMessages(3);
    expect((await mosquittoPub({ port: t.port, version: 'mqttv311', topic: 'mosq/queue', message: 'live', qos: 1 })).exit.code).toBe(0);
    const got = await back.waitMessages(4);
    expect(got.map((m) => m.payload)).toEqual(['q3', 'q4', 'q5', 'live']);
  });
});

describe('mosquitto clients and the packet size limit (maxPacketSize 1024)', () => {
  const t = useTestNode({ mqtt: { maxPacketSize: 1024 } });
  afterEach(async () => {
    killSpawned();
    await endMqttClients();
  });

  it('mqttv311: a publish above the limit loses the connection and is not delivered', async () => {
    const sub = new MosquittoSub({ port: t.port, version: 'mqttv311', topics: ['mosq/big/#'], qos: 1, count: 1, timeoutSec: 8 });
    await sub.subscribed();
    const big = await mosquittoPub({ port: t.port, version: 'mqttv311', topic: 'mosq/big/x', message: 'x'.repeat(2000), qos: 1 });
    expect(big.exit.code).not.toBe(0);
    expect(big.stdout).not.toMatch(/received PUBACK/);
    expect(big.stderr).toMatch(/connection was lost/i);
    const small = await mosquittoPub({ port: t.port, version: 'mqttv311', topic: 'mosq/big/y', message: 'y'.repeat(500), qos: 1 });
    expect(small.exit.code).toBe(0);
    const [m] = await sub.waitMessages(1);
    expect(m!.topic).toBe('mosq/big/y');
  });

  it('mqttv5: mosquitto_pub honours the Maximum Packet Size the broker advertised and never sends a larger publish', async () => {
    const big = await mosquittoPub({ port: t.port, version: 'mqttv5', topic: 'mosq/big/v5', message: 'x'.repeat(2000), qos: 1 });
    expect(big.stdout).toMatch(/received CONNACK \(0\)/);
    expect(big.stdout).not.toMatch(/sending PUBLISH/);
  });

  it('mqttv5: a subscriber advertising maximum-packet-size 300 gets only the messages that fit', async () => {
    const sub = new MosquittoSub({
      port: t.port,
      version: 'mqttv5',
      topics: ['mosq/limit/#'],
      qos: 1,
      count: 2,
      timeoutSec: 8,
      properties: [['connect', 'maximum-packet-size', '300']],
    });
    await sub.subscribed();
    for (const [topic, size] of [['mosq/limit/small', 100], ['mosq/limit/large', 600], ['mosq/limit/last', 10]] as const) {
      expect((await mosquittoPub({ port: t.port, version: 'mqttv5', topic, message: 'z'.repeat(size), qos: 1 })).exit.code).toBe(0);
    }
    const got = await sub.waitMessages(2);
    expect(got.map((m) => [m.topic, m.payload.length])).toEqual([
      ['mosq/limit/small', 100],
      ['mosq/limit/last', 10],
    ]);
    expect((await sub.waitExit()).code).toBe(0);
  });
});
