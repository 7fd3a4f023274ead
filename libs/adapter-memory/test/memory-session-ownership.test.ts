import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import { describeSessionOwnership } from '@fleetmq/testkit';
import { MemorySessionOwnership } from '../src/index.js';

describeSessionOwnership(() => new MemorySessionOwnership());

describe('MemorySessionOwnership', () => {
  it('hands out epochs from one counter: growing for each client ID across releases', async () => {
    const ownership = new MemorySessionOwnership();
    expect((await ownership.claim('c', 'n1')).epoch).toBe(1);
    expect(await ownership.release('c', 1)).toBe(true);
    expect(await ownership.owner('c')).toBeNull();
    expect((await ownership.claim('c', 'n2')).epoch).toBe(2);
    expect((await ownership.claim('other', 'n1')).epoch).toBe(3);
    expect((await ownership.claim('c', 'n1')).epoch).toBe(4);
  });

  it('refuses an ownedBy cursor it never returned, with a clear error', async () => {
    const ownership = new MemorySessionOwnership();
    await ownership.claim('c', 'n1');
    await expect(ownership.ownedBy('n1', '17', 10)).rejects.toThrow(/cursor must be '0' or one this method returned/);
    const first = await ownership.ownedBy('n1', '0', 10);
    expect(first).toEqual({ clientIds: ['c'], cursor: '0' });
  });

  it('returns owner records that cannot be changed', async () => {
    const ownership = new MemorySessionOwnership();
    await ownership.claim('c', 'n1');
    const record = await ownership.owner('c');
    expect(Object.isFrozen(record)).toBe(true);
  });

  it("refuses every call after close as backend 'redis'", async () => {
    const ownership = new MemorySessionOwnership();
    await ownership.claim('c', 'n1');
    await ownership.close();
    for (const call of [ownership.claim('c', 'n2'), ownership.release('c', 1), ownership.owner('c')]) {
      await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(call).rejects.toMatchObject({ backend: 'redis' });
    }
  });
});
