import { afterEach, describe, expect, it } from 'vitest';
import type { IClientOptions } from 'mqtt';
import { useTestNode } from '../support/node.js';
import { Inbox, connectMqtt, createMqtt, endMqttClients, once } from '../support/clients.js';

// mqtt.js v5 against the embedded node: QoS round trips for every protocol version,
// retained messages, WebSocket and TCP clients together, and CONNECT refusals.

const VERSIONS = [
  { name: 'MQTT 3.1 (MQIsdp)', opts: { protocolVersion: 3, protocolId: 'MQIsdp' } },
  { name: 'MQTT 3.1.1', opts: { protocolVersion: 4 } },
  { name: 'MQTT 5.0', opts: { protocolVersion: 5 } },
] as const satisfies readonly { name: string; opts: IClientOptions }[];

describe('mqtt.js interop: QoS, retained messages, WebSocket', () => {
  const t = useTestNode();
  afterEach(async () => {
    await endMqttClients();
  });

  for (const { name, opts } of VERSIONS) {
    describe(name, () => {
      for (const qos of [0, 1, 2] as const) {
        it(`round-trips a QoS ${qos} message with the QoS it was sent at`, async () => {
          const tag = `${opts.protocolVersion}-${qos}`;
          const sub = await connectMqtt(t.url, { ...opts, clientId: `core-sub-${tag}` });
          const pub = await connectMqtt(t.url, { ...opts, clientId: `core-pub-${tag}` });
          const granted = await sub.subscribeAsync(`core/qos/${tag}`, { qos });
          expect(granted.map((g) => g.qos)).toEqual([qos]);
          const inbox = new Inbox(sub);
          await pub.publishAsync(`core/qos/${tag}`, `payload at QoS ${qos}`, { qos });
          const [m] = await inbox.wait(1);
          expect(m!.topic).toBe(`core/qos/${tag}`);
          expect(m!.payload).toBe(`payload at QoS ${qos}`);
          expect(m!.packet.qos).toBe(qos);
          expect(m!.packet.retain).toBe(false);
        });
      }

      it('downgrades delivery to the subscription QoS and keeps per-publisher order', async () => {
        const v = opts.protocolVersion;
        const sub = await connectMqtt(t.url, { ...opts, clientId: `core-down-sub-${v}` });
        const pub = await connectMqtt(t.url, { ...opts, clientId: `core-down-pub-${v}` });
        await sub.subscribeAsync(`core/down/${v}`, { qos: 1 });
        const inbox = new Inbox(sub);
        for (let i = 0; i < 20; i++) await pub.publishAsync(`core/down/${v}`, `m${i}`, { qos: 2 });
        const got = await inbox.wait(20);
        expect(got.map((m) => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
        expect(new Set(got.map((m) => m.packet.qos))).toEqual(new Set([1]));
      });

      it('keeps, replaces and deletes a retained message and sends it on subscribe with the retain flag', async () => {
        const v = opts.protocolVersion;
        const topic = `core/retained/${v}`;
        const pub = await connectMqtt(t.url, { ...opts, clientId: `core-ret-pub-${v}` });
        await pub.publishAsync(topic, 'first', { qos: 1, retain: true });
        await pub.publishAsync(topic, 'second', { qos: 1, retain: true });

        // a new subscription gets the latest retained message, flagged retained [MQTT-3.3.1-8]
        const s1 = createMqtt(t.url, { ...opts, clientId: `core-ret-s1-${v}` });
        const in1 = new Inbox(s1);
        await once(s1, 'connect');
        await s1.subscribeAsync(topic, { qos: 1 });
        const [r] = await in1.wait(1);
        expect(r!.payload).toBe('second');
        expect(r!.packet.retain).toBe(true);
        expect(r!.packet.qos).toBe(1);

        // a message to an existing subscription is not flagged retained [MQTT-3.3.1-9]
        await pub.publishAsync(topic, 'third', { qos: 1, retain: true });
        const [, live] = await in1.wait(2);
        expect(live!.payload).toBe('third');
        expect(live!.packet.retain).toBe(false);

        // an empty retained payload deletes it, and is itself delivered to subscribers
        await pub.publishAsync(topic, '', { qos: 1, retain: true });
        const [, , empty] = await in1.wait(3);
        expect(empty!.payload).toBe('');

        // nothing retained any more: a new subscriber gets only what is published after
        const s2 = createMqtt(t.url, { ...opts, clientId: `core-ret-s2-${v}` });
        const in2 = new Inbox(s2);
        await once(s2, 'connect');
        await s2.subscribeAsync(topic, { qos: 1 });
        await pub.publishAsync(topic, 'marker', { qos: 1 });
        const [first] = await in2.wait(1);
        expect(first!.payload).toBe('marker');
        expect(in2.messages).toHaveLength(1);
      });

      it('delivers retained messages of every topic a wildcard subscription matches', async () => {
        const v = opts.protocolVersion;
        const pub = await connectMqtt(t.url, { ...opts, clientId: `core-retw-pub-${v}` });
        await pub.publishAsync(`core/retw/${v}/a`, 'A', { qos: 1, retain: true });
        await pub.publishAsync(`core/retw/${v}/b/c`, 'BC', { qos: 0, retain: true });
        await pub.publishAsync(`core/retw/${v}/nope`, 'not retained', { qos: 1 });
        const sub = createMqtt(t.url, { ...opts, clientId: `core-retw-sub-${v}` });
        const inbox = new Inbox(sub);
        await once(sub, 'connect');
        await sub.subscribeAsync(`core/retw/${v}/#`, { qos: 2 });
        const got = await inbox.wait(2);
        const byTopic = Object.fromEntries(got.map((m) => [m.topic, [m.payload, m.packet.qos, m.packet.retain]]));
        expect(byTopic).toEqual({
          [`core/retw/${v}/a`]: ['A', 1, true],
          [`core/retw/${v}/b/c`]: ['BC', 0, true],
        });
        await pub.publishAsync(`core/retw/${v}/marker`, 'marker', { qos: 1 });
        await inbox.wait(3);
        expect(inbox.messages.map((m) => m.payload)).toEqual(expect.arrayContaining(['A', 'BC', 'marker']));
        expect(inbox.messages).toHaveLength(3);
      });
    });
  }

  describe('WebSocket and TCP clients together', () => {
    const pairs = [
      { from: 'ws', to: 'tcp' },
      { from: 'tcp', to: 'ws' },
      { from: 'ws', to: 'ws' },
    ] as const;
    for (const protocolVersion of [4, 5] as const) {
      for (const { from, to } of pairs) {
        it(`a ${from} publisher reaches a ${to} subscriber at QoS 0, 1 and 2 (protocol ${protocolVersion})`, async () => {
          const url = (kind: 'ws' | 'tcp'): string => (kind === 'ws' ? t.wsUrl : t.url);
          const tag = `${protocolVersion}-${from}-${to}`;
          const sub = await connectMqtt(url(to), { protocolVersion, clientId: `core-x-sub-${tag}` });
          const pub = await connectMqtt(url(from), { protocolVersion, clientId: `core-x-pub-${tag}` });
          await sub.subscribeAsync(`core/x/${tag}/#`, { qos: 2 });
          const inbox = new Inbox(sub);
          for (const qos of [0, 1, 2] as const) await pub.publishAsync(`core/x/${tag}/${qos}`, `via ${from} at ${qos}`, { qos });
          const got = await inbox.wait(3);
          expect(got.map((m) => [m.topic, m.payload, m.packet.qos])).toEqual([
            [`core/x/${tag}/0`, `via ${from} at 0`, 0],
            [`core/x/${tag}/1`, `via ${from} at 1`, 1],
            [`core/x/${tag}/2`, `via ${from} at 2`, 2],
          ]);
        });
      }
    }

    it('a WebSocket client gets retained messages a TCP client set, and its will reaches TCP', async () => {
      const tcp = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'core-wsr-tcp' });
      await tcp.publishAsync('core/wsr/state', 'on', { qos: 1, retain: true });
      await tcp.subscribeAsync('core/wsr/will', { qos: 1 });
      const tcpInbox = new Inbox(tcp);

      const ws = createMqtt(t.wsUrl, {
        protocolVersion: 5,
        clientId: 'core-wsr-ws',
        will: { topic: 'core/wsr/will', payload: Buffer.from('ws gone'), qos: 1, retain: false },
      });
      const wsInbox = new Inbox(ws);
      await once(ws, 'connect');
      await ws.subscribeAsync('core/wsr/state', { qos: 1 });
      const [state] = await wsInbox.wait(1);
      expect([state!.payload, state!.packet.retain]).toEqual(['on', true]);

      ws.stream.destroy(); // the WebSocket dies without DISCONNECT
      const [will] = await tcpInbox.wait(1);
      expect([will!.topic, will!.payload]).toEqual(['core/wsr/will', 'ws gone']);
    });
  });

  // (an empty client ID with clean session 0 is refused in paho.test.ts: mqtt.js will not send it)
  describe('client identifiers', () => {
    it('accepts a 3.1.1 client with an empty client ID and clean session 1', async () => {
      const client = await connectMqtt(t.url, { protocolVersion: 4, clientId: '', clean: true });
      await client.subscribeAsync('core/anon', { qos: 1 });
      const inbox = new Inbox(client);
      await client.publishAsync('core/anon', 'anonymous works', { qos: 1 });
      expect((await inbox.wait(1))[0]!.payload).toBe('anonymous works');
    });

    it('assigns a client identifier to an MQTT 5 client that sent none', async () => {
      const client = createMqtt(t.url, { protocolVersion: 5, clientId: '' });
      const [connack] = await once<[{ properties?: { assignedClientIdentifier?: string } }]>(client, 'connect');
      expect(connack.properties?.assignedClientIdentifier).toMatch(/^fleetmq-/);
    });
  });
});
