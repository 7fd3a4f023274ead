import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { DeleteItemCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { FencedError, decodeSnapshot, encodeSnapshot } from '@fleetmq/broker';
import type { SessionSnapshot, SessionStore, StoredSession } from '@fleetmq/broker';
import { QuotaExceededError } from '@fleetmq/protocol';
import { clientKey } from './client-key.js';
import type { DynamoClientOption } from './client.js';
import { DynamoTable } from './dynamo-table.js';
import { MAX_ITEM_BYTES, itemBytes, ttlValue } from './items.js';
import type { Item } from './items.js';
import { SESSION_ATTRIBUTES as A } from './tables.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Session expiry interval meaning "never" (MQTT 5; 3.1.1 clean session 0 maps to it). */
const NEVER = 0xffffffff;

/** Snapshots whose JSON is larger than this are stored gzipped (default). */
export const DEFAULT_COMPRESS_ABOVE_BYTES = 4 * 1024;

export interface DynamoSessionStoreOptions {
  /**
   * A client to use (the store never destroys it), or the configuration of one the store makes
   * with createDynamoClient (bounded retries, timeouts) and destroys on close.
   */
  readonly client: DynamoClientOption;
  /** The table made from sessionsTableDefinition / `fleetmq dynamo create-tables`. */
  readonly tableName: string;
  /**
   * A snapshot whose JSON is longer than this many bytes is stored gzipped, as binary
   * (default 4 KiB). Smaller ones stay readable JSON. 0 compresses every snapshot.
   */
  readonly compressAboveBytes?: number;
}

/**
 * When a stored session ends: its client disconnected at `disconnectedAt` and the session
 * outlives that by `expiryInterval` seconds. Undefined while the client is connected and for
 * sessions that never expire (0xFFFFFFFF).
 */
export function sessionExpiresAt(snapshot: SessionSnapshot): number | undefined {
  if (snapshot.disconnectedAt === undefined || snapshot.expiryInterval >= NEVER) return undefined;
  return snapshot.disconnectedAt + snapshot.expiryInterval * 1000;
}

/**
 * SessionStore on one DynamoDB table, one item per client ID:
 * `pk` (the client ID, see clientKey) · `epoch` (N, the owner epoch of the write) ·
 * `snapshot` (S: the broker's encodeSnapshot JSON; B: that JSON gzipped when longer than
 * compressAboveBytes) · `ttl` (N, session expiry in epoch seconds, only while the client is
 * disconnected and the session can expire).
 *
 * Fencing (invariant 2): save is a PutItem and delete a DeleteItem, both with the condition
 * `attribute_not_exists(pk) OR epoch <= :epoch`. The same epoch may rewrite (the owner saving
 * again), a newer one wins, an older one gets ConditionalCheckFailed, which surfaces as
 * FencedError (never BackendUnavailableError) and changes nothing.
 *
 * Size: a DynamoDB item is at most 400 KB. Large snapshots are gzipped; one still too large is
 * refused with QuotaExceededError and the stored session stays as it was (see the README).
 *
 * Reads are strongly consistent (a new owner must see the last write), and a session whose
 * expiry has passed is not returned even while the item is still there (TTL deletion is lazy).
 */
export class DynamoSessionStore extends DynamoTable implements SessionStore {
  private readonly compressAboveBytes: number;

  constructor(options: DynamoSessionStoreOptions) {
    super(options, 'session store');
    const compressAbove = options.compressAboveBytes ?? DEFAULT_COMPRESS_ABOVE_BYTES;
    if (!(compressAbove >= 0)) throw new RangeError(`compressAboveBytes must be >= 0, got ${compressAbove}`);
    this.compressAboveBytes = compressAbove;
  }

  async load(clientId: string): Promise<StoredSession | null> {
    this.checkOpen();
    const command = new GetItemCommand({ TableName: this.tableName, Key: keyOf(clientId), ConsistentRead: true });
    const { Item: item } = await this.call('GetItem', (c) => c.send(command));
    if (item === undefined) return null;
    const epoch = item[A.epoch]?.N;
    const stored = item[A.snapshot];
    if (epoch === undefined || stored === undefined) throw new Error(`session item of ${clientId} lacks epoch or snapshot`);
    const snapshot = decodeSnapshot(await snapshotText(stored));
    if (snapshot.clientId !== clientId) throw new Error(`session item of ${clientId} holds the session of ${snapshot.clientId}`);
    const expiresAt = sessionExpiresAt(snapshot);
    if (expiresAt !== undefined && expiresAt <= Date.now()) return null;
    return { snapshot, epoch: Number(epoch) };
  }

  async save(snapshot: SessionSnapshot, epoch: number): Promise<void> {
    this.checkOpen();
    checkEpoch(epoch);
    const text = encodeSnapshot(snapshot);
    const textBytes = Buffer.byteLength(text, 'utf8');
    const value: AttributeValue = textBytes > this.compressAboveBytes ? { B: await gzipAsync(text) } : { S: text };
    const item: Item = { ...keyOf(snapshot.clientId), [A.epoch]: { N: String(epoch) }, [A.snapshot]: value };
    const expiresAt = sessionExpiresAt(snapshot);
    if (expiresAt !== undefined) item[A.ttl] = ttlValue(expiresAt);
    const size = itemBytes(item);
    if (size > MAX_ITEM_BYTES) {
      throw new QuotaExceededError(
        `session ${snapshot.clientId.slice(0, 100)}: snapshot is ${textBytes} bytes (${size} bytes stored${value.B === undefined ? '' : ' gzipped'}), over DynamoDB's ${MAX_ITEM_BYTES}-byte item limit; ` +
          `it holds ${snapshot.inflight.length} inflight and ${snapshot.queue.length} queued messages: lower the maximum packet size, receive maximum or queue length`,
      );
    }
    const command = new PutItemCommand({
      TableName: this.tableName,
      Item: item,
      ...fenceCondition(epoch),
    });
    if ((await this.callIf('PutItem', (c) => c.send(command))) === null) throw new FencedError(snapshot.clientId, epoch);
  }

  async delete(clientId: string, epoch: number): Promise<SessionSnapshot | null> {
    this.checkOpen();
    checkEpoch(epoch);
    const command = new DeleteItemCommand({ TableName: this.tableName, Key: keyOf(clientId), ReturnValues: 'ALL_OLD', ...fenceCondition(epoch) });
    const result = await this.callIf('DeleteItem', (c) => c.send(command));
    if (result === null) throw new FencedError(clientId, epoch);
    const stored = result.Attributes?.[A.snapshot];
    return stored === undefined ? null : decodeSnapshot(await snapshotText(stored));
  }
}

function keyOf(clientId: string): Item {
  return { [A.pk]: { S: clientKey(clientId) } };
}

/** The write goes through only for a new item or one written with the same or a lower epoch. */
function fenceCondition(epoch: number) {
  return {
    ConditionExpression: 'attribute_not_exists(#pk) OR #epoch <= :epoch',
    ExpressionAttributeNames: { '#pk': A.pk, '#epoch': A.epoch },
    ExpressionAttributeValues: { ':epoch': { N: String(epoch) } },
  };
}

function checkEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`session epoch must be a non-negative integer, got ${epoch}`);
}

async function snapshotText(value: AttributeValue): Promise<string> {
  if (value.S !== undefined) return value.S;
  if (value.B !== undefined) return (await gunzipAsync(value.B)).toString('utf8');
  throw new Error('session snapshot attribute is neither S nor B');
}
