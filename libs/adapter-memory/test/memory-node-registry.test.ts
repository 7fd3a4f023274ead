import { afterEach, describe, expect, it, vi } from 'vitest';
import { describeNodeRegistry } from '@fleetmq/testkit';
import { MemoryNodeRegistry } from '../src/index.js';

// The contract on a manual clock: no test sleeps.
let clock = 1_700_000_000_000;
describeNodeRegistry({
  make: (timing) => new MemoryNodeRegistry({ ...timing, now: () => clock }),
  elapse: (ms) => {
    clock += ms;
    return Promise.resolve();
  },
});

describe('MemoryNodeRegistry', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires a node exactly at its deadline', async () => {
    let now = 0;
    const registry = new MemoryNodeRegistry({ ttlMs: 1_000, retainExpiredMs: 500, now: () => now });
    await registry.register('n1', { startedAt: 0 });
    expect(await registry.node('n1')).toEqual({ nodeId: 'n1', startedAt: 0, live: true, expiresAt: 1_000 });
    now = 999;
    expect(await registry.liveNodes()).toEqual(['n1']);
    now = 1_000;
    expect(await registry.liveNodes()).toEqual([]);
    expect(await registry.expiredNodes()).toEqual([{ nodeId: 'n1', startedAt: 0, live: false, expiresAt: 1_000 }]);
    now = 1_499;
    expect(await registry.node('n1')).toMatchObject({ live: false });
    now = 1_500;
    expect(await registry.node('n1')).toBeNull();
  });

  it('extends the deadline by the TTL from the heartbeat', async () => {
    let now = 0;
    const registry = new MemoryNodeRegistry({ ttlMs: 1_000, now: () => now });
    await registry.register('n1', { startedAt: 0 });
    now = 700;
    expect(await registry.heartbeat('n1')).toBe(true);
    expect((await registry.node('n1'))!.expiresAt).toBe(1_700);
  });

  it('uses Date.now by default (fake timers)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(50_000);
    const registry = new MemoryNodeRegistry({ ttlMs: 2_000 });
    await registry.register('n1', { startedAt: 50_000 });
    vi.advanceTimersByTime(1_999);
    expect(await registry.liveNodes()).toEqual(['n1']);
    vi.advanceTimersByTime(1);
    expect(await registry.liveNodes()).toEqual([]);
    expect((await registry.expiredNodes()).map((r) => r.expiresAt)).toEqual([52_000]);
  });

  it('keeps its own copy of the info and hands out frozen records', async () => {
    const registry = new MemoryNodeRegistry();
    const info = { startedAt: 1, address: 'a:1883' };
    await registry.register('n1', info);
    info.address = 'changed';
    const record = await registry.node('n1');
    expect(record).toMatchObject({ address: 'a:1883' });
    expect(Object.isFrozen(record)).toBe(true);
  });

  it('refuses timings that are not positive', () => {
    expect(() => new MemoryNodeRegistry({ ttlMs: 0 })).toThrow(RangeError);
    expect(() => new MemoryNodeRegistry({ retainExpiredMs: -1 })).toThrow(RangeError);
    expect(() => new MemoryNodeRegistry({ ttlMs: Number.NaN })).toThrow(RangeError);
  });
});
