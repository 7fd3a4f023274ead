import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MessageQueue } from '../src/message-queue.js';

function fill(q: MessageQueue<number>, from: number, to: number): (number | undefined)[] {
  const out: (number | undefined)[] = [];
  for (let i = from; i < to; i++) out.push(q.push(i));
  return out;
}

describe('MessageQueue', () => {
  it('is a FIFO: shift returns items in push order; peek does not remove', () => {
    const q = new MessageQueue<number>(10, 'drop-oldest');
    expect(q.shift()).toBeUndefined();
    expect(q.peek()).toBeUndefined();
    fill(q, 1, 4);
    expect(q.length).toBe(3);
    expect(q.peek()).toBe(1);
    expect(q.length).toBe(3);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([1, 2, 3, undefined]);
    expect(q.length).toBe(0);
  });

  it('drop-oldest at the limit evicts the head and returns it, counting the drop', () => {
    const q = new MessageQueue<number>(3, 'drop-oldest');
    expect(fill(q, 1, 4)).toEqual([undefined, undefined, undefined]);
    expect(q.push(4)).toBe(1);
    expect(q.push(5)).toBe(2);
    expect(q.toArray()).toEqual([3, 4, 5]);
    expect(q.length).toBe(3);
    expect(q.dropped).toBe(2);
  });

  it('drop-newest at the limit refuses the new item and returns it', () => {
    const q = new MessageQueue<number>(3, 'drop-newest');
    fill(q, 1, 4);
    expect(q.push(4)).toBe(4);
    expect(q.toArray()).toEqual([1, 2, 3]);
    expect(q.dropped).toBe(1);
  });

  it('a limit of 0 keeps nothing, whatever the policy', () => {
    for (const policy of ['drop-oldest', 'drop-newest'] as const) {
      const q = new MessageQueue<number>(0, policy);
      expect(q.push(1)).toBe(1);
      expect(q.length).toBe(0);
      expect(q.dropped).toBe(1);
    }
  });

  it('unshiftAll puts items back at the head, in their order, even beyond the limit', () => {
    const q = new MessageQueue<number>(4, 'drop-oldest');
    fill(q, 10, 13);
    q.unshiftAll([1, 2, 3]);
    expect(q.toArray()).toEqual([1, 2, 3, 10, 11, 12]);
    expect(q.length).toBe(6);
    expect(q.shift()).toBe(1);
  });

  it('keeps order across wrap-around and growth past its initial capacity', () => {
    const q = new MessageQueue<number>(1000, 'drop-oldest');
    fill(q, 0, 10);
    for (let i = 0; i < 8; i++) q.shift();
    // head is now in the middle of the ring: push enough to wrap and grow twice
    fill(q, 10, 60);
    expect(q.toArray()).toEqual(Array.from({ length: 52 }, (_, i) => i + 8));
    q.unshiftAll([-2, -1]);
    expect(q.shift()).toBe(-2);
    expect(q.length).toBe(53);
  });

  it('clear empties it', () => {
    const q = new MessageQueue<number>(5, 'drop-newest');
    fill(q, 0, 5);
    q.clear();
    expect(q.length).toBe(0);
    expect(q.toArray()).toEqual([]);
    expect(q.push(9)).toBeUndefined();
    expect(q.toArray()).toEqual([9]);
  });

  it('behaves like a bounded array under any sequence of operations (property)', () => {
    type Op = { op: 'push'; v: number } | { op: 'shift' } | { op: 'unshiftAll'; vs: number[] } | { op: 'clear' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.integer().map((v) => ({ op: 'push' as const, v })) },
      { weight: 3, arbitrary: fc.constant({ op: 'shift' as const }) },
      { weight: 1, arbitrary: fc.array(fc.integer(), { maxLength: 5 }).map((vs) => ({ op: 'unshiftAll' as const, vs })) },
      { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.constantFrom('drop-oldest' as const, 'drop-newest' as const), fc.array(op, { maxLength: 200 }), (limit, policy, ops) => {
        const q = new MessageQueue<number>(limit, policy);
        let model: number[] = [];
        let dropped = 0;
        for (const o of ops) {
          if (o.op === 'push') {
            let expected: number | undefined;
            if (model.length >= limit) {
              dropped++;
              if (policy === 'drop-newest' || limit === 0) expected = o.v;
              else {
                expected = model.shift();
                model.push(o.v);
              }
            } else model.push(o.v);
            expect(q.push(o.v)).toBe(expected);
          } else if (o.op === 'shift') {
            expect(q.shift()).toBe(model.shift());
          } else if (o.op === 'unshiftAll') {
            q.unshiftAll(o.vs);
            model = [...o.vs, ...model];
          } else {
            q.clear();
            model = [];
          }
          expect(q.length).toBe(model.length);
        }
        expect(q.toArray()).toEqual(model);
        expect(q.dropped).toBe(dropped);
      }),
      { numRuns: 300 },
    );
  });
});

describe('MessageQueue.resize', () => {
  it('a lower limit drops by the policy and counts; a higher one only lets more in', () => {
    const oldest = new MessageQueue<number>(10, 'drop-oldest');
    fill(oldest, 1, 7);
    expect(oldest.resize(4)).toBe(2);
    expect(oldest.toArray()).toEqual([3, 4, 5, 6]);
    expect(oldest.dropped).toBe(2);
    expect(oldest.limit).toBe(4);
    expect(oldest.push(7)).toBe(3);
    const newest = new MessageQueue<number>(10, 'drop-newest');
    fill(newest, 1, 7);
    expect(newest.resize(4)).toBe(2);
    expect(newest.toArray()).toEqual([1, 2, 3, 4]);
    expect(newest.push(5)).toBe(5);
    expect(newest.resize(6)).toBe(0);
    fill(newest, 5, 7);
    expect(newest.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(newest.shift()).toBe(1);
  });
});
