import { DeleteItemCommand, GetItemCommand, PutItemCommand, QueryCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { isExpired } from '@fleetmq/broker';
import type { Message, RetainedStore } from '@fleetmq/broker';
import { QuotaExceededError, topicMatches } from '@fleetmq/protocol';
import type { DynamoClientOption } from './client.js';
import { DynamoTable } from './dynamo-table.js';
import { MAX_ITEM_BYTES, itemBytes, messageAttributes, messageFromItem, ttlValue } from './items.js';
import type { Item } from './items.js';
import { planFilter, retainedKey } from './retained-keys.js';
import type { RetainedKey } from './retained-keys.js';
import { RETAINED_ATTRIBUTES as A } from './tables.js';

export interface DynamoRetainedStoreOptions {
  /**
   * A client to use (the store never destroys it), or the configuration of one the store makes
   * with createDynamoClient (bounded retries, timeouts) and destroys on close.
   */
  readonly client: DynamoClientOption;
  /** The table made by createRetainedTable / `fleetmq dynamo create-tables`. */
  readonly tableName: string;
  /** Strongly consistent reads (default true: the store is the truth; costs twice the RCU). */
  readonly consistentRead?: boolean;
  /**
   * count() runs a Scan with Select COUNT, which reads (and pays for) the whole table; its
   * result is reused for this many ms (default 5,000). The store's own writes invalidate it.
   */
  readonly countCacheMs?: number;
}

const NAMES = { '#topic': A.topic, '#payload': A.payload, '#message': A.message } as const;
const PROJECTION = '#topic, #payload, #message';

/**
 * RetainedStore on one DynamoDB table, one item per topic:
 * `pk` (first topic level) · `sk` (topic) · `topic` (the full topic) · `payload` (binary) ·
 * `message` (every other field, with the broker's message codec: MQTT 5 properties, expiry,
 * QoS, IDs) · `ttl` (expiry in epoch seconds, DynamoDB TTL; absent when the message never expires).
 * See retained-keys.ts for the key design, why filters with a literal first level never scan,
 * and its hot-partition trade-off.
 *
 * DynamoDB deletes expired items lazily (typically within days), so every read also drops
 * messages whose expiry has passed. Any DynamoDB failure surfaces as BackendUnavailableError
 * ('dynamodb') after the SDK's own bounded retries, so the broker refuses instead of losing.
 */
export class DynamoRetainedStore extends DynamoTable implements RetainedStore {
  private readonly consistentRead: boolean;
  private readonly countCacheMs: number;
  private cachedCount: { value: number; at: number } | undefined;
  /** Bumped by every write, so a count that raced a write is not cached. */
  private writes = 0;

  constructor(options: DynamoRetainedStoreOptions) {
    super(options, 'retained store');
    this.consistentRead = options.consistentRead ?? true;
    this.countCacheMs = options.countCacheMs ?? 5_000;
  }

  async set(message: Message): Promise<void> {
    this.checkOpen();
    const key = retainedKey(message.topic);
    this.writes++;
    this.cachedCount = undefined;
    if (message.payload.length === 0) {
      // [MQTT-3.3.1-6] an empty retained payload removes the retained message of the topic.
      const command = new DeleteItemCommand({ TableName: this.tableName, Key: keyItem(key) });
      await this.call('DeleteItem', (c) => c.send(command));
      return;
    }
    const item = toItem(key, message);
    const size = itemBytes(item);
    if (size > MAX_ITEM_BYTES) {
      throw new QuotaExceededError(
        `retained message on ${message.topic.slice(0, 100)} is ${size} bytes stored, over DynamoDB's ${MAX_ITEM_BYTES}-byte item limit`,
      );
    }
    const command = new PutItemCommand({ TableName: this.tableName, Item: item });
    await this.call('PutItem', (c) => c.send(command));
  }

  async get(topic: string): Promise<Message | null> {
    this.checkOpen();
    const item = await this.getItem(topic);
    return item ? liveMessage(item, Date.now()) : null;
  }

  async *match(filters: readonly string[]): AsyncIterable<Message> {
    this.checkOpen();
    const seen = new Set<string>();
    const now = Date.now();
    const emit = (item: Item, filter: (topic: string) => boolean): Message | null => {
      const topic = item[A.topic]?.S;
      if (topic === undefined || seen.has(topic) || !filter(topic)) return null;
      const message = liveMessage(item, now);
      if (message) seen.add(topic);
      return message;
    };

    const scanFilters: string[] = [];
    for (const filter of new Set(filters)) {
      const plan = planFilter(filter);
      if (plan.kind === 'scan') {
        scanFilters.push(filter);
        continue;
      }
      const matches = (topic: string): boolean => topicMatches(filter, topic);
      const exact = plan.kind === 'get' ? plan.topic : plan.alsoTopic;
      if (exact !== undefined && !seen.has(exact)) {
        const item = await this.getItem(exact);
        const message = item && emit(item, matches);
        if (message) yield message;
      }
      if (plan.kind === 'query') {
        for await (const page of this.queryPages(plan.pk, plan.skPrefix)) {
          for (const item of page) {
            const message = emit(item, matches);
            if (message) yield message;
          }
        }
      }
    }

    if (scanFilters.length > 0) {
      // Filters starting with a wildcard: one Scan answers all of them. [MQTT-4.7.2-1] they never
      // match a topic starting with '$', so those items are dropped on the server side.
      const matchesAny = (topic: string): boolean => scanFilters.some((filter) => topicMatches(filter, topic));
      for await (const page of this.scanPages()) {
        for (const item of page) {
          const message = emit(item, matchesAny);
          if (message) yield message;
        }
      }
    }
  }

  /**
   * Retained topics whose message has not expired (to the second). A Scan with Select COUNT:
   * it reads the whole table, so its result is cached for countCacheMs (see the options).
   */
  async count(): Promise<number> {
    this.checkOpen();
    const now = Date.now();
    if (this.cachedCount && now - this.cachedCount.at < this.countCacheMs) return this.cachedCount.value;
    const writesBefore = this.writes;
    let total = 0;
    let startKey: Item | undefined;
    do {
      const command = new ScanCommand({
        TableName: this.tableName,
        Select: 'COUNT',
        ConsistentRead: this.consistentRead,
        FilterExpression: 'attribute_not_exists(#ttl) OR #ttl > :now',
        ExpressionAttributeNames: { '#ttl': A.ttl },
        ExpressionAttributeValues: { ':now': { N: String(Math.floor(now / 1000)) } },
        ExclusiveStartKey: startKey,
      });
      const page = await this.call('Scan', (c) => c.send(command));
      total += page.Count ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    if (this.writes === writesBefore) this.cachedCount = { value: total, at: now };
    return total;
  }

  private async getItem(topic: string): Promise<Item | undefined> {
    const command = new GetItemCommand({
      TableName: this.tableName,
      Key: keyItem(retainedKey(topic)),
      ConsistentRead: this.consistentRead,
      ProjectionExpression: PROJECTION,
      ExpressionAttributeNames: NAMES,
    });
    const { Item } = await this.call('GetItem', (c) => c.send(command));
    return Item;
  }

  private async *queryPages(pk: string, skPrefix: string): AsyncGenerator<Item[]> {
    let startKey: Item | undefined;
    do {
      const command = new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
        ExpressionAttributeNames: { ...NAMES, '#pk': A.pk, '#sk': A.sk },
        ExpressionAttributeValues: { ':pk': { S: pk }, ':prefix': { S: skPrefix } },
        ProjectionExpression: PROJECTION,
        ConsistentRead: this.consistentRead,
        ExclusiveStartKey: startKey,
      });
      const page = await this.call('Query', (c) => c.send(command));
      yield page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  private async *scanPages(): AsyncGenerator<Item[]> {
    let startKey: Item | undefined;
    do {
      const command = new ScanCommand({
        TableName: this.tableName,
        FilterExpression: 'NOT begins_with(#topic, :dollar)',
        ExpressionAttributeNames: NAMES,
        ExpressionAttributeValues: { ':dollar': { S: '$' } },
        ProjectionExpression: PROJECTION,
        ConsistentRead: this.consistentRead,
        ExclusiveStartKey: startKey,
      });
      const page = await this.call('Scan', (c) => c.send(command));
      yield page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }
}

function keyItem(key: RetainedKey): Item {
  return { [A.pk]: { S: key.pk }, [A.sk]: { S: key.sk } };
}

function toItem(key: RetainedKey, message: Message): Item {
  // The topic and payload have attributes of their own; the codec keeps everything else.
  const item: Item = { ...keyItem(key), ...messageAttributes(message) };
  if (message.expiresAt !== undefined) item[A.ttl] = ttlValue(message.expiresAt);
  return item;
}

/** The item's message, or null once it has expired (TTL deletion is lazy). */
function liveMessage(item: Item, now: number): Message | null {
  const message = messageFromItem(item, `retained item ${JSON.stringify(item[A.pk]?.S)}/${JSON.stringify(item[A.sk]?.S)}`);
  return isExpired(message, now) ? null : message;
}
