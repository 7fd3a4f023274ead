import { systemClock, type Clock } from './clock.js';
import { LimitName, type LimitCounters } from './limits.js';
import { sourceKey } from './source-address.js';
import { TokenBucket } from './token-bucket.js';

export interface FailureThrottleOptions {
  /** Failed attempts a source may make in a burst before it is refused. Default 10. */
  readonly burst?: number;
  /** Failed attempts forgiven per second after that. Default 0.2 (one every 5 s). */
  readonly ratePerSecond?: number;
  /** Sources remembered at most; the least recently seen is forgotten first. Default 10 000. */
  readonly maxSources?: number;
  readonly counters?: LimitCounters;
  readonly now?: Clock;
}

/**
 * Slows password guessing per source address. Every failed authentication takes a token from
 * the source's bucket; a source whose bucket is empty is refused before its credentials are
 * looked at (CONNACK 0x9F "Connection rate exceeded") until tokens come back. Successful
 * attempts cost nothing. The table is an LRU bounded by `maxSources`, so a flood of distinct
 * addresses costs bounded memory (at worst it forgets a penalty early). Each refusal counts
 * `fleetmq_limit_hits_total{limit="auth_failure_rate"}`.
 */
export class FailureThrottle {
  private readonly burst: number;
  private readonly ratePerSecond: number;
  private readonly maxSources: number;
  private readonly counters: LimitCounters | undefined;
  private readonly now: Clock;
  /** Map iteration order is insertion order: re-inserting on use makes the first key the LRU. */
  private readonly sources = new Map<string, TokenBucket>();

  constructor(options: FailureThrottleOptions = {}) {
    this.burst = options.burst ?? 10;
    this.ratePerSecond = options.ratePerSecond ?? 0.2;
    this.maxSources = options.maxSources ?? 10_000;
    if (!Number.isInteger(this.maxSources) || this.maxSources < 1) throw new RangeError('maxSources must be an integer >= 1');
    this.counters = options.counters;
    this.now = options.now ?? systemClock;
  }

  /** True when this source may attempt to authenticate now; counts a hit when it may not. */
  admit(address: string): boolean {
    const bucket = this.sources.get(sourceKey(address));
    if (bucket === undefined || bucket.available() >= 1 - 1e-9) return true;
    this.counters?.inc(LimitName.AuthFailureRate);
    return false;
  }

  /** Records a failed attempt from this source. */
  recordFailure(address: string): void {
    const key = sourceKey(address);
    let bucket = this.sources.get(key);
    if (bucket === undefined) {
      bucket = new TokenBucket({ burst: this.burst, ratePerSecond: this.ratePerSecond, now: this.now });
    } else {
      this.sources.delete(key);
    }
    bucket.tryTake(1);
    this.sources.set(key, bucket);
    while (this.sources.size > this.maxSources) {
      const oldest = this.sources.keys().next().value;
      if (oldest === undefined) break;
      this.sources.delete(oldest);
    }
  }

  /** Milliseconds until this source may try again (0 when it may now). */
  retryAfterMs(address: string): number {
    return this.sources.get(sourceKey(address))?.msUntil(1) ?? 0;
  }

  /** Sources currently remembered (a gauge for the metrics endpoint). */
  get size(): number {
    return this.sources.size;
  }

  /** Forgets sources whose buckets have refilled; call from a slow timer to keep the table small. */
  sweep(): number {
    let removed = 0;
    for (const [key, bucket] of this.sources) {
      if (bucket.isFull()) {
        this.sources.delete(key);
        removed++;
      }
    }
    return removed;
  }
}
