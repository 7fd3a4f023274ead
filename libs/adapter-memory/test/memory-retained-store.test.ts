import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, topicMatches } from '@fleetmq/protocol';
import { collect, describeRetainedStore, testMessage } from '@fleetmq/testkit';
import { MemoryRetainedStore } from '../src/index.js';

describeRetainedStore(() => new MemoryRetainedStore());

describe('MemoryRetainedStore', () => {
  it("walks only the branch of a filter's literal first level", async () => {
    const store = new MemoryRetainedStore();
    for (let i = 0; i < 500; i++) await store.set(testMessage(`b/${i}/x`));
    await store.set(testMessage('a/1'));
    await store.set(testMessage('a/2'));
    const before = store.nodesVisited;
    const found = await collect(store.match(['a/+']));
    expect(found.map((m) => m.topic).sort()).toEqual(['a/1', 'a/2']);
    // root, 'a', 'a/1', 'a/2': nothing under 'b'
    expect(store.nodesVisited - before).toBe(4);
  });

  it("walks only the subtree below a filter's literal levels for '#'", async () => {
    const store = new MemoryRetainedStore();
    for (let i = 0; i < 200; i++) await store.set(testMessage(`s/other/${i}`));
    await store.set(testMessage('s/mine'));
    await store.set(testMessage('s/mine/1'));
    const before = store.nodesVisited;
    expect((await collect(store.match(['s/mine/#']))).map((m) => m.topic).sort()).toEqual(['s/mine', 's/mine/1']);
    expect(store.nodesVisited - before).toBe(4);
  });

  it('agrees with topicMatches on every filter and topic of a mixed set', async () => {
    const topics = ['a', 'a/b', 'a/b/c', 'a//c', '/a', 'a/', '/', '$SYS/x', '$SYS', 'b/a/c', 'a/c/b', '$x/a'];
    const filters = ['#', '+', '+/+', 'a/#', 'a/+', 'a/+/c', '+/a', '/+', '+/#', '$SYS/#', '$SYS/+', '+/+/+', 'a/b/#', '$x/+', '/#'];
    const store = new MemoryRetainedStore();
    for (const topic of topics) await store.set(testMessage(topic));
    for (const filter of filters) {
      const found = (await collect(store.match([filter]))).map((m) => m.topic).sort();
      expect({ filter, found }).toEqual({ filter, found: topics.filter((t) => topicMatches(filter, t)).sort() });
    }
  });

  it('deletes an expired message lazily when a lookup meets it', async () => {
    const store = new MemoryRetainedStore();
    await store.set(testMessage('e/old', { expiresAt: Date.now() - 1 }));
    await store.set(testMessage('e/gone', { expiresAt: Date.now() - 1 }));
    await store.set(testMessage('e/live'));
    expect(await store.count()).toBe(3);
    expect(await collect(store.match(['e/old']))).toEqual([]);
    expect(await store.count()).toBe(2);
    expect(await store.get('e/gone')).toBeNull();
    expect(await store.count()).toBe(1);
  });

  it('handles very deep topics without recursion', async () => {
    const store = new MemoryRetainedStore();
    const deep = Array.from({ length: 20_000 }, () => 'l').join('/');
    await store.set(testMessage(deep));
    expect((await collect(store.match(['#']))).map((m) => m.topic)).toEqual([deep]);
    expect((await collect(store.match([`${deep.slice(0, -1)}+`]))).map((m) => m.topic)).toEqual([deep]);
    await store.set(testMessage(deep, { payload: Buffer.alloc(0) }));
    expect(await store.count()).toBe(0);
  });

  it("refuses every call after close as backend 'dynamodb'", async () => {
    const store = new MemoryRetainedStore();
    await store.close();
    const calls = [store.set(testMessage('a')), store.get('a'), store.count(), collect(store.match(['#']))];
    for (const call of calls) {
      await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(call).rejects.toMatchObject({ backend: 'dynamodb' });
    }
  });
});
