import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import { describeSessionStore, minimalSnapshot, richSnapshot } from '@fleetmq/testkit';
import { MemorySessionStore } from '../src/index.js';

describeSessionStore(() => new MemorySessionStore());

describe('MemorySessionStore', () => {
  it('hands out a new copy on every load', async () => {
    const store = new MemorySessionStore();
    await store.save(richSnapshot('c'), 1);
    const a = await store.load('c');
    const b = await store.load('c');
    expect(a).toEqual(b);
    expect(a!.snapshot).not.toBe(b!.snapshot);
    expect(a!.snapshot.will!.payload).not.toBe(b!.snapshot.will!.payload);
  });

  it('counts stored sessions', async () => {
    const store = new MemorySessionStore();
    await store.save(minimalSnapshot('a'), 1);
    await store.save(minimalSnapshot('b'), 1);
    await store.save(minimalSnapshot('a'), 2);
    expect(store.size).toBe(2);
    await store.delete('a', 2);
    expect(store.size).toBe(1);
  });

  it("refuses every call after close as backend 'dynamodb'", async () => {
    const store = new MemorySessionStore();
    await store.close();
    for (const call of [store.load('c'), store.save(minimalSnapshot('c'), 1), store.delete('c', 1)]) {
      await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(call).rejects.toMatchObject({ backend: 'dynamodb' });
    }
  });
});
