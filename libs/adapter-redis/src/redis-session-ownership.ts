/**
 * SessionOwnership on Redis (DESIGN.md invariant 2): `clientId → {node, epoch}`.
 *
 * Key layout: one hash per client ID, `<prefix>owner:<clientId>`, fields `node` (the owner,
 * absent while nobody owns it) and `epoch` (the last epoch handed out, kept after a
 * release). A claim is one Lua script (read, increment, write), so concurrent claims from any
 * number of nodes form one chain; release is one Lua script that removes `node` only while
 * `epoch` is still the caller's.
 *
 * Per-node index: a set per node, `<prefix>owned:<nodeId>`, of the client IDs it owns, so
 * that live nodes can find what a dead node held. The same scripts keep it: a claim moves the
 * client ID from the previous owner's set to the new one's, a release removes it, so a node
 * that crashes at any point leaves every client ID it owns listed, and only those. The
 * previous owner's set is named inside the script (it is known only there): the keys are in
 * several hash slots, so this needs a Redis without cluster mode.
 *
 * Epochs (`epochs` option):
 * - `clock` (default): the new epoch is max(last + 1, Redis time in ms). Epochs stay strictly
 *   increasing per client ID, and also keep growing after Redis lost its data (a restart
 *   without persistence, a failover to a replica that lagged), as long as the Redis clock is
 *   past the lost epochs: the DynamoDB fence then still admits the new owner.
 * - `counter`: 1, 2, 3… per client ID. Readable, but after data loss it starts at 1 again, and
 *   every write of the new owner is refused by the fence until the old epoch is passed: run
 *   Redis with persistence (AOF `appendfsync everysec` or better) for this mode.
 */
import type { Redis } from 'ioredis';
import type { ClaimResult, OwnerRecord, SessionOwnership } from '@fleetmq/broker';
import { RedisConnection } from './redis-connection.js';
import type { RedisConnectionOptions } from './redis-connection.js';
import { CLAIM_FROM_SCRIPT, CLAIM_SCRIPT, RELEASE_SCRIPT } from './scripts.js';

export type EpochMode = 'clock' | 'counter';

export interface RedisSessionOwnershipOptions extends RedisConnectionOptions {
  /** How epochs grow (default `clock`): see the module comment. */
  readonly epochs?: EpochMode;
}

export interface RedisConnectOptions {
  /** How long `connect` waits for the first connection (default 5000 ms). */
  readonly readyTimeoutMs?: number;
}

type ClaimReply = [] | [number] | [number, string, number];

/** The scripts, as ioredis adds them to the client with `defineCommand`. */
interface OwnershipCommands {
  fleetmqOwnershipClaim(key: string, owned: string, nodeId: string, mode: EpochMode, unused: string, ownedPrefix: string, clientId: string): Promise<ClaimReply>;
  fleetmqOwnershipClaimFrom(key: string, owned: string, nodeId: string, mode: EpochMode, expected: string, ownedPrefix: string, clientId: string): Promise<ClaimReply>;
  fleetmqOwnershipRelease(key: string, epoch: string, ownedPrefix: string, clientId: string): Promise<string | number>;
}

/** Adds the scripts to a client once (a shared client may serve several adapters). */
function ownershipCommands(client: Redis): OwnershipCommands {
  const commands = client as unknown as Partial<OwnershipCommands>;
  if (typeof commands.fleetmqOwnershipClaim !== 'function') {
    client.defineCommand('fleetmqOwnershipClaim', { numberOfKeys: 2, lua: CLAIM_SCRIPT });
    client.defineCommand('fleetmqOwnershipClaimFrom', { numberOfKeys: 2, lua: CLAIM_FROM_SCRIPT });
    client.defineCommand('fleetmqOwnershipRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
  }
  return client as unknown as OwnershipCommands;
}

function record(nodeId: string, epoch: number): OwnerRecord {
  return Object.freeze({ nodeId, epoch });
}

function claimResult(reply: ClaimReply): ClaimResult {
  const [epoch, previousNode, previousEpoch] = reply as [number, string?, number?];
  return {
    epoch,
    previous: previousNode === undefined || previousEpoch === undefined ? null : record(previousNode, previousEpoch),
  };
}

export class RedisSessionOwnership implements SessionOwnership {
  readonly epochs: EpochMode;
  private readonly connection: RedisConnection;
  private readonly commands: OwnershipCommands;

  /**
   * Connects and resolves once Redis answers; rejects with BackendUnavailableError (and
   * closes) when it does not within `readyTimeoutMs`.
   */
  static async connect(options: RedisSessionOwnershipOptions & RedisConnectOptions): Promise<RedisSessionOwnership> {
    const ownership = new RedisSessionOwnership(options);
    try {
      await ownership.connection.waitReady(options.readyTimeoutMs ?? 5_000);
    } catch (err) {
      await ownership.close();
      throw err;
    }
    return ownership;
  }

  /** Starts connecting in the background: `ready` turns true once connected. */
  constructor(options: RedisSessionOwnershipOptions) {
    this.epochs = options.epochs ?? 'clock';
    if (this.epochs !== 'clock' && this.epochs !== 'counter') throw new TypeError(`epochs must be 'clock' or 'counter'`);
    this.connection = new RedisConnection(options, 'redis-session-ownership');
    this.commands = ownershipCommands(this.connection.client);
  }

  /** True while connected to Redis. */
  get ready(): boolean {
    return this.connection.ready;
  }

  /** The Redis key holding a client ID's owner and last epoch. */
  key(clientId: string): string {
    return `${this.connection.keyPrefix}owner:${clientId}`;
  }

  /** The Redis key of the set of client IDs a node claimed. */
  ownedKey(nodeId: string): string {
    return `${this.connection.keyPrefix}owned:${nodeId}`;
  }

  async claim(clientId: string, nodeId: string): Promise<ClaimResult> {
    const reply = await this.connection.run('claim', () =>
      this.commands.fleetmqOwnershipClaim(this.key(clientId), this.ownedKey(nodeId), nodeId, this.epochs, '', this.ownedKey(''), clientId),
    );
    return claimResult(reply);
  }

  async claimFrom(clientId: string, nodeId: string, expectedNode: string): Promise<ClaimResult | null> {
    const reply = await this.connection.run('claimFrom', () =>
      this.commands.fleetmqOwnershipClaimFrom(this.key(clientId), this.ownedKey(nodeId), nodeId, this.epochs, expectedNode, this.ownedKey(''), clientId),
    );
    return reply.length === 0 ? null : claimResult(reply);
  }

  async release(clientId: string, epoch: number): Promise<boolean> {
    // epochs are safe integers: anything else was never handed out
    if (!Number.isSafeInteger(epoch) || epoch < 1) {
      this.connection.assertUsable('release');
      return false;
    }
    const node = await this.connection.run('release', () =>
      this.commands.fleetmqOwnershipRelease(this.key(clientId), String(epoch), this.ownedKey(''), clientId),
    );
    return typeof node === 'string';
  }

  async ownedBy(nodeId: string, cursor: string, count: number): Promise<{ clientIds: string[]; cursor: string }> {
    const [next, clientIds] = await this.connection.run('ownedBy', (client) =>
      client.sscan(this.ownedKey(nodeId), cursor, 'COUNT', count),
    );
    return { clientIds, cursor: next };
  }

  async owner(clientId: string): Promise<OwnerRecord | null> {
    const [nodeId, epoch] = await this.connection.run('owner', (client) => client.hmget(this.key(clientId), 'node', 'epoch'));
    if (nodeId === null || nodeId === undefined || epoch === null || epoch === undefined) return null;
    return record(nodeId, Number(epoch));
  }

  /** Stops using Redis (and closes the connection if it opened it); later calls are refused. */
  close(): Promise<void> {
    return this.connection.close();
  }
}
