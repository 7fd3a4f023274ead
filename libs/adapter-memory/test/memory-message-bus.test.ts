import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import type { Message } from '@fleetmq/broker';
import { Recorder, describeMessageBus, testMessage } from '@fleetmq/testkit';
import { MemoryMessageBus } from '../src/index.js';

describeMessageBus(() => new MemoryMessageBus());

describe('MemoryMessageBus', () => {
  it('delivers synchronously, before publish resolves', async () => {
    const bus = new MemoryMessageBus();
    const rec = new Recorder();
    await bus.subscribe('a/+', rec.handler);
    const pending = bus.publish(testMessage('a/b'));
    expect(rec.topics).toEqual(['a/b']);
    await pending;
  });

  it('hands the same message object to every subscription', async () => {
    const bus = new MemoryMessageBus();
    const a = new Recorder();
    const b = new Recorder();
    await bus.subscribe('x/#', a.handler);
    await bus.subscribe('x/y', b.handler);
    const message = testMessage('x/y');
    await bus.publish(message);
    expect(a.messages[0]).toBe(message);
    expect(b.messages[0]).toBe(message);
  });

  it('rotates a queue group round-robin', async () => {
    const bus = new MemoryMessageBus();
    const members = [new Recorder(), new Recorder(), new Recorder()];
    for (const m of members) await bus.subscribe('rr/+', m.handler, { group: 'g' });
    for (let i = 0; i < 9; i++) await bus.publish(testMessage(`rr/${i}`));
    expect(members.map((m) => m.topics)).toEqual([
      ['rr/0', 'rr/3', 'rr/6'],
      ['rr/1', 'rr/4', 'rr/7'],
      ['rr/2', 'rr/5', 'rr/8'],
    ]);
  });

  it('keeps the rotation fair when a member leaves', async () => {
    const bus = new MemoryMessageBus();
    const [a, b, c] = [new Recorder(), new Recorder(), new Recorder()];
    await bus.subscribe('rr', a.handler, { group: 'g' });
    const subB = await bus.subscribe('rr', b.handler, { group: 'g' });
    await bus.subscribe('rr', c.handler, { group: 'g' });
    await bus.publish(testMessage('rr', { id: 'm0' })); // a
    await bus.publish(testMessage('rr', { id: 'm1' })); // b
    await subB.unsubscribe();
    await bus.publish(testMessage('rr', { id: 'm2' })); // c: still next in turn
    await bus.publish(testMessage('rr', { id: 'm3' })); // a
    expect([a.ids, b.ids, c.ids]).toEqual([['m0', 'm3'], ['m1'], ['m2']]);
  });

  it('treats the same group name on different filters as different groups', async () => {
    const bus = new MemoryMessageBus();
    const plus = new Recorder();
    const hash = new Recorder();
    await bus.subscribe('k/+', plus.handler, { group: 'g' });
    await bus.subscribe('k/#', hash.handler, { group: 'g' });
    await bus.publish(testMessage('k/1'));
    expect(plus.topics).toEqual(['k/1']);
    expect(hash.topics).toEqual(['k/1']);
  });

  it('isolates a throwing handler, counting the error', async () => {
    const bus = new MemoryMessageBus();
    const before = new Recorder();
    const after = new Recorder();
    await bus.subscribe('t/+', before.handler);
    await bus.subscribe('t/+', () => {
      throw new Error('handler bug');
    });
    await bus.subscribe('t/#', after.handler);
    await expect(bus.publish(testMessage('t/1'))).resolves.toBeUndefined();
    await bus.publish(testMessage('t/2'));
    expect(before.topics).toEqual(['t/1', 't/2']);
    expect(after.topics).toEqual(['t/1', 't/2']);
    expect(bus.handlerErrors).toBe(2);
  });

  it('counts a throwing queue-group member and moves on to the next member', async () => {
    const bus = new MemoryMessageBus();
    const ok = new Recorder();
    await bus.subscribe('g', () => {
      throw new Error('member bug');
    }, { group: 'g' });
    await bus.subscribe('g', ok.handler, { group: 'g' });
    await bus.publish(testMessage('g', { id: 'g0' }));
    await bus.publish(testMessage('g', { id: 'g1' }));
    expect(bus.handlerErrors).toBe(1);
    expect(ok.ids).toEqual(['g1']);
  });

  it('delivers a publish made from inside a handler, then finishes the outer one', async () => {
    const bus = new MemoryMessageBus();
    const seen: string[] = [];
    await bus.subscribe('in', (m: Message) => {
      seen.push(`first:${m.topic}`);
      void bus.publish(testMessage('nested'));
    });
    await bus.subscribe('in', (m: Message) => seen.push(`second:${m.topic}`));
    await bus.subscribe('nested', (m: Message) => seen.push(`nested:${m.topic}`));
    await bus.publish(testMessage('in'));
    expect(seen).toEqual(['first:in', 'nested:nested', 'second:in']);
  });

  it('does not deliver to a subscription removed by an earlier handler of the same publish', async () => {
    const bus = new MemoryMessageBus();
    const victim = new Recorder();
    let victimSub: { unsubscribe(): Promise<void> } | undefined;
    await bus.subscribe('v', () => void victimSub?.unsubscribe());
    victimSub = await bus.subscribe('v', victim.handler);
    await bus.publish(testMessage('v'));
    expect(victim.messages).toEqual([]);
  });

  it('forgets a filter once its last subscription (plain or group) is gone', async () => {
    const bus = new MemoryMessageBus();
    const subs = [
      await bus.subscribe('f/+', () => {}),
      await bus.subscribe('f/+', () => {}, { group: 'g' }),
      await bus.subscribe('f/+', () => {}, { group: 'g' }),
      await bus.subscribe('f/#', () => {}),
    ];
    expect(bus.filterCount).toBe(2);
    for (const sub of subs) await sub.unsubscribe();
    expect(bus.filterCount).toBe(0);
  });

  it('rejects an invalid filter', async () => {
    const bus = new MemoryMessageBus();
    await expect(bus.subscribe('a/#/b', () => {})).rejects.toBeInstanceOf(TypeError);
    await expect(bus.subscribe('a+', () => {})).rejects.toBeInstanceOf(TypeError);
    expect(bus.filterCount).toBe(0);
  });

  it("refuses subscribes after close as backend 'nats', and drops its subscriptions", async () => {
    const bus = new MemoryMessageBus();
    const sub = await bus.subscribe('c', () => {});
    await bus.close();
    expect(bus.filterCount).toBe(0);
    await expect(sub.unsubscribe()).resolves.toBeUndefined();
    const refused = bus.subscribe('c', () => {});
    await expect(refused).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(refused).rejects.toMatchObject({ backend: 'nats' });
    await expect(bus.publish(testMessage('c'))).rejects.toMatchObject({ backend: 'nats' });
  });
});
