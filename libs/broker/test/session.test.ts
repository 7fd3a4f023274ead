import { describe, expect, it } from 'vitest';
import type { Message } from '../src/message.js';
import { Session, type SessionLimits } from '../src/session.js';
import type { SubscriptionOptions } from '../src/subscription.js';

const limits: SessionLimits = { maxQueued: 100, dropPolicy: 'drop-oldest' };

function message(id: string, over: Partial<Message> = {}): Message {
  return { id, topic: 't/a', payload: Buffer.from(id), qos: 1, retain: false, createdAt: 1, ...over };
}

function sub(over: Partial<SubscriptionOptions> = {}): SubscriptionOptions {
  return { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, ...over };
}

describe('Session.markSeen', () => {
  it('is true the first time an ID is seen and false after', () => {
    const s = new Session('c', 5, 0, limits);
    expect(s.markSeen('m1')).toBe(true);
    expect(s.markSeen('m1')).toBe(false);
    expect(s.markSeen('m2')).toBe(true);
  });

  it('remembers the last 512 IDs only (bounded memory)', () => {
    const s = new Session('c', 5, 0, limits);
    for (let i = 0; i < 512; i++) expect(s.markSeen(`m${i}`)).toBe(true);
    expect(s.markSeen('m0')).toBe(false);
    expect(s.markSeen('new-0')).toBe(true); // evicts m0
    expect(s.markSeen('m0')).toBe(true); // forgotten, seen again; evicts m1
    expect(s.markSeen('m2')).toBe(false);
    expect(s.markSeen('m511')).toBe(false);
    // cycling through the ring many times keeps exactly the window
    for (let i = 0; i < 2000; i++) s.markSeen(`x${i}`);
    expect(s.markSeen('x1999')).toBe(false);
    expect(s.markSeen('x1488')).toBe(false);
    expect(s.markSeen('x1000')).toBe(true);
  });
});

describe('Session.allocatePacketId', () => {
  it('[MQTT-2.2.1-4] gives non-zero IDs in sequence, skipping those in flight, wrapping after 65535', () => {
    const s = new Session('c', 5, 0, limits);
    expect(s.allocatePacketId()).toBe(1);
    expect(s.allocatePacketId()).toBe(2);
    s.inflight.set(3, { packetId: 3, qos: 1, state: 'publish', retain: false, message: message('a') });
    expect(s.allocatePacketId()).toBe(4);
    for (let i = 5; i < 65535; i++) s.allocatePacketId();
    expect(s.allocatePacketId()).toBe(65535);
    expect(s.allocatePacketId()).toBe(1);
    expect(s.allocatePacketId()).toBe(2);
    expect(s.allocatePacketId()).toBe(4);
  });

  it('[MQTT-2.2.1-4] returns undefined when all 65535 IDs are in flight', () => {
    const s = new Session('c', 5, 0, limits);
    for (let id = 1; id <= 65535; id++) {
      s.inflight.set(id, { packetId: id, qos: 1, state: 'publish', retain: false, message: message(`m${id}`) });
    }
    expect(s.allocatePacketId()).toBeUndefined();
    s.inflight.delete(40000);
    expect(s.allocatePacketId()).toBe(40000);
  });
});

describe('Session.enqueueStored', () => {
  it('recomputes QoS, retain and identifiers from the current subscriptions', () => {
    const s = new Session('c', 5, 60, limits);
    s.subscriptions.set('t/#', sub({ qos: 0, subscriptionId: 5 }));
    s.subscriptions.set('t/+', sub({ qos: 1, retainAsPublished: true }));
    expect(s.enqueueStored(message('m', { qos: 2, retain: true }))).toBe(true);
    expect(s.queue.toArray()[0]).toMatchObject({ qos: 1, retain: true, subscriptionIds: [5] });
  });

  it('drops a message no subscription matches any more, and a duplicate', () => {
    const s = new Session('c', 5, 60, limits);
    s.subscriptions.set('t/a', sub());
    expect(s.enqueueStored(message('x', { topic: 'other' }))).toBe(false);
    expect(s.enqueueStored(message('m'))).toBe(true);
    expect(s.enqueueStored(message('m'))).toBe(false);
    expect(s.queue.length).toBe(1);
  });

  it('respects the queue limit and drop policy', () => {
    const s = new Session('c', 5, 60, { maxQueued: 2, dropPolicy: 'drop-newest' });
    s.subscriptions.set('t/a', sub());
    for (const id of ['1', '2', '3']) s.enqueueStored(message(id));
    expect(s.queue.toArray().map((d) => d.message.id)).toEqual(['1', '2']);
  });
});

describe('Session snapshots', () => {
  function populated(): Session {
    const s = new Session('truck', 5, 3600, limits);
    s.subscriptions.set('t/#', sub({ qos: 2, subscriptionId: 3 }));
    s.subscriptions.set('$share/g/t/a', sub({ qos: 1 }));
    s.inflight.set(7, { packetId: 7, qos: 1, state: 'publish', retain: false, message: message('in1') });
    s.inflight.set(8, { packetId: 8, qos: 2, state: 'pubrel', retain: true, message: message('in2', { qos: 2 }) });
    s.awaitingRel.add(11);
    s.will = { topic: 'w', payload: Buffer.from('bye'), qos: 1, retain: false, properties: undefined, messageExpiryInterval: undefined, delayInterval: 0 };
    s.queue.push({ message: message('q1'), qos: 1, retain: false });
    for (let i = 0; i < 9; i++) s.allocatePacketId();
    return s;
  }

  it('round-trips subscriptions, inflight, awaiting PUBREL, the packet ID counter and the will', () => {
    const s = populated();
    const snap = s.toSnapshot(1234);
    expect(snap.disconnectedAt).toBe(1234);
    const r = Session.fromSnapshot(snap, limits);
    expect([...r.subscriptions]).toEqual([...s.subscriptions]);
    expect([...r.inflight]).toEqual([...s.inflight]);
    expect([...r.awaitingRel]).toEqual([11]);
    expect(r.will).toEqual(s.will);
    expect(r.expiryInterval).toBe(3600);
    expect(r.protocolVersion).toBe(5);
    // the counter continues where it was, skipping inflight IDs
    expect(r.allocatePacketId()).toBe(s.allocatePacketId());
    expect(r.queue.toArray().map((d) => d.message.id)).toEqual(['q1']);
  });

  it('a restored session does not deliver again what is already in flight', () => {
    const r = Session.fromSnapshot(populated().toSnapshot(), limits);
    expect(r.markSeen('in1')).toBe(false);
    expect(r.enqueueStored(message('in2', { qos: 2 }))).toBe(false);
  });

  it('a snapshot is a copy: changing it does not change the session', () => {
    const s = populated();
    const snap = s.toSnapshot();
    snap.inflight[0]!.state = 'pubrel';
    (snap.subscriptions as unknown[]).length = 0;
    expect(s.inflight.get(7)?.state).toBe('publish');
    expect(s.subscriptions.size).toBe(2);
  });
});
