import type { ListenerLimits } from './client-limits.js';
import { TokenBucket } from './token-bucket.js';

/** Why a listener refused a connection: `fleetmq_connections_refused_total{reason}`. */
export type ConnectionRefusal = 'connections' | 'connection_rate';

/**
 * Admission of new connections on one listener: a count of open connections against
 * `maxConnections`, and a token bucket against `connectionRate`. A refused connection is
 * not counted as open; its CONNECT is still answered (the channel does it).
 */
export class ListenerGate {
  private open = 0;
  private readonly bucket: TokenBucket | undefined;

  constructor(readonly limits: ListenerLimits) {
    const rate = limits.connectionRate;
    this.bucket = rate === undefined ? undefined : new TokenBucket({ ratePerSecond: rate.perSecond, burst: rate.burst });
  }

  /** Connections admitted and not yet released. */
  get openConnections(): number {
    return this.open;
  }

  /** Admits one connection (it counts until `release`), or says why not. */
  admit(): ConnectionRefusal | undefined {
    // a full listener refuses without spending a token: the rate counts what got through
    if (this.limits.maxConnections !== undefined && this.open >= this.limits.maxConnections) return 'connections';
    if (this.bucket !== undefined && !this.bucket.tryTake(1)) return 'connection_rate';
    this.open++;
    return undefined;
  }

  release(): void {
    if (this.open > 0) this.open--;
  }
}
