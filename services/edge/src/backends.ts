import type { EnsureTableResult } from '@fleetmq/adapter-dynamo';
import {
  offlineQueueTableDefinition,
  retainedTableDefinition,
  sessionsTableDefinition,
  type TableDefinition,
} from '@fleetmq/adapter-dynamo/table-definitions';
import {
  MemoryMessageBus,
  MemoryOfflineQueue,
  MemoryRetainedStore,
  MemorySessionOwnership,
  MemorySessionStore,
} from '@fleetmq/adapter-memory';
import type {
  BrokerLog,
  BrokerPorts,
  MessageBus,
  NodeLink,
  NodeRegistry,
  OfflineQueue,
  RetainedStore,
  SessionOwnership,
  SessionStore,
} from '@fleetmq/broker';
import type { EdgeConfig } from './config.js';
import type { Logger } from './logger.js';

type DynamoConfig = NonNullable<EdgeConfig['dynamodb']>;

// The adapters of the backends are loaded when the config names their backend: a node alone
// (the embedded default) never loads the AWS SDK, ioredis or nats.js, which would cost it
// about 10 MB of heap, 20 MB of RSS and a fifth of a second at start.
const dynamoAdapter = (): Promise<typeof import('@fleetmq/adapter-dynamo')> => loaded('dynamodb', import('@fleetmq/adapter-dynamo'));
const natsAdapter = (): Promise<typeof import('@fleetmq/adapter-nats')> => loaded('cluster.nats', import('@fleetmq/adapter-nats'));
const redisAdapter = (): Promise<typeof import('@fleetmq/adapter-redis')> => loaded('cluster.redis', import('@fleetmq/adapter-redis'));
export { redisAdapter };

/** An adapter that does not load is an installation problem: said with the key that asked for it. */
async function loaded<T>(key: string, adapter: Promise<T>): Promise<T> {
  try {
    return await adapter;
  } catch (err) {
    throw new Error(`${key} is configured but its adapter cannot be loaded (${(err as Error).message}): reinstall the dependencies (npm ci)`, { cause: err });
  }
}

/** The DynamoDB tables FleetMQ uses, named with the configured prefix. */
export function dynamoTables(dynamodb: DynamoConfig): { retained: TableDefinition; sessions: TableDefinition; offlineQueue: TableDefinition } {
  return {
    retained: retainedTableDefinition(`${dynamodb.tablePrefix}retained`),
    sessions: sessionsTableDefinition(`${dynamodb.tablePrefix}sessions`),
    offlineQueue: offlineQueueTableDefinition(`${dynamodb.tablePrefix}offline-queue`),
  };
}

function clientConfig(dynamodb: DynamoConfig) {
  return { region: dynamodb.region, ...(dynamodb.endpoint !== undefined ? { endpoint: dynamodb.endpoint } : {}) };
}

/** `fleetmq dynamo create-tables`: creates the missing tables, idempotent. */
export async function createDynamoTables(dynamodb: DynamoConfig): Promise<EnsureTableResult[]> {
  const { createDynamoClient, ensureTables } = await dynamoAdapter();
  const tables = Object.values(dynamoTables(dynamodb));
  const client = createDynamoClient(clientConfig(dynamodb));
  try {
    return await ensureTables(client, tables);
  } finally {
    client.destroy();
  }
}

interface Stores {
  readonly sessions: SessionStore;
  readonly offlineQueue: OfflineQueue;
  readonly retained: RetainedStore;
}

/** DynamoDB when configured (each store with its own client), in-process otherwise. */
async function stores(config: EdgeConfig, log: Logger): Promise<Stores> {
  const { dynamodb, mqtt } = config;
  const queueOptions = { maxLength: mqtt.maxQueuedMessages, dropPolicy: mqtt.queueDropPolicy };
  if (dynamodb === undefined) {
    return { sessions: new MemorySessionStore(), offlineQueue: new MemoryOfflineQueue(queueOptions), retained: new MemoryRetainedStore() };
  }
  if (dynamodb.createTables) {
    for (const result of await createDynamoTables(dynamodb)) log.info({ ...result }, 'dynamo_table_ready');
  }
  const { DynamoOfflineQueue, DynamoRetainedStore, DynamoSessionStore } = await dynamoAdapter();
  const tables = dynamoTables(dynamodb);
  const client = clientConfig(dynamodb);
  return {
    sessions: new DynamoSessionStore({ client, tableName: tables.sessions.tableName }),
    offlineQueue: new DynamoOfflineQueue({
      ...queueOptions,
      client,
      tableName: tables.offlineQueue.tableName,
      ...(mqtt.maxSessionExpiryInterval !== 0xffffffff ? { maxRetentionSeconds: mqtt.maxSessionExpiryInterval } : {}),
    }),
    retained: new DynamoRetainedStore({ client, tableName: tables.retained.tableName }),
  };
}

/**
 * NATS when configured: the node starts even while NATS is down, reports not ready, and
 * connects (and reconnects) in the background.
 */
async function messageBus(config: EdgeConfig, log: Logger): Promise<MessageBus> {
  const nats = config.cluster.nats;
  if (nats === undefined) return new MemoryMessageBus();
  const { NatsMessageBus } = await natsAdapter();
  return NatsMessageBus.create({
    servers: nats.servers,
    name: config.nodeId,
    reconnect: { waitMs: nats.reconnectTimeWait },
    log: log as unknown as BrokerLog,
  });
}

/** Node-to-node requests (session takeover) over NATS; none for a node alone. */
async function nodeLink(config: EdgeConfig, log: Logger): Promise<NodeLink | undefined> {
  const nats = config.cluster.nats;
  if (nats === undefined) return undefined;
  const { NatsNodeLink } = await natsAdapter();
  return new NatsNodeLink({ servers: nats.servers, name: config.nodeId, reconnectTimeWait: nats.reconnectTimeWait, log: log as unknown as BrokerLog });
}

/** Client-ID ownership in Redis when configured: one owner per client ID across the cluster. */
async function ownership(config: EdgeConfig, log: Logger): Promise<SessionOwnership> {
  const redis = config.cluster.redis;
  if (redis === undefined) return new MemorySessionOwnership();
  const { RedisSessionOwnership } = await redisAdapter();
  return new RedisSessionOwnership({ url: redis.url, keyPrefix: redis.keyPrefix, name: config.nodeId, log: log as unknown as BrokerLog });
}

/** Which nodes are alive (Redis): a draining node hands its detached sessions to them. */
export async function openNodeRegistry(config: EdgeConfig, log: Logger): Promise<NodeRegistry | undefined> {
  const redis = config.cluster.redis;
  if (redis === undefined) return undefined;
  const { RedisNodeRegistry } = await redisAdapter();
  return new RedisNodeRegistry({
    url: redis.url,
    keyPrefix: redis.keyPrefix,
    ttlMs: redis.nodeTtl,
    name: `${config.nodeId}/registry`,
    log: log as unknown as BrokerLog,
  });
}

/**
 * The ports the config asks for: a backend where one is configured, the in-process
 * adapter where not (the embedded default, one node alone).
 */
export async function openPorts(config: EdgeConfig, log: Logger): Promise<BrokerPorts> {
  return {
    bus: await messageBus(config, log),
    ownership: await ownership(config, log),
    ...(await stores(config, log)),
    link: await nodeLink(config, log),
  };
}

/** Closes every port; one failing does not keep the others open. */
export async function closePorts(ports: BrokerPorts): Promise<void> {
  await Promise.allSettled(
    [ports.link, ports.bus, ports.ownership, ports.sessions, ports.offlineQueue, ports.retained].map((p) => p?.close()),
  );
}

/** Every backend reachable: the bus says so, and so does any other adapter that knows (`ready`). */
export function portsReady(ports: BrokerPorts): boolean {
  if (!ports.bus.ready) return false;
  for (const port of [ports.ownership, ports.sessions, ports.offlineQueue, ports.retained]) {
    if ((port as { readonly ready?: boolean }).ready === false) return false;
  }
  return true;
}
