import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LimitCounters, RateLimiter, TokenBucket, limitHitsSeries } from '@fleetmq/auth';

function manualClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('TokenBucket', () => {
  it('starts full, admits the burst, then refuses until time refills it', () => {
    const c = manualClock();
    const b = new TokenBucket({ ratePerSecond: 2, burst: 3, now: c.now });
    expect([b.tryTake(), b.tryTake(), b.tryTake(), b.tryTake()]).toEqual([true, true, true, false]);
    expect(b.msUntil()).toBe(500);
    c.advance(499);
    expect(b.tryTake()).toBe(false);
    c.advance(1);
    expect(b.tryTake()).toBe(true);
    c.advance(60_000);
    expect(b.available()).toBe(3); // never above the burst
  });

  it('a refused take costs nothing; taking n at once needs n tokens', () => {
    const c = manualClock();
    const b = new TokenBucket({ ratePerSecond: 1, burst: 5, now: c.now });
    expect(b.tryTake(4)).toBe(true);
    expect(b.tryTake(2)).toBe(false);
    expect(b.available()).toBe(1);
    expect(b.msUntil(2)).toBe(1000);
    expect(b.msUntil(6)).toBe(Number.POSITIVE_INFINITY);
  });

  it('fractional rates work (one token every 10 s)', () => {
    const c = manualClock();
    const b = new TokenBucket({ ratePerSecond: 0.1, burst: 1, now: c.now });
    expect(b.tryTake()).toBe(true);
    c.advance(9_999);
    expect(b.tryTake()).toBe(false);
    c.advance(1);
    expect(b.tryTake()).toBe(true);
  });

  it('a clock stepping backwards neither refills nor breaks the bucket', () => {
    const c = manualClock();
    const b = new TokenBucket({ ratePerSecond: 1, burst: 1, now: c.now });
    expect(b.tryTake()).toBe(true);
    c.advance(-5_000);
    expect(b.tryTake()).toBe(false);
    c.advance(5_000);
    expect(b.tryTake()).toBe(false); // time lost backwards is not credited on the way forward
    c.advance(1_000);
    expect(b.tryTake()).toBe(true);
  });

  it('rejects nonsense parameters', () => {
    expect(() => new TokenBucket({ ratePerSecond: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSecond: 1, burst: 0.5 })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSecond: Number.NaN, burst: 1 })).toThrow(RangeError);
  });

  it('property: admitted events never exceed burst + rate × elapsed, and a steady client at the rate is never refused', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: 1, maxLength: 200 }),
        (rate, burst, gaps) => {
          const c = manualClock();
          const b = new TokenBucket({ ratePerSecond: rate, burst, now: c.now });
          let admitted = 0;
          let elapsed = 0;
          for (const gap of gaps) {
            c.advance(gap);
            elapsed += gap;
            if (b.tryTake()) admitted++;
            expect(admitted).toBeLessThanOrEqual(burst + (rate * elapsed) / 1000 + 1e-6);
          }
          // a client that waits 1/rate between events is always admitted
          const steady = new TokenBucket({ ratePerSecond: rate, burst, now: c.now });
          for (let i = 0; i < 3 * burst + 5; i++) {
            expect(steady.tryTake()).toBe(true);
            c.advance(Math.ceil(1000 / rate));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('RateLimiter and limit counters', () => {
  it('publish rate answers 0x96 and counts fleetmq_limit_hits_total{limit="publish_rate"}', () => {
    const c = manualClock();
    const counters = new LimitCounters();
    const r = new RateLimiter({ limit: 'publish_rate', ratePerSecond: 10, burst: 2, counters, now: c.now });
    expect(r.reasonCode).toBe(0x96);
    expect([r.tryAcquire(), r.tryAcquire(), r.tryAcquire(), r.tryAcquire()]).toEqual([true, true, false, false]);
    expect(counters.get('publish_rate')).toBe(2);
    expect(counters.snapshot()).toEqual({ 'fleetmq_limit_hits_total{limit="publish_rate"}': 2 });
    c.advance(100);
    expect(r.tryAcquire()).toBe(true);
    expect(counters.get('publish_rate')).toBe(2);
  });

  it('connection rate answers 0x9F', () => {
    const counters = new LimitCounters();
    const r = new RateLimiter({ limit: 'connection_rate', ratePerSecond: 1, burst: 1, counters, now: () => 0 });
    expect(r.reasonCode).toBe(0x9f);
    expect(r.tryAcquire()).toBe(true);
    expect(r.tryAcquire()).toBe(false);
    expect(r.msUntil()).toBe(1000);
    expect(counters.snapshot()).toEqual({ [limitHitsSeries('connection_rate')]: 1 });
  });

  it('series names are the documented ones', () => {
    expect(limitHitsSeries('max_qos')).toBe('fleetmq_limit_hits_total{limit="max_qos"}');
    expect(limitHitsSeries('auth_failure_rate')).toBe('fleetmq_limit_hits_total{limit="auth_failure_rate"}');
  });
});
