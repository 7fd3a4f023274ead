import { randomBytes } from 'node:crypto';
import type { Broker, BrokerLog, Lease } from '@fleetmq/broker';
import { Bridge, type BridgeOptions, type BridgeStats } from './bridge.js';
export { bridgeMetricSamples, type BridgeMetricSample } from './bridge-metrics.js';

export interface BridgeManagerOptions {
  readonly broker: Broker;
  /** Redis in a cluster (once per cluster), MemoryLease alone. */
  readonly lease: Lease;
  readonly nodeId: string;
  readonly bridges: readonly BridgeOptions[];
  /** How long a node holds a bridge's lease without renewing it (default 15 000 ms); renewed every third. */
  readonly leaseTtlMs?: number;
  /** On stop, how long queued messages may take to reach a connected remote (default 2000 ms). */
  readonly flushMs?: number;
  readonly log: BrokerLog;
}

/** The lease name of a bridge (Redis key `<prefix>bridge:<name>`). */
export function bridgeLeaseName(name: string): string {
  return `bridge:${name}`;
}

/**
 * Runs each bridge on exactly one node of the cluster: the node that holds the bridge's lease
 * (`bridge:<name>`). Every node tries to acquire each lease every third of the TTL; the holder
 * runs the bridge and renews the lease as often. A holder that loses the lease (it expired,
 * or Redis stayed unreachable for longer than the TTL allows) stops the bridge at once. On
 * `stop` (drain) the holder stops its bridges and releases their leases, so that another node
 * takes over within a third of the TTL; when a holder dies, its leases expire and another
 * node acquires them.
 */
export class BridgeManager {
  private readonly runners: LeasedBridge[];

  constructor(options: BridgeManagerOptions) {
    const holder = `${options.nodeId}/${randomBytes(6).toString('hex')}`;
    const seen = new Set<string>();
    this.runners = options.bridges.map((b) => {
      if (seen.has(b.name)) throw new Error(`two bridges are named ${b.name}`);
      seen.add(b.name);
      const ttlMs = b.leaseTtlMs ?? options.leaseTtlMs ?? 15_000;
      if (!Number.isInteger(ttlMs) || ttlMs < 300) throw new RangeError(`bridge ${b.name}: lease TTL must be a whole number of ms >= 300, got ${ttlMs}`);
      const bridge = new Bridge(b, options.broker, options.log.child({ component: 'bridge' }));
      return new LeasedBridge(bridge, options.lease, holder, ttlMs, options.flushMs ?? 2_000, options.log.child({ component: 'bridge', bridge: b.name }));
    });
  }

  /** Starts competing for the leases; resolves after the first attempt for each bridge. */
  async start(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.start()));
  }

  /** Stops the bridges this node runs and releases their leases. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop()));
  }

  /** A snapshot of every bridge's stats (standby: another node runs it). */
  stats(): BridgeStats[] {
    return this.runners.map((r) => ({ ...r.bridge.stats }));
  }

  /** The bridges this node runs now. */
  running(): string[] {
    return this.runners.filter((r) => r.holding).map((r) => r.bridge.name);
  }
}

/** One bridge under its lease. Transitions (start, stop) run one at a time. */
class LeasedBridge {
  holding = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenewed = 0;
  private chain: Promise<void> = Promise.resolve();
  private readonly leaseName: string;

  constructor(
    readonly bridge: Bridge,
    private readonly lease: Lease,
    private readonly holder: string,
    private readonly ttlMs: number,
    private readonly flushMs: number,
    private readonly log: BrokerLog,
  ) {
    this.leaseName = bridgeLeaseName(bridge.name);
  }

  start(): Promise<void> {
    this.bridge.stats.state = 'standby';
    const first = this.serialize(() => this.tick());
    this.timer = setInterval(() => void this.serialize(() => this.tick()), Math.max(100, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
    return first;
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    return this.serialize(async () => {
      if (!this.holding) {
        this.bridge.stats.state = 'stopped';
        return;
      }
      await this.bridge.stop(this.flushMs);
      this.holding = false;
      try {
        await this.lease.release(this.leaseName, this.holder);
        this.log.info({}, 'bridge_lease_released');
      } catch (err) {
        // it expires by itself within the TTL
        this.log.warn({ err: (err as Error).message }, 'bridge_lease_release_failed');
      }
    });
  }

  private serialize(step: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(step, step).catch((err: unknown) => {
      this.log.error({ err: (err as Error).message }, 'bridge_lease_error');
    });
    return this.chain;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (!this.holding) {
      let acquired: boolean;
      try {
        acquired = await this.lease.acquire(this.leaseName, this.holder, this.ttlMs);
      } catch {
        return; // the lease backend is down: try again at the next tick
      }
      if (!acquired || this.stopped) {
        if (acquired) await this.lease.release(this.leaseName, this.holder).catch(() => false);
        return;
      }
      this.holding = true;
      this.lastRenewed = Date.now();
      this.log.info({ holder: this.holder }, 'bridge_lease_acquired');
      await this.bridge.start();
      return;
    }
    let renewed: boolean;
    try {
      renewed = await this.lease.renew(this.leaseName, this.holder, this.ttlMs);
    } catch (err) {
      // unknown: keep running while the lease surely has not run out yet (a third of the TTL to spare)
      if (Date.now() - this.lastRenewed < (this.ttlMs * 2) / 3) return;
      this.log.warn({ err: (err as Error).message }, 'bridge_lease_unconfirmed');
      renewed = false;
    }
    if (renewed) {
      this.lastRenewed = Date.now();
      return;
    }
    this.log.warn({}, 'bridge_lease_lost');
    this.holding = false;
    // the lease may be another node's by now: its state notification stands
    await this.bridge.stop(0, false);
    this.bridge.stats.state = 'standby';
  }
}
