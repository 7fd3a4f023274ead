import { describe, expect, it } from 'vitest';
import { OutgoingQueue, type OutgoingMessage } from '../src/index.js';

const msg = (topic: string): OutgoingMessage => ({ topic, payload: Buffer.from(topic), qos: 1, retain: false, properties: undefined });

describe('OutgoingQueue', () => {
  it('keeps order, limits the inflight window, and puts inflight messages back first on a lost connection', () => {
    const q = new OutgoingQueue(10, 2);
    for (const t of ['a', 'b', 'c', 'd']) q.push(msg(t));
    const first = q.take()!;
    const second = q.take()!;
    expect(q.take()).toBeUndefined(); // window of 2
    expect([first.message.topic, second.message.topic]).toEqual(['a', 'b']);
    q.settle(first.id);
    expect(q.length).toBe(3);
    expect(q.take()!.message.topic).toBe('c');
    q.requeueInflight(); // b and c were sent, not acknowledged
    const again = [q.take()!, q.take()!];
    expect(again.map((e) => e.message.topic)).toEqual(['b', 'c']);
    q.requeueInflight();
    expect(q.length).toBe(3);
    expect(q.inflightCount).toBe(0);
  });

  it('is bounded: the oldest waiting message goes, and is counted', () => {
    const q = new OutgoingQueue(3, 1);
    for (const t of ['a', 'b', 'c', 'd', 'e']) q.push(msg(t));
    expect(q.length).toBe(3);
    expect(q.dropped).toBe(2);
    const order: string[] = [];
    for (let e = q.take(); e !== undefined; e = q.take()) {
      order.push(e.message.topic);
      q.settle(e.id);
    }
    expect(order).toEqual(['c', 'd', 'e']);
  });

  it('drops the new message when everything queued is inflight', () => {
    const q = new OutgoingQueue(2, 2);
    q.push(msg('a'));
    q.push(msg('b'));
    q.take();
    q.take();
    expect(q.push(msg('c'))).toBe(false);
    expect(q.length).toBe(2);
    expect(q.dropped).toBe(1);
  });

  it('stays bounded over many messages', () => {
    const q = new OutgoingQueue(100, 10);
    for (let i = 0; i < 10_000; i++) q.push(msg(String(i)));
    expect(q.length).toBe(100);
    expect(q.dropped).toBe(9_900);
    expect(q.take()!.message.topic).toBe('9900');
  });

  it('empties on clear, inflight included', () => {
    const q = new OutgoingQueue(10, 2);
    for (const t of ['a', 'b', 'c']) q.push(msg(t));
    q.take();
    expect(q.clear()).toBe(3);
    expect([q.length, q.inflightCount]).toEqual([0, 0]);
    expect(q.take()).toBeUndefined();
  });

  it('refuses sizes below 1', () => {
    expect(() => new OutgoingQueue(0, 1)).toThrow(RangeError);
    expect(() => new OutgoingQueue(1, 0)).toThrow(RangeError);
  });
});
