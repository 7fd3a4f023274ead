import { GetItemCommand, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, WriteRequest } from '@aws-sdk/client-dynamodb';
import { isExpired, mapLimit } from '@fleetmq/broker';
import type { AppendResult, Message, OfflineQueue, OfflineQueueOptions, QueuedMessage } from '@fleetmq/broker';
import { BackendUnavailableError, QuotaExceededError } from '@fleetmq/protocol';
import { clientKey } from './client-key.js';
import type { DynamoClientOption } from './client.js';
import { DynamoTable } from './dynamo-table.js';
import { MAX_ITEM_BYTES, itemBytes, messageAttributes, messageFromItem, ttlValue } from './items.js';
import type { Item } from './items.js';
import { QUEUE_ATTRIBUTES as A } from './tables.js';

/** Sort key of a client's counter item; messages have sequence numbers above it. */
const COUNTER_SK = 0;
/** Tries of a conditional update of a counter item before the call gives up as contended. */
const CAS_ATTEMPTS = 10;
const NEVER_SECONDS = 0xffffffff;

export interface DynamoOfflineQueueOptions extends OfflineQueueOptions {
  /**
   * A client to use (the queue never destroys it), or the configuration of one the queue makes
   * with createDynamoClient (bounded retries, timeouts) and destroys on close.
   */
  readonly client: DynamoClientOption;
  /** The table made from offlineQueueTableDefinition / `fleetmq dynamo create-tables`. */
  readonly tableName: string;
  /**
   * Longest a queued message is kept, seconds: its TTL is at most this long after it was
   * queued. Set it to the broker's maxSessionExpiryInterval: a message is queued only for a
   * disconnected session, which ends at most that long after its client left. Absent or
   * 0xFFFFFFFF: only the message's own expiry sets a TTL.
   */
  readonly maxRetentionSeconds?: number;
  /** Counter updates of one appendMany run at most this many at once (default 16). */
  readonly concurrency?: number;
}

/** A client's counter item: the last sequence number handed out, and the removal watermark. */
interface Counter {
  /** The last sequence number handed out. */
  readonly seq: number;
  /** Every sequence number up to and including this one is removed or dropped. */
  readonly head: number;
}

/** Sequence numbers reserved for one client by one call, and what to write at them. */
interface Reservation {
  readonly pk: string;
  readonly writes: ReadonlyArray<{ readonly seq: number; readonly body: Item }>;
  /** Messages refused by 'drop-newest'. */
  readonly refused: number;
  /** 'drop-oldest': the queue is over its limit; move the head up to here once written. */
  readonly trimTo?: number;
}

/**
 * Where a new counter starts: microseconds since the epoch. A counter that clear() or TTL
 * deleted thus comes back above every sequence number it handed out before (unless those
 * came faster than one per microsecond on average), so sequence numbers are not reused.
 * Safe integers until the year 2255.
 */
function counterBase(): number {
  return Date.now() * 1000;
}

/**
 * OfflineQueue on one DynamoDB table: `pk` (client ID, see clientKey) · `sk` (N, sequence
 * number). Each client has a counter item at `sk` 0 (`seq`: the last sequence number handed
 * out; `head`: everything up to it is removed or dropped; `len` = seq - head) and one item per
 * message at sk = its sequence number (`topic` S, `payload` B, `message` S with the broker's
 * codec, `ttl`). The queue is the message items with head < sk <= seq, in ascending sk.
 *
 * Order: every append first takes a range of sequence numbers from the counter item with one
 * atomic UpdateItem, so appends from any number of nodes get disjoint, increasing ranges in the
 * order DynamoDB applied them. The cost is one extra write (1 WCU) per client per call. See the
 * README for the choice.
 *
 * Limit, by the drop policy:
 * - 'drop-oldest': take unconditionally; after writing, a queue longer than maxLength moves its
 *   head (a conditional UpdateItem, ReturnValues UPDATED_OLD) and deletes the items passed over.
 *   `dropped` counts the sequence numbers the head moved past, so two nodes trimming the same
 *   queue never count one drop twice.
 * - 'drop-newest': take only if `len <= maxLength - k` (a condition, no read); when refused,
 *   read the counter and take what still fits; refuse the rest without writing it.
 *
 * length() is `seq - head` from the counter item: one GetItem, whatever the queue's size. It
 * counts expired messages not yet read past, and the sequence numbers of an append that failed
 * after taking them, until the queue is read and removed past them.
 *
 * Reads are strongly consistent (a reconnecting client must see what another node queued) and
 * skip expired messages (TTL deletion is lazy). Any DynamoDB failure surfaces as
 * BackendUnavailableError ('dynamodb') after the SDK's bounded retries.
 */
export class DynamoOfflineQueue extends DynamoTable implements OfflineQueue {
  private readonly maxLength: number;
  private readonly dropOldest: boolean;
  private readonly retentionMs: number | undefined;
  private readonly concurrency: number;

  constructor(options: DynamoOfflineQueueOptions) {
    if (!Number.isSafeInteger(options.maxLength) || options.maxLength < 0) {
      throw new RangeError(`offline queue maxLength must be a non-negative integer, got ${options.maxLength}`);
    }
    if (options.dropPolicy !== 'drop-oldest' && options.dropPolicy !== 'drop-newest') {
      throw new RangeError(`offline queue dropPolicy must be 'drop-oldest' or 'drop-newest', got ${String(options.dropPolicy)}`);
    }
    const retention = options.maxRetentionSeconds;
    if (retention !== undefined && !(retention > 0)) {
      throw new RangeError(`offline queue maxRetentionSeconds must be > 0, got ${retention}`);
    }
    const concurrency = options.concurrency ?? 16;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`offline queue concurrency must be a positive integer, got ${concurrency}`);
    }
    super(options, 'offline queue');
    this.maxLength = options.maxLength;
    this.dropOldest = options.dropPolicy === 'drop-oldest';
    this.retentionMs = retention === undefined || retention >= NEVER_SECONDS ? undefined : retention * 1000;
    this.concurrency = concurrency;
  }

  async append(clientId: string, messages: readonly Message[]): Promise<AppendResult> {
    this.checkOpen();
    if (messages.length === 0) return { dropped: 0 };
    const pk = clientKey(clientId);
    const now = Date.now();
    const bodies = messages.map((message) => this.checkedBody(pk, message, now));
    const reservation = await this.reserve(pk, bodies, now);
    return { dropped: await this.commit([reservation]) };
  }

  /**
   * One message for many queues: one counter update per client (at most `concurrency` at
   * once), then every message item in BatchWriteItem calls of 25, then the trims.
   */
  async appendMany(clientIds: readonly string[], message: Message): Promise<AppendResult> {
    this.checkOpen();
    const counts = new Map<string, number>();
    let longest = '';
    for (const clientId of clientIds) {
      const pk = clientKey(clientId);
      counts.set(pk, (counts.get(pk) ?? 0) + 1);
      if (Buffer.byteLength(pk, 'utf8') > Buffer.byteLength(longest, 'utf8')) longest = pk;
    }
    if (counts.size === 0) return { dropped: 0 };
    const now = Date.now();
    const body = this.checkedBody(longest, message, now); // the largest item of them all
    const reservations = await mapLimit([...counts], this.concurrency, ([pk, n]) =>
      this.reserve(pk, new Array<Item>(n).fill(body), now),
    );
    return { dropped: await this.commit(reservations) };
  }

  async read(clientId: string, limit: number, afterSeq?: number): Promise<QueuedMessage[]> {
    this.checkOpen();
    const want = Math.floor(limit);
    if (!(want > 0)) return [];
    const pk = clientKey(clientId);
    const counter = await this.counter(pk);
    if (counter === undefined) return [];
    if (afterSeq !== undefined && afterSeq >= counter.seq) return [];
    const from = afterSeq !== undefined && afterSeq > counter.head ? afterSeq : counter.head;
    const out: QueuedMessage[] = [];
    const now = Date.now();
    let startKey: Item | undefined;
    do {
      const command = new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :pk AND #sk > :from',
        ExpressionAttributeNames: { '#pk': A.pk, '#sk': A.sk },
        ExpressionAttributeValues: { ':pk': { S: pk }, ':from': { N: String(from) } },
        ConsistentRead: true,
        Limit: want - out.length,
        ExclusiveStartKey: startKey,
      });
      const page = await this.call('Query', (c) => c.send(command));
      for (const item of page.Items ?? []) {
        const seq = Number(item[A.sk]?.N);
        const message = messageFromItem(item, `offline message ${seq} of ${clientId}`);
        if (!isExpired(message, now)) out.push({ seq, message });
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined && out.length < want);
    return out;
  }

  async remove(clientId: string, upToSeq: number): Promise<void> {
    this.checkOpen();
    let to = Math.min(Math.floor(upToSeq), Number.MAX_SAFE_INTEGER);
    if (!(to > COUNTER_SK)) return; // NaN, or below every sequence number
    const pk = clientKey(clientId);
    for (let attempt = 1; ; attempt++) {
      const oldHead = await this.advanceHead(pk, to);
      if (oldHead !== null) {
        await this.collectGarbage(deletesBetween(pk, oldHead, to));
        return;
      }
      // refused: nothing up to `to` is left, or `to` is past the last sequence number handed out
      const counter = await this.counter(pk);
      if (counter === undefined) return;
      to = Math.min(to, counter.seq);
      if (to <= counter.head) return;
      if (attempt >= CAS_ATTEMPTS) throw this.contended(clientId);
    }
  }

  async length(clientId: string): Promise<number> {
    this.checkOpen();
    const counter = await this.counter(clientKey(clientId));
    return counter === undefined ? 0 : Math.max(0, counter.seq - counter.head);
  }

  /** Deletes every item of the client, its counter included (a later append starts a new one). */
  async clear(clientId: string): Promise<void> {
    this.checkOpen();
    let startKey: Item | undefined;
    do {
      const command = new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': A.pk, '#sk': A.sk },
        ExpressionAttributeValues: { ':pk': { S: clientKey(clientId) } },
        ProjectionExpression: '#pk, #sk',
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
      });
      const page = await this.call('Query', (c) => c.send(command));
      await this.batchWrite((page.Items ?? []).map((Key) => ({ DeleteRequest: { Key } })));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
  }

  /** A message's attributes (without the key), refused when its item would exceed 400 KB. */
  private checkedBody(pk: string, message: Message, now: number): Item {
    const body = messageAttributes(message);
    const expiresAt = this.retentionMs === undefined ? message.expiresAt : Math.min(message.expiresAt ?? Infinity, now + this.retentionMs);
    if (expiresAt !== undefined) body[A.ttl] = ttlValue(expiresAt);
    const size = itemBytes({ ...messageKey(pk, COUNTER_SK), ...body });
    if (size > MAX_ITEM_BYTES) {
      throw new QuotaExceededError(
        `offline message on ${message.topic.slice(0, 100)} is ${size} bytes stored, over DynamoDB's ${MAX_ITEM_BYTES}-byte item limit; lower the maximum packet size`,
      );
    }
    return body;
  }

  private async reserve(pk: string, bodies: readonly Item[], now: number): Promise<Reservation> {
    if (this.maxLength === 0) return { pk, writes: [], refused: bodies.length };
    return this.dropOldest ? this.reserveAll(pk, bodies, now) : this.reserveRoom(pk, bodies, now);
  }

  /** 'drop-oldest': take the next bodies.length sequence numbers, whatever the queue holds. */
  private async reserveAll(pk: string, bodies: readonly Item[], now: number): Promise<Reservation> {
    const n = bodies.length;
    const { seq, head } = (await this.take(pk, n, now))!;
    const first = seq - n + 1;
    // more messages than the limit in one call: the first ones are dropped without being written
    const skip = Math.max(0, n - this.maxLength);
    const writes = bodies.slice(skip).map((body, i) => ({ seq: first + skip + i, body }));
    return seq - head > this.maxLength ? { pk, writes, refused: 0, trimTo: seq - this.maxLength } : { pk, writes, refused: 0 };
  }

  /**
   * 'drop-newest': take as many sequence numbers as there is room for. The take is conditional
   * on the room (`len <= maxLength - k`), so it needs no read while there is room; when it is
   * refused, the counter is read and the take retried for what still fits. Each refusal means
   * other appends took room meanwhile, so this ends after a few tries even under contention.
   */
  private async reserveRoom(pk: string, bodies: readonly Item[], now: number): Promise<Reservation> {
    let k = Math.min(bodies.length, this.maxLength);
    for (let attempt = 1; ; attempt++) {
      const taken = await this.take(pk, k, now, this.maxLength - k);
      if (taken !== null) {
        const first = taken.seq - k + 1;
        return { pk, writes: bodies.slice(0, k).map((body, i) => ({ seq: first + i, body })), refused: bodies.length - k };
      }
      const counter = await this.counter(pk);
      const room = this.maxLength - (counter === undefined ? 0 : counter.seq - counter.head);
      if (room <= 0) return { pk, writes: [], refused: bodies.length };
      if (attempt >= CAS_ATTEMPTS) throw this.contended(pk);
      k = Math.min(k, room);
    }
  }

  /**
   * Takes the next `k` sequence numbers of the client with one UpdateItem, making the counter if
   * there is none; with `maxLenBefore`, only if the queue holds at most that many (else null).
   * Returns the counter after the take.
   */
  private async take(pk: string, k: number, now: number, maxLenBefore?: number): Promise<Counter | null> {
    const names: Record<string, string> = { '#seq': A.seq, '#head': A.head, '#len': A.len };
    const values: Record<string, AttributeValue> = {
      ':base': { N: String(counterBase()) },
      ':zero': { N: '0' },
      ':k': { N: String(k) },
    };
    let update = 'SET #seq = if_not_exists(#seq, :base) + :k, #head = if_not_exists(#head, :base), #len = if_not_exists(#len, :zero) + :k';
    if (this.retentionMs !== undefined) {
      update += ', #ttl = :ttl';
      names['#ttl'] = A.ttl;
      values[':ttl'] = ttlValue(now + this.retentionMs);
    }
    let condition: string | undefined;
    if (maxLenBefore !== undefined) {
      condition = 'attribute_not_exists(#len) OR #len <= :room';
      values[':room'] = { N: String(maxLenBefore) };
    }
    const command = new UpdateItemCommand({
      TableName: this.tableName,
      Key: messageKey(pk, COUNTER_SK),
      UpdateExpression: update,
      ...(condition === undefined ? {} : { ConditionExpression: condition }),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_NEW',
    });
    const out = await this.callIf('UpdateItem', (c) => c.send(command));
    if (out === null) return null;
    return { seq: Number(out.Attributes?.[A.seq]?.N), head: Number(out.Attributes?.[A.head]?.N) };
  }

  /** Writes the reserved messages, then trims what went over the limit; returns the dropped count. */
  private async commit(reservations: readonly Reservation[]): Promise<number> {
    const puts: WriteRequest[] = [];
    let dropped = 0;
    for (const r of reservations) {
      dropped += r.refused;
      for (const { seq, body } of r.writes) puts.push({ PutRequest: { Item: { ...messageKey(r.pk, seq), ...body } } });
    }
    await this.batchWrite(puts);
    const trims = reservations.filter((r): r is Reservation & { trimTo: number } => r.trimTo !== undefined);
    if (trims.length === 0) return dropped;
    // The messages are durable now, so the append has succeeded: a trim that fails leaves the
    // queue over its limit only until the next append trims it (and counts what it drops).
    const deletes: WriteRequest[] = [];
    await mapLimit(trims, this.concurrency, async ({ pk, trimTo }) => {
      const oldHead = await this.advanceHead(pk, trimTo);
      // null: another append or a remove moved the head at least this far, and counted it
      if (oldHead === null) return;
      dropped += trimTo - oldHead;
      deletes.push(...deletesBetween(pk, oldHead, trimTo));
    }).catch(ignoreBackendUnavailable);
    await this.collectGarbage(deletes);
    return dropped;
  }

  /**
   * Deletes the items of sequence numbers the head has passed. Best effort: those items are no
   * longer part of the queue (read, length and the limit look above the head only), so if
   * DynamoDB fails here they stay, unseen, until clear() or their TTL removes them.
   */
  private async collectGarbage(deletes: readonly WriteRequest[]): Promise<void> {
    await this.batchWrite(deletes).catch(ignoreBackendUnavailable);
  }

  /**
   * Moves the client's head up to `to` if it is below and `to` was handed out; returns the
   * previous head, or null when the condition does not hold (or there is no counter).
   */
  private async advanceHead(pk: string, to: number): Promise<number | null> {
    const command = new UpdateItemCommand({
      TableName: this.tableName,
      Key: messageKey(pk, COUNTER_SK),
      UpdateExpression: 'SET #head = :to, #len = #seq - :to',
      ConditionExpression: '#head < :to AND #seq >= :to',
      ExpressionAttributeNames: { '#head': A.head, '#seq': A.seq, '#len': A.len },
      ExpressionAttributeValues: { ':to': { N: String(to) } },
      ReturnValues: 'UPDATED_OLD',
    });
    const out = await this.callIf('UpdateItem', (c) => c.send(command));
    return out === null ? null : Number(out.Attributes?.[A.head]?.N);
  }

  private async counter(pk: string): Promise<Counter | undefined> {
    const command = new GetItemCommand({
      TableName: this.tableName,
      Key: messageKey(pk, COUNTER_SK),
      ConsistentRead: true,
      ProjectionExpression: '#seq, #head',
      ExpressionAttributeNames: { '#seq': A.seq, '#head': A.head },
    });
    const { Item: item } = await this.call('GetItem', (c) => c.send(command));
    const seq = item?.[A.seq]?.N;
    const head = item?.[A.head]?.N;
    return seq === undefined || head === undefined ? undefined : { seq: Number(seq), head: Number(head) };
  }

  private contended(clientId: string): BackendUnavailableError {
    return new BackendUnavailableError(
      'dynamodb',
      `dynamodb UpdateItem on ${this.tableName} failed: the queue counter of ${clientId.slice(0, 100)} changed under ${CAS_ATTEMPTS} attempts in a row`,
    );
  }
}

function ignoreBackendUnavailable(err: unknown): void {
  if (!(err instanceof BackendUnavailableError)) throw err;
}

function messageKey(pk: string, seq: number): Item {
  return { [A.pk]: { S: pk }, [A.sk]: { N: String(seq) } };
}

/** Deletes of every sequence number in (from, to]. */
function deletesBetween(pk: string, from: number, to: number): WriteRequest[] {
  const deletes: WriteRequest[] = [];
  for (let seq = from + 1; seq <= to; seq++) deletes.push({ DeleteRequest: { Key: messageKey(pk, seq) } });
  return deletes;
}
