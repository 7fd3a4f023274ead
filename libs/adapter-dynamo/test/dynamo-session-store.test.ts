import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { DescribeTableCommand, GetItemCommand, ProvisionedThroughputExceededException, ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { FencedError, encodeSnapshot } from '@fleetmq/broker';
import type { SessionSnapshot } from '@fleetmq/broker';
import { BackendUnavailableError, QuotaExceededError } from '@fleetmq/protocol';
import { describeSessionStore, minimalSnapshot, richSnapshot, testMessage } from '@fleetmq/testkit';
import { DynamoSessionStore, clientKey, sessionExpiresAt, sessionsTableDefinition } from '../src/index.js';
import type { DynamoSessionStoreOptions } from '../src/index.js';
import { dynamoFixture } from './support.js';

const fx = dynamoFixture();

async function freshStore(options: Partial<DynamoSessionStoreOptions> = {}): Promise<DynamoSessionStore> {
  const tableName = await fx.table('sessions', sessionsTableDefinition);
  return new DynamoSessionStore({ client: fx.config(), tableName, ...options });
}

describeSessionStore(() => freshStore());

describe('DynamoSessionStore', () => {
  const open: DynamoSessionStore[] = [];
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
  });

  async function store(options: Partial<DynamoSessionStoreOptions> = {}): Promise<DynamoSessionStore> {
    const s = await freshStore(options);
    open.push(s);
    return s;
  }

  /** A second store on the same table: another node. */
  function otherNode(of: DynamoSessionStore): DynamoSessionStore {
    const s = new DynamoSessionStore({ client: fx.config(), tableName: of.tableName });
    open.push(s);
    return s;
  }

  async function raw(s: DynamoSessionStore, clientId: string) {
    const out = await fx.admin.send(new GetItemCommand({ TableName: s.tableName, Key: { pk: { S: clientKey(clientId) } }, ConsistentRead: true }));
    return out.Item;
  }

  const disconnected = (clientId: string, expiryInterval: number, disconnectedAt: number): SessionSnapshot =>
    minimalSnapshot(clientId, { protocolVersion: 5, expiryInterval, disconnectedAt });

  describe('fencing across nodes', () => {
    it('lets the same epoch rewrite and a newer epoch win; refuses an older one with FencedError, not BackendUnavailableError', async () => {
      const nodeA = await store();
      const nodeB = otherNode(nodeA);
      await nodeA.save(minimalSnapshot('c', { nextPacketId: 10 }), 4);
      await nodeA.save(minimalSnapshot('c', { nextPacketId: 11 }), 4); // the owner saving again
      expect((await nodeB.load('c'))?.snapshot.nextPacketId).toBe(11);

      await nodeB.save(minimalSnapshot('c', { nextPacketId: 20 }), 5); // takeover: newer epoch wins
      const late = nodeA.save(minimalSnapshot('c', { nextPacketId: 12 }), 4);
      await expect(late).rejects.toBeInstanceOf(FencedError);
      await expect(late).rejects.not.toBeInstanceOf(BackendUnavailableError);
      await expect(late).rejects.toMatchObject({ clientId: 'c', epoch: 4 });
      await expect(nodeA.delete('c', 4)).rejects.toBeInstanceOf(FencedError);
      expect(await nodeA.load('c')).toEqual({ snapshot: minimalSnapshot('c', { nextPacketId: 20 }), epoch: 5 });

      await nodeB.delete('c', 5);
      expect(await nodeA.load('c')).toBeNull();
      // once deleted, any epoch may write again (attribute_not_exists)
      await nodeA.save(minimalSnapshot('c'), 1);
      expect((await nodeB.load('c'))?.epoch).toBe(1);
    });

    it('lets exactly the highest epoch win when nodes race', async () => {
      const first = await store();
      const nodes = [first, otherNode(first), otherNode(first)];
      const epochs = [3, 9, 6, 1, 8, 2, 7, 5, 4];
      const results = await Promise.allSettled(
        epochs.map((epoch, i) => nodes[i % nodes.length]!.save(minimalSnapshot('race', { nextPacketId: epoch }), epoch)),
      );
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(FencedError);
      }
      expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1);
      expect(await first.load('race')).toEqual({ snapshot: minimalSnapshot('race', { nextPacketId: 9 }), epoch: 9 });
    });

    it('sends the fence as a ConditionExpression on PutItem and DeleteItem', async () => {
      const tableName = await fx.table('sessions', sessionsTableDefinition);
      const { client, sent } = fx.interceptedClient();
      const s = new DynamoSessionStore({ client, tableName });
      open.push(s);
      await s.save(minimalSnapshot('c'), 2);
      await s.delete('c', 2);
      const writes = sent.filter((c) => c.name === 'PutItemCommand' || c.name === 'DeleteItemCommand');
      expect(writes).toHaveLength(2);
      for (const w of writes) {
        expect(w.input).toMatchObject({
          ConditionExpression: 'attribute_not_exists(#pk) OR #epoch <= :epoch',
          ExpressionAttributeNames: { '#pk': 'pk', '#epoch': 'epoch' },
          ExpressionAttributeValues: { ':epoch': { N: '2' } },
        });
      }
    });

    it('rejects an epoch that is not a non-negative integer', async () => {
      const s = await store();
      await expect(s.save(minimalSnapshot('c'), 1.5)).rejects.toBeInstanceOf(RangeError);
      await expect(s.delete('c', -1)).rejects.toBeInstanceOf(RangeError);
      expect(await s.load('c')).toBeNull();
    });
  });

  describe('item layout', () => {
    it('keeps one item per client ID: pk, epoch, the snapshot JSON and no TTL while connected', async () => {
      const s = await store();
      const snapshot = minimalSnapshot('dev-1', { subscriptions: [['a/#', { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }]] });
      await s.save(snapshot, 3);
      expect(await raw(s, 'dev-1')).toEqual({ pk: { S: 'dev-1' }, epoch: { N: '3' }, snapshot: { S: encodeSnapshot(snapshot) } });
      const { Table } = await fx.admin.send(new DescribeTableCommand({ TableName: s.tableName }));
      expect(Table?.KeySchema).toEqual([{ AttributeName: 'pk', KeyType: 'HASH' }]);
      expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    });

    it('sets the TTL to the session expiry (epoch seconds, rounded up) once the client is disconnected', async () => {
      const s = await store();
      const at = Date.now() - 1_234;
      await s.save(disconnected('gone', 3_600, at), 1);
      await s.save(disconnected('forever', 0xffffffff, at), 1);
      await s.save(minimalSnapshot('online', { expiryInterval: 3_600 }), 1);
      expect((await raw(s, 'gone'))?.['ttl']).toEqual({ N: String(Math.ceil((at + 3_600_000) / 1000)) });
      expect((await raw(s, 'forever'))?.['ttl']).toBeUndefined();
      expect((await raw(s, 'online'))?.['ttl']).toBeUndefined();
      expect(sessionExpiresAt(disconnected('x', 10, 1_000))).toBe(11_000);
    });

    it('hashes a client ID too long for a partition key, and an empty one', async () => {
      const s = await store();
      const long = 'é'.repeat(30_000); // 60,000 bytes
      for (const clientId of [long, '']) {
        const key = clientKey(clientId);
        expect(key).toMatch(/^\u0000sha256:[0-9a-f]{64}$/);
        await s.save(minimalSnapshot(clientId, { nextPacketId: 7 }), 2);
        expect(await s.load(clientId)).toEqual({ snapshot: minimalSnapshot(clientId, { nextPacketId: 7 }), epoch: 2 });
        await expect(s.save(minimalSnapshot(clientId), 1)).rejects.toBeInstanceOf(FencedError);
        await s.delete(clientId, 2);
        expect(await s.load(clientId)).toBeNull();
      }
      expect(clientKey('plain')).toBe('plain');
    });
  });

  describe('expiry', () => {
    it('does not load a session whose expiry has passed, though DynamoDB has not deleted it yet', async () => {
      const s = await store();
      const now = Date.now();
      await s.save(disconnected('expired', 60, now - 61_000), 1);
      await s.save(disconnected('ended-at-disconnect', 0, now - 10), 1);
      await s.save(disconnected('live', 60, now - 30_000), 1);
      await s.save(disconnected('never', 0xffffffff, now - 400 * 86_400_000), 1);
      await s.save(minimalSnapshot('connected', { expiryInterval: 60 }), 1);
      expect((await raw(s, 'expired'))?.['pk']).toEqual({ S: 'expired' }); // TTL deletion is lazy
      expect(await s.load('expired')).toBeNull();
      expect(await s.load('ended-at-disconnect')).toBeNull();
      expect((await s.load('live'))?.snapshot.expiryInterval).toBe(60);
      expect((await s.load('never'))?.snapshot.expiryInterval).toBe(0xffffffff);
      expect((await s.load('connected'))?.epoch).toBe(1);
    });

    it('still fences writes to an expired session by its epoch', async () => {
      const s = await store();
      await s.save(disconnected('old', 1, Date.now() - 5_000), 6);
      expect(await s.load('old')).toBeNull();
      await expect(s.save(minimalSnapshot('old'), 5)).rejects.toBeInstanceOf(FencedError);
      await s.save(minimalSnapshot('old'), 7);
      expect((await s.load('old'))?.epoch).toBe(7);
    });
  });

  describe('size', () => {
    /** A session with `n` queued messages of compressible text. */
    const bigSnapshot = (clientId: string, n: number, payload: (i: number) => Buffer): SessionSnapshot =>
      minimalSnapshot(clientId, {
        protocolVersion: 5,
        expiryInterval: 0xffffffff,
        queue: Array.from({ length: n }, (_, i) => testMessage(`fleet/${clientId}/telemetry`, { payload: payload(i) })),
      });

    it('stores a snapshot above compressAboveBytes gzipped, binary, and loads it back', async () => {
      const s = await store();
      const snapshot = bigSnapshot('big', 1_000, (i) => Buffer.from(`{"temperature":${20 + (i % 7)},"status":"ok","fw":"1.2.3"}`.repeat(8)));
      const json = encodeSnapshot(snapshot);
      expect(Buffer.byteLength(json)).toBeGreaterThan(500_000); // over DynamoDB's item limit as JSON
      await s.save(snapshot, 1);
      const item = await raw(s, 'big');
      expect(item?.['snapshot']?.S).toBeUndefined();
      expect(item!['snapshot']!.B!.byteLength).toBeLessThan(400 * 1024);
      expect(gunzipSync(item!['snapshot']!.B!).toString('utf8')).toBe(json);
      expect(await s.load('big')).toEqual({ snapshot, epoch: 1 });

      await s.save(minimalSnapshot('small'), 1);
      expect((await raw(s, 'small'))?.['snapshot']?.S).toBe(encodeSnapshot(minimalSnapshot('small')));
    });

    it('compresses every snapshot with compressAboveBytes 0', async () => {
      const s = await store({ compressAboveBytes: 0 });
      const snapshot = richSnapshot('r');
      await s.save(snapshot, 1);
      expect((await raw(s, 'r'))?.['snapshot']?.B).toBeInstanceOf(Uint8Array);
      expect(await s.load('r')).toEqual({ snapshot, epoch: 1 });
    });

    it('refuses a snapshot still over 400 KB gzipped with QuotaExceededError, keeping the stored one', async () => {
      const s = await store();
      const kept = minimalSnapshot('huge', { nextPacketId: 3 });
      await s.save(kept, 1);
      const incompressible = bigSnapshot('huge', 3, () => randomBytes(200 * 1024));
      const call = s.save(incompressible, 2);
      await expect(call).rejects.toBeInstanceOf(QuotaExceededError);
      await expect(call).rejects.toThrow(/huge: snapshot is \d+ bytes .*over DynamoDB's 409600-byte item limit.*3 queued messages/);
      expect(await s.load('huge')).toEqual({ snapshot: kept, epoch: 1 });
    });
  });

  describe('failures', () => {
    it('surfaces throttling as BackendUnavailableError with the SDK error as cause', async () => {
      const tableName = await fx.table('sessions', sessionsTableDefinition);
      const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
      const { client } = fx.interceptedClient(() => Promise.reject(throttled));
      const s = new DynamoSessionStore({ client, tableName });
      open.push(s);
      for (const call of [s.load('c'), s.save(minimalSnapshot('c'), 1), s.delete('c', 1)]) {
        await expect(call).rejects.toBeInstanceOf(BackendUnavailableError);
        await expect(call).rejects.toMatchObject({ backend: 'dynamodb', cause: throttled });
      }
    });

    it('names the missing table and the command that creates it', async () => {
      const s = new DynamoSessionStore({ client: fx.config(), tableName: 'no-such-sessions' });
      open.push(s);
      await expect(s.load('c')).rejects.toThrow(/no-such-sessions.*fleetmq dynamo create-tables/);
      await expect(s.save(minimalSnapshot('c'), 1)).rejects.toBeInstanceOf(BackendUnavailableError);
    });

    it('refuses every call after close', async () => {
      const s = await freshStore();
      await s.close();
      for (const call of [s.load('c'), s.save(minimalSnapshot('c'), 1), s.delete('c', 1)]) {
        await expect(call).rejects.toMatchObject({ name: 'BackendUnavailableError', backend: 'dynamodb' });
      }
    });

    it('does not destroy a client it was given', async () => {
      const tableName = await fx.table('sessions', sessionsTableDefinition);
      const client = fx.client();
      const s = new DynamoSessionStore({ client, tableName });
      await s.save(minimalSnapshot('c'), 1);
      await s.close();
      const out = await client.send(new ScanCommand({ TableName: tableName, Select: 'COUNT' }));
      expect(out.Count).toBe(1);
    });
  });
});
