import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import type { ClaimResult } from '@fleetmq/broker';
import { describeSessionOwnership, freePort, startRedisServer, waitFor, TcpProxy } from '@fleetmq/testkit';
import type { RedisFixture } from '@fleetmq/testkit';
import { CLAIM_FROM_SCRIPT, CLAIM_SCRIPT, RELEASE_SCRIPT, RedisSessionOwnership, createRedisClient } from '../src/index.js';
import type { RedisSessionOwnershipOptions } from '../src/index.js';
import { FAST_RECONNECT, commandCalls, recordingLog, redisNow, uniquePrefix, useRedisServer } from './support/helpers.js';

const redis = useRedisServer();

describe('epochs: clock (default)', () => {
  describeSessionOwnership(() => RedisSessionOwnership.connect({ url: redis.server.url, keyPrefix: uniquePrefix('contract') }));
});

describe('epochs: counter', () => {
  describeSessionOwnership(() =>
    RedisSessionOwnership.connect({ url: redis.server.url, keyPrefix: uniquePrefix('contract'), epochs: 'counter' }),
  );
});

/** Ownerships opened by one test, closed after it. */
const opened: RedisSessionOwnership[] = [];
async function ownership(options: Partial<RedisSessionOwnershipOptions> = {}): Promise<RedisSessionOwnership> {
  const o = await RedisSessionOwnership.connect({ url: redis.server.url, keyPrefix: uniquePrefix('own'), ...options });
  opened.push(o);
  return o;
}
afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
});

/** Checks that claims form one chain: each saw exactly the claim before it. */
function expectOneChain(claims: ReadonlyArray<ClaimResult & { nodeId: string }>): void {
  const sorted = [...claims].sort((a, b) => a.epoch - b.epoch);
  expect(new Set(sorted.map((c) => c.epoch)).size).toBe(claims.length);
  expect(sorted[0]!.previous).toBeNull();
  for (let i = 1; i < sorted.length; i++) {
    expect(sorted[i]!.previous).toEqual({ nodeId: sorted[i - 1]!.nodeId, epoch: sorted[i - 1]!.epoch });
  }
}

describe('RedisSessionOwnership: key layout', () => {
  it('keeps one hash per client ID under the key prefix (node while owned, the last epoch always) and a set per owning node', async () => {
    const prefix = uniquePrefix('layout');
    const o = await ownership({ keyPrefix: prefix });
    const claim = await o.claim('c1', 'node-a');
    expect(o.key('c1')).toBe(`${prefix}owner:c1`);
    expect(o.ownedKey('node-a')).toBe(`${prefix}owned:node-a`);
    expect((await redis.admin.keys(`${prefix}*`)).sort()).toEqual([`${prefix}owned:node-a`, `${prefix}owner:c1`]);
    expect(await redis.admin.hgetall(`${prefix}owner:c1`)).toEqual({ node: 'node-a', epoch: String(claim.epoch) });
    expect(await redis.admin.smembers(`${prefix}owned:node-a`)).toEqual(['c1']);
    expect(await o.release('c1', claim.epoch)).toBe(true);
    expect(await redis.admin.hgetall(`${prefix}owner:c1`)).toEqual({ epoch: String(claim.epoch) });
    expect(await redis.admin.exists(`${prefix}owned:node-a`)).toBe(0);
    expect(await o.owner('c1')).toBeNull();
  });

  it("uses the prefix 'fleetmq:' by default, and keeps prefixes apart", async () => {
    const clientId = `default-prefix-${process.pid}-${Date.now()}`;
    const plain = await RedisSessionOwnership.connect({ url: redis.server.url });
    opened.push(plain);
    const other = await ownership({ keyPrefix: 'elsewhere:' });
    const a = await plain.claim(clientId, 'node-a');
    expect(plain.key(clientId)).toBe(`fleetmq:owner:${clientId}`);
    expect(await redis.admin.hget(`fleetmq:owner:${clientId}`, 'node')).toBe('node-a');
    expect(await other.owner(clientId)).toBeNull();
    const b = await other.claim(clientId, 'node-b');
    expect(b.previous).toBeNull();
    expect(await plain.owner(clientId)).toEqual({ nodeId: 'node-a', epoch: a.epoch });
    await redis.admin.del(`fleetmq:owner:${clientId}`, `elsewhere:owner:${clientId}`);
    await redis.admin.srem('fleetmq:owned:node-a', clientId);
  });

  it('takes any client ID as it is, braces and all', async () => {
    const o = await ownership();
    const clientId = '{tag}/ü:*?[x] 日本';
    const claim = await o.claim(clientId, 'node-a');
    expect(await redis.admin.hget(o.key(clientId), 'node')).toBe('node-a');
    expect(await o.owner(clientId)).toEqual({ nodeId: 'node-a', epoch: claim.epoch });
  });
});

describe('RedisSessionOwnership: epochs', () => {
  it('counts 1, 2, 3… per client ID across releases in counter mode', async () => {
    const o = await ownership({ epochs: 'counter' });
    expect((await o.claim('c', 'n1')).epoch).toBe(1);
    expect(await o.release('c', 1)).toBe(true);
    expect((await o.claim('c', 'n2')).epoch).toBe(2);
    expect((await o.claim('other', 'n1')).epoch).toBe(1);
    expect((await o.claim('c', 'n1')).epoch).toBe(3);
  });

  it('hands out at least the Redis time in ms in clock mode, strictly increasing within one ms', async () => {
    const o = await ownership();
    expect(o.epochs).toBe('clock');
    const before = await redisNow(redis.admin);
    const claims = await Promise.all(Array.from({ length: 50 }, () => o.claim('burst', 'n1')));
    const after = await redisNow(redis.admin);
    const epochs = claims.map((c) => c.epoch).sort((a, b) => a - b);
    expect(epochs[0]).toBeGreaterThanOrEqual(before);
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThan(epochs[i - 1]!);
    // a burst faster than the clock counts on by one, so it stays close to the clock
    expect(epochs[epochs.length - 1]).toBeLessThanOrEqual(after + epochs.length);
    expect(Number.isSafeInteger(epochs[epochs.length - 1])).toBe(true);
  });

  it('orders concurrent claims from two connections into one exact chain', async () => {
    const a = await ownership({ epochs: 'counter' });
    const b = await RedisSessionOwnership.connect({ url: redis.server.url, keyPrefix: a.key('').slice(0, -'owner:'.length), epochs: 'counter' });
    opened.push(b);
    const claims = await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const nodeId = `${i % 2 === 0 ? 'a' : 'b'}-${i}`;
        return (i % 2 === 0 ? a : b).claim('contended', nodeId).then((c) => ({ ...c, nodeId }));
      }),
    );
    expect(claims.map((c) => c.epoch).sort((x, y) => x - y)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expectOneChain(claims);
    const last = claims.find((c) => c.epoch === 60)!;
    expect(await a.owner('contended')).toEqual({ nodeId: last.nodeId, epoch: 60 });
    expect(await b.owner('contended')).toEqual({ nodeId: last.nodeId, epoch: 60 });
  });

  it('orders concurrent claims from two connections into one chain in clock mode too', async () => {
    const a = await ownership();
    const b = await RedisSessionOwnership.connect({ url: redis.server.url, keyPrefix: a.key('').slice(0, -'owner:'.length) });
    opened.push(b);
    const claims = await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const nodeId = `node-${i}`;
        return (i % 2 === 0 ? a : b).claim('contended', nodeId).then((c) => ({ ...c, nodeId }));
      }),
    );
    expectOneChain(claims);
  });

  it('refuses to release with an epoch that cannot exist, keeping the owner', async () => {
    const o = await ownership();
    const claim = await o.claim('c1', 'n1');
    for (const epoch of [claim.epoch + 0.5, Number.NaN, -claim.epoch, 0, Number.POSITIVE_INFINITY]) {
      expect(await o.release('c1', epoch)).toBe(false);
    }
    expect(await o.owner('c1')).toEqual({ nodeId: 'n1', epoch: claim.epoch });
  });
});

describe('RedisSessionOwnership: scripts', () => {
  it('sends each Lua script once per connection (EVAL), then only its SHA (EVALSHA)', async () => {
    const evalBefore = await commandCalls(redis.admin, 'eval');
    const evalshaBefore = await commandCalls(redis.admin, 'evalsha');
    const o = await ownership();
    for (let i = 0; i < 5; i++) await o.claim('c1', `n${i}`);
    const last = await o.claim('c2', 'n1');
    await o.release('c1', 1);
    await o.release('c2', last.epoch);
    await o.release('c2', last.epoch);
    expect((await commandCalls(redis.admin, 'eval')) - evalBefore).toBe(2);
    expect((await commandCalls(redis.admin, 'evalsha')) - evalshaBefore).toBe(6 + 3 - 2);
    const sha = (lua: string): string => createHash('sha1').update(lua).digest('hex');
    expect(await redis.admin.script('EXISTS', sha(CLAIM_SCRIPT), sha(RELEASE_SCRIPT))).toEqual([1, 1]);
  });

  it('changes the per-node index in the same script as the claim or release: a node that dies right after one leaves the index right', async () => {
    // each script run by itself, as the only command a node got out before it died
    const prefix = uniquePrefix('atomic');
    const o = await ownership({ keyPrefix: prefix });
    const owned = (node: string): Promise<string[]> => redis.admin.smembers(o.ownedKey(node)).then((ids) => ids.sort());
    const claim = (clientId: string, node: string): Promise<unknown> =>
      redis.admin.eval(CLAIM_SCRIPT, 2, o.key(clientId), o.ownedKey(node), node, 'counter', '', o.ownedKey(''), clientId);
    await claim('c1', 'node-a');
    await claim('c2', 'node-a');
    expect(await owned('node-a')).toEqual(['c1', 'c2']);
    await claim('c1', 'node-b');
    expect(await owned('node-a')).toEqual(['c2']);
    expect(await owned('node-b')).toEqual(['c1']);
    await redis.admin.eval(CLAIM_FROM_SCRIPT, 2, o.key('c2'), o.ownedKey('node-c'), 'node-c', 'counter', 'node-a', o.ownedKey(''), 'c2');
    expect(await owned('node-a')).toEqual([]);
    expect(await owned('node-c')).toEqual(['c2']);
    expect(await redis.admin.eval(RELEASE_SCRIPT, 1, o.key('c2'), '2', o.ownedKey(''), 'c2')).toBe('node-c');
    expect(await owned('node-c')).toEqual([]);
    // and the adapter reads what the scripts wrote
    expect(await o.owner('c1')).toEqual({ nodeId: 'node-b', epoch: 2 });
    expect((await o.ownedBy('node-b', '0', 10)).clientIds).toEqual(['c1']);
  });

  it('shares one client with other adapters, defining the scripts once, and leaves it open on close', async () => {
    const client = createRedisClient({ url: redis.server.url });
    try {
      const prefix = uniquePrefix('shared');
      const one = await RedisSessionOwnership.connect({ client, keyPrefix: prefix });
      const two = await RedisSessionOwnership.connect({ client, keyPrefix: prefix });
      const first = await one.claim('c1', 'n1');
      const second = await two.claim('c1', 'n2');
      expect(second.previous).toEqual({ nodeId: 'n1', epoch: first.epoch });
      await one.close();
      expect(one.ready).toBe(false);
      await expect(one.owner('c1')).rejects.toBeInstanceOf(BackendUnavailableError);
      expect(client.status).toBe('ready');
      expect(await two.owner('c1')).toEqual({ nodeId: 'n2', epoch: second.epoch });
      await two.close();
      expect(await client.hget(`${prefix}owner:c1`, 'node')).toBe('n2');
    } finally {
      await client.quit();
    }
  });
});

describe('RedisSessionOwnership: connection', () => {
  it('needs a url or a client', () => {
    expect(() => new RedisSessionOwnership({})).toThrow(TypeError);
  });

  it('connects in the background when constructed: not ready at first, ready once connected', async () => {
    const o = new RedisSessionOwnership({ url: redis.server.url, keyPrefix: uniquePrefix('bg') });
    opened.push(o);
    expect(o.ready).toBe(false);
    await expect(o.owner('c1')).rejects.toBeInstanceOf(BackendUnavailableError);
    await waitFor(() => o.ready, 'the background connection');
    expect(await o.owner('c1')).toBeNull();
  });

  it('fails to connect with BackendUnavailableError when nothing listens', async () => {
    const port = await freePort();
    const started = Date.now();
    const attempt = RedisSessionOwnership.connect({ url: `redis://127.0.0.1:${port}`, readyTimeoutMs: 300, reconnect: FAST_RECONNECT });
    await expect(attempt).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(attempt).rejects.toMatchObject({ backend: 'redis' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  describe('outages (through a proxy)', () => {
    let proxy: TcpProxy;
    beforeAll(async () => {
      proxy = new TcpProxy(await freePort(), redis.server.port, 'redis');
      await proxy.listen();
    });
    afterAll(async () => {
      await proxy?.stop();
    });

    it('refuses every call at once while Redis is unreachable, reports not ready, and recovers by itself', async () => {
      const log = recordingLog();
      const o = await ownership({ url: proxy.url, reconnect: FAST_RECONNECT, log });
      const before = await o.claim('c1', 'node-a');
      expect(o.ready).toBe(true);

      await proxy.stop();
      await waitFor(() => !o.ready, 'the ownership to notice Redis went away');
      const started = Date.now();
      const calls: Array<Promise<unknown>> = [o.claim('c1', 'node-b'), o.release('c1', before.epoch), o.owner('c1')];
      for (const call of calls) {
        await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
        await expect(call).rejects.toMatchObject({ backend: 'redis' });
      }
      expect(Date.now() - started).toBeLessThan(100);
      // still down after several reconnection attempts: still refused, still not ready
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(o.ready).toBe(false);
      await expect(o.owner('c1')).rejects.toBeInstanceOf(BackendUnavailableError);

      await proxy.listen();
      await waitFor(() => o.ready, 'the ownership to reconnect', { timeoutMs: 5_000 });
      const after = await o.claim('c1', 'node-b');
      expect(after.previous).toEqual({ nodeId: 'node-a', epoch: before.epoch });
      // one outage, a few lines: the refused reconnection attempts are logged once, with the reason
      expect(log.lines.map((l) => l.msg)).toEqual(['redis_connected', 'redis_disconnected', 'redis_error', 'redis_reconnected']);
      expect(log.lines[2]!.fields).toMatchObject({ error: expect.stringContaining('ECONNREFUSED') });
    });

    it('fails a command that gets no answer after commandTimeoutMs; the command may still run later', async () => {
      const o = await ownership({ url: proxy.url, reconnect: FAST_RECONNECT, commandTimeoutMs: 200 });
      const first = await o.claim('c1', 'node-a');
      proxy.freeze();
      try {
        const started = Date.now();
        const hung = o.claim('c1', 'node-hung');
        await expect(hung).rejects.toBeInstanceOf(BackendUnavailableError);
        await expect(hung).rejects.toThrow(/timed out/);
        expect(Date.now() - started).toBeGreaterThanOrEqual(190);
        expect(Date.now() - started).toBeLessThan(1_000);
      } finally {
        proxy.thaw();
      }
      // the held claim reached Redis once the bytes flowed: the next claim sees it
      const next = await o.claim('c1', 'node-b');
      expect(next.previous).toMatchObject({ nodeId: 'node-hung' });
      expect(next.previous!.epoch).toBeGreaterThan(first.epoch);
    });

    it('fails a command in flight when the connection drops, without sending it again', async () => {
      const o = await ownership({ url: proxy.url, reconnect: FAST_RECONNECT, epochs: 'counter' });
      await o.claim('c1', 'node-a');
      proxy.freeze();
      const inFlight = o.claim('c1', 'node-lost');
      await proxy.stop();
      proxy.thaw();
      await expect(inFlight).rejects.toBeInstanceOf(BackendUnavailableError);
      await proxy.listen();
      await waitFor(() => o.ready, 'the ownership to reconnect', { timeoutMs: 5_000 });
      // the held bytes died with the connection, and ioredis did not resend the claim
      expect(await o.owner('c1')).toEqual({ nodeId: 'node-a', epoch: 1 });
    });
  });

  describe('a Redis restart (no persistence: it loses its data)', () => {
    let own: RedisFixture;
    beforeAll(async () => {
      own = await startRedisServer();
    });
    afterAll(async () => {
      await own?.stop();
    });

    it('refuses while down, recovers by itself, and clock epochs keep growing over the lost data', async () => {
      const clock = await ownership({ url: own.url, reconnect: FAST_RECONNECT });
      const counter = await ownership({ url: own.url, reconnect: FAST_RECONNECT, epochs: 'counter' });
      const clockBefore = await clock.claim('c1', 'node-a');
      await counter.claim('c1', 'node-a');
      expect((await counter.claim('c1', 'node-a')).epoch).toBe(2);

      const restarting = own.restart();
      await waitFor(() => !clock.ready, 'the ownership to notice the restart', { timeoutMs: 5_000 });
      // in the same tick as the check: nothing can reconnect in between
      const refused = clock.claim('c1', 'node-b');
      await expect(refused).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(refused).rejects.toMatchObject({ backend: 'redis' });
      await restarting;

      await waitFor(() => clock.ready && counter.ready, 'both to reconnect', { timeoutMs: 10_000 });
      expect(await clock.owner('c1')).toBeNull(); // the data is gone
      const clockAfter = await clock.claim('c1', 'node-b');
      expect(clockAfter.previous).toBeNull();
      expect(clockAfter.epoch).toBeGreaterThan(clockBefore.epoch);
      // the counter starts over: why it needs a Redis that persists, and clock is the default
      expect((await counter.claim('c1', 'node-b')).epoch).toBe(1);
    });
  });
});
