/** Milliseconds since the epoch; injectable so that tests drive time by hand. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export interface TokenBucketOptions {
  /** Tokens added per second (the sustained rate). May be fractional (0.1 = one per 10 s). */
  readonly ratePerSecond: number;
  /** Largest number of tokens held (the burst); a new bucket starts full. */
  readonly burst: number;
  readonly now?: Clock;
}

/**
 * A token bucket: `burst` tokens, refilled continuously at `ratePerSecond`. Each admitted
 * event takes a token; an event that finds too few is refused and takes nothing.
 * Refill is computed on demand from the clock, so an idle bucket costs no timer.
 */
export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  private readonly now: Clock;
  private tokens: number;
  private updatedAt: number;

  constructor(options: TokenBucketOptions) {
    if (!(options.ratePerSecond > 0) || !Number.isFinite(options.ratePerSecond)) {
      throw new RangeError(`ratePerSecond must be a positive finite number, got ${options.ratePerSecond}`);
    }
    if (!(options.burst >= 1) || !Number.isFinite(options.burst)) {
      throw new RangeError(`burst must be a finite number >= 1, got ${options.burst}`);
    }
    this.ratePerSecond = options.ratePerSecond;
    this.burst = options.burst;
    this.now = options.now ?? systemClock;
    this.tokens = options.burst;
    this.updatedAt = this.now();
  }

  /** Takes `n` tokens when there are enough and returns true; otherwise takes none. */
  tryTake(n = 1): boolean {
    this.refill();
    if (this.tokens + 1e-9 < n) return false;
    this.tokens = Math.max(0, this.tokens - n);
    return true;
  }

  /** Tokens available now (fractional). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Milliseconds until `n` tokens are available; 0 when they are; Infinity when `n` > burst. */
  msUntil(n = 1): number {
    if (n > this.burst) return Number.POSITIVE_INFINITY;
    this.refill();
    const missing = n - this.tokens;
    return missing <= 1e-9 ? 0 : Math.ceil((missing / this.ratePerSecond) * 1000);
  }

  /** True when the bucket is full, i.e. it remembers nothing and may be forgotten. */
  isFull(): boolean {
    return this.available() >= this.burst;
  }

  private refill(): void {
    const t = this.now();
    const elapsed = t - this.updatedAt;
    // A clock that steps backwards neither refills nor drains.
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.ratePerSecond);
    this.updatedAt = Math.max(this.updatedAt, t);
  }
}
