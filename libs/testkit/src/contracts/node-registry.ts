import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import type { NodeRegistry } from '@fleetmq/broker';
import { portFixture } from './support.js';

export interface NodeRegistryTiming {
  readonly ttlMs: number;
  readonly retainExpiredMs: number;
}

export interface NodeRegistryHarness {
  /** A fresh, empty registry with these timings; the suite closes it after each test. */
  make(timing: NodeRegistryTiming): Promise<NodeRegistry> | NodeRegistry;
  /**
   * Lets `ms` pass on the registry's clock: a real sleep for a server (at least `ms`), an
   * advance of a manual or fake clock for an in-process registry.
   */
  elapse(ms: number): Promise<void>;
  /** The heartbeat TTL the suite uses (default 300 ms); the retention is twice that. */
  readonly ttlMs?: number;
}

/**
 * The NodeRegistry contract (ports/node-registry.ts): live while heartbeats come within the
 * TTL, expired (and listed as such for the retention) when they stop, never revived by a
 * heartbeat, removed at once by deregister, sorted lists, refusal after close.
 *
 * Timing margins for a real clock: a node is expected live only when its last heartbeat is
 * at most 2/3 TTL old, and expired only when at least 7/6 TTL have passed since it, so a test
 * fails only if a sleep overshoots by a third of the TTL.
 */
export function describeNodeRegistry(harness: NodeRegistryHarness): void {
  describe('NodeRegistry contract', () => {
    const ttlMs = harness.ttlMs ?? 300;
    const timing: NodeRegistryTiming = { ttlMs, retainExpiredMs: 2 * ttlMs };
    const third = Math.ceil(ttlMs / 3);
    const ports = portFixture(() => harness.make(timing));
    const elapse = (ms: number): Promise<void> => harness.elapse(ms);

    it('knows no node while empty', async () => {
      const registry = await ports.open();
      expect(await registry.liveNodes()).toEqual([]);
      expect(await registry.expiredNodes()).toEqual([]);
      expect(await registry.node('nobody')).toBeNull();
      expect(await registry.heartbeat('nobody')).toBe(false);
      expect(await registry.liveNodes()).toEqual([]);
    });

    it('reports the timings it was made with', async () => {
      const registry = await ports.open();
      expect(registry.ttlMs).toBe(timing.ttlMs);
      expect(registry.retainExpiredMs).toBe(timing.retainExpiredMs);
    });

    it('lists registered nodes as live, sorted by ID, with their info', async () => {
      const registry = await ports.open();
      const startedAt = Date.now() - 5_000;
      await registry.register('node-ü', { startedAt: startedAt + 2 });
      await registry.register('node-b', { startedAt, address: '10.0.0.2:1883' });
      await registry.register('node-a', { startedAt: startedAt + 1 });
      expect(await registry.liveNodes()).toEqual(['node-a', 'node-b', 'node-ü']);
      expect(await registry.expiredNodes()).toEqual([]);
      const b = await registry.node('node-b');
      expect(b).toEqual({ nodeId: 'node-b', startedAt, address: '10.0.0.2:1883', live: true, expiresAt: expect.any(Number) });
      const a = await registry.node('node-a');
      expect(a).toEqual({ nodeId: 'node-a', startedAt: startedAt + 1, live: true, expiresAt: expect.any(Number) });
      expect(a !== null && 'address' in a).toBe(false);
    });

    it('refreshes the info of a node that registers again, keeping one entry', async () => {
      const registry = await ports.open();
      await registry.register('n1', { startedAt: 1_000, address: 'old:1883' });
      await registry.register('n1', { startedAt: 2_000, address: 'new:1883' });
      expect(await registry.liveNodes()).toEqual(['n1']);
      expect(await registry.node('n1')).toMatchObject({ startedAt: 2_000, address: 'new:1883', live: true });
    });

    it('keeps a node live for as long as it beats within the TTL', async () => {
      const registry = await ports.open();
      await registry.register('n1', { startedAt: Date.now() });
      const first = await registry.node('n1');
      for (let i = 0; i < 5; i++) {
        await elapse(third);
        expect(await registry.heartbeat('n1')).toBe(true);
      }
      expect(await registry.liveNodes()).toEqual(['n1']);
      expect(await registry.expiredNodes()).toEqual([]);
      const later = await registry.node('n1');
      // five beats a third of a TTL apart moved the deadline on by at least that (a few ms of clock rounding)
      expect(later!.expiresAt).toBeGreaterThanOrEqual(first!.expiresAt + 5 * third - 10);
    });

    it('expires a node that stops beating, and only that node', async () => {
      const registry = await ports.open();
      await registry.register('beating', { startedAt: 1 });
      await registry.register('silent', { startedAt: 2, address: 'silent:1883' });
      await elapse(Math.ceil(ttlMs / 2));
      expect(await registry.heartbeat('beating')).toBe(true);
      await elapse(2 * third);
      expect(await registry.liveNodes()).toEqual(['beating']);
      const expired = await registry.expiredNodes();
      expect(expired).toEqual([
        { nodeId: 'silent', startedAt: 2, address: 'silent:1883', live: false, expiresAt: expect.any(Number) },
      ]);
      expect(await registry.node('silent')).toEqual(expired[0]);
      expect((await registry.node('beating'))!.expiresAt).toBeGreaterThan(expired[0]!.expiresAt);
    });

    it('does not bring an expired node back with a heartbeat, only with register', async () => {
      const registry = await ports.open();
      await registry.register('n1', { startedAt: 1 });
      await elapse(ttlMs + third);
      expect(await registry.heartbeat('n1')).toBe(false);
      expect(await registry.liveNodes()).toEqual([]);
      const [dead] = await registry.expiredNodes();
      expect(dead).toMatchObject({ nodeId: 'n1', live: false });
      await registry.register('n1', { startedAt: 2 });
      expect(await registry.liveNodes()).toEqual(['n1']);
      expect(await registry.expiredNodes()).toEqual([]);
      const back = await registry.node('n1');
      expect(back).toMatchObject({ startedAt: 2, live: true });
      expect(back!.expiresAt).toBeGreaterThan(dead!.expiresAt);
      expect(await registry.heartbeat('n1')).toBe(true);
    });

    it('lists an expired node for the retention after its deadline, then forgets it', async () => {
      const registry = await ports.open();
      await registry.register('n1', { startedAt: 1 });
      await elapse(ttlMs + third);
      expect((await registry.expiredNodes()).map((r) => r.nodeId)).toEqual(['n1']);
      await elapse(timing.retainExpiredMs);
      expect(await registry.expiredNodes()).toEqual([]);
      expect(await registry.node('n1')).toBeNull();
      expect(await registry.heartbeat('n1')).toBe(false);
      expect(await registry.liveNodes()).toEqual([]);
    });

    it('removes a deregistered node at once, neither live nor expired, idempotently', async () => {
      const registry = await ports.open();
      await registry.register('leaving', { startedAt: 1 });
      await registry.register('staying', { startedAt: 2 });
      await registry.deregister('leaving');
      await registry.deregister('leaving');
      await registry.deregister('never-registered');
      expect(await registry.liveNodes()).toEqual(['staying']);
      expect(await registry.node('leaving')).toBeNull();
      expect(await registry.heartbeat('leaving')).toBe(false);
      await elapse(ttlMs + third);
      expect(await registry.expiredNodes()).toEqual([expect.objectContaining({ nodeId: 'staying' })]);
      await registry.deregister('staying');
      expect(await registry.expiredNodes()).toEqual([]);
      expect(await registry.liveNodes()).toEqual([]);
    });

    it("is ready until closed, then refuses every call with BackendUnavailableError ('redis')", async () => {
      const registry = await ports.open();
      await registry.register('n1', { startedAt: 1 });
      expect(registry.ready).toBe(true);
      await ports.close(registry);
      expect(registry.ready).toBe(false);
      const calls: Array<Promise<unknown>> = [
        registry.register('n2', { startedAt: 1 }),
        registry.heartbeat('n1'),
        registry.deregister('n1'),
        registry.liveNodes(),
        registry.expiredNodes(),
        registry.node('n1'),
      ];
      for (const call of calls) {
        await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
        await expect(call).rejects.toMatchObject({ backend: 'redis' });
      }
    });
  });
}
