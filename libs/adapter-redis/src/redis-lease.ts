/**
 * Lease on Redis: one string key per lease, `<prefix><name>` (for a bridge, `fleetmq:bridge:<name>`),
 * whose value is the holder and whose TTL (PX) is the lease. Acquire, renew and release are
 * Lua scripts that compare the holder before they write, so a holder whose lease expired and
 * was taken by another can never extend or delete the new holder's lease.
 */
import type { Redis } from 'ioredis';
import type { Lease } from '@fleetmq/broker';
import { RedisConnection, whenReady } from './redis-connection.js';
import type { RedisConnectionOptions } from './redis-connection.js';
import type { RedisConnectOptions } from './redis-session-ownership.js';

/**
 * Acquires a lease. KEYS[1] the lease key; ARGV[1] holder; ARGV[2] TTL in ms. SET NX PX takes
 * a free (or expired) lease; the holder taking it again extends it. Returns 1 when the holder
 * holds it afterwards, 0 when another one does.
 */
const LEASE_ACQUIRE_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** Renews a lease only while ARGV[1] holds it. KEYS[1] the lease key; ARGV[2] TTL in ms. Returns 1 or 0. */
const LEASE_RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** Releases a lease only while ARGV[1] holds it. KEYS[1] the lease key. Returns 1 or 0. */
const LEASE_RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`;

interface LeaseCommands {
  fleetmqLeaseAcquire(key: string, holder: string, ttlMs: number): Promise<number>;
  fleetmqLeaseRenew(key: string, holder: string, ttlMs: number): Promise<number>;
  fleetmqLeaseRelease(key: string, holder: string): Promise<number>;
}

function leaseCommands(client: Redis): LeaseCommands {
  const commands = client as unknown as Partial<LeaseCommands>;
  if (typeof commands.fleetmqLeaseAcquire !== 'function') {
    client.defineCommand('fleetmqLeaseAcquire', { numberOfKeys: 1, lua: LEASE_ACQUIRE_SCRIPT });
    client.defineCommand('fleetmqLeaseRenew', { numberOfKeys: 1, lua: LEASE_RENEW_SCRIPT });
    client.defineCommand('fleetmqLeaseRelease', { numberOfKeys: 1, lua: LEASE_RELEASE_SCRIPT });
  }
  return client as unknown as LeaseCommands;
}

function ttl(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive whole number of ms, got ${ttlMs}`);
  return ttlMs;
}

export class RedisLease implements Lease {
  private readonly connection: RedisConnection;
  private readonly commands: LeaseCommands;

  /**
   * Connects and resolves once Redis answers; rejects with BackendUnavailableError (and
   * closes) when it does not within `readyTimeoutMs`.
   */
  static connect(options: RedisConnectionOptions & RedisConnectOptions): Promise<RedisLease> {
    const lease = new RedisLease(options);
    return whenReady(lease, lease.connection, options.readyTimeoutMs ?? 5_000);
  }

  /** Starts connecting in the background: `ready` turns true once connected. */
  constructor(options: RedisConnectionOptions) {
    this.connection = new RedisConnection(options, 'redis-lease');
    this.commands = leaseCommands(this.connection.client);
  }

  get ready(): boolean {
    return this.connection.ready;
  }

  /** The Redis key of a lease. */
  key(name: string): string {
    return `${this.connection.keyPrefix}${name}`;
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const px = ttl(ttlMs);
    return (await this.connection.run('lease acquire', () => this.commands.fleetmqLeaseAcquire(this.key(name), holder, px))) === 1;
  }

  async renew(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const px = ttl(ttlMs);
    return (await this.connection.run('lease renew', () => this.commands.fleetmqLeaseRenew(this.key(name), holder, px))) === 1;
  }

  async release(name: string, holder: string): Promise<boolean> {
    return (await this.connection.run('lease release', () => this.commands.fleetmqLeaseRelease(this.key(name), holder))) === 1;
  }

  async holder(name: string): Promise<string | null> {
    return this.connection.run('lease holder', (client) => client.get(this.key(name)));
  }

  /** Stops using Redis (and closes the connection if it opened it); later calls are refused. */
  close(): Promise<void> {
    return this.connection.close();
  }
}
