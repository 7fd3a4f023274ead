import { randomBytes } from 'node:crypto';
import { BatchWriteItemCommand, DescribeTableCommand, ProvisionedThroughputExceededException, QueryCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, BatchWriteItemCommandInput, WriteRequest } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message, OfflineQueueOptions, QueuedMessage } from '@fleetmq/broker';
import { BackendUnavailableError, QuotaExceededError } from '@fleetmq/protocol';
import { describeOfflineQueue, testMessage } from '@fleetmq/testkit';
import { BATCH_WRITE_ATTEMPTS, DynamoOfflineQueue, clientKey, offlineQueueTableDefinition } from '../src/index.js';
import type { DynamoOfflineQueueOptions } from '../src/index.js';
import { dynamoFixture } from './support.js';
import type { SentCommand } from './support.js';

const fx = dynamoFixture();

type Extra = Partial<Omit<DynamoOfflineQueueOptions, keyof OfflineQueueOptions>>;

async function freshQueue(options: OfflineQueueOptions, extra: Extra = {}): Promise<DynamoOfflineQueue> {
  const tableName = await fx.table('queue', offlineQueueTableDefinition);
  return new DynamoOfflineQueue({ client: fx.config(), tableName, ...options, ...extra });
}

describeOfflineQueue((options) => freshQueue(options));

function messages(prefix: string, n: number, overrides: Partial<Omit<Message, 'topic'>> = {}): Message[] {
  return Array.from({ length: n }, (_, i) => testMessage(`${prefix}/${i}`, overrides));
}

const ids = (queued: readonly QueuedMessage[]): string[] => queued.map((q) => q.message.id);

function expectIncreasing(queued: readonly QueuedMessage[]): void {
  for (let i = 1; i < queued.length; i++) expect(queued[i]!.seq).toBeGreaterThan(queued[i - 1]!.seq);
}

const roomy: OfflineQueueOptions = { maxLength: 10_000, dropPolicy: 'drop-oldest' };

describe('DynamoOfflineQueue', () => {
  const open: DynamoOfflineQueue[] = [];
  afterEach(async () => {
    for (const queue of open.splice(0)) await queue.close();
  });

  async function queue(options: OfflineQueueOptions = roomy, extra: Extra = {}): Promise<DynamoOfflineQueue> {
    const q = await freshQueue(options, extra);
    open.push(q);
    return q;
  }

  /** Another queue on the same table: another node. */
  function otherNode(of: DynamoOfflineQueue, options: OfflineQueueOptions = roomy): DynamoOfflineQueue {
    const q = new DynamoOfflineQueue({ client: fx.config(), tableName: of.tableName, ...options });
    open.push(q);
    return q;
  }

  /** Every item of a client, raw, in sort key order. */
  async function rawItems(q: DynamoOfflineQueue, clientId: string): Promise<Record<string, AttributeValue>[]> {
    const out = await fx.admin.send(
      new QueryCommand({
        TableName: q.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: clientKey(clientId) } },
        ConsistentRead: true,
      }),
    );
    return out.Items ?? [];
  }

  /** A queue on a client whose commands are seen (and maybe answered) by `hook`. */
  async function interceptedQueue(
    options: OfflineQueueOptions,
    hook?: (command: SentCommand, send: (replacement?: object) => Promise<unknown>) => Promise<unknown>,
  ) {
    const tableName = await fx.table('queue', offlineQueueTableDefinition);
    const { client, sent } = fx.interceptedClient(hook);
    const q = new DynamoOfflineQueue({ client, tableName, ...options });
    open.push(q);
    return { queue: q, sent };
  }

  it('creates the table keyed pk (S) and sk (N)', async () => {
    const q = await queue();
    const { Table } = await fx.admin.send(new DescribeTableCommand({ TableName: q.tableName }));
    expect(Table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(Table?.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'N' },
      ]),
    );
  });

  describe('item layout', () => {
    it('keeps a counter item at sk 0 and one item per message at sk = seq, payload binary, TTL from expiry', async () => {
      const q = await queue();
      const expiresAt = Date.now() + 90_500;
      const sent = [
        testMessage('fleet/d1/cmd', { payload: Buffer.from([0, 1, 0xfe, 0xff]), expiresAt, properties: { contentType: 'x' } }),
        testMessage('fleet/d1/ota'),
      ];
      await q.append('d1', sent);
      const read = await q.read('d1', 10);
      const items = await rawItems(q, 'd1');
      expect(items).toHaveLength(3);
      const [counter, first, second] = items;
      expect(counter).toEqual({
        pk: { S: 'd1' },
        sk: { N: '0' },
        seq: { N: String(read[1]!.seq) },
        head: { N: String(read[0]!.seq - 1) },
        len: { N: '2' },
      });
      expect(first?.['sk']).toEqual({ N: String(read[0]!.seq) });
      expect(first?.['topic']).toEqual({ S: 'fleet/d1/cmd' });
      expect(Buffer.from(first!['payload']!.B!)).toEqual(Buffer.from([0, 1, 0xfe, 0xff]));
      expect(typeof first?.['message']?.S).toBe('string');
      expect(first?.['ttl']).toEqual({ N: String(Math.ceil(expiresAt / 1000)) });
      expect(second?.['ttl']).toBeUndefined();
      expect(read.map((r) => r.message)).toEqual(sent);
    });

    it('caps the TTL of messages and of the counter at maxRetentionSeconds', async () => {
      const q = await queue(roomy, { maxRetentionSeconds: 3_600 });
      const before = Date.now();
      const soon = before + 60_000;
      await q.append('c', [testMessage('a'), testMessage('b', { expiresAt: soon }), testMessage('c', { expiresAt: before + 86_400_000 })]);
      const after = Date.now();
      const [counter, a, b, c] = await rawItems(q, 'c');
      const ttl = (item: Record<string, AttributeValue> | undefined) => Number(item?.['ttl']?.N);
      for (const capped of [counter, a, c]) {
        expect(ttl(capped)).toBeGreaterThanOrEqual(Math.ceil((before + 3_600_000) / 1000));
        expect(ttl(capped)).toBeLessThanOrEqual(Math.ceil((after + 3_600_000) / 1000));
      }
      expect(ttl(b)).toBe(Math.ceil(soon / 1000));
    });

    it('hashes a client ID too long for a partition key', async () => {
      const q = await queue();
      const long = 'x'.repeat(5_000);
      const sent = messages('long', 3);
      await q.append(long, sent);
      await q.appendMany([long, 'short'], testMessage('fan'));
      expect((await rawItems(q, long))[0]?.['pk']?.S).toMatch(/^\u0000sha256:/);
      const fan = (await q.read('short', 1))[0]!.message.id;
      expect(ids(await q.read(long, 10))).toEqual([...sent.map((m) => m.id), fan]);
      expect(await q.length(long)).toBe(4);
      await q.clear(long);
      expect(await rawItems(q, long)).toEqual([]);
    });
  });

  describe('order', () => {
    it('keeps one increasing order when two nodes append to the same client at once', async () => {
      const nodeA = await queue();
      const nodeB = otherNode(nodeA);
      const fromA = messages('a', 40);
      const fromB = messages('b', 40);
      const appendAll = async (node: DynamoOfflineQueue, sent: Message[]) => {
        // singles and small batches, as detached sessions append
        for (let i = 0; i < sent.length; ) {
          const n = 1 + (i % 3);
          expect(await node.append('shared', sent.slice(i, i + n))).toEqual({ dropped: 0 });
          i += n;
        }
      };
      await Promise.all([appendAll(nodeA, fromA), appendAll(nodeB, fromB)]);
      const read = await nodeA.read('shared', 1_000);
      expect(read).toHaveLength(80);
      expectIncreasing(read);
      const got = ids(read);
      // each node's messages keep their order, and both interleave (they really ran at once)
      const idsA = fromA.map((m) => m.id);
      const idsB = fromB.map((m) => m.id);
      expect(got.filter((id) => idsA.includes(id))).toEqual(idsA);
      expect(got.filter((id) => idsB.includes(id))).toEqual(idsB);
      expect(got.slice(0, 40)).not.toEqual(idsA);
      expect(await nodeB.length('shared')).toBe(80);
    });

    it('never reuses a sequence number, not even after clear deleted the counter', async () => {
      const q = await queue();
      await q.append('c', messages('m', 3));
      const before = await q.read('c', 10);
      await q.clear('c');
      expect(await rawItems(q, 'c')).toEqual([]);
      await q.append('c', messages('n', 1));
      const [after] = await q.read('c', 10);
      expect(after!.seq).toBeGreaterThan(before[2]!.seq);
      expect(Number.isSafeInteger(after!.seq)).toBe(true);
    });
  });

  describe('limit and drop policies', () => {
    it("'drop-oldest': a batch larger than the limit keeps its newest, and the table holds only what is kept", async () => {
      const q = await queue({ maxLength: 3, dropPolicy: 'drop-oldest' });
      const sent = messages('o', 7);
      expect(await q.append('c', sent)).toEqual({ dropped: 4 });
      expect(ids(await q.read('c', 10))).toEqual(sent.slice(4).map((m) => m.id));
      expect(await rawItems(q, 'c')).toHaveLength(1 + 3);
      expect(await q.append('c', messages('p', 2))).toEqual({ dropped: 2 });
      expect(await rawItems(q, 'c')).toHaveLength(1 + 3);
      expect(await q.length('c')).toBe(3);
    });

    it("'drop-newest': refuses what does not fit and writes nothing for it", async () => {
      const q = await queue({ maxLength: 4, dropPolicy: 'drop-newest' });
      const sent = messages('n', 6);
      expect(await q.append('c', sent)).toEqual({ dropped: 2 });
      expect(await q.appendMany(['c', 'd'], testMessage('fan'))).toEqual({ dropped: 1 });
      expect(await rawItems(q, 'c')).toHaveLength(1 + 4);
      expect(ids(await q.read('c', 10))).toEqual(sent.slice(0, 4).map((m) => m.id));
    });

    for (const dropPolicy of ['drop-oldest', 'drop-newest'] as const) {
      it(`'${dropPolicy}': counts every drop exactly when two nodes append at once`, async () => {
        const options = { maxLength: 10, dropPolicy };
        const nodeA = await queue(options);
        const nodeB = otherNode(nodeA, options);
        const appendAll = async (node: DynamoOfflineQueue, prefix: string) => {
          let dropped = 0;
          for (const m of messages(prefix, 30)) dropped += (await node.append('c', [m])).dropped;
          return dropped;
        };
        const [droppedA, droppedB] = await Promise.all([appendAll(nodeA, 'a'), appendAll(nodeB, 'b')]);
        expect(droppedA + droppedB).toBe(50);
        expect(await nodeA.length('c')).toBe(10);
        const kept = await nodeB.read('c', 100);
        expect(kept).toHaveLength(10);
        expectIncreasing(kept);
      });
    }

    it("'drop-newest': never hands out one sequence number twice when many appends race", async () => {
      const options = { maxLength: 20, dropPolicy: 'drop-newest' } as const;
      const first = await queue(options);
      const nodes = [first, otherNode(first, options), otherNode(first, options)];
      const sent = messages('race', 30);
      // every append at once: each takes room with a conditional update of the same counter
      const results = await Promise.all(sent.map((m, i) => nodes[i % nodes.length]!.append('c', [m])));
      expect(results.reduce((n, r) => n + r.dropped, 0)).toBe(10);
      expect(await first.length('c')).toBe(20);
      const kept = await first.read('c', 100);
      expect(kept).toHaveLength(20);
      expectIncreasing(kept);
      const accepted = sent.filter((_, i) => results[i]!.dropped === 0).map((m) => m.id);
      expect(ids(kept).sort()).toEqual(accepted.sort());
    });

    it('keeps the limit and the count after messages are read and removed', async () => {
      const q = await queue({ maxLength: 5, dropPolicy: 'drop-oldest' });
      await q.append('c', messages('x', 5));
      const read = await q.read('c', 2);
      await q.remove('c', read[1]!.seq);
      expect(await q.length('c')).toBe(3);
      expect(await q.append('c', messages('y', 3))).toEqual({ dropped: 1 });
      expect(await q.length('c')).toBe(5);
    });
  });

  describe('appendMany', () => {
    it('writes one message to more than 25 queues in batches of at most 25, retrying UnprocessedItems', async () => {
      const keyOf = (r: WriteRequest) => `${r.PutRequest!.Item!['pk']!.S}/${r.PutRequest!.Item!['sk']!.N}`;
      const unprocessed: string[] = [];
      let batchCalls = 0;
      const { queue: q, sent } = await interceptedQueue(roomy, async (command, send) => {
        if (command.name !== 'BatchWriteItemCommand') return send();
        batchCalls++;
        if (batchCalls > 2) return send();
        // DynamoDB takes only the first half of the first two batches
        const input = command.input as unknown as BatchWriteItemCommandInput;
        const [table, requests] = Object.entries(input.RequestItems!)[0]!;
        const half = Math.ceil(requests.length / 2);
        await send(new BatchWriteItemCommand({ RequestItems: { [table]: requests.slice(0, half) } }));
        unprocessed.push(...requests.slice(half).map(keyOf));
        return { UnprocessedItems: { [table]: requests.slice(half) }, $metadata: {} };
      });
      const clients = Array.from({ length: 60 }, (_, i) => `dev-${i}`);
      const message = testMessage('fleet/broadcast', { qos: 2 });
      expect(await q.appendMany(clients, message)).toEqual({ dropped: 0 });

      const batches = sent
        .filter((c) => c.name === 'BatchWriteItemCommand')
        .map((c) => Object.values((c.input as unknown as BatchWriteItemCommandInput).RequestItems!)[0]!);
      // three batches (25 + 25 + 10), then the two unprocessed halves again, after a backoff
      expect(batches.map((b) => b.length)).toEqual([25, 25, 10, 12, 12]);
      expect(unprocessed).toHaveLength(24);
      expect(batches.slice(3).flat().map(keyOf).sort()).toEqual(unprocessed.sort());
      expect(new Set(batches.slice(0, 3).flat().map(keyOf)).size).toBe(60);
      for (const clientId of clients) {
        const read = await q.read(clientId, 10);
        expect(read.map((r) => r.message)).toEqual([message]);
      }
      // one counter update per client, no per-message PutItem
      expect(sent.filter((c) => c.name === 'UpdateItemCommand')).toHaveLength(60);
      expect(sent.filter((c) => c.name === 'PutItemCommand')).toHaveLength(0);
    });

    it('fails with BackendUnavailableError when DynamoDB keeps leaving writes unprocessed', async () => {
      let batchCalls = 0;
      const { queue: q } = await interceptedQueue(roomy, async (command, send) => {
        if (command.name !== 'BatchWriteItemCommand') return send();
        batchCalls++;
        const input = command.input as unknown as BatchWriteItemCommandInput;
        return { UnprocessedItems: input.RequestItems, $metadata: {} };
      });
      const call = q.appendMany(['a', 'b', 'c'], testMessage('t'));
      await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(call).rejects.toThrow(/3 of 3 writes still unprocessed after 8 attempts/);
      expect(batchCalls).toBe(BATCH_WRITE_ATTEMPTS);
    });

    it('appends twice for a client named twice, and applies the limit per client', async () => {
      const q = await queue({ maxLength: 1, dropPolicy: 'drop-oldest' });
      const m = testMessage('twice');
      expect(await q.appendMany(['a', 'a', 'b'], m)).toEqual({ dropped: 1 });
      expect(await q.length('a')).toBe(1);
      expect(await q.length('b')).toBe(1);
    });
  });

  describe('read, remove, length', () => {
    it('skips expired messages that DynamoDB has not deleted yet', async () => {
      const q = await queue();
      const live1 = testMessage('l1');
      const expired = testMessage('e', { expiresAt: Date.now() - 1_000 });
      const live2 = testMessage('l2', { expiresAt: Date.now() + 60_000 });
      await q.append('c', [live1, expired, live2, ...messages('tail', 3, { expiresAt: Date.now() - 1 })]);
      expect(await rawItems(q, 'c')).toHaveLength(1 + 6);
      const read = await q.read('c', 2);
      expect(read.map((r) => r.message)).toEqual([live1, live2]);
      expect(await q.read('c', 10, read[1]!.seq)).toEqual([]);
      // length counts what has not been removed yet, expired included (see the README)
      expect(await q.length('c')).toBe(6);
      await q.remove('c', read[1]!.seq);
      expect(await q.length('c')).toBe(3);
    });

    it('removes everything with an upToSeq past the end, and keeps appending in order', async () => {
      const q = await queue();
      await q.append('c', messages('a', 4));
      await q.remove('c', Number.POSITIVE_INFINITY);
      expect(await q.length('c')).toBe(0);
      expect(await q.read('c', 10)).toEqual([]);
      expect(await rawItems(q, 'c')).toHaveLength(1); // the counter
      const more = messages('b', 2);
      await q.append('c', more);
      expect(ids(await q.read('c', 10))).toEqual(more.map((m) => m.id));
      await q.remove('c', Number.NaN);
      await q.remove('c', Number.NEGATIVE_INFINITY);
      expect(await q.length('c')).toBe(2);
    });

    it('hides what the head passed when deleting it failed, and clear removes it', async () => {
      let failDeletes = false;
      const { queue: q } = await interceptedQueue({ maxLength: 2, dropPolicy: 'drop-oldest' }, (command, send) => {
        const input = command.input as unknown as BatchWriteItemCommandInput;
        const deletes = command.name === 'BatchWriteItemCommand' && Object.values(input.RequestItems!)[0]!.some((r) => r.DeleteRequest);
        if (failDeletes && deletes) return Promise.reject(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
        return send();
      });
      const sent = messages('g', 5);
      await q.append('c', sent.slice(0, 2));
      failDeletes = true;
      // the new message is durable, so the append succeeds and counts the drop
      expect(await q.append('c', sent.slice(2, 3))).toEqual({ dropped: 1 });
      expect(ids(await q.read('c', 10))).toEqual([sent[1]!.id, sent[2]!.id]);
      const [, kept] = await q.read('c', 10);
      await q.remove('c', kept!.seq);
      expect(await q.read('c', 10)).toEqual([]);
      expect(await q.length('c')).toBe(0);
      expect(await rawItems(q, 'c')).toHaveLength(1 + 3); // the counter and three unseen leftovers
      failDeletes = false;
      await q.append('c', sent.slice(3));
      expect(ids(await q.read('c', 10))).toEqual([sent[3]!.id, sent[4]!.id]);
      await q.clear('c');
      expect(await rawItems(q, 'c')).toEqual([]);
    });

    it('answers length from the counter item with one GetItem, never a Query', async () => {
      const { queue: q, sent } = await interceptedQueue(roomy);
      await q.append('c', messages('m', 50));
      sent.length = 0;
      expect(await q.length('c')).toBe(50);
      expect(sent.map((c) => c.name)).toEqual(['GetItemCommand']);
    });

    it('reads more than one Query page', async () => {
      const { queue: q, sent: commands } = await interceptedQueue(roomy);
      const sent = messages('big', 12, { payload: randomBytes(200 * 1024) }); // 2.4 MB: Query pages are 1 MB
      for (let i = 0; i < sent.length; i += 4) await q.append('c', sent.slice(i, i + 4));
      commands.length = 0;
      const read = await q.read('c', 100);
      expect(commands.filter((c) => c.name === 'QueryCommand').length).toBeGreaterThanOrEqual(3);
      expect(ids(read)).toEqual(sent.map((m) => m.id));
      expect(read[11]!.message.payload).toEqual(sent[11]!.payload);
    });
  });

  describe('failures', () => {
    it('refuses a message over the 400 KB item limit with QuotaExceededError, writing nothing', async () => {
      const q = await queue();
      const call = q.append('c', [testMessage('ok'), testMessage('big', { payload: Buffer.alloc(401 * 1024) })]);
      await expect(call).rejects.toBeInstanceOf(QuotaExceededError);
      await expect(q.appendMany(['c', 'd'], testMessage('big', { payload: Buffer.alloc(401 * 1024) }))).rejects.toBeInstanceOf(QuotaExceededError);
      expect(await rawItems(q, 'c')).toEqual([]);
      expect(await q.length('c')).toBe(0);
    });

    it('surfaces throttling as BackendUnavailableError with the SDK error as cause', async () => {
      const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
      for (const dropPolicy of ['drop-oldest', 'drop-newest'] as const) {
        const { queue: q } = await interceptedQueue({ maxLength: 10, dropPolicy }, () => Promise.reject(throttled));
        const calls = [
          q.append('c', [testMessage('a')]),
          q.appendMany(['c', 'd'], testMessage('b')),
          q.read('c', 1),
          q.remove('c', 5),
          q.length('c'),
          q.clear('c'),
        ];
        for (const call of calls) {
          await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
          await expect(call).rejects.toMatchObject({ backend: 'dynamodb', cause: throttled });
        }
      }
    });

    it('names the missing table and the command that creates it', async () => {
      const q = new DynamoOfflineQueue({ client: fx.config(), tableName: 'no-such-queue', ...roomy });
      open.push(q);
      await expect(q.append('c', [testMessage('a')])).rejects.toThrow(/no-such-queue.*fleetmq dynamo create-tables/);
    });

    it('refuses every call after close', async () => {
      const q = await freshQueue(roomy);
      await q.close();
      const calls = [q.append('c', []), q.appendMany(['c'], testMessage('x')), q.read('c', 1), q.remove('c', 1), q.length('c'), q.clear('c')];
      for (const call of calls) await expect(call).rejects.toMatchObject({ name: 'BackendUnavailableError', backend: 'dynamodb' });
    });

    it('rejects invalid options', () => {
      const base = { client: {}, tableName: 't' };
      expect(() => new DynamoOfflineQueue({ ...base, maxLength: -1, dropPolicy: 'drop-oldest' })).toThrow(RangeError);
      expect(() => new DynamoOfflineQueue({ ...base, maxLength: 1.5, dropPolicy: 'drop-oldest' })).toThrow(RangeError);
      expect(() => new DynamoOfflineQueue({ ...base, maxLength: 1, dropPolicy: 'drop-random' as 'drop-oldest' })).toThrow(RangeError);
      expect(() => new DynamoOfflineQueue({ ...base, ...roomy, maxRetentionSeconds: 0 })).toThrow(RangeError);
      expect(() => new DynamoOfflineQueue({ ...base, ...roomy, concurrency: 0 })).toThrow(RangeError);
    });
  });
});
