import { describe, expect, it } from 'vitest';
import {
  MemoryMessageBus,
  MemoryNodeLinkHub,
  MemoryNodeRegistry,
  MemoryOfflineQueue,
  MemorySessionOwnership,
  MemorySessionStore,
} from '@fleetmq/adapter-memory';
import { LocalRouter } from '../src/local-router.js';
import { silentLog, type BrokerLog } from '../src/log.js';
import type { Message } from '../src/message.js';
import { OrphanWatcher } from '../src/orphan-watcher.js';
import { rendezvousOwner } from '../src/rendezvous.js';
import { Session } from '../src/session.js';
import { SessionRegistry } from '../src/session-registry.js';
import type { WillMessage } from '../src/session-snapshot.js';
import type { SubscriptionOptions } from '../src/subscription.js';
import { FakeChannel } from './support/fake-channel.js';
import { settle } from './support/harness.js';

// DESIGN node lifecycle: a node dies (no drain, no hand-over); what it leaves is the owner
// records in SessionOwnership and the sessions in the SessionStore. Live nodes adopt them:
// each client ID once, its will published once. A dead node is a node whose registry is no
// longer used and whose bus nobody publishes to (each node here has its own in-process bus,
// sharing the stores as nodes of a cluster do).

const limits = { maxQueued: 100, dropPolicy: 'drop-oldest' as const };
const sub: SubscriptionOptions = { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 };

let seq = 0;
function message(topic: string): Message {
  return { id: `m${seq++}`, topic, payload: Buffer.from(topic), qos: 1, retain: false, createdAt: Date.now() };
}

function will(topic: string, delayInterval = 0): WillMessage {
  return { topic, payload: Buffer.from('offline'), qos: 1, retain: true, delayInterval };
}

/** A log that records the event IDs written at info and above. */
function recordingLog(): BrokerLog & { readonly events: string[] } {
  const events: string[] = [];
  const log: BrokerLog & { readonly events: string[] } = {
    events,
    error: (_f, msg) => void events.push(msg),
    warn: (_f, msg) => void events.push(msg),
    info: (_f, msg) => void events.push(msg),
    debug: () => undefined,
    isLevelEnabled: () => false,
    child: () => log,
  };
  return log;
}

/** Nodes share the stores; with `hub` they also reach each other over an in-process node link. */
function cluster(hub?: MemoryNodeLinkHub) {
  const ownership = new MemorySessionOwnership();
  const store = new MemorySessionStore();
  const offlineQueue = new MemoryOfflineQueue({ maxLength: 100, dropPolicy: 'drop-oldest' });
  /** Every will published, by any node, in order. */
  const wills: { nodeId: string; clientId: string; topic: string }[] = [];

  function node(nodeId: string) {
    const bus = new MemoryMessageBus();
    const router = new LocalRouter(bus);
    const link = hub?.link();
    const registry = new SessionRegistry({
      link,
      takeoverTimeoutMs: 200,
      nodeId,
      router,
      ownership,
      store,
      offlineQueue,
      limits,
      publishWill: async (clientId, w) => {
        wills.push({ nodeId, clientId, topic: w.topic });
      },
      log: silentLog,
    });
    void registry.serve();

    async function connect(clientId: string, o: { cleanStart?: boolean; expiryInterval?: number; will?: WillMessage } = {}) {
      const channel = new FakeChannel(clientId);
      const opened = await registry.open({
        clientId,
        cleanStart: o.cleanStart ?? true,
        protocolVersion: 5,
        expiryInterval: o.expiryInterval ?? 0,
        will: o.will,
        channel,
      });
      channel.session = opened.session;
      router.attach(channel);
      for (const d of opened.session.queue.toArray()) channel.got.push(d.message);
      opened.session.queue.clear();
      return { channel, ...opened };
    }

    async function subscribe(session: Session, filter: string) {
      session.subscriptions.set(filter, sub);
      await router.subscribe(session.clientId, filter, sub);
      await registry.persist(session);
    }

    return { nodeId, bus, router, registry, link, connect, subscribe };
  }

  return { ownership, store, offlineQueue, wills, node };
}

describe('adopting the sessions of a dead node', () => {
  it('a live node adopts a detached session: it captures QoS 1 for the client, who finds it on return', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300 });
    await n1.subscribe(dev.session, 'cmd/#');
    await n1.registry.close(dev.channel, dev.session, { publishWill: true });
    expect(n1.registry.detachedCount).toBe(1);
    n1.registry.shutdown(); // n1 dies

    const n2 = c.node('n2');
    expect(await n2.registry.adoptOrphan('dev', 'n1', Date.now())).toBe(true);
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n2');
    expect(n2.registry.stats.sessionsAdopted).toBe(1);
    expect(n2.registry.detachedCount).toBe(1);

    await n2.bus.publish(message('cmd/reboot'));
    await n2.registry.idle();
    await settle();
    expect((await c.offlineQueue.read('dev', 10)).map((e) => e.message.topic)).toEqual(['cmd/reboot']);

    const back = await n2.connect('dev', { cleanStart: false, expiryInterval: 300 });
    expect(back.present).toBe(true);
    expect(back.channel.got.map((m) => m.topic)).toEqual(['cmd/reboot']);
    // a third node finds nothing left to adopt
    expect(await c.node('n3').registry.adoptOrphan('dev', 'n1', Date.now())).toBe(false);
  });

  it('of several live nodes adopting at once, exactly one takes each client ID and its will is published once', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    for (const id of ['a', 'b', 'c']) await n1.connect(id, { cleanStart: false, expiryInterval: 300, will: will(`status/${id}`) });
    n1.registry.shutdown(); // dies with its three clients connected

    const heirs = ['n2', 'n3', 'n4'].map((id) => c.node(id));
    const results = await Promise.all(['a', 'b', 'c'].flatMap((id) => heirs.map((h) => h.registry.adoptOrphan(id, 'n1', Date.now()))));
    expect(results.filter(Boolean)).toHaveLength(3);
    for (const id of ['a', 'b', 'c']) expect((await c.ownership.owner(id))?.nodeId).not.toBe('n1');
    expect(c.wills.map((w) => w.topic).sort()).toEqual(['status/a', 'status/b', 'status/c']);
  });

  it('a client that ended with its connection (expiry 0) leaves only its will: published once, then nothing is kept', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    await n1.connect('sensor', { will: will('status/sensor') });
    expect(await c.store.load('sensor')).not.toBeNull(); // the will is saved while connected
    n1.registry.shutdown();

    const n2 = c.node('n2');
    expect(await n2.registry.adoptOrphan('sensor', 'n1', Date.now())).toBe(true);
    expect(c.wills).toEqual([{ nodeId: 'n2', clientId: 'sensor', topic: 'status/sensor' }]);
    expect(await c.store.load('sensor')).toBeNull();
    expect(await c.ownership.owner('sensor')).toBeNull();
    expect(n2.registry.detachedCount).toBe(0);
    expect(await c.node('n3').registry.adoptOrphan('sensor', 'n1', Date.now())).toBe(false);
    expect(c.wills).toHaveLength(1);
  });

  it('a client without a will and without a persistent session leaves nothing to adopt', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    await n1.connect('plain');
    expect(await c.store.load('plain')).toBeNull();
    n1.registry.shutdown();
    const n2 = c.node('n2');
    expect(await n2.registry.adoptOrphan('plain', 'n1', Date.now())).toBe(false);
    expect(await c.ownership.owner('plain')).toBeNull();
    expect(c.wills).toEqual([]);
  });

  it('[MQTT-3.1.3-9] a will delay runs from the death: over already, the adopter publishes at once', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    await n1.connect('late', { cleanStart: false, expiryInterval: 300, will: will('status/late', 30) });
    n1.registry.shutdown();
    const n2 = c.node('n2');
    expect(await n2.registry.adoptOrphan('late', 'n1', Date.now() - 31_000)).toBe(true);
    expect(c.wills).toEqual([{ nodeId: 'n2', clientId: 'late', topic: 'status/late' }]);
    // saved without it: nobody publishes it again
    expect((await c.store.load('late'))?.snapshot.will).toBeUndefined();
  });

  it('[MQTT-3.1.3-9] a client returning within the will delay cancels the will of the session its dead node left', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    await n1.connect('back', { cleanStart: false, expiryInterval: 300, will: will('status/back', 30) });
    n1.registry.shutdown();
    const n2 = c.node('n2');
    expect(await n2.registry.adoptOrphan('back', 'n1', Date.now())).toBe(true);
    const again = await n2.connect('back', { cleanStart: false, expiryInterval: 300 });
    expect(again.present).toBe(true);
    await settle();
    expect(c.wills).toEqual([]);
  });

  it('a client reconnecting with clean start before any adoption gets its old will published once, by its new node', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    await n1.connect('ha', { will: will('ha/status') });
    n1.registry.shutdown();
    const n2 = c.node('n2');
    const again = await n2.connect('ha', { will: will('ha/status') });
    expect(again.present).toBe(false);
    expect(c.wills).toEqual([{ nodeId: 'n2', clientId: 'ha', topic: 'ha/status' }]);
    expect(await c.node('n3').registry.adoptOrphan('ha', 'n1', Date.now())).toBe(false);
    expect(c.wills).toHaveLength(1);
  });

  it('a client resuming the persistent session of a dead node: its will is published when the delay is over, not before', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    await n1.connect('quick', { cleanStart: false, expiryInterval: 300, will: will('status/quick', 60) });
    await n1.connect('zero', { cleanStart: false, expiryInterval: 300, will: will('status/zero', 0) });
    n1.registry.shutdown();
    const n2 = c.node('n2');
    expect((await n2.connect('quick', { cleanStart: false, expiryInterval: 300 })).present).toBe(true);
    expect((await n2.connect('zero', { cleanStart: false, expiryInterval: 300 })).present).toBe(true);
    expect(c.wills.map((w) => w.topic)).toEqual(['status/zero']);
  });

  it('a stale detached copy that ends (expiry, discard) leaves the stored session of the newer owner alone', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300 });
    await n1.subscribe(dev.session, 'cmd/#');
    await n1.registry.close(dev.channel, dev.session, { publishWill: true });
    // n2 takes the session over without n1 knowing (no node link): n1 keeps a stale copy
    const n2 = c.node('n2');
    const taken = await n2.connect('dev', { cleanStart: false, expiryInterval: 300 });
    expect(taken.present).toBe(true);
    await c.offlineQueue.append('dev', [message('cmd/for-n2')]);
    expect(await n1.registry.discard('dev')).toBe(true);
    const stored = await c.store.load('dev');
    expect(stored?.epoch).toBe(taken.epoch);
    expect(stored?.snapshot.subscriptions.map(([f]) => f)).toEqual(['cmd/#']);
    expect(await c.offlineQueue.read('dev', 10)).toHaveLength(1);
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n2');
  });

  it('a detached session whose will fired is saved without it: an adopter does not publish it again', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300, will: will('status/dev', 1) });
    await n1.registry.close(dev.channel, dev.session, { publishWill: true });
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // the will delay (1 s) passes on n1
    await n1.registry.idle();
    await settle();
    expect(c.wills).toEqual([{ nodeId: 'n1', clientId: 'dev', topic: 'status/dev' }]);
    n1.registry.shutdown();
    expect(await c.node('n2').registry.adoptOrphan('dev', 'n1', Date.now())).toBe(true);
    expect(c.wills).toHaveLength(1);
  });

  it('a node adopted from while it was cut off (heartbeat lapsed) does not publish the will of the copy it still holds', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300, will: will('status/dev', 1) });
    await n1.registry.close(dev.channel, dev.session, { publishWill: true });
    // n1 is still running, but n2 found it expired and adopted its client IDs
    const n2 = c.node('n2');
    expect(await n2.registry.adoptOrphan('dev', 'n1', Date.now())).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // the will delay passes on both
    await n1.registry.idle();
    await n2.registry.idle();
    await settle();
    expect(c.wills).toEqual([{ nodeId: 'n2', clientId: 'dev', topic: 'status/dev' }]);
    expect(n1.registry.detachedCount).toBe(0); // n1 let go of its stale copy
    expect((await c.store.load('dev'))?.snapshot.will).toBeUndefined();
  });

  it('a node whose heartbeat lapsed lets go of what was adopted from it meanwhile: client closed as taken over, detached copy dropped, no second will, the new owner\'s state untouched', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300, will: will('status/dev') });
    await n1.subscribe(dev.session, 'cmd/dev');
    const det = await n1.connect('det', { cleanStart: false, expiryInterval: 300, will: will('status/det', 60) });
    await n1.subscribe(det.session, 'cmd/det');
    await n1.registry.close(det.channel, det.session, { publishWill: true });
    const kept = await n1.connect('kept', { cleanStart: false, expiryInterval: 300, will: will('status/kept') });
    await n1.subscribe(kept.session, 'cmd/kept');
    expect(n1.router.busSubscriptionCount).toBe(3);

    // n1 is cut off (Redis and the node link) long enough for n2 to adopt two of its client IDs
    const n2 = c.node('n2');
    expect(await n2.registry.adoptOrphan('dev', 'n1', Date.now())).toBe(true);
    expect(await n2.registry.adoptOrphan('det', 'n1', Date.now())).toBe(true);
    expect(c.wills.map((w) => `${w.nodeId} ${w.topic}`)).toEqual(['n2 status/dev']); // det's will delay is not over
    const stored = { dev: await c.store.load('dev'), det: await c.store.load('det') };

    // n1 is back: it re-registers and reconciles
    expect(await n1.registry.reconcileOwnership()).toEqual({ closed: 1, dropped: 1 });
    expect(dev.channel.takenOver).toBe(true);
    expect(n1.registry.isConnected('dev')).toBe(false);
    expect(n1.registry.detachedCount).toBe(0);
    expect(n1.registry.stats.sessionsLost).toBe(2);
    // what is still its own stays
    expect(kept.channel.takenOver).toBe(false);
    expect(n1.registry.isConnected('kept')).toBe(true);
    expect((await c.ownership.owner('kept'))?.nodeId).toBe('n1');
    expect(n1.router.busSubscriptionCount).toBe(1);
    expect(n1.router.subscriberOf('dev')).toBeUndefined();
    expect(n1.router.subscriberOf('det')).toBeUndefined();

    // the closed connection ends without a will from n1, and n1 captures nothing for them any more
    await n1.registry.close(dev.channel, dev.session, { publishWill: true });
    await n1.bus.publish(message('cmd/det'));
    await n1.registry.idle();
    await settle();
    expect(await c.offlineQueue.read('det', 10)).toEqual([]);
    expect(c.wills.map((w) => `${w.nodeId} ${w.topic}`)).toEqual(['n2 status/dev']);
    // n2's ownership and stored sessions are as n2 left them
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n2');
    expect((await c.ownership.owner('det'))?.nodeId).toBe('n2');
    expect(await c.store.load('dev')).toEqual(stored.dev);
    expect(await c.store.load('det')).toEqual(stored.det);
    // a second pass finds nothing more
    expect(await n1.registry.reconcileOwnership()).toEqual({ closed: 0, dropped: 0 });
  });

  it('a client of a node adopted from that goes away before its node reconciles: no second will, the adopter\'s state untouched', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const n2 = c.node('n2');
    const plain = await n1.connect('plain', { will: will('status/plain') });
    const kept = await n1.connect('kept', { cleanStart: false, expiryInterval: 300, will: will('status/kept') });
    // n1 paused beyond its TTL: n2 adopted both, published both wills
    expect(await n2.registry.adoptOrphan('plain', 'n1', Date.now())).toBe(true);
    expect(await n2.registry.adoptOrphan('kept', 'n1', Date.now())).toBe(true);
    const adopted = await c.store.load('kept');
    // n1 runs again; its timers close both connections before it reconciles
    await n1.registry.close(plain.channel, plain.session, { publishWill: true });
    await n1.registry.close(kept.channel, kept.session, { publishWill: true });
    await n1.registry.idle();
    await settle();
    expect(c.wills.map((w) => `${w.nodeId} ${w.topic}`).sort()).toEqual(['n2 status/kept', 'n2 status/plain']);
    expect(n1.registry.detachedCount).toBe(0);
    expect((await c.ownership.owner('kept'))?.nodeId).toBe('n2');
    expect(await c.store.load('kept')).toEqual(adopted);
  });

  it('reconciling with no owner record (Redis lost its data): a connected client is let go, a detached session keeps capturing', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300 });
    const det = await n1.connect('det', { cleanStart: false, expiryInterval: 300 });
    await n1.subscribe(det.session, 'cmd/det');
    await n1.registry.close(det.channel, det.session, { publishWill: false });
    for (const id of ['dev', 'det']) await c.ownership.release(id, (await c.ownership.owner(id))!.epoch);
    expect(await n1.registry.reconcileOwnership()).toEqual({ closed: 1, dropped: 0 });
    expect(dev.channel.takenOver).toBe(true);
    expect(n1.registry.detachedCount).toBe(1);
    await n1.bus.publish(message('cmd/det'));
    await n1.registry.idle();
    await settle();
    expect((await c.offlineQueue.read('det', 10)).map((q) => q.message.topic)).toEqual(['cmd/det']);
  });

  it('a session resuming from the stores removes what it read of the offline queue, not what a copy elsewhere appended meanwhile', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const det = await n1.connect('det', { cleanStart: false, expiryInterval: 300 });
    await n1.subscribe(det.session, 'cmd/det');
    await n1.registry.close(det.channel, det.session, { publishWill: false });
    const first = message('cmd/det');
    const late = message('cmd/det');
    await n1.bus.publish(first);
    await n1.registry.idle();
    await settle();
    // another node resumes it from the stores while a copy still captures: the copy's append
    // lands after the new owner's last read
    const read = c.offlineQueue.read.bind(c.offlineQueue);
    let appended = false;
    c.offlineQueue.read = async (clientId, limit, after) => {
      const batch = await read(clientId, limit, after);
      if (batch.length === 0 && !appended) {
        appended = true;
        await c.offlineQueue.append('det', [late]);
      }
      return batch;
    };
    const n2 = c.node('n2');
    const back = await n2.connect('det', { cleanStart: false, expiryInterval: 300 });
    expect(back.channel.got.map((m) => m.id)).toEqual([first.id]);
    expect((await c.offlineQueue.read('det', 10)).map((q) => q.message.id)).toEqual([late.id]);
  });

  it('reconciling keeps what it cannot check: with the ownership store unreachable, nothing is let go', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300 });
    await c.ownership.claimFrom('dev', 'n2', 'n1');
    await c.ownership.close(); // unreachable from here on
    expect(await n1.registry.reconcileOwnership()).toEqual({ closed: 0, dropped: 0 });
    expect(dev.channel.takenOver).toBe(false);
    expect(n1.registry.isConnected('dev')).toBe(true);
  });

  it('the session of a client that disconnected normally ends with it: the owner record is released', async () => {
    const c = cluster();
    const n1 = c.node('n1');
    const s = await n1.connect('brief', { will: will('status/brief') });
    await n1.registry.close(s.channel, s.session, { publishWill: false });
    expect(await c.ownership.owner('brief')).toBeNull();
    expect((await c.ownership.ownedBy('n1', '0', 10)).clientIds).toEqual([]);
    expect(await c.store.load('brief')).toBeNull();
  });
});

describe('OrphanWatcher', () => {
  function registryWithClock(ttlMs = 1_000) {
    let now = 1_000_000;
    const nodes = new MemoryNodeRegistry({ ttlMs, retainExpiredMs: 60_000, now: () => now });
    return { nodes, advance: (ms: number) => (now += ms), now: () => now };
  }

  it('live nodes split a dead node\'s client IDs by rendezvous hashing and adopt each exactly once', async () => {
    const c = cluster();
    const clock = registryWithClock();
    const n1 = c.node('n1');
    const ids = Array.from({ length: 24 }, (_, i) => `dev-${i}`);
    for (const id of ids) {
      const s = await n1.connect(id, { cleanStart: false, expiryInterval: 300 });
      await n1.subscribe(s.session, `cmd/${id}`);
      await n1.registry.close(s.channel, s.session, { publishWill: true });
    }
    for (const id of ['n1', 'n2', 'n3']) await clock.nodes.register(id, { startedAt: clock.now() });
    n1.registry.shutdown(); // n1 dies: it stops beating
    const heirs = ['n2', 'n3'].map((id) => c.node(id));
    const watchers = heirs.map(
      (h) => new OrphanWatcher({ nodeId: h.nodeId, nodes: clock.nodes, ownership: c.ownership, sessions: h.registry, log: silentLog, now: clock.now }),
    );
    await Promise.all(watchers.map((w) => w.poll())); // all live: nothing to do
    expect(heirs.map((h) => h.registry.detachedCount)).toEqual([0, 0]);

    clock.advance(1_500);
    for (const id of ['n2', 'n3']) await clock.nodes.register(id, { startedAt: clock.now() });
    await Promise.all(watchers.map((w) => w.poll()));
    for (const id of ids) {
      const owner = await c.ownership.owner(id);
      expect(owner?.nodeId).toBe(rendezvousOwner(id, ['n2', 'n3']));
    }
    expect(heirs[0]!.registry.detachedCount + heirs[1]!.registry.detachedCount).toBe(ids.length);
    expect(heirs[0]!.registry.detachedCount).toBeGreaterThan(0);
    expect(heirs[1]!.registry.detachedCount).toBeGreaterThan(0);
    expect(watchers[0]!.stats.adopted + watchers[1]!.stats.adopted).toBe(ids.length);
    // another pass adopts nothing twice
    await Promise.all(watchers.map((w) => w.poll()));
    expect(watchers[0]!.stats.adopted + watchers[1]!.stats.adopted).toBe(ids.length);
  });

  it('does not act on expiries until it has been live itself for a TTL (after an outage of its own, every peer looks dead)', async () => {
    const c = cluster();
    const clock = registryWithClock();
    const n1 = c.node('n1');
    const s = await n1.connect('dev', { cleanStart: false, expiryInterval: 300 });
    await n1.registry.close(s.channel, s.session, { publishWill: true });
    await clock.nodes.register('n1', { startedAt: clock.now() });
    clock.advance(1_500); // n1 expired
    const n2 = c.node('n2');
    await clock.nodes.register('n2', { startedAt: clock.now() });
    const watcher = new OrphanWatcher({ nodeId: 'n2', nodes: clock.nodes, ownership: c.ownership, sessions: n2.registry, log: silentLog, now: clock.now });
    await watcher.poll();
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n1');
    clock.advance(600);
    await clock.nodes.heartbeat('n2');
    await watcher.poll();
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n1');
    clock.advance(600);
    await clock.nodes.heartbeat('n2');
    await watcher.poll();
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n2');
  });

  it('does not adopt from an expired node that still answers over the node link; once it stops answering, it does', async () => {
    const c = cluster(new MemoryNodeLinkHub());
    const clock = registryWithClock();
    const n1 = c.node('n1');
    const dev = await n1.connect('dev', { cleanStart: false, expiryInterval: 300, will: will('status/dev') });
    for (const id of ['n1', 'n2']) await clock.nodes.register(id, { startedAt: clock.now() });
    const n2 = c.node('n2');
    const log = recordingLog();
    const watcher = new OrphanWatcher({ nodeId: 'n2', nodes: clock.nodes, ownership: c.ownership, sessions: n2.registry, log, now: clock.now });
    await watcher.poll();
    clock.advance(1_500); // n1's heartbeat lapsed (Redis out of its reach), but it runs and answers
    await clock.nodes.register('n2', { startedAt: clock.now() });
    await watcher.poll();
    await watcher.poll();
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n1');
    expect(dev.channel.takenOver).toBe(false);
    expect(n1.registry.isConnected('dev')).toBe(true);
    expect(c.wills).toEqual([]);
    expect(watcher.stats.adopted).toBe(0);
    expect(log.events.filter((e) => e === 'node_expired_but_answering')).toHaveLength(1); // once per node, not per pass

    await n1.link!.close(); // now it is gone
    n1.registry.shutdown();
    await watcher.poll();
    expect((await c.ownership.owner('dev'))?.nodeId).toBe('n2');
    expect(watcher.stats.adopted).toBe(1);
    expect(c.wills.map((w) => `${w.nodeId} ${w.topic}`)).toEqual(['n2 status/dev']);
  });

  it('a node restarted under the same ID adopts what its last run left, at once', async () => {
    const c = cluster();
    const clock = registryWithClock();
    const before = c.node('n1');
    const s = await before.connect('dev', { cleanStart: false, expiryInterval: 300 });
    await before.subscribe(s.session, 'cmd/#');
    await before.registry.close(s.channel, s.session, { publishWill: true });
    before.registry.shutdown(); // the process ends; a new one starts with the same node ID
    const after = c.node('n1');
    await clock.nodes.register('n1', { startedAt: clock.now() });
    const watcher = new OrphanWatcher({ nodeId: 'n1', nodes: clock.nodes, ownership: c.ownership, sessions: after.registry, log: silentLog, now: clock.now });
    await watcher.poll();
    expect(after.registry.detachedCount).toBe(1);
    await after.bus.publish(message('cmd/x'));
    await after.registry.idle();
    await settle();
    expect(await c.offlineQueue.read('dev', 10)).toHaveLength(1);
  });
});
