import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KeepAliveWheel, type KeepAliveWatched } from '../src/keep-alive-wheel.js';

/** A connection stand-in: silent since `last`, closed after `limitMs` of silence. */
class Watched implements KeepAliveWatched {
  keepAliveSlot: Set<KeepAliveWatched> | undefined;
  expiredAt: number | undefined;
  last = Date.now();
  constructor(readonly limitMs: number) {}
  keepAliveDeadline(): number {
    return this.last + this.limitMs;
  }
  keepAliveExpired(): void {
    this.expiredAt = Date.now();
  }
  heard(): void {
    this.last = Date.now();
  }
}

describe('KeepAliveWheel', () => {
  let start: number;
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    start = Date.now();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires a silent connection at its deadline, within one tick (250 ms), not before', () => {
    const wheel = new KeepAliveWheel();
    const c = new Watched(1500);
    wheel.watch(c);
    vi.advanceTimersByTime(1499);
    expect(c.expiredAt).toBeUndefined();
    vi.advanceTimersByTime(251);
    expect(c.expiredAt).toBeDefined();
    expect(c.expiredAt! - start).toBeGreaterThanOrEqual(1500);
    expect(c.expiredAt! - start).toBeLessThanOrEqual(1750);
    expect(wheel.size).toBe(0);
  });

  it('keeps a connection that is heard from, and expires it once it falls silent', () => {
    const wheel = new KeepAliveWheel();
    const c = new Watched(1500);
    wheel.watch(c);
    for (let i = 0; i < 20; i++) {
      vi.advanceTimersByTime(1000);
      c.heard();
    }
    expect(c.expiredAt).toBeUndefined();
    const silentFrom = Date.now();
    vi.advanceTimersByTime(1750);
    expect(c.expiredAt! - silentFrom).toBeGreaterThanOrEqual(1500);
    expect(c.expiredAt! - silentFrom).toBeLessThanOrEqual(1750);
  });

  it('holds deadlines longer than a turn of the wheel (128 s) until they come', () => {
    const wheel = new KeepAliveWheel();
    const c = new Watched(300_000);
    wheel.watch(c);
    vi.advanceTimersByTime(299_000);
    expect(c.expiredAt).toBeUndefined();
    vi.advanceTimersByTime(1250);
    expect(c.expiredAt! - start).toBeGreaterThanOrEqual(300_000);
    expect(c.expiredAt! - start).toBeLessThanOrEqual(300_250);
  });

  it('after a stalled process, gives what fell due meanwhile two ticks to be heard from before it expires', () => {
    const wheel = new KeepAliveWheel();
    const silent = new Watched(2000);
    const talking = new Watched(2000);
    const later = new Watched(60_000);
    for (const c of [silent, talking, later]) wheel.watch(c);
    vi.setSystemTime(start + 5000); // five seconds without a timer (the process was stopped)
    vi.advanceTimersByTime(250);
    expect(silent.expiredAt).toBeUndefined();
    talking.heard(); // what it sent during the stall is read now
    vi.advanceTimersByTime(750);
    expect(silent.expiredAt).toBeDefined();
    expect(talking.expiredAt).toBeUndefined();
    expect(later.expiredAt).toBeUndefined();
    vi.advanceTimersByTime(55_000);
    expect(later.expiredAt).toBeDefined();
  });

  it('forgets an unwatched connection, counts what it watches, and runs no timer when empty', () => {
    const wheel = new KeepAliveWheel();
    const a = new Watched(1000);
    const b = new Watched(1000);
    wheel.watch(a);
    wheel.watch(b);
    wheel.watch(b); // again: moved, not counted twice
    expect(wheel.size).toBe(2);
    wheel.unwatch(a);
    wheel.unwatch(a);
    expect(wheel.size).toBe(1);
    vi.advanceTimersByTime(2000);
    expect(a.expiredAt).toBeUndefined();
    expect(b.expiredAt).toBeDefined();
    expect(wheel.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
