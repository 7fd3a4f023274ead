import type { DropPolicy } from './ports/offline-queue.js';

/**
 * A bounded FIFO with a drop policy: the per-session queue of messages waiting for an
 * inflight slot or for the client to come back. A ring buffer, so that shift is O(1).
 */
export class MessageQueue<T> {
  private items: (T | undefined)[];
  private head = 0;
  private count = 0;
  /** Items dropped by the policy over the queue's life. */
  dropped = 0;

  constructor(
    private maxLength: number,
    readonly policy: DropPolicy,
  ) {
    // no slots until the first item: most sessions never queue anything
    this.items = [];
  }

  /** Most items held; beyond it the drop policy applies. */
  get limit(): number {
    return this.maxLength;
  }

  /**
   * Changes the limit (a client's policy, set at CONNECT). Items beyond a lower limit are
   * dropped by the policy (drop-oldest: from the head; drop-newest: from the tail) and
   * counted; returns how many went.
   */
  resize(limit: number): number {
    this.maxLength = limit;
    let dropped = 0;
    while (this.count > limit) {
      if (this.policy === 'drop-oldest') this.shift();
      else {
        this.count--;
        this.items[(this.head + this.count) % this.items.length] = undefined;
      }
      dropped++;
    }
    this.dropped += dropped;
    return dropped;
  }

  get length(): number {
    return this.count;
  }

  /** Adds at the tail; returns the item dropped to make room (or the rejected item), if any. */
  push(item: T): T | undefined {
    if (this.count >= this.limit) {
      this.dropped++;
      if (this.policy === 'drop-newest' || this.limit === 0) return item;
      const evicted = this.shift();
      this.pushRaw(item);
      return evicted;
    }
    this.pushRaw(item);
    return undefined;
  }

  /** Puts items back at the head, in order (items restored from a store come before live ones). */
  unshiftAll(items: readonly T[]): void {
    for (let i = items.length - 1; i >= 0; i--) {
      if (this.count === this.items.length) this.grow();
      this.head = (this.head - 1 + this.items.length) % this.items.length;
      this.items[this.head] = items[i];
      this.count++;
    }
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.count--;
    return item;
  }

  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.items[(this.head + i) % this.items.length] as T);
    return out;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.count = 0;
  }

  private pushRaw(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) % this.items.length] = item;
    this.count++;
  }

  private grow(): void {
    const next = new Array<T | undefined>(Math.max(this.items.length * 2, 8));
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) % this.items.length];
    this.items = next;
    this.head = 0;
  }
}
