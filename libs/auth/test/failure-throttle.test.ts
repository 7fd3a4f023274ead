import { describe, expect, it } from 'vitest';
import { FailureThrottle, LimitCounters, sourceKey } from '@fleetmq/auth';

function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 0;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('sourceKey', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::FFFF:192.0.2.1', '192.0.2.1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::99', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::ffff:1.2.3.4:0', '::ffff:1.2.3.4:0'], // not an address: itself
    ['/run/fleetmq.sock', '/run/fleetmq.sock'],
    ['', ''],
  ])('%s → %s', (address, key) => {
    expect(sourceKey(address)).toBe(key);
  });
});

describe('FailureThrottle', () => {
  it('admits a source until its burst of failures is spent, then refuses and counts; time forgives', () => {
    const c = manualClock();
    const counters = new LimitCounters();
    const t = new FailureThrottle({ burst: 3, ratePerSecond: 0.5, counters, now: c.now });
    for (let i = 0; i < 3; i++) {
      expect(t.admit('198.51.100.7')).toBe(true);
      t.recordFailure('198.51.100.7');
    }
    expect(t.admit('198.51.100.7')).toBe(false);
    expect(t.admit('198.51.100.7')).toBe(false);
    expect(counters.get('auth_failure_rate')).toBe(2);
    expect(t.retryAfterMs('198.51.100.7')).toBe(2000);
    expect(t.admit('198.51.100.8')).toBe(true); // another source is unaffected
    c.advance(2000);
    expect(t.admit('198.51.100.7')).toBe(true);
    t.recordFailure('198.51.100.7');
    expect(t.admit('198.51.100.7')).toBe(false);
  });

  it('one IPv6 /64 is one source; an IPv4-mapped address is its IPv4 address', () => {
    const t = new FailureThrottle({ burst: 2, ratePerSecond: 0.01, now: () => 0 });
    t.recordFailure('2001:db8:aa:bb::1');
    t.recordFailure('2001:db8:aa:bb:ffff::2');
    expect(t.admit('2001:db8:aa:bb::3')).toBe(false);
    expect(t.admit('2001:db8:aa:bc::3')).toBe(true);
    t.recordFailure('203.0.113.9');
    t.recordFailure('::ffff:203.0.113.9');
    expect(t.admit('203.0.113.9')).toBe(false);
  });

  it('is bounded: the least recently failing source is forgotten first', () => {
    const t = new FailureThrottle({ burst: 1, ratePerSecond: 0.001, maxSources: 3, now: () => 0 });
    for (const a of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) t.recordFailure(a);
    t.recordFailure('10.0.0.1'); // refreshes 10.0.0.1
    t.recordFailure('10.0.0.4'); // evicts 10.0.0.2, the least recent
    expect(t.size).toBe(3);
    expect(t.admit('10.0.0.2')).toBe(true);
    expect(t.admit('10.0.0.1')).toBe(false);
    expect(t.admit('10.0.0.3')).toBe(false);
    expect(t.admit('10.0.0.4')).toBe(false);
    for (let i = 0; i < 1000; i++) t.recordFailure(`10.1.${i >> 8}.${i & 255}`);
    expect(t.size).toBe(3);
  });

  it('sweep forgets sources whose buckets refilled', () => {
    const c = manualClock();
    const t = new FailureThrottle({ burst: 2, ratePerSecond: 1, now: c.now });
    t.recordFailure('10.0.0.1');
    c.advance(500);
    t.recordFailure('10.0.0.2');
    c.advance(600);
    expect(t.sweep()).toBe(1); // 10.0.0.1 is full again, 10.0.0.2 is not
    expect(t.size).toBe(1);
  });
});
