import { ReasonCode } from '@fleetmq/protocol';
import type { Clock } from './clock.js';
import { TokenBucket } from './token-bucket.js';

/**
 * The policy limits of the security issue, each with the counter it increments when hit.
 * One counter family, `fleetmq_limit_hits_total`, labelled by limit:
 *
 *   fleetmq_limit_hits_total{limit="publish_rate"}      PUBLISH over the per-client rate (5.0 DISCONNECT 0x96)
 *   fleetmq_limit_hits_total{limit="connection_rate"}   CONNECT over the listener's rate (5.0 CONNACK 0x9F)
 *   fleetmq_limit_hits_total{limit="auth_failure_rate"} CONNECT refused because its source failed too often (0x9F)
 *   fleetmq_limit_hits_total{limit="max_qos"}           QoS above the maximum (refused 0x9B or downgraded)
 *   fleetmq_limit_hits_total{limit="retain"}            retain refused (0x9A) or stripped
 *   fleetmq_limit_hits_total{limit="packet_size"}       packet over the maximum size (0x95)
 *   fleetmq_limit_hits_total{limit="payload_size"}      payload over limits.maxPayloadSize (PUBACK 0x97)
 *   fleetmq_limit_hits_total{limit="inflight"}          inflight window full
 *   fleetmq_limit_hits_total{limit="queue_length"}      queue limit reached (drop policy applied)
 *   fleetmq_limit_hits_total{limit="connections"}       connections per listener exceeded (0x97)
 */
export const LIMIT_HITS_METRIC = 'fleetmq_limit_hits_total';

export const LimitName = {
  PublishRate: 'publish_rate',
  ConnectionRate: 'connection_rate',
  AuthFailureRate: 'auth_failure_rate',
  MaxQoS: 'max_qos',
  Retain: 'retain',
  PacketSize: 'packet_size',
  PayloadSize: 'payload_size',
  Inflight: 'inflight',
  QueueLength: 'queue_length',
  Connections: 'connections',
} as const;

export type LimitName = (typeof LimitName)[keyof typeof LimitName];

/** The Prometheus series a limit increments, e.g. `fleetmq_limit_hits_total{limit="publish_rate"}`. */
export function limitHitsSeries(limit: LimitName): string {
  return `${LIMIT_HITS_METRIC}{limit="${limit}"}`;
}

/** Counts limit hits by limit name; the metrics endpoint reads {@link LimitCounters.snapshot}. */
export class LimitCounters {
  private readonly counts = new Map<LimitName, number>();

  inc(limit: LimitName, by = 1): void {
    this.counts.set(limit, (this.counts.get(limit) ?? 0) + by);
  }

  get(limit: LimitName): number {
    return this.counts.get(limit) ?? 0;
  }

  /** Series name → count, for every limit hit at least once. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [limit, n] of this.counts) out[limitHitsSeries(limit)] = n;
    return out;
  }
}

/** The MQTT 5 reason code a rate limit answers with. */
export const RATE_LIMIT_REASON = {
  // 0x96 is a DISCONNECT reason only (PUBACK has no rate code; 0x97 Quota exceeded is the nearest)
  [LimitName.PublishRate]: ReasonCode.MessageRateTooHigh,
  [LimitName.ConnectionRate]: ReasonCode.ConnectionRateExceeded, // 0x9F, CONNACK
  [LimitName.AuthFailureRate]: ReasonCode.ConnectionRateExceeded, // 0x9F, CONNACK
} as const;

export type RateLimitName = keyof typeof RATE_LIMIT_REASON;

export interface RateLimiterOptions {
  readonly limit: RateLimitName;
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly counters?: LimitCounters;
  readonly now?: Clock;
}

/**
 * A named token bucket: `tryAcquire()` admits an event or counts a hit on its limit.
 * Use one per client for publish rate, one per listener for connection rate.
 */
export class RateLimiter {
  readonly limit: RateLimitName;
  /** The MQTT 5 reason code to refuse with: 0x96 (DISCONNECT) for publish rate, 0x9F (CONNACK) for connection rate. */
  readonly reasonCode: number;
  private readonly bucket: TokenBucket;
  private readonly counters: LimitCounters | undefined;

  constructor(options: RateLimiterOptions) {
    this.limit = options.limit;
    this.reasonCode = RATE_LIMIT_REASON[options.limit];
    this.bucket = new TokenBucket({
      ratePerSecond: options.ratePerSecond,
      burst: options.burst,
      ...(options.now !== undefined ? { now: options.now } : {}),
    });
    this.counters = options.counters;
  }

  tryAcquire(n = 1): boolean {
    if (this.bucket.tryTake(n)) return true;
    this.counters?.inc(this.limit);
    return false;
  }

  /** Milliseconds until `n` events would be admitted (for a Retry-After style hint). */
  msUntil(n = 1): number {
    return this.bucket.msUntil(n);
  }
}
