import { afterEach, describe, expect, it, vi } from 'vitest';
import { QuotaExceededError, ReasonCode } from '@fleetmq/protocol';
import { payloads, settle, useHarness, type Harness } from './support/harness.js';

const harness = useHarness();

afterEach(() => {
  vi.useRealTimers();
});

async function pair(h: Harness, filter = 't/#', qos: 0 | 1 | 2 = 2, subVersion: 4 | 5 = 5) {
  const sub = await h.connect({ clientId: 'sub', protocolVersion: subVersion });
  await sub.subscribe({ topic: filter, qos });
  const pub = await h.connect({ clientId: 'pub' });
  return { sub, pub };
}

describe('PUBLISH from a client', () => {
  it('[MQTT-4.3.1-1, MQTT-3.3.1-2, MQTT-2.2.1-2] QoS 0 is delivered with DUP 0, no packet identifier and no acknowledgement', async () => {
    const h = harness();
    const { sub, pub } = await pair(h);
    await pub.publish('t/a', 'zero', { qos: 0 });
    expect(pub.drain()).toEqual([]);
    const [p] = sub.publishes();
    expect(p).toMatchObject({ topic: 't/a', qos: 0, dup: false, retain: false });
    expect(p!.messageId).toBeUndefined();
    expect(Buffer.from(p!.payload).toString()).toBe('zero');
  });

  it('[MQTT-4.3.2-4] QoS 1 is acknowledged with a PUBACK carrying its packet identifier', async () => {
    const h = harness();
    const { sub, pub } = await pair(h);
    const id = await pub.publish('t/a', 'one', { qos: 1, messageId: 4242 });
    expect(id).toBe(4242);
    const ack = pub.next('puback');
    expect(ack.messageId).toBe(4242);
    expect(ack.reasonCode ?? 0).toBe(0);
    expect(payloads(sub.publishes())).toEqual(['one']);
  });

  it('DESIGN invariant 1: PUBACK waits until the cluster accepted the message', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    let accept!: () => void;
    const publish = vi.spyOn(h.broker, 'publish').mockImplementation(() => new Promise<void>((r) => (accept = r)));
    const sending = pub.publish('t/a', 'slow', { qos: 1 });
    await settle();
    expect(pub.peek()).toEqual([]);
    accept();
    await sending;
    expect(pub.next('puback').messageId).toBe(1);
    publish.mockRestore();
  });

  it('DESIGN invariant 8: v5: while the bus is down a QoS 1 message is not acknowledged: DISCONNECT 0x89', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await h.ports.bus.close();
    await pub.publish('t/a', 'kept-by-client', { qos: 1, messageId: 7 });
    // no PUBACK of any kind: the client still holds the message and resends it after reconnecting
    const disconnect = pub.next('disconnect');
    expect(disconnect.reasonCode).toBe(ReasonCode.ServerBusy);
    expect(pub.drain()).toEqual([]);
    expect(pub.closed).toBe(true);
    expect(h.broker.stats.dropped.publishFailed).toBe(1);
  });

  it('DESIGN invariant 8: v5: the same for QoS 2: no PUBREC, DISCONNECT 0x89, nothing awaiting PUBREL', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub2', clean: false, properties: { sessionExpiryInterval: 60 } });
    await h.ports.bus.close();
    await pub.publish('t/a', 'x', { qos: 2, messageId: 8 });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.ServerBusy);
    expect(pub.drain()).toEqual([]);
    expect(pub.channel.session!.awaitingRel.has(8)).toBe(false);
  });

  it('DESIGN invariant 8: 3.1.1 cannot carry a refusal, so the connection closes instead of acknowledging', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub4', protocolVersion: 4 });
    await h.ports.bus.close();
    await pub.publish('t/a', 'x', { qos: 1 });
    expect(pub.drain()).toEqual([]);
    expect(pub.closed).toBe(true);
  });

  it('DESIGN invariant 1: a retained QoS 1 message is not acknowledged when the retained store is down', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await h.ports.retained.close();
    await pub.publish('t/a', 'keep', { qos: 1, retain: true });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.ServerBusy);
    expect(pub.drain()).toEqual([]);
  });

  it('v5: a refusal of this one message (quota) is PUBACK/PUBREC with its reason code and a reason string', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pubq' });
    h.ports.retained.set = () => Promise.reject(new QuotaExceededError('retained message too large for the store'));
    await pub.publish('t/a', 'big', { qos: 1, retain: true, messageId: 3 });
    const ack = pub.next('puback');
    expect(ack).toMatchObject({ messageId: 3, reasonCode: ReasonCode.QuotaExceeded });
    expect(ack.properties?.reasonString).toBe('retained message too large for the store');
    await pub.publish('t/a', 'big', { qos: 2, retain: true, messageId: 4 });
    expect(pub.next('pubrec')).toMatchObject({ messageId: 4, reasonCode: ReasonCode.QuotaExceeded });
    // [MQTT-4.3.3-9] a refused QoS 2 id is free: it is not awaiting PUBREL
    expect(pub.channel.session!.awaitingRel.has(4)).toBe(false);
    expect(pub.closed).toBe(false);
  });

  it('[MQTT-3.1.2-29] v5: Request Problem Information 0 suppresses the reason string on PUBACK', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'quiet', properties: { requestProblemInformation: false } });
    h.ports.retained.set = () => Promise.reject(new QuotaExceededError('too large'));
    await pub.publish('t/a', 'x', { qos: 1, retain: true });
    const ack = pub.next('puback');
    expect(ack.reasonCode).toBe(ReasonCode.QuotaExceeded);
    expect(ack.properties?.reasonString).toBeUndefined();
  });

  it('3.1.1: a refusal of one message closes the connection (3.1.1 PUBACK has no reason code)', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pubq4', protocolVersion: 4 });
    h.ports.retained.set = () => Promise.reject(new QuotaExceededError('too large'));
    await pub.publish('t/a', 'x', { qos: 1, retain: true });
    expect(pub.drain()).toEqual([]);
    expect(pub.closed).toBe(true);
  });

  it('[MQTT-4.3.3-8] QoS 2 is acknowledged with PUBREC and [MQTT-4.3.3-11] PUBREL with PUBCOMP', async () => {
    const h = harness();
    const { sub, pub } = await pair(h);
    await pub.publish('t/a', 'two', { qos: 2, messageId: 9 });
    expect(pub.next('pubrec').messageId).toBe(9);
    expect(pub.channel.session!.awaitingRel.has(9)).toBe(true);
    await pub.send({ cmd: 'pubrel', messageId: 9 });
    const comp = pub.next('pubcomp');
    expect(comp.messageId).toBe(9);
    expect(comp.reasonCode ?? 0).toBe(0);
    expect(pub.channel.session!.awaitingRel.size).toBe(0);
    expect(payloads(sub.publishes())).toEqual(['two']);
  });

  it('[MQTT-4.3.3-10] a QoS 2 PUBLISH resent before PUBREL is acknowledged again and delivered once', async () => {
    const h = harness();
    const { sub, pub } = await pair(h);
    await pub.publish('t/a', 'once', { qos: 2, messageId: 5 });
    await pub.publish('t/a', 'once', { qos: 2, messageId: 5, dup: true });
    await pub.publish('t/a', 'once', { qos: 2, messageId: 5, dup: true });
    expect(pub.drain().map((p) => [p.cmd, p.messageId])).toEqual([
      ['pubrec', 5],
      ['pubrec', 5],
      ['pubrec', 5],
    ]);
    await pub.send({ cmd: 'pubrel', messageId: 5 });
    expect(pub.next('pubcomp').messageId).toBe(5);
    expect(payloads(sub.publishes())).toEqual(['once']);
    expect(h.broker.stats.messagesIn).toEqual([0, 0, 1]); // one QoS 2 PUBLISH counted, not two
  });

  it('[MQTT-4.3.3-12] after PUBCOMP the same packet identifier starts a new message', async () => {
    const h = harness();
    const { sub, pub } = await pair(h);
    await pub.publish('t/a', 'first', { qos: 2, messageId: 5 });
    await pub.send({ cmd: 'pubrel', messageId: 5 });
    await pub.publish('t/a', 'second', { qos: 2, messageId: 5 });
    await pub.send({ cmd: 'pubrel', messageId: 5 });
    expect(payloads(sub.publishes())).toEqual(['first', 'second']);
  });

  it('the QoS 2 exchange survives a reconnect: PUBREL on the resumed session completes it', async () => {
    const h = harness();
    const { sub } = await pair(h);
    const opts = { clientId: 'pub2', clean: false, properties: { sessionExpiryInterval: 60 } };
    const pub = await h.connect(opts);
    await pub.publish('t/a', 'm', { qos: 2, messageId: 77 });
    await pub.drop();
    const again = await h.connect(opts);
    // a resend of the PUBLISH is still recognised
    await again.publish('t/a', 'm', { qos: 2, messageId: 77, dup: true });
    expect(again.next('pubrec').messageId).toBe(77);
    await again.send({ cmd: 'pubrel', messageId: 77 });
    expect(again.next('pubcomp').reasonCode ?? 0).toBe(0);
    expect(payloads(sub.publishes())).toEqual(['m']);
  });

  it('v5: PUBREL for an unknown packet identifier gets PUBCOMP 0x92', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.send({ cmd: 'pubrel', messageId: 31 });
    const comp = pub.next('pubcomp');
    expect(comp).toMatchObject({ messageId: 31, reasonCode: ReasonCode.PacketIdentifierNotFound });
  });

  it('3.1.1: PUBREL for an unknown packet identifier still gets a PUBCOMP', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub', protocolVersion: 4 });
    await pub.send({ cmd: 'pubrel', messageId: 31 });
    expect(pub.next('pubcomp').messageId).toBe(31);
  });

  it('(3.3.4) v5: receiving more QoS 2 messages than the server Receive Maximum is DISCONNECT 0x93', async () => {
    const h = harness({ options: { receiveMaximum: 2 } });
    const pub = h.client();
    const connack = await pub.connect({ clientId: 'greedy' });
    expect(connack.properties?.receiveMaximum).toBe(2);
    await pub.publish('t/a', '1', { qos: 2 });
    await pub.publish('t/a', '2', { qos: 2 });
    expect(pub.drain().map((p) => p.cmd)).toEqual(['pubrec', 'pubrec']);
    await pub.publish('t/a', '3', { qos: 2 });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
    expect(pub.closed).toBe(true);
  });

  it('(3.3.4) completing QoS 2 exchanges frees Receive Maximum slots', async () => {
    const h = harness({ options: { receiveMaximum: 1 } });
    const pub = await h.connect({ clientId: 'polite' });
    for (let i = 0; i < 5; i++) {
      const id = await pub.publish('t/a', String(i), { qos: 2 });
      pub.next('pubrec');
      await pub.send({ cmd: 'pubrel', messageId: id });
      pub.next('pubcomp');
    }
    expect(pub.closed).toBe(false);
  });

  it('[MQTT-3.3.2-2] a topic name with wildcards is DISCONNECT 0x90 on v5', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'wild' });
    await pub.publish('t/+', 'x', { qos: 1 });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.TopicNameInvalid);
    expect(pub.closed).toBe(true);
  });

  it('[MQTT-3.3.2-2] 3.1.1: a topic name with wildcards closes the connection', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'wild4', protocolVersion: 4 });
    await pub.publish('t/#', 'x', { qos: 0 });
    expect(pub.drain()).toEqual([]);
    expect(pub.closed).toBe(true);
  });

  it('(3.2.2.3.4) v5: a QoS above the server Maximum QoS is DISCONNECT 0x9B', async () => {
    const h = harness({ options: { maximumQoS: 1 } });
    const pub = await h.connect({ clientId: 'q2' });
    await pub.publish('t/a', 'x', { qos: 2 });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.QoSNotSupported);
  });

  it('(3.2.2.3.5) v5: RETAIN 1 when retain is not available is DISCONNECT 0x9A', async () => {
    const h = harness({ options: { retainAvailable: false } });
    const pub = await h.connect({ clientId: 'r' });
    await pub.publish('t/a', 'x', { qos: 0, retain: true });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.RetainNotSupported);
  });

  it('[MQTT-3.3.4-6] v5: a Subscription Identifier in a PUBLISH from a client is a protocol error', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'sid' });
    await pub.publish('t/a', 'x', { qos: 0, properties: { subscriptionIdentifier: 3 } });
    expect(pub.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
  });
});

describe('PUBLISH to a client', () => {
  it('[MQTT-2.2.1-4, MQTT-4.3.2-1, MQTT-4.3.2-2] QoS 1: an unused packet identifier, DUP 0; freed by PUBACK', async () => {
    const h = harness();
    const { sub, pub } = await pair(h, 't/#', 1);
    await pub.publish('t/a', '1', { qos: 1 });
    await pub.publish('t/a', '2', { qos: 1 });
    const [p1, p2] = sub.publishes();
    expect(p1).toMatchObject({ qos: 1, dup: false });
    expect(p2).toMatchObject({ qos: 1, dup: false });
    expect(p1!.messageId).toBeGreaterThan(0);
    expect(p2!.messageId).not.toBe(p1!.messageId);
    // [MQTT-4.3.2-3] unacknowledged until PUBACK
    expect(sub.channel.session!.inflight.size).toBe(2);
    await sub.send({ cmd: 'puback', messageId: p1!.messageId! });
    expect(sub.channel.session!.inflight.has(p1!.messageId!)).toBe(false);
    expect(sub.channel.session!.inflight.size).toBe(1);
    // an unknown PUBACK changes nothing
    await sub.send({ cmd: 'puback', messageId: 999 });
    expect(sub.channel.session!.inflight.size).toBe(1);
    expect(sub.closed).toBe(false);
  });

  it('[MQTT-4.3.3-1..5] QoS 2: PUBLISH, PUBREC -> PUBREL, PUBCOMP completes', async () => {
    const h = harness();
    const { sub, pub } = await pair(h, 't/#', 2);
    await pub.publish('t/a', 'x', { qos: 2 });
    const [p] = sub.publishes();
    expect(p).toMatchObject({ qos: 2, dup: false });
    const id = p!.messageId!;
    expect(sub.channel.session!.inflight.get(id)?.state).toBe('publish');
    await sub.send({ cmd: 'pubrec', messageId: id });
    expect(sub.next('pubrel').messageId).toBe(id);
    expect(sub.channel.session!.inflight.get(id)?.state).toBe('pubrel');
    await sub.send({ cmd: 'pubcomp', messageId: id });
    expect(sub.channel.session!.inflight.size).toBe(0);
  });

  it('[MQTT-4.3.3-4] v5: PUBREC with a reason code of 0x80 or more ends the exchange without PUBREL', async () => {
    const h = harness();
    const { sub, pub } = await pair(h, 't/#', 2);
    await pub.publish('t/a', 'x', { qos: 2 });
    const [p] = sub.publishes();
    await sub.send({ cmd: 'pubrec', messageId: p!.messageId!, reasonCode: ReasonCode.UnspecifiedError });
    expect(sub.drain()).toEqual([]);
    expect(sub.channel.session!.inflight.size).toBe(0);
  });

  it('v5: PUBREC for an unknown packet identifier gets PUBREL 0x92', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'sub' });
    await sub.send({ cmd: 'pubrec', messageId: 12 });
    expect(sub.next('pubrel')).toMatchObject({ messageId: 12, reasonCode: ReasonCode.PacketIdentifierNotFound });
  });

  it('[MQTT-3.8.4-8] the QoS delivered is the minimum of the published QoS and the granted QoS', async () => {
    const h = harness();
    const s0 = await h.connect({ clientId: 's0' });
    await s0.subscribe({ topic: 'q', qos: 0 });
    const s1 = await h.connect({ clientId: 's1' });
    await s1.subscribe({ topic: 'q', qos: 1 });
    const s2 = await h.connect({ clientId: 's2' });
    await s2.subscribe({ topic: 'q', qos: 2 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('q', 'a', { qos: 2 });
    await pub.publish('q', 'b', { qos: 1 });
    await pub.publish('q', 'c', { qos: 0 });
    expect(s0.publishes().map((p) => p.qos)).toEqual([0, 0, 0]);
    expect(s1.publishes().map((p) => p.qos)).toEqual([1, 1, 0]);
    expect(s2.publishes().map((p) => p.qos)).toEqual([2, 1, 0]);
  });

  it('DESIGN delivery guarantees: a QoS 1/2 message arriving twice (same message ID) is delivered once', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'sub' });
    await sub.subscribe({ topic: 'd', qos: 2 });
    const m = { id: 'other-node-7', topic: 'd', payload: Buffer.from('x'), qos: 1 as const, retain: false, createdAt: Date.now() };
    await h.ports.bus.publish(m);
    await h.ports.bus.publish(m);
    await h.ports.bus.publish({ ...m, id: 'other-node-8' });
    expect(sub.publishes().map((p) => p.qos)).toEqual([1, 1]);
  });

  it('[MQTT-3.3.1-3] the outgoing DUP flag does not copy the incoming one', async () => {
    const h = harness();
    const { sub, pub } = await pair(h, 't/#', 1);
    await pub.publish('t/a', 'x', { qos: 1, dup: true });
    expect(sub.publishes()[0]!.dup).toBe(false);
  });

  it('[MQTT-4.4.0-1, MQTT-3.3.1-1] unacknowledged QoS 1 messages are resent with DUP and the same packet identifier on resume', async () => {
    const h = harness();
    const opts = { clientId: 'resume', clean: false, properties: { sessionExpiryInterval: 60 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'r', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r', 'a', { qos: 1 });
    await pub.publish('r', 'b', { qos: 1 });
    const first = sub.publishes();
    await sub.send({ cmd: 'puback', messageId: first[0]!.messageId! });
    await sub.drop();
    const again = h.client();
    expect((await again.connect(opts)).sessionPresent).toBe(true);
    const resent = again.publishes();
    expect(resent).toHaveLength(1);
    expect(resent[0]).toMatchObject({ dup: true, qos: 1, messageId: first[1]!.messageId, topic: 'r' });
    expect(Buffer.from(resent[0]!.payload).toString()).toBe('b');
  });

  it('[MQTT-4.4.0-1, MQTT-4.3.3-6] a QoS 2 message past PUBREC is resumed with PUBREL, not PUBLISH', async () => {
    const h = harness();
    const opts = { clientId: 'resume2', clean: false, properties: { sessionExpiryInterval: 60 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'r', qos: 2 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r', 'a', { qos: 2 });
    await pub.publish('r', 'b', { qos: 2 });
    const [pa, pb] = sub.publishes();
    await sub.send({ cmd: 'pubrec', messageId: pa!.messageId! });
    sub.take('pubrel');
    await sub.drop();
    const again = h.client();
    await again.connect(opts);
    const out = again.drain();
    expect(out.map((p) => [p.cmd, p.messageId])).toEqual([
      ['pubrel', pa!.messageId],
      ['publish', pb!.messageId],
    ]);
    expect(out[1]).toMatchObject({ dup: true, qos: 2 });
    await again.send({ cmd: 'pubcomp', messageId: pa!.messageId! });
    expect(again.channel.session!.inflight.has(pa!.messageId!)).toBe(false);
  });

  it('3.1.1: resume resends unacknowledged messages too', async () => {
    const h = harness();
    const opts = { clientId: 'resume4', protocolVersion: 4 as const, clean: false };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'r', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r', 'a', { qos: 1 });
    const [p] = sub.publishes();
    await sub.drop();
    const again = await h.connect(opts);
    expect(again.publishes()).toEqual([expect.objectContaining({ dup: true, messageId: p!.messageId })]);
  });

  it('[MQTT-2.2.1-4] packet identifiers are not reused while inflight and wrap after 65535', async () => {
    const h = harness();
    const { sub, pub } = await pair(h, 't/#', 1);
    const session = sub.channel.session!;
    // an old message still inflight under id 2
    await pub.publish('t/a', 'old1', { qos: 1 });
    await pub.publish('t/a', 'old2', { qos: 1 });
    const [o1] = sub.publishes();
    await sub.send({ cmd: 'puback', messageId: o1!.messageId! });
    // move the counter to the end of the range
    for (let i = 0; i < 65533 - 2; i++) session.allocatePacketId();
    await pub.publish('t/a', 'x', { qos: 1 });
    await pub.publish('t/a', 'y', { qos: 1 });
    await pub.publish('t/a', 'z', { qos: 1 });
    const ids = sub.publishes().map((p) => p.messageId);
    // 65534, 65535, then 1 (free again); 2 is skipped because it is still inflight
    expect(ids).toEqual([65534, 65535, 1]);
  });
});

describe('Receive Maximum from the client (outgoing flow control)', () => {
  it('[MQTT-3.3.4-9] never more unacknowledged QoS 1/2 PUBLISH than the client Receive Maximum', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'slow', properties: { receiveMaximum: 2 } });
    await sub.subscribe({ topic: 'f', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    for (let i = 0; i < 5; i++) await pub.publish('f', String(i), { qos: 1 });
    let got = sub.publishes();
    expect(payloads(got)).toEqual(['0', '1']);
    expect(sub.channel.session!.queue.length).toBe(3);
    await sub.send({ cmd: 'puback', messageId: got[0]!.messageId! });
    got = sub.publishes();
    expect(payloads(got)).toEqual(['2']);
    await sub.ack(got[0]!);
    expect(payloads(sub.publishes())).toEqual(['3']);
  });

  it('[MQTT-3.3.4-9] a QoS 2 message counts until PUBCOMP, not PUBREC', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'slow2', properties: { receiveMaximum: 1 } });
    await sub.subscribe({ topic: 'f', qos: 2 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('f', 'a', { qos: 2 });
    await pub.publish('f', 'b', { qos: 2 });
    const [pa] = sub.publishes();
    await sub.send({ cmd: 'pubrec', messageId: pa!.messageId! });
    sub.take('pubrel');
    expect(sub.publishes()).toEqual([]);
    await sub.send({ cmd: 'pubcomp', messageId: pa!.messageId! });
    expect(payloads(sub.publishes())).toEqual(['b']);
  });

  it('[MQTT-3.3.4-10] a full quota does not delay other packets (PINGRESP, QoS 0)', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'full', properties: { receiveMaximum: 1 } });
    await sub.subscribe({ topic: 'f', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('f', 'a', { qos: 1 });
    await pub.publish('f', 'b', { qos: 1 });
    expect(payloads(sub.publishes())).toEqual(['a']);
    await sub.send({ cmd: 'pingreq' });
    expect(sub.next('pingresp')).toBeDefined();
    await pub.publish('f', 'zero', { qos: 0 });
    expect(payloads(sub.publishes())).toEqual(['zero']);
  });

  it('messages waiting for quota are bounded by the session queue limit (drop-oldest)', async () => {
    const h = harness({ options: { maxQueuedMessages: 2, queueDropPolicy: 'drop-oldest' } });
    const sub = await h.connect({ clientId: 'q', properties: { receiveMaximum: 1 } });
    await sub.subscribe({ topic: 'f', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    for (const m of ['a', 'b', 'c', 'd']) await pub.publish('f', m, { qos: 1 });
    const [pa] = sub.publishes();
    expect(payloads([pa!])).toEqual(['a']);
    expect(h.broker.stats.dropped.queueFull).toBe(1);
    await sub.ack(pa!);
    const [pc] = sub.publishes();
    await sub.ack(pc!);
    expect(payloads([pc!, ...sub.publishes()])).toEqual(['c', 'd']);
  });

  it('messages waiting for quota are bounded by the session queue limit (drop-newest)', async () => {
    const h = harness({ options: { maxQueuedMessages: 2, queueDropPolicy: 'drop-newest' } });
    const sub = await h.connect({ clientId: 'q', properties: { receiveMaximum: 1 } });
    await sub.subscribe({ topic: 'f', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    for (const m of ['a', 'b', 'c', 'd']) await pub.publish('f', m, { qos: 1 });
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [p] = sub.publishes();
      seen.push(...payloads([p!]));
      await sub.ack(p!);
    }
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(sub.publishes()).toEqual([]);
    expect(h.broker.stats.dropped.queueFull).toBe(1);
  });
});

describe('Maximum Packet Size from the client', () => {
  it('[MQTT-3.1.2-24, MQTT-3.1.2-25] a message too large for the client is dropped, not sent, and does not hold a slot', async () => {
    const h = harness();
    const sub = await h.connect({ clientId: 'small', properties: { maximumPacketSize: 64, receiveMaximum: 1 } });
    await sub.subscribe({ topic: 'f', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('f', 'x'.repeat(200), { qos: 1 });
    await pub.publish('f', 'fits', { qos: 1 });
    expect(sub.sink.tooLarge).toHaveLength(1);
    const got = sub.publishes();
    // the small one is sent although Receive Maximum is 1: the big one counts as completed
    expect(payloads(got)).toEqual(['fits']);
    expect(sub.channel.session!.inflight.size).toBe(1);
    expect(h.broker.stats.dropped.tooLarge).toBe(1);
    // QoS 0 too
    await pub.publish('f', 'y'.repeat(200), { qos: 0 });
    expect(sub.publishes()).toEqual([]);
    expect(h.broker.stats.dropped.tooLarge).toBe(2);
  });
});

describe('retained messages', () => {
  it('[MQTT-3.3.1-5] a retained message is stored and replaces the previous one for its topic', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/a', 'v1', { qos: 1, retain: true });
    await pub.publish('r/a', 'v2', { qos: 1, retain: true });
    expect((await h.ports.retained.get('r/a'))?.payload.toString()).toBe('v2');
    const sub = await h.connect({ clientId: 'sub' });
    await sub.subscribe({ topic: 'r/#', qos: 1 });
    const got = sub.publishes();
    expect(payloads(got)).toEqual(['v2']);
    // [MQTT-3.3.1-8] (3.1.1) / 3.3.1.3: sent because of a new subscription: RETAIN 1
    expect(got[0]!.retain).toBe(true);
  });

  it('[MQTT-3.3.1-6, MQTT-3.3.1-7] an empty retained payload deletes the retained message and is not stored', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/a', 'v1', { qos: 0, retain: true });
    const live = await h.connect({ clientId: 'live' });
    await live.subscribe({ topic: 'r/a', qos: 0 });
    live.publishes();
    await pub.publish('r/a', '', { qos: 0, retain: true });
    expect(await h.ports.retained.get('r/a')).toBeNull();
    expect(await h.ports.retained.count()).toBe(0);
    // processed normally: current subscribers still get it
    expect(live.publishes()).toHaveLength(1);
    const late = await h.connect({ clientId: 'late' });
    await late.subscribe({ topic: 'r/#', qos: 0 });
    expect(late.publishes()).toEqual([]);
  });

  it('[MQTT-3.3.1-8] RETAIN 0 neither stores nor replaces a retained message', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/a', 'kept', { qos: 0, retain: true });
    await pub.publish('r/a', 'live', { qos: 0, retain: false });
    expect((await h.ports.retained.get('r/a'))?.payload.toString()).toBe('kept');
  });

  it('[MQTT-3.3.1-12] (v5) / [MQTT-3.3.1-9] (3.1.1) an established subscription gets RETAIN 0 by default', async () => {
    const h = harness();
    const s5 = await h.connect({ clientId: 's5' });
    await s5.subscribe({ topic: 'r/#', qos: 0 });
    const s4 = await h.connect({ clientId: 's4', protocolVersion: 4 });
    await s4.subscribe({ topic: 'r/#', qos: 0 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/a', 'x', { qos: 0, retain: true });
    expect(s5.publishes()[0]!.retain).toBe(false);
    expect(s4.publishes()[0]!.retain).toBe(false);
  });

  it('[MQTT-3.8.4-3] (3.1.1) a repeated SUBSCRIBE re-sends the retained messages', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/a', 'x', { qos: 0, retain: true });
    const sub = await h.connect({ clientId: 's4', protocolVersion: 4 });
    await sub.subscribe({ topic: 'r/a', qos: 0 });
    await sub.subscribe({ topic: 'r/a', qos: 0 });
    expect(payloads(sub.publishes())).toEqual(['x', 'x']);
  });

  it('retained messages come after the SUBACK and are capped at the granted QoS', async () => {
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('r/a', 'x', { qos: 2, retain: true });
    const sub = await h.connect({ clientId: 'sub' });
    await sub.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'r/a', qos: 1 }] });
    const out = sub.drain();
    expect(out.map((p) => p.cmd)).toEqual(['suback', 'publish']);
    expect(out[1]).toMatchObject({ qos: 1, retain: true });
  });
});

describe('message expiry', () => {
  it('[MQTT-3.3.2-6] the expiry interval sent is what is left of it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const h = harness();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('e/a', 'x', { qos: 1, retain: true, properties: { messageExpiryInterval: 10 } });
    vi.advanceTimersByTime(4_000);
    const sub = await h.connect({ clientId: 'sub' });
    await sub.subscribe({ topic: 'e/a', qos: 1 });
    expect(sub.publishes()[0]!.properties?.messageExpiryInterval).toBe(6);
  });

  it('[MQTT-3.3.2-5] an expired message is not delivered (retained store and offline queue)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const h = harness();
    const opts = { clientId: 'off', clean: false, properties: { sessionExpiryInterval: 600 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'e/#', qos: 1 });
    await sub.drop();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('e/short', 'gone', { qos: 1, retain: true, properties: { messageExpiryInterval: 5 } });
    await pub.publish('e/long', 'kept', { qos: 1, properties: { messageExpiryInterval: 100 } });
    await pub.publish('e/none', 'forever', { qos: 1 });
    vi.advanceTimersByTime(6_000);
    const again = await h.connect(opts);
    const got = again.publishes();
    expect(payloads(got)).toEqual(['kept', 'forever']);
    expect(got[0]!.properties?.messageExpiryInterval).toBe(94);
    expect(got[1]!.properties?.messageExpiryInterval).toBeUndefined();
    const fresh = await h.connect({ clientId: 'fresh' });
    await fresh.subscribe({ topic: 'e/#', qos: 1 });
    expect(fresh.publishes()).toEqual([]);
    expect(h.broker.stats.dropped.expired).toBeGreaterThanOrEqual(1);
  });

  it('[MQTT-3.3.2-5] a message that expires while waiting for quota is dropped', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const h = harness();
    const sub = await h.connect({ clientId: 'slow', properties: { receiveMaximum: 1 } });
    await sub.subscribe({ topic: 'e', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('e', 'first', { qos: 1 });
    await pub.publish('e', 'expires', { qos: 1, properties: { messageExpiryInterval: 2 } });
    await pub.publish('e', 'last', { qos: 1 });
    const [p] = sub.publishes();
    vi.advanceTimersByTime(3_000);
    await sub.ack(p!);
    expect(payloads(sub.publishes())).toEqual(['last']);
    expect(h.broker.stats.dropped.expired).toBe(1);
  });

  it('[MQTT-4.3.3-7] an expired QoS 2 message already sent is still resent on resume', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const h = harness();
    const opts = { clientId: 'q2exp', clean: false, properties: { sessionExpiryInterval: 600 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'e', qos: 2 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('e', 'sent', { qos: 2, properties: { messageExpiryInterval: 2 } });
    const [p] = sub.publishes();
    await sub.drop();
    vi.advanceTimersByTime(5_000);
    const again = await h.connect(opts);
    const resent = again.publishes();
    expect(resent).toHaveLength(1);
    expect(resent[0]).toMatchObject({ messageId: p!.messageId, dup: true, qos: 2 });
  });
});

describe('offline queue of a persistent session', () => {
  it('(4.1) QoS 1/2 messages are queued while the client is offline and delivered in order; QoS 0 is not', async () => {
    const h = harness();
    const opts = { clientId: 'away', clean: false, properties: { sessionExpiryInterval: 60 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'o/#', qos: 2 });
    await sub.drop();
    expect(h.broker.registry.detachedCount).toBe(1);
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('o/1', 'a', { qos: 1 });
    await pub.publish('o/2', 'zero', { qos: 0 });
    await pub.publish('o/3', 'b', { qos: 2 });
    await pub.send({ cmd: 'pubrel', messageId: 2 });
    await settle();
    expect(await h.ports.offlineQueue.length('away')).toBe(2);
    const again = h.client();
    expect((await again.connect(opts)).sessionPresent).toBe(true);
    const got = again.publishes();
    expect(payloads(got)).toEqual(['a', 'b']);
    expect(got.map((p) => p.qos)).toEqual([1, 2]);
    expect(await h.ports.offlineQueue.length('away')).toBe(0);
    expect(h.broker.registry.stats.offlineDropped).toBeGreaterThanOrEqual(1);
  });

  it('3.1.1 clean session 0 queues too', async () => {
    const h = harness();
    const opts = { clientId: 'away4', protocolVersion: 4 as const, clean: false };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'o', qos: 1 });
    await sub.drop();
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('o', 'while-away', { qos: 1 });
    const again = await h.connect(opts);
    expect(payloads(again.publishes())).toEqual(['while-away']);
  });

  it('the queue limit drops by policy: drop-oldest keeps the newest', async () => {
    const h = harness({ options: { maxQueuedMessages: 2, queueDropPolicy: 'drop-oldest' } });
    const opts = { clientId: 'lim', clean: false, properties: { sessionExpiryInterval: 60 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'o', qos: 1 });
    await sub.drop();
    const pub = await h.connect({ clientId: 'pub' });
    for (const m of ['1', '2', '3', '4']) await pub.publish('o', m, { qos: 1 });
    await settle();
    const again = await h.connect(opts);
    expect(payloads(again.publishes())).toEqual(['3', '4']);
    expect(h.broker.registry.stats.offlineDropped).toBe(2);
  });

  it('the queue limit drops by policy: drop-newest keeps the oldest', async () => {
    const h = harness({ options: { maxQueuedMessages: 2, queueDropPolicy: 'drop-newest' } });
    const opts = { clientId: 'lim', clean: false, properties: { sessionExpiryInterval: 60 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'o', qos: 1 });
    await sub.drop();
    const pub = await h.connect({ clientId: 'pub' });
    for (const m of ['1', '2', '3', '4']) await pub.publish('o', m, { qos: 1 });
    await settle();
    const again = await h.connect(opts);
    expect(payloads(again.publishes())).toEqual(['1', '2']);
  });

  it('messages queued in the session but not sent at disconnect move to the offline queue', async () => {
    const h = harness();
    const opts = { clientId: 'mv', clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 1 } };
    const sub = await h.connect(opts);
    await sub.subscribe({ topic: 'o', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    for (const m of ['a', 'b', 'c']) await pub.publish('o', m, { qos: 1 });
    expect(payloads(sub.publishes())).toEqual(['a']);
    await sub.drop();
    expect(await h.ports.offlineQueue.length('mv')).toBe(2);
    const again = await h.connect({ ...opts, properties: { sessionExpiryInterval: 60 } });
    const got = again.publishes();
    // the unacknowledged one first (DUP), then the queued ones, each once
    expect(payloads(got)).toEqual(['a', 'b', 'c']);
    expect(got.map((p) => p.dup)).toEqual([true, false, false]);
  });
});
