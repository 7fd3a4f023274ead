import { describe, expect, it } from 'vitest';
import { FencedError, SNAPSHOT_VERSION } from '@fleetmq/broker';
import type { SessionSnapshot, SessionStore } from '@fleetmq/broker';
import { portFixture, testMessage } from './support.js';
import type { MakePort } from './support.js';

/** A snapshot with no optional parts. */
export function minimalSnapshot(clientId: string, overrides: Partial<Omit<SessionSnapshot, 'v' | 'clientId'>> = {}): SessionSnapshot {
  return {
    v: SNAPSHOT_VERSION,
    clientId,
    protocolVersion: 4,
    expiryInterval: 0,
    subscriptions: [],
    inflight: [],
    queue: [],
    awaitingRel: [],
    nextPacketId: 1,
    ...overrides,
  };
}

/** A snapshot using every field: Buffers, properties, inflight in both states, queue and will. */
export function richSnapshot(clientId: string): SessionSnapshot {
  const now = Date.now();
  return minimalSnapshot(clientId, {
    protocolVersion: 5,
    expiryInterval: 0xffffffff,
    subscriptions: [
      ['fleet/+/cmd', { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      ['fleet/#', { qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionId: 42 }],
    ],
    inflight: [
      {
        packetId: 7,
        message: testMessage('fleet/d1/cmd', {
          payload: Buffer.from([0x00, 0x01, 0xfe, 0xff]),
          qos: 1,
          properties: {
            payloadFormatIndicator: true,
            contentType: 'text/plain',
            responseTopic: 'fleet/d1/reply',
            correlationData: Buffer.from('corr-1'),
            userProperties: { a: '1', list: ['x', 'y'] },
          },
          expiresAt: now + 3_600_000,
          publisherId: 'backend',
        }),
        qos: 1,
        state: 'publish',
        subscriptionIds: [42],
        retain: false,
      },
      { packetId: 8, message: testMessage('fleet/d1/ota', { qos: 2 }), qos: 2, state: 'pubrel', retain: true },
    ],
    queue: [testMessage('fleet/d1/q1', { payload: Buffer.alloc(0) }), testMessage('fleet/d1/q2', { qos: 2 })],
    awaitingRel: [3, 65535],
    nextPacketId: 9,
    will: {
      topic: 'fleet/d1/status',
      payload: Buffer.from('offline'),
      qos: 1,
      retain: true,
      properties: { contentType: 'text/plain', userProperties: { reason: 'lost' } },
      messageExpiryInterval: 300,
      delayInterval: 30,
    },
    disconnectedAt: now,
  });
}

/** A deep copy made without the store's codec (Buffers through their JSON form). */
function cloneSnapshot(snapshot: SessionSnapshot): SessionSnapshot {
  return JSON.parse(JSON.stringify(snapshot), (_key, value: unknown) => {
    const v = value as { type?: unknown; data?: unknown } | null;
    return v !== null && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data as number[]) : value;
  }) as SessionSnapshot;
}

/**
 * The SessionStore contract (ports/session-store.ts): snapshots round-trip, including
 * Buffers; writes and deletes with an epoch lower than the stored one fail with
 * FencedError and change nothing; stored data is not reachable through callers' objects.
 * `make` returns a fresh, empty store; the suite closes it after each test.
 */
export function describeSessionStore(make: MakePort<SessionStore>): void {
  describe('SessionStore contract', () => {
    const ports = portFixture(make);

    it('loads null for a session never saved', async () => {
      const store = await ports.open();
      expect(await store.load('nobody')).toBeNull();
    });

    it('round-trips a minimal snapshot with its epoch', async () => {
      const store = await ports.open();
      const snapshot = minimalSnapshot('min');
      await store.save(snapshot, 1);
      const loaded = await store.load('min');
      expect(loaded).toEqual({ snapshot, epoch: 1 });
      expect(loaded!.snapshot.will).toBeUndefined();
    });

    it('round-trips every field: Buffers, properties, inflight, queue and will', async () => {
      const store = await ports.open();
      const snapshot = richSnapshot('rich');
      await store.save(snapshot, 5);
      const loaded = await store.load('rich');
      expect(loaded).toEqual({ snapshot, epoch: 5 });
      const s = loaded!.snapshot;
      expect(Buffer.isBuffer(s.inflight[0]!.message.payload)).toBe(true);
      expect(Buffer.isBuffer(s.inflight[0]!.message.properties!.correlationData)).toBe(true);
      expect(Buffer.isBuffer(s.queue[0]!.payload)).toBe(true);
      expect(s.queue[0]!.payload.length).toBe(0);
      expect(Buffer.isBuffer(s.will!.payload)).toBe(true);
      expect(s.will!.payload.toString()).toBe('offline');
    });

    it('overwrites with the same or a greater epoch', async () => {
      const store = await ports.open();
      await store.save(minimalSnapshot('c1', { nextPacketId: 1 }), 3);
      await store.save(minimalSnapshot('c1', { nextPacketId: 2 }), 3);
      expect(await store.load('c1')).toEqual({ snapshot: minimalSnapshot('c1', { nextPacketId: 2 }), epoch: 3 });
      await store.save(minimalSnapshot('c1', { nextPacketId: 3 }), 4);
      expect(await store.load('c1')).toEqual({ snapshot: minimalSnapshot('c1', { nextPacketId: 3 }), epoch: 4 });
    });

    it('fences a save with a lower epoch and keeps the stored session', async () => {
      const store = await ports.open();
      const current = richSnapshot('c1');
      await store.save(current, 7);
      const stale = store.save(minimalSnapshot('c1'), 6);
      await expect(stale).rejects.toBeInstanceOf(FencedError);
      await expect(stale).rejects.toMatchObject({ clientId: 'c1', epoch: 6 });
      expect(await store.load('c1')).toEqual({ snapshot: current, epoch: 7 });
    });

    it('deletes with the stored or a greater epoch', async () => {
      const store = await ports.open();
      await store.save(minimalSnapshot('c1'), 2);
      await store.save(minimalSnapshot('c2'), 2);
      expect(await store.delete('c1', 2)).toEqual(minimalSnapshot('c1'));
      expect(await store.delete('c2', 3)).toEqual(minimalSnapshot('c2'));
      expect(await store.load('c1')).toBeNull();
      expect(await store.load('c2')).toBeNull();
    });

    it('fences a delete with a lower epoch and keeps the stored session', async () => {
      const store = await ports.open();
      const snapshot = minimalSnapshot('c1');
      await store.save(snapshot, 9);
      const stale = store.delete('c1', 8);
      await expect(stale).rejects.toBeInstanceOf(FencedError);
      await expect(stale).rejects.toMatchObject({ clientId: 'c1', epoch: 8 });
      expect(await store.load('c1')).toEqual({ snapshot, epoch: 9 });
    });

    it('returns the whole deleted session, will included', async () => {
      const store = await ports.open();
      const snapshot = richSnapshot('c1');
      await store.save(snapshot, 4);
      expect(await store.delete('c1', 4)).toEqual(snapshot);
    });

    it('accepts a delete of a session that does not exist', async () => {
      const store = await ports.open();
      await expect(store.delete('nobody', 1)).resolves.toBeNull();
      expect(await store.load('nobody')).toBeNull();
    });

    it('keeps client IDs independent', async () => {
      const store = await ports.open();
      await store.save(minimalSnapshot('a', { nextPacketId: 10 }), 10);
      await store.save(minimalSnapshot('b', { nextPacketId: 1 }), 1);
      await store.delete('b', 1);
      expect(await store.load('a')).toEqual({ snapshot: minimalSnapshot('a', { nextPacketId: 10 }), epoch: 10 });
      expect(await store.load('b')).toBeNull();
    });

    it("cannot be changed through the caller's objects, before or after a load", async () => {
      const store = await ports.open();
      const snapshot = richSnapshot('c1');
      const pristine = cloneSnapshot(snapshot);
      expect(pristine).toEqual(snapshot);
      await store.save(snapshot, 1);
      snapshot.will!.payload.fill(0x21);
      (snapshot.awaitingRel as number[]).push(99);
      (snapshot.subscriptions as unknown[]).length = 0;
      const first = await store.load('c1');
      expect(first!.snapshot).toEqual(pristine);
      first!.snapshot.inflight[0]!.message.payload.fill(0);
      (first!.snapshot.queue as unknown[]).pop();
      const second = await store.load('c1');
      expect(second!.snapshot).toEqual(pristine);
    });
  });
}
