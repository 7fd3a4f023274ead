import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import type { Lease } from '@fleetmq/broker';
import { portFixture } from './support.js';

export interface LeaseHarness {
  /** A fresh lease store; the suite closes it after each test. */
  make(): Promise<Lease> | Lease;
  /** Lets `ms` pass on the lease clock: a real sleep for a server, an advance of a manual clock. */
  elapse(ms: number): Promise<void>;
  /** The TTL the suite uses (default 300 ms). */
  readonly ttlMs?: number;
}

let nextName = 0;
/** A lease name no other test uses, so tests sharing one server do not meet. */
function uniqueName(what: string): string {
  return `contract-${process.pid}-${what}-${nextName++}`;
}

/**
 * The Lease contract (ports/lease.ts): one holder at a time, renewal only by the holder,
 * expiry after the TTL, release by the holder only, refusal after close.
 *
 * Timing margins for a real clock: a lease is expected held only when at most 1/3 TTL old, and
 * expired only when at least 4/3 TTL have passed.
 */
export function describeLease(harness: LeaseHarness): void {
  describe('Lease contract', () => {
    const ttlMs = harness.ttlMs ?? 300;
    const third = Math.ceil(ttlMs / 3);
    const ports = portFixture(() => harness.make());

    it('gives a free lease to the first holder and refuses the second', async () => {
      const lease = await ports.open();
      const name = uniqueName('first');
      expect(await lease.holder(name)).toBeNull();
      expect(await lease.acquire(name, 'node-a', ttlMs)).toBe(true);
      expect(await lease.acquire(name, 'node-b', ttlMs)).toBe(false);
      expect(await lease.holder(name)).toBe('node-a');
    });

    it('lets the holder acquire again (and extends it)', async () => {
      const lease = await ports.open();
      const name = uniqueName('again');
      expect(await lease.acquire(name, 'node-a', ttlMs)).toBe(true);
      await harness.elapse(2 * third);
      expect(await lease.acquire(name, 'node-a', ttlMs)).toBe(true);
      await harness.elapse(2 * third);
      // 4/3 TTL after the first acquire, 2/3 after the second: still held
      expect(await lease.holder(name)).toBe('node-a');
      expect(await lease.acquire(name, 'node-b', ttlMs)).toBe(false);
    });

    it('keeps the lease while the holder renews within the TTL', async () => {
      const lease = await ports.open();
      const name = uniqueName('renew');
      await lease.acquire(name, 'node-a', ttlMs);
      for (let i = 0; i < 4; i++) {
        await harness.elapse(third);
        expect(await lease.renew(name, 'node-a', ttlMs)).toBe(true);
      }
      expect(await lease.holder(name)).toBe('node-a');
      expect(await lease.acquire(name, 'node-b', ttlMs)).toBe(false);
    });

    it('never renews for another holder', async () => {
      const lease = await ports.open();
      const name = uniqueName('renew-other');
      expect(await lease.renew(name, 'node-a', ttlMs)).toBe(false);
      expect(await lease.holder(name)).toBeNull();
      await lease.acquire(name, 'node-a', ttlMs);
      expect(await lease.renew(name, 'node-b', ttlMs)).toBe(false);
      expect(await lease.holder(name)).toBe('node-a');
    });

    it('expires after the TTL: another holder takes it, the old one cannot renew it back', async () => {
      const lease = await ports.open();
      const name = uniqueName('expire');
      await lease.acquire(name, 'node-a', ttlMs);
      await harness.elapse(4 * third);
      expect(await lease.holder(name)).toBeNull();
      expect(await lease.renew(name, 'node-a', ttlMs)).toBe(false);
      expect(await lease.acquire(name, 'node-b', ttlMs)).toBe(true);
      expect(await lease.renew(name, 'node-a', ttlMs)).toBe(false);
      expect(await lease.release(name, 'node-a')).toBe(false);
      expect(await lease.holder(name)).toBe('node-b');
    });

    it('is released by its holder only, and then free at once', async () => {
      const lease = await ports.open();
      const name = uniqueName('release');
      await lease.acquire(name, 'node-a', ttlMs);
      expect(await lease.release(name, 'node-b')).toBe(false);
      expect(await lease.holder(name)).toBe('node-a');
      expect(await lease.release(name, 'node-a')).toBe(true);
      expect(await lease.holder(name)).toBeNull();
      expect(await lease.release(name, 'node-a')).toBe(false);
      expect(await lease.acquire(name, 'node-b', ttlMs)).toBe(true);
    });

    it('keeps leases of different names apart', async () => {
      const lease = await ports.open();
      const one = uniqueName('one');
      const two = uniqueName('two');
      expect(await lease.acquire(one, 'node-a', ttlMs)).toBe(true);
      expect(await lease.acquire(two, 'node-b', ttlMs)).toBe(true);
      expect(await lease.holder(one)).toBe('node-a');
      expect(await lease.holder(two)).toBe('node-b');
    });

    it('refuses a TTL that is not a positive number', async () => {
      const lease = await ports.open();
      await expect(async () => lease.acquire(uniqueName('ttl'), 'node-a', 0)).rejects.toThrow(RangeError);
    });

    it('refuses calls after close', async () => {
      const lease = await ports.open();
      await ports.close(lease);
      await expect(lease.acquire(uniqueName('closed'), 'node-a', ttlMs)).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(lease.holder(uniqueName('closed'))).rejects.toBeInstanceOf(BackendUnavailableError);
    });
  });
}
