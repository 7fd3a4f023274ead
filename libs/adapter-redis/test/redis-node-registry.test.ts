import { afterEach, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import { describeNodeRegistry, freePort, waitFor, TcpProxy } from '@fleetmq/testkit';
import { RedisNodeRegistry, RedisSessionOwnership, createRedisClient } from '../src/index.js';
import type { RedisNodeRegistryOptions } from '../src/index.js';
import { FAST_RECONNECT, commandCalls, redisNow, sleep, uniquePrefix, useRedisServer } from './support/helpers.js';

const redis = useRedisServer();

// Real time on a real server: TTL 300 ms (the suite's default), retention 600 ms.
describeNodeRegistry({
  make: (timing) => RedisNodeRegistry.connect({ url: redis.server.url, keyPrefix: uniquePrefix('contract'), ...timing }),
  elapse: sleep,
});

const TTL = 300;
const opened: RedisNodeRegistry[] = [];
async function registry(options: Partial<RedisNodeRegistryOptions> = {}): Promise<RedisNodeRegistry> {
  const r = await RedisNodeRegistry.connect({ url: redis.server.url, keyPrefix: uniquePrefix('reg'), ttlMs: TTL, ...options });
  opened.push(r);
  return r;
}
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

describe('RedisNodeRegistry: key layout', () => {
  it('keeps deadlines in a sorted set and info in a hash, both tagged {nodes}, under the prefix', async () => {
    const prefix = uniquePrefix('layout');
    const r = await registry({ keyPrefix: prefix, ttlMs: 5_000 });
    expect(r.keys).toEqual({ deadlines: `${prefix}{nodes}:deadlines`, info: `${prefix}{nodes}:info` });
    const before = await redisNow(redis.admin);
    await r.register('edge-1', { startedAt: 1_234, address: '10.0.0.1:1883' });
    const after = await redisNow(redis.admin);
    expect((await redis.admin.keys(`${prefix}*`)).sort()).toEqual([`${prefix}{nodes}:deadlines`, `${prefix}{nodes}:info`]);
    const deadline = Number(await redis.admin.zscore(`${prefix}{nodes}:deadlines`, 'edge-1'));
    // the deadline is the Redis clock plus the TTL
    expect(deadline).toBeGreaterThanOrEqual(before + 5_000);
    expect(deadline).toBeLessThanOrEqual(after + 5_000);
    expect(JSON.parse((await redis.admin.hget(`${prefix}{nodes}:info`, 'edge-1'))!)).toEqual({ startedAt: 1_234, address: '10.0.0.1:1883' });
    expect(await r.node('edge-1')).toEqual({ nodeId: 'edge-1', startedAt: 1_234, address: '10.0.0.1:1883', live: true, expiresAt: deadline });
    await r.deregister('edge-1');
    expect(await redis.admin.keys(`${prefix}*`)).toEqual([]);
  });

  it('removes both entries of a node once its retention is over', async () => {
    const prefix = uniquePrefix('purge');
    const r = await registry({ keyPrefix: prefix, ttlMs: 200, retainExpiredMs: 100 });
    await r.register('gone', { startedAt: 1 });
    await r.register('stays', { startedAt: 2 });
    for (let i = 0; i < 8; i++) {
      await sleep(50);
      expect(await r.heartbeat('stays')).toBe(true);
    }
    expect(await r.liveNodes()).toEqual(['stays']);
    expect(await redis.admin.zrange(`${prefix}{nodes}:deadlines`, 0, -1)).toEqual(['stays']);
    expect(await redis.admin.hkeys(`${prefix}{nodes}:info`)).toEqual(['stays']);
  });
});

describe('RedisNodeRegistry: a cluster of nodes', () => {
  it('gives every node the same view, and lets the live ones see one that stopped beating', async () => {
    const prefix = uniquePrefix('cluster');
    const nodes = await Promise.all(['edge-0', 'edge-1', 'edge-2'].map(() => registry({ keyPrefix: prefix })));
    await Promise.all(nodes.map((r, i) => r.register(`edge-${i}`, { startedAt: i })));
    for (const r of nodes) expect(await r.liveNodes()).toEqual(['edge-0', 'edge-1', 'edge-2']);
    // edge-2 stops beating (it died); the others beat every third of a TTL
    for (let i = 0; i < 4; i++) {
      await sleep(TTL / 3);
      expect(await nodes[0]!.heartbeat('edge-0')).toBe(true);
      expect(await nodes[1]!.heartbeat('edge-1')).toBe(true);
    }
    for (const r of nodes.slice(0, 2)) {
      expect(await r.liveNodes()).toEqual(['edge-0', 'edge-1']);
      expect(await r.expiredNodes()).toEqual([expect.objectContaining({ nodeId: 'edge-2', startedAt: 2, live: false })]);
    }
    // the dead node's late heartbeat does not bring it back
    expect(await nodes[2]!.heartbeat('edge-2')).toBe(false);
    expect(await nodes[0]!.liveNodes()).toEqual(['edge-0', 'edge-1']);
  });
});

describe('RedisNodeRegistry: scripts and connection', () => {
  it('sends each Lua script once per connection, then only its SHA', async () => {
    const evalBefore = await commandCalls(redis.admin, 'eval');
    const evalshaBefore = await commandCalls(redis.admin, 'evalsha');
    const r = await registry();
    for (let i = 0; i < 3; i++) await r.register(`n${i}`, { startedAt: i });
    for (let i = 0; i < 3; i++) await r.heartbeat('n0');
    await r.liveNodes();
    await r.expiredNodes();
    await r.node('n1');
    expect((await commandCalls(redis.admin, 'eval')) - evalBefore).toBe(3);
    expect((await commandCalls(redis.admin, 'evalsha')) - evalshaBefore).toBe(9 - 3);
  });

  it('shares one client with the session ownership', async () => {
    const client = createRedisClient({ url: redis.server.url, name: 'edge-shared' });
    try {
      const prefix = uniquePrefix('shared');
      const nodes = await RedisNodeRegistry.connect({ client, keyPrefix: prefix, ttlMs: 5_000 });
      const owners = await RedisSessionOwnership.connect({ client, keyPrefix: prefix });
      await nodes.register('edge-0', { startedAt: 0 });
      await owners.claim('c1', 'edge-0');
      expect(await nodes.liveNodes()).toEqual(['edge-0']);
      expect(await owners.owner('c1')).toMatchObject({ nodeId: 'edge-0' });
      expect(await client.client('GETNAME')).toBe('edge-shared');
      await nodes.close();
      await owners.close();
      expect(client.status).toBe('ready');
    } finally {
      await client.quit();
    }
  });

  it('refuses timings that are not positive whole numbers of ms', () => {
    expect(() => new RedisNodeRegistry({ url: redis.server.url, ttlMs: 0 })).toThrow(RangeError);
    expect(() => new RedisNodeRegistry({ url: redis.server.url, ttlMs: 1.5 })).toThrow(RangeError);
    expect(() => new RedisNodeRegistry({ url: redis.server.url, retainExpiredMs: -1 })).toThrow(RangeError);
  });

  it('uses a 10 s TTL and a 10 min retention by default', async () => {
    const r = await RedisNodeRegistry.connect({ url: redis.server.url, keyPrefix: uniquePrefix('defaults') });
    opened.push(r);
    expect(r.ttlMs).toBe(10_000);
    expect(r.retainExpiredMs).toBe(600_000);
  });

  it('refuses every call at once while Redis is unreachable, and recovers by itself', async () => {
    const proxy = new TcpProxy(await freePort(), redis.server.port, 'redis');
    await proxy.listen();
    try {
      const r = await registry({ url: proxy.url, reconnect: FAST_RECONNECT, ttlMs: 5_000 });
      await r.register('edge-0', { startedAt: 0 });
      await proxy.stop();
      await waitFor(() => !r.ready, 'the registry to notice Redis went away');
      const calls: Array<Promise<unknown>> = [
        r.register('edge-1', { startedAt: 1 }),
        r.heartbeat('edge-0'),
        r.deregister('edge-0'),
        r.liveNodes(),
        r.expiredNodes(),
        r.node('edge-0'),
      ];
      for (const call of calls) {
        await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
        await expect(call).rejects.toMatchObject({ backend: 'redis' });
      }
      await proxy.listen();
      await waitFor(() => r.ready, 'the registry to reconnect', { timeoutMs: 5_000 });
      expect(await r.heartbeat('edge-0')).toBe(true);
      expect(await r.liveNodes()).toEqual(['edge-0']);
    } finally {
      await proxy.stop();
    }
  });
});
