/**
 * Table creation for `fleetmq dynamo create-tables`: idempotent, on-demand capacity
 * (PAY_PER_REQUEST), TTL enabled on the expiry attribute. The definitions and attribute names
 * are in table-definitions.ts (no AWS SDK), re-exported here.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { backendError } from './errors.js';
import { retainedTableDefinition, type TableDefinition } from './table-definitions.js';

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

export {
  MESSAGE_ATTRIBUTES,
  QUEUE_ATTRIBUTES,
  RETAINED_ATTRIBUTES,
  SESSION_ATTRIBUTES,
  offlineQueueTableDefinition,
  retainedTableDefinition,
  sessionsTableDefinition,
  type TableDefinition,
} from './table-definitions.js';

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
