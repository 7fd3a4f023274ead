import { describe, expect, it } from 'vitest';
import type { Message, OfflineQueue, OfflineQueueOptions, QueuedMessage } from '@fleetmq/broker';
import { portFixture, testMessage } from './support.js';

/** Makes a fresh, empty queue with the given limits; the suite closes it after each test. */
export type MakeOfflineQueue = (options: OfflineQueueOptions) => Promise<OfflineQueue> | OfflineQueue;

const roomy: OfflineQueueOptions = { maxLength: 1000, dropPolicy: 'drop-oldest' };

function messages(prefix: string, n: number): Message[] {
  return Array.from({ length: n }, (_, i) => testMessage(`${prefix}/${i}`));
}

function idsOf(queued: readonly QueuedMessage[]): string[] {
  return queued.map((q) => q.message.id);
}

function expectIncreasing(queued: readonly QueuedMessage[]): void {
  for (let i = 1; i < queued.length; i++) expect(queued[i]!.seq).toBeGreaterThan(queued[i - 1]!.seq);
}

/**
 * The OfflineQueue contract (ports/offline-queue.ts): per-client order with increasing
 * sequence numbers, read/remove windows, the length limit under both drop policies and
 * the dropped count, per-client isolation.
 */
export function describeOfflineQueue(make: MakeOfflineQueue): void {
  describe('OfflineQueue contract', () => {
    let options: OfflineQueueOptions = roomy;
    const ports = portFixture(() => make(options));
    const open = (opts: OfflineQueueOptions = roomy): Promise<OfflineQueue> => {
      options = opts;
      return ports.open();
    };

    it('is empty for a client never queued for', async () => {
      const queue = await open();
      expect(await queue.length('nobody')).toBe(0);
      expect(await queue.read('nobody', 10)).toEqual([]);
    });

    it('keeps messages in append order with increasing sequence numbers', async () => {
      const queue = await open();
      const first = messages('t', 3);
      const second = messages('u', 2);
      expect(await queue.append('c1', first)).toEqual({ dropped: 0 });
      expect(await queue.append('c1', second)).toEqual({ dropped: 0 });
      const read = await queue.read('c1', 100);
      expect(idsOf(read)).toEqual([...first, ...second].map((m) => m.id));
      expectIncreasing(read);
      expect(await queue.length('c1')).toBe(5);
    });

    it('keeps every field of a message', async () => {
      const queue = await open();
      const message = testMessage('fields', {
        payload: Buffer.from([0, 255, 10]),
        qos: 2,
        retain: true,
        properties: { correlationData: Buffer.from('c'), userProperties: { k: ['v1', 'v2'] }, contentType: 'x' },
        expiresAt: Date.now() + 60_000,
        publisherId: 'p1',
      });
      await queue.append('c1', [message]);
      const [read] = await queue.read('c1', 1);
      expect(read!.message).toEqual(message);
      expect(Buffer.isBuffer(read!.message.payload)).toBe(true);
    });

    it('reads windows by limit and afterSeq without removing anything', async () => {
      const queue = await open();
      const sent = messages('w', 7);
      await queue.append('c1', sent);
      const page1 = await queue.read('c1', 3);
      expect(idsOf(page1)).toEqual(sent.slice(0, 3).map((m) => m.id));
      const page2 = await queue.read('c1', 3, page1[2]!.seq);
      expect(idsOf(page2)).toEqual(sent.slice(3, 6).map((m) => m.id));
      const page3 = await queue.read('c1', 3, page2[2]!.seq);
      expect(idsOf(page3)).toEqual(sent.slice(6).map((m) => m.id));
      expect(await queue.read('c1', 3, page3[0]!.seq)).toEqual([]);
      expect(await queue.read('c1', 0)).toEqual([]);
      expect(await queue.length('c1')).toBe(7);
      expect(idsOf(await queue.read('c1', 100))).toEqual(sent.map((m) => m.id));
    });

    it('removes every message up to and including a sequence number', async () => {
      const queue = await open();
      const sent = messages('r', 5);
      await queue.append('c1', sent);
      const all = await queue.read('c1', 5);
      await queue.remove('c1', all[1]!.seq);
      expect(await queue.length('c1')).toBe(3);
      expect(idsOf(await queue.read('c1', 10))).toEqual(sent.slice(2).map((m) => m.id));
      const more = messages('s', 2);
      await queue.append('c1', more);
      const rest = await queue.read('c1', 10);
      expect(idsOf(rest)).toEqual([...sent.slice(2), ...more].map((m) => m.id));
      expectIncreasing(rest);
      await queue.remove('c1', rest[rest.length - 1]!.seq);
      expect(await queue.length('c1')).toBe(0);
      expect(await queue.read('c1', 10)).toEqual([]);
    });

    it('accepts a remove below every sequence number or for an unknown client', async () => {
      const queue = await open();
      const sent = messages('n', 2);
      await queue.append('c1', sent);
      const [first] = await queue.read('c1', 1);
      await queue.remove('c1', first!.seq - 1);
      await queue.remove('nobody', first!.seq);
      expect(await queue.length('c1')).toBe(2);
    });

    it('keeps clients isolated', async () => {
      const queue = await open();
      const a = messages('a', 3);
      const b = messages('b', 2);
      await queue.append('ca', a);
      await queue.append('cb', b);
      const readA = await queue.read('ca', 10);
      await queue.remove('ca', readA[1]!.seq);
      expect(idsOf(await queue.read('ca', 10))).toEqual([a[2]!.id]);
      expect(idsOf(await queue.read('cb', 10))).toEqual(b.map((m) => m.id));
      await queue.clear('ca');
      expect(await queue.length('ca')).toBe(0);
      expect(await queue.read('ca', 10)).toEqual([]);
      expect(idsOf(await queue.read('cb', 10))).toEqual(b.map((m) => m.id));
    });

    it('clears one client and keeps queueing for it afterwards', async () => {
      const queue = await open();
      await queue.append('c1', messages('old', 3));
      await queue.clear('c1');
      await queue.clear('nobody');
      const fresh = messages('new', 2);
      await queue.append('c1', fresh);
      expect(idsOf(await queue.read('c1', 10))).toEqual(fresh.map((m) => m.id));
      expect(await queue.length('c1')).toBe(2);
    });

    it('appends one message to many queues', async () => {
      const queue = await open();
      const message = testMessage('fan/out');
      expect(await queue.appendMany(['c1', 'c2', 'c3'], message)).toEqual({ dropped: 0 });
      for (const clientId of ['c1', 'c2', 'c3']) {
        const read = await queue.read(clientId, 10);
        expect(idsOf(read)).toEqual([message.id]);
        expect(read[0]!.message).toEqual(message);
      }
      expect(await queue.appendMany([], message)).toEqual({ dropped: 0 });
    });

    it("with 'drop-oldest', keeps the newest messages up to the limit and counts the dropped", async () => {
      const queue = await open({ maxLength: 3, dropPolicy: 'drop-oldest' });
      const sent = messages('o', 5);
      expect(await queue.append('c1', sent.slice(0, 2))).toEqual({ dropped: 0 });
      expect(await queue.append('c1', sent.slice(2))).toEqual({ dropped: 2 });
      expect(await queue.length('c1')).toBe(3);
      const read = await queue.read('c1', 10);
      expect(idsOf(read)).toEqual(sent.slice(2).map((m) => m.id));
      expectIncreasing(read);
      const next = testMessage('o/next');
      expect(await queue.append('c1', [next])).toEqual({ dropped: 1 });
      expect(idsOf(await queue.read('c1', 10))).toEqual([sent[3]!.id, sent[4]!.id, next.id]);
    });

    it("with 'drop-newest', keeps the oldest messages up to the limit and refuses the rest", async () => {
      const queue = await open({ maxLength: 3, dropPolicy: 'drop-newest' });
      const sent = messages('n', 5);
      expect(await queue.append('c1', sent)).toEqual({ dropped: 2 });
      expect(await queue.append('c1', [testMessage('n/late')])).toEqual({ dropped: 1 });
      const read = await queue.read('c1', 10);
      expect(idsOf(read)).toEqual(sent.slice(0, 3).map((m) => m.id));
      await queue.remove('c1', read[0]!.seq);
      const room = testMessage('n/room');
      expect(await queue.append('c1', [room])).toEqual({ dropped: 0 });
      expect(idsOf(await queue.read('c1', 10))).toEqual([sent[1]!.id, sent[2]!.id, room.id]);
    });

    it('applies the limit per client, also to appendMany', async () => {
      const queue = await open({ maxLength: 2, dropPolicy: 'drop-newest' });
      await queue.append('full', messages('f', 2));
      const message = testMessage('fan');
      expect(await queue.appendMany(['full', 'empty1', 'empty2'], message)).toEqual({ dropped: 1 });
      expect(await queue.length('full')).toBe(2);
      expect(idsOf(await queue.read('empty1', 10))).toEqual([message.id]);
      expect(idsOf(await queue.read('empty2', 10))).toEqual([message.id]);
    });
  });
}
