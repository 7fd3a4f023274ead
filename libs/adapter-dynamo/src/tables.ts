/**
 * Table creation for `fleetmq dynamo create-tables`: idempotent, on-demand capacity
 * (PAY_PER_REQUEST), TTL enabled on the expiry attribute. Also the attribute names of each table.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { backendError } from './errors.js';

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

/**
 * - `created` / `exists`: what CreateTable found;
 * - ttl `enabled`: TTL switched on now; `already-enabled`: it was on (or being switched on);
 *   `unsupported`: the endpoint has no UpdateTimeToLive (dynalite): expired items then stay until
 *   the store overwrites or deletes them, and reads still skip them.
 */
export interface EnsureTableResult {
  readonly tableName: string;
  readonly table: 'created' | 'exists';
  readonly ttl: 'enabled' | 'already-enabled' | 'unsupported';
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

const ACTIVE_TIMEOUT_MS = 120_000;

async function waitUntilActive(client: DynamoDBClient, tableName: string): Promise<void> {
  const deadline = Date.now() + ACTIVE_TIMEOUT_MS;
  for (let delay = 50; ; delay = Math.min(delay * 2, 2_000)) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') return;
    if (Date.now() >= deadline) throw new Error(`table ${tableName} is ${Table?.TableStatus ?? 'unknown'}, not ACTIVE, after ${ACTIVE_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function isUnsupportedOperation(err: unknown): boolean {
  // dynalite answers UpdateTimeToLive with UnknownOperationException.
  return err instanceof Error && (err.name === 'UnknownOperationException' || err.name === 'UnknownOperation');
}

async function ensureTtl(client: DynamoDBClient, definition: TableDefinition): Promise<EnsureTableResult['ttl']> {
  const { tableName, ttlAttribute } = definition;
  const described = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  const status = described.TimeToLiveDescription?.TimeToLiveStatus;
  const attribute = described.TimeToLiveDescription?.AttributeName;
  if ((status === 'ENABLED' || status === 'ENABLING') && attribute === ttlAttribute) return 'already-enabled';
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { Enabled: true, AttributeName: ttlAttribute },
      }),
    );
    return 'enabled';
  } catch (err) {
    if (isUnsupportedOperation(err)) return 'unsupported';
    throw err;
  }
}

/** Creates the table if it does not exist, waits until it is ACTIVE, and enables TTL. Idempotent. */
export async function ensureTable(client: DynamoDBClient, definition: TableDefinition): Promise<EnsureTableResult> {
  const { tableName, partitionKey, sortKey } = definition;
  let table: EnsureTableResult['table'] = 'created';
  try {
    try {
      await client.send(
        new CreateTableCommand({
          TableName: tableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: partitionKey, AttributeType: 'S' },
            ...(sortKey === undefined ? [] : [{ AttributeName: sortKey, AttributeType: definition.sortKeyType ?? 'S' }]),
          ],
          KeySchema: [
            { AttributeName: partitionKey, KeyType: 'HASH' },
            ...(sortKey === undefined ? [] : [{ AttributeName: sortKey, KeyType: 'RANGE' as const }]),
          ],
        }),
      );
    } catch (err) {
      if (!(err instanceof Error && err.name === 'ResourceInUseException')) throw err;
      table = 'exists';
    }
    await waitUntilActive(client, tableName);
    return { tableName, table, ttl: await ensureTtl(client, definition) };
  } catch (err) {
    throw backendError('ensureTable', tableName, err);
  }
}

/** Ensures each table in turn (the command behind `fleetmq dynamo create-tables`). */
export async function ensureTables(client: DynamoDBClient, definitions: readonly TableDefinition[]): Promise<EnsureTableResult[]> {
  const results: EnsureTableResult[] = [];
  for (const definition of definitions) results.push(await ensureTable(client, definition));
  return results;
}

/** Creates the retained-message table (`pk` S HASH, `sk` S RANGE, TTL on `ttl`). Idempotent. */
export function createRetainedTable(client: DynamoDBClient, tableName: string): Promise<EnsureTableResult> {
  return ensureTable(client, retainedTableDefinition(tableName));
}
