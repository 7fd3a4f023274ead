import { afterEach, describe, expect, it } from 'vitest';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import type { IClientOptions, IConnackPacket, MqttClient } from 'mqtt';
import { useTestNode } from '../support/node.js';
import { Inbox, connectMqtt, createMqtt, endMqttClients, once, quietPeriod, waitUntil, withTimeout } from '../support/clients.js';

// mqtt.js v5 against the embedded node: acknowledgement flow (Receive Maximum, resending
// unacknowledged messages with DUP on resume), Retain As Published / Retain Handling,
// unsubscribe reason codes, and topics starting with '$'.

/**
 * Everything the broker sends a client, parsed from its socket by a parser of our own:
 * mqtt.js handles one packet at a time and stops while an acknowledgement is held back,
 * the wire does not.
 */
function wireOf(client: MqttClient, protocolVersion: 4 | 5): Packet[] {
  const packets: Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion });
  parser.on('packet', (p: Packet) => packets.push(p));
  client.stream.on('data', (chunk: Buffer) => parser.parse(chunk));
  return packets;
}

/**
 * Makes an mqtt.js client swallow its PUBACKs, as if it crashed each time before sending
 * one (mqtt.js holds acknowledgements back only for MQTT 5, through customHandleAcks).
 */
function dropPubacks(client: MqttClient): void {
  const internal = client as unknown as { _sendPacket(packet: Packet, cb?: () => void, ...rest: unknown[]): void };
  const send = internal._sendPacket.bind(client);
  internal._sendPacket = (packet, cb, ...rest) => {
    if (packet.cmd === 'puback') {
      cb?.();
      return;
    }
    send(packet, cb, ...rest);
  };
}

const publishesIn = (packets: Packet[]): IPublishPacket[] => packets.filter((p): p is IPublishPacket => p.cmd === 'publish');

/** mqtt.js options that hold every acknowledgement back until `release()` is called. */
function heldAcks(): { options: Pick<IClientOptions, 'customHandleAcks'>; release(): void; readonly count: number } {
  const held: ((code: number) => void)[] = [];
  return {
    options: { customHandleAcks: (_t, _m, _p, done) => held.push((code) => done(code)) },
    release: () => {
      for (const done of held.splice(0)) done(0);
    },
    get count() {
      return held.length;
    },
  };
}

describe('mqtt.js interop: acknowledgement flow and subscription options', () => {
  const t = useTestNode();
  afterEach(async () => {
    await endMqttClients();
  });

  it('never has more unacknowledged QoS 1 messages out to a client than its Receive Maximum', async () => {
    const acks = heldAcks();
    const sub = createMqtt(t.url, { protocolVersion: 5, clientId: 'flow-rm', properties: { receiveMaximum: 2 }, ...acks.options });
    await once(sub, 'connect');
    const wire = wireOf(sub, 5);
    await sub.subscribeAsync('flow/rm', { qos: 1 });
    const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-rm-pub' });
    for (let i = 0; i < 6; i++) await pub.publishAsync('flow/rm', `m${i}`, { qos: 1 });
    await waitUntil(() => publishesIn(wire).length >= 2, 5000, 'two publishes');
    await quietPeriod(300);
    expect(publishesIn(wire).map((p) => p.payload.toString())).toEqual(['m0', 'm1']);
    // each acknowledgement frees one slot; the rest follow in order
    while (publishesIn(wire).length < 6) {
      await waitUntil(() => acks.count > 0, 5000, 'a held acknowledgement');
      acks.release();
      await quietPeriod(20);
    }
    expect(publishesIn(wire).map((p) => p.payload.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(publishesIn(wire).every((p) => p.dup === false)).toBe(true);
  });

  for (const protocolVersion of [4, 5] as const) {
    for (const [how, slug] of [['after the socket died', 'died'], ['on takeover', 'takeover']] as const) {
      it(`resends unacknowledged QoS 1 messages with DUP when the session resumes ${how} (protocol ${protocolVersion})`, async () => {
        const clientId = `flow-dup-${protocolVersion}-${slug}`;
        const session = protocolVersion === 5 ? { properties: { sessionExpiryInterval: 60 } } : {};
        const first = createMqtt(t.url, { protocolVersion, clientId, clean: false, ...session });
        dropPubacks(first);
        await once(first, 'connect');
        const wire = wireOf(first, protocolVersion);
        await first.subscribeAsync(`flow/dup/${slug}`, { qos: 1 });
        const pub = await connectMqtt(t.url, { protocolVersion, clientId: `flow-dup-pub-${protocolVersion}-${slug}` });
        for (let i = 0; i < 3; i++) await pub.publishAsync(`flow/dup/${slug}`, `d${i}`, { qos: 1 });
        await waitUntil(() => publishesIn(wire).length >= 3, 5000, 'three publishes');
        const firstIds = publishesIn(wire).map((p) => p.messageId);
        if (how === 'after the socket died') first.stream.destroy(); // gone without acknowledging any

        const second = createMqtt(t.url, { protocolVersion, clientId, clean: false, ...session });
        const inbox = new Inbox(second);
        const [ack] = await once<[IConnackPacket]>(second, 'connect');
        expect(ack.sessionPresent).toBe(true);
        const again = await inbox.wait(3);
        expect(again.map((m) => [m.payload, m.packet.dup, m.packet.messageId])).toEqual([
          ['d0', true, firstIds[0]],
          ['d1', true, firstIds[1]],
          ['d2', true, firstIds[2]],
        ]);
        // acknowledged now: a further resume resends nothing
        await second.endAsync();
        const third = createMqtt(t.url, { protocolVersion, clientId, clean: false, ...session });
        const thirdInbox = new Inbox(third);
        await once(third, 'connect');
        await pub.publishAsync(`flow/dup/${slug}`, 'fresh', { qos: 1 });
        await thirdInbox.wait(1);
        expect(thirdInbox.messages.map((m) => [m.payload, m.packet.dup])).toEqual([['fresh', false]]);
      });
    }
  }

  it('resends PUBREL, not the PUBLISH, for a QoS 2 message whose PUBCOMP never came', async () => {
    const opts = { protocolVersion: 5 as const, clientId: 'flow-q2', clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = createMqtt(t.url, opts);
    const inbox1 = new Inbox(first);
    await once(first, 'connect');
    const wire = wireOf(first, 5);
    await first.subscribeAsync('flow/q2', { qos: 2 });
    // PUBREC goes out (mqtt.js does that); the socket dies when PUBREL arrives, before PUBCOMP
    first.on('packetreceive', (p) => {
      if (p.cmd === 'pubrel') first.stream.destroy();
    });
    const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-q2-pub' });
    await pub.publishAsync('flow/q2', 'exactly once', { qos: 2 });
    await waitUntil(() => wire.some((p) => p.cmd === 'pubrel'), 5000, 'PUBREL');
    const packetId = publishesIn(wire)[0]!.messageId;
    await once(first, 'close');

    const second = createMqtt(t.url, opts);
    const wire2: Packet[] = [];
    second.on('packetreceive', (p) => wire2.push(p));
    const inbox2 = new Inbox(second);
    await once(second, 'connect');
    await waitUntil(() => wire2.some((p) => p.cmd === 'pubrel'), 5000, 'PUBREL resent');
    expect(wire2.filter((p) => p.cmd === 'pubrel').map((p) => (p as { messageId?: number }).messageId)).toEqual([packetId]);
    await pub.publishAsync('flow/q2', 'next', { qos: 2 });
    await inbox2.wait(1);
    // the message itself was never sent again
    expect(publishesIn(wire2).map((p) => p.payload.toString())).toEqual(['next']);
    const all = [...inbox1.messages, ...inbox2.messages].map((m) => m.payload);
    expect(all.filter((p) => p === 'exactly once').length).toBeLessThanOrEqual(1);
    expect(all).toContain('next');
  });

  for (const protocolVersion of [4, 5] as const) {
    it(`completes a QoS 2 publish whose PUBREL was lost with the connection, delivering it once (protocol ${protocolVersion})`, async () => {
      const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: `flow-q2in-sub-${protocolVersion}` });
      await sub.subscribeAsync('flow/q2in/+', { qos: 2 });
      const inbox = new Inbox(sub);
      const session = protocolVersion === 5 ? { properties: { sessionExpiryInterval: 60 } } : {};
      const pub = createMqtt(t.url, { protocolVersion, clientId: `flow-q2in-${protocolVersion}`, clean: false, ...session });
      await once(pub, 'connect');
      // the first PUBREL never leaves: the connection dies as it is sent
      const internal = pub as unknown as { _sendPacket(packet: Packet, ...rest: unknown[]): void };
      const send = internal._sendPacket.bind(pub);
      let dropped = false;
      internal._sendPacket = (packet, ...rest) => {
        if (packet.cmd === 'pubrel' && !dropped) {
          dropped = true;
          pub.stream.destroy();
          return;
        }
        send(packet, ...rest);
      };
      const received: Packet[] = [];
      pub.on('packetreceive', (p) => received.push(p));
      const done = pub.publishAsync(`flow/q2in/${protocolVersion}`, 'exactly once', { qos: 2 });
      await once(pub, 'close');
      expect(dropped).toBe(true);
      // the broker has the message (it was routed on PUBLISH) and waits for PUBREL
      await inbox.wait(1);

      const sent: Packet[] = [];
      pub.on('packetsend', (p) => sent.push(p));
      // mqtt.js resends what its store holds for the session (reconnect() without the stores
      // would start with empty ones)
      pub.reconnect({ incomingStore: pub.incomingStore, outgoingStore: pub.outgoingStore });
      const [ack] = await once<[IConnackPacket]>(pub, 'connect');
      expect(ack.sessionPresent).toBe(true);
      await withTimeout(done, 5000, 'the publish to complete');
      const pubcomp = received.find((p) => p.cmd === 'pubcomp') as { reasonCode?: number } | undefined;
      expect(pubcomp).toBeDefined();
      expect(pubcomp!.reasonCode ?? 0).toBe(0); // not 0x92: the session remembered the packet ID
      // mqtt.js sent the PUBLISH again (its PUBREL never reached its store): the same packet
      // ID, which the broker already holds, so it is acknowledged and not published twice
      const resent = sent.filter((p): p is IPublishPacket => p.cmd === 'publish');
      expect(resent.map((p) => p.payload.toString())).toEqual(['exactly once']);
      await pub.publishAsync(`flow/q2in/${protocolVersion}`, 'marker', { qos: 2 });
      await inbox.wait(2);
      expect(inbox.messages.map((m) => m.payload)).toEqual(['exactly once', 'marker']);
    });
  }

  it('Retain As Published keeps the retain flag on live messages; without it the flag is cleared', async () => {
    const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-rap' });
    await sub.subscribeAsync('flow/rap/kept/#', { qos: 1, rap: true });
    await sub.subscribeAsync('flow/rap/cleared/#', { qos: 1, rap: false });
    const inbox = new Inbox(sub);
    const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-rap-pub' });
    await pub.publishAsync('flow/rap/kept/x', 'r', { qos: 1, retain: true });
    await pub.publishAsync('flow/rap/cleared/x', 'r', { qos: 1, retain: true });
    await pub.publishAsync('flow/rap/kept/y', 'not retained', { qos: 1 });
    const got = await inbox.wait(3);
    expect(got.map((m) => [m.topic, m.packet.retain])).toEqual([
      ['flow/rap/kept/x', true],
      ['flow/rap/cleared/x', false],
      ['flow/rap/kept/y', false],
    ]);
  });

  it('Retain Handling 0 sends retained messages on every subscribe, 1 only on a new one, 2 never', async () => {
    const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-rh-pub' });
    for (const rh of [0, 1, 2]) await pub.publishAsync(`flow/rh/${rh}`, `retained ${rh}`, { qos: 1, retain: true });
    const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-rh' });
    const inbox = new Inbox(sub);
    for (let round = 0; round < 2; round++) {
      for (const rh of [0, 1, 2] as const) await sub.subscribeAsync(`flow/rh/${rh}`, { qos: 1, rh });
    }
    await pub.publishAsync('flow/rh/0', 'marker', { qos: 1 });
    await inbox.wait(1, 5000, (m) => m.payload === 'marker');
    expect(inbox.messages.map((m) => m.payload)).toEqual(['retained 0', 'retained 1', 'retained 0', 'marker']);
  });

  it('UNSUBACK carries a reason code per filter (MQTT 5), and unsubscribed filters get nothing more', async () => {
    const sub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-unsub' });
    const inbox = new Inbox(sub);
    await sub.subscribeAsync('flow/unsub/a', { qos: 1 });
    const received: Packet[] = [];
    sub.on('packetreceive', (p) => received.push(p));
    await sub.unsubscribeAsync(['flow/unsub/a', 'flow/unsub/never']);
    const unsuback = received.find((p) => p.cmd === 'unsuback') as { granted?: number[]; reasonCode?: number } | undefined;
    expect(unsuback?.granted).toEqual([0x00, 0x11]);
    await sub.subscribeAsync('flow/unsub/marker', { qos: 1 });
    const pub = await connectMqtt(t.url, { protocolVersion: 5, clientId: 'flow-unsub-pub' });
    await pub.publishAsync('flow/unsub/a', 'gone', { qos: 1 });
    await pub.publishAsync('flow/unsub/marker', 'marker', { qos: 1 });
    await inbox.wait(1);
    expect(inbox.messages.map((m) => m.payload)).toEqual(['marker']);
  });

  it("does not match topics starting with '$' by a leading wildcard", async () => {
    const sub = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'flow-dollar' });
    await sub.subscribeAsync('#', { qos: 1 });
    await sub.subscribeAsync('+/dollar', { qos: 1 });
    await sub.subscribeAsync('$app/#', { qos: 1 });
    const inbox = new Inbox(sub);
    const pub = await connectMqtt(t.url, { protocolVersion: 4, clientId: 'flow-dollar-pub' });
    await pub.publishAsync('$app/dollar', 'dollar', { qos: 1 });
    await pub.publishAsync('flow/dollar', 'plain', { qos: 1 });
    await inbox.wait(2, 5000, (m) => m.payload === 'plain' || m.payload === 'dollar');
    await quietPeriod(100);
    // '$app/dollar' once (through $app/#), 'flow/dollar' once (overlapping # and +/dollar: one copy)
    expect(inbox.messages.filter((m) => m.topic === '$app/dollar' || m.topic === 'flow/dollar').map((m) => [m.topic, m.payload])).toEqual([
      ['$app/dollar', 'dollar'],
      ['flow/dollar', 'plain'],
    ]);
  });
});
