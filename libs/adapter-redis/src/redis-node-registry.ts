/**
 * NodeRegistry on Redis: which edge nodes are alive, judged by one clock (Redis `TIME`).
 *
 * Key layout (both keys carry the hash tag `{nodes}`, so they share a Redis Cluster slot):
 * - `<prefix>{nodes}:deadlines`: sorted set, member node ID, score the heartbeat deadline
 *   (ms since the Unix epoch, Redis clock). Live: deadline > now. Expired: deadline <= now,
 *   kept until deadline + retainExpiredMs, then removed by the next listing.
 * - `<prefix>{nodes}:info`: hash, node ID → JSON `{"startedAt":…,"address":…}`.
 *
 * A deadline in a sorted set, rather than a key per node with a TTL, because an expired
 * node must stay visible (every live node has to learn of its death to adopt its share of
 * its detached sessions), and because register, heartbeat and listing then are each one
 * script over two declared keys, judged by the same clock.
 */
import type { Redis } from 'ioredis';
import type { NodeInfo, NodeRecord, NodeRegistry } from '@fleetmq/broker';
import { RedisConnection } from './redis-connection.js';
import type { RedisConnectionOptions } from './redis-connection.js';
import type { RedisConnectOptions } from './redis-session-ownership.js';
import { HEARTBEAT_SCRIPT, LIST_SCRIPT, REGISTER_SCRIPT } from './scripts.js';

export interface RedisNodeRegistryOptions extends RedisConnectionOptions {
  /** How long a heartbeat keeps a node live (default 10 000 ms); beat every ttlMs / 3. */
  readonly ttlMs?: number;
  /** How long an expired node stays listed (default 600 000 ms). */
  readonly retainExpiredMs?: number;
}

interface RegistryCommands {
  fleetmqNodeRegister(deadlines: string, info: string, nodeId: string, ttlMs: number, json: string): Promise<number>;
  fleetmqNodeHeartbeat(deadlines: string, nodeId: string, ttlMs: number): Promise<number>;
  fleetmqNodeList(deadlines: string, info: string, retainMs: number): Promise<string[]>;
}

function registryCommands(client: Redis): RegistryCommands {
  const commands = client as unknown as Partial<RegistryCommands>;
  if (typeof commands.fleetmqNodeRegister !== 'function') {
    client.defineCommand('fleetmqNodeRegister', { numberOfKeys: 2, lua: REGISTER_SCRIPT });
    client.defineCommand('fleetmqNodeHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT_SCRIPT });
    client.defineCommand('fleetmqNodeList', { numberOfKeys: 2, lua: LIST_SCRIPT });
  }
  return client as unknown as RegistryCommands;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive whole number of ms, got ${value}`);
  return value;
}

/** The stored info, read back; a malformed entry reads as startedAt 0 rather than failing the list. */
function parseInfo(json: string): NodeInfo {
  try {
    const parsed = JSON.parse(json) as { startedAt?: unknown; address?: unknown };
    const startedAt = typeof parsed.startedAt === 'number' ? parsed.startedAt : 0;
    return typeof parsed.address === 'string' ? { startedAt, address: parsed.address } : { startedAt };
  } catch {
    return { startedAt: 0 };
  }
}

export class RedisNodeRegistry implements NodeRegistry {
  readonly ttlMs: number;
  readonly retainExpiredMs: number;
  private readonly connection: RedisConnection;
  private readonly commands: RegistryCommands;
  private readonly deadlinesKey: string;
  private readonly infoKey: string;

  /**
   * Connects and resolves once Redis answers; rejects with BackendUnavailableError (and
   * closes) when it does not within `readyTimeoutMs`.
   */
  static async connect(options: RedisNodeRegistryOptions & RedisConnectOptions): Promise<RedisNodeRegistry> {
    const registry = new RedisNodeRegistry(options);
    try {
      await registry.connection.waitReady(options.readyTimeoutMs ?? 5_000);
    } catch (err) {
      await registry.close();
      throw err;
    }
    return registry;
  }

  /** Starts connecting in the background: `ready` turns true once connected. */
  constructor(options: RedisNodeRegistryOptions) {
    this.ttlMs = positiveInteger('ttlMs', options.ttlMs ?? 10_000);
    this.retainExpiredMs = positiveInteger('retainExpiredMs', options.retainExpiredMs ?? 600_000);
    this.connection = new RedisConnection(options, 'redis-node-registry');
    this.commands = registryCommands(this.connection.client);
    this.deadlinesKey = `${this.connection.keyPrefix}{nodes}:deadlines`;
    this.infoKey = `${this.connection.keyPrefix}{nodes}:info`;
  }

  /** True while connected to Redis. */
  get ready(): boolean {
    return this.connection.ready;
  }

  /** The two Redis keys of the registry. */
  get keys(): { readonly deadlines: string; readonly info: string } {
    return { deadlines: this.deadlinesKey, info: this.infoKey };
  }

  async register(nodeId: string, info: NodeInfo): Promise<void> {
    const json = JSON.stringify(info.address === undefined ? { startedAt: info.startedAt } : { startedAt: info.startedAt, address: info.address });
    await this.connection.run('register', () =>
      this.commands.fleetmqNodeRegister(this.deadlinesKey, this.infoKey, nodeId, this.ttlMs, json),
    );
  }

  async heartbeat(nodeId: string): Promise<boolean> {
    const deadline = await this.connection.run('heartbeat', () =>
      this.commands.fleetmqNodeHeartbeat(this.deadlinesKey, nodeId, this.ttlMs),
    );
    return deadline > 0;
  }

  async deregister(nodeId: string): Promise<void> {
    await this.connection.run('deregister', async (client) => {
      const results = await client.multi().zrem(this.deadlinesKey, nodeId).hdel(this.infoKey, nodeId).exec();
      const failed = results?.find(([err]) => err !== null)?.[0];
      if (failed) throw failed;
    });
  }

  async liveNodes(): Promise<string[]> {
    return (await this.list('liveNodes')).filter((r) => r.live).map((r) => r.nodeId);
  }

  async expiredNodes(): Promise<NodeRecord[]> {
    return (await this.list('expiredNodes')).filter((r) => !r.live);
  }

  async node(nodeId: string): Promise<NodeRecord | null> {
    return (await this.list('node')).find((r) => r.nodeId === nodeId) ?? null;
  }

  /** Stops using Redis (and closes the connection if it opened it); later calls are refused. */
  close(): Promise<void> {
    return this.connection.close();
  }

  /** Every known node, sorted by ID (one script: forget the long-expired, read the rest). */
  private async list(operation: string): Promise<NodeRecord[]> {
    const reply = await this.connection.run(operation, () =>
      this.commands.fleetmqNodeList(this.deadlinesKey, this.infoKey, this.retainExpiredMs),
    );
    const now = Number(reply[0]);
    const records: NodeRecord[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      const nodeId = reply[i]!;
      const expiresAt = Number(reply[i + 1]);
      records.push(Object.freeze({ nodeId, ...parseInfo(reply[i + 2]!), live: expiresAt > now, expiresAt }));
    }
    return records.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }
}
