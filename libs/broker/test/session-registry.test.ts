import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  MemoryMessageBus,
  MemoryOfflineQueue,
  MemorySessionOwnership,
  MemorySessionStore,
} from '@fleetmq/adapter-memory';
import { LocalRouter } from '../src/local-router.js';
import { silentLog } from '../src/log.js';
import type { Message } from '../src/message.js';
import { Session } from '../src/session.js';
import { SessionRegistry, type OpenRequest } from '../src/session-registry.js';
import type { WillMessage } from '../src/session-snapshot.js';
import type { SubscriptionOptions } from '../src/subscription.js';
import { FakeChannel } from './support/fake-channel.js';
import { settle } from './support/harness.js';

const limits = { maxQueued: 100, dropPolicy: 'drop-oldest' as const };
const NEVER = 0xffffffff;

let seq = 0;
function message(topic: string, over: Partial<Message> = {}): Message {
  return { id: `m${seq++}`, topic, payload: Buffer.from(topic), qos: 1, retain: false, createdAt: Date.now(), ...over };
}

function subOpts(over: Partial<SubscriptionOptions> = {}): SubscriptionOptions {
  return { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, ...over };
}

function will(topic = 'will/x', delayInterval = 0): WillMessage {
  return { topic, payload: Buffer.from('bye'), qos: 1, retain: false, delayInterval };
}

function setup() {
  const bus = new MemoryMessageBus();
  const ownership = new MemorySessionOwnership();
  const store = new MemorySessionStore();
  const offlineQueue = new MemoryOfflineQueue({ maxLength: 100, dropPolicy: 'drop-oldest' });
  const router = new LocalRouter(bus);
  const wills: { clientId: string; will: WillMessage }[] = [];
  const registry = new SessionRegistry({
    nodeId: 'n1',
    router,
    ownership,
    store,
    offlineQueue,
    limits,
    publishWill: async (clientId, w) => {
      wills.push({ clientId, will: w });
    },
    log: silentLog,
  });

  /** Opens like a channel does: open, then attach as the receiver. */
  async function connect(clientId: string, o: Partial<Omit<OpenRequest, 'clientId' | 'channel'>> = {}) {
    const channel = new FakeChannel(clientId);
    const opened = await registry.open({
      clientId,
      cleanStart: o.cleanStart ?? true,
      protocolVersion: o.protocolVersion ?? 5,
      expiryInterval: o.expiryInterval ?? 0,
      will: o.will,
      channel,
    });
    channel.session = opened.session;
    router.attach(channel);
    // what was buffered while opening goes to the channel, as Channel.pump does
    for (const d of opened.session.queue.toArray()) channel.got.push(d.message);
    opened.session.queue.clear();
    return { channel, ...opened };
  }

  async function subscribe(session: Session, filter: string, options = subOpts()) {
    session.subscriptions.set(filter, options);
    await router.subscribe(session.clientId, filter, options);
  }

  return { bus, ownership, store, offlineQueue, router, registry, wills, connect, subscribe };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SessionRegistry.open', () => {
  it('opens a new session (not present) and claims ownership with a new epoch each time (DESIGN invariant 2)', async () => {
    const t = setup();
    const a = await t.connect('c1');
    expect(a.present).toBe(false);
    expect(a.session.clientId).toBe('c1');
    expect(t.registry.isConnected('c1')).toBe(true);
    expect(t.registry.connectedCount).toBe(1);
    expect(await t.ownership.owner('c1')).toEqual({ nodeId: 'n1', epoch: a.epoch });
    const b = await t.connect('c1');
    expect(b.epoch).toBeGreaterThan(a.epoch);
  });

  it('[MQTT-3.1.4-3] takes over a connected session: the old channel is told, the session is handed on', async () => {
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    await t.subscribe(a.session, 'x/#');
    const b = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    expect(a.channel.takenOver).toBe(true);
    expect(b.present).toBe(true);
    expect(b.session).toBe(a.session);
    expect(t.registry.stats.takeovers).toBe(1);
    await t.bus.publish(message('x/1'));
    expect(b.channel.got.map((m) => m.topic)).toEqual(['x/1']);
    expect(a.channel.got).toEqual([]);
    // the old channel's late close changes nothing
    await t.registry.close(a.channel, a.session, { publishWill: true });
    expect(t.registry.isConnected('c1')).toBe(true);
    expect(t.registry.detachedCount).toBe(0);
  });

  it('a takeover with Clean Start discards the old session and publishes its will (the session ended)', async () => {
    const t = setup();
    const a = await t.connect('c1', { expiryInterval: 60, will: will('will/c1') });
    await t.subscribe(a.session, 'x/#');
    const b = await t.connect('c1', { cleanStart: true });
    expect(b.present).toBe(false);
    expect(b.session).not.toBe(a.session);
    expect(b.session.subscriptions.size).toBe(0);
    expect(t.router.busSubscriptionCount).toBe(0);
    await settle();
    expect(t.wills.map((w) => w.will.topic)).toEqual(['will/c1']);
  });

  it('messages arriving while the session is being opened are kept for the new channel', async () => {
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    await t.subscribe(a.session, 'x');
    await t.registry.close(a.channel, a.session, { publishWill: false });
    // a message arrives between the claim and the new channel attaching
    const claim = t.ownership.claim.bind(t.ownership);
    vi.spyOn(t.ownership, 'claim').mockImplementation(async (id, node) => {
      const r = await claim(id, node);
      await t.bus.publish(message('x', { id: 'during-claim' }));
      return r;
    });
    const b = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    expect(b.present).toBe(true);
    expect(b.channel.got.map((m) => m.id)).toEqual(['during-claim']);
  });

  it('a message both in the offline queue and delivered while opening is delivered once (DESIGN invariant 3)', async () => {
    const t = setup();
    // a session another node saved, with a message it queued offline
    const other = new Session('roam', 5, 60, limits);
    other.subscriptions.set('d/#', subOpts());
    await t.store.save(other.toSnapshot(Date.now()), 1);
    const m = message('d/1', { id: 'same-id' });
    await t.offlineQueue.append('roam', [m, message('d/2', { id: 'only-queued' })]);
    // the same message reaches this node through the bus just before the queue is read
    const read = t.offlineQueue.read.bind(t.offlineQueue);
    let once = false;
    vi.spyOn(t.offlineQueue, 'read').mockImplementation(async (id, limit, after) => {
      if (!once) {
        once = true;
        await t.bus.publish(m);
      }
      return read(id, limit, after);
    });
    const b = await t.connect('roam', { cleanStart: false, expiryInterval: 60 });
    expect(b.present).toBe(true);
    expect(b.channel.got.map((x) => x.id).sort()).toEqual(['only-queued', 'same-id']);
    expect(await t.offlineQueue.length('roam')).toBe(0);
  });

  it('a detached session whose offline append failed keeps appending what comes after (in few calls, in order)', async () => {
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    await t.subscribe(a.session, 'x/#');
    await t.registry.close(a.channel, a.session, { publishWill: false });
    const append = t.offlineQueue.append.bind(t.offlineQueue);
    let calls = 0;
    vi.spyOn(t.offlineQueue, 'append').mockImplementation(async (id, messages) => {
      calls++;
      if (calls === 1) throw new Error('store down for a moment');
      return append(id, messages);
    });
    await t.bus.publish(message('x/lost', { id: 'lost' }));
    await settle();
    for (let i = 0; i < 5; i++) await t.bus.publish(message('x/after', { id: `after-${i}` }));
    await settle();
    expect(calls).toBeLessThanOrEqual(3);
    const b = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    expect(b.channel.got.map((m) => m.id)).toEqual(['after-0', 'after-1', 'after-2', 'after-3', 'after-4']);
  });

  it('Clean Start removes a session another node left in the store, and its offline queue', async () => {
    const t = setup();
    const other = new Session('gone', 5, 60, limits);
    await t.store.save(other.toSnapshot(Date.now()), 1);
    await t.offlineQueue.append('gone', [message('x')]);
    const b = await t.connect('gone', { cleanStart: true });
    expect(b.present).toBe(false);
    expect(await t.store.load('gone')).toBeNull();
    expect(await t.offlineQueue.length('gone')).toBe(0);
  });
});

describe('SessionRegistry.close', () => {
  it('a session with expiry 0 ends with its connection: subscriptions and store entry are removed', async () => {
    const t = setup();
    const a = await t.connect('c1');
    await t.subscribe(a.session, 'x');
    await t.registry.close(a.channel, a.session, { publishWill: false });
    expect(t.registry.isConnected('c1')).toBe(false);
    expect(t.registry.detachedCount).toBe(0);
    expect(t.router.busSubscriptionCount).toBe(0);
    expect(await t.store.load('c1')).toBeNull();
  });

  it('a persistent session is detached and saved with its subscriptions', async () => {
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    await t.subscribe(a.session, 'x/#');
    await t.registry.close(a.channel, a.session, { publishWill: false });
    expect(t.registry.detachedCount).toBe(1);
    const stored = await t.store.load('c1');
    expect(stored?.epoch).toBe(a.epoch);
    expect(stored?.snapshot.subscriptions.map(([f]) => f)).toEqual(['x/#']);
    expect(typeof stored?.snapshot.disconnectedAt).toBe('number');
  });

  it('(4.1) a detached session queues QoS 1/2 messages offline and drops QoS 0', async () => {
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    await t.subscribe(a.session, 'x');
    await t.registry.close(a.channel, a.session, { publishWill: false });
    await t.bus.publish(message('x', { qos: 1 }));
    await t.bus.publish(message('x', { qos: 0 }));
    await t.bus.publish(message('x', { qos: 2 }));
    await settle();
    expect(await t.offlineQueue.length('c1')).toBe(2);
    expect(t.registry.stats.offlineQueued).toBe(2);
    expect(t.registry.stats.offlineDropped).toBe(1);
    expect(a.channel.got).toEqual([]);
    const b = await t.connect('c1', { cleanStart: false, expiryInterval: 60 });
    expect(b.channel.got.map((m) => m.qos)).toEqual([1, 2]);
  });

  it('counts offline messages dropped by the queue limit', async () => {
    const t = setup();
    const small = new MemoryOfflineQueue({ maxLength: 1, dropPolicy: 'drop-newest' });
    const registry = new SessionRegistry({
      nodeId: 'n1',
      router: t.router,
      ownership: t.ownership,
      store: t.store,
      offlineQueue: small,
      limits,
      publishWill: async () => undefined,
      log: silentLog,
    });
    const channel = new FakeChannel('c1');
    const opened = await registry.open({ clientId: 'c1', cleanStart: true, protocolVersion: 5, expiryInterval: 60, will: undefined, channel });
    await t.subscribe(opened.session, 'x');
    await registry.close(channel, opened.session, { publishWill: false });
    for (let i = 0; i < 3; i++) await t.bus.publish(message('x'));
    await settle();
    expect(await small.length('c1')).toBe(1);
    expect(registry.stats.offlineDropped).toBe(2);
  });

  it('[MQTT-3.1.2-8] publishes the will when asked, not when not', async () => {
    const t = setup();
    const a = await t.connect('a', { will: will('will/a') });
    await t.registry.close(a.channel, a.session, { publishWill: true });
    const b = await t.connect('b', { will: will('will/b') });
    await t.registry.close(b.channel, b.session, { publishWill: false });
    await settle();
    expect(t.wills.map((w) => w.clientId)).toEqual(['a']);
    expect(t.registry.stats.willsPublished).toBe(1);
  });
});

describe('SessionRegistry timers', () => {
  it('(3.1.2.11.2) a detached session expires after its Session Expiry Interval', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 30 });
    await t.subscribe(a.session, 'x');
    await t.registry.close(a.channel, a.session, { publishWill: false });
    await t.bus.publish(message('x'));
    await settle();
    expect(await t.offlineQueue.length('c1')).toBe(1);
    vi.advanceTimersByTime(29_000);
    await settle();
    expect(t.registry.detachedCount).toBe(1);
    vi.advanceTimersByTime(1_000);
    await settle();
    expect(t.registry.detachedCount).toBe(0);
    expect(t.registry.stats.sessionsExpired).toBe(1);
    expect(t.router.busSubscriptionCount).toBe(0);
    expect(await t.store.load('c1')).toBeNull();
    expect(await t.offlineQueue.length('c1')).toBe(0);
    const b = await t.connect('c1', { cleanStart: false, expiryInterval: 30 });
    expect(b.present).toBe(false);
  });

  it('a reconnect before expiry cancels the expiry', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 10 });
    await t.subscribe(a.session, 'x');
    await t.registry.close(a.channel, a.session, { publishWill: false });
    vi.advanceTimersByTime(5_000);
    const b = await t.connect('c1', { cleanStart: false, expiryInterval: 10 });
    expect(b.present).toBe(true);
    vi.advanceTimersByTime(60_000);
    await settle();
    expect(t.registry.stats.sessionsExpired).toBe(0);
    expect(t.registry.isConnected('c1')).toBe(true);
    expect(b.session.subscriptions.has('x')).toBe(true);
  });

  it('an expiry longer than the longest Node.js timer re-arms instead of firing early', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const t = setup();
    const days30 = 30 * 24 * 3600;
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: days30 });
    await t.registry.close(a.channel, a.session, { publishWill: false });
    vi.advanceTimersByTime(2 ** 31);
    await settle();
    expect(t.registry.detachedCount).toBe(1);
    vi.advanceTimersByTime(days30 * 1000 - 2 ** 31 + 1);
    await settle();
    expect(t.registry.detachedCount).toBe(0);
  });

  it('0xFFFFFFFF never expires (no timer)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: NEVER });
    await t.registry.close(a.channel, a.session, { publishWill: false });
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * 365 * 24 * 3600 * 1000);
    await settle();
    expect(t.registry.detachedCount).toBe(1);
  });

  it('[MQTT-3.1.3-9] a delayed will fires after its delay and only once; expiry later does not fire it again', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 20, will: will('will/c1', 5) });
    await t.registry.close(a.channel, a.session, { publishWill: true });
    vi.advanceTimersByTime(4_999);
    await settle();
    expect(t.wills).toEqual([]);
    vi.advanceTimersByTime(1);
    await settle();
    expect(t.wills).toHaveLength(1);
    vi.advanceTimersByTime(20_000);
    await settle();
    expect(t.registry.stats.sessionsExpired).toBe(1);
    expect(t.wills).toHaveLength(1);
  });

  it('DESIGN invariant 6: a pending will is stored with the detached session, for another node to publish', async () => {
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 600, will: will('will/c1', 300) });
    await t.registry.close(a.channel, a.session, { publishWill: true });
    const stored = await t.store.load('c1');
    expect(stored?.snapshot.will?.topic).toBe('will/c1');
    // without a delay it is published at once and not stored
    const b = await t.connect('c2', { cleanStart: false, expiryInterval: 600, will: will('will/c2', 0) });
    await t.registry.close(b.channel, b.session, { publishWill: true });
    expect((await t.store.load('c2'))?.snapshot.will).toBeUndefined();
    await settle();
    expect(t.wills.map((w) => w.clientId)).toEqual(['c2']);
  });

  it('shutdown stops every timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const t = setup();
    const a = await t.connect('c1', { cleanStart: false, expiryInterval: 5, will: will('will/c1', 2) });
    await t.registry.close(a.channel, a.session, { publishWill: true });
    t.registry.shutdown();
    vi.advanceTimersByTime(60_000);
    await settle();
    expect(t.registry.detachedCount).toBe(1);
    expect(t.wills).toEqual([]);
  });
});
