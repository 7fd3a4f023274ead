import { describe, expect, it } from 'vitest';
import { addMatch, deliveryFor } from '../src/delivery.js';
import type { Message } from '../src/message.js';
import type { SubscriptionOptions } from '../src/subscription.js';

function message(over: Partial<Message> = {}): Message {
  return { id: 'n-1', topic: 'a/b', payload: Buffer.from('x'), qos: 2, retain: false, createdAt: 0, publisherId: 'pub', ...over };
}

function sub(over: Partial<SubscriptionOptions> = {}): SubscriptionOptions {
  return { qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0, ...over };
}

describe('addMatch', () => {
  it('[MQTT-3.8.4-8] the QoS is the minimum of the message QoS and the granted QoS', () => {
    expect(addMatch(undefined, sub({ qos: 1 }), message({ qos: 2 }), 'c')?.qos).toBe(1);
    expect(addMatch(undefined, sub({ qos: 2 }), message({ qos: 0 }), 'c')?.qos).toBe(0);
    expect(addMatch(undefined, sub({ qos: 0 }), message({ qos: 1 }), 'c')?.qos).toBe(0);
  });

  it('[MQTT-3.8.3-3] No Local skips the publisher itself and no one else', () => {
    const opts = sub({ noLocal: true });
    expect(addMatch(undefined, opts, message({ publisherId: 'me' }), 'me')).toBeUndefined();
    expect(addMatch(undefined, opts, message({ publisherId: 'you' }), 'me')).toBeDefined();
    // a message the broker made itself has no publisher
    expect(addMatch(undefined, opts, message({ publisherId: undefined }), 'me')).toBeDefined();
    // an existing delivery is returned unchanged
    const d = { qos: 1 as const, retain: false, subscriptionIds: [4] };
    expect(addMatch(d, opts, message({ publisherId: 'me' }), 'me')).toBe(d);
    expect(d).toEqual({ qos: 1, retain: false, subscriptionIds: [4] });
  });

  it('[MQTT-3.3.1-12, MQTT-3.3.1-13] retain is kept only with Retain As Published', () => {
    expect(addMatch(undefined, sub({ retainAsPublished: true }), message({ retain: true }), 'c')?.retain).toBe(true);
    expect(addMatch(undefined, sub({ retainAsPublished: true }), message({ retain: false }), 'c')?.retain).toBe(false);
    expect(addMatch(undefined, sub({ retainAsPublished: false }), message({ retain: true }), 'c')?.retain).toBe(false);
  });

  it('[MQTT-3.3.4-2, MQTT-3.3.4-4] folding overlapping subscriptions: maximum QoS, every identifier, retain if any keeps it', () => {
    const m = message({ qos: 2, retain: true });
    let d = addMatch(undefined, sub({ qos: 0, subscriptionId: 1 }), m, 'c');
    expect(d).toEqual({ qos: 0, retain: false, subscriptionIds: [1] });
    d = addMatch(d, sub({ qos: 1 }), m, 'c');
    d = addMatch(d, sub({ qos: 0, subscriptionId: 7, retainAsPublished: true }), m, 'c');
    expect(d).toEqual({ qos: 1, retain: true, subscriptionIds: [1, 7] });
  });

  it('has no subscription identifiers when no subscription has one', () => {
    const d = addMatch(addMatch(undefined, sub(), message(), 'c'), sub({ qos: 1 }), message(), 'c');
    expect(d?.subscriptionIds).toBeUndefined();
    const later = addMatch(d, sub({ subscriptionId: 3 }), message(), 'c');
    expect(later?.subscriptionIds).toEqual([3]);
  });
});

describe('deliveryFor', () => {
  it('folds every matching subscription, shared ones by their inner filter', () => {
    const subs = new Map<string, SubscriptionOptions>([
      ['a/+', sub({ qos: 0, subscriptionId: 1 })],
      ['$share/g/a/#', sub({ qos: 2, subscriptionId: 2 })],
      ['b/#', sub({ qos: 2, subscriptionId: 3 })],
    ]);
    expect(deliveryFor(subs, message({ topic: 'a/b' }), 'c')).toEqual({ qos: 2, retain: false, subscriptionIds: [1, 2] });
  });

  it('is undefined when nothing matches, or only a No Local subscription of the publisher', () => {
    const subs = new Map<string, SubscriptionOptions>([['x/#', sub()]]);
    expect(deliveryFor(subs, message({ topic: 'a/b' }), 'c')).toBeUndefined();
    const own = new Map<string, SubscriptionOptions>([['a/b', sub({ noLocal: true })]]);
    expect(deliveryFor(own, message({ publisherId: 'c' }), 'c')).toBeUndefined();
  });

  it("(4.7.1.2) '#' matches the parent; [MQTT-4.7.2-1] a leading wildcard does not match '$' topics", () => {
    const subs = new Map<string, SubscriptionOptions>([
      ['#', sub({ subscriptionId: 1 })],
      ['a/#', sub({ subscriptionId: 2 })],
    ]);
    expect(deliveryFor(subs, message({ topic: 'a' }), 'c')?.subscriptionIds).toEqual([1, 2]);
    expect(deliveryFor(subs, message({ topic: '$SYS/a' }), 'c')).toBeUndefined();
  });

  it('ignores a malformed shared filter instead of throwing', () => {
    const subs = new Map<string, SubscriptionOptions>([
      ['$share/g', sub()],
      ['a/b', sub({ qos: 1 })],
    ]);
    expect(deliveryFor(subs, message({ topic: 'a/b' }), 'c')?.qos).toBe(1);
  });
});
