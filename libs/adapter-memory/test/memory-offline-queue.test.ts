import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import type { Message } from '@fleetmq/broker';
import { describeOfflineQueue, testMessage } from '@fleetmq/testkit';
import { MemoryOfflineQueue } from '../src/index.js';

describeOfflineQueue((options) => new MemoryOfflineQueue(options));

function messages(n: number): Message[] {
  return Array.from({ length: n }, (_, i) => testMessage(`m/${i}`));
}

describe('MemoryOfflineQueue', () => {
  it('counts every dropped message in droppedTotal, across clients and policies of a call', async () => {
    const queue = new MemoryOfflineQueue({ maxLength: 2, dropPolicy: 'drop-oldest' });
    await queue.append('a', messages(5));
    await queue.appendMany(['a', 'b'], testMessage('x'));
    expect(queue.droppedTotal).toBe(4);
    const refusing = new MemoryOfflineQueue({ maxLength: 1, dropPolicy: 'drop-newest' });
    expect(await refusing.append('a', messages(3))).toEqual({ dropped: 2 });
    expect(refusing.droppedTotal).toBe(2);
  });

  it('never reuses a sequence number, not even after clear', async () => {
    const queue = new MemoryOfflineQueue({ maxLength: 10, dropPolicy: 'drop-oldest' });
    await queue.append('c', messages(3));
    const before = await queue.read('c', 10);
    await queue.clear('c');
    await queue.append('c', messages(1));
    const [after] = await queue.read('c', 10);
    expect(after!.seq).toBeGreaterThan(before[2]!.seq);
  });

  it('keeps the same message object it was given', async () => {
    const queue = new MemoryOfflineQueue({ maxLength: 10, dropPolicy: 'drop-oldest' });
    const message = testMessage('same');
    await queue.appendMany(['a', 'b'], message);
    expect((await queue.read('a', 1))[0]!.message).toBe(message);
    expect((await queue.read('b', 1))[0]!.message).toBe(message);
  });

  it('keeps order and windows through many evictions and removals', async () => {
    const queue = new MemoryOfflineQueue({ maxLength: 100, dropPolicy: 'drop-oldest' });
    const sent = messages(1000);
    for (const m of sent) await queue.append('c', [m]);
    expect(await queue.length('c')).toBe(100);
    const window = await queue.read('c', 10, (await queue.read('c', 1))[0]!.seq + 49);
    expect(window.map((q) => q.message.id)).toEqual(sent.slice(950, 960).map((m) => m.id));
    await queue.remove('c', window[9]!.seq);
    expect(await queue.length('c')).toBe(40);
    expect((await queue.read('c', 100)).map((q) => q.message.id)).toEqual(sent.slice(960).map((m) => m.id));
  });

  it('drops everything with maxLength 0', async () => {
    const queue = new MemoryOfflineQueue({ maxLength: 0, dropPolicy: 'drop-oldest' });
    expect(await queue.append('c', messages(2))).toEqual({ dropped: 2 });
    expect(await queue.length('c')).toBe(0);
  });

  it('rejects invalid options', () => {
    expect(() => new MemoryOfflineQueue({ maxLength: -1, dropPolicy: 'drop-oldest' })).toThrow(RangeError);
    expect(() => new MemoryOfflineQueue({ maxLength: 1.5, dropPolicy: 'drop-oldest' })).toThrow(RangeError);
    expect(() => new MemoryOfflineQueue({ maxLength: 1, dropPolicy: 'drop-random' as 'drop-oldest' })).toThrow(RangeError);
  });

  it("refuses every call after close as backend 'dynamodb'", async () => {
    const queue = new MemoryOfflineQueue({ maxLength: 1, dropPolicy: 'drop-oldest' });
    await queue.close();
    const calls = [
      queue.append('c', []),
      queue.appendMany(['c'], testMessage('x')),
      queue.read('c', 1),
      queue.remove('c', 1),
      queue.length('c'),
      queue.clear('c'),
    ];
    for (const call of calls) {
      await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(call).rejects.toMatchObject({ backend: 'dynamodb' });
    }
  });
});
