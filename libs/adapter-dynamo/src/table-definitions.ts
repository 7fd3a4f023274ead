/**
 * What FleetMQ's DynamoDB tables are: their keys, TTL attribute and attribute names. No AWS
 * SDK here (`@fleetmq/adapter-dynamo/table-definitions`): a node that names its tables
 * without using DynamoDB, and the deployment code, load this alone.
 */

/**
 * A table FleetMQ needs: a string partition key, an optional sort key (string unless
 * `sortKeyType` says 'N'), and a TTL attribute (epoch seconds).
 */
export interface TableDefinition {
  readonly tableName: string;
  readonly partitionKey: string;
  /** Absent: the table is keyed by the partition key alone. */
  readonly sortKey?: string;
  /** DynamoDB type of the sort key: 'S' (default) or 'N'. */
  readonly sortKeyType?: 'S' | 'N';
  readonly ttlAttribute: string;
}

/** Attributes of an item that holds one message (retained messages, offline queues). */
export const MESSAGE_ATTRIBUTES = {
  /** S: the topic. */
  topic: 'topic',
  /** B: the payload. */
  payload: 'payload',
  /** S: every other field of the message, with the broker's encodeMessage codec. */
  message: 'message',
} as const;

/** Attribute names of the retained-message table. */
export const RETAINED_ATTRIBUTES = {
  pk: 'pk',
  sk: 'sk',
  ...MESSAGE_ATTRIBUTES,
  ttl: 'ttl',
} as const;

export function retainedTableDefinition(tableName: string): TableDefinition {
  return { tableName, partitionKey: RETAINED_ATTRIBUTES.pk, sortKey: RETAINED_ATTRIBUTES.sk, ttlAttribute: RETAINED_ATTRIBUTES.ttl };
}

/** Attribute names of the session table (one item per client ID, no sort key). */
export const SESSION_ATTRIBUTES = {
  /** S: the client ID (see clientKey). */
  pk: 'pk',
  /** N: the owner epoch of the last write; writes are conditional on it (fencing). */
  epoch: 'epoch',
  /** S: the snapshot as JSON (encodeSnapshot); B: the same JSON gzipped, when it is large. */
  snapshot: 'snapshot',
  /** N: session expiry in epoch seconds, only while the client is disconnected and the session expires. */
  ttl: 'ttl',
} as const;

/** The session table (`${prefix}sessions`): `pk` S HASH, TTL on `ttl`. */
export function sessionsTableDefinition(tableName: string): TableDefinition {
  return { tableName, partitionKey: SESSION_ATTRIBUTES.pk, ttlAttribute: SESSION_ATTRIBUTES.ttl };
}

/** Attribute names of the offline-queue table. */
export const QUEUE_ATTRIBUTES = {
  /** S: the client ID (see clientKey). */
  pk: 'pk',
  /** N: the message's sequence number; 0 for the client's counter item. */
  sk: 'sk',
  ...MESSAGE_ATTRIBUTES,
  /** N: message expiry (capped by the queue's maxRetentionSeconds) in epoch seconds. */
  ttl: 'ttl',
  /** N, counter item only: the last sequence number handed out. */
  seq: 'seq',
  /** N, counter item only: every sequence number up to this one is removed or dropped. */
  head: 'head',
  /** N, counter item only: `seq - head`, kept so that a condition can compare it with the limit. */
  len: 'len',
} as const;

/** The offline-queue table (`${prefix}offline-queue`): `pk` S HASH, `sk` N RANGE, TTL on `ttl`. */
export function offlineQueueTableDefinition(tableName: string): TableDefinition {
  return {
    tableName,
    partitionKey: QUEUE_ATTRIBUTES.pk,
    sortKey: QUEUE_ATTRIBUTES.sk,
    sortKeyType: 'N',
    ttlAttribute: QUEUE_ATTRIBUTES.ttl,
  };
}
