import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, ReasonCode } from '@fleetmq/protocol';
import { MemoryNodeLinkHub, MemoryOfflineQueue } from '@fleetmq/adapter-memory';
import type { NodeReply, NodeRequest } from '../src/index.js';
import { payloads, settle, useHarness } from './support/harness.js';

// Two brokers sharing one set of in-process ports (bus, ownership, stores) and one node link:
// two nodes of a cluster. DESIGN invariants 2 and 3.

const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };

describe('session takeover between nodes', () => {
  const harness = useHarness();

  async function twoNodes() {
    const hub = new MemoryNodeLinkHub();
    const a = harness({ nodeId: 'a', linkHub: hub });
    const b = harness({ nodeId: 'b', ports: a.ports, linkHub: hub });
    await a.broker.start();
    await b.broker.start();
    return { a, b, hub };
  }

  it('[MQTT-3.1.4-3] a CONNECT on node B closes the client on node A with 0x8E and inherits its session', async () => {
    const { a, b } = await twoNodes();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    const second = b.client();
    const connack = await second.connect({ clientId: 'roam', ...persistent });
    expect(connack.sessionPresent).toBe(true);
    expect(first.next('disconnect').reasonCode).toBe(ReasonCode.SessionTakenOver);
    expect(first.closed).toBe(true);
    expect(b.broker.registry.stats.takeovers).toBe(1);
    const pub = await a.connect({ clientId: 'pub' });
    await pub.publish('p/x', 'after', { qos: 1 });
    await settle();
    expect(payloads(second.publishes())).toEqual(['after']);
    expect(first.publishes()).toEqual([]);
    // node A no longer routes anything for the client
    expect(a.broker.registry.connectedCount).toBe(1); // only the publisher
    expect(a.broker.registry.detachedCount).toBe(0);
  });

  it('what node A sent and the client did not acknowledge is resent by node B with DUP', async () => {
    const { a, b } = await twoNodes();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    const pub = await a.connect({ clientId: 'pub' });
    await pub.publish('p/x', 'unacked', { qos: 1 });
    const [sent] = first.publishes();
    const second = await b.connect({ clientId: 'roam', ...persistent });
    const [resent] = second.publishes();
    expect(resent).toMatchObject({ dup: true, messageId: sent!.messageId, topic: 'p/x' });
  });

  it('DESIGN invariant 3: a message published between the two steps of the takeover is delivered once', async () => {
    const hub = new MemoryNodeLinkHub();
    const a = harness({ nodeId: 'a', linkHub: hub });
    const b = harness({ nodeId: 'b', ports: a.ports, linkHub: hub });
    await a.broker.start();
    await b.broker.start();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    const pub = await a.connect({ clientId: 'pub' });
    // node A's answer to takeover-begin is followed by a publish before takeover-end
    const serveA = hub.handlers.get('a')!;
    const seen: string[] = [];
    hub.handlers.set('a', async (request: NodeRequest): Promise<NodeReply> => {
      seen.push(request.type);
      const reply = await serveA(request);
      if (request.type === 'takeover-begin') await pub.publish('p/x', 'in-between', { qos: 1 });
      return reply;
    });
    const second = await b.connect({ clientId: 'roam', ...persistent });
    await settle();
    expect(seen).toEqual(['takeover-begin', 'takeover-end']);
    expect(payloads(second.publishes())).toEqual(['in-between']);
    await pub.publish('p/x', 'after', { qos: 1 });
    await settle();
    expect(payloads(second.publishes())).toEqual(['after']);
  });

  it('a session detached on node A brings what it captured offline to node B, once', async () => {
    const { a, b } = await twoNodes();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    await first.drop();
    await settle();
    expect(a.broker.registry.detachedCount).toBe(1);
    const pub = await a.connect({ clientId: 'pub' });
    for (const m of ['o1', 'o2', 'o3']) await pub.publish('p/x', m, { qos: 1 });
    await settle();
    const second = b.client();
    expect((await second.connect({ clientId: 'roam', ...persistent })).sessionPresent).toBe(true);
    await settle();
    expect(payloads(second.publishes())).toEqual(['o1', 'o2', 'o3']);
    expect(a.broker.registry.detachedCount).toBe(0);
    await pub.publish('p/x', 'o4', { qos: 1 });
    await settle();
    expect(payloads(second.publishes())).toEqual(['o4']);
    expect(await a.ports.offlineQueue.length('roam')).toBe(0);
  });

  it('DESIGN invariant 3: what a client left queued on node A (not yet sent) when its connection dropped reaches node B', async () => {
    const { a, b } = await twoNodes();
    const first = await a.connect({ clientId: 'roam', ...persistent, properties: { ...persistent.properties, receiveMaximum: 1 } });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    const pub = await a.connect({ clientId: 'pub' });
    for (const m of ['q1', 'q2', 'q3']) await pub.publish('p/x', m, { qos: 1 });
    await settle();
    expect(payloads(first.publishes())).toEqual(['q1']); // q2 and q3 wait in the session's queue
    await first.drop();
    await settle();
    expect(a.broker.registry.detachedCount).toBe(1);
    const second = b.client();
    expect((await second.connect({ clientId: 'roam', ...persistent })).sessionPresent).toBe(true);
    await settle();
    expect(payloads(second.publishes())).toEqual(['q1', 'q2', 'q3']);
  });

  it('DESIGN invariant 3: a message that arrives on node A while it reads the offline queue of a detached session it hands over reaches node B', async () => {
    const hub = new MemoryNodeLinkHub();
    const a = harness({ nodeId: 'a', linkHub: hub });
    const b = harness({ nodeId: 'b', ports: a.ports, linkHub: hub });
    await a.broker.start();
    await b.broker.start();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    await first.drop();
    await settle();
    const pub = await a.connect({ clientId: 'pub' });
    await pub.publish('p/x', 'before', { qos: 1 });
    await settle();
    // node A's first read of the offline queue (at takeover-begin) waits, as a remote store's does
    const queue = a.ports.offlineQueue;
    const read = queue.read.bind(queue);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reading = false;
    queue.read = async (...args: Parameters<typeof read>) => {
      if (!reading) {
        reading = true;
        await gate;
      }
      return read(...args);
    };
    const second = b.client();
    const connecting = second.connect({ clientId: 'roam', ...persistent });
    await settle();
    expect(reading).toBe(true);
    await pub.publish('p/x', 'while-reading', { qos: 1 });
    await settle();
    release();
    expect((await connecting).sessionPresent).toBe(true);
    await settle();
    expect(payloads(second.publishes())).toEqual(['before', 'while-reading']);
  });

  it('DESIGN invariant 3: more messages between the two steps of a takeover than the window of recent IDs still arrive once each', async () => {
    const hub = new MemoryNodeLinkHub();
    const a = harness({ nodeId: 'a', linkHub: hub });
    const b = harness({ nodeId: 'b', ports: a.ports, linkHub: hub });
    await a.broker.start();
    await b.broker.start();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    const pub = await a.connect({ clientId: 'pub' });
    // before node A answers takeover-end, node B is subscribed too: each of these 600 messages
    // reaches node B twice, through the bus and in node A's buffer
    const serveA = hub.handlers.get('a')!;
    const sent: string[] = [];
    hub.handlers.set('a', async (request: NodeRequest): Promise<NodeReply> => {
      if (request.type === 'takeover-end') {
        for (let i = 0; i < 600; i++) {
          sent.push(`m${i}`);
          await pub.publish('p/x', `m${i}`, { qos: 1 });
        }
      }
      return serveA(request);
    });
    const second = b.client();
    expect((await second.connect({ clientId: 'roam', ...persistent })).sessionPresent).toBe(true);
    await settle();
    const got = payloads(second.publishes());
    expect(got).toHaveLength(600);
    expect([...got].sort()).toEqual([...sent].sort());
  });

  /**
   * Node B takes 'roam' over from node A; 'stranded' arrives between the two steps (only node
   * A's buffer has it), and node A's answer to takeover-end is lost: node B stops waiting and
   * opens the session without it. Node A answers as usual again afterwards.
   */
  async function strandedTakeover() {
    const { a, b, hub } = await twoNodes();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    const pub = await a.connect({ clientId: 'pub' });
    const serveA = hub.handlers.get('a')!;
    hub.handlers.set('a', async (request: NodeRequest): Promise<NodeReply> => {
      if (request.type === 'takeover-end') return new Promise<NodeReply>(() => undefined);
      const reply = await serveA(request);
      if (request.type === 'takeover-begin') await pub.publish('p/x', 'stranded', { qos: 1 });
      return reply;
    });
    const second = await b.connect({ clientId: 'roam', ...persistent });
    await settle();
    hub.handlers.set('a', serveA);
    return { a, b, hub, pub, second };
  }

  it('DESIGN invariant 1: what the old owner buffered for a takeover-end that never came reaches the new owner\'s connected client, not the offline queue', async () => {
    const { a, pub, second } = await strandedTakeover();
    expect(payloads(second.publishes())).toEqual([]);
    // node A gives up on node B (its drain here; the handover limit otherwise)
    await a.broker.registry.settleHandovers(0);
    await settle();
    expect(payloads(second.publishes())).toEqual(['stranded']);
    expect(await a.ports.offlineQueue.read('roam', 10)).toEqual([]);
    // and once only: the bus brings the next message, nothing brings this one again
    await pub.publish('p/x', 'after', { qos: 1 });
    await settle();
    expect(payloads(second.publishes())).toEqual(['after']);
  }, 10_000);

  it('DESIGN invariant 1: an abandoned buffer whose client no node holds goes to the offline queue, and the client finds it', async () => {
    const { a, b, hub, second } = await strandedTakeover();
    // node B does not answer when node A gives up: nobody takes the buffer over the link
    const serveB = hub.handlers.get('b')!;
    hub.handlers.delete('b');
    await a.broker.registry.settleHandovers(0);
    expect((await a.ports.offlineQueue.read('roam', 10)).map((e) => e.message.payload.toString())).toEqual(['stranded']);
    expect(second.publishes()).toEqual([]);
    // the client's next session resume delivers it
    hub.handlers.set('b', serveB);
    await second.drop();
    await settle();
    const third = await b.connect({ clientId: 'roam', ...persistent });
    await settle();
    expect(payloads(third.publishes())).toEqual(['stranded']);
  }, 10_000);

  it('DESIGN invariant 1: an old owner too slow to answer takeover-begin does not take what it captured with it', async () => {
    const { a, b } = await twoNodes();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    await first.drop();
    await settle();
    const pub = await b.connect({ clientId: 'pub' });
    await pub.publish('p/x', 'm1', { qos: 1 });
    await settle();
    // node A's next append to the offline queue hangs for longer than node B waits (2 s)
    const queue = a.ports.offlineQueue;
    const append = queue.append.bind(queue);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    queue.append = async (...args: Parameters<typeof append>) => {
      await gate;
      return append(...args);
    };
    await pub.publish('p/x', 'm2', { qos: 1 });
    await settle();
    const second = b.client();
    // node B gives up on node A and resumes from the stores: m1 only, m2 is not appended yet
    expect((await second.connect({ clientId: 'roam', ...persistent })).sessionPresent).toBe(true);
    await settle();
    const [m1] = second.publishes();
    expect(payloads([m1!])).toEqual(['m1']);
    await second.ack(m1!);
    release();
    await settle(20);
    // node A finished its hand-over for nobody: m2 is still in the offline queue, and the
    // client's next session resume delivers it
    await second.drop();
    await settle();
    const third = b.client();
    expect((await third.connect({ clientId: 'roam', ...persistent })).sessionPresent).toBe(true);
    await settle();
    expect(payloads(third.publishes())).toEqual(['m2']);
  }, 10_000);

  it('[MQTT-3.1.2-8] a clean start on node B ends the session on node A: its will is published once', async () => {
    const { a, b } = await twoNodes();
    const watch = await b.connect({ clientId: 'watch' });
    await watch.subscribe({ topic: 'will/#', qos: 1 });
    const first = await a.connect({ clientId: 'roam', ...persistent, will: { topic: 'will/roam', payload: 'gone' } });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    const second = b.client();
    expect((await second.connect({ clientId: 'roam', clean: true })).sessionPresent).toBe(false);
    await settle();
    expect(payloads(watch.publishes())).toEqual(['gone']);
    const pub = await a.connect({ clientId: 'pub' });
    await pub.publish('p/x', 'nobody', { qos: 1 });
    await settle();
    expect(second.publishes()).toEqual([]);
    expect(await a.ports.sessions.load('roam')).toBeNull();
  });

  it('an old owner that does not answer (it died): node B resumes from the session store', async () => {
    const { a, b, hub } = await twoNodes();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    await first.drop(); // the session is saved at detach
    await settle();
    hub.handlers.delete('a'); // node A is gone
    const second = b.client();
    expect((await second.connect({ clientId: 'roam', ...persistent })).sessionPresent).toBe(true);
    const pub = await b.connect({ clientId: 'pub' });
    await pub.publish('p/x', 'from-store', { qos: 1 });
    await settle();
    expect(payloads(second.publishes())).toContain('from-store');
  });

  it('DESIGN invariant 2: each claim raises the epoch, so the newest owner wins', async () => {
    const { a, b } = await twoNodes();
    await a.connect({ clientId: 'roam', ...persistent });
    const e1 = (await a.ports.ownership.owner('roam'))!;
    await b.connect({ clientId: 'roam', ...persistent });
    const e2 = (await a.ports.ownership.owner('roam'))!;
    expect(e1.nodeId).toBe('a');
    expect(e2.nodeId).toBe('b');
    expect(e2.epoch).toBeGreaterThan(e1.epoch);
  });

  it('DESIGN invariant 2: a stale owner is fenced off: its next session write fails and its client is closed with 0x8E', async () => {
    const { a, b, hub } = await twoNodes();
    const stale = await a.connect({ clientId: 'roam', ...persistent });
    await stale.subscribe({ topic: 'p/#', qos: 1 });
    hub.handlers.delete('a'); // node A cut off from node B: no takeover request reaches it
    const fresh = b.client();
    expect((await fresh.connect({ clientId: 'roam', ...persistent })).sessionPresent).toBe(true);
    expect(stale.closed).toBe(false);
    await stale.subscribe({ topic: 'q/#', qos: 1 }).catch(() => undefined);
    expect(stale.next('disconnect').reasonCode).toBe(ReasonCode.SessionTakenOver);
    expect(stale.closed).toBe(true);
    // the store holds node B's session, not the stale subscription
    const stored = await a.ports.sessions.load('roam');
    expect(stored!.snapshot.subscriptions.map(([f]) => f)).toEqual(['p/#']);
  });

  it('DESIGN invariant 2: of two CONNECTs racing on two nodes, the later claim wins; the other gets CONNACK 0x89', async () => {
    const hub = new MemoryNodeLinkHub();
    const a = harness({ nodeId: 'a', linkHub: hub });
    const b = harness({ nodeId: 'b', ports: a.ports, linkHub: hub });
    const gone = harness({ nodeId: 'gone', ports: a.ports });
    await a.broker.start();
    await b.broker.start();
    await gone.connect({ clientId: 'race', ...persistent }); // owned by a node that then died (never served)
    const ownership = a.ports.ownership;
    const owner = ownership.owner.bind(ownership);
    let raced = false;
    ownership.owner = async (clientId: string) => {
      if (!raced) {
        raced = true;
        await ownership.claim(clientId, 'b'); // node B claims while node A is still opening
      }
      return owner(clientId);
    };
    const loser = a.client();
    const connack = await loser.connect({ clientId: 'race', ...persistent });
    expect(connack.reasonCode).toBe(ReasonCode.ServerBusy);
    expect(loser.closed).toBe(true);
    expect(a.broker.registry.isConnected('race')).toBe(false);
    expect(a.broker.router.busSubscriptionCount).toBe(0);
  });

  it('DESIGN invariants 1 and 2: a CONNECT that gives way to a newer claim leaves the session it took whole for the winner', async () => {
    const hub = new MemoryNodeLinkHub();
    const a = harness({ nodeId: 'a', linkHub: hub });
    const b = harness({ nodeId: 'b', ports: a.ports, linkHub: hub });
    const c = harness({ nodeId: 'c', ports: a.ports, linkHub: hub });
    for (const h of [a, b, c]) await h.broker.start();
    // on node C: one message inflight (Receive Maximum 1, never acknowledged), two queued
    const holder = await c.connect({ clientId: 'race', ...persistent, properties: { ...persistent.properties, receiveMaximum: 1 } });
    await holder.subscribe({ topic: 'p/#', qos: 1 });
    const pub = await c.connect({ clientId: 'pub' });
    for (const m of ['h1', 'h2', 'h3']) await pub.publish('p/x', m, { qos: 1 });
    await settle();
    expect(payloads(holder.publishes())).toEqual(['h1']);
    // node A takes the session from C; before it is done, node B claims the client ID
    const ownership = a.ports.ownership;
    const owner = ownership.owner.bind(ownership);
    const claim = ownership.claim.bind(ownership);
    const winner = b.client();
    let winning: Promise<unknown> | undefined;
    ownership.owner = async (clientId: string) => {
      if (winning === undefined) {
        let claimed!: () => void;
        const bClaimed = new Promise<void>((resolve) => {
          claimed = resolve;
        });
        ownership.claim = async (...args: Parameters<typeof claim>) => {
          const result = await claim(...args);
          ownership.claim = claim;
          claimed();
          return result;
        };
        winning = winner.connect({ clientId: 'race', ...persistent });
        await bClaimed;
      }
      return owner(clientId);
    };
    const loser = a.client();
    expect((await loser.connect({ clientId: 'race', ...persistent })).reasonCode).toBe(ReasonCode.ServerBusy);
    expect(((await winning) as { sessionPresent: boolean }).sessionPresent).toBe(true);
    await settle();
    expect(holder.next('disconnect').reasonCode).toBe(ReasonCode.SessionTakenOver);
    const got = winner.publishes();
    expect(got.map((p) => [p.payload.toString(), p.dup])).toEqual([
      ['h1', true],
      ['h2', false],
      ['h3', false],
    ]);
    expect(a.broker.registry.detachedCount).toBe(0);
    expect(a.broker.router.busSubscriptionCount).toBe(0);
    await pub.publish('p/x', 'after', { qos: 1 });
    await settle();
    expect(payloads(winner.publishes())).toEqual(['after']);
  });

  it('DESIGN invariant 8: with the ownership store down, CONNECT is refused with 0x88 (3.1.1: 3), never half-open', async () => {
    const h = harness();
    h.ports.ownership.claim = () => Promise.reject(new BackendUnavailableError('redis', 'down'));
    const v5 = h.client();
    expect((await v5.connect({ clientId: 'x5' })).reasonCode).toBe(ReasonCode.ServerUnavailable);
    expect(v5.closed).toBe(true);
    const v4 = h.client();
    expect((await v4.connect({ clientId: 'x4', protocolVersion: 4 })).returnCode).toBe(3);
    expect(v4.closed).toBe(true);
  });

  it('a detached session held in node A offline queue of its own still reaches node B complete', async () => {
    const hub = new MemoryNodeLinkHub();
    const a = harness({ nodeId: 'a', linkHub: hub });
    const b = harness({
      nodeId: 'b',
      ports: { ...a.ports, offlineQueue: new MemoryOfflineQueue({ maxLength: 100, dropPolicy: 'drop-oldest' }) },
      linkHub: hub,
    });
    await a.broker.start();
    await b.broker.start();
    const first = await a.connect({ clientId: 'roam', ...persistent });
    await first.subscribe({ topic: 'p/#', qos: 1 });
    await first.drop();
    const pub = await a.connect({ clientId: 'pub' });
    for (const m of ['k1', 'k2']) await pub.publish('p/x', m, { qos: 1 });
    await settle();
    expect(await a.ports.offlineQueue.length('roam')).toBe(2);
    const second = await b.connect({ clientId: 'roam', ...persistent });
    await settle();
    expect(payloads(second.publishes())).toEqual(['k1', 'k2']);
    expect(await a.ports.offlineQueue.length('roam')).toBe(0);
  });

  it('drain: node A disconnects its clients with 0x8B and hands its detached sessions to node B, which keeps capturing', async () => {
    const { a, b } = await twoNodes();
    const watch = await b.connect({ clientId: 'watch' });
    await watch.subscribe({ topic: 'will/#', qos: 1 });
    const device = await a.connect({ clientId: 'dev', ...persistent, will: { topic: 'will/dev', payload: 'late', properties: { willDelayInterval: 60 } } });
    await device.subscribe({ topic: 'cmd/dev', qos: 1 });
    const plain = await a.connect({ clientId: 'plain' }); // no session to keep
    const result = await a.broker.drain(['a', 'b'], ReasonCode.ServerShuttingDown);
    expect(result).toEqual({ handed: 1, kept: 0 });
    expect(device.next('disconnect').reasonCode).toBe(ReasonCode.ServerShuttingDown);
    expect(plain.next('disconnect').reasonCode).toBe(ReasonCode.ServerShuttingDown);
    expect(a.broker.registry.detachedCount).toBe(0);
    expect(b.broker.registry.detachedCount).toBe(1);
    expect((await a.ports.ownership.owner('dev'))!.nodeId).toBe('b');
    // node B captures for the offline client; its will is still pending (delay not over)
    const pub = await b.connect({ clientId: 'pub' });
    await pub.publish('cmd/dev', 'while-away', { qos: 1 });
    await settle();
    expect(watch.publishes()).toEqual([]);
    const back = b.client();
    expect((await back.connect({ clientId: 'dev', ...persistent })).sessionPresent).toBe(true);
    await settle();
    expect(payloads(back.publishes())).toEqual(['while-away']);
  });

  it('drain with no other live node keeps the detached sessions in the stores', async () => {
    const { a } = await twoNodes();
    const device = await a.connect({ clientId: 'dev', ...persistent });
    await device.subscribe({ topic: 'cmd/dev', qos: 1 });
    expect(await a.broker.drain(['a'], ReasonCode.ServerShuttingDown)).toEqual({ handed: 0, kept: 1 });
    expect((await a.ports.sessions.load('dev'))!.snapshot.subscriptions.map(([f]) => f)).toEqual(['cmd/dev']);
  });

  it('DESIGN invariant 1: a takeover-begin that reaches a drained node after it settled its handovers loses nothing when its takeover-end goes unanswered', async () => {
    const { a, b, hub } = await twoNodes();
    const device = await a.connect({ clientId: 'dev', ...persistent });
    await device.subscribe({ topic: 'cmd/dev', qos: 1 });
    const pub = await b.connect({ clientId: 'pub' });
    // node A drains with no node to hand its session to, and settles
    expect(await a.broker.drain(['a'], ReasonCode.ServerShuttingDown)).toEqual({ handed: 0, kept: 1 });
    await pub.publish('cmd/dev', 'kept', { qos: 1 });
    // the device returns on node B before node A's link closed; a message arrives between the
    // two steps, and node A's link closes before takeover-end (the node exits)
    const serveA = hub.handlers.get('a')!;
    const seen: string[] = [];
    hub.handlers.set('a', async (request: NodeRequest): Promise<NodeReply> => {
      seen.push(request.type);
      if (request.type === 'takeover-end') throw new BackendUnavailableError('nats', 'node a closed its link');
      const reply = await serveA(request);
      if (request.type === 'takeover-begin') await pub.publish('cmd/dev', 'between', { qos: 1 });
      return reply;
    });
    const back = b.client();
    expect((await back.connect({ clientId: 'dev', ...persistent })).sessionPresent).toBe(true);
    await settle();
    expect(seen[0]).toBe('takeover-begin');
    expect(payloads(back.publishes())).toEqual(['kept', 'between']);
    await pub.publish('cmd/dev', 'after', { qos: 1 });
    await settle();
    expect(payloads(back.publishes())).toEqual(['after']);
  });
});

