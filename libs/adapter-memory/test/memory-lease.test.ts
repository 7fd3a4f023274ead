import { describe, expect, it } from 'vitest';
import { describeLease } from '@fleetmq/testkit';
import { MemoryLease } from '../src/index.js';

// The contract on a manual clock: no test sleeps.
let clock = 1_700_000_000_000;
describeLease({
  make: () => new MemoryLease({ now: () => clock }),
  elapse: (ms) => {
    clock += ms;
    return Promise.resolve();
  },
});

describe('MemoryLease', () => {
  it('expires exactly at the deadline', async () => {
    let now = 0;
    const lease = new MemoryLease({ now: () => now });
    await lease.acquire('bridge:x', 'a', 1_000);
    now = 999;
    expect(await lease.holder('bridge:x')).toBe('a');
    now = 1_000;
    expect(await lease.holder('bridge:x')).toBeNull();
    expect(await lease.acquire('bridge:x', 'b', 1_000)).toBe(true);
  });
});
