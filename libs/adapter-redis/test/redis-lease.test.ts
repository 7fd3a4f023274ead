import { afterEach, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import { describeLease } from '@fleetmq/testkit';
import { RedisLease } from '../src/index.js';
import { sleep, uniquePrefix, useRedisServer } from './support/helpers.js';

const redis = useRedisServer();

// Real time on a real server: TTL 300 ms.
describeLease({
  make: () => RedisLease.connect({ url: redis.server.url, keyPrefix: uniquePrefix('contract') }),
  elapse: sleep,
});

const opened: RedisLease[] = [];
async function lease(keyPrefix: string): Promise<RedisLease> {
  const l = await RedisLease.connect({ url: redis.server.url, keyPrefix });
  opened.push(l);
  return l;
}
afterEach(async () => {
  for (const l of opened.splice(0)) await l.close();
});

describe('RedisLease', () => {
  it('is one string key <prefix><name> holding the holder, with the TTL in PX', async () => {
    const prefix = uniquePrefix('layout');
    const l = await lease(prefix);
    expect(l.key('bridge:cloud')).toBe(`${prefix}bridge:cloud`);
    await l.acquire('bridge:cloud', 'edge-1/abc', 5_000);
    expect(await redis.admin.get(`${prefix}bridge:cloud`)).toBe('edge-1/abc');
    const pttl = await redis.admin.pttl(`${prefix}bridge:cloud`);
    expect(pttl).toBeGreaterThan(4_000);
    expect(pttl).toBeLessThanOrEqual(5_000);
  });

  it('is one lease for every node on the same Redis and prefix', async () => {
    const prefix = uniquePrefix('shared');
    const a = await lease(prefix);
    const b = await lease(prefix);
    expect(await a.acquire('bridge:x', 'node-a', 5_000)).toBe(true);
    expect(await b.acquire('bridge:x', 'node-b', 5_000)).toBe(false);
    expect(await b.holder('bridge:x')).toBe('node-a');
    expect(await a.release('bridge:x', 'node-a')).toBe(true);
    expect(await b.acquire('bridge:x', 'node-b', 5_000)).toBe(true);
  });

  it('of many nodes racing for a free lease, exactly one wins', async () => {
    const prefix = uniquePrefix('race');
    const nodes = await Promise.all([1, 2, 3, 4, 5].map(() => lease(prefix)));
    const results = await Promise.all(nodes.map((n, i) => n.acquire('bridge:race', `node-${i}`, 5_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('refuses with BackendUnavailableError while Redis is not connected', async () => {
    const l = new RedisLease({ url: 'redis://127.0.0.1:1', keyPrefix: uniquePrefix('down') });
    opened.push(l);
    await expect(l.acquire('bridge:x', 'a', 1_000)).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});
