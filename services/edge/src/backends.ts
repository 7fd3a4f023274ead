import {
  DynamoOfflineQueue,
  DynamoRetainedStore,
  DynamoSessionStore,
  createDynamoClient,
  ensureTables,
  offlineQueueTableDefinition,
  retainedTableDefinition,
  sessionsTableDefinition,
  type EnsureTableResult,
  type TableDefinition,
} from '@fleetmq/adapter-dynamo';
import {
  MemoryMessageBus,
  MemoryOfflineQueue,
  MemoryRetainedStore,
  MemorySessionOwnership,
  MemorySessionStore,
} from '@fleetmq/adapter-memory';
import { NatsMessageBus, NatsNodeLink } from '@fleetmq/adapter-nats';
import { RedisNodeRegistry, RedisSessionOwnership } from '@fleetmq/adapter-redis';
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
  const client = createDynamoClient(clientConfig(dynamodb));
  try {
    return await ensureTables(client, Object.values(dynamoTables(dynamodb)));
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
function messageBus(config: EdgeConfig, log: Logger): MessageBus {
  const nats = config.cluster.nats;
  if (nats === undefined) return new MemoryMessageBus();
  return NatsMessageBus.create({
    servers: nats.servers,
    name: config.nodeId,
    reconnect: { waitMs: nats.reconnectTimeWait },
    log: log as unknown as BrokerLog,
  });
}

/** Node-to-node requests (session takeover) over NATS; none for a node alone. */
function nodeLink(config: EdgeConfig, log: Logger): NodeLink | undefined {
  const nats = config.cluster.nats;
  if (nats === undefined) return undefined;
  return new NatsNodeLink({ servers: nats.servers, name: config.nodeId, reconnectTimeWait: nats.reconnectTimeWait, log: log as unknown as BrokerLog });
}

/** Client-ID ownership in Redis when configured: one owner per client ID across the cluster. */
function ownership(config: EdgeConfig, log: Logger): SessionOwnership {
  const redis = config.cluster.redis;
  if (redis === undefined) return new MemorySessionOwnership();
  return new RedisSessionOwnership({ url: redis.url, keyPrefix: redis.keyPrefix, name: config.nodeId, log: log as unknown as BrokerLog });
}

/** Which nodes are alive (Redis): a draining node hands its detached sessions to them. */
export function openNodeRegistry(config: EdgeConfig, log: Logger): NodeRegistry | undefined {
  const redis = config.cluster.redis;
  if (redis === undefined) return undefined;
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
    bus: messageBus(config, log),
    ownership: ownership(config, log),
    ...(await stores(config, log)),
    link: nodeLink(config, log),
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
