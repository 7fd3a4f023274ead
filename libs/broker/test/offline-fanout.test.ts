import { describe, expect, it } from 'vitest';
import { MemoryMessageBus, MemoryOfflineQueue, MemorySessionOwnership, MemorySessionStore } from '@fleetmq/adapter-memory';
import { LocalRouter } from '../src/local-router.js';
import { silentLog } from '../src/log.js';
import type { Message } from '../src/message.js';
import type { AppendResult } from '../src/ports/offline-queue.js';
import { SessionRegistry } from '../src/session-registry.js';
import { FakeChannel } from './support/fake-channel.js';
import { settle } from './support/harness.js';

// Issue "Cluster II" item 4: where many offline sessions match one message, the offline queue
// gets one batched write (appendMany) for it, not one append per session; each session's
// queue keeps publish order.

/** The in-process queue, counting the calls the registry makes. */
class CountingQueue extends MemoryOfflineQueue {
  appends = 0;
  appendManys: number[] = [];
  override append(clientId: string, messages: readonly Message[]): Promise<AppendResult> {
    this.appends++;
    return super.append(clientId, messages);
  }
  override appendMany(clientIds: readonly string[], message: Message): Promise<AppendResult> {
    this.appendManys.push(clientIds.length);
    return super.appendMany(clientIds, message);
  }
}

let seq = 0;
function message(topic: string): Message {
  return { id: `m${seq++}`, topic, payload: Buffer.from(topic), qos: 1, retain: false, createdAt: Date.now() };
}

describe('offline capture for many detached sessions', () => {
  it('writes a message that matches 50 offline sessions in one appendMany, and keeps each queue in publish order', async () => {
    const bus = new MemoryMessageBus();
    const router = new LocalRouter(bus);
    const queue = new CountingQueue({ maxLength: 100, dropPolicy: 'drop-oldest' });
    const registry = new SessionRegistry({
      nodeId: 'n1',
      router,
      ownership: new MemorySessionOwnership(),
      store: new MemorySessionStore(),
      offlineQueue: queue,
      limits: { maxQueued: 100, dropPolicy: 'drop-oldest' },
      publishWill: async () => undefined,
      log: silentLog,
    });
    const ids = Array.from({ length: 50 }, (_, i) => `dev-${i}`);
    for (const id of ids) {
      const channel = new FakeChannel(id);
      const opened = await registry.open({ clientId: id, cleanStart: true, protocolVersion: 5, expiryInterval: 300, will: undefined, channel });
      channel.session = opened.session;
      router.attach(channel);
      for (const filter of ['fleet/cmd', `dev/${id}/cmd`]) {
        const options = { qos: 1 as const, noLocal: false, retainAsPublished: false, retainHandling: 0 as const };
        opened.session.subscriptions.set(filter, options);
        await router.subscribe(id, filter, options);
      }
      await registry.close(channel, opened.session, { publishWill: false });
    }
    expect(registry.detachedCount).toBe(50);
    queue.appends = 0;

    await bus.publish(message('fleet/cmd')); // all 50
    await bus.publish(message('dev/dev-7/cmd')); // one
    await bus.publish(message('fleet/cmd')); // all 50 again
    await settle();
    await registry.idle();
    await settle();

    expect(queue.appendManys).toEqual([50, 50]);
    expect(queue.appends).toBe(1);
    expect(registry.stats.offlineQueued).toBe(101);
    const topics = async (id: string) => (await queue.read(id, 10)).map((e) => e.message.topic);
    expect(await topics('dev-7')).toEqual(['fleet/cmd', 'dev/dev-7/cmd', 'fleet/cmd']);
    expect(await topics('dev-8')).toEqual(['fleet/cmd', 'fleet/cmd']);
    const first = (await queue.read('dev-7', 10)).map((e) => e.message.id);
    expect(new Set(first).size).toBe(3);
  });
});
