import { describe, expect, it } from 'vitest';
import { MemoryMessageBus } from '@fleetmq/adapter-memory';
import type { Delivery } from '../src/delivery.js';
import { LocalRouter, type Subscriber } from '../src/local-router.js';
import type { Message } from '../src/message.js';
import type { BusHandler, BusSubscribeOptions, BusSubscription, MessageBus } from '../src/ports/message-bus.js';
import type { SubscriptionOptions } from '../src/subscription.js';

let seq = 0;
function message(topic: string, over: Partial<Message> = {}): Message {
  return { id: `m${seq++}`, topic, payload: Buffer.from(topic), qos: 1, retain: false, createdAt: 0, ...over };
}

function opts(over: Partial<SubscriptionOptions> = {}): SubscriptionOptions {
  return { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, ...over };
}

class FakeSubscriber implements Subscriber {
  readonly got: { message: Message; delivery: Delivery }[] = [];
  constructor(
    readonly clientId: string,
    public online = true,
  ) {}
  deliver(message: Message, delivery: Delivery): void {
    this.got.push({ message, delivery });
  }
  get topics(): string[] {
    return this.got.map((g) => g.message.topic);
  }
}

/** A MemoryMessageBus whose subscribe can be held back or made to fail, counting calls. */
class ControlledBus implements MessageBus {
  readonly inner = new MemoryMessageBus();
  held: (() => void)[] = [];
  hold = false;
  failNext = false;
  subscribes = 0;
  unsubscribes = 0;

  get ready(): boolean {
    return this.inner.ready;
  }

  publish(message: Message): Promise<void> {
    return this.inner.publish(message);
  }

  sync(): Promise<void> {
    return this.inner.sync();
  }

  async subscribe(filter: string, handler: BusHandler, options?: BusSubscribeOptions): Promise<BusSubscription> {
    this.subscribes++;
    if (this.failNext) {
      this.failNext = false;
      throw new Error('bus unavailable');
    }
    if (this.hold) await new Promise<void>((r) => this.held.push(r));
    const sub = await this.inner.subscribe(filter, handler, options);
    return {
      unsubscribe: () => {
        this.unsubscribes++;
        return sub.unsubscribe();
      },
    };
  }

  release(): void {
    const held = this.held.splice(0);
    for (const r of held) r();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A bus that hands every published message to every handler: the router must re-check. */
class SloppyBus implements MessageBus {
  readonly ready = true;
  private readonly handlers: BusHandler[] = [];
  async publish(message: Message): Promise<void> {
    for (const h of this.handlers) h(message);
  }
  async subscribe(_filter: string, handler: BusHandler): Promise<BusSubscription> {
    this.handlers.push(handler);
    return { unsubscribe: async () => undefined };
  }
  async sync(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('LocalRouter bus interest (DESIGN invariant 4)', () => {
  it('holds one bus subscription per distinct filter, reference-counted by its subscribers', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    await router.subscribe('a', 'x/#', opts());
    await router.subscribe('b', 'x/#', opts());
    await router.subscribe('b', 'y', opts());
    expect(router.busSubscriptionCount).toBe(2);
    expect(bus.subscribes).toBe(2);
    expect(bus.inner.filterCount).toBe(2);
    await router.unsubscribe('a', 'x/#');
    expect(router.busSubscriptionCount).toBe(2);
    expect(bus.unsubscribes).toBe(0);
    await router.unsubscribe('b', 'x/#');
    expect(router.busSubscriptionCount).toBe(1);
    expect(bus.unsubscribes).toBe(1);
    expect(bus.inner.filterCount).toBe(1);
    // unsubscribing what is not there changes nothing
    await router.unsubscribe('b', 'x/#');
    await router.unsubscribe('zz', 'y');
    expect(router.busSubscriptionCount).toBe(1);
  });

  it('subscribe resolves only once the bus subscription is active', async () => {
    const bus = new ControlledBus();
    bus.hold = true;
    const router = new LocalRouter(bus);
    let done = false;
    const p = router.subscribe('a', 'x', opts()).then(() => (done = true));
    // a second subscriber of the same filter waits for the same bus subscription
    let second = false;
    const q = router.subscribe('b', 'x', opts()).then(() => (second = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    expect(second).toBe(false);
    expect(bus.subscribes).toBe(1);
    bus.release();
    await Promise.all([p, q]);
    expect(done && second).toBe(true);
  });

  it('a filter dropped while the bus was subscribing is unsubscribed from the bus', async () => {
    const bus = new ControlledBus();
    bus.hold = true;
    const router = new LocalRouter(bus);
    const p = router.subscribe('a', 'x', opts());
    await new Promise((r) => setImmediate(r));
    await router.unsubscribe('a', 'x');
    bus.release();
    await p;
    await new Promise((r) => setImmediate(r));
    expect(bus.unsubscribes).toBe(1);
    expect(bus.inner.filterCount).toBe(0);
    expect(router.busSubscriptionCount).toBe(0);
  });

  it('a failed bus subscription rejects and is not kept, so the next subscribe tries again', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    bus.failNext = true;
    await expect(router.subscribe('a', 'x', opts())).rejects.toThrow('bus unavailable');
    expect(router.busSubscriptionCount).toBe(0);
    await router.subscribe('a', 'x', opts());
    expect(bus.subscribes).toBe(2);
    expect(router.busSubscriptionCount).toBe(1);
  });

  it('a shared filter has its own bus subscription (a queue group), apart from the plain filter', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    await router.subscribe('a', '$share/g/x', opts());
    await router.subscribe('b', '$share/g/x', opts());
    await router.subscribe('c', '$share/h/x', opts());
    await router.subscribe('d', 'x', opts());
    expect(router.busSubscriptionCount).toBe(3);
    await expect(router.subscribe('e', '$share/g', opts())).rejects.toThrow();
  });
});

describe('LocalRouter delivery', () => {
  it('hands each matching client exactly one delivery although the bus sends one copy per filter', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    const a = new FakeSubscriber('a');
    const b = new FakeSubscriber('b');
    router.attach(a);
    router.attach(b);
    await router.subscribe('a', 'x/#', opts({ qos: 0, subscriptionId: 1 }));
    await router.subscribe('a', 'x/+', opts({ qos: 2, subscriptionId: 2 }));
    await router.subscribe('b', 'x/y', opts({ qos: 1 }));
    await bus.publish(message('x/y', { qos: 2 }));
    expect(a.got).toHaveLength(1);
    expect(a.got[0]!.delivery.qos).toBe(2);
    expect([...a.got[0]!.delivery.subscriptionIds!].sort()).toEqual([1, 2]);
    expect(b.got).toHaveLength(1);
    expect(b.got[0]!.delivery.qos).toBe(1);
    expect(router.stats.busMessages).toBe(3);
    expect(router.stats.busDuplicates).toBe(2);
    expect(router.stats.deliveries).toBe(2);
  });

  it('re-checks what the bus delivers against its own subscriptions', async () => {
    const router = new LocalRouter(new SloppyBus());
    const a = new FakeSubscriber('a');
    router.attach(a);
    await router.subscribe('a', 'x/+', opts());
    const bus = (router as unknown as { bus: SloppyBus }).bus;
    await bus.publish(message('x/y'));
    await bus.publish(message('elsewhere'));
    await bus.publish(message('x/y/z'));
    expect(a.topics).toEqual(['x/y']);
  });

  it("(4.7.1.2) '#' matches the parent; [MQTT-4.7.2-1] '$' topics do not match a leading wildcard", async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    const a = new FakeSubscriber('a');
    router.attach(a);
    await router.subscribe('a', 'x/#', opts());
    await router.subscribe('a', '+/status', opts());
    for (const t of ['x', 'x/1', '$SYS/status', 'y/status']) await bus.publish(message(t));
    expect(a.topics).toEqual(['x', 'x/1', 'y/status']);
  });

  it('a copy through a filter whose bus subscription is not active yet is not used twice', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    const a = new FakeSubscriber('a');
    router.attach(a);
    await router.subscribe('a', 'x/y', opts());
    bus.hold = true;
    const pending = router.subscribe('a', 'x/#', opts());
    await new Promise((r) => setImmediate(r));
    await bus.publish(message('x/y'));
    expect(a.topics).toEqual(['x/y']);
    bus.release();
    await pending;
    await bus.publish(message('x/y'));
    expect(a.topics).toEqual(['x/y', 'x/y']);
  });

  it('[MQTT-3.8.3-3] applies No Local', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    const a = new FakeSubscriber('a');
    router.attach(a);
    await router.subscribe('a', 'x', opts({ noLocal: true }));
    await bus.publish(message('x', { publisherId: 'a' }));
    await bus.publish(message('x', { publisherId: 'b' }));
    expect(a.got.map((g) => g.message.publisherId)).toEqual(['b']);
  });

  it('delivers only to the attached subscriber of a client; detach removes only that one', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    await router.subscribe('a', 'x', opts());
    await bus.publish(message('x'));
    expect(router.stats.deliveries).toBe(0);
    const first = new FakeSubscriber('a');
    const second = new FakeSubscriber('a');
    router.attach(first);
    router.attach(second);
    expect(router.subscriberOf('a')).toBe(second);
    router.detach(first);
    expect(router.subscriberOf('a')).toBe(second);
    await bus.publish(message('x'));
    expect(first.got).toHaveLength(0);
    expect(second.got).toHaveLength(1);
    router.detach(second);
    expect(router.subscriberOf('a')).toBeUndefined();
  });
});

describe('LocalRouter shared subscriptions', () => {
  it('(4.8.2) gives each message to one member, round-robin', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    const members = ['a', 'b', 'c'].map((id) => new FakeSubscriber(id));
    for (const m of members) {
      router.attach(m);
      await router.subscribe(m.clientId, '$share/g/jobs/+', opts());
    }
    for (let i = 0; i < 6; i++) await bus.publish(message(`jobs/${i}`));
    expect(members.map((m) => m.got.length)).toEqual([2, 2, 2]);
    expect(router.stats.deliveries).toBe(6);
  });

  it('prefers online members; with none online, one offline member still gets it', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    const off = new FakeSubscriber('off', false);
    const on = new FakeSubscriber('on', true);
    router.attach(off);
    router.attach(on);
    await router.subscribe('off', '$share/g/t', opts());
    await router.subscribe('on', '$share/g/t', opts());
    for (let i = 0; i < 3; i++) await bus.publish(message('t'));
    expect(on.got).toHaveLength(3);
    expect(off.got).toHaveLength(0);
    on.online = false;
    await bus.publish(message('t'));
    expect(on.got.length + off.got.length).toBe(4);
  });

  it('[MQTT-4.8.2-3] uses the member granted QoS and its subscription identifier', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    const a = new FakeSubscriber('a');
    router.attach(a);
    await router.subscribe('a', '$share/g/t', opts({ qos: 0, subscriptionId: 8 }));
    await bus.publish(message('t', { qos: 2 }));
    expect(a.got[0]!.delivery).toEqual({ qos: 0, retain: false, subscriptionIds: [8] });
  });

  it('drops the group bus subscription when its last member leaves', async () => {
    const bus = new ControlledBus();
    const router = new LocalRouter(bus);
    await router.subscribe('a', '$share/g/t', opts());
    await router.subscribe('b', '$share/g/t', opts());
    await router.unsubscribe('a', '$share/g/t');
    expect(bus.unsubscribes).toBe(0);
    await router.unsubscribe('a', '$share/g/t');
    expect(bus.unsubscribes).toBe(0);
    await router.unsubscribe('b', '$share/g/t');
    expect(bus.unsubscribes).toBe(1);
    expect(router.busSubscriptionCount).toBe(0);
  });
});
