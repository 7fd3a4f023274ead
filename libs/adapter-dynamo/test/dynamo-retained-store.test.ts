import { randomUUID } from 'node:crypto';
import {
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { BackendUnavailableError, QuotaExceededError, topicMatches } from '@fleetmq/protocol';
import type { Message } from '@fleetmq/broker';
import { collect, describeRetainedStore, startDynamo, testMessage } from '@fleetmq/testkit';
import type { DynamoFixture } from '@fleetmq/testkit';
import {
  DynamoRetainedStore,
  SK_MAX_BYTES,
  createDynamoClient,
  createRetainedTable,
  ensureTables,
  retainedKey,
  retainedTableDefinition,
} from '../src/index.js';

let dynamo: DynamoFixture;
let admin: DynamoDBClient;

beforeAll(async () => {
  dynamo = await startDynamo();
  admin = createDynamoClient({ endpoint: dynamo.endpoint, region: dynamo.region, credentials: dynamo.credentials });
});

afterAll(async () => {
  admin?.destroy();
  await dynamo?.stop();
});

function clientConfig() {
  return { endpoint: dynamo.endpoint, region: dynamo.region, credentials: dynamo.credentials };
}

/** A fresh table and a store on it (owning its client). */
async function freshStore(options: { countCacheMs?: number } = {}): Promise<DynamoRetainedStore> {
  const tableName = `retained-${randomUUID()}`;
  await createRetainedTable(admin, tableName);
  return new DynamoRetainedStore({ client: clientConfig(), tableName, ...options });
}

describeRetainedStore(() => freshStore());

const retained = (topic: string, overrides: Partial<Omit<Message, 'topic'>> = {}): Message =>
  testMessage(topic, { retain: true, ...overrides });

async function topicsOf(store: DynamoRetainedStore, filters: readonly string[]): Promise<string[]> {
  return (await collect(store.match(filters))).map((m) => m.topic).sort();
}

describe('DynamoRetainedStore', () => {
  const open: DynamoRetainedStore[] = [];
  const clients: DynamoDBClient[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const store of open.splice(0)) await store.close();
    for (const client of clients.splice(0)) client.destroy();
  });

  /** A store on a fresh table using a client whose `send` calls are recorded. */
  async function spiedStore(): Promise<{ store: DynamoRetainedStore; sent: Array<{ name: string; input: Record<string, unknown>; items: number }> }> {
    const tableName = `retained-${randomUUID()}`;
    await createRetainedTable(admin, tableName);
    const client = createDynamoClient(clientConfig());
    clients.push(client);
    const store = new DynamoRetainedStore({ client, tableName });
    open.push(store);
    const sent: Array<{ name: string; input: Record<string, unknown>; items: number }> = [];
    const original = client.send.bind(client) as (command: unknown) => Promise<unknown>;
    vi.spyOn(client, 'send').mockImplementation((async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const output = (await original(command)) as { Items?: unknown[]; Item?: unknown };
      sent.push({ name: command.constructor.name, input: command.input, items: output.Items?.length ?? (output.Item ? 1 : 0) });
      return output;
    }) as never);
    return { store, sent };
  }

  it('never scans for filters whose first level is literal, and reads only their partition', async () => {
    const { store, sent } = await spiedStore();
    const topics = ['a/b/c', 'a/x/c', 'a/b', 'a', 'b/b/c', 'fleet/d1', 'fleet/d1/s', 'fleet/d10/s', 'fleet/d2/s', '$SYS/x', 'z'];
    for (const topic of topics) await store.set(retained(topic));
    sent.length = 0;

    const filters = ['a/+/c', 'a/#', 'a/b', 'fleet/d1/#', 'fleet/+/s', '$SYS/#', 'nothing/+'];
    for (const filter of filters) {
      expect({ filter, found: await topicsOf(store, [filter]) }).toEqual({
        filter,
        found: topics.filter((t) => topicMatches(filter, t)).sort(),
      });
    }
    expect(new Set(sent.map((s) => s.name))).toEqual(new Set(['QueryCommand', 'GetItemCommand']));
    expect(sent.filter((s) => s.name === 'ScanCommand')).toEqual([]);

    // fleet/d1/#: GetItem of fleet/d1 and a Query for sort keys beginning with fleet/d1/,
    // so fleet/d10/s is never read.
    sent.length = 0;
    await topicsOf(store, ['fleet/d1/#']);
    expect(sent.map((s) => s.name).sort()).toEqual(['GetItemCommand', 'QueryCommand']);
    const query = sent.find((s) => s.name === 'QueryCommand')!;
    expect(query.input['ExpressionAttributeValues']).toEqual({ ':pk': { S: 'fleet' }, ':prefix': { S: 'fleet/d1/' } });
    expect(sent.reduce((n, s) => n + s.items, 0)).toBe(2);

    // a filter starting with a wildcard is the one case that scans: once for all such filters
    sent.length = 0;
    expect(await topicsOf(store, ['+/b/c', '#', 'a/b'])).toEqual(topics.filter((t) => !t.startsWith('$')).sort());
    expect(sent.filter((s) => s.name === 'ScanCommand')).toHaveLength(1);
  });

  it("keeps '$' topics out of filters starting with a wildcard, server-side", async () => {
    const { store, sent } = await spiedStore();
    for (const topic of ['$SYS/broker/uptime', '$SYS', '$aws/things/t1', 'n/x', 'x']) await store.set(retained(topic));
    sent.length = 0;
    expect(await topicsOf(store, ['#'])).toEqual(['n/x', 'x']);
    expect(await topicsOf(store, ['+/#'])).toEqual(['n/x', 'x']);
    expect(await topicsOf(store, ['+/things/+'])).toEqual([]);
    expect(await topicsOf(store, ['+'])).toEqual(['x']);
    const scans = sent.filter((s) => s.name === 'ScanCommand');
    expect(scans).toHaveLength(4);
    // the '$' items are not even returned by DynamoDB
    expect(scans.map((s) => s.items)).toEqual([2, 2, 2, 2]);
    expect(await topicsOf(store, ['$aws/#'])).toEqual(['$aws/things/t1']);
    expect(await topicsOf(store, ['$SYS/#'])).toEqual(['$SYS', '$SYS/broker/uptime']);
  });

  it('stores the payload as binary and the expiry as a TTL attribute in epoch seconds', async () => {
    const store = await freshStore();
    open.push(store);
    const expiresAt = Date.now() + 90_500;
    const message = retained('t/ttl', { payload: Buffer.from([0, 1, 2, 0xfe]), expiresAt, properties: { contentType: 'x' } });
    await store.set(message);
    await store.set(retained('t/forever'));
    const raw = async (topic: string) =>
      (await admin.send(new GetItemCommand({ TableName: store.tableName, Key: toKey(topic), ConsistentRead: true }))).Item;
    const item = await raw('t/ttl');
    expect(item?.['ttl']).toEqual({ N: String(Math.ceil(expiresAt / 1000)) });
    expect(Buffer.from(item!['payload']!.B!)).toEqual(Buffer.from([0, 1, 2, 0xfe]));
    expect(item?.['topic']).toEqual({ S: 't/ttl' });
    expect((await raw('t/forever'))?.['ttl']).toBeUndefined();
    expect(await store.get('t/ttl')).toEqual(message);
  });

  it('does not return an expired item that DynamoDB has not deleted yet', async () => {
    const store = await freshStore({ countCacheMs: 0 });
    open.push(store);
    await store.set(retained('e/old', { expiresAt: Date.now() - 5_000 }));
    await store.set(retained('e/live'));
    // still in the table: TTL deletion is lazy
    const item = (await admin.send(new GetItemCommand({ TableName: store.tableName, Key: toKey('e/old'), ConsistentRead: true }))).Item;
    expect(item?.['topic']).toEqual({ S: 'e/old' });
    expect(await store.get('e/old')).toBeNull();
    expect(await topicsOf(store, ['e/#'])).toEqual(['e/live']);
    expect(await topicsOf(store, ['#'])).toEqual(['e/live']);
    expect(await topicsOf(store, ['e/old'])).toEqual([]);
    expect(await store.count()).toBe(1);
  });

  describe('long topics', () => {
    const long = (seed: string, bytes: number): string => seed.repeat(Math.ceil(bytes / seed.length)).slice(0, bytes);

    it('stores topics longer than the sort key limit under a hashed key, distinct and findable', async () => {
      const store = await freshStore();
      open.push(store);
      const stem = `dev/${long('x', 3_000)}`;
      const t1 = `${stem}/1`;
      const t2 = `${stem}/2`;
      const short = 'dev/short';
      expect(retainedKey(t1).sk).not.toBe(retainedKey(t2).sk);
      expect(Buffer.byteLength(retainedKey(t1).sk)).toBeLessThanOrEqual(SK_MAX_BYTES);
      for (const topic of [t1, t2, short]) await store.set(retained(topic, { payload: Buffer.from(topic.slice(-1)) }));
      expect((await store.get(t1))?.payload.toString()).toBe('1');
      expect((await store.get(t2))?.payload.toString()).toBe('2');
      expect(await topicsOf(store, [t1])).toEqual([t1]);
      expect(await topicsOf(store, [`${stem}/+`])).toEqual([t1, t2].sort());
      expect(await topicsOf(store, ['dev/+/1'])).toEqual([t1]);
      expect(await topicsOf(store, ['dev/#'])).toEqual([short, t1, t2].sort());
      expect(await topicsOf(store, ['#'])).toEqual([short, t1, t2].sort());
      await store.set(retained(t1, { payload: Buffer.alloc(0) }));
      expect(await store.get(t1)).toBeNull();
      expect(await topicsOf(store, ['dev/#'])).toEqual([short, t2].sort());
    });

    it('hashes a first level longer than the partition key limit', async () => {
      const store = await freshStore();
      open.push(store);
      const level = long('L', 2_500);
      const topics = [level, `${level}/a`, `${level}/b/c`];
      for (const topic of topics) await store.set(retained(topic));
      expect(retainedKey(`${level}/a`).pk).toMatch(/^sha256\/[0-9a-f]{64}$/);
      for (const topic of topics) expect((await store.get(topic))?.topic).toBe(topic);
      expect(await topicsOf(store, [`${level}/#`])).toEqual(topics.slice().sort());
      expect(await topicsOf(store, [`${level}/+`])).toEqual([`${level}/a`]);
      expect(await topicsOf(store, ['+/b/+'])).toEqual([`${level}/b/c`]);
    });

    it('cuts multi-byte characters whole at the sort key boundary', async () => {
      const store = await freshStore();
      open.push(store);
      // 3-byte and 4-byte characters straddle the cut in different places
      const topics = [`m/${long('日本', 1_500)}/end`, `m/${long('😀', 1_500)}/end`, `m/${long('ü😀x', 1_501)}`];
      for (const topic of topics) await store.set(retained(topic));
      for (const topic of topics) {
        const sk = retainedKey(topic).sk;
        expect(sk.includes('\uFFFD')).toBe(false);
        expect(Buffer.from(sk, 'utf8').toString('utf8')).toBe(sk);
        expect((await store.get(topic))?.topic).toBe(topic);
      }
      expect(await topicsOf(store, ['m/+/end'])).toEqual(topics.slice(0, 2).sort());
      expect(await topicsOf(store, ['m/#'])).toEqual(topics.slice().sort());
    });

    it('stores a topic of the MQTT maximum length (65,535 bytes)', async () => {
      const store = await freshStore();
      open.push(store);
      const topic = `max/${long('abc/', 65_535 - 4)}`.slice(0, 65_535);
      expect(Buffer.byteLength(topic)).toBe(65_535);
      await store.set(retained(topic));
      expect((await store.get(topic))?.topic).toBe(topic);
      expect(await topicsOf(store, ['max/#'])).toEqual([topic]);
    });
  });

  it('refuses a message over the DynamoDB item limit with QuotaExceededError, storing nothing', async () => {
    const store = await freshStore({ countCacheMs: 0 });
    open.push(store);
    const call = store.set(retained('big/one', { payload: Buffer.alloc(401 * 1024) }));
    await expect(call).rejects.toBeInstanceOf(QuotaExceededError);
    expect(await store.count()).toBe(0);
    await store.set(retained('big/ok', { payload: Buffer.alloc(300 * 1024) }));
    expect((await store.get('big/ok'))?.payload.length).toBe(300 * 1024);
  });

  it('surfaces throttling as BackendUnavailableError with the SDK error as cause', async () => {
    const { store } = await spiedStore();
    const throttled = new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });
    const client = (store as unknown as { client: DynamoDBClient }).client;
    vi.spyOn(client, 'send').mockRejectedValue(throttled as never);
    for (const call of [store.set(retained('a')), store.get('a'), store.count(), collect(store.match(['a/#']))]) {
      const err = await call.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect(err).toMatchObject({ backend: 'dynamodb', cause: throttled });
    }
  });

  it('surfaces an unreachable endpoint as BackendUnavailableError after bounded retries', async () => {
    const gone = await startDynamo();
    const endpoint = gone.endpoint;
    await gone.stop();
    const client = createDynamoClient({ endpoint, region: 'local', credentials: dynamo.credentials, maxAttempts: 2 });
    clients.push(client);
    expect(await client.config.maxAttempts()).toBe(2);
    const store = new DynamoRetainedStore({ client, tableName: 'whatever' });
    open.push(store);
    const started = Date.now();
    await expect(store.set(retained('a/b'))).rejects.toMatchObject({ name: 'BackendUnavailableError', backend: 'dynamodb' });
    await expect(collect(store.match(['#']))).rejects.toBeInstanceOf(BackendUnavailableError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('bounds the SDK retries of a client it makes', async () => {
    const store = new DynamoRetainedStore({ client: clientConfig(), tableName: 'x' });
    open.push(store);
    const client = (store as unknown as { client: DynamoDBClient }).client;
    expect(await client.config.maxAttempts()).toBe(3);
  });

  it('names the missing table and the command that creates it', async () => {
    const store = new DynamoRetainedStore({ client: clientConfig(), tableName: 'no-such-table' });
    open.push(store);
    await expect(store.get('a')).rejects.toThrow(/no-such-table.*fleetmq dynamo create-tables/);
  });

  it('refuses every call after close', async () => {
    const store = await freshStore();
    await store.close();
    for (const call of [store.set(retained('a')), store.get('a'), store.count(), collect(store.match(['#']))]) {
      await expect(call).rejects.toMatchObject({ name: 'BackendUnavailableError', backend: 'dynamodb' });
    }
  });

  it('does not destroy a client it was given', async () => {
    const tableName = `retained-${randomUUID()}`;
    await createRetainedTable(admin, tableName);
    const store = new DynamoRetainedStore({ client: admin, tableName });
    await store.set(retained('k'));
    await store.close();
    const out = await admin.send(new ScanCommand({ TableName: tableName, Select: 'COUNT' }));
    expect(out.Count).toBe(1);
  });

  it('counts with a cache that its own writes invalidate', async () => {
    const store = await freshStore({ countCacheMs: 60_000 });
    open.push(store);
    const other = new DynamoRetainedStore({ client: clientConfig(), tableName: store.tableName });
    open.push(other);
    await store.set(retained('c/1'));
    expect(await store.count()).toBe(1);
    await other.set(retained('c/2'));
    expect(await store.count()).toBe(1); // cached: another node's write shows after countCacheMs
    await store.set(retained('c/3'));
    expect(await store.count()).toBe(3);
    await store.set(retained('c/1', { payload: Buffer.alloc(0) }));
    expect(await store.count()).toBe(2);
  });
});

describe('createRetainedTable / ensureTables', () => {
  it('creates a PAY_PER_REQUEST table keyed pk/sk, and is idempotent', async () => {
    const tableName = `retained-${randomUUID()}`;
    const first = await createRetainedTable(admin, tableName);
    const second = await createRetainedTable(admin, tableName);
    expect(first.table).toBe('created');
    expect(second.table).toBe('exists');
    if (dynamo.kind === 'in-process') {
      // dynalite has no UpdateTimeToLive
      expect([first.ttl, second.ttl]).toEqual(['unsupported', 'unsupported']);
    } else {
      expect([first.ttl, second.ttl]).toEqual(['enabled', 'already-enabled']);
    }
    const { Table } = await admin.send(new DescribeTableCommand({ TableName: tableName }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(Table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
  });

  it('ensures several tables in order', async () => {
    const names = [`a-${randomUUID()}`, `b-${randomUUID()}`];
    await createRetainedTable(admin, names[0]!);
    const results = await ensureTables(admin, names.map(retainedTableDefinition));
    expect(results.map((r) => [r.tableName, r.table])).toEqual([
      [names[0], 'exists'],
      [names[1], 'created'],
    ]);
  });

  it('reports an unreachable endpoint as BackendUnavailableError', async () => {
    const gone = await startDynamo();
    await gone.stop();
    const client = createDynamoClient({ endpoint: gone.endpoint, region: 'local', credentials: gone.credentials, maxAttempts: 1 });
    try {
      await expect(createRetainedTable(client, 't')).rejects.toMatchObject({ name: 'BackendUnavailableError', backend: 'dynamodb' });
    } finally {
      client.destroy();
    }
  });
});

function toKey(topic: string) {
  const { pk, sk } = retainedKey(topic);
  return { pk: { S: pk }, sk: { S: sk } };
}
