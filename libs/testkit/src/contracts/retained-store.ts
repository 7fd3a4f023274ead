import { describe, expect, it } from 'vitest';
import type { Message, RetainedStore } from '@fleetmq/broker';
import { collect, portFixture, testMessage } from './support.js';
import type { MakePort } from './support.js';

function retained(topic: string, overrides: Partial<Omit<Message, 'topic'>> = {}): Message {
  return testMessage(topic, { retain: true, ...overrides });
}

async function topicsMatching(store: RetainedStore, filters: readonly string[]): Promise<string[]> {
  return (await collect(store.match(filters))).map((m) => m.topic).sort();
}

/**
 * The RetainedStore contract (ports/retained-store.ts): one message per topic, an empty
 * payload deletes, MQTT wildcard matching, each matching message once across filters,
 * expired messages never returned, count.
 * `make` returns a fresh, empty store; the suite closes it after each test.
 */
export function describeRetainedStore(make: MakePort<RetainedStore>): void {
  describe('RetainedStore contract', () => {
    const ports = portFixture(make);

    /** A store holding one retained message per topic. */
    async function storeWith(topics: readonly string[]): Promise<RetainedStore> {
      const store = await ports.open();
      for (const topic of topics) await store.set(retained(topic));
      return store;
    }

    it('is empty at first', async () => {
      const store = await ports.open();
      expect(await store.count()).toBe(0);
      expect(await store.get('a/b')).toBeNull();
      expect(await collect(store.match(['#']))).toEqual([]);
    });

    it('stores a message and returns every field of it', async () => {
      const store = await ports.open();
      const message = retained('fleet/d1/status', {
        payload: Buffer.from([0x00, 0xff, 0x42]),
        qos: 2,
        properties: {
          payloadFormatIndicator: true,
          contentType: 'application/json',
          responseTopic: 'fleet/d1/reply',
          correlationData: Buffer.from('abc'),
          userProperties: { fw: '1.2.3', tags: ['x', 'y'] },
        },
        expiresAt: Date.now() + 3_600_000,
        publisherId: 'd1',
      });
      await store.set(message);
      const got = await store.get('fleet/d1/status');
      expect(got).toEqual(message);
      expect(Buffer.isBuffer(got!.payload)).toBe(true);
      expect(await collect(store.match(['fleet/d1/status']))).toEqual([message]);
      expect(await store.count()).toBe(1);
    });

    it('replaces the message of a topic', async () => {
      const store = await ports.open();
      await store.set(retained('a/b', { payload: Buffer.from('one') }));
      const second = retained('a/b', { payload: Buffer.from('two') });
      await store.set(second);
      expect(await store.get('a/b')).toEqual(second);
      expect(await collect(store.match(['a/b']))).toEqual([second]);
      expect(await store.count()).toBe(1);
    });

    it('deletes the message of a topic on an empty payload', async () => {
      const store = await storeWith(['a/b', 'a/c']);
      await store.set(retained('a/b', { payload: Buffer.alloc(0) }));
      expect(await store.get('a/b')).toBeNull();
      expect(await topicsMatching(store, ['a/+'])).toEqual(['a/c']);
      expect(await store.count()).toBe(1);
      await store.set(retained('never/set', { payload: Buffer.alloc(0) }));
      expect(await store.count()).toBe(1);
      await store.set(retained('a/b', { payload: Buffer.from('back') }));
      expect(await topicsMatching(store, ['a/+'])).toEqual(['a/b', 'a/c']);
    });

    it('keeps a parent topic and its children apart', async () => {
      const store = await storeWith(['a', 'a/b', 'a/b/c']);
      await store.set(retained('a/b', { payload: Buffer.alloc(0) }));
      expect(await topicsMatching(store, ['#'])).toEqual(['a', 'a/b/c']);
      expect(await store.get('a')).not.toBeNull();
      expect(await store.get('a/b/c')).not.toBeNull();
    });

    it('matches an exact filter to its topic only', async () => {
      const store = await storeWith(['a/b', 'a/b/c', 'a', 'a/bc', 'A/b']);
      expect(await topicsMatching(store, ['a/b'])).toEqual(['a/b']);
      expect(await topicsMatching(store, ['x/y'])).toEqual([]);
    });

    it("matches '+' to exactly one level, including an empty one", async () => {
      const store = await storeWith(['p/x/c', 'p/y/c', 'p//c', 'p/c', 'p/x/y/c', 'p/x/c/d', 'q/x/c']);
      expect(await topicsMatching(store, ['p/+/c'])).toEqual(['p//c', 'p/x/c', 'p/y/c']);
      expect(await topicsMatching(store, ['+/x/+'])).toEqual(['p/x/c', 'q/x/c']);
      expect(await topicsMatching(store, ['+'])).toEqual([]);
    });

    it("matches '#' to the parent level and every level below", async () => {
      const store = await storeWith(['h', 'h/1', 'h/1/2', 'h/', 'hx', 'x/h']);
      expect(await topicsMatching(store, ['h/#'])).toEqual(['h', 'h/', 'h/1', 'h/1/2']);
      expect(await topicsMatching(store, ['h/1/#'])).toEqual(['h/1', 'h/1/2']);
      expect(await topicsMatching(store, ['#'])).toEqual(['h', 'h/', 'h/1', 'h/1/2', 'hx', 'x/h']);
      expect(await topicsMatching(store, ['+/#'])).toEqual(['h', 'h/', 'h/1', 'h/1/2', 'hx', 'x/h']);
    });

    it('matches topics with a leading or trailing empty level', async () => {
      const store = await storeWith(['/a', 'a/', '/']);
      expect(await topicsMatching(store, ['+/a'])).toEqual(['/a']);
      expect(await topicsMatching(store, ['/+'])).toEqual(['/', '/a']);
      expect(await topicsMatching(store, ['a/+'])).toEqual(['a/']);
      expect(await topicsMatching(store, ['#'])).toEqual(['/', '/a', 'a/']);
    });

    it("does not match '$' topics with a leading wildcard, but does with a literal '$' level", async () => {
      const store = await storeWith(['$SYS/x', '$SYS', '$SYS/x/y', 'n/x']);
      expect(await topicsMatching(store, ['#'])).toEqual(['n/x']);
      expect(await topicsMatching(store, ['+/x'])).toEqual(['n/x']);
      expect(await topicsMatching(store, ['+/#'])).toEqual(['n/x']);
      expect(await topicsMatching(store, ['$SYS/#'])).toEqual(['$SYS', '$SYS/x', '$SYS/x/y']);
      expect(await topicsMatching(store, ['$SYS/+'])).toEqual(['$SYS/x']);
      expect(await topicsMatching(store, ['$SYS/x'])).toEqual(['$SYS/x']);
    });

    it('matches levels holding characters a store may reserve literally', async () => {
      const topics = ['dot.ted/sp ace/*/>', 'dot/ted/sp ace/*/>', 'a\\b/%2F/~/ü/日本', 'a:b/c=d'];
      const store = await storeWith(topics);
      expect(await topicsMatching(store, ['dot.ted/+/*/>'])).toEqual(['dot.ted/sp ace/*/>']);
      expect(await topicsMatching(store, ['dot/#'])).toEqual(['dot/ted/sp ace/*/>']);
      expect(await topicsMatching(store, ['a\\b/%2F/#'])).toEqual(['a\\b/%2F/~/ü/日本']);
      for (const topic of topics) expect((await store.get(topic))?.topic).toBe(topic);
    });

    it('returns each matching message once, however many filters match it', async () => {
      const store = await storeWith(['a/b', 'a/c', 'a/b/c', 'z']);
      const found = await collect(store.match(['a/b', 'a/+', 'a/#', '#', '+/b', 'a/b']));
      expect(found.map((m) => m.topic).sort()).toEqual(['a/b', 'a/b/c', 'a/c', 'z']);
      expect(await topicsMatching(store, ['a/b', 'z', 'nothing/here'])).toEqual(['a/b', 'z']);
      expect(await collect(store.match([]))).toEqual([]);
    });

    it('never returns an expired message, and returns one that has not expired yet', async () => {
      const store = await ports.open();
      const now = Date.now();
      await store.set(retained('e/old', { expiresAt: now - 1000 }));
      await store.set(retained('e/fresh', { expiresAt: now + 3_600_000 }));
      await store.set(retained('e/forever'));
      expect(await topicsMatching(store, ['e/#'])).toEqual(['e/forever', 'e/fresh']);
      expect(await topicsMatching(store, ['e/old'])).toEqual([]);
      expect(await topicsMatching(store, ['e/old', 'e/+'])).toEqual(['e/forever', 'e/fresh']);
    });

    it('counts retained topics', async () => {
      const store = await storeWith(['c/1', 'c/2', 'c/3']);
      expect(await store.count()).toBe(3);
      await store.set(retained('c/2', { payload: Buffer.from('again') }));
      expect(await store.count()).toBe(3);
      await store.set(retained('c/1', { payload: Buffer.alloc(0) }));
      expect(await store.count()).toBe(2);
    });
  });
}
