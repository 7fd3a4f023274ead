/**
 * The ioredis connection shared by the Redis adapters, configured to fail fast while Redis is
 * down (DESIGN.md invariant 8): no offline queue, no retry of a command, a bounded command
 * time, and reconnection with capped exponential backoff in the background. Every failure
 * reaches the caller as BackendUnavailableError('redis').
 */
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { BackendUnavailableError } from '@fleetmq/protocol';
import { silentLog } from '@fleetmq/broker';
import type { BrokerLog } from '@fleetmq/broker';

export interface RedisReconnectOptions {
  /** First wait after a lost connection (default 50 ms). */
  readonly minDelayMs?: number;
  /** Longest wait between attempts (default 2000 ms). */
  readonly maxDelayMs?: number;
}

export interface RedisClientOptions {
  /** `redis://[[user]:password@]host:port[/db]`, or `rediss://` for TLS. */
  readonly url: string;
  /** Connection name (`CLIENT SETNAME`), e.g. the node ID: shown by `CLIENT LIST`. */
  readonly name?: string;
  /** A command without an answer after this long fails (default 1000 ms). */
  readonly commandTimeoutMs?: number;
  /** Time allowed for one connection attempt (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** Backoff between reconnection attempts; the client retries forever. */
  readonly reconnect?: RedisReconnectOptions;
}

export interface RedisConnectionOptions extends Partial<RedisClientOptions> {
  /**
   * An ioredis client to use instead of opening one from `url` (so that several adapters
   * share one connection): create it with `createRedisClient`. `close()` leaves it open.
   */
  readonly client?: Redis;
  /** Prefix of every key (default `fleetmq:`), so that clusters can share a Redis. */
  readonly keyPrefix?: string;
  readonly log?: BrokerLog;
}

export const DEFAULT_KEY_PREFIX = 'fleetmq:';

/** The wait before reconnection attempt `attempt` (1, 2, …): doubling, capped, with jitter. */
export function reconnectDelay(attempt: number, options: RedisReconnectOptions = {}): number {
  const min = options.minDelayMs ?? 50;
  const max = Math.max(min, options.maxDelayMs ?? 2_000);
  const base = Math.min(max, min * 2 ** Math.min(attempt - 1, 30));
  // ±20 %, so that the nodes of a cluster do not reconnect in lockstep
  return Math.round(Math.min(max, base * (0.8 + Math.random() * 0.4)));
}

/** The ioredis options the adapters rely on (fail fast, reconnect by itself). */
export function redisClientOptions(options: Omit<RedisClientOptions, 'url'> = {}): RedisOptions {
  return {
    // a command while disconnected fails at once instead of waiting in a queue
    enableOfflineQueue: false,
    // a command in flight when the connection drops fails instead of being sent again
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // a server that accepts but does not answer cannot hold a caller
    commandTimeout: options.commandTimeoutMs ?? 1_000,
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    enableReadyCheck: true,
    retryStrategy: (attempt: number) => reconnectDelay(attempt, options.reconnect),
    // after a failover the old primary answers READONLY: reconnect (to the new one)
    reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
    ...(options.name !== undefined ? { connectionName: options.name } : {}),
  };
}

/** An ioredis client configured as the adapters need it; it connects in the background. */
export function createRedisClient(options: RedisClientOptions): Redis {
  return new Redis(options.url, redisClientOptions(options));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whatever ioredis threw, as BackendUnavailableError('redis') with the original as `cause`. */
export function redisError(operation: string, err: unknown): BackendUnavailableError {
  if (err instanceof BackendUnavailableError) return err;
  return new BackendUnavailableError('redis', `redis ${operation} failed: ${errorMessage(err)}`, { cause: err });
}

/**
 * One adapter's hold on a client: readiness, fail-fast command execution, error mapping,
 * lifecycle logging, and closing what it opened.
 */
export class RedisConnection {
  readonly client: Redis;
  readonly keyPrefix: string;
  private readonly owned: boolean;
  private readonly log: BrokerLog;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Logged the current streak of errors already (one line per outage, not per attempt). */
  private errorLogged = false;
  /** Has been ready before (the next ready is a reconnection). */
  private wasReady = false;
  /** Ready since the last close: the next close is a disconnection, not a failed attempt. */
  private connected = false;
  private readonly onReady = (): void => {
    this.log.info({}, this.wasReady ? 'redis_reconnected' : 'redis_connected');
    this.wasReady = true;
    this.connected = true;
    this.errorLogged = false;
  };
  private readonly onClose = (): void => {
    if (!this.connected) return;
    this.connected = false;
    if (!this.closed) this.log.warn({}, 'redis_disconnected');
  };
  private readonly onError = (err: Error): void => {
    if (this.closed || this.errorLogged) return;
    this.errorLogged = true;
    this.log.warn({ error: err.message }, 'redis_error');
  };

  constructor(options: RedisConnectionOptions, component: string) {
    this.log = (options.log ?? silentLog).child({ component });
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (options.client !== undefined) {
      this.client = options.client;
      this.owned = false;
    } else if (options.url !== undefined) {
      this.client = createRedisClient({ ...options, url: options.url });
      this.owned = true;
    } else {
      throw new TypeError(`${component}: give either url or client`);
    }
    this.wasReady = this.connected = this.client.status === 'ready';
    this.client.on('ready', this.onReady);
    this.client.on('close', this.onClose);
    // without a listener, ioredis prints every connection error to the console
    this.client.on('error', this.onError);
  }

  /** True while connected (and not closed). */
  get ready(): boolean {
    return !this.closed && this.client.status === 'ready';
  }

  /**
   * Runs one command (or script) on the client. Refuses at once, without sending, while not
   * connected; maps every failure to BackendUnavailableError. A command that timed out or
   * lost its connection may still have run on the server.
   */
  async run<T>(operation: string, command: (client: Redis) => Promise<T>): Promise<T> {
    this.assertUsable(operation);
    try {
      return await command(this.client);
    } catch (err) {
      throw redisError(operation, err);
    }
  }

  /** Throws BackendUnavailableError when closed or not connected. */
  assertUsable(operation: string): void {
    if (this.closed) throw new BackendUnavailableError('redis', `redis ${operation}: the adapter is closed`);
    if (this.client.status !== 'ready') {
      throw new BackendUnavailableError('redis', `redis ${operation}: not connected (${this.client.status})`);
    }
  }

  /** Resolves once connected; rejects with BackendUnavailableError after `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let lastError: Error | undefined;
      const onError = (err: Error): void => {
        lastError = err;
      };
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        this.client.off('error', onError);
        this.client.off('end', onEnd);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onReady = (): void => done();
      const onEnd = (): void => done(new BackendUnavailableError('redis', 'redis connection ended before it was ready'));
      const timer = setTimeout(() => {
        const why = lastError ? `: ${lastError.message}` : '';
        done(new BackendUnavailableError('redis', `redis not ready within ${timeoutMs} ms${why}`, { cause: lastError }));
      }, timeoutMs);
      this.client.on('ready', onReady);
      this.client.on('error', onError);
      this.client.on('end', onEnd);
    });
  }

  /** Stops using the client; closes it if this connection opened it. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.client.off('ready', this.onReady);
    this.client.off('close', this.onClose);
    if (!this.owned) {
      this.client.off('error', this.onError);
      return;
    }
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
      } catch {
        // the connection is going anyway
      }
    }
    // stops a reconnection loop too; the error listener stays so a late socket error is not printed
    this.client.disconnect(false);
  }
}

/**
 * Resolves with `adapter` once its connection answers; closes the adapter and rejects with
 * BackendUnavailableError when Redis does not answer within `timeoutMs` (an adapter's `connect`).
 */
export async function whenReady<T extends { close(): Promise<void> }>(adapter: T, connection: RedisConnection, timeoutMs: number): Promise<T> {
  try {
    await connection.waitReady(timeoutMs);
  } catch (err) {
    await adapter.close();
    throw err;
  }
  return adapter;
}
