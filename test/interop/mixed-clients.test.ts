import { afterEach, describe, expect, it } from 'vitest';
import { useTestNode } from '../support/node.js';
import {
  Inbox,
  MosquittoSub,
  PahoClient,
  connectMqtt,
  endMqttClients,
  killSpawned,
  mosquittoPub,
  quietPeriod,
  waitUntil,
} from '../support/clients.js';

// mqtt.js, mosquitto and paho clients on one node at the same time: one message fanned out
// to every client family and protocol version, and shared subscriptions whose members are
// different clients.

describe('mixed clients interop', () => {
  const t = useTestNode();
  afterEach(async () => {
    killSpawned();
    await endMqttClients();
  });

  it('one QoS 2 publish reaches mqtt.js (TCP, WebSocket), mosquitto_sub and paho on every protocol version', async () => {
    const inboxes: [string, Inbox][] = [];
    for (const [protocolVersion, url, kind] of [
      [3, t.wsUrl, 'ws'], // subprotocol mqttv3.1
      [4, t.wsUrl, 'ws'],
      [4, t.url, 'tcp'],
      [5, t.url, 'tcp'],
      [5, t.wsUrl, 'ws'],
    ] as const) {
      const c = await connectMqtt(url, {
        protocolVersion,
        protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
        clientId: `fan-js-${protocolVersion}-${kind}`,
      });
      await c.subscribeAsync('fan/out', { qos: 2 });
      inboxes.push([`mqtt.js v${protocolVersion} ${kind}`, new Inbox(c)]);
    }
    const subs = (['mqttv31', 'mqttv311', 'mqttv5'] as const).map(
      (version) => new MosquittoSub({ port: t.port, version, topics: ['fan/+'], qos: 2, count: 1, timeoutSec: 8 }),
    );
    await Promise.all(subs.map((s) => s.subscribed()));
    const pahos = await Promise.all(
      (['3.1', '3.1.1', '5'] as const).map(async (protocol) => {
        const p = new PahoClient(t.port);
        expect((await p.connect({ client_id: `fan-paho-${protocol}`, protocol })).rc).toBe(0);
        expect(await p.subscribe('fan/#', 2)).toEqual([2]);
        return p;
      }),
    );

    expect((await mosquittoPub({ port: t.port, version: 'mqttv5', topic: 'fan/out', message: 'to everyone', qos: 2 })).exit.code).toBe(0);

    for (const [name, inbox] of inboxes) {
      const [m] = await inbox.wait(1);
      expect([name, m!.topic, m!.payload, m!.packet.qos]).toEqual([name, 'fan/out', 'to everyone', 2]);
    }
    for (const s of subs) expect((await s.waitMessages(1))[0]).toMatchObject({ topic: 'fan/out', payload: 'to everyone', qos: 2 });
    for (const p of pahos) expect((await p.waitMessages(1))[0]).toMatchObject({ topic: 'fan/out', payload: 'to everyone', qos: 2 });
    await Promise.all(pahos.map((p) => p.close()));
  });

  it('a $share group of mqtt.js, mosquitto_sub and paho members gets each message exactly once, spread over all', async () => {
    const js = await connectMqtt(t.wsUrl, { protocolVersion: 5, clientId: 'share-mix-js' });
    await js.subscribeAsync('$share/mix/mix/jobs/#', { qos: 1 });
    const jsInbox = new Inbox(js);
    const mosq = new MosquittoSub({ port: t.port, version: 'mqttv5', topics: ['$share/mix/mix/jobs/#'], qos: 1, timeoutSec: 10 });
    const mosq311 = new MosquittoSub({ port: t.port, version: 'mqttv311', topics: ['$share/mix/mix/jobs/#'], qos: 1, timeoutSec: 10 });
    await Promise.all([mosq.subscribed(), mosq311.subscribed()]);
    const paho = new PahoClient(t.port);
    expect((await paho.connect({ client_id: 'share-mix-paho', protocol: '5' })).rc).toBe(0);
    expect(await paho.subscribe('$share/mix/mix/jobs/#', 1)).toEqual([1]);
    // an ordinary subscriber of the same topics gets everything
    const all = new MosquittoSub({ port: t.port, version: 'mqttv311', topics: ['mix/jobs/#'], qos: 1, timeoutSec: 10 });
    await all.subscribed();

    const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'share-mix-pub' });
    const sent = Array.from({ length: 40 }, (_, i) => `w${i}`);
    for (const [i, w] of sent.entries()) await pub.publishAsync(`mix/jobs/${i % 4}`, w, { qos: 1 });

    const counts = (): number[] => [jsInbox.messages.length, mosq.messages.length, mosq311.messages.length, paho.messages().length];
    await waitUntil(() => counts().reduce((a, b) => a + b, 0) >= sent.length, 5000, 'every shared message');
    await all.waitMessages(sent.length);
    await quietPeriod(200);
    const delivered = [
      ...jsInbox.messages.map((m) => m.payload),
      ...mosq.messages.map((m) => m.payload),
      ...mosq311.messages.map((m) => m.payload),
      ...paho.messages().map((m) => m.payload),
    ];
    expect(delivered.slice().sort()).toEqual(sent.slice().sort());
    for (const [i, n] of counts().entries()) expect(n, `member ${i} got ${n}`).toBeGreaterThan(0);
    expect(all.messages.map((m) => m.payload)).toEqual(sent);
  });

  it('carries a 512 KiB payload from mqtt.js over WebSocket to mosquitto_sub and paho over TCP', async () => {
    const big = Buffer.alloc(512 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = 0x41 + (i % 26);
    const sub = new MosquittoSub({ port: t.port, version: 'mqttv311', topics: ['mix/big'], qos: 1, count: 1, timeoutSec: 8 });
    await sub.subscribed();
    const paho = new PahoClient(t.port);
    expect((await paho.connect({ client_id: 'mix-big-paho', protocol: '5' })).rc).toBe(0);
    await paho.subscribe('mix/big', 1);
    const ws = await connectMqtt(t.wsUrl, { protocolVersion: 5, clientId: 'mix-big-ws' });
    await ws.publishAsync('mix/big', big, { qos: 1 });
    const [m] = await sub.waitMessages(1);
    expect(m!.payload.length).toBe(big.length);
    expect(m!.payload === big.toString()).toBe(true);
    const [p] = await paho.waitMessages(1);
    expect(p!.payload === big.toString()).toBe(true);
  });

  it('a shared subscription is not sent retained messages, its plain twin is', async () => {
    expect((await mosquittoPub({ port: t.port, version: 'mqttv5', topic: 'mix/ret/x', message: 'kept', qos: 1, retain: true })).exit.code).toBe(0);
    const shared = new MosquittoSub({ port: t.port, version: 'mqttv5', topics: ['$share/r/mix/ret/#'], qos: 1, count: 1, timeoutSec: 8 });
    const plain = new MosquittoSub({ port: t.port, version: 'mqttv5', topics: ['mix/ret/#'], qos: 1, count: 2, timeoutSec: 8 });
    await Promise.all([shared.subscribed(), plain.subscribed()]);
    expect((await plain.waitMessages(1))[0]).toMatchObject({ topic: 'mix/ret/x', payload: 'kept', retain: 1 });
    expect((await mosquittoPub({ port: t.port, version: 'mqttv5', topic: 'mix/ret/x', message: 'live', qos: 1 })).exit.code).toBe(0);
    const [m] = await shared.waitMessages(1);
    expect([m!.payload, m!.retain]).toEqual(['live', 0]);
    expect((await plain.waitMessages(2))[1]).toMatchObject({ payload: 'live', retain: 0 });
  });
});
